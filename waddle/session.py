"""The process-wide entry points: ``init()`` and the module-level functions acting on the current run.

``init()`` turns its arguments into an open :class:`Run`: a new run folder, or an existing one
continued (``resume``), with its sequence numbers and step carried on. It does only cheap work
(slow context such as git runs in the writer thread). The current run is the last one started
and not yet finished; ``waddle.log()`` and friends act on it, as ``wandb.log()`` does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from waddle import ids, names
from waddle.context import quick_context
from waddle.notice import say
from waddle.run import DisabledRun, Run
from waddle.run_folder import inspect_run
from waddle.settings import Settings
from waddle.values import check_text

RESUME_CHOICES = (None, False, True, "allow", "must", "never", "auto")

_current: Run | DisabledRun | None = None


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
    reinit: Any = None,
) -> Run | DisabledRun:
    """Start a run (or continue one) and make it the current run.

    ``project`` defaults to ``$WADDLE_PROJECT`` or "default"; ``dir`` to ``$WADDLE_DIR`` or
    ``./logs``; ``mode`` to ``$WADDLE_MODE`` or "offline". ``mode="disabled"`` returns a run
    whose every call does nothing. ``id`` with ``resume="allow"`` continues that run if it
    exists, ``resume="must"`` requires it to. ``reinit`` is accepted for W&B compatibility:
    several runs may always be open at once.
    """
    global _current
    if settings is None:
        settings = Settings()
    elif isinstance(settings, dict):
        settings = Settings(**settings)
    settings = Settings(
        **{
            **settings.__dict__,
            "dir": str(dir) if dir is not None else settings.dir,
            "mode": mode if mode is not None else settings.mode,
        }
    ).resolve()
    project = project or os.environ.get("WADDLE_PROJECT") or "default"
    names.check("project", project)
    if settings.mode == "disabled":
        _current = DisabledRun(project, name, config)
        return _current
    if settings.mode not in ("offline", "online"):
        raise ValueError(f"mode {settings.mode!r} is not one of offline, disabled")
    if settings.mode == "online":
        raise ValueError(
            "mode 'online' (relay to a central server) is not available yet; use 'offline'"
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
        previous = inspect_run(project_dir / id, settings.heartbeat_timeout)
        if previous is not None and resume in (None, False, "never"):
            raise ValueError(
                f"run {id!r} already exists in {project_dir}; pass resume='allow' to continue it "
                "or choose another id"
            )
        if previous is None and resume == "must":
            raise ValueError(f"resume='must' but there is no run {id!r} in {project_dir}")
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
        settings=settings,
        start_fields=start_fields,
        config=config,
        tags=start_fields["tags"],
        first_seq=previous.next_seq if previous is not None else 0,
        first_step=first_step,
        resumed=previous is not None,
    )
    _current = run
    say(f"{'resumed' if run.resumed else 'started'} run {name!r} ({run_id}) in {run.dir}")
    return run


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


def define_metric(
    name: str,
    step_metric: str | None = None,
    summary: str | None = None,
    hidden: bool | None = None,
) -> None:
    _require_run("define_metric").define_metric(
        name, step_metric=step_metric, summary=summary, hidden=hidden
    )


def alert(title: str, text: str, level: str = "INFO", wait_duration: Any = None) -> None:
    _require_run("alert").alert(title, text, level=level)


def save(path: str | os.PathLike, name: str | None = None, link: bool = False) -> None:
    """``current_run().save(...)``: copy a file into the run folder."""
    _require_run("save").save(path, name=name, link=link)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finish the current run; does nothing when there is none, as in W&B."""
    run = current_run()
    if run is not None:
        run.finish(exit_code=exit_code)
