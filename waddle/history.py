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
parsed as a columnar copy per segment and key (a NumPy file, in a cache folder the caller
names; the Api uses ``<log dir>/.waddle/history/<project>/<run>/``, docs/format.md), so reading
a key again costs a file read, not a JSON parse, while its segments stay as they are.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import tempfile
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
    NumPy files named by the segment's size and mtime, so a segment is parsed once per key
    while it stays as it is: parsing the JSON is most of a cold read (about 0.35 s per 1M
    events), reading the copy about 10 ms. A cache that cannot be written only leaves the read
    slower.
    """
    segments = segment.list_segments(run_dir)
    if not segments or not keys:
        return None
    import numpy as np

    # Per key, per segment: its points, from the scalar copy, else parsed below.
    parts: list[list[dict[str, Any] | None]] = [[None] * len(segments) for _ in keys]
    lacking: list[tuple[int, Path, list[int]]] = []  # segments to parse, the keys they lack
    for place, path in enumerate(segments):
        missing = []
        for index, key in enumerate(keys):
            points = scalar_copy.read(path, key)
            if points is None:
                missing.append(index)
            elif points.get("odd"):
                return None
            else:
                parts[index][place] = points
        if missing:
            lacking.append((place, path, missing))
    if lacking:
        found = _parse(
            [(path, [keys[index] for index in missing]) for _, path, missing in lacking], cache
        )
        if found is None:
            return None
        for (place, _, missing), points_of in zip(lacking, found, strict=True):
            for index, points in zip(missing, points_of, strict=True):
                parts[index][place] = points

    per_key = []
    for chunks in parts:
        points = {name: np.concatenate([c[name] for c in chunks]) for name in ("step", "t", "v")}
        per_key.append(_one_per_step(points))
    return joined(keys, per_key, started)


def joined(keys: list[str], per_key: list[dict[str, Any]], started: float | None) -> dict[str, Any]:
    """The columns :func:`scalar_columns` promises, from each key's points reduced to one per
    step in step order (numpy ``step``, ``t`` and ``v``, in the order of ``keys``): writable
    arrays of their own, which the caller may hand on without a copy."""
    import numpy as np

    if len(keys) == 1:  # every step holds the key: its points are the columns
        # A read-only buffer's arrays (Arrow's) are copied; the others are taken as they are.
        own = {name: np.require(per_key[0][name], requirements="W") for name in ("step", "t", "v")}
        return {
            "_step": own["step"],
            "_timestamp": own["t"],
            keys[0]: own["v"],
            HAS + keys[0]: np.ones(len(own["step"]), dtype=bool),
            "_runtime": own["t"] - (started if started is not None else math.nan),
        }
    steps = np.unique(np.concatenate([points["step"] for points in per_key]))
    out: dict[str, Any] = {"_step": steps, "_timestamp": np.full(len(steps), -np.inf)}
    for key, points in zip(keys, per_key, strict=True):
        where = np.searchsorted(steps, points["step"])  # the key's among all steps (each once)
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


def _parse(wanted: list[tuple[Path, list[str]]], cache: Path | None) -> list[list[Any]] | None:
    """Per segment of ``wanted``, per key asked of it, the key's points in the segment (numpy
    ``step``, ``t``, ``v``, in seq order): from the cache where it has them, the rest parsed by
    DuckDB in one read of every segment that lacks any, so that its threads share the work
    across segments, and cached; None when DuckDB is not installed, cannot read a line (the
    Python reader reports and skips it), or a value of a key is no number."""
    for caching in list(_caching):  # a read soon after a parse waits for its cache, not parse
        caching.join()
    stamps = [_stamp(path) for path, _ in wanted]
    found: list[list[Any]] = [
        [_load(_cached(cache, stamps[place], key)) for key in keys]
        for place, (_, keys) in enumerate(wanted)
    ]
    if all(None not in points_of for points_of in found):
        return found
    try:
        import duckdb
    except ImportError:
        return None
    con = duckdb.connect()
    try:
        parsed = _parse_lacking(con, wanted, found)
    except duckdb.Error:
        return None
    finally:
        con.close()
    kept = []
    for place, index in parsed:
        points = _in_seq_order(found[place][index])
        if points is None:
            return None
        found[place][index] = points
        copy = _cached(cache, stamps[place], wanted[place][1][index])
        if copy is not None:
            kept.append((points, copy))
    if kept:
        # Written beside the answer's last steps, not before them (a fifth of a parse). Not a
        # daemon: the interpreter finishes it before it exits.
        caching = threading.Thread(target=_keep_all, args=(kept,), name="waddle-history-cache")
        _caching.add(caching)
        caching.start()
    return found


_caching: set[threading.Thread] = set()  # the cache writes under way


def _keep_all(kept: list[tuple[dict[str, Any], Path]]) -> None:
    try:
        for points, copy in kept:
            _keep(points, copy)
    finally:
        _caching.discard(threading.current_thread())


def _in_seq_order(points: dict[str, Any]) -> dict[str, Any] | None:
    """Parsed points as numpy ``step``, ``t``, ``v`` in seq order; None when a value is no
    number."""
    import numpy as np

    if points["odd"].any():
        return None
    seq = points["seq"]
    if len(seq) > 1 and not np.all(seq[1:] > seq[:-1]):
        order = np.argsort(seq, kind="stable")
        points = {name: column[order] for name, column in points.items()}
    return {name: points[name] for name in ("step", "t", "v")}


def _parse_lacking(
    con: Any, wanted: list[tuple[Path, list[str]]], found: list[list[Any]]
) -> list[tuple[int, int]]:
    """Fill the holes of ``found`` (per segment, per key: numpy columns ``seq``, ``t``,
    ``step``, ``v`` and ``odd``, a value that is no number: a string, a bool, a null that ``nf``
    does not name) from DuckDB's reading of the segments that have any (all of them typed,
    then as JSON those that hold a null); the holes filled, as (segment, key) places."""
    lacking = [place for place, points_of in enumerate(found) if None in points_of]
    keys = list(
        dict.fromkeys(
            key
            for place in lacking
            for key, points in zip(wanted[place][1], found[place], strict=True)
            if points is None
        )
    )
    with contextlib.ExitStack() as stack:
        readable = {place: _whole_lines(wanted[place][0], stack) for place in lacking}
        # DuckDB's struct fields are named without regard to case: two such keys read as JSON.
        if len({key.casefold() for key in keys}) < len(keys):
            rows = _read_json(con, list(readable.values()), keys, typed=False)
            return _fill(found, wanted, keys, lacking, rows)
        from concurrent.futures import ThreadPoolExecutor

        # Read typed while a thread looks for nulls (on the other core: DuckDB's read leaves
        # Python free); a segment that holds one is read again as JSON.
        with ThreadPoolExecutor(1, thread_name_prefix="waddle-history-nulls") as checker:
            checking = checker.map(_holds_no_null, readable.values())
            rows = _read_json(con, list(readable.values()), keys, typed=True)
            no_null = list(checking)
        typed = [place for place, ok in zip(lacking, no_null, strict=True) if ok]
        filled = _fill(found, wanted, keys, typed, rows, [lacking.index(p) + 1 for p in typed])
        untyped = [place for place in lacking if place not in typed]
        if untyped:
            rows = _read_json(con, [readable[place] for place in untyped], keys, typed=False)
            filled += _fill(found, wanted, keys, untyped, rows)
    return filled


def _fill(
    found: list[list[Any]],
    wanted: list[tuple[Path, list[str]]],
    keys: list[str],
    places: list[int],
    rows: dict[str, Any],
    positions: list[int] | None = None,
) -> list[tuple[int, int]]:
    """Fill the holes of ``found`` at ``places`` from ``rows`` (:func:`_read_json`'s of
    segments and ``keys``, among which the place's is at ``positions``, 1-based: by default
    the places are those segments, in order); the holes filled."""
    import numpy as np

    filled = []
    positions = positions or list(range(1, len(places) + 1))
    # Each segment's rows are one run of them (_read_json checks).
    bounds = np.searchsorted(rows["part"], np.arange(1, max(positions, default=0) + 2))
    for position, place in zip(positions, places, strict=True):
        mine = slice(bounds[position - 1], bounds[position])
        for index, key in enumerate(wanted[place][1]):
            if found[place][index] is not None:
                continue
            column = keys.index(key)
            names = {"seq": "seq", "t": "t", "step": "step", "v": f"v{column}"}
            has = np.asarray(rows[f"has{column}"])[mine]
            if has.all():  # every row of the segment holds the key: a view of them, no copy
                points = {name: np.asarray(rows[read])[mine] for name, read in names.items()}
            else:
                points = {name: np.asarray(rows[read])[mine][has] for name, read in names.items()}
            points["odd"] = np.asarray(rows[f"odd{column}"])[mine][has]
            found[place][index] = points
            filled.append((place, index))
    return filled


def _whole_lines(path: Path, stack: contextlib.ExitStack) -> Path:
    """``path``, or when its last line is not whole (a writer at work, or one killed in the
    middle of a line: the Python reader stops before it too) a temporary copy of its whole
    lines, which ``stack`` removes."""
    with open(path, "rb") as file:
        end = size = os.fstat(file.fileno()).st_size
        while end > 0:  # back to the last newline, a piece at a time
            start = max(0, end - (1 << 20))
            cut = os.pread(file.fileno(), end - start, start).rfind(b"\n")
            if cut >= 0:
                end = start + cut + 1
                break
            end = start
        if end == size:
            return path
        copy = stack.enter_context(tempfile.NamedTemporaryFile(suffix=".jsonl"))  # noqa: SIM115
        while end > copy.tell():
            copy.write(os.pread(file.fileno(), min(1 << 24, end - copy.tell()), copy.tell()))
        copy.flush()
        return Path(copy.name)


def _holds_no_null(path: Path) -> bool:
    """Whether no event of the segment but a ``run_start`` at its head holds a JSON null:
    then its ``data`` reads as a struct of the asked keys (which reads a null as no value at
    all, the JSON text of every other value as it is) and gives what the JSON form gives, in
    about three quarters of the time. JSON spells null one way only, so the bytes decide (read
    in pieces of 1 MiB: about 1.5 GB/s)."""
    chunk = bytearray(1 << 20)
    try:
        first = segment.read_head_event(path)
        with open(path, "rb", buffering=0) as file:
            read = file.readinto(chunk)
            head = first is not None and first["type"] == "run_start"
            start = chunk.find(b"\n", 0, read) + 1 if head else 0
            tail = b""
            while read:
                across = tail + bytes(chunk[start : min(read, start + 3)])
                if b"null" in across or chunk.find(b"null", start, read) >= 0:
                    return False
                tail, start = bytes(chunk[max(start, read - 3) : read]), 0
                read = file.readinto(chunk)
    except OSError:
        return False
    return True


def _read_json(con: Any, paths: list[Path], keys: list[str], typed: bool) -> dict[str, Any]:
    """DuckDB's reading of ``paths``' log events that hold any of ``keys``: numpy columns
    ``part`` (the 1-based place of the event's segment in ``paths``), ``seq``, ``t``,
    ``step``, and per key (by its index i) ``has<i>``, ``v<i>``, ``odd<i>``. ``typed``: read
    ``data`` as a struct of the keys (right for segments without a null, :func:`_holds_no_null`)."""
    import duckdb
    import numpy as np

    params: dict[str, Any] = {"files": [str(path) for path in paths]}
    fields, extracted, columns = [], [], []
    for index, key in enumerate(keys):
        member = '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
        params[f"n{index}"] = "$.data." + member[2:]
        literal = key.replace("'", "''")
        fields.append('"' + literal.replace('"', '""') + '" JSON')
        if typed:
            value = f"struct_extract(data, '{literal}')"
        else:
            value, params[f"k{index}"] = f"json_extract(data, $k{index})", member
        # Each value is extracted once: its type, its number and its mark all read that.
        extracted.append(f"{value} AS x{index}, json_extract_string(nf, $n{index}) AS m{index}")
        columns.append(
            f"x{index} IS NOT NULL OR m{index} IS NOT NULL AS has{index},"
            f" CASE m{index} WHEN 'nan' THEN 'NaN'::DOUBLE WHEN 'inf' THEN 'Infinity'::DOUBLE"
            f" WHEN '-inf' THEN '-Infinity'::DOUBLE"
            f" ELSE COALESCE(TRY_CAST(x{index} AS DOUBLE), 'NaN'::DOUBLE) END AS v{index},"
            f" m{index} IS NULL AND json_type(x{index}) NOT IN ('BIGINT', 'UBIGINT', 'DOUBLE')"
            f" AS odd{index}"
        )
    data = f"STRUCT({', '.join(fields)})" if typed else "JSON"
    anywhere = " OR ".join(
        f"x{index} IS NOT NULL OR m{index} IS NOT NULL" for index in range(len(keys))
    )
    rows = con.execute(
        f"SELECT part, seq, t, step, {', '.join(columns)} FROM (SELECT"
        " COALESCE(list_position($files, filename), 0)::INTEGER AS part, seq, t, step,"
        f" {', '.join(extracted)}"
        " FROM read_json($files, format='newline_delimited', filename=true, columns={seq:"
        f" 'BIGINT', t: 'DOUBLE', type: 'VARCHAR', step: 'BIGINT', data: '{data}', nf: 'JSON'}})"
        f" WHERE type = 'log') WHERE {anywhere}",
        params,
    ).fetchnumpy()
    part = rows["part"] = np.asarray(rows["part"])
    # A line DuckDB names by another path than it was given, or the files' lines not in the
    # order they were given (each segment's a run of them): never guess whose a line is.
    if len(part) and not (part.all() and np.all(part[1:] >= part[:-1])):
        raise duckdb.InvalidInputException("a segment's lines came back out of place")
    return rows


def _stamp(path: Path) -> str:
    """What names a segment's cached copies: its name, size and mtime (a segment that grows
    or is rewritten gets new ones)."""
    stat = path.stat()
    return f"{path.stem}.{stat.st_size}-{stat.st_mtime_ns}"


# The cache's columns: one NumPy file per segment and key, its numbers in seq order (NaN and
# ±Inf as they are); a key with any value that is no number is not cached.
CACHE_COLUMNS = [("step", "<i8"), ("t", "<f8"), ("v", "<f8")]


def _cached(cache: Path | None, stamp: str, key: str) -> Path | None:
    """Where the cache keeps ``key``'s points of the segment of ``stamp`` (None: no cache)."""
    if cache is None:
        return None
    return cache / f"{stamp}.{hashlib.sha256(key.encode()).hexdigest()[:24]}.npy"


def _load(copy: Path | None) -> dict[str, Any] | None:
    """The points a cache file holds; None when there is none or it is not one of ours."""
    if copy is None:
        return None
    import numpy as np

    try:
        table = np.load(copy, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if table.dtype != np.dtype(CACHE_COLUMNS):
        return None
    return {name: table[name] for name, _ in CACHE_COLUMNS}


def _keep(points: dict[str, Any], copy: Path) -> None:
    """Write a key's points of a segment to its cache file (whole or not at all), and remove
    the copies of the same segment and key at older sizes. A cache that cannot be written only
    leaves later reads slower."""
    import numpy as np

    table = np.empty(len(points["step"]), dtype=CACHE_COLUMNS)
    for name, _ in CACHE_COLUMNS:
        table[name] = points[name]
    segment_name, _, rest = copy.name.partition(".")
    key_part = rest.split(".", 1)[1]
    partial = copy.with_name(f"{copy.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        copy.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as file:
            np.save(file, table, allow_pickle=False)
        os.replace(partial, copy)
        for older in copy.parent.glob(f"{segment_name}.*.{key_part}"):
            if older != copy:
                older.unlink(missing_ok=True)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
