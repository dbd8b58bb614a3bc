"""One stream of a run as the relay forwards it (server/relay.py): where it reads, what the
central server acknowledged, and the point to resume from after a restart or a rewind
(its ``saved``/``restore`` form is what server/relay_state.py keeps on disk).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from waddle import ranks, segment


@dataclass
class Position:
    """A point in a run's segments: the bytes read of each, the seq of the last event read
    before it (-1: none) and the seq the reader expects next."""

    offsets: dict[str, int] = field(default_factory=dict)
    last: int = -1
    next_seq: int = 0

    def copy(self) -> Position:
        return replace(self, offsets=dict(self.offsets))


class Track:
    """One stream of a run (rank 0's, or another rank's) as the relay forwards it: where it
    reads (a :class:`tailer.Reading` and a :class:`sequence.Cursor`), what the central server
    acknowledged, and the resume point."""

    def __init__(self, project: str, run_id: str, run_dir: Path, rank: int = 0) -> None:
        self.project, self.run_id, self.rank = project, run_id, rank
        self.run_dir, self.dir = run_dir, ranks.stream_dir(run_dir, rank)
        # Its entry in the state file, and its name in what the relay says.
        self.key = f"{project}/{run_id}" + (f"/{ranks.RANKS_DIR}/{rank}" if rank else "")
        # The read position (tailer.Reading, sequence.Cursor).
        self.offsets: dict[str, int] = {}
        self.last = -1
        self.next_seq = 0
        self.gaps = 0
        self.missing: list[list[int]] = []
        self.skip_to = -1  # events at or below it are read, not sent: the central server has them
        self.acked: int | None = None  # None: not known yet
        self.asked = False  # the central server said where it stands since this relay started
        self.safe = Position()  # where to resume: everything before it is acknowledged
        self.central_id: str | None = None
        self.files_held: set[str] = set()
        self.files_bad: set[str] = set()
        self.skipped = 0
        self.sent = 0  # events sent (and acknowledged) by this process
        self.refused: str | None = None
        self.asking = False  # a question about it is in flight
        self.generation = 0  # rises when it is rewound: lines read before are read again
        self.finished = False  # the last event sent is a finish
        self.behind_bytes = 0
        self.news_at = 0.0  # time.monotonic() of the last news
        self.looked_at = 0.0
        self.dirty = False  # acknowledgements not saved yet

    def position(self) -> Position:
        return Position(dict(self.offsets), self.last, self.next_seq)

    def go_to(self, position: Position) -> None:
        self.offsets = dict(position.offsets)
        self.last, self.next_seq = position.last, position.next_seq
        self.gaps, self.missing = 0, []

    def start_over(self, held: int) -> Position:
        """A position before everything after ``held``: segments whose next one starts at or
        below ``held + 1`` hold only events the central server has, and are passed over."""
        position = Position()
        segments = segment.list_segments(self.dir)
        for path, following in itertools.pairwise(segments):
            first = segment.first_seq(following)
            if first is None or first > held + 1:
                break
            try:
                position.offsets[path.name] = path.stat().st_size
            except OSError:
                break
            position.last, position.next_seq = first - 1, first
        return position

    def saved(self) -> dict[str, Any]:
        return {
            "acked": self.acked,
            "last": self.safe.last,
            "next_seq": self.safe.next_seq,
            "offsets": self.safe.offsets,
        }

    def restore(self, saved: dict[str, Any]) -> None:
        try:
            acked, last, next_seq = (int(saved[k]) for k in ("acked", "last", "next_seq"))
            offsets = {str(k): int(v) for k, v in dict(saved["offsets"]).items()}
        except (KeyError, TypeError, ValueError):
            return  # unreadable: ask the central server
        if last > acked:
            return
        self.acked, self.skip_to = acked, acked
        self.safe = Position(offsets, last, next_seq)
        self.go_to(self.safe)
