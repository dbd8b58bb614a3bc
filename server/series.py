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
from waddle.server.blocks import BLOCK_STEPS, COLUMNS

from waddle.event import STEP_MAX

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
    [first, last] x when the index knows it without a scan (on the step axis).

    ``blocks`` is set on the step axis for a series with one point per step: the names of its
    run and key params, and whether ``scalars_live`` holds points of it. M4 may then read
    ``scalar_blocks`` instead of the points.
    """

    sql: str
    params: dict
    x: str
    span: tuple[float, float] | None = None
    blocks: tuple[str, str, bool] | None = None


def scalar_keys(cursor, run: int, names: list[str]) -> dict[str, tuple]:
    """Per scalar key of ``run`` among ``names``: (a step logged twice, first step, last step,
    points in ``scalars_live``), from ``metrics`` in one query."""
    return scalar_keys_of(cursor, {run: names})[run]


def scalar_keys_of(cursor, wanted: dict[int, list[str]]) -> dict[int, dict[str, tuple]]:
    """:func:`scalar_keys` of several runs (run -> the names wanted) in one query."""
    rows = cursor.execute(
        "SELECT run, key, rows <> count, first_step, last_step, EXISTS (SELECT 1 FROM"
        " scalars_live l WHERE l.run = metrics.run AND l.key = metrics.key) FROM metrics"
        " WHERE kind = 'scalar' AND list_contains($runs, run) AND list_contains($names, key)",
        {
            "runs": list(wanted),
            "names": sorted({name for names in wanted.values() for name in names}),
        },
    ).fetchall()
    out: dict[int, dict[str, tuple]] = {run: {} for run in wanted}
    names = {run: set(wanted_names) for run, wanted_names in wanted.items()}
    for run, key, *rest in rows:
        if key in names[run]:
            out[run][key] = tuple(rest)
    return out


class _Rows(NamedTuple):
    sql: str
    span: tuple[float, float] | None
    one_per_step: bool
    live: bool


def _rows(cursor, run: int, key: str, tag: str, known: dict | None) -> _Rows:
    """SQL of one key's points, one per step, and what the index knows of them.

    The dedup runs only when ingest stored more points than steps (a step logged twice), and
    ``scalars_live`` is read only when it holds points of the key (the union costs ~30 %).
    ``known`` is :func:`scalar_keys` of the run when the caller has it.
    """
    row = (known if known is not None else scalar_keys(cursor, run, [key])).get(key)
    names = {"run": f"run{tag}", "key": f"key{tag}"}
    raw = _RAW.format(table="scalars", **names)
    live = row is None or row[3]
    if live:
        raw += " UNION ALL " + _RAW.format(table="scalars_live", **names)
    if row is None or row[0]:
        return _Rows(f"SELECT * FROM ({raw}){_NEWEST}", None, False, live)
    return _Rows(raw, None if row[1] is None else (row[1], row[2]), True, live)


def source(cursor, run: int, key: str, x: str, tag: str = "", known: dict | None = None) -> Source:
    """``key``'s series on axis ``x``; ``tag`` suffixes its param names (to join sources);
    ``known``: :func:`scalar_keys` of the run, with ``key`` and ``x``, when the caller has it."""
    rows = _rows(cursor, run, key, tag, known)
    params = {f"run{tag}": run, f"key{tag}": key}
    if x == STEP:
        blocks = (f"run{tag}", f"key{tag}", rows.live) if rows.one_per_step else None
        return Source(f"SELECT *, step AS x FROM ({rows.sql})", params, x, rows.span, blocks)
    if x == TIME:
        return Source(f"SELECT *, t AS x FROM ({rows.sql})", params, x)
    x_rows = _rows(cursor, run, x, f"x{tag}", known)
    params[f"runx{tag}"], params[f"keyx{tag}"] = run, x
    return Source(
        f"SELECT s.step, s.t, s.value, s.seq, m.value AS x FROM ({rows.sql}) s"
        f" JOIN ({x_rows.sql}) m ON s.step = m.step WHERE isfinite(m.value)",
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

    Buckets are ``points`` equal parts of [start, end], except on the step axis when a bucket
    spans at least ``BLOCK_BUCKETS`` blocks: then the width is rounded up to whole blocks and
    buckets are aligned to multiples of it (so still at most ``points`` of them), and the
    query reads ``scalar_blocks`` plus the few points of partly covered blocks at the ends.
    """
    point_parts, piece_parts, params, slots = [], [], {}, []
    for index, (src, (low, high)) in enumerate(
        zip(sources, _bounds(cursor, sources, start, end), strict=True)
    ):
        if low is None or high is None:
            slots.append(None)
            continue
        slots.append(index)
        params.update(src.params)
        aligned = _aligned(low, high, points) if src.blocks else None
        if aligned is not None:
            piece_parts.extend(_block_pieces(src, index, aligned, params))
            continue
        scale = _scale(low, high)
        width = (high * scale - low * scale) + (scale if src.x == STEP else 0.0)
        params.update({f"start{index}": low, f"end{index}": high, "points": points})
        params.update({f"scale{index}": scale, f"origin{index}": low * scale})
        params[f"width{index}"] = width if width > 0 else 1.0
        point_parts.append(
            f"SELECT {index} AS series, x, value, least(CAST(floor((x * $scale{index}"
            f" - $origin{index}) * $points / $width{index}) AS BIGINT), $points - 1) AS bucket"
            f" FROM ({src.sql}) WHERE x BETWEEN $start{index} AND $end{index}"
        )
    result = None
    if point_parts or piece_parts:
        queries = []
        if point_parts:
            queries.append(_POINTS_M4.format(points=" UNION ALL ".join(point_parts)))
        if piece_parts:
            queries.append(_PIECES_M4.format(pieces=" UNION ALL ".join(piece_parts)))
        result = cursor.execute(
            " UNION ALL ".join(queries) + " ORDER BY series, bucket", params
        ).fetchnumpy()
        bounds = np.searchsorted(np.asarray(result["series"]), np.arange(len(sources) + 1))
    return [
        _buckets(result, bounds[slot], bounds[slot + 1]) if slot is not None else _empty()
        for slot in slots
    ]


# A bucket must span this many blocks before M4 reads blocks: rounding its width up to whole
# blocks then costs at most a fifth of the buckets asked for.
BLOCK_BUCKETS = 4

_POINTS_M4 = """
SELECT series, bucket, count(*) AS count,
       min(x) AS x_first, arg_min(value, x) AS first, max(x) AS x_last, arg_max(value, x) AS last,
       arg_min(x, number) AS x_min, min(number) AS min,
       arg_max(x, number) AS x_max, max(number) AS max, count(*) - count(number) AS nan
FROM (SELECT *, CASE WHEN isnan(value) THEN NULL ELSE value END AS number FROM ({points}))
GROUP BY series, bucket
"""

# Pieces are blocks and single points in M4 form; buckets combine them as M4 combines points.
_PIECES_M4 = """
SELECT series, bucket, CAST(sum(count) AS BIGINT) AS count,
       min(x_first) AS x_first, arg_min(first, x_first) AS first,
       max(x_last) AS x_last, arg_max(last, x_last) AS last,
       arg_min(x_min, min) AS x_min, min(min) AS min,
       arg_max(x_max, max) AS x_max, max(max) AS max, CAST(sum(nan) AS BIGINT) AS nan
FROM ({pieces})
GROUP BY series, bucket
"""

_POINT_PIECE = (
    "SELECT {index} AS series, step // $width{index} AS bucket, 1 AS count, step AS x_first,"
    " value AS first, step AS x_last, value AS last,"
    " CASE WHEN isnan(value) THEN NULL ELSE step END AS x_min,"
    " CASE WHEN isnan(value) THEN NULL ELSE value END AS min,"
    " CASE WHEN isnan(value) THEN NULL ELSE step END AS x_max,"
    " CASE WHEN isnan(value) THEN NULL ELSE value END AS max,"
    " CAST(isnan(value) AS BIGINT) AS nan"
    " FROM {table} WHERE run = ${run} AND key = ${key} AND step BETWEEN $low{index} AND $high{index}"
)


def _bounds(cursor, sources: list[Source], start, end) -> list[tuple]:
    """[start, end] of each source, a missing bound replaced by the source's first or last x;
    the sources whose span the index does not know are measured in one query."""
    spans: list = [src.span for src in sources]
    unknown = [index for index, span in enumerate(spans) if span is None]
    if (start is None or end is None) and unknown:
        params: dict = {}
        parts = []
        for index in unknown:
            params.update(sources[index].params)
            parts.append(f"SELECT {index} AS i, min(x), max(x) FROM ({sources[index].sql})")
        for index, low, high in cursor.execute(" UNION ALL ".join(parts), params).fetchall():
            spans[index] = (low, high)
    return [
        (start, end)
        if span is None
        else (span[0] if start is None else start, span[1] if end is None else end)
        for span in spans
    ]


def _scale(low: float, high: float) -> float:
    """A power of two to scale x by before placing points in buckets over [low, high].

    Any finite bounds are allowed, and ``(x - low) * points`` overflows to infinity when they
    are near the largest floats (start=-1e308, end=1e308). Scaling by a power of two is exact,
    so buckets are the same as unscaled wherever that would not overflow.
    """
    return 1.0 if max(abs(low), abs(high)) < 2.0**1000 else 2.0**-24


def _aligned(low, high, points: int) -> tuple[int, int, int] | None:
    """(first step, last step, bucket width) of block-aligned buckets over [low, high], or
    None when a bucket would span fewer than ``BLOCK_BUCKETS`` blocks. The range is cut to the
    steps the format allows."""
    first, last = max(0, math.ceil(low)), min(math.floor(high), STEP_MAX)
    steps = last - first + 1
    if steps < points * BLOCK_BUCKETS * BLOCK_STEPS:
        return None
    width = -(-steps // points)
    width = -(-width // BLOCK_STEPS) * BLOCK_STEPS
    while last // width - first // width + 1 > points:
        width += BLOCK_STEPS
    return first, last, width


def _block_pieces(src: Source, index: int, aligned: tuple, params: dict) -> list[str]:
    """The pieces of one source: its blocks wholly inside [first, last], and its points in
    the partly covered blocks at the ends and in ``scalars_live``."""
    first, last, width = aligned
    run, key, live = src.blocks
    params.update({f"low{index}": first, f"high{index}": last, f"width{index}": width})
    params[f"block0{index}"] = -(-first // BLOCK_STEPS)
    params[f"block1{index}"] = (last + 1) // BLOCK_STEPS - 1
    pieces = [
        f"SELECT {index} AS series, block * {BLOCK_STEPS} // $width{index} AS bucket, count,"
        f" x_first, first, x_last, last, x_min, min, x_max, max, nan FROM scalar_blocks"
        f" WHERE run = ${run} AND key = ${key} AND block BETWEEN $block0{index} AND $block1{index}",
        _POINT_PIECE.format(index=index, table="scalars", run=run, key=key)
        + f" AND (step < $block0{index} * {BLOCK_STEPS}"
        f" OR step >= ($block1{index} + 1) * {BLOCK_STEPS})",
    ]
    if live:
        pieces.append(_POINT_PIECE.format(index=index, table="scalars_live", run=run, key=key))
    return pieces


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


# The M4 columns of a bucket, as a block has them.
_BUCKET_COLUMNS = tuple(name for name in COLUMNS if name != "block")


def _range(start, end) -> tuple[str, dict]:
    cond, params = "", {}
    if start is not None:
        cond += " AND x >= $start"
        params["start"] = start
    if end is not None:
        cond += " AND x <= $end"
        params["end"] = end
    return cond, params
