"""Segment files: the append-only JSONL files that hold a run's events.

A run folder holds ``events-<first seq, 12 digits>.jsonl`` files; the writer starts a new one
when the current one passes its size limit and never rewrites a byte of a closed line. This
module names and lists segments and reads them back, and promises that a reader:

- only ever returns complete lines (ending in ``\\n``): a torn last line, which the writer may
  still be completing or which a killed writer left behind, is left for a later read;
- reports a malformed line through ``on_reject(path, offset, reason)`` and goes on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from waddle import event as event_format

SEGMENT_PREFIX = "events-"
SEGMENT_SUFFIX = ".jsonl"

# A line longer than this is rejected rather than held in memory: no event the client writes
# comes near it (media and tables live in side files).
MAX_LINE_BYTES = 16 * 1024 * 1024

RejectHandler = Callable[[Path, int, str], None]


def segment_name(first_seq: int) -> str:
    return f"{SEGMENT_PREFIX}{first_seq:012d}{SEGMENT_SUFFIX}"


def first_seq(path: Path) -> int | None:
    """The seq of a segment's first event, from its name (:func:`segment_name`'s inverse);
    None for a name that is no segment's."""
    name = path.name
    digits = name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)]
    if name.startswith(SEGMENT_PREFIX) and name.endswith(SEGMENT_SUFFIX) and digits.isdigit():
        return int(digits)
    return None


def is_segment(entry: os.DirEntry) -> bool:
    """True if a folder's entry is a segment: named like one and a regular file (a folder or
    a symlink named like a segment is not one: a folder cannot be read as lines, and a link
    could lead out of the log folder)."""
    name = entry.name
    return (
        name.startswith(SEGMENT_PREFIX)
        and name.endswith(SEGMENT_SUFFIX)
        and entry.is_file(follow_symlinks=False)
    )


def list_segments(run_dir: Path) -> list[Path]:
    """The run's segment files (:func:`is_segment`) in order of their first seq."""
    try:
        entries = list(os.scandir(run_dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [run_dir / name for name in sorted(entry.name for entry in entries if is_segment(entry))]


def read_complete_lines(
    path: Path, offset: int, max_bytes: int = 1 << 24, on_reject: RejectHandler | None = None
) -> tuple[bytes, int]:
    """Read about ``max_bytes`` from ``offset`` and cut the result after its last newline.

    Returns the block of complete lines and the offset just past it. A block with no newline
    yet returns ``(b"", offset)``: the line is still being written. A line longer than the
    window is read on to its end, up to MAX_LINE_BYTES; a line longer than that is reported to
    ``on_reject`` once it is complete and skipped, so a runaway line can neither stall a reader
    nor fill its memory.
    """
    max_bytes = min(max_bytes, MAX_LINE_BYTES)
    with open(path, "rb") as file:
        file.seek(offset)
        data = file.read(max_bytes)
        end = data.rfind(b"\n")
        if end >= 0:
            return data[: end + 1], offset + end + 1
        if len(data) < max_bytes:
            return b"", offset
        # One line longer than the window (or a window cut short by a reader's budget): read
        # on to its end, in reads that double, so that finding the end of a short line costs
        # about the line, not MAX_LINE_BYTES.
        while len(data) < MAX_LINE_BYTES:
            more = file.read(min(max(len(data), 1 << 16), MAX_LINE_BYTES - len(data)))
            if not more:
                return b"", offset
            cut = more.find(b"\n")
            if cut >= 0:
                end = len(data) + cut
                return data + more[: cut + 1], offset + end + 1
            data += more
        # A full window without a newline: find where this overlong line ends, if it does.
        position = offset + len(data)
        while chunk := file.read(1 << 20):
            cut = chunk.find(b"\n")
            if cut >= 0:
                if on_reject:
                    on_reject(path, offset, f"line longer than {MAX_LINE_BYTES} bytes")
                return b"", position + cut + 1
            position += len(chunk)
    return b"", offset


def iter_lines(block: bytes, base_offset: int) -> Iterator[tuple[int, bytes]]:
    """Split a block of complete lines into (offset, line) pairs, newline removed."""
    start = 0
    while start < len(block):
        end = block.index(b"\n", start)
        yield base_offset + start, block[start:end]
        start = end + 1


def read_events(run_dir: Path, on_reject: RejectHandler | None = None) -> Iterator[dict[str, Any]]:
    """Every valid event of a run, in file order; malformed lines go to ``on_reject``."""
    for path in list_segments(run_dir):
        offset = 0
        while True:
            block, next_offset = read_complete_lines(path, offset, on_reject=on_reject)
            if next_offset == offset:
                break
            yield from _decode_block(path, block, offset, on_reject)
            offset = next_offset


def _decode_block(
    path: Path, block: bytes, base_offset: int, on_reject: RejectHandler | None
) -> Iterator[dict[str, Any]]:
    for line_offset, line in iter_lines(block, base_offset):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_BYTES:
            if on_reject:
                on_reject(path, line_offset, f"line longer than {MAX_LINE_BYTES} bytes")
            continue
        try:
            yield event_format.decode(line)
        except event_format.MalformedEvent as error:
            if on_reject:
                on_reject(path, line_offset, str(error))


def read_tail_events(
    path: Path, max_bytes: int, on_reject: RejectHandler | None = None
) -> list[dict[str, Any]]:
    """The valid complete events among the last ``max_bytes`` of a segment.

    The first line of the window is dropped unless the window starts the file, since it is
    usually a partial line.
    """
    size = path.stat().st_size
    start = max(0, size - max_bytes)
    with open(path, "rb") as file:
        file.seek(start)
        data = file.read(size - start)
    if start > 0:
        cut = data.find(b"\n")
        if cut < 0:
            return []
        start, data = start + cut + 1, data[cut + 1 :]
    end = data.rfind(b"\n")
    if end < 0:
        return []
    return list(_decode_block(path, data[: end + 1], start, on_reject))


def read_head_event(path: Path) -> dict[str, Any] | None:
    """The first event of a segment, or None when it has no complete valid first line."""
    with open(path, "rb") as file:
        line = file.readline(MAX_LINE_BYTES)
    if not line.endswith(b"\n"):
        return None
    try:
        return event_format.decode(line)
    except event_format.MalformedEvent:
        return None
