"""What the index knows of each run folder, kept up to date event by event.

A :class:`RunState` is one run's identity, metadata, status, counters, segment offsets and, per
(key, kind), a :class:`Stat` of running aggregates. It promises:

- the run's ``runs``, ``metrics`` and ``offsets`` rows are made from it alone
  (:meth:`RunState.row`, :func:`metrics_table`, :func:`offsets_table`), and
  :meth:`RunState.from_row` plus those rows give the same state back after a restart;
- the summary (count, first/last step, min, max, mean, first, last per key) is kept as points
  arrive, so listing runs never scans their points; a step logged again keeps its newest value.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from waddle.server import wire
from waddle.server.schema import METRICS, OFFSETS, RUNS

AGGREGATES = ("min", "max", "mean", "last", "first")


@dataclass
class Stat:
    """Running aggregates of one (run, key, kind).

    For scalars, a value logged again at the newest step (``commit=False``, an explicit step)
    replaces the one there, as the series does (docs/format.md: the higher seq wins): steps
    never go back within a run, so only the newest step can be logged again, and
    ``before_min``/``before_max`` (of the values before it) are all it takes to undo it.
    """

    count: int = 0
    first_step: int | None = None
    last_step: int | None = None
    min: float | None = None
    max: float | None = None
    sum: float = 0.0
    finite: int = 0
    first: float | None = None
    last: float | None = None
    before_min: float | None = None
    before_max: float | None = None
    rows: int = 0  # points stored, steps logged twice included: rows > count means duplicates

    def note_step(self, step: int) -> None:
        """A text or rich value at ``step``. Steps never go back within a run, so a value logged
        again at the newest step is the only repeat, and it counts once."""
        self.rows += 1
        if step == self.last_step:
            return
        self.count += 1
        if self.first_step is None or step < self.first_step:
            self.first_step = step
        if self.last_step is None or step > self.last_step:
            self.last_step = step

    def merge(self, steps: np.ndarray, values: np.ndarray) -> None:
        """Add a batch of points (in seq order); a step logged again keeps its newest value."""
        self.rows += len(steps)
        keep = np.r_[steps[1:] != steps[:-1], True]
        if not keep.all():
            steps, values = steps[keep], values[keep]
        if steps[0] == self.last_step and self.last is not None:
            self.count -= 1
            if math.isfinite(self.last):
                self.finite -= 1
                self.sum -= self.last
            self.min, self.max = self.before_min, self.before_max
        self.count += len(values)
        finite = np.isfinite(values)
        self.finite += int(finite.sum())
        self.sum += float(values[finite].sum())
        ordered = values[:-1][~np.isnan(values[:-1])]
        if len(ordered):
            self.min = _least(self.min, float(ordered.min()))
            self.max = _most(self.max, float(ordered.max()))
        self.before_min, self.before_max = self.min, self.max
        if not math.isnan(values[-1]):
            self.min = _least(self.min, float(values[-1]))
            self.max = _most(self.max, float(values[-1]))
        first = int(np.argmin(steps))
        if self.first_step is None or steps[first] <= self.first_step:
            self.first_step, self.first = int(steps[first]), float(values[first])
        last = len(steps) - 1 - int(np.argmax(steps[::-1]))
        if self.last_step is None or steps[last] >= self.last_step:
            self.last_step, self.last = int(steps[last]), float(values[last])

    def aggregate(self, name: str) -> float | None:
        if name == "mean":
            return self.sum / self.finite if self.finite else None
        return getattr(self, name)


@dataclass(eq=False)
class RunState:
    """What the index knows of one run folder; mirrored by its ``runs`` and ``metrics`` rows."""

    run: int
    project: str
    run_id: str
    origin: str | None = None
    origin_run_id: str | None = None
    name: str | None = None
    group: str | None = None
    job_type: str | None = None
    tags: list[str] = field(default_factory=list)
    notes: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    created: float | None = None
    updated: float | None = None
    heartbeat: float | None = None
    last_step: int | None = None
    next_seq: int = 0
    events: int = 0
    rejected: int = 0
    gaps: int = 0  # seqs found missing (waddle/sequence.py)
    dropped_steps: int = 0
    dropped_values: int = 0
    lost_events: int = 0
    exit_code: int | None = None
    finish: dict[str, Any] | None = None
    defines: list[dict[str, Any]] = field(default_factory=list)
    explicit_summary: dict[str, Any] = field(default_factory=dict)
    missing: list[list[int]] = field(default_factory=list)  # the newest missing seq ranges
    stats: dict[tuple[str, str], Stat] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)

    def stat(self, key: str, kind: str) -> Stat:
        stat = self.stats.get((key, kind))
        if stat is None:
            stat = self.stats[(key, kind)] = Stat()
        return stat

    def summary_spec(self, key: str) -> list[str] | None:
        """The aggregates the newest define_metric covering ``key`` asked for (an empty list
        for "none"), or None when none did."""
        spec = None
        for define in self.defines:
            if define.get("summary") and fnmatch.fnmatchcase(key, define["name"]):
                spec = define["summary"]
        if spec is None:
            return None
        return [part.strip() for part in spec.split(",") if part.strip() in AGGREGATES]

    def summary(self) -> dict[str, Any]:
        """Per scalar key its summary, as the client keeps it (waddle/summary.py) and W&B does:
        the last value, or an object of what define_metric asked for (``{"max": …}``; nothing
        for "none"); then the values set explicitly."""
        out: dict[str, Any] = {}
        for (key, kind), stat in sorted(self.stats.items()):
            if kind != "scalar":
                continue
            spec = self.summary_spec(key)
            if spec is None:
                out[key] = stat.aggregate("last")
            elif spec:
                out[key] = {name: stat.aggregate(name) for name in spec}
        out.update(self.explicit_summary)
        return out

    def row(self) -> dict[str, Any]:
        """The run's ``runs`` row: each column of server/schema.py's RUNS from the attribute of
        its name (JSON columns encoded), but ``summary``, computed from the stats."""
        row = {}
        for name, kind in RUNS.columns:
            value = self.summary() if name == "summary" else getattr(self, name)
            row[name] = (
                wire.dumps(value).decode() if kind == "json" and value is not None else value
            )
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunState:
        """The state a ``runs`` row was made from (stats and offsets come from their tables)."""
        state = cls(run=row["run"], project=row["project"], run_id=row["run_id"])
        for name, kind in RUNS.columns:
            value = row[name]
            if name == "summary" or value is None:
                continue  # computed; or None, which the attribute's default stands for
            setattr(state, name, orjson.loads(value) if kind == "json" else value)
        return state


def metrics_table(runs: list[RunState]) -> pa.Table:
    return METRICS.from_dicts(
        [
            {"run": state.run, "key": key, "kind": kind, **vars(stat)}
            for state in runs
            for (key, kind), stat in state.stats.items()
        ]
    )


def offsets_table(runs: list[RunState]) -> pa.Table:
    return OFFSETS.from_dicts(
        [
            {"run": state.run, "segment": name, "offset": offset}
            for state in runs
            for name, offset in state.offsets.items()
        ]
    )


def _least(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)


def _most(a: float | None, b: float) -> float:
    return b if a is None else max(a, b)
