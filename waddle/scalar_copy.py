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
import math
import os
import zlib
from array import array
from pathlib import Path
from typing import Any

import orjson

COPY_DIR = ".scalars"  # in the run folder (or a rank's stream folder)
COPY_SUFFIX = ".scalars"
FORMAT = "waddle-scalars"
VERSION = 1
EDGE_BYTES = 4096  # hashed at each end of the segment: the copy's claim on its bytes

# What a collector may hold before it gives up the copy of the segment being written (the
# reader then parses that segment): 26 bytes per event and 8 per value, about 40% of a
# segment's size, so a default 64 MiB segment stays below it.
MAX_BYTES = 48 << 20
MAX_KEYSETS = 1024  # distinct orders of keys among a segment's events
_NUMBER = (float, int)


def copy_path(segment: Path) -> Path:
    return segment.parent / COPY_DIR / (segment.name.rsplit(".", 1)[0] + COPY_SUFFIX)


def first_seq(segment: Path) -> int:
    """The seq of a segment's first event, from its name (waddle/segment.py)."""
    return int(segment.name.split("-", 1)[1].split(".", 1)[0])


def remove_partial(run_dir: Path) -> None:
    """Remove the copies a killed writer left half written (never read: not named as one)."""
    for partial in (run_dir / COPY_DIR).glob("*.tmp"):
        with contextlib.suppress(OSError):
            partial.unlink()


class Collector:
    """The log events a writer wrote from seq ``complete_from`` on, in seq order: ``seq``,
    ``t``, ``step`` per event, its values row after row in ``values`` (doubles; a value that
    is no number, bools included, is NaN there and its place in ``odd``) and the order of its
    keys (``keyset``, an index into ``keysets``)."""

    def __init__(self, complete_from: int) -> None:
        self.complete_from = complete_from
        self._clear()

    def _clear(self) -> None:
        self.seq, self.t, self.step = array("q"), array("d"), array("q")
        self.keyset = array("H")
        self.values = array("d")
        self.odd: list[int] = []  # places in values of values that are no number
        self.keysets: list[tuple[str, ...]] = []
        self._ids: dict[tuple[str, ...], int] = {}
        self._last: tuple[str, ...] | None = None
        self._last_id = 0

    def add(self, seq: int, t: float, step: int, data: dict[str, Any], line: bytes | None) -> None:
        """Record a log event; ``line``: its encoded line when ``data`` holds only finite
        floats, ints and bools (the writer's PLAIN values), else None."""
        if seq < self.complete_from:
            return
        keys = tuple(data)
        if keys != self._last:
            found = self._ids.get(keys)
            if found is None:
                if len(self.keysets) >= MAX_KEYSETS:
                    return self.spoil(seq + 1)
                found = self._ids[keys] = len(self.keysets)
                self.keysets.append(keys)
            self._last, self._last_id = keys, found
        self.seq.append(seq)
        self.t.append(t)
        self.step.append(step)
        self.keyset.append(self._last_id)
        if line is not None and b"true" not in line and b"false" not in line:
            self.values.extend(data.values())
            return
        # A bool (or a key naming one), a string, a null, a list or a rich value: kept as NaN,
        # and its key read from the JSON by whoever asks for it.
        for value in data.values():
            if type(value) in _NUMBER:
                self.values.append(value)
            else:
                self.odd.append(len(self.values))
                self.values.append(math.nan)

    def bound(self, next_seq: int) -> None:
        """Give up what was collected if it holds more than MAX_BYTES (the writer asks once
        per batch; ``next_seq``: the seq of its next event)."""
        if len(self.seq) * 26 + len(self.values) * 8 > MAX_BYTES:
            self.spoil(next_seq)

    def spoil(self, next_seq: int) -> None:
        """Forget what was collected: events before ``next_seq`` were lost or handed back,
        so no segment holding them gets a copy."""
        self.complete_from = next_seq
        self._clear()

    def write(self, segment: Path, end_seq: int, size: int) -> None:
        """Take the events before ``end_seq`` (those of ``segment``, just closed at ``size``
        bytes) and write them as the segment's copy when every log event of the segment was
        collected; a copy that cannot be written only leaves reads slower."""
        if self.complete_from > first_seq(segment) or not size:
            self.drop(end_seq)
            return
        taken = self._take(bisect.bisect_left(self.seq, end_seq))
        target = copy_path(segment)
        partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        with contextlib.suppress(OSError):
            with open(segment, "rb") as log:
                head = log.read(min(size, EDGE_BYTES))
                log.seek(size - min(size, EDGE_BYTES))
                tail = log.read(min(size, EDGE_BYTES))
            data = _encode(segment.name, size, head, tail, *taken)
            target.parent.mkdir(exist_ok=True)
            with open(partial, "wb") as file:
                file.write(data)
            os.replace(partial, target)
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)

    def _take(self, count: int) -> tuple[Any, ...]:
        """The first ``count`` events as numpy columns, removed from the collector."""
        import numpy as np

        ids = np.frombuffer(self.keyset, dtype=np.uint16)[:count].copy()
        widths = np.array([len(keys) for keys in self.keysets], dtype=np.int64)
        starts = np.zeros(count + 1, dtype=np.int64)
        np.cumsum(widths[ids], out=starts[1:])
        used = int(starts[-1])
        values = np.frombuffer(self.values, dtype=np.float64)[:used].copy()
        odd = np.zeros(used, dtype=bool)
        odd[[place for place in self.odd if place < used]] = True
        step = np.frombuffer(self.step, dtype=np.int64)[:count].copy()
        t = np.frombuffer(self.t, dtype=np.float64)[:count].copy()
        keysets = list(self.keysets)
        self._forget(count, used)
        return step, t, ids, starts[:-1], values, odd, keysets

    def drop(self, end_seq: int) -> None:
        """Forget the events before ``end_seq`` (a segment closed without a copy)."""
        count = bisect.bisect_left(self.seq, end_seq)
        widths = [len(keys) for keys in self.keysets]
        self._forget(count, sum(widths[number] for number in self.keyset[:count]))

    def _forget(self, count: int, used: int) -> None:
        """Forget the first ``count`` events, whose values fill the first ``used`` places;
        the rest belong to the next segment, their places counted from its start."""
        del self.seq[:count], self.t[:count], self.step[:count], self.keyset[:count]
        del self.values[:used]
        self.odd = [place - used for place in self.odd if place >= used]


def _encode(
    name: str, size: int, head: bytes, tail: bytes, step, t, ids, starts, values, odd, keysets
) -> bytes:
    """The copy's bytes: a JSON header line, then its columns (docs/format.md)."""
    import numpy as np

    per_key: dict[str, list[Any]] = {}  # key: [event indexes, value places]
    for number, keys in enumerate(keysets):
        events = np.flatnonzero(ids == number)
        if len(events):
            for column, key in enumerate(keys):
                per_key.setdefault(key, []).append((events, starts[events] + column))
    columns: list[tuple[str, Any]] = [("step", step), ("t", t)]
    keys_doc: dict[str, Any] = {}
    for key, parts in per_key.items():
        events = np.concatenate([part[0] for part in parts])
        places = np.concatenate([part[1] for part in parts])
        if len(parts) > 1:  # several orders of keys: back to the events' order
            order = np.argsort(events, kind="stable")
            events, places = events[order], places[order]
        if odd[places].any():
            keys_doc[key] = {"odd": True}
            continue
        keys_doc[key] = {"points": len(events)}
        if len(events) < len(step):  # else its events are all of them: 0, 1, 2, …
            columns.append((f"{key}\0index", events.astype(np.uint32)))
        columns.append((f"{key}\0value", values[places]))
    body, arrays = bytearray(), {}
    for column, data in columns:
        raw = np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<"), copy=False)
        raw_bytes = raw.tobytes()
        arrays[column] = [len(body), len(raw_bytes), zlib.crc32(raw_bytes)]
        body += raw_bytes
    header = {
        "format": FORMAT,
        "version": VERSION,
        "segment": name,
        "bytes": size,
        "head": hashlib.sha256(head).hexdigest(),
        "tail": hashlib.sha256(tail).hexdigest(),
        "events": len(step),
        "keys": keys_doc,
        "columns": {
            column: {"at": at, "bytes": length, "crc32": crc}
            for column, (at, length, crc) in arrays.items()
        },
    }
    return orjson.dumps(header) + b"\n" + bytes(body)


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
