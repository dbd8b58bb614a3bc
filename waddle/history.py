"""A run's history read back from its log files: one row per step, as W&B's ``history()``.

A row merges every ``log`` event of one step (``commit=False`` calls, an explicit step logged
again): a key logged twice at a step keeps the value of the higher seq (docs/format.md). Each
row has ``_step``, ``_timestamp`` (the wall time of the step's last event) and ``_runtime``
(seconds since the run started), as W&B's rows do.

Two readers give the same rows: :func:`scan`, in Python over every event (any value), and
:func:`scalar_columns`, which asks DuckDB (when installed) for chosen keys' numeric values
only, without building an object per event (1M points in well under a second).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from waddle import segment


def scan(run_dir: Path, started: float | None) -> Iterator[dict[str, Any]]:
    """Every step's row, in step order (steps only grow within a run)."""
    row: dict[str, Any] | None = None
    for event in segment.read_events(run_dir):
        if event["type"] != "log":
            continue
        step = event["step"]
        if row is not None and row["_step"] != step:
            yield row
            row = None
        if row is None:
            row = {"_step": step}
        row.update(event["data"])
        row["_timestamp"] = event["t"]
        row["_runtime"] = event["t"] - started if started is not None else None
    if row is not None:
        yield row


HAS = "has:"  # scalar_columns' column telling, per step, whether it holds a key


def scalar_columns(run_dir: Path, keys: list[str], started: float | None) -> dict[str, Any] | None:
    """Numpy columns ``_step``, ``_timestamp``, ``_runtime``, one per key (NaN where a step
    lacks the key) and ``has:<key>`` (whether the step holds it: a logged NaN is NaN too), one
    entry per step that has any of ``keys``; None when DuckDB is not installed or a key holds
    anything but numbers (the Python reader keeps such values)."""
    try:
        import duckdb
    except ImportError:
        return None
    files = [str(path) for path in segment.list_segments(run_dir)]
    if not files or not keys:
        return None
    params: dict[str, Any] = {"files": files}
    picked, merged, present, odd = [], [], [], []
    for index, key in enumerate(keys):
        path = '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
        params[f"k{index}"], params[f"n{index}"] = path, "$.data." + path[2:]
        value = f"json_extract(data, $k{index})"
        mark = f"json_extract_string(nf, $n{index})"
        picked.append(
            f"json_type({value}) AS type{index}, CASE {mark} WHEN 'nan' THEN 'NaN'::DOUBLE"
            f" WHEN 'inf' THEN 'Infinity'::DOUBLE WHEN '-inf' THEN '-Infinity'::DOUBLE"
            f" ELSE TRY_CAST({value} AS DOUBLE) END AS v{index},"
            f" {mark} IS NOT NULL AS marked{index}"
        )
        merged.append(
            f"arg_max(v{index}, seq) FILTER (WHERE type{index} IS NOT NULL) AS v{index},"
            f" count(type{index}) > 0 AS h{index}"
        )
        present.append(f"type{index} IS NOT NULL")
        odd.append(f"(type{index} NOT IN ('BIGINT', 'UBIGINT', 'DOUBLE') AND NOT marked{index})")
    events = (
        f"SELECT seq, t, step, {', '.join(picked)} FROM read_json($files,"
        " format='newline_delimited', columns={seq: 'BIGINT', t: 'DOUBLE', type: 'VARCHAR',"
        " step: 'BIGINT', data: 'JSON', nf: 'JSON'}) WHERE type = 'log'"
    )
    con = duckdb.connect()
    try:
        con.execute(
            f"CREATE TEMP TABLE picked AS SELECT * FROM ({events}) WHERE {' OR '.join(present)}",
            params,
        )
        ((strange,),) = con.execute(
            f"SELECT count(*) FROM picked WHERE {' OR '.join(odd)}"
        ).fetchall()
        if strange:
            return None
        result = con.execute(
            f"SELECT step AS _step, max(t) AS _timestamp, {', '.join(merged)} FROM picked"
            " GROUP BY step ORDER BY step"
        ).fetchnumpy()
    except duckdb.Error:
        return None  # a line DuckDB cannot read: the Python reader reports and skips it
    finally:
        con.close()
    import numpy as np

    out: dict[str, Any] = {
        "_step": np.asarray(result["_step"]),
        "_timestamp": np.asarray(result["_timestamp"]),
    }
    out["_runtime"] = out["_timestamp"] - (started if started is not None else math.nan)
    for index, key in enumerate(keys):
        out[HAS + key] = np.asarray(result[f"h{index}"], dtype=bool)
        column = result[f"v{index}"]
        out[key] = (
            np.ma.filled(column.astype(np.float64), math.nan)
            if np.ma.isMaskedArray(column)
            else np.asarray(column, dtype=np.float64)
        )
    return out
