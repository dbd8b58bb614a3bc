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
from waddle.server.schema import METRICS, OFFSETS, RANKS, RUNS

AGGREGATES = ("min", "max", "mean", "last", "first")


def summary_spec(defines: list[dict[str, Any]], key: str) -> list[str] | None:
    """The aggregates the newest of ``defines`` (a run's define_metric records) covering
    ``key`` asked for (an empty list for "none"), or None when none did."""
    spec = None
    for define in defines:
        if define.get("summary") and fnmatch.fnmatchcase(key, define["name"]):
            spec = define["summary"]
    if spec is None:
        return None
    return [part.strip() for part in spec.split(",") if part.strip() in AGGREGATES]


@dataclass
class Stat:
    """Running aggregates of one (run, key, kind).

    For scalars, a value logged again at the newest step (``commit=False``, an explicit step)
    replaces the one there, as the series does (docs/format.md: the higher seq wins). While a
    series' steps never go back, only the newest step can be logged again, and
    ``before_min``/``before_max`` (of the values before it) are all it takes to undo it: the
    cheap path, every run's without keyed steps. Points of an older step (keyed steps,
    docs/format.md) may replace any value, so :meth:`merge` and :meth:`note_step` refuse them
    and the indexer recounts the key from the index instead (:data:`RECOUNT_SQL`).
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

    def note_step(self, step: int) -> bool:
        """A text or rich value at ``step``; False (nothing counted) for a step before the
        newest, which may or may not be a repeat: the caller recounts. A value logged again at
        the newest step counts once."""
        if self.last_step is not None and step < self.last_step:
            return False
        self.rows += 1
        if step == self.last_step:
            return True
        self.count += 1
        if self.first_step is None:
            self.first_step = step
        self.last_step = step
        return True

    def merge(self, steps: np.ndarray, values: np.ndarray) -> bool:
        """Add a batch of points (in seq order); a step logged again keeps its newest value.

        False, and nothing added, when a step goes back (before the newest, or within the
        batch): the caller recounts from the index."""
        if (self.last_step is not None and steps[0] < self.last_step) or (
            len(steps) > 1 and np.any(steps[1:] < steps[:-1])
        ):
            return False
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
        return True

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
    rank: int = 0  # 0: the run folder's own stream; else the stream in ranks/<rank>/
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
        return summary_spec(self.defines, key)

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

    @property
    def table(self):
        """The table of the stream's row: ``runs`` for rank 0, ``ranks`` for another."""
        return RANKS if self.rank else RUNS

    def row(self) -> dict[str, Any]:
        """The stream's row of :attr:`table`: each column of it from the attribute of its name
        (JSON columns encoded), but ``summary``, computed from the stats."""
        row = {}
        for name, kind in self.table.columns:
            value = self.summary() if name == "summary" else getattr(self, name)
            row[name] = (
                wire.dumps(value).decode() if kind == "json" and value is not None else value
            )
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunState:
        """The state a ``runs`` or ``ranks`` row was made from (stats and offsets come from
        their tables)."""
        state = cls(run=row["run"], project=row["project"], run_id=row["run_id"])
        for name, kind in (RANKS if "rank" in row else RUNS).columns:
            value = row[name]
            if name == "summary" or value is None:
                continue  # computed; or None, which the attribute's default stands for
            setattr(state, name, orjson.loads(value) if kind == "json" else value)
        return state


# Each (run, key, kind) of the table ``_recount`` (run, key, kind) counted from its rows, one
# value per step (the highest seq wins), as a Stat: the columns after run, key and kind are
# the Stat's fields. For series whose steps went back, where a running count cannot tell a new
# step from one logged again.
RECOUNT_SQL = """
WITH points AS (
    SELECT run, key, 'scalar' AS kind, step, seq, value FROM scalars
    UNION ALL SELECT run, key, 'scalar', step, seq, value FROM scalars_live
    UNION ALL SELECT run, key, 'text', step, seq, NULL FROM text
    UNION ALL SELECT run, key, type, step, seq, NULL FROM histograms
    UNION ALL SELECT run, key, type, step, seq, NULL FROM tables
    UNION ALL SELECT run, key, type, step, seq, NULL FROM media WHERE step IS NOT NULL
), wanted AS (
    SELECT p.*, count(*) OVER (PARTITION BY p.run, p.key, p.kind) AS stored
    FROM points p SEMI JOIN _recount r ON p.run = r.run AND p.key = r.key AND p.kind = r.kind
    QUALIFY row_number() OVER (PARTITION BY p.run, p.key, p.kind, p.step ORDER BY p.seq DESC) = 1
), marked AS (
    SELECT *, CASE WHEN isnan(value) THEN NULL ELSE value END AS number,
           step = max(step) OVER (PARTITION BY run, key, kind) AS newest
    FROM wanted
)
SELECT run, key, kind, count(*) AS count, min(step) AS first_step, max(step) AS last_step,
       min(number) AS min, max(number) AS max,
       coalesce(sum(value) FILTER (WHERE isfinite(value)), 0) AS sum,
       count(*) FILTER (WHERE isfinite(value)) AS finite,
       arg_min(value, step) AS first, arg_max(value, step) AS last,
       min(number) FILTER (WHERE NOT newest) AS before_min,
       max(number) FILTER (WHERE NOT newest) AS before_max, any_value(stored) AS rows
FROM marked GROUP BY run, key, kind
"""


def recount(con: Any, wanted: set[tuple[RunState, str, str]]) -> None:
    """Count each (run state, key, kind) of ``wanted`` again from the rows ``con`` sees."""
    if not wanted:
        return
    by_run = {state.run: state for state, _, _ in wanted}
    con.register(
        "_recount",
        pa.table(
            {
                "run": pa.array([state.run for state, _, _ in wanted], pa.int32()),
                "key": [key for _, key, _ in wanted],
                "kind": [kind for _, _, kind in wanted],
            }
        ),
    )
    try:
        rows = con.execute(RECOUNT_SQL).fetchall()
    finally:
        con.unregister("_recount")
    fields = METRICS.names[3:]
    for run, key, kind, *numbers in rows:
        by_run[run].stats[(key, kind)] = Stat(**dict(zip(fields, numbers, strict=True)))


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
