"""A request of the relay (server/relay.py): :class:`Outgoing` takes each stream's new lines
into one chunk per stream as the tailer reads them, :class:`Batch` is the request with the read
positions before and after it (to rewind when it fails), :class:`Sent` the request in flight.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from waddle.server.ingest_body import Chunk
from waddle.server.relay_track import Position, Track
from waddle.server.uplink import UplinkError

from waddle import event as event_format
from waddle import names, sequence

# Event types the relay looks into before sending: not taken by its fast path.
_LOOKED_AT = frozenset({"run_start", "artifact", "file"})


class Outgoing:
    """One request being made: a :class:`tailer.Sink` turning each run's lines into a chunk."""

    def __init__(self) -> None:
        self.bytes = 0
        self.chunks: dict[Track, Chunk] = {}
        self.media: set[Track] = set()
        self.artifacts: set[tuple[str, str]] = set()  # (project, name) its events name
        self.lines = 0

    def reject(self, state: Track, file: str, offset: int, kind: str, reason: str, t: float):
        state.skipped += 1

    def set_offset(self, state: Track, segment_name: str, offset: int) -> None:
        state.offsets[segment_name] = offset

    def add_line(self, state: Track, line: bytes) -> bool:
        """Take the common line by a fast path (True): an event :func:`event_format.peek`
        reads, with the next seq, of a type with nothing more to look at. Any other line is
        left to :meth:`take` (False), which takes it the same way when it is an event."""
        head = event_format.peek(line)
        if head is None or state.refused:
            return False
        seq, kind, _ = head
        if seq != state.next_seq or seq <= state.skip_to or kind in _LOOKED_AT:
            return False
        state.next_seq = seq + 1
        self._append(state, line, seq, kind)
        return True

    def take(self, state: Track, line: bytes, file: str, offset: int) -> None:
        if state.refused:
            return
        head = event_format.peek(line)
        if head is not None:
            seq, kind, event = head
        else:
            try:
                event = event_format.decode(line)
            except event_format.MalformedEvent:
                state.skipped += 1
                return
            seq, kind = event["seq"], event["type"]
        if sequence.take(state, seq) not in ("next", "gap"):
            state.skipped += 1
            return
        if kind == "run_start" and (
            event.get("project") != state.project or event.get("run_id") != state.run_id
        ):
            state.last = seq
            state.refused = (
                f"its run_start names {event.get('project')}/{event.get('run_id')}, not the "
                "folder it is in (a copied or renamed run folder?): not relayed"
            )
            self.chunks.pop(state, None)
            return
        if seq <= state.skip_to:
            state.last = seq
            return
        if kind == "artifact":
            project, name = event.get("project"), event.get("name")
            if names.is_valid(project) and names.is_valid(name):
                self.artifacts.add((project, name))
        self._append(state, line, seq, kind)

    def _append(self, state: Track, line: bytes, seq: int, kind: str) -> None:
        """Add the event ``line`` to its run's chunk."""
        after, state.last = state.last, seq
        chunk = self.chunks.get(state)
        if chunk is None:
            chunk = self.chunks[state] = Chunk(
                state.project, state.run_id, after, b"", rank=state.rank
            )
            chunk.lines = bytearray()  # type: ignore[assignment]
        chunk.lines += line  # type: ignore[operator]
        chunk.lines += b"\n"  # type: ignore[operator]
        chunk.seqs.append(seq)
        self.lines += 1
        if kind == "file" or b'"path"' in line:
            self.media.add(state)
        state.finished = kind == "finish"


class Batch:
    """One request: per run a chunk, with the read positions before and after it."""

    def __init__(self) -> None:
        self.tracks: list[Track] = []
        self.chunks: list[Chunk] = []
        self.befores: dict[Track, Position] = {}
        self.afters: dict[Track, Position] = {}
        self.generations: dict[Track, int] = {}
        self.media: list[Track] = []
        self.looked: list[Track] = []
        self.artifacts: set[tuple[str, str]] = set()  # to send before the events
        self.sweep = False  # and every artifact in scope
        self.body: Future | None = None  # the chunks being encoded (compressed), once read
        # Filled by the sender thread: stored files sent, and those refused (messages).
        self.files_sent = 0
        self.file_bytes = 0
        self.file_errors: list[str] = []

    def add(self, track: Track, chunk: Chunk, before: Position | None) -> None:
        self.tracks.append(track)
        self.chunks.append(chunk)
        self.generations[track] = track.generation
        if before is not None:
            self.befores[track] = before
            self.afters[track] = track.position()

    def restore(self) -> None:
        """Not sent (or failed): its runs read again from before it, and asked again."""
        for track in self.tracks:
            track.asking = False
        for track, before in self.befores.items():
            if track.generation == self.generations[track]:
                track.go_to(before)

    def drop_stale(self) -> None:
        """Leave out the chunks of runs rewound since they were read."""
        stale = {t for t in self.tracks if t.generation != self.generations[t]}
        if not stale:
            return
        for track in stale:
            track.asking = False
            self.befores.pop(track, None)
            self.afters.pop(track, None)
        kept = [(t, c) for t, c in zip(self.tracks, self.chunks, strict=True) if t not in stale]
        self.tracks = [t for t, _ in kept]
        self.chunks = [c for _, c in kept]
        self.media = [t for t in self.media if t not in stale]
        self.body = None


class Sent:
    """A batch in flight on the sender thread."""

    def __init__(self, batch: Batch, future: Any) -> None:
        self.batch, self.future = batch, future

    def result(self) -> list[dict] | UplinkError:
        return self.future.result()
