"""``waddle import wandb PATH...``: W&B offline runs as waddle runs.

Each run's transaction log (``run-<id>.wandb``) is read through waddle/wandb_log.py, every record
parsed by the ``wandb`` package's protobuf classes, with the files W&B kept beside it. Mapping
(README, "Coming from W&B"):

- a W&B run folder (``wandb/offline-run-<time>-<id>``) is one waddle run, its id
  ``<W&B's start time, UTC>-wb-<W&B's id>``, in W&B's project (or the one given), with W&B's
  name, tags, notes, group, job type and start time; the context (host, OS, Python, command
  line, git, GPUs) from W&B's environment record;
- config changes are config events (W&B's own ``_wandb`` keys are left out), each
  ``define_metric`` a define_metric event;
- each history row is a log event at its ``_step``, with its ``_timestamp`` as wall time, nested
  keys joined with ``/`` as waddle flattens them. Media become waddle media where the kind maps
  (images with their boxes, lists of images, audio, video, tables, HTML, point clouds and 3-D
  models, histograms; ``wandb.plot`` charts become waddle charts of the same kind); the file of
  any other kind (plotly, bokeh, masks, ...) is kept as a saved file named by its W&B path;
- the summary event holds what W&B's final summary says and the history does not (what the
  script set with ``run.summary[...] = ...``): waddle derives the rest as W&B does;
- files saved with ``run.save`` are file events, console output console events, alerts alert
  events, system metrics that have a waddle name system events (the script's artifacts are
  reported and left out: W&B keeps their files outside the run folder); the run ends finished or
  crashed as W&B's exit record says (crashed, with the reason, when there is none: the
  process died, or is still running).

Re-running imports nothing twice (waddle/imported_run.py): a run whose W&B file has not changed
is skipped, one that grew is imported again and replaces the earlier import. What cannot be
imported (a value, a missing file, a torn last record) is reported with the file and record,
counted in the finish event's ``lost_values``, and the rest is imported.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from wandb.proto import wandb_internal_pb2  # noqa: F401  (without the wandb extra: ImportError here)

from waddle import files, names, values, wandb_log
from waddle.audio import Audio
from waddle.console import visible_line
from waddle.histogram import Histogram
from waddle.html import Html
from waddle.image import Image
from waddle.imported_run import ImportedRun
from waddle.object3d import Object3D
from waddle.plot import CustomChart
from waddle.summary import Logged
from waddle.table import Table
from waddle.video import Video
from waddle.writer import console_pieces

Report = Callable[[str], None]
# Each W&B file reports at most this many problems one by one, then how many more there were.
REPORTED = 20
# The records before the run's first event that still describe its start.
START_RECORDS = ("header", "run", "environment", "telemetry")
# W&B's system metrics that have a waddle name (docs/format.md): W&B's name -> (waddle's, scale).
SYSTEM_METRICS = {
    "cpu": ("proc/cpu_percent", 1),
    "proc.cpu.threads": ("proc/threads", 1),
    "proc.memory.rssMB": ("proc/rss", 1 << 20),
    "memory_percent": ("memory/percent", 1),
}
GPU_METRICS = {  # gpu.<i>.<W&B's name> -> gpu/<i>/<waddle's name>
    "gpu": ("utilization", 1),
    "memoryAllocatedBytes": ("memory_used", 1),
    "memoryAllocated": ("memory_percent", 1),
    "temp": ("temperature", 1),
    "powerWatts": ("power", 1),
}
# wandb.plot's presets (W&B's panel) -> waddle's chart and its fields from W&B's field names.
CHARTS = {
    "wandb/line/v0": ("line", {"x": "x", "y": "y", "stroke": "stroke"}),
    "wandb/scatter/v0": ("scatter", {"x": "x", "y": "y"}),
    "wandb/bar/v0": ("bar", {"label": "label", "value": "value"}),
    "wandb/histogram/v0": ("histogram", {"value": "value"}),
    "wandb/lineseries/v0": ("line_series", {"x": "step", "y": "lineVal", "stroke": "lineKey"}),
    "wandb/confusion_matrix/v1": (
        "confusion_matrix",
        {"actual": "Actual", "predicted": "Predicted", "value": "nPredictions"},
    ),
    "wandb/area-under-curve/v0": ("curve", {"x": "x", "y": "y", "stroke": "class"}),
}
SUMMARY_KINDS = ("min", "max", "mean", "last", "first", "none")


@dataclass
class Outcome:
    """What importing one W&B run did."""

    source: Path  # the W&B run folder
    project: str
    run_id: str
    status: str  # "imported", "replaced" or "unchanged"
    events: int = 0
    values: int = 0


def find_runs(paths: list[Path]) -> list[Path]:
    """The W&B run files named by ``paths``: a run file, a run folder, or a folder of run
    folders (W&B's ``wandb/``), in name order; ValueError naming a path that holds none."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_file():
            runs = [path]
        else:
            runs = sorted(path.glob("run-*.wandb")) or sorted(path.glob("*run-*/run-*.wandb"))
        if not runs:
            raise ValueError(f"no W&B run (run-<id>.wandb) in {path}")
        found += [run for run in runs if run not in found]
    return found


def import_runs(
    paths: list[Path],
    log_dir: Path,
    project: str | None,
    report: Report,
    segment_bytes: int = 64 * 1024 * 1024,
) -> list[Outcome]:
    """Import each W&B run of ``paths`` into ``log_dir`` (into ``project`` if given, else the
    run's W&B project)."""
    if project is not None:
        names.check("project", project)
    return [
        _RunImport(path, Path(log_dir), project, report).run(segment_bytes)
        for path in find_runs(paths)
    ]


class _RunImport:
    """One W&B run file read into one waddle run."""

    def __init__(self, path: Path, log_dir: Path, project: str | None, report: Report) -> None:
        self.path = path
        self.files_dir = path.parent / "files"
        self.log_dir = log_dir
        self.project = project
        self.report = report
        self.problems = 0
        self.out: ImportedRun | None = None
        self.t = 0.0  # the newest wall time seen: events without their own take it
        self.step: int | None = None  # of the newest log event
        self.record = 0  # the number of the record being read, for reports
        self.charts: dict[str, tuple[str, dict, str]] = {}  # key -> (chart, fields, title)
        self.logged = Logged()  # W&B's values as logged: what the summary needs not repeat
        self.summary: dict[tuple[str, ...], str] = {}  # W&B's summary: nested keys -> JSON
        self.config: dict[str, Any] = {}
        self.known: set[str] = set()
        self.console: list[Any] | None = None  # [t, stream, text] not yet written
        self.finish: dict[str, Any] = {}
        self.started = 0.0
        self.logged_values = 0

    # ---- the run ------------------------------------------------------------------------

    def run(self, segment_bytes: int) -> Outcome:
        records = self._records()
        start, first = self._start(records)
        run = start["run"]
        project = self.project or run.project or "uncategorized"
        names.check(f"W&B project of {self.path} (choose another with --project)", project)
        started = self.started = run.start_time.seconds + run.start_time.nanos / 1e9
        run_id = _run_id(run.run_id, started)
        source = {"path": str(self.path.resolve()), "bytes": self.path.stat().st_size}
        imported = ImportedRun(self.log_dir / project, run_id, "wandb", source, segment_bytes)
        outcome = Outcome(self.path.parent, project, run_id, "unchanged")
        if imported.unchanged:
            return outcome
        with imported as self.out:
            self.t = started
            fields = _start_fields(project, run_id, run, start["environment"], self.charts)
            self.config = dict(fields["config"])
            self._emit(started, "run_start", fields)
            for record in [*start["later"], *([first] if first is not None else []), *records]:
                self._record(record)
            self._end()
        if self.problems > REPORTED:
            self.report(f"{self.path}: {self.problems - REPORTED} more problems like these")
        outcome.status, outcome.events = imported.status, imported.events
        outcome.values = self.logged_values
        return outcome

    def _records(self) -> Iterator[Any]:
        def torn(offset: int) -> None:
            self.finish["reason"] = f"the W&B file ends in a torn record at byte {offset}"
            self._problem(
                f"byte {offset}: a torn last record (a writer that died); read up to it", lost=0
            )

        for record in wandb_log.records(self.path, torn):
            self.record += 1
            yield record

    def _start(self, records: Iterator[Any]) -> tuple[dict[str, Any], Any]:
        """The records that describe the run's start (its run record first found), and the
        first record after them."""
        start: dict[str, Any] = {"run": None, "environment": [], "later": []}
        for record in records:
            kind = record.WhichOneof("record_type")
            if kind not in START_RECORDS:
                if start["run"] is None:
                    start["later"].append(record)
                    continue
                return start, record
            if kind == "run" and start["run"] is None:
                start["run"] = record.run
            elif kind == "environment":
                start["environment"].append(record.environment)
        if start["run"] is None:
            raise ValueError(f"{self.path} holds no W&B run record: not a W&B run file")
        return start, None

    def _record(self, record: Any) -> None:
        kind = record.WhichOneof("record_type")
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            try:
                handler(getattr(record, kind))
            except (ValueError, TypeError, OSError, RuntimeError) as error:
                self._problem(f"a {kind} record left out: {error}")

    def _emit(self, t: float, kind: str, fields: dict[str, Any]) -> None:
        if kind != "console":
            self._flush_console(whole_lines_only=True)
        assert self.out is not None
        self.out.add(t, kind, fields)

    def _problem(self, text: str, lost: int = 1) -> None:
        """Report ``text`` (the first REPORTED problems of the file); ``lost`` values or files
        are counted in the finish event."""
        self.problems += 1
        self.finish["lost_values"] = self.finish.get("lost_values", 0) + lost
        if self.problems <= REPORTED:
            self.report(f"{self.path}: record {self.record}: {text}")

    # ---- records --------------------------------------------------------------------------

    def _on_config(self, config: Any) -> None:
        changes = {
            key: value
            for key, value in _config_changes(config.update, self.charts).items()
            if key not in self.config or not _same(self.config[key], value)
        }
        if changes:
            self.config.update(changes)
            self._emit(self.t, "config", {"data": changes})

    def _on_metric(self, metric: Any) -> None:
        name = metric.name or metric.glob_name
        if not name or name.startswith("_") or metric.expanded_from_glob:
            return
        fields: dict[str, Any] = {"name": name}
        if metric.step_metric:
            fields["step_metric"] = metric.step_metric
        summary = _summary_kinds(metric)
        if summary:
            fields["summary"] = summary
            self.logged.define(name, summary)
        if metric.options.hidden:
            fields["hidden"] = True
        if metric.goal:
            fields["goal"] = "minimize" if metric.goal == 1 else "maximize"
        self._emit(self.t, "define_metric", fields)

    def _on_history(self, history: Any) -> None:
        raw = _rows({_path(item): _json(item.value_json) for item in history.item})
        step = raw.pop("_step", None)
        step = history.step.num if type(step) is not int else step
        t = raw.pop("_timestamp", None)
        raw.pop("_runtime", None)
        if isinstance(t, (int, float)) and 0 < t <= 1e10:
            self.t = float(t)
        self.logged.update(raw)
        saved: list[str] = []
        data = {}
        for key, value in raw.items():
            chart = self.charts.get(key.removesuffix("_table")) if key.endswith("_table") else None
            try:
                if chart is not None:  # wandb.plot's table: a chart under the chart's key
                    data[key.removesuffix("_table")] = self._chart(chart, value)
                else:
                    data[key] = self._value(value, saved)
            except (ValueError, TypeError, OSError, KeyError, ImportError) as error:
                self._problem(f"{key!r} at step {step} left out: {error}")
        data = {key: value for key, value in data.items() if value is not _SAVED}
        logged = self._checked(data, step)
        if logged:
            self._emit(self.t, "log", {"step": step, "data": logged})
            self.logged_values += len(logged)
            self.step = step
        for path in saved:
            self._save(path, path, step)

    def _on_summary(self, summary: Any) -> None:
        # W&B writes the summary again beside nearly every history row: its JSON is read once,
        # at the end.
        for item in summary.update:
            self.summary[_path(item)] = item.value_json
        for item in summary.remove:
            path = _path(item)
            for key in [key for key in self.summary if key[: len(path)] == path]:
                del self.summary[key]

    def _on_files(self, record: Any) -> None:
        for item in record.files:
            if item.type == 0 and not item.path.startswith("media/"):  # run.save()
                self._save(item.path, item.path, self._next_step())

    def _on_alert(self, alert: Any) -> None:
        level = alert.level.upper() if alert.level.upper() in ("INFO", "WARN", "ERROR") else "INFO"
        self._emit(self.t, "alert", {"title": alert.title, "text": alert.text, "level": level})

    def _on_output_raw(self, output: Any) -> None:
        t = output.timestamp.seconds + output.timestamp.nanos / 1e9 or self.t
        stream = "stdout" if output.output_type == 1 else "stderr"
        if self.console is not None and self.console[1] != stream:
            self._flush_console(whole_lines_only=False)
        if self.console is None:
            self.console = [t, stream, ""]
        self.console[2] += output.line

    _on_output = _on_output_raw

    def _on_stats(self, stats: Any) -> None:
        data = {}
        for item in stats.item:
            found = _system_name(item.key)
            value = _json(item.value_json)
            if found is not None and type(value) in (int, float):
                data[found[0]] = value * found[1]
        if data:
            t = stats.timestamp.seconds + stats.timestamp.nanos / 1e9
            self._emit(t or self.t, "system", {"data": data})

    def _on_artifact(self, artifact: Any) -> None:
        # W&B logs each table as an artifact too (imported from the run's files); the files of
        # the script's own artifacts are in W&B's staging area, outside the run folder.
        if artifact.type != "run_table":
            self._problem(
                f"artifact {artifact.name!r} ({artifact.type}) not imported: W&B keeps its "
                "files outside the run folder",
                lost=0,
            )

    def _on_preempting(self, preempting: Any) -> None:
        self.finish["preempting"] = True

    def _on_exit(self, exit: Any) -> None:
        self.finish["exit_code"] = exit.exit_code
        self.finish["runtime"] = exit.runtime

    # ---- values -------------------------------------------------------------------------

    def _value(self, value: Any, saved: list[str]) -> Any:
        """``value`` of W&B's history as waddle logs it (rich values as waddle's objects);
        _SAVED for a file kept as a saved file (its path added to ``saved``)."""
        if isinstance(value, list) and any(isinstance(item, dict) for item in value):
            items = [self._value(item, saved) for item in value]
            return [item for item in items if item is not _SAVED] or _SAVED
        if not isinstance(value, dict) or "_type" not in value:
            return value
        return self._rich(value, saved)

    def _rich(self, value: dict[str, Any], saved: list[str]) -> Any:
        kind = value["_type"]
        caption = value.get("caption")
        if kind == "histogram":
            counts = value.get("values")
            packed = value.get("packedBins")
            edges = (
                [packed["min"] + packed["size"] * i for i in range(packed["count"] + 1)]
                if packed
                else value.get("bins")
            )
            return Histogram(np_histogram=(counts, edges))
        if kind == "image-file":
            for mask in (value.get("masks") or {}).values():
                saved.append(mask["path"])
            return Image(self._file(value["path"]), caption, boxes=self._boxes(value))
        if kind == "images/separated":
            captions = value.get("captions") or [None] * len(value["filenames"])
            return [
                Image(self._file(path), caption)
                for path, caption in zip(value["filenames"], captions, strict=True)
            ]
        if kind == "audio-file":
            return Audio(self._file(value["path"]), caption=caption)
        if kind == "video-file":
            return Video(self._file(value["path"]), caption=caption)
        if kind == "html-file":
            return Html(self._file(value["path"]), inject=False)
        if kind == "object3D-file":
            path = self._file(value["path"])
            if path.name.endswith(".pts.json"):
                points = json.loads(path.read_text())
                return Object3D(points["points"] if isinstance(points, dict) else points, caption)
            return Object3D(path, caption)
        if kind == "table-file":
            return self._table(value)
        if "path" in value:
            saved.append(value["path"])
            return _SAVED
        raise ValueError(f"W&B's {kind!r} values have no waddle kind and no file")

    def _table(self, value: dict[str, Any]) -> Table:
        """W&B's table file as a table (a cell of a kind no table holds as its JSON text). A
        W&B offline run keeps media cells only in its artifact, outside the run folder: its
        table file names their kind (``"Image"``), and that is what is imported."""
        content = json.loads(self._file(value["path"]).read_text())
        rows = [
            [json.dumps(cell) if isinstance(cell, (list, dict)) else cell for cell in row]
            for row in content.get("data", [])
        ]
        return Table(columns=content["columns"], data=rows)

    def _chart(self, chart: tuple[str, dict, str], value: dict[str, Any]) -> CustomChart:
        kind, fields, title = chart
        return CustomChart(kind, fields, title, self._table(value))

    def _boxes(self, image: dict[str, Any]) -> Any:
        groups = image.get("boxes")
        if not groups:
            return None
        boxes = {}
        for group, stored in groups.items():
            spec = json.loads(self._file(stored["path"]).read_text())
            labels = spec.get("class_labels") or {}
            boxes[group] = {
                "box_data": spec.get("box_data", []),
                "class_labels": {int(key): name for key, name in labels.items()},
            }
        return boxes

    def _file(self, relative: str) -> Path:
        """A file W&B kept in the run's files folder; a path that climbs out of it is refused.
        (W&B's ``run.save`` keeps a link there to the script's file: that link is followed.)"""
        parts = Path(relative).parts
        if not parts or Path(relative).is_absolute() or ".." in parts:
            raise ValueError(f"W&B's file {relative!r} is not in {self.files_dir}")
        path = self.files_dir / relative
        if not path.is_file():
            raise ValueError(f"W&B's file {relative!r} is missing from {self.files_dir}")
        return path

    def _checked(self, data: dict[str, Any], step: int) -> dict[str, Any]:
        """``data`` checked and stored as ``run.log()`` would (waddle/values.py), value by
        value where the whole fails, leaving out (and reporting) what is not loggable."""
        try:
            checked, _ = values.flatten(data, self.known)
        except (ValueError, TypeError):
            checked = {}
            for key, value in data.items():
                try:
                    checked.update(values.flatten({key: value}, self.known)[0])
                except (ValueError, TypeError) as error:
                    self._problem(f"{key!r} at step {step} left out: {error}")
        stored = {}
        for key, value in checked.items():
            if isinstance(value, values.Deferred):
                try:
                    value = value.materialize(self.out.dir)
                except (ValueError, TypeError, OSError, RuntimeError) as error:
                    self._problem(f"{key!r} at step {step} left out: {error}")
                    continue
            stored[key] = value
        return stored

    def _summary_value(self, key: str, value: Any) -> Any:
        """A value of W&B's summary as a summary event holds it: plain JSON, or a rich value
        stored as a log event would store it."""
        converted = self._value(value, [])
        if converted is _SAVED or not hasattr(converted, "_waddle_snapshot"):
            return converted
        return converted._waddle_snapshot(key).materialize(self.out.dir)

    def _save(self, relative: str, name: str, step: int) -> None:
        try:
            fields = files.snapshot(self._file(relative), name, step)(self.out.dir)
        except (ValueError, TypeError, OSError, RuntimeError) as error:
            self._problem(f"the file {relative!r} left out: {error}")
            return
        self._emit(self.t, "file", fields)

    def _next_step(self) -> int:
        return 0 if self.step is None else self.step + 1

    # ---- the end ------------------------------------------------------------------------

    def _flush_console(self, whole_lines_only: bool) -> None:
        if self.console is None:
            return
        t, stream, text = self.console
        cut = text.rfind("\n") + 1 if whole_lines_only else len(text)
        complete, rest = text[:cut], text[cut:]
        self.console = [t, stream, rest] if rest else None
        if not complete:
            return
        lines = "".join(
            visible_line(line) + "\n" for line in complete.removesuffix("\n").split("\n")
        )
        for piece in console_pieces(lines):
            self.out.add(t, "console", {"stream": stream, "text": piece})

    def _end(self) -> None:
        self._flush_console(whole_lines_only=False)
        explicit = {}
        leaves = {path: _json(text) for path, text in self.summary.items()}
        for key, value in _rows(leaves).items():
            if key.startswith("_") or _same(_get(self.logged, key), value):
                continue
            try:
                explicit[key] = self._summary_value(key, value)
            except (ValueError, TypeError, OSError, KeyError, ImportError) as error:
                self._problem(f"summary {key!r} left out: {error}")
        explicit = {key: value for key, value in explicit.items() if value is not _SAVED}
        if explicit:
            self._emit(self.t, "summary", {"data": explicit})
        exit_code = self.finish.get("exit_code")
        reason = self.finish.get("reason")
        if exit_code is None and reason is None:
            reason = "W&B recorded no exit: the process died, or the run is still going on"
        t = max(self.t, self.started + self.finish.get("runtime", 0))
        fields: dict[str, Any] = {
            "exit_code": 1 if exit_code is None else exit_code,
            "status": "finished" if exit_code == 0 and reason is None else "crashed",
            "last_step": self.step,
            "dropped": {"steps": 0, "values": 0},
            "stalled_seconds": 0.0,
            "lost_events": 0,
            "lost_values": self.finish.get("lost_values", 0),
        }
        if reason:
            fields["reason"] = reason
        if self.finish.get("preempting"):
            fields["preempting"] = True
        self._emit(t, "finish", fields)


_SAVED = object()  # a value kept as a saved file, not logged
_MISSING = object()  # no value was logged (equal to none W&B's summary holds)


def _run_id(wandb_id: str, started: float) -> str:
    """``<start, UTC>-<ms>-wb-<W&B's id>``: the same for the same run on every import, and
    sorted by time among waddle's own ids."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started))
    run_id = f"{stamp}-{int(started % 1 * 1000):03d}-wb-{wandb_id}"
    return names.check("W&B run id", run_id)


def _start_fields(
    project: str, run_id: str, run: Any, environments: list[Any], charts: dict[str, Any]
) -> dict[str, Any]:
    return {
        "project": project,
        "run_id": run_id,
        "name": run.display_name or run.run_id,
        "config": _config_changes(run.config.update, charts),
        "tags": list(run.tags),
        "notes": run.notes or None,
        "group": run.run_group or None,
        "job_type": run.job_type or None,
        "resumed": False,
        "context": _context(environments, run),
    }


def _context(environments: list[Any], run: Any) -> dict[str, Any]:
    """waddle's run context (docs/format.md) from W&B's environment records."""
    context: dict[str, Any] = {}
    for env in environments:
        for name, value in (
            ("host", env.host or run.host),
            ("user", env.username),
            ("os", env.os),
            ("python", env.python),
            ("executable", env.executable),
            ("cwd", env.root),
            ("cpu_count", env.cpu_count),
            ("memory_total", env.memory.total if env.HasField("memory") else 0),
        ):
            if value:
                context[name] = value
        if env.program:
            context["argv"] = [env.program, *env.args]
        if env.git.commit or env.git.remote_url:
            context["git"] = {"commit": env.git.commit, "remote": env.git.remote_url}
        if env.gpu_nvidia:
            context["gpus"] = [
                {"index": index, "name": gpu.name, "memory_total": gpu.memory_total}
                for index, gpu in enumerate(env.gpu_nvidia)
            ]
    return context


def _config_changes(items: Any, charts: dict[str, Any]) -> dict[str, Any]:
    """The config keys set by W&B's config items; W&B's own ``_wandb`` keys are left out, but
    the charts its ``visualize`` entries describe are kept in ``charts``."""
    changes: dict[str, Any] = {}
    for item in items:
        path = list(item.nested_key) or [item.key]
        value = _json(item.value_json)
        if path[0] == "_wandb":
            visualize = value.get("visualize", {}) if len(path) == 1 else None
            if len(path) == 3 and path[1] == "visualize":
                visualize = {path[2]: value}
            for key, spec in (visualize or {}).items():
                chart = _chart_spec(spec)
                if chart is not None:
                    charts[key] = chart
            continue
        target = changes
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return changes


def _chart_spec(spec: Any) -> tuple[str, dict, str] | None:
    """waddle's chart, its fields and title, for the panel W&B's preset chart describes."""
    config = spec.get("panel_config", {}) if isinstance(spec, dict) else {}
    preset = CHARTS.get(config.get("panelDefId"))
    if preset is None:
        return None
    kind, roles = preset
    given = config.get("fieldSettings") or {}
    strings = config.get("stringSettings") or {}
    fields = {role: given.get(name) for role, name in roles.items()}
    if kind == "line_series":
        fields["xname"] = strings.get("xname")
    if kind == "curve":  # W&B draws both curves with one panel: the x column tells which
        kind = {"recall": "pr_curve", "fpr": "roc_curve"}.get(fields["x"], "line")
    return kind, fields, strings.get("title") or ""


def _summary_kinds(metric: Any) -> str | None:
    """waddle's ``summary`` for W&B's metric summary (``best`` by the goal, ``copy`` as last)."""
    chosen = metric.summary
    kinds = [kind for kind in SUMMARY_KINDS if getattr(chosen, kind)]
    if chosen.best:
        kinds.append("max" if metric.goal == 2 else "min")
    if chosen.copy:
        kinds.append("last")
    return ",".join(dict.fromkeys(kinds)) or None


def _system_name(key: str) -> tuple[str, float] | None:
    found = SYSTEM_METRICS.get(key)
    if found is not None:
        return found
    parts = key.split(".")
    if len(parts) == 3 and parts[0] == "gpu" and parts[1].isdigit() and parts[2] in GPU_METRICS:
        name, scale = GPU_METRICS[parts[2]]
        return f"gpu/{parts[1]}/{name}", scale
    return None


def _path(item: Any) -> tuple[str, ...]:
    return tuple(item.nested_key) or (item.key,)


def _rows(leaves: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    """W&B's values by nested key as waddle's keys: a logged dict's keys joined with ``/``
    (as waddle flattens them), and a rich value, which W&B writes as one nested key per field
    (``image``, ``_type``), put back together as one value."""
    rich = {path[:-1] for path in leaves if path[-1] == "_type" and len(path) > 1}
    row: dict[str, Any] = {}
    for path, value in leaves.items():
        cut = next((n for n in range(1, len(path)) if path[:n] in rich), None)
        if cut is None:
            row["/".join(path)] = value
            continue
        target = row.setdefault("/".join(path[:cut]), {})
        for part in path[cut:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return row


def _json(text: str) -> Any:
    """A W&B JSON value; W&B writes NaN, Infinity and -Infinity, which only Python's own
    (slower) reader takes."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _get(logged: Logged, key: str) -> Any:
    try:
        return logged[key]
    except KeyError:
        return _MISSING


def _same(ours: Any, theirs: Any) -> bool:
    """Equal, NaN equal to NaN."""
    if isinstance(ours, float) and isinstance(theirs, float) and math.isnan(ours):
        return math.isnan(theirs)
    return ours == theirs


def say(line: str) -> None:
    print(f"waddle import: {line}", file=sys.stderr)
