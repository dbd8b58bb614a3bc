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

import duckdb
import numpy as np
import orjson
import pyarrow as pa
from waddle.server import wire

STEP, TIME = "step", "time"

_RAW = (
    "SELECT step, t, value, seq FROM scalars WHERE run = $run AND key = ${p} UNION ALL "
    "SELECT step, t, value, seq FROM scalars_live WHERE run = $run AND key = ${p}"
)
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


def _rows(cursor, run: int, key: str, param: str) -> str:
    """SQL of one key's points, one per step; the dedup runs only when a step was logged twice."""
    raw = _RAW.format(p=param)
    ((twice,),) = cursor.execute(
        f"SELECT (SELECT count(*) FROM ({raw})) <> coalesce((SELECT any_value(count) FROM metrics"
        f" WHERE run = $run AND key = ${param} AND kind = 'scalar'), 0)",
        {"run": run, param: key},
    ).fetchall()
    return f"SELECT * FROM ({raw}){_NEWEST}" if twice else raw


def source(cursor, run: int, key: str, x: str) -> tuple[str, dict]:
    """SQL (columns step, t, value, seq, x) of ``key``'s series on axis ``x``, and its params."""
    rows = _rows(cursor, run, key, "key")
    params = {"run": run, "key": key}
    if x == STEP:
        return f"SELECT *, step AS x FROM ({rows})", params
    if x == TIME:
        return f"SELECT *, t AS x FROM ({rows})", params
    params["xkey"] = x
    return (
        f"SELECT s.step, s.t, s.value, s.seq, m.value AS x FROM ({rows}) s"
        f" JOIN ({_rows(cursor, run, x, 'xkey')}) m ON s.step = m.step WHERE isfinite(m.value)",
        params,
    )


def fetch(cursor, sql: str, params: dict, start=None, end=None) -> pa.Table:
    """The rows of ``source()`` within [start, end] of x, in step order."""
    cond, bounds = _range(start, end)
    return cursor.sql(
        f"SELECT step, t, value, x FROM ({sql}) WHERE true {cond} ORDER BY step",
        params={**params, **bounds},
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


def m4(cursor, sql: str, params: dict, x: str, start, end, points: int) -> dict[str, list]:
    """M4 buckets of the rows of ``sql`` (columns x and value) within [start, end] of x."""
    if start is None or end is None:
        ((low, high),) = cursor.execute(f"SELECT min(x), max(x) FROM ({sql})", params).fetchall()
        start = low if start is None else start
        end = high if end is None else end
    if start is None or end is None:
        return {name: [] for name in _BUCKET_COLUMNS}
    width = (end - start + 1) if x == STEP else (end - start)
    width = width if width > 0 else 1.0
    result = cursor.execute(
        f"""
        WITH s AS (
            SELECT x, value,
                   least(CAST(floor((x - $start) * $points / $width) AS BIGINT), $points - 1)
                       AS bucket
            FROM ({sql}) WHERE x BETWEEN $start AND $end
        )
        SELECT bucket, count(*) AS count,
               min(x) AS x_first, arg_min(value, x) AS first,
               max(x) AS x_last, arg_max(value, x) AS last,
               arg_min(x, value) FILTER (WHERE NOT isnan(value)) AS x_min,
               min(value) FILTER (WHERE NOT isnan(value)) AS min,
               arg_max(x, value) FILTER (WHERE NOT isnan(value)) AS x_max,
               max(value) FILTER (WHERE NOT isnan(value)) AS max,
               count(*) FILTER (WHERE isnan(value)) AS nan
        FROM s GROUP BY bucket ORDER BY bucket
        """,
        {**params, "start": start, "end": end, "points": points, "width": width},
    ).fetchnumpy()
    out: dict[str, list] = {}
    for name in _BUCKET_COLUMNS:
        array = result[name]
        if np.ma.isMaskedArray(array):
            array = array.astype(np.float64).filled(np.nan)
        out[name] = (
            wire.floats(np.asarray(array, dtype=np.float64))
            if name in ("first", "last", "min", "max")
            else np.asarray(array).tolist()
        )
    return out


def m4_table(cursor, table: pa.Table, x: str, start, end, points: int) -> dict[str, list]:
    """M4 of a series already in memory (after smoothing)."""
    cursor.register("_series", table)
    try:
        return m4(cursor, "SELECT * FROM _series", {}, x, start, end, points)
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
