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
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from waddle import event as event_format
from waddle import segment, sequence

CACHE_NAME = "ls-cache.json"
CACHE_VERSION = 1
# Reading more than this many bytes not counted before is said on stderr first.
SAY_ABOVE = 64 * 1024 * 1024
READ_BYTES = 16 * 1024 * 1024
# A cache entry: the segment's size and mtime when counted, the seq expected when it began
# (its counts hold only from that seq), how far it was counted, the seq expected there, and
# the segment's own counts up to there.
FIELDS = ("size", "mtime_ns", "enter", "offset", "next_seq", "rejected", "gaps")


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

    def count(self, run_dirs: list[Path], everything: bool) -> dict[Path, tuple[int, int]]:
        """(rejected, gaps) of each run folder, reading only what the cache does not hold.

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
            for path in paths:
                self._segment(path, cursor)
            counts[run_dir] = (cursor.rejected, cursor.gaps)
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

    def _segment(self, path: Path, cursor: Cursor) -> None:
        """Count ``path`` into ``cursor``, from where the cache left it if it can."""
        key, entry, info = self._entry(path)
        if info is None:
            return
        if entry is None or entry.get("enter") != cursor.next_seq:
            entry = {"enter": cursor.next_seq, "offset": 0, "next_seq": cursor.next_seq}
            entry |= {"rejected": 0, "gaps": 0}
        start = Cursor(entry["next_seq"], entry["gaps"], entry["rejected"], cursor.missing)
        offset = entry["offset"]
        if offset < info.st_size:
            offset = _count_lines(path, offset, start)
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


def _count_lines(path: Path, offset: int, cursor: Cursor) -> int:
    """Count the complete lines of ``path`` from ``offset`` into ``cursor``; returns the offset
    just past the last complete line."""

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
                seq = event_format.decode(line)["seq"]
            except event_format.MalformedEvent:
                cursor.rejected += 1
                continue
            if sequence.take(cursor, seq) in ("duplicate", "out_of_order"):
                cursor.rejected += 1
        offset = next_offset
