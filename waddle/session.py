"""The process-wide entry points: ``init()`` and the module-level functions acting on the current run.

``init()`` turns its arguments into an open :class:`Run`: a new run folder, or an existing one
continued (``resume``), with its sequence numbers and step carried on. It does only cheap work
(slow context such as git runs in the writer thread). The current run is the last one started
and not yet finished; ``waddle.log()`` and friends act on it, as ``wandb.log()`` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from waddle import ids, names, process_hooks, ranks
from waddle.config import as_mapping
from waddle.context import quick_context
from waddle.notice import Notices, say
from waddle.run import DisabledRun, Run
from waddle.run_folder import inspect_run
from waddle.settings import Settings, run_argument
from waddle.values import check_text

RESUME_CHOICES = (None, False, True, "allow", "must", "never", "auto")
REINIT_CHOICES = (None, True, False, "default", "return_previous", "finish_previous", "create_new")

_notices = Notices()

_current: Run | DisabledRun | None = None
_forwarders: list[subprocess.Popen] = []  # kept, so none is reported as lost when collected


def current_run() -> Run | DisabledRun | None:
    """The run ``waddle.log()`` writes to: the newest one not yet finished."""
    global _current
    # In a forked child the parent's run stays current, so waddle.log() there is a quiet
    # no-op (as run.log() is) rather than an error in every DataLoader worker.
    if isinstance(_current, Run) and _current._closed and not _current._forked:
        _current = None
    return _current


def init(
    project: str | None = None,
    name: str | None = None,
    config: Any = None,
    dir: str | os.PathLike | None = None,
    id: str | None = None,
    resume: bool | str | None = None,
    tags: Sequence[str] | None = None,
    notes: str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    mode: str | None = None,
    settings: Settings | dict | None = None,
    reinit: bool | str | None = None,
    *,
    entity: str | None = None,
    config_exclude_keys: Sequence[str] | None = None,
    config_include_keys: Sequence[str] | None = None,
    allow_val_change: bool | None = None,
    force: bool | None = None,
    resume_from: str | None = None,
    fork_from: str | None = None,
    save_code: bool | None = None,
    tensorboard: bool | None = None,
    sync_tensorboard: bool | None = None,
    monitor_gym: bool | None = None,
    anonymous: Any = None,
) -> Run | DisabledRun:
    """Start a run (or continue one) and make it the current run, with W&B's signature.

    Each of ``project``, ``name``, ``notes``, ``tags``, ``group``, ``job_type``, ``id`` and
    ``resume`` left as None comes from its ``WADDLE_*`` variable, then its ``WANDB_*`` twin
    (README); ``dir`` and ``mode`` likewise, through ``settings``. ``mode="disabled"`` returns
    a run whose every call does nothing. ``id`` with ``resume="allow"`` continues that run if
    it exists, ``resume="must"`` requires it to. While a run is open, ``reinit`` says what a
    second ``init()`` does, as in W&B: ``"return_previous"`` (the default outside notebooks)
    returns it, ``"finish_previous"`` (or True; the default in notebooks) finishes it first,
    ``"create_new"`` opens another run beside it without making it current.
    ``config_exclude_keys``/``config_include_keys`` filter ``config``; ``save_code`` saves the
    main script (``run.log_code``); ``sync_tensorboard`` (or ``tensorboard``) mirrors what torch's
    and tensorboardX's own writers write into the run (``waddle.tensorboard.patch()``). The other W&B arguments mean nothing without W&B's cloud:
    they are accepted, and those that would change what is recorded warn once.
    """
    global _current
    if reinit not in REINIT_CHOICES:
        raise ValueError(f"reinit {reinit!r} is not one of {', '.join(map(str, REINIT_CHOICES))}")
    if settings is None:
        settings = Settings()
    elif isinstance(settings, dict):
        settings = Settings(**settings)
    elif not isinstance(
        settings, Settings
    ):  # wandb.Settings, or anything with settings as attributes
        settings = Settings(**{k: v for k, v in vars(settings).items() if not k.startswith("__")})
    settings = Settings(
        **{
            **settings.__dict__,
            "dir": str(dir) if dir is not None else settings.dir,
            "mode": mode if mode is not None else settings.mode,
        }
    ).resolve()
    project = run_argument("project", project or None)
    names.check("project", project)
    name, notes, group, job_type = (
        run_argument(field, value)
        for field, value in (
            ("name", name),
            ("notes", notes),
            ("group", group),
            ("job_type", job_type),
        )
    )
    tags = run_argument("tags", tags)
    id = run_argument("id", id)
    resume = run_argument("resume", resume)
    rank = 0
    if settings.join_ranks:
        if id is None:
            id = ranks.torchrun_id()
            if id is not None and resume is None:
                resume = "allow"  # a restarted torchrun job goes on in its run
        if id is not None:  # ranks join a run only through an id they share
            rank = ranks.process_rank(settings.rank)
    if config_include_keys is not None or config_exclude_keys is not None:
        config = _filter_config(config, config_include_keys, config_exclude_keys)
    previous_run = _most_recent_open_run()
    if previous_run is not None:
        policy = _reinit_policy(reinit)
        if policy == "finish_previous":
            for open_run in process_hooks.open_runs():
                open_run.finish()
        elif policy == "return_previous" and resume == "must":
            raise ValueError(
                "init(resume='must') while run "
                f"{previous_run.id} is open: finish it first, or pass reinit='create_new'"
            )
        elif policy == "return_previous":
            _notices.show(
                "reinit",
                f"init() while run {previous_run.id} is open returns that run, as W&B does; "
                "finish it first, or pass reinit='finish_previous' or 'create_new'",
            )
            return previous_run
    _unsupported(resume_from=resume_from, fork_from=fork_from, monitor_gym=monitor_gym)
    if settings.mode == "disabled":
        _current = DisabledRun(project, name, config)
        return _current
    if settings.mode == "online" and settings.server is None:
        _notices.show(
            "online",
            "mode 'online' without a central server: waddle logs to the local folder only; "
            "set WADDLE_SERVER (and WADDLE_TOKEN) to relay runs, or `waddle serve` shows them",
        )
    if resume not in RESUME_CHOICES:
        raise ValueError(f"resume {resume!r} is not one of allow, must, never, or True/False")
    tag_list = _check_tags(tags)
    for what, text in (("name", name), ("notes", notes), ("group", group), ("job_type", job_type)):
        if text is not None:
            check_text(f"init() {what}", str(text))

    project_dir = Path(settings.dir).expanduser().absolute() / project
    previous = None
    if id is not None:
        names.check("run id", id)
        # Each rank continues (or refuses to) its own stream of the run.
        previous = inspect_run(ranks.stream_dir(project_dir / id, rank), settings.heartbeat_timeout)
        what = f"rank {rank} of run {id!r}" if rank else f"run {id!r}"
        if previous is not None and resume in (None, False, "never"):
            raise ValueError(
                f"{what} already exists in {project_dir}; pass resume='allow' to continue it "
                "or choose another id"
            )
        if previous is None and resume == "must":
            raise ValueError(f"resume='must' but there is no {what} in {project_dir}")
        run_id = id
    else:
        if resume == "must":
            raise ValueError(
                "resume='must' needs the id of the run to continue: init(id=..., resume='must')"
            )
        run_id = _new_run_folder(project_dir)

    start_record = previous.start if previous is not None and previous.start else {}
    name = name or start_record.get("name") or ids.random_name()
    if config is None and previous is not None:
        config = start_record.get("config")
    start_fields: dict[str, Any] = {
        "project": project,
        "run_id": run_id,
        "name": name,
        "config": None,  # filled by Run from its Config
        "tags": tag_list or list(start_record.get("tags") or []),
        "notes": notes if notes is not None else start_record.get("notes"),
        "group": group if group is not None else start_record.get("group"),
        "job_type": job_type if job_type is not None else start_record.get("job_type"),
        "resumed": previous is not None,
        "context": quick_context(),
    }
    first_step = 0
    if previous is not None and previous.last_step is not None:
        first_step = previous.last_step + 1
    run = Run(
        project=project,
        run_id=run_id,
        name=name,
        run_dir=project_dir / run_id,
        rank=rank,
        settings=settings,
        start_fields=start_fields,
        config=config,
        tags=start_fields["tags"],
        first_seq=previous.next_seq if previous is not None else 0,
        first_step=first_step,
        resumed=previous is not None,
    )
    if settings.mode == "online" and settings.server is not None:
        _forward(run, settings)
    if previous_run is None or _reinit_policy(reinit) != "create_new":
        _current = run
    if not settings.silent:
        of_rank = f"rank {rank} of " if rank else ""
        say(
            f"{'resumed' if run.resumed else 'started'} {of_rank}run {name!r} ({run_id}) "
            f"in {run.dir}"
        )
    if save_code:
        run.log_code(include_fn=_is_main_script)
    if sync_tensorboard or tensorboard:
        from waddle.tensorboard import patch

        patch()
    return run


def _forward(run: Run, settings: Settings) -> None:
    """Start the process that relays ``run`` to ``settings.server`` (server/forward.py): it
    reads the run folder while the run goes on, and lingers after this process ends until the
    central server holds the whole run. The training loop never waits for it or the network;
    what it could not send, `waddle sync` sends later. The token goes in its environment,
    never on its command line; what it has to say goes to
    ``<log dir>/.waddle/relay/<run id>.log``, not to this process's output, which it would
    hold open after this process ended (a pipe into `tee` would wait for it)."""
    env = dict(os.environ, WADDLE_SERVER=settings.server)
    for name, variable in (("token", "WADDLE_TOKEN"), ("token_file", "WADDLE_TOKEN_FILE")):
        value = getattr(settings, name)
        if value:
            env[variable] = ",".join(value) if isinstance(value, tuple) else str(value)
    if settings.origin:
        env["WADDLE_ORIGIN"] = settings.origin
    command = [
        sys.executable,
        "-m",
        "waddle.server.forward",
        str(run.dir),
        str(os.getpid()),
        str(run.rank),
    ]
    log = run.dir.parent.parent / ".waddle" / "relay" / f"{run.id}.log"
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as output:
            forwarder = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,  # a Ctrl-C of the training script does not stop it
            )
        _forwarders.append(forwarder)
    except OSError as error:
        _notices.show(
            "online-forward",
            f"cannot start relaying run {run.id} ({error}); it is logged locally, and "
            f"`waddle sync {run.dir}` sends it",
        )


def _reinit_policy(reinit: bool | str | None) -> str:
    """What a second init() does while a run is open (W&B's ``reinit``)."""
    if reinit is True:
        return "finish_previous"
    if reinit in (None, "default"):
        return "finish_previous" if _in_notebook() else "return_previous"
    if reinit is False:
        return "return_previous"
    return reinit


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


def _most_recent_open_run() -> Run | None:
    for run in reversed(process_hooks.open_runs()):
        if not run._closed:
            return run
    return None


def _filter_config(config: Any, include: Sequence[str] | None, exclude: Sequence[str] | None):
    """W&B's config_include_keys / config_exclude_keys."""
    items = dict(as_mapping(config))
    if include is not None:
        items = {key: value for key, value in items.items() if key in include}
    if exclude is not None:
        items = {key: value for key, value in items.items() if key not in exclude}
    return items


def _unsupported(**arguments: Any) -> None:
    """Warn once per W&B argument given that waddle cannot honour."""
    for argument, value in arguments.items():
        if value:
            _notices.show(
                f"init-{argument}",
                f"init({argument}=...) is not supported by waddle and is ignored "
                "(README: Coming from W&B)",
            )


def _is_main_script(path: str, root: str) -> bool:
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    return main is not None and os.path.abspath(path) == os.path.abspath(main)


def _new_run_folder(project_dir: Path) -> str:
    """A fresh run id whose folder did not exist (created now, so no other process takes it)."""
    for _ in range(100):
        run_id = ids.new_run_id()
        try:
            (project_dir / run_id).mkdir(parents=True)
            return run_id
        except FileExistsError:
            time.sleep(0.001)
        except OSError:
            return run_id  # unwritable: the writer reports it and keeps retrying
    raise RuntimeError(f"could not create a new run folder in {project_dir}")


def _check_tags(tags: Sequence[str] | None) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        raise TypeError("tags must be a list of strings, not one string")
    checked = []
    for tag in tags:
        if type(tag) is not str or not tag or len(tag) > 256:
            raise ValueError(f"tag {tag!r} is not a non-empty string of at most 256 characters")
        check_text("a tag", tag)
        checked.append(tag)
    return checked


def _require_run(what: str) -> Run | DisabledRun:
    run = current_run()
    if run is None:
        raise RuntimeError(f"Call waddle.init() before waddle.{what}().")
    return run


def log(data: dict[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    """``current_run().log(...)``."""
    _require_run("log").log(data, step=step, commit=commit)


def define_metric(name: str, *args: Any, **kwargs: Any) -> None:
    """``current_run().define_metric(...)``."""
    _require_run("define_metric").define_metric(name, *args, **kwargs)


def alert(title: str, text: str, level: Any = None, wait_duration: Any = None) -> None:
    _require_run("alert").alert(title, text, level=level)


def login(*args: Any, **kwargs: Any) -> bool:
    """W&B's ``login()``: waddle needs no account, so there is nothing to do. Returns True."""
    return True


def setup(settings: Settings | dict | None = None) -> None:
    """W&B's ``setup()``: waddle has no service process to start; nothing to do."""


def watch(models: Any, *args: Any, **kwargs: Any) -> None:
    """``current_run().watch(...)``."""
    _require_run("watch").watch(models, *args, **kwargs)


def unwatch(models: Any = None) -> None:
    """``current_run().unwatch(...)``; nothing to do without a run."""
    run = current_run()
    if run is not None:
        run.unwatch(models)


def mark_preempting() -> None:
    """``current_run().mark_preempting()``."""
    _require_run("mark_preempting").mark_preempting()


def save(*args: Any, **kwargs: Any) -> list[str]:
    """``current_run().save(...)``: copy files into the run folder."""
    return _require_run("save").save(*args, **kwargs)


def log_artifact(*args: Any, **kwargs: Any) -> Any:
    """``current_run().log_artifact(...)``."""
    return _require_run("log_artifact").log_artifact(*args, **kwargs)


def use_artifact(*args: Any, **kwargs: Any) -> Any:
    """``current_run().use_artifact(...)``."""
    return _require_run("use_artifact").use_artifact(*args, **kwargs)


def log_model(*args: Any, **kwargs: Any) -> None:
    """``current_run().log_model(...)``."""
    _require_run("log_model").log_model(*args, **kwargs)


def use_model(name: str) -> Any:
    """``current_run().use_model(name)``."""
    return _require_run("use_model").use_model(name)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finish the current run; does nothing when there is none, as in W&B."""
    run = current_run()
    if run is not None:
        run.finish(exit_code=exit_code)
