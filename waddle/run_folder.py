"""A run folder read back from disk, without a server: who the run is and where it stands.

``inspect_run()`` reads the first event of the first segment and the tail of the last one, so
it costs the same for a run of ten steps and one of ten million. It promises a status that
matches what a user would say: "finished" or "crashed" from the finish event, "crashed" when
the last event is older than the heartbeat timeout and there is no finish, else "running".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waddle import segment

TAIL_BYTES = 1 << 20


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
