"""Tailing a run's segment files from the byte offsets a reader holds.

The tailer owns the reading side of the log: which bytes of which segment are new. Its two
readers share it: the indexer (server/indexer.py, its lines to server/ingester.py's Batch) and
the relay (server/relay.py, its lines to the central server). It promises:

- only complete lines are taken; a torn last line is left where it is until its newline
  arrives, and the stored offset always sits just past the last line taken, so the offsets and
  the rows committed with them describe exactly the same bytes;
- a malformed line, a line over the size limit or binary garbage becomes a reject with the
  segment's path (relative to the log folder), byte offset and reason; reading goes on;
- a segment shorter than its stored offset (truncated or replaced on disk) is rejected once
  with a reason, then followed from its new end: nothing already indexed is read twice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

from waddle import segment


class Reading(Protocol):
    """One run as a reader follows it: who it is, and how far each segment has been read."""

    project: str
    run_id: str
    offsets: dict[str, int]  # segment file name -> bytes read


class Sink(Protocol):
    """Where the lines read go (server/ingester.py's Batch; the relay's outgoing batch).

    It only needs what the tailer calls: the state is the one given to :func:`read_run`."""

    bytes: int  # bytes of segments read into it

    def reject(self, state: Any, file: str, offset: int, kind: str, reason: str, t: float) -> None:
        """Note a line (or a segment) the reader cannot take, of a kind of REJECT_KINDS."""

    def set_offset(self, state: Any, segment: str, offset: int) -> None:
        """Everything of ``segment`` before ``offset`` is read (and set in ``state.offsets``)."""

    def add_line(self, state: Any, line: bytes) -> bool:
        """Take the line by a fast path if it can (True), else leave it to :meth:`take`."""

    def take(self, state: Any, line: bytes, file: str, offset: int) -> None:
        """Take one complete line (no newline), read at ``offset`` of ``file``."""


# Bytes read from one run before the indexer turns to the next one, and the size of one read.
READ_BUDGET = 16 * 1024 * 1024
READ_BLOCK = 16 * 1024 * 1024


def read_run(
    state: Reading,
    run_dir: Path,
    batch: Sink,
    budget: int = READ_BUDGET,
    block: int = READ_BLOCK,
    stream: str = "",
) -> int:
    """Add the run's new complete lines to ``batch``, reading about ``block`` bytes at a time;
    returns the bytes left to read when the budget ran out first (0 once every complete line
    is taken). ``run_dir`` is the folder of the stream read, ``stream`` its path in the run
    folder (``ranks/1/`` for rank 1's; waddle/ranks.py), for the files rejects name."""
    unread = 0
    for path in segment.list_segments(run_dir):
        name = path.name
        file = f"{state.project}/{state.run_id}/{stream}{name}"
        offset = state.offsets.get(name, 0)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        if size < offset:
            batch.reject(
                state,
                file,
                size,
                "truncated",
                f"segment shrank from {offset} to {size} bytes (truncated or replaced); "
                f"its first {offset} bytes stay indexed as they were read",
                time.time(),
            )
            batch.set_offset(state, name, size)
            continue
        while offset < size and budget > 0:

            def on_reject(_path: Path, at: int, reason: str, file: str = file) -> None:
                batch.reject(state, file, at, "line", reason, time.time())

            try:
                lines, next_offset = segment.read_complete_lines(
                    path, offset, min(block, budget), on_reject=on_reject
                )
            except FileNotFoundError:
                break
            if next_offset == offset:
                break  # a torn last line: wait for its newline
            _take_block(state, batch, file, lines, offset)
            batch.set_offset(state, name, next_offset)
            batch.bytes += next_offset - offset
            budget -= next_offset - offset
            offset = next_offset
        if budget <= 0:
            unread += size - offset
    return unread


def _take_block(state: Reading, batch: Sink, file: str, block: bytes, base: int) -> None:
    end = base
    for line in block.split(b"\n")[:-1]:  # the block ends with a newline
        offset, end = end, end + len(line) + 1
        if batch.add_line(state, line) or not line.strip():
            continue
        batch.take(state, line, file, offset)
