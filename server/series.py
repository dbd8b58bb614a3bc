"""Scalar series as the API serves them: full, smoothed, and downsampled with M4, on any x axis.

This module owns the math of a chart line. It promises:

- a series is one value per step: when a key was logged twice at one step, the event with the
  higher seq wins (docs/format.md), on every path (full, M4, smoothed, exported);
- the x axis is the step, the wall time ``t``, or another scalar key of the run (W&B's
  ``define_metric(step_metric=...)``): a point is paired with that key's value logged at the
  same step, as W&B pairs values of one history row; a point whose step has no finite x value
  is left out;
- smoothing is TensorBoard's debiased exponential moving average, computed in step order on
  the full-resolution series before any downsampling; non-finite points pass through
  unsmoothed and do not disturb their neighbours;
- M4 downsampling splits [start, end] of x into at most ``points`` equal-width buckets and
  keeps, per bucket, the first, last, minimum and maximum point (with their x), the count, and
  the count of NaN points: a spike is never averaged away and a NaN is never dropped.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import duckdb
import numpy as np
import orjson
import pyarrow as pa
from waddle.server import wire

STEP, TIME = "step", "time"

_RAW = "SELECT step, t, value, seq FROM {table} WHERE run = ${run} AND key = ${key}"
_NEWEST = " QUALIFY row_number() OVER (PARTITION BY step ORDER BY seq DESC) = 1"


@contextmanager
def snapshot(cursor: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Every query inside sees the index as of one commit."""
    cursor.execute("BEGIN TRANSACTION")
    try:
        yield cursor
    finally:
        cursor.execute("ROLLBACK")


def default_x(defines: str | None, key: str) -> str | None:
    """The step_metric the run defined for ``key``: by its exact name, else by a glob.

    The newest definition wins, as for summaries.
    """
    exact = glob = None
    for define in orjson.loads(defines) if defines else []:
        step_metric = define.get("step_metric")
        if not step_metric:
            continue
        if define.get("name") == key:
            exact = step_metric
        elif fnmatch.fnmatchcase(key, define.get("name") or ""):
            glob = step_metric
    return exact or glob


class Source(NamedTuple):
    """SQL of one series (columns step, t, value, seq, x), its params, its axis, and its
    [first, last] x when the index knows it without a scan (on the step axis)."""

    sql: str
    params: dict
    x: str
    span: tuple[float, float] | None = None


def scalar_keys(cursor, run: int, names: list[str]) -> dict[str, tuple]:
    """Per scalar key of ``run`` among ``names``: (a step logged twice, first step, last step,
    points in ``scalars_live``), from ``metrics`` in one query."""
    rows = cursor.execute(
        "SELECT key, rows <> count, first_step, last_step, EXISTS (SELECT 1 FROM scalars_live l"
        " WHERE l.run = $run AND l.key = metrics.key) FROM metrics"
        " WHERE run = $run AND kind = 'scalar' AND list_contains($names, key)",
        {"run": run, "names": names},
    ).fetchall()
    return {key: tuple(rest) for key, *rest in rows}


def _rows(cursor, run: int, key: str, tag: str, known: dict | None):
    """SQL of one key's points, one per step, and its first and last step.

    The dedup runs only when ingest stored more points than steps (a step logged twice), and
    ``scalars_live`` is read only when it holds points of the key (the union costs ~30 %).
    ``known`` is :func:`scalar_keys` of the run when the caller has it.
    """
    row = (known if known is not None else scalar_keys(cursor, run, [key])).get(key)
    names = {"run": f"run{tag}", "key": f"key{tag}"}
    raw = _RAW.format(table="scalars", **names)
    if row is None or row[3]:
        raw += " UNION ALL " + _RAW.format(table="scalars_live", **names)
    if row is None or row[0]:
        return f"SELECT * FROM ({raw}){_NEWEST}", None
    return raw, (None if row[1] is None else (row[1], row[2]))


def source(cursor, run: int, key: str, x: str, tag: str = "", known: dict | None = None) -> Source:
    """``key``'s series on axis ``x``; ``tag`` suffixes its param names (to join sources);
    ``known``: :func:`scalar_keys` of the run, with ``key`` and ``x``, when the caller has it."""
    rows, span = _rows(cursor, run, key, tag, known)
    params = {f"run{tag}": run, f"key{tag}": key}
    if x == STEP:
        return Source(f"SELECT *, step AS x FROM ({rows})", params, x, span)
    if x == TIME:
        return Source(f"SELECT *, t AS x FROM ({rows})", params, x)
    x_rows, _ = _rows(cursor, run, x, f"x{tag}", known)
    params[f"runx{tag}"], params[f"keyx{tag}"] = run, x
    return Source(
        f"SELECT s.step, s.t, s.value, s.seq, m.value AS x FROM ({rows}) s"
        f" JOIN ({x_rows}) m ON s.step = m.step WHERE isfinite(m.value)",
        params,
        x,
    )


def fetch(cursor, src: Source, start=None, end=None) -> pa.Table:
    """The rows of a source within [start, end] of x, in step order."""
    cond, bounds = _range(start, end)
    return cursor.sql(
        f"SELECT step, t, value, x FROM ({src.sql}) WHERE true {cond} ORDER BY step",
        params={**src.params, **bounds},
    ).to_arrow_table()


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's debiased EMA: s_n = w s_(n-1) + (1-w) v_n, divided by 1 - w^(n+1).

    Non-finite values are returned as they are and skipped by the average.
    """
    out = values.astype(np.float64, copy=True)
    if weight <= 0 or len(values) == 0:
        return out
    finite = np.isfinite(values)
    series = values[finite]
    smoothed = np.empty_like(series)
    # Closed form per block: w^-k stays far from overflow within a block.
    block = max(1, int(150 * math.log(10) / -math.log(weight)))
    previous = 0.0
    for begin in range(0, len(series), block):
        chunk = series[begin : begin + block]
        k = np.arange(len(chunk), dtype=np.float64)
        scaled = np.cumsum(chunk * weight ** (-k))
        smoothed[begin : begin + len(chunk)] = (
            weight ** (k + 1) * previous + (1 - weight) * weight**k * scaled
        )
        previous = smoothed[begin + len(chunk) - 1]
    n = np.arange(1, len(series) + 1, dtype=np.float64)
    out[finite] = smoothed / (1 - weight**n)
    return out


def m4(cursor, sources: list[Source], start, end, points: int) -> list[dict]:
    """M4 buckets of each source within [start, end] of x, all in one query.

    A missing bound is the source's first or last x. NaN is left out of min and max by
    turning it into NULL once per point, and counted as the points minus the non-NULL ones.
    """
    parts, params, slots = [], {"points": points}, []
    for index, src in enumerate(sources):
        low, high = start, end
        if low is None or high is None:
            span = (
                src.span
                or cursor.execute(f"SELECT min(x), max(x) FROM ({src.sql})", src.params).fetchall()[
                    0
                ]
            )
            low = span[0] if low is None else low
            high = span[1] if high is None else high
        if low is None or high is None:
            slots.append(None)
            continue
        width = (high - low + 1) if src.x == STEP else (high - low)
        params.update(src.params)
        params.update({f"start{index}": low, f"end{index}": high})
        params[f"width{index}"] = width if width > 0 else 1.0
        parts.append(
            f"SELECT {index} AS series, x, value, least(CAST(floor((x - $start{index}) * $points"
            f" / $width{index}) AS BIGINT), $points - 1) AS bucket FROM ({src.sql})"
            f" WHERE x BETWEEN $start{index} AND $end{index}"
        )
        slots.append(index)
    result = None
    if parts:
        result = cursor.execute(
            f"""
            WITH s AS (
                SELECT series, bucket, x, value,
                       CASE WHEN isnan(value) THEN NULL ELSE value END AS number
                FROM ({" UNION ALL ".join(parts)})
            )
            SELECT series, count(*) AS count,
                   min(x) AS x_first, arg_min(value, x) AS first,
                   max(x) AS x_last, arg_max(value, x) AS last,
                   arg_min(x, number) AS x_min, min(number) AS min,
                   arg_max(x, number) AS x_max, max(number) AS max,
                   count(*) - count(number) AS nan
            FROM s GROUP BY series, bucket ORDER BY series, bucket
            """,
            params,
        ).fetchnumpy()
        bounds = np.searchsorted(np.asarray(result["series"]), np.arange(len(sources) + 1))
    return [
        _buckets(result, bounds[slot], bounds[slot + 1]) if slot is not None else _empty()
        for slot in slots
    ]


def _empty() -> dict:
    return {name: [] for name in _BUCKET_COLUMNS}


def _buckets(result: dict, begin: int, stop: int) -> dict:
    """Rows [begin, stop) of an M4 result as JSON-ready columns: numpy arrays, which orjson
    writes directly, except a float column with a non-finite value (a list with its token)."""
    out = {}
    for name in _BUCKET_COLUMNS:
        array = result[name][begin:stop]
        if np.ma.isMaskedArray(array):
            masked = np.ma.getmaskarray(array).any()
            array = array.astype(np.float64).filled(np.nan) if masked else array.data
        array = np.ascontiguousarray(array)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            out[name] = wire.floats(array)
        else:
            out[name] = array
    return out


def m4_table(cursor, table: pa.Table, x: str, start, end, points: int) -> dict:
    """M4 of a series already in memory (after smoothing)."""
    cursor.register("_series", table)
    try:
        return m4(cursor, [Source("SELECT * FROM _series", {}, x)], start, end, points)[0]
    finally:
        cursor.unregister("_series")


_BUCKET_COLUMNS = (
    "x_first",
    "first",
    "x_last",
    "last",
    "x_min",
    "min",
    "x_max",
    "max",
    "count",
    "nan",
)


def _range(start, end) -> tuple[str, dict]:
    cond, params = "", {}
    if start is not None:
        cond += " AND x >= $start"
        params["start"] = start
    if end is not None:
        cond += " AND x <= $end"
        params["end"] = end
    return cond, params
