"""A segment's scalar copy: the numbers its ``log`` events hold, as columns, so that
``history()`` reads a key without parsing the JSON (docs/format.md, "Scalar copies").

The writer thread collects each log event it writes (:class:`Collector`: a few appends per
event, values as doubles) and writes a segment's copy once the segment is closed: at rotation
and at finish. The copy is a cache of the segment, never a source of truth. :func:`read`
takes it only while the segment holds exactly the bytes it was made from (its size, and
hashes of its first and last bytes) and each column it reads matches its CRC; a missing,
stale, torn or corrupt copy reads as None, and the reader parses the segment instead.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import itertools
import math
import operator
import os
import sys
import zlib
from array import array
from pathlib import Path
from typing import Any

import orjson

from waddle import segment as segment_file  # `segment` names a segment's path here

COPY_DIR = ".scalars"  # in the run folder (or a rank's stream folder)
COPY_SUFFIX = ".scalars"
FORMAT = "waddle-scalars"
VERSION = 1
EDGE_BYTES = 4096  # hashed at each end of the segment: the copy's claim on its bytes

# What a collector may hold before it gives up the copy of the segment being written (the
# reader then parses that segment): 24 bytes per event, 8 per value and about 100 per change
# of keys, about 40% of a segment's size for the usual log() calls, so that a default 64 MiB
# segment stays below it.
MAX_BYTES = 48 << 20
_NUMBER = {float, int}


def copy_path(segment: Path) -> Path:
    return segment.parent / COPY_DIR / (segment.name.rsplit(".", 1)[0] + COPY_SUFFIX)


def remove_partial(run_dir: Path) -> None:
    """Remove the copies a killed writer left half written (never read: not named as one)."""
    for partial in (run_dir / COPY_DIR).glob("*.tmp"):
        with contextlib.suppress(OSError):
            partial.unlink()


class Collector:
    """The log events a writer wrote from seq ``complete_from`` on, in seq order: ``seq``,
    ``t``, ``step`` per event, their values row after row in ``values`` (doubles; a value
    that is no number, bools included, is NaN there and its place in ``odd``), and ``runs``:
    where each run of events logging the same keys in the same order starts (event, keys,
    place in ``values``). Plain arrays, no numpy: a writer need not import it.

    :meth:`add` only appends to lists (what costs the writer most is work per event); the
    writer calls :meth:`settle` after each batch, which moves them into the arrays in a few
    passes over the batch."""

    def __init__(self, complete_from: int) -> None:
        self.complete_from = complete_from
        self._clear()

    def _clear(self) -> None:
        self.seq, self.t, self.step = array("q"), array("d"), array("q")
        self.values = array("d")
        self.odd: list[int] = []
        self.runs: list[tuple[int, tuple[str, ...], int]] = []
        self._last: tuple[str, ...] | None = None
        self._seq: list[int] = []
        self._t: list[float] = []
        self._step: list[int] = []
        self._data: list[dict[str, Any]] = []

    def add(self, seq: int, t: float, step: int, data: dict[str, Any]) -> None:
        """Record a log event (``data``: as written, never changed after)."""
        self._seq.append(seq)
        self._t.append(t)
        self._step.append(step)
        self._data.append(data)

    def settle(self, next_seq: int) -> None:
        """Move what :meth:`add` recorded into the arrays; then give it all up if it holds
        more than MAX_BYTES (``next_seq``: the seq of the writer's next event)."""
        self._settle()
        if len(self.seq) * 24 + len(self.values) * 8 + len(self.runs) * 100 > MAX_BYTES:
            self.spoil(next_seq)

    def _settle(self) -> None:
        data = self._data
        if not data:
            return
        keys = list(map(tuple, data))
        # Where the keys change (or their order): a run starts, its values at a place.
        changes = [0] if keys[0] != self._last else []
        changes += itertools.compress(
            range(1, len(keys)), map(operator.ne, keys, itertools.islice(keys, 1, None))
        )
        event, place, previous, width = len(self.seq), len(self.values), 0, len(keys[0])
        for at in changes:
            place += (at - previous) * width
            self.runs.append((event + at, keys[at], place))
            previous, width = at, len(keys[at])
        self._last = keys[-1]
        values = list(itertools.chain.from_iterable(map(dict.values, data)))
        if not set(map(type, values)) <= _NUMBER:  # a bool, a string, a null, a list…
            base = len(self.values)
            for at, value in enumerate(values):
                if type(value) not in _NUMBER:
                    self.odd.append(base + at)
                    values[at] = math.nan
        self.values.fromlist(values)
        self.seq.fromlist(self._seq)
        self.t.fromlist(self._t)
        self.step.fromlist(self._step)
        self._seq, self._t, self._step, self._data = [], [], [], []

    def spoil(self, next_seq: int) -> None:
        """Forget what was collected: events before ``next_seq`` were lost or handed back,
        so no segment holding them gets a copy."""
        self.complete_from = next_seq
        self._clear()

    def write(self, segment: Path, end_seq: int, size: int) -> None:
        """Take the events before ``end_seq`` (those of ``segment``, just closed at ``size``
        bytes) and write them as the segment's copy when every log event of the segment was
        collected; a copy that cannot be written only leaves reads slower."""
        self._settle()
        count = bisect.bisect_left(self.seq, end_seq)
        if (
            self.complete_from > segment_file.first_seq(segment)
            or not size
            or count >= 1 << 32  # an index column holds event positions as uint32
            or sys.byteorder != "little"  # the columns are little-endian
        ):
            self.drop(end_seq)
            return
        columns, keys = self._columns(count)
        target = copy_path(segment)
        partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        with contextlib.suppress(OSError):
            with open(segment, "rb") as log:
                head = log.read(min(size, EDGE_BYTES))
                log.seek(size - min(size, EDGE_BYTES))
                tail = log.read(min(size, EDGE_BYTES))
            header = {
                "format": FORMAT,
                "version": VERSION,
                "segment": segment.name,
                "bytes": size,
                "head": hashlib.sha256(head).hexdigest(),
                "tail": hashlib.sha256(tail).hexdigest(),
                "events": count,
                "keys": keys,
                "columns": {},
            }
            at = 0
            for name, pieces in columns:  # a column is made twice (its CRC, then written),
                crc = length = 0  # never held whole beside the collector's arrays
                for piece in pieces():
                    crc = zlib.crc32(piece, crc)
                    length += len(piece) * piece.itemsize
                header["columns"][name] = {"at": at, "bytes": length, "crc32": crc}
                at += length
            target.parent.mkdir(exist_ok=True)
            with open(partial, "wb") as file:
                file.write(orjson.dumps(header) + b"\n")
                for _, pieces in columns:
                    for piece in pieces():
                        file.write(piece)
            os.replace(partial, target)
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        self.drop(end_seq)

    def _columns(self, count: int) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
        """The first ``count`` events' columns (docs/format.md), each a name and a function
        giving its pieces (arrays), and the header's ``keys``."""
        values, runs = self.values, self._runs(count)
        parts: dict[str, list[tuple[int, int, int, int]]] = {}  # key: (first, end, at, width)
        for first, end, keys, place in runs:
            for column, key in enumerate(keys):
                parts.setdefault(key, []).append((first, end, place + column, len(keys)))
        odd_keys = set()  # keys with a value that is no number (its place is in odd, rising)
        for first, end, keys, place in runs:
            stop = place + (end - first) * len(keys)
            for spot in self.odd[
                bisect.bisect_left(self.odd, place) : bisect.bisect_left(self.odd, stop)
            ]:
                odd_keys.add(keys[(spot - place) % len(keys)])
        columns: list[tuple[str, Any]] = [
            ("step", lambda: [self.step[:count]]),
            ("t", lambda: [self.t[:count]]),
        ]
        keys_doc: dict[str, Any] = {}
        for key, spans in parts.items():
            if key in odd_keys:
                keys_doc[key] = {"odd": True}
                continue
            points = sum(end - first for first, end, _, _ in spans)
            keys_doc[key] = {"points": points}
            if points < count:  # else its events are all of them: 0, 1, 2, …
                columns.append(
                    (f"{key}\0index", lambda s=spans: (array("I", range(f, e)) for f, e, _, _ in s))
                )
            columns.append(
                (
                    f"{key}\0value",
                    lambda s=spans: (values[a : a + (e - f) * w : w] for f, e, a, w in s),
                )
            )
        return columns, keys_doc

    def _runs(self, count: int) -> list[tuple[int, int, tuple[str, ...], int]]:
        """The runs among the first ``count`` events: first event, end, keys, first place."""
        out = []
        for number, (first, keys, place) in enumerate(self.runs):
            if first >= count:
                break
            end = self.runs[number + 1][0] if number + 1 < len(self.runs) else len(self.seq)
            out.append((first, min(end, count), keys, place))
        return out

    def drop(self, end_seq: int) -> None:
        """Forget the events before ``end_seq``; the rest belong to the next segment, their
        events and places counted from its start."""
        self._settle()
        count = bisect.bisect_left(self.seq, end_seq)
        runs = self._runs(count)
        used = runs[-1][3] + (runs[-1][1] - runs[-1][0]) * len(runs[-1][2]) if runs else 0
        kept = []
        for number, (first, keys, place) in enumerate(self.runs):
            end = self.runs[number + 1][0] if number + 1 < len(self.runs) else len(self.seq)
            if end > count:
                skipped = max(count - first, 0)
                kept.append((first + skipped - count, keys, place + skipped * len(keys) - used))
        self.runs = kept
        del self.seq[:count], self.t[:count], self.step[:count]
        del self.values[:used]
        self.odd = [place - used for place in self.odd if place >= used]
        if not self.runs:
            self._last = None


def read(segment: Path, key: str) -> dict[str, Any] | None:
    """``key``'s points in ``segment`` from its copy: numpy ``step``, ``t``, ``v`` (in seq
    order) and ``odd`` (True when a value of the key is no number: only the JSON has it);
    None when there is no valid copy of the segment as it is now."""
    import numpy as np

    try:
        with open(segment, "rb") as log, open(copy_path(segment), "rb") as file:
            header = orjson.loads(file.readline(1 << 24))
            size = os.fstat(log.fileno()).st_size
            if (
                type(header) is not dict
                or header.get("format") != FORMAT
                or header.get("version") != VERSION
                or header.get("segment") != segment.name
                or header.get("bytes") != size
            ):
                return None
            edge = min(size, EDGE_BYTES)
            if hashlib.sha256(log.read(edge)).hexdigest() != header["head"]:
                return None
            log.seek(size - edge)
            if hashlib.sha256(log.read(edge)).hexdigest() != header["tail"]:
                return None
            found = header["keys"].get(key)
            if found is None:
                return {"step": np.zeros(0, np.int64), "t": np.zeros(0), "v": np.zeros(0)}
            if found.get("odd"):
                return {"odd": True}
            base = file.tell()
            columns = header["columns"]
            ends = [place["at"] + place["bytes"] for place in columns.values()]
            if os.fstat(file.fileno()).st_size != base + max(ends, default=0):
                return None  # torn, or more than it says

            def column(name: str, dtype: str) -> Any:
                place = columns[name]
                file.seek(base + place["at"])
                data = file.read(place["bytes"])
                if len(data) != place["bytes"] or zlib.crc32(data) != place["crc32"]:
                    raise ValueError(f"column {name!r} of {file.name} is torn or corrupt")
                return np.frombuffer(data, dtype=dtype)

            value = column(f"{key}\0value", "<f8")
            step, t = column("step", "<i8"), column("t", "<f8")
            every = found["points"] == len(step) == header["events"]
            index = None if every else column(f"{key}\0index", "<u4")
    except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None
    if len(t) != len(step) or len(value) != found["points"]:
        return None
    if index is None:  # the key is in every event
        return {"step": step, "t": t, "v": value}
    if len(index) != len(value) or (len(index) and int(index.max()) >= len(step)):
        return None
    return {"step": step[index], "t": t[index], "v": value}
