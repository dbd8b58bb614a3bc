"""Scalar series as the API serves them: full, smoothed, and downsampled with M4.

This module owns the math of a chart line. It promises:

- a series is one value per step: when a key was logged twice at one step, the event with the
  higher seq wins (docs/format.md);
- smoothing is TensorBoard's debiased exponential moving average, computed on the
  full-resolution series before any downsampling; non-finite points pass through unsmoothed
  and do not disturb their neighbours;
- M4 downsampling splits [start, end] into at most ``points`` equal-width buckets of x and
  keeps, per bucket, the first, last, minimum and maximum point (with their x), the count, and
  the count of NaN points: a spike is never averaged away and a NaN is never dropped.
"""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pyarrow as pa
from waddle.server import wire

X_COLUMNS = {"step": "step", "time": "t"}

_SOURCE = (
    "SELECT step, t, value, seq FROM scalars WHERE run = $run AND key = $key {cond} "
    "UNION ALL SELECT step, t, value, seq FROM scalars_live WHERE run = $run AND key = $key {cond}"
)


def fetch(
    cursor: duckdb.DuckDBPyConnection, run: int, key: str, x: str, start=None, end=None
) -> dict[str, np.ndarray]:
    """The series (step, t, value, seq arrays) ordered by x, optionally within [start, end]."""
    column = X_COLUMNS[x]
    cond, params = _range(column, start, end)
    result = cursor.execute(
        f"SELECT * FROM ({_SOURCE.format(cond=cond)}) ORDER BY step, seq",
        {"run": run, "key": key, **params},
    ).fetchnumpy()
    columns = {name: np.asarray(result[name]) for name in ("step", "t", "value", "seq")}
    steps = columns["step"]
    if len(steps) > 1:
        keep = np.r_[steps[1:] != steps[:-1], True]  # the last seq of each step
        if not keep.all():
            columns = {name: array[keep] for name, array in columns.items()}
    if x == "time" and len(steps) > 1:
        order = np.argsort(columns["t"], kind="stable")
        columns = {name: array[order] for name, array in columns.items()}
    return columns


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


def m4_table(
    cursor: duckdb.DuckDBPyConnection,
    source: str,
    params: dict,
    x: str,
    start: float,
    end: float,
    points: int,
) -> dict[str, list]:
    """M4 buckets of the rows of ``source`` (columns step, t, value) within [start, end]."""
    column = X_COLUMNS[x]
    width = (end - start + 1) if x == "step" else (end - start)
    width = width if width > 0 else 1.0
    sql = f"""
        WITH s AS (
            SELECT {column} AS x, value,
                   least(CAST(floor(({column} - $start) * $points / $width) AS BIGINT),
                         $points - 1) AS bucket
            FROM ({source}) WHERE {column} BETWEEN $start AND $end
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
    """
    result = cursor.execute(
        sql, {**params, "start": start, "end": end, "points": points, "width": width}
    ).fetchnumpy()
    out: dict[str, list] = {}
    for name in ("x_first", "first", "x_last", "last", "x_min", "min", "x_max", "max"):
        array = result[name]
        if np.ma.isMaskedArray(array):
            array = array.astype(np.float64).filled(np.nan)
        out[name] = (
            wire.floats(np.asarray(array, dtype=np.float64))
            if name
            in (
                "first",
                "last",
                "min",
                "max",
            )
            else np.asarray(array).tolist()
        )
    out["count"] = np.asarray(result["count"]).tolist()
    out["nan"] = np.asarray(result["nan"]).tolist()
    return out


def m4_stored(cursor, run: int, key: str, x: str, start, end, points: int) -> dict[str, list]:
    """M4 straight from the index (no smoothing): no full fetch."""
    column = X_COLUMNS[x]
    if start is None or end is None:
        low, high = cursor.execute(
            f"SELECT min({column}), max({column}) FROM ({_SOURCE.format(cond='')})",
            {"run": run, "key": key},
        ).fetchone()
        start = low if start is None else start
        end = high if end is None else end
    if start is None:
        return _empty_buckets()
    return m4_table(
        cursor, _SOURCE.format(cond=""), {"run": run, "key": key}, x, start, end, points
    )


def m4_arrays(cursor, columns: dict[str, np.ndarray], x: str, start, end, points: int):
    """M4 of a series already in memory (after smoothing)."""
    xs = columns[X_COLUMNS[x]]
    if len(xs) == 0:
        return _empty_buckets()
    start = xs.min().item() if start is None else start
    end = xs.max().item() if end is None else end
    cursor.register(
        "_series",
        pa.table({"step": columns["step"], "t": columns["t"], "value": columns["value"]}),
    )
    try:
        return m4_table(cursor, "SELECT * FROM _series", {}, x, start, end, points)
    finally:
        cursor.unregister("_series")


def _empty_buckets() -> dict[str, list]:
    names = ("x_first", "first", "x_last", "last", "x_min", "min", "x_max", "max", "count", "nan")
    return {name: [] for name in names}


def _range(column: str, start, end) -> tuple[str, dict]:
    cond, params = "", {}
    if start is not None:
        cond += f" AND {column} >= $start"
        params["start"] = start
    if end is not None:
        cond += f" AND {column} <= $end"
        params["end"] = end
    return cond, params
