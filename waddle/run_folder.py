"""A run folder read back from disk, without a server: who the run is and where it stands.

``inspect_run()`` reads the first event of the first segment and the tail of the last one, so
it costs the same for a run of ten steps and one of ten million. It promises a status that
matches what a user would say: "finished" or "crashed" from the finish event, "crashed" when
the last event is older than the heartbeat timeout and there is no finish, else "running".

A run a central server received through a relay also holds ``origin.json`` (docs/format.md,
"Relayed runs"): the machine it came from and its project and id there. :func:`write_origin`
writes it once, whole (temporary file, fsync, rename); :func:`read_origin` reads it back.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from waddle import names, segment

TAIL_BYTES = 1 << 16  # grown eightfold while the newest step is not in it
ORIGIN_FILE = "origin.json"


@dataclass
class RunRecord:
    project: str
    run_id: str
    path: Path
    name: str | None = None
    status: str = "running"
    started: float | None = None
    last_activity: float | None = None
    next_seq: int = 0
    last_step: int | None = None
    last_values: dict[str, Any] = field(default_factory=dict)
    finish: dict[str, Any] | None = None
    start: dict[str, Any] | None = None
    # The run's other ranks, by rank, when it was read with them (waddle/ranks.py)
    ranks: dict[int, RunRecord] = field(default_factory=dict)


def inspect_run(
    run_dir: Path, heartbeat_timeout: float, now: float | None = None
) -> RunRecord | None:
    """The record of one run folder, or None if it holds no event yet."""
    segments = segment.list_segments(run_dir)
    if not segments:
        return None
    record = RunRecord(project=run_dir.parent.name, run_id=run_dir.name, path=run_dir)
    start = segment.read_head_event(segments[0])
    if start is not None and start["type"] == "run_start":
        record.start = start
        record.name = start.get("name")
        record.started = start["t"]
    _read_tail(record, segments)
    if record.finish is not None:
        record.status = record.finish.get("status", "finished")
    elif record.last_activity is not None:
        age = (time.time() if now is None else now) - record.last_activity
        record.status = "crashed" if age > heartbeat_timeout else "running"
    return record


def _read_tail(record: RunRecord, segments: list[Path]) -> None:
    """Fill seq, activity, the last step and its values, and the finish from the newest events."""
    found_log = False
    for path in reversed(segments):
        window = TAIL_BYTES
        while True:
            size = path.stat().st_size
            events = segment.read_tail_events(path, window)
            if events and record.last_activity is None:
                # The newest events decide the lifecycle: a finish is the last event of a run,
                # unless a resume (a later run_start) reopened it.
                last = events[-1]
                record.next_seq = last["seq"] + 1
                record.last_activity = last["t"]
                for event in events:
                    if event["type"] == "finish":
                        record.finish = event
                    elif event["type"] == "run_start":
                        record.finish = None
            for event in reversed(events):
                # A keyed event's step is its keys' own, not the run's (docs/format.md).
                if event["type"] == "log" and not event.get("keyed"):
                    if not found_log:
                        record.last_step = event["step"]
                        found_log = True
                    if event["step"] != record.last_step:
                        break
                    for key, value in event["data"].items():
                        record.last_values.setdefault(key, value)
            # A finished run without a step of its own (only keyed events: TensorBoard's)
            # says so in its finish event: no need to read back through all of it.
            no_step = record.finish is not None and record.finish.get("last_step", 0) is None
            if found_log or no_step or window >= size:
                break
            window *= 8
        if found_log or (record.finish is not None and record.finish.get("last_step", 0) is None):
            return


@dataclass(frozen=True)
class Origin:
    """Where a relayed run comes from: the machine, and the run's project and id there."""

    origin: str
    project: str
    run_id: str


def write_origin(run_dir: Path, origin: Origin, sync: bool = True) -> bool:
    """Write ``origin.json`` into ``run_dir`` (created if needed) unless it holds ``origin``
    already; True when it wrote. With ``sync=False`` the caller makes it durable (fsync of the
    file, then of the folder)."""
    if read_origin(run_dir) == origin:
        return False
    run_dir.mkdir(parents=True, exist_ok=True)
    temp = run_dir / f".{ORIGIN_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(temp, "wb") as file:
        file.write(orjson.dumps(vars(origin)))
        if sync:
            file.flush()
            os.fsync(file.fileno())
    os.replace(temp, run_dir / ORIGIN_FILE)
    return True


def read_origin(run_dir: Path) -> Origin | None:
    """The origin of a relayed run; None for a run logged here (or an unreadable file)."""
    try:
        value = orjson.loads((run_dir / ORIGIN_FILE).read_bytes())
        origin = Origin(value["origin"], value["project"], value["run_id"])
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        return None
    try:
        names.check_origin(origin.origin)
    except ValueError:
        return None
    return origin if names.is_valid(origin.project) and names.is_valid(origin.run_id) else None
