"""The tally: each run's rejected lines and gaps, counted from its files, for ``waddle ls``.

Counting needs every line of a run, which does not scale if every ``waddle ls`` reads every
byte again. Segments are append-only (docs/format.md), so the counts of a segment's first
``offset`` bytes never change: they are cached per segment, with its size and mtime, in
``<log dir>/.waddle/ls-cache.json``, and a later ``ls`` reads only what was appended since (a
segment found smaller, or rewritten at the same size, is counted again from its start). The
first ``ls`` of a large folder reads it all once, and says so when that is over 64 MiB.

A line counts as rejected when a reader cannot take it: no event (:func:`waddle.event.decode`:
not JSON, fields missing or out of bounds, over 16 MiB) or a seq below the one expected (a
duplicate, or out of order); a gap is a seq skipped. These are the rules of every reader
(waddle/event.py, waddle/sequence.py), so a run shows the same counts here as in the server,
except for what only the server looks into: a value of a taken event that it could not index
(the server's ``rejected`` counts those too).

Keyed log events (docs/format.md, "Keyed steps") may carry a run's highest step anywhere in its
files, not only at the end that ``inspect_run`` reads: the tally also keeps, per segment, the
highest keyed step and the values there (per key, the one of the highest seq), which combine
across segments the same way.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from waddle import event as event_format
from waddle import segment, sequence

CACHE_NAME = "ls-cache.json"
CACHE_VERSION = 2
# Reading more than this many bytes not counted before is said on stderr first.
SAY_ABOVE = 64 * 1024 * 1024
READ_BYTES = 16 * 1024 * 1024
# A cache entry: the segment's size and mtime when counted, the seq expected when it began
# (its counts hold only from that seq), how far it was counted, the seq expected there, and
# the segment's own counts up to there.
FIELDS = ("size", "mtime_ns", "enter", "offset", "next_seq", "rejected", "gaps")


@dataclass
class Counts:
    """What ``waddle ls`` shows of a run that needs all its lines."""

    rejected: int = 0
    gaps: int = 0
    keyed_step: int | None = None  # the highest step of a keyed log event
    keyed_values: dict[str, Any] = field(default_factory=dict)  # the values at that step


@dataclass
class Cursor:
    """Where counting a run stands after some of its bytes (a waddle.sequence Cursor)."""

    next_seq: int = 0
    gaps: int = 0
    rejected: int = 0
    missing: list[list[int]] = field(default_factory=list)


class Tally:
    """Counts of the runs of one log folder, with the folder's cache."""

    def __init__(self, log_dir: Path) -> None:
        self.path = Path(log_dir) / ".waddle" / CACHE_NAME
        self._cache = self._load()
        self._changed = False

    def count(self, run_dirs: list[Path], everything: bool) -> dict[Path, Counts]:
        """The counts of each run folder, reading only what the cache does not hold.

        The cache forgets segments of these runs that are gone, and with ``everything`` (the
        runs are all the folder holds) those of runs that are gone too.
        """
        plans = {run_dir: segment.list_segments(run_dir) for run_dir in run_dirs}
        seen = {self._key(path) for paths in plans.values() for path in paths}
        runs = {self._key(run_dir) for run_dir in run_dirs}
        for key in list(self._cache["segments"]):
            if key not in seen and (everything or key.rsplit("/", 1)[0] in runs):
                del self._cache["segments"][key]
                self._changed = True
        new = sum(self._new_bytes(path) for paths in plans.values() for path in paths)
        if new > SAY_ABOVE:
            print(
                f"waddle ls: counting rejected lines and gaps in {new / 2**30:.1f} GiB of logs "
                f"read for the first time (kept in {self.path} for the next ls)",
                file=sys.stderr,
            )
        counts = {}
        for run_dir, paths in plans.items():
            cursor = Cursor()
            keyed: dict[str, Any] = {}
            for path in paths:
                _add_keyed(keyed, self._segment(path, cursor))
            step, values = keyed.get("step"), keyed.get("values", {})
            counts[run_dir] = Counts(
                cursor.rejected,
                cursor.gaps,
                step,
                {key: _from_cache(value) for key, (_, value) in sorted(values.items())},
            )
        return counts

    def save(self) -> None:
        """Keep the cache for the next ``ls`` (best effort: a read-only folder is fine)."""
        if not self._changed:
            return
        try:
            self.path.parent.mkdir(exist_ok=True)
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            temporary.write_bytes(orjson.dumps(self._cache))
            os.replace(temporary, self.path)
        except OSError:
            pass

    def _load(self) -> dict:
        try:
            cache = orjson.loads(self.path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            cache = None
        if type(cache) is not dict or cache.get("version") != CACHE_VERSION:
            cache = {"version": CACHE_VERSION, "segments": {}}
        return cache

    def _key(self, path: Path) -> str:
        return path.relative_to(self.path.parent.parent).as_posix()

    def _entry(self, path: Path) -> tuple[str, dict | None, os.stat_result | None]:
        key = self._key(path)
        try:
            info = path.stat()
        except OSError:
            return key, None, None
        entry = self._cache["segments"].get(key)
        if type(entry) is not dict or any(type(entry.get(name)) is not int for name in FIELDS):
            entry = None  # not an entry this waddle wrote
        elif not (entry["mtime_ns"] == info.st_mtime_ns or entry["size"] < info.st_size):
            entry = None  # rewritten in place: count it again
        if entry is not None and entry["offset"] > info.st_size:
            entry = None  # shrank
        return key, entry, info

    def _new_bytes(self, path: Path) -> int:
        _, entry, info = self._entry(path)
        return 0 if info is None else info.st_size - (entry or {}).get("offset", 0)

    def _segment(self, path: Path, cursor: Cursor) -> dict[str, Any]:
        """Count ``path`` into ``cursor``, from where the cache left it if it can; returns the
        segment's keyed summary (``step``, and ``values``: key -> [seq, value])."""
        key, entry, info = self._entry(path)
        if info is None:
            return {}
        if entry is None or entry.get("enter") != cursor.next_seq:
            entry = {"enter": cursor.next_seq, "offset": 0, "next_seq": cursor.next_seq}
            entry |= {"rejected": 0, "gaps": 0, "keyed": {}}
        start = Cursor(entry["next_seq"], entry["gaps"], entry["rejected"], cursor.missing)
        offset = entry["offset"]
        if type(entry.get("keyed")) is not dict:
            entry["keyed"] = {}
        if offset < info.st_size:
            offset = _count_lines(path, offset, start, entry["keyed"])
            entry |= {"offset": offset, "next_seq": start.next_seq}
            entry |= {"rejected": start.rejected, "gaps": start.gaps}
        if entry.get("size") != info.st_size or entry.get("mtime_ns") != info.st_mtime_ns:
            entry |= {"size": info.st_size, "mtime_ns": info.st_mtime_ns}
            self._cache["segments"][key] = entry
            self._changed = True
        # The counts in the entry are the segment's own, from its entering seq on.
        cursor.rejected += entry["rejected"]
        cursor.gaps += entry["gaps"]
        cursor.next_seq = entry["next_seq"]
        return entry["keyed"]


def _add_keyed(into: dict[str, Any], more: dict[str, Any]) -> None:
    """Combine keyed summaries: the higher step wins; at one step, per key the higher seq."""
    step = more.get("step")
    if type(step) is not int or type(more.get("values")) is not dict:
        return
    if into.get("step") is None or step > into["step"]:
        into["step"], into["values"] = step, {}
    if step == into["step"]:
        values = into["values"]
        for key, pair in more["values"].items():
            if key not in values or pair[0] > values[key][0]:
                values[key] = pair


# Non-finite floats in the cache, which is JSON: as these objects.
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _to_cache(value: Any) -> Any:
    if type(value) is float and value - value != 0:
        return {"nf": "nan" if value != value else ("inf" if value > 0 else "-inf")}
    return value


def _from_cache(value: Any) -> Any:
    if type(value) is dict and len(value) == 1 and value.get("nf") in _NONFINITE:
        return _NONFINITE[value["nf"]]
    return value


def _count_lines(path: Path, offset: int, cursor: Cursor, keyed: dict[str, Any]) -> int:
    """Count the complete lines of ``path`` from ``offset`` into ``cursor`` (and its keyed log
    events into ``keyed``); returns the offset just past the last complete line."""

    def on_reject(_path: Path, _offset: int, _reason: str) -> None:
        cursor.rejected += 1  # a line over the size limit

    while True:
        try:
            block, next_offset = segment.read_complete_lines(
                path, offset, READ_BYTES, on_reject=on_reject
            )
        except OSError:
            return offset
        if next_offset == offset:
            return offset
        for _, line in segment.iter_lines(block, offset):
            if not line.strip():
                continue
            try:
                event = event_format.decode(line)
            except event_format.MalformedEvent:
                cursor.rejected += 1
                continue
            seq = event["seq"]
            if sequence.take(cursor, seq) in ("duplicate", "out_of_order"):
                cursor.rejected += 1
            elif event["type"] == "log" and event.get("keyed") is True:
                _note_keyed(keyed, event)
        offset = next_offset


def _note_keyed(keyed: dict[str, Any], event: dict[str, Any]) -> None:
    step, data = event.get("step"), event.get("data")
    if not event_format.in_bounds(event["seq"], event["t"], step) or type(data) is not dict:
        return  # every reader skips it
    values = {key: [event["seq"], _to_cache(value)] for key, value in data.items()}
    _add_keyed(keyed, {"step": step, "values": values})
