"""A run's history read back from its log files: one row per step, as W&B's ``history()``.

A row merges every ``log`` event of one step (``commit=False`` calls, an explicit step logged
again): a key logged twice at a step keeps the value of the higher seq (docs/format.md). Each
row has ``_step``, ``_timestamp`` (the wall time of the step's last event) and ``_runtime``
(seconds since the run started), as W&B's rows do.

Two readers give the same rows: :func:`scan`, in Python over every event (any value), and
:func:`scalar_columns`, for chosen keys' numeric values only, without building an object per
event. It reads each segment's scalar copy, which the client wrote as it closed the segment
(waddle/scalar_copy.py), and parses with DuckDB (when installed) only the segments without a
valid one (a running run's newest, a resumed run's, an imported run's). It can keep what it
parsed as a columnar copy per segment and key (Parquet, in a cache folder the caller names;
the Api uses ``<log dir>/.waddle/history/<project>/<run>/``, docs/format.md), so reading a
key again costs a Parquet read, not a JSON parse, while its segments stay as they are.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from waddle import scalar_copy, segment


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


def scalar_columns(
    run_dir: Path, keys: list[str], started: float | None, cache: Path | None = None
) -> dict[str, Any] | None:
    """Numpy columns ``_step``, ``_timestamp``, ``_runtime``, one per key (NaN where a step
    lacks the key) and ``has:<key>`` (whether the step holds it: a logged NaN is NaN too), one
    entry per step that has any of ``keys``; None when a key holds anything but numbers (the
    Python reader keeps such values), or when a segment without a scalar copy is to be parsed
    and DuckDB is not installed.

    With ``cache`` (a folder), each key's points of each segment parsed are kept there as
    Parquet, named by the segment's size and mtime, so a segment is parsed once per key while
    it stays as it is: parsing the JSON is most of a cold read (about 0.5 s per 1M events),
    reading the Parquet copy about 20 ms. A cache that cannot be written only leaves the read
    slower.
    """
    segments = segment.list_segments(run_dir)
    if not segments or not keys:
        return None
    import numpy as np

    parts: list[list[dict[str, Any]]] = [[] for _ in keys]
    parser = _Parser(cache)
    try:
        for path in segments:
            lacking = []
            for index, key in enumerate(keys):
                points = scalar_copy.read(path, key)
                if points is None:
                    lacking.append(index)
                elif points.get("odd"):
                    return None
                else:
                    parts[index].append(points)
            if lacking:
                found = parser.points(path, [keys[index] for index in lacking])
                if found is None:
                    return None
                for index, points in zip(lacking, found, strict=True):
                    parts[index].append(points)
    finally:
        parser.close()

    per_key = []
    for chunks in parts:
        points = {name: np.concatenate([c[name] for c in chunks]) for name in ("step", "t", "v")}
        per_key.append(_one_per_step(points))
    return joined(keys, per_key, started)


def joined(keys: list[str], per_key: list[dict[str, Any]], started: float | None) -> dict[str, Any]:
    """The columns :func:`scalar_columns` promises, from each key's points reduced to one per
    step in step order (numpy ``step``, ``t`` and ``v``, in the order of ``keys``)."""
    import numpy as np

    steps = (
        per_key[0]["step"]
        if len(keys) == 1
        else np.unique(np.concatenate([points["step"] for points in per_key]))
    )
    out: dict[str, Any] = {"_step": steps, "_timestamp": np.full(len(steps), -np.inf)}
    for key, points in zip(keys, per_key, strict=True):
        # Where the key's steps sit among all steps (each once); one key has them all.
        where = np.searchsorted(steps, points["step"]) if len(keys) > 1 else slice(None)
        out[key] = np.full(len(steps), np.nan)
        out[key][where] = points["v"]
        out[HAS + key] = np.zeros(len(steps), dtype=bool)
        out[HAS + key][where] = True
        out["_timestamp"][where] = np.maximum(out["_timestamp"][where], points["t"])
    out["_runtime"] = out["_timestamp"] - (started if started is not None else math.nan)
    return out


def _one_per_step(points: dict[str, Any]) -> dict[str, Any]:
    """A key's points (in seq order) reduced to one per step, in step order: the value of the
    highest seq (docs/format.md), at the latest time any of the step's points was logged."""
    import numpy as np

    step = points["step"]
    if len(step) > 1 and not (np.all(step[1:] > step[:-1])):
        order = np.argsort(step, kind="stable")  # keyed steps, a step logged again
        points = {name: column[order] for name, column in points.items()}
        step = points["step"]
        starts = np.flatnonzero(np.r_[True, step[1:] != step[:-1]])
        ends = np.r_[starts[1:], len(step)] - 1
        return {
            "step": step[starts],
            "v": points["v"][ends],
            "t": np.maximum.reduceat(points["t"], starts),
        }
    return {"step": step, "v": points["v"], "t": points["t"]}


class _Parser:
    """DuckDB's reading of segments without a scalar copy (connected at the first), with the
    Parquet cache of what it parsed."""

    def __init__(self, cache: Path | None) -> None:
        self._cache, self._con = cache, None

    def points(self, path: Path, keys: list[str]) -> list[dict[str, Any]] | None:
        """Per key, its points in the segment ``path`` (numpy ``step``, ``t``, ``v``, in seq
        order); None when DuckDB is not installed or cannot read a line (the Python reader
        reports and skips it), or a value of a key is no number."""
        try:
            import duckdb
        except ImportError:
            return None
        if self._con is None:
            self._con = duckdb.connect()
        try:
            found = _segment_points(self._con, path, keys, self._cache)
        except duckdb.Error:
            return None
        import numpy as np

        out = []
        for index in range(len(keys)):
            points = found[index]
            if points["odd"].any():
                return None
            seq = points["seq"]
            if len(seq) > 1 and not np.all(seq[1:] > seq[:-1]):
                order = np.argsort(seq, kind="stable")
                points = {name: column[order] for name, column in points.items()}
            out.append({name: points[name] for name in ("step", "t", "v")})
        return out

    def close(self) -> None:
        if self._con is not None:
            self._con.close()


def _segment_points(
    con: Any, path: Path, keys: list[str], cache: Path | None
) -> dict[int, dict[str, Any]]:
    """Per index of ``keys``, the key's points in the segment ``path``, as numpy columns
    ``seq``, ``t``, ``step``, ``v`` and ``odd`` (a value that is no number: a string, a bool, a
    null that ``nf`` does not name): from the cache where it has them, else parsed from the
    segment (once for all the keys it lacks), then cached."""
    stat = path.stat()
    stamp = f"{path.stem}.{stat.st_size}-{stat.st_mtime_ns}"
    found: dict[int, dict[str, Any]] = {}
    lacking: list[int] = []
    for index, key in enumerate(keys):
        copy = _cached(cache, stamp, key)
        if copy is not None and copy.is_file():
            read = con.execute("SELECT * FROM read_parquet($copy)", {"copy": str(copy)})
            found[index] = read.fetchnumpy()
        else:
            lacking.append(index)
    if not lacking:
        return found
    params: dict[str, Any] = {"file": str(path)}
    picked, present = [], []
    for index in lacking:
        member = '$."' + keys[index].replace("\\", "\\\\").replace('"', '\\"') + '"'
        params[f"k{index}"], params[f"n{index}"] = member, "$.data." + member[2:]
        value = f"json_extract(data, $k{index})"
        mark = f"json_extract_string(nf, $n{index})"
        picked.append(
            f"json_type({value}) AS type{index}, CASE {mark} WHEN 'nan' THEN 'NaN'::DOUBLE"
            f" WHEN 'inf' THEN 'Infinity'::DOUBLE WHEN '-inf' THEN '-Infinity'::DOUBLE"
            f" ELSE TRY_CAST({value} AS DOUBLE) END AS v{index},"
            f" {mark} IS NOT NULL AS marked{index}"
        )
        present.append(f"type{index} IS NOT NULL")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE fresh AS SELECT * FROM (SELECT seq, t, step,"
        f" {', '.join(picked)} FROM read_json($file, format='newline_delimited',"
        " columns={seq: 'BIGINT', t: 'DOUBLE', type: 'VARCHAR', step: 'BIGINT', data: 'JSON',"
        f" nf: 'JSON'}}) WHERE type = 'log') WHERE {' OR '.join(present)}",
        params,
    )
    for index in lacking:
        rows = (
            f"SELECT seq, t, step, v{index} AS v, type{index} NOT IN ('BIGINT', 'UBIGINT',"
            f" 'DOUBLE') AND NOT marked{index} AS odd FROM fresh WHERE type{index} IS NOT NULL"
        )
        found[index] = con.execute(rows).fetchnumpy()
        _keep(con, rows, _cached(cache, stamp, keys[index]))
    return found


def _cached(cache: Path | None, stamp: str, key: str) -> Path | None:
    """Where the cache keeps ``key``'s points of the segment of ``stamp`` (None: no cache)."""
    if cache is None:
        return None
    return cache / f"{stamp}.{hashlib.sha256(key.encode()).hexdigest()[:24]}.parquet"


def _keep(con: Any, rows: str, copy: Path | None) -> None:
    """Write ``rows`` to the cache file ``copy`` (whole or not at all), and remove the copies
    of the same segment and key at older sizes."""
    if copy is None:
        return
    import duckdb

    segment_name, _, rest = copy.name.partition(".")
    key_part = rest.split(".", 1)[1]
    partial = copy.with_name(f"{copy.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        copy.parent.mkdir(parents=True, exist_ok=True)
        con.execute(f"COPY ({rows}) TO '{_quoted(partial)}' (FORMAT parquet)")
        os.replace(partial, copy)
        for older in copy.parent.glob(f"{segment_name}.*.{key_part}"):
            if older != copy:
                older.unlink(missing_ok=True)
    except (OSError, duckdb.Error):
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
