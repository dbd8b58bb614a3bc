"""A run: the object a training script logs to, with W&B's API and step semantics.

``Run.log()`` is the hot path: it checks and snapshots the values (``values.flatten``), stamps
the step and wall time and appends one tuple to the writer's queue; it never encodes, never
touches the disk and never waits for a device. When the queue is full it waits for room
rather than drop anything, records how long, and says so once.

Step semantics follow W&B: without ``step`` every call is the next step unless
``commit=False`` keeps the step open for more keys; an explicit ``step`` moves the run to that
step and leaves it open (commit defaults to False) until a later step or ``commit=True``; a
step lower than the current one is refused with a warning naming what was dropped, and the
drops are counted in the finish event.
"""

from __future__ import annotations

import enum
import fcntl
import math
import os
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from waddle import artifact_store, console, files, process_hooks, ranks
from waddle.artifact import Artifact, as_artifact, load, log_request, use_fields
from waddle.config import Config
from waddle.copier import Copier
from waddle.event import INT64_MAX, T_MAX
from waddle.notice import Notices, say
from waddle.summary import Logged, Summary
from waddle.values import PLAIN, check_text, flatten, writable_text
from waddle.writer import CONSOLE, EVENT, FINISH, FLUSH, KEYED, LOG, Writer

SUMMARY_KINDS = ("min", "max", "mean", "last", "first", "none")


class AlertLevel(str, enum.Enum):
    """The level of ``run.alert()``, as W&B names them."""

    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


ALERT_LEVELS = tuple(level.value for level in AlertLevel)
# How many refused-step warnings are printed before the rest are only counted.
STEP_WARNINGS = 5
# The writer is asked to drain early once this many items are queued.
EARLY_DRAIN = 2000
# Keyed values of one step logged in a row share one event of at most this many keys.
KEYED_MERGE = 1000


class RunLockedError(RuntimeError):
    """Another process is writing this run."""


class Run:
    """An open run. Create it with ``waddle.init()``."""

    def __init__(
        self,
        *,
        project: str,
        run_id: str,
        name: str,
        run_dir: Path,
        rank: int = 0,
        settings: Any,
        start_fields: dict[str, Any],
        config: Any,
        tags: list[str],
        first_seq: int,
        first_step: int,
        resumed: bool,
    ) -> None:
        self.project = project
        self.id = run_id
        self.name = name
        self.dir = run_dir
        # Rank 0 writes the run folder's own stream; another rank its own (waddle/ranks.py).
        self.rank = rank
        self._stream_dir = ranks.stream_dir(run_dir, rank)
        self.tags = tuple(tags)
        self.notes = start_fields.get("notes")
        self.group = start_fields.get("group")
        self.job_type = start_fields.get("job_type")
        self.resumed = resumed
        self.settings = settings
        self._notices = Notices()
        self._pid = os.getpid()
        self._closed = False
        self._forked = False  # inherited by a forked child: every call is a no-op there
        self._finishing: dict[str, int] = {}  # "thread": the one finishing this run
        self._flushes = 0  # FLUSH requests queued
        self._finish_queued = False
        self._preempting = False
        self._watches: list[Any] = []  # watch(): hooks on models, one entry per model
        self._save_at_end: list[tuple[Path, str, bool]] = []  # save(policy="end")
        self._artifacts: list[Artifact] = []  # logged, perhaps not stored yet
        self._copier: Copier | None = None  # stores saved files and artifacts, from the first on
        self._let_go = False  # the writer has ended and the run's resources are released
        self._step = first_step
        self._dropped_steps = 0
        self._dropped_values = 0
        self._stall_seconds = 0.0
        self._stalls = 0
        self._known_keys: set[str] = set()  # keys already validated by flatten()
        # The open keyed item (Run._queue_keyed), which values of its step may join: always the
        # newest item queued, so whatever else is queued sets it to None.
        self._keyed_open: list | None = None
        self._lock_fd = self._lock_run_folder()
        self._writer = Writer(
            self._stream_dir,
            first_seq,
            start_fields,
            time.time(),
            first_step - 1 if first_step > 0 else None,
            settings,
            self._notices,
        )
        self._queue = self._writer.queue
        self._queue_size = settings.queue_size
        self.config = Config(config, on_change=self._config_changed)
        start_fields["config"] = self.config.as_dict()
        self.summary = Summary(
            self._writer.logged, on_change=self._summary_changed, sync=self.flush
        )
        self._writer.start()
        self._capturing = bool(settings.console)
        if self._capturing:
            console.attach(self._console_line)
        process_hooks.register(self)

    # ---- identity, as W&B names it -------------------------------------------------

    @property
    def path(self) -> str:
        """``project/id``: what ``waddle.Api().run()`` takes (W&B's is ``entity/project/id``)."""
        return f"{self.project}/{self.id}"

    @property
    def entity(self) -> str:
        """W&B's user or team; a local run has none, so always ``"local"``."""
        return "local"

    @property
    def url(self) -> str | None:
        """W&B's link to the run page; None, as for W&B's offline runs (``waddle serve``
        shows the run)."""
        return None

    def get_url(self) -> str | None:
        return self.url

    def mark_preempting(self) -> None:
        """Say the process is about to be preempted (a cluster's notice): the finish event then
        says ``preempting``, so the run reads as interrupted, to resume, not as failed."""
        self._preempting = True

    # ---- logging -------------------------------------------------------------------

    @property
    def step(self) -> int:
        """The step the next ``log()`` without ``step`` goes to."""
        return self._step

    def log(
        self, data: dict[str, Any], step: int | None = None, commit: bool | None = None
    ) -> None:
        """Record ``data`` at the current step (or ``step``); see the module docstring."""
        if self._closed:
            self._refuse_closed("log")
            return
        values, kind = flatten(data, self._known_keys)
        if step is None:
            at = self._step
            after = at + 1 if commit is None or commit else at
        else:
            at = _check_step(step)
            if at < self._step:
                self._drop(at, values)
                return
            after = at + 1 if commit else at
        queue = self._queue
        if values:
            queue.append((LOG, time.time(), at, values, kind))
            self._keyed_open = None
        # The step moves on only once the values are queued: a KeyboardInterrupt between the
        # two leaves this step open (the next call adds to it) rather than skip it.
        self._step = after
        if values and len(queue) >= EARLY_DRAIN:
            self._drain_early()

    def _log_keyed(self, data: dict[str, Any], step: Any, walltime: Any = None) -> None:
        """Record ``data`` at ``step`` of its keys alone (docs/format.md, "Keyed steps"): the
        step may repeat or go back, the run's own step does not move, and ``walltime`` (seconds
        since the epoch; default now) is kept as given. For waddle.tensorboard's writers."""
        if self._closed:
            self._refuse_closed("log")
            return
        values, kind = flatten(data, self._known_keys)
        if type(step) is not int or not 0 <= step < INT64_MAX:
            step = 0 if step is None else _check_step(step)
        if walltime is not None:
            t = _check_walltime(walltime)
            if values:
                self._queue_keyed((KEYED, t, step, values, kind, None))
            return
        if not values:
            return
        item = self._keyed_open
        if kind == PLAIN and item is not None and item[2] == step and self._joins(item, values):
            return
        if kind == PLAIN:
            self._queue_keyed([KEYED, time.time(), step, values, kind, False])
        else:
            self._queue_keyed((KEYED, time.time(), step, values, kind, None))

    def _scalar_adder(self, prefix: str) -> Callable[..., None]:
        """TensorBoard's ``add_scalar`` on this run, its keys ``prefix + tag``: one per
        waddle.tensorboard.SummaryWriter, as its own ``add_scalar``.

        The call a training loop makes millions of times, a finite float of a known key at the
        very step object of the open keyed item (``_log_scalar`` checked it), joins that item
        in this one Python frame: ``_joins()`` of one value, inline. Every other call takes
        ``_log_scalar``, or with a wall time ``_log_keyed``.
        """
        known = self._known_keys

        def add_scalar(
            tag: str,
            scalar_value: Any,
            global_step: Any = None,
            walltime: Any = None,
            new_style: bool = False,
            double_precision: bool = False,
        ) -> None:
            item = self._keyed_open
            if (
                item is not None
                and item[2] is global_step
                and type(scalar_value) is float
                and scalar_value - scalar_value == 0
                and walltime is None
                and not prefix
                and tag in known
            ):
                data = item[3]
                if len(data) < KEYED_MERGE:
                    data[tag] = scalar_value
                    if not item[5]:
                        return
            key = prefix + tag if prefix else tag  # the caller's string: hashed once
            if walltime is None:
                self._log_scalar(key, scalar_value, global_step)
            else:
                self._log_keyed({key: scalar_value}, global_step, walltime)

        return add_scalar

    def _log_scalar(self, key: str, value: Any, step: Any) -> None:
        """``_log_keyed({key: value}, step)``, in a fraction of the time for a finite float of
        a known key at an integer step: it joins the open keyed item of that step, or opens
        the next."""
        if (
            type(value) is not float
            or value - value != 0
            or type(step) is not int
            or key not in self._known_keys
            or not 0 <= step < INT64_MAX
            or self._closed
        ):
            self._log_keyed({key: value}, step)
            return
        item = self._keyed_open
        if item is not None and item[2] == step and self._joins(item, {key: value}):
            return
        self._queue_keyed([KEYED, time.time(), step, {key: value}, PLAIN, False])

    def _joins(self, item: list, values: dict[str, Any]) -> bool:
        """Add ``values`` (finite floats) to the open keyed item ``item`` of their step: True
        when the writer takes them with it. It may until it takes the item (``item[5]``); one
        taken meanwhile may or may not have them, so they are sent again: a value is then
        written twice at one step, never lost."""
        data = item[3]
        if item[5] or len(data) + len(values) > KEYED_MERGE:
            return False
        data.update(values)
        return not item[5]

    def _queue_keyed(self, item: Any) -> None:
        """Queue a keyed item; an open one (a list, ``item[5]`` False) is the one values of its
        step may join from now on."""
        queue = self._queue
        queue.append(item)
        self._keyed_open = item if item[5] is False else None
        if len(queue) >= EARLY_DRAIN:
            self._drain_early()

    def _drain_early(self) -> None:
        """Ask the writer for an early drain; wait for room when the queue is full."""
        wake = self._writer.wake
        if not wake.pending:  # set() is a system call; asking first is much cheaper
            wake.set()
        if len(self._queue) >= self._queue_size:
            self._wait_for_room()

    def _drop(self, step: int, values: dict[str, Any]) -> None:
        self._dropped_steps += 1
        self._dropped_values += len(values)
        if self._dropped_steps <= STEP_WARNINGS:
            keys = ", ".join(list(values)[:5]) + (", ..." if len(values) > 5 else "")
            more = "" if self._dropped_steps < STEP_WARNINGS else " Further drops are only counted."
            say(
                f"log() at step {step} is behind the run's current step {self._step}: dropped "
                f"{len(values)} value(s) ({keys}). Steps must not go back; for another x-axis "
                f"log it as a value and use define_metric(name, step_metric=...).{more}"
            )

    def _wait_for_room(self) -> None:
        started = time.monotonic()
        if self._stalls == 0:
            say(
                f"log() is waiting for the writer: {self._queue_size} events are queued for "
                f"{self.dir}. Logging is faster than the disk takes it; the time spent waiting "
                "is recorded in the finish event."
            )
        self._stalls += 1
        writer = self._writer
        while len(self._queue) >= self._queue_size and writer.thread.is_alive():
            writer.waiting = True
            writer.wake.set()
            writer.progress.wait(0.05)
        self._stall_seconds += time.monotonic() - started

    def _enqueue(self, kind: str, fields: Any, t: float | None = None) -> None:
        if self._closed:
            self._refuse_closed(kind)
            return
        self._queue.append((EVENT, time.time() if t is None else t, kind, fields))
        self._keyed_open = None

    def _config_changed(self, changes: dict[str, Any]) -> None:
        self._enqueue("config", {"data": changes})

    def _summary_changed(self, changes: dict[str, Any]) -> None:
        self._enqueue("summary", {"data": changes})

    def _console_line(self, stream: str, text: str) -> None:
        if not self._closed:
            self._queue.append((CONSOLE, time.time(), stream, text))
            self._keyed_open = None

    def define_metric(
        self,
        name: str,
        step_metric: str | None = None,
        summary: str | None = None,
        hidden: bool | None = None,
        step_sync: bool | None = None,
        goal: str | None = None,
        overwrite: bool | None = None,
    ) -> None:
        """Declare how a metric (or a glob such as ``"val/*"``) is plotted and summarised.

        ``summary``: comma-separated aggregates the run summary keeps for it instead of the
        last value (``run.summary[name]`` is then ``{"max": ...}``), or ``"none"``. ``goal``
        (``"minimize"`` or ``"maximize"``) is recorded for the dashboard. ``step_sync`` and
        ``overwrite`` are W&B's, accepted: the step metric is always paired by step, and a
        later definition of a name always overrides an earlier one.
        """
        if type(name) is not str or not name:
            raise ValueError("define_metric() needs a metric name such as 'val/loss' or 'val/*'")
        check_text("define_metric() name", name)
        if step_metric is not None and (type(step_metric) is not str or not step_metric):
            raise ValueError(f"define_metric({name!r}): step_metric must be a metric name")
        if step_metric is not None:
            check_text(f"define_metric({name!r}) step_metric", step_metric)
        if summary is not None:
            kinds = [part.strip() for part in summary.split(",")]
            unknown = [kind for kind in kinds if kind not in SUMMARY_KINDS]
            if unknown:
                raise ValueError(
                    f"define_metric({name!r}): summary {unknown[0]!r} is not one of {', '.join(SUMMARY_KINDS)}"
                )
        fields: dict[str, Any] = {"name": name}
        if step_metric is not None:
            fields["step_metric"] = step_metric
        if summary is not None:
            fields["summary"] = summary
        if hidden is not None:
            fields["hidden"] = bool(hidden)
        if goal is not None:
            if goal not in ("minimize", "maximize"):
                raise ValueError(f"define_metric({name!r}): goal must be minimize or maximize")
            fields["goal"] = goal
        self._enqueue("define_metric", fields)

    def alert(
        self,
        title: str,
        text: str,
        level: str | AlertLevel | None = None,
        wait_duration: Any = None,
    ) -> None:
        """Record an alert; the dashboard shows it on the run."""
        level = str(getattr(level, "value", level or "INFO")).upper()
        if level == "WARNING":
            level = "WARN"
        if level not in ALERT_LEVELS:
            raise ValueError(f"alert level {level!r} is not one of {', '.join(ALERT_LEVELS)}")
        fields = {"title": str(title), "text": str(text), "level": level}
        for name in ("title", "text"):
            check_text(f"alert() {name}", fields[name])
        self._enqueue("alert", fields)

    def save(
        self,
        glob_str: str | os.PathLike,
        base_path: str | os.PathLike | None = None,
        policy: str = "live",
        glob: bool = True,
        *,
        name: str | None = None,
        link: bool = False,
    ) -> list[str]:
        """Copy files into the run folder (``files/``, by content hash), each with a ``file``
        event; W&B's signature. Returns the paths saved.

        ``glob_str`` is a file, or a pattern (``*``, ``?``, ``[...]``, ``**``) unless
        ``glob=False``; each match is named by its path relative to ``base_path`` (default:
        the pattern's folder). ``policy="end"`` saves them as the run finishes; ``"live"`` and
        ``"now"`` save them as they are now (save again to record a later version). ``name``
        (one file) names it instead; ``link=True`` hard-links where possible instead of
        copying. The copying happens in the run's copier thread (waddle/copier.py), so a large
        file never holds back the events logged after it.
        """
        if self._closed:
            self._refuse_closed("save")
            return []
        if policy not in ("live", "now", "end"):
            raise ValueError(f"save(): policy {policy!r} is not one of live, now, end")
        matches = files.expand(glob_str, base_path, glob, name)
        if not matches:
            self._notices.show(f"save-{glob_str}", f"save({str(glob_str)!r}) matched no file")
        for path, saved_name in matches:
            if policy == "end":
                self._save_at_end.append((path, saved_name, link))
            else:
                self._copy(time.time(), "file", files.snapshot(path, saved_name, self._step, link))
        return [str(path) for path, _ in matches]

    def log_code(
        self,
        root: str | os.PathLike | None = ".",
        name: str | None = None,
        include_fn: Any = None,
        exclude_fn: Any = None,
    ) -> None:
        """Save the source files under ``root`` with the run, as ``code/<path>`` (waddle/code.py
        says which). ``name`` is W&B's artifact name, ignored: the files are the run's."""
        if self._closed:
            self._refuse_closed("log_code")
            return
        from waddle import code

        folder = Path(root if root is not None else ".")
        log_dir = self.dir.parent.parent
        for path in code.source_files(folder, include_fn, exclude_fn, log_dir):
            self.save(path, name="code/" + path.relative_to(folder.resolve()).as_posix())

    def log_artifact(
        self,
        artifact_or_path: Artifact | str | os.PathLike,
        name: str | None = None,
        type: str | None = None,
        aliases: list[str] | None = None,
        tags: list[str] | None = None,
    ) -> Artifact:
        """Make the artifact (or a file, folder or URI as one) the next version of its name in
        the project, or the version that holds the same content; ``latest`` and ``aliases``
        point to it. Returns at once: the run's copier thread copies the files
        (waddle/copier.py), and ``artifact.wait()`` waits for the version."""
        artifact = as_artifact(artifact_or_path, name, type, self.id)
        if self._closed:
            self._refuse_closed("log_artifact")
            return artifact
        t = time.time()  # the event's and the version's
        store = log_request(artifact, self, "log", artifact_store.check_aliases(aliases), tags, t)
        self._copy(t, "artifact", store)
        self._artifacts = [logged for logged in self._artifacts if logged._outcome is None]
        self._artifacts.append(artifact)
        return artifact

    def use_artifact(
        self,
        artifact_or_name: Artifact | str,
        type: str | None = None,
        aliases: list[str] | None = None,
        use_as: str | None = None,
    ) -> Artifact:
        """Record that this run uses a version (``"name"``, ``"name:v2"``, ``"name:best"``,
        ``"project/name:alias"``, or an Artifact) and return it, to read or ``download()``.
        A draft is logged first (as W&B does), as used rather than made by this run."""
        aliases = artifact_store.check_aliases(aliases)
        if isinstance(artifact_or_name, Artifact):
            artifact = artifact_or_name
            if artifact.is_draft():
                if self._closed:
                    self._refuse_closed("use_artifact")
                    return artifact
                t = time.time()
                self._copy(t, "artifact", log_request(artifact, self, "use", aliases, None, t))
                return artifact.wait()
            artifact.wait()
        else:
            project, name, ref = artifact_store.parse_reference(artifact_or_name)
            pending = [logged for logged in self._artifacts if logged._outcome is None]
            # A version this run just logged counts.
            self._wait_for_artifacts(lambda: all(a._outcome is not None for a in pending))
            project_dir = self.dir.parent if project is None else self.dir.parent.parent / project
            try:
                artifact = load(project_dir, artifact_store.resolve(project_dir, name, ref))
            except LookupError as error:
                raise ValueError(f"use_artifact({artifact_or_name!r}): {error}") from None
        if type is not None and type != artifact.type:
            raise ValueError(
                f"use_artifact(): {artifact.name} is of type {artifact.type!r}, not {type!r}"
            )
        self._enqueue("artifact", use_fields(artifact, aliases, use_as))
        return artifact

    def _copy(self, t: float, kind: str, store: Any) -> None:
        """Hand ``store`` (files to copy) to the copier thread; it queues the ``kind`` event."""
        if self._closed:
            self._refuse_closed("log_artifact" if kind == "artifact" else "save")
            return
        if self._copier is None:
            # Saved files go to this rank's stream (waddle/ranks.py).
            self._copier = Copier(self._stream_dir, self._stored, self._notices)
        self._copier.submit(t, kind, store)

    def _stored(self, t: float, kind: str, fields: dict[str, Any]) -> None:
        """The copier's thread: files are stored; their event goes to the writer."""
        self._queue.append((EVENT, t, kind, fields))
        self._keyed_open = None
        self._writer.wake.set()

    def _wait_for_artifacts(self, done: Any, timeout: float = math.inf) -> bool:
        """Wait until ``done()``, while the copier stores this run's artifacts."""
        copier = self._copier
        return done() if copier is None else copier.wait(done, timeout)

    def log_model(
        self,
        path: str | os.PathLike,
        name: str | None = None,
        aliases: list[str] | None = None,
    ) -> None:
        """W&B's ``log_model``: ``log_artifact(path, name, type="model", aliases)``."""
        self.log_artifact(path, name=name, type="model", aliases=aliases)

    def use_model(self, name: str) -> str:
        """W&B's ``use_model``: use the model artifact ``name`` and download it; its folder."""
        return self.use_artifact(name).download()

    def watch(
        self,
        models: Any,
        criterion: Any = None,
        log: str | None = "gradients",
        log_freq: int = 1000,
        idx: int | None = None,
        log_graph: bool = False,
    ) -> None:
        """Log histograms of a torch model's gradients and/or parameters every ``log_freq``
        batches, as W&B's ``watch`` (waddle/watching.py says how); ``criterion`` is ignored."""
        from waddle import watching

        added = watching.watch(self, models, log, log_freq, idx, log_graph, len(self._watches))
        self._watches.extend(added)

    def unwatch(self, models: Any = None) -> None:
        """Remove the hooks ``watch()`` put on ``models`` (default: on every model)."""
        chosen = (
            None if models is None else (models if isinstance(models, (list, tuple)) else [models])
        )
        for watched in list(self._watches):
            if chosen is None or any(watched.model is model for model in chosen):
                watched.remove()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything logged so far is written and fsynced, saved files and
        artifacts stored included; False on timeout.

        ``timeout=0`` only asks for it and returns at once (what Ctrl-C does: a signal handler
        must not wait for another thread).
        """
        deadline = time.monotonic() + timeout
        copier = self._copier
        if copier is not None and timeout > 0:
            copier.wait(copier.idle, timeout)
        return self._flush_events(max(0.0, deadline - time.monotonic()))

    def _flush_events(self, timeout: float) -> bool:
        """Wait until the events queued so far are written and fsynced; False on timeout."""
        writer = self._writer
        if self._closed or os.getpid() != self._pid or not writer.thread.is_alive():
            return False
        self._flushes += 1
        number = self._flushes
        self._queue.append((FLUSH, number))
        self._keyed_open = None
        writer.wake.set()
        deadline = time.monotonic() + timeout
        while writer.flushed < number and writer.thread.is_alive():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            writer.waiting = True
            writer.progress.wait(min(remaining, 0.05))
        return writer.flushed >= number

    # ---- the end -------------------------------------------------------------------

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        """Write everything, record the finish event and close the run; later calls do nothing."""
        self._finish(exit_code=exit_code or 0, reason=None, traceback_text=None)

    def _finish_from_hook(
        self, exit_code: int, reason: str | None, traceback_text: str | None
    ) -> None:
        self._finish(exit_code=exit_code, reason=reason, traceback_text=traceback_text)

    def _finish(self, exit_code: int, reason: str | None, traceback_text: str | None) -> None:
        if os.getpid() != self._pid:
            return
        # One thread finishes the run; no lock: an interrupt could leave one held. The same
        # thread may come back (a Ctrl-C inside finish(), then the exit hook) and goes on
        # where it was stopped.
        me = threading.get_ident()
        if self._finishing.setdefault("thread", me) != me:
            return
        if self._finish_queued:
            self._wait_for_writer()
            return
        self.unwatch()
        for path, saved_name, link in self._save_at_end:
            try:
                snapshot = files.snapshot(path, saved_name, self._step, link)
                self._copy(time.time(), "file", snapshot)
            except (OSError, ValueError) as error:  # gone since save(); the run still finishes
                self._notices.show(f"save-end-{path}", f"save(policy='end') of {path}: {error}")
        if self._capturing:
            console.detach(self._console_line)
        self._closed = True
        self._keyed_open = None  # joined no more (add_scalar's hot path checks no _closed)
        if self._copier is not None:  # its files' events come before the finish event
            self._copier.finish()
        fields: dict[str, Any] = {
            "exit_code": exit_code,
            "status": "finished" if exit_code == 0 else "crashed",
            "dropped": {"steps": self._dropped_steps, "values": self._dropped_values},
            "stalled_seconds": round(self._stall_seconds, 6),
        }
        if self._copier is not None and self._copier.lost:
            fields["lost_values"] = self._copier.lost  # the writer adds its own
        # The finish event must be writable whatever happened: an exception's message may
        # hold text UTF-8 cannot encode, which is kept as escapes instead.
        if self._preempting:
            fields["preempting"] = True
        if reason:
            fields["reason"] = writable_text(reason)
        if traceback_text:
            fields["traceback"] = writable_text(traceback_text)
        self._queue.append((FINISH, time.time(), fields))
        self._keyed_open = None
        self._finish_queued = True
        self._writer.wake.set()
        self._wait_for_writer()

    def _wait_for_writer(self) -> None:
        """Wait for the writer thread to write the finish event and end, then let go."""
        writer = self._writer
        waited = 0.0
        while writer.thread.is_alive():
            writer.thread.join(10.0)
            waited += 10.0
            if writer.thread.is_alive():
                say(f"still writing the event log of run {self.id} after {waited:.0f} s...")
        if self._let_go:
            return
        self._let_go = True
        writer.wake.close()
        writer.progress.close()
        self._release_lock()
        process_hooks.unregister(self)
        lost = self._writer.lost_events
        if self._dropped_values or lost:
            say(
                f"run {self.id} finished with {self._dropped_values} value(s) dropped for steps "
                f"that went back and {lost} event(s) lost to write errors"
            )

    def _refuse_closed(self, what: str) -> None:
        if os.getpid() == self._pid:
            self._notices.show(
                "closed",
                f"run {self.id} is finished; {what}() is ignored. Call waddle.init() for a new run "
                f"or waddle.init(id={self.id!r}, resume='allow') to continue this one.",
            )

    def _forget_after_fork(self) -> None:
        """In a forked child: this run belongs to the parent; never write to it from here."""
        self._closed = True
        self._keyed_open = None
        self._forked = True
        self._lock_fd = None
        self._writer.wake.close()  # the child's copies of the pipes
        self._writer.progress.close()
        if self._copier is not None:
            self._copier.close()

    # ---- the run folder lock ---------------------------------------------------------

    def _lock_run_folder(self) -> int | None:
        """Hold an exclusive lock on the run folder for the run's lifetime.

        Two processes appending to one run would interleave seqs; the second one is refused.
        The kernel drops the lock when the process dies, even by kill -9.
        """
        try:
            self._stream_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._stream_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None  # the writer reports the unwritable folder
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
            os.close(fd)
            of_rank = f"rank {self.rank} of " if self.rank else ""
            raise RunLockedError(
                f"{of_rank}run {self.id} in {self.dir} is already open in another process "
                f"({holder}); finish that one first, start a new run, or give each process "
                "its own rank (WADDLE_RANK)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode(), 0)
        return fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ---- context manager -------------------------------------------------------------

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        if kind is None:
            self.finish()
        else:
            text = "".join(traceback.format_exception(kind, value, tb))
            self._finish(exit_code=1, reason=kind.__name__, traceback_text=text)

    def __repr__(self) -> str:
        return f"<waddle.Run {self.project}/{self.id} name={self.name!r}>"


def _check_walltime(walltime: Any) -> float:
    """A caller's wall time as the float seconds an event's ``t`` holds, or raise naming it."""
    try:
        t = float(walltime)
    except (TypeError, ValueError):
        raise TypeError(
            f"walltime must be seconds since the epoch, not {type(walltime).__name__}"
        ) from None
    if not 0 <= t <= T_MAX:  # NaN fails too
        raise ValueError(f"walltime must be seconds since the epoch, 0 to {T_MAX:g}: {walltime!r}")
    return t


def _check_step(step: Any) -> int:
    if type(step) is not int:
        if isinstance(step, bool) or not hasattr(step, "__index__"):
            raise TypeError(f"log() step must be an integer, not {type(step).__name__} ({step!r})")
        step = step.__index__()
    if not 0 <= step < INT64_MAX:  # the next step, step + 1, must fit 64 bits too
        raise ValueError(f"log() step must be between 0 and 2**63 - 2: {step}")
    return step


class DisabledRun:
    """What ``init(mode="disabled")`` returns: the same API, and every call does nothing.

    Meant for processes that should not log (rank != 0 in distributed training) without an
    ``if`` around every call. Every public method of :class:`Run` exists here as a no-op, and
    every property of it that is not set here is None.
    """

    def __init__(self, project: str, name: str | None, config: Any) -> None:
        self.project = project
        self.id = "disabled"
        self.name = name or "disabled"
        self.dir = None
        self.tags = ()
        self.notes = self.group = self.job_type = None
        self.resumed = False
        self.rank = 0
        self.step = 0
        self.config = Config(config)
        self.summary = Summary(Logged(), on_change=lambda changes: None)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(Run, name, None) if not name.startswith("_") else None
        if isinstance(attribute, property):
            return None
        if callable(attribute):
            return _do_nothing
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def flush(self, timeout: float = 30.0) -> bool:
        return True

    def _log_keyed(self, data: dict[str, Any], step: Any, walltime: Any = None) -> None:
        pass

    def _scalar_adder(self, prefix: str) -> Callable[..., None]:
        return _do_nothing

    def __enter__(self) -> DisabledRun:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def _do_nothing(*args: Any, **kwargs: Any) -> None:
    return None
