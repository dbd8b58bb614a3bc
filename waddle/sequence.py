"""The seq rule: how a reader takes a run's events, in seq order, each once, gaps counted.

Every event of a run carries the next ``seq`` (docs/format.md): 0, 1, 2, … with no gaps. A
reader keeps a cursor (:class:`Cursor`: the next seq it expects, the seqs it found missing) and
takes each line's seq through :func:`take`, which says what it is:

- ``"next"``: the expected seq; the event is taken;
- ``"gap"``: a seq above the expected one; the event is taken, and the seqs skipped are
  missing (data lost or not yet readable: counted in ``gaps``, the range remembered);
- ``"out_of_order"``: a seq inside a range found missing before; it came too late to be
  taken in order, so it is not taken (and stays counted as missing);
- ``"duplicate"``: any other seq below the expected one, already taken; not taken again.

Both the server's ingester and ``waddle ls`` apply it, so they count the same gaps and rejects.
"""

from __future__ import annotations

from typing import Protocol

# The newest missing ranges a cursor remembers, to tell an out-of-order line from a duplicate;
# a line falling in an older range (a run with more gaps than this) is called a duplicate.
MAX_MISSING = 1000


class Cursor(Protocol):
    next_seq: int  # the seq expected next
    gaps: int  # how many seqs were found missing
    missing: list[list[int]]  # the missing ranges [first, last], oldest first


def take(cursor: Cursor, seq: int) -> str:
    """Take ``seq`` (an int within the format's bounds) into ``cursor``; returns what it is:
    ``"next"``, ``"gap"`` (taken), ``"out_of_order"`` or ``"duplicate"`` (not taken)."""
    expected = cursor.next_seq
    if seq == expected:
        cursor.next_seq = seq + 1
        return "next"
    if seq > expected:
        cursor.gaps += seq - expected
        cursor.missing.append([expected, seq - 1])
        del cursor.missing[:-MAX_MISSING]
        cursor.next_seq = seq + 1
        return "gap"
    return "out_of_order" if missing_range(cursor, seq) else "duplicate"


def missing_range(cursor: Cursor, seq: int) -> list[int] | None:
    """The remembered missing range [first, last] holding ``seq``, or None."""
    for first, last in reversed(cursor.missing):
        if first <= seq <= last:
            return [first, last]
    return None


def describe(first: int, last: int) -> str:
    """A missing range in words: ``seq 4`` or ``seqs 2 to 4``."""
    return f"seq {first}" if first == last else f"seqs {first} to {last}"
