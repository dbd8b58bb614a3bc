"""The relay: forwards the runs of a log folder to a central server, exactly once, through
outages and restarts of either side (docs/api.md, "Relaying").

One thread reads new lines of every stream of every run (rank 0's, the run folder's own, and
each other rank's in ``ranks/<N>/``: waddle/ranks.py; a rank that starts late is found at the
next listing) with the shared tailer (server/tailer.py), sends them
in batches (server/relay_batch.py, server/ingest_body.py) through an
:class:`~waddle.server.uplink.Uplink`, and moves each stream's resume point
(server/relay_track.py) to what the central server acknowledges (server/relay_state.py). It
promises:

- **exactly once, no gap**: each batch says, per stream of a run, the seq of the event read just before
  its first one (``after``); the central server appends only a batch that continues what it
  holds and answers the newest seq it holds (``acked``). The relay resumes each run from a
  point at or before the event after ``acked`` and never forwards an event at or below it.
  Answers below what was sent (the central server lost data, or holds less than a stale
  state said) rewind the run; answers above it (another relay sent it) skip ahead;
- events go as the run's segments hold them, byte for byte, in seq order; a line the reader
  cannot take (malformed, out of order, a duplicate: server/tailer.py, waddle/sequence.py) is
  counted in ``skipped_lines`` and not sent, so the central index holds the events the local
  one holds; a gap in the local log stays a gap there;
- media and saved files a batch refers to reach the central server before the batch: by
  content hash, only those it lacks; so do the artifacts its events name, and every artifact
  of the projects in scope is looked at from time to time (server/relay_artifacts.py);
- the training side never waits: the relay only reads the log folder. The central server
  down, slow or refusing: the relay retries with backoff (0.25 s doubling to 30 s), holding
  at most one batch (``batch_bytes`` of lines) in memory whatever the backlog, which stays on
  disk; :meth:`Relay.status` says how far behind it is and why;
- a run the central server refuses for good (a ``run_start`` naming another run: the folder
  was copied or renamed) is set aside with the reason, and the others go on; a run relayed
  into the folder from elsewhere (it holds ``origin.json``) is left to its origin.

It polls: runs with news every POLL seconds, quiet ones every QUIET_POLL, the folder for new
runs every RESCAN (no watcher, so it needs none of the server's packages).
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from waddle.server import ingest_body, relay_state, tailer
from waddle.server.ingest_body import Chunk
from waddle.server.notices import Notices
from waddle.server.relay_artifacts import ArtifactRelay
from waddle.server.relay_batch import Batch, Outgoing, Sent
from waddle.server.relay_track import Position, Track
from waddle.server.uplink import Uplink, UplinkError

from waddle import names, ranks, segment
from waddle.media import FILES_DIR, MEDIA_DIR
from waddle.run_folder import read_origin

# Raw event bytes one request carries (about; a line is never split), read a block at a time.
BATCH_BYTES = 4 << 20
READ_BLOCK = 1 << 20
# Runs in one request, and stored files asked about in one question.
MAX_CHUNKS = 1000
MAX_PATHS = 1000
POLL = 0.1  # seconds between looks at runs that had news lately
QUIET_AFTER = 10.0  # a run with no news for this long is looked at every QUIET_POLL seconds
QUIET_POLL = 2.0
RESCAN = 2.0  # seconds between listings of the folder for new runs
SAVE_EVERY = 1.0  # seconds between saves of the acknowledgements
BACKOFF_MIN, BACKOFF_MAX = 0.25, 30.0
EVENT_BYTES_GUESS = 200  # until events are sent, the size of one (for behind_events)


@dataclass
class Scope:
    """What a relay forwards: a log folder, one project of it, or one run (every stream of it,
    or with ``rank`` that rank's alone: the forwarder of one rank of an online run)."""

    root: Path
    project: str | None = None
    run: str | None = None
    rank: int | None = None

    @classmethod
    def of(cls, path: str | Path) -> Scope:
        """The scope a folder names: a run folder (it holds segments), a project folder (its
        folders hold segments), else a log folder."""
        path = Path(path)
        if not path.is_dir():
            raise ValueError(f"no folder at {path}")
        if segment.list_segments(path):
            return cls(path.parent.parent, names.check("project", path.parent.name), path.name)
        if any(segment.list_segments(path / run) for run in names.folders(path)):
            return cls(path.parent, names.check("project", path.name))
        return cls(path)

    def projects(self) -> list[str]:
        return [self.project] if self.project is not None else names.folders(self.root)

    def runs(self) -> list[tuple[str, str]]:
        if self.run is not None:
            return [(self.project, self.run)]
        projects = [self.project] if self.project is not None else names.folders(self.root)
        return [(p, r) for p in projects for r in names.folders(self.root / p)]


class Relay:
    def __init__(
        self,
        scope: Scope,
        uplink: Uplink,
        origin: str | None = None,
        notices: Notices | None = None,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        self.scope = scope
        self.uplink = uplink
        self.origin = names.check_origin(origin or names.origin_of_host(socket.gethostname()))
        self.notices = notices or Notices("waddle relay")
        self.batch_bytes = batch_bytes
        self.state_path = relay_state.state_path(scope.root, uplink.url, self.origin)
        self.artifacts = ArtifactRelay(scope.root, scope.projects, uplink, self.origin)
        self.tracks: dict[tuple[str, str, int], Track] = {}  # (project, run id, rank)
        self._foreign: set[tuple[str, str]] = set()
        self.totals = {"events": 0, "bytes": 0, "files": 0, "file_bytes": 0, "batches": 0}
        self.last_error: dict[str, Any] | None = None
        self.last_ack: float | None = None
        self._saved = relay_state.load(self.state_path)
        self._scanned_at = -math.inf
        self._saved_at = time.monotonic()
        self._retry_at = 0.0
        self._backoff = 0.0
        self._solo: list[Track] = []  # runs of a refused batch, sent one per request
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="waddle-relay-send")
        # Compresses each batch once read, while the relay's thread reads the next one and the
        # sender waits for the answer to the one before (zlib lets go of the GIL).
        self._compressor = ThreadPoolExecutor(1, thread_name_prefix="waddle-relay-gzip")
        self._inflight: Sent | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status: dict[str, Any] = {}
        self._publish()

    # --- the thread ---

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="waddle-relay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.close()

    def halt(self) -> None:
        """Ask :meth:`sync` (or the thread) to stop at the next chance."""
        self._stop.set()

    def close(self) -> None:
        """Settle what is in flight, save, and let go of the connection and the sender."""
        self.flush()
        self.save()
        self._sender.shutdown()
        self._compressor.shutdown()
        self.uplink.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            wait = self._retry_at - time.monotonic()
            if wait > 0:  # backing off after a failure
                self._stop.wait(wait)
                continue
            try:
                sent = self.step()
            except Exception as error:  # the thread outlives anything; said and retried
                self._failed(f"relaying failed: {error!r}", transient=True)
                sent = False
            if not sent:
                self._stop.wait(POLL)

    def sync(self, follow: Any = None) -> bool:
        """Forward on the calling thread until everything on disk is acknowledged, then return
        True: without ``follow``, what was on disk when it started; with it, everything, for
        as long as ``follow()`` says the run goes on, and once it no longer does. False when
        :meth:`stop` ended it first."""
        self._scan(force=True)
        target = {key: _sizes(track.dir) for key, track in self.tracks.items()}
        while not self._stop.is_set():
            following = follow is not None and follow()
            if self._stop.is_set():
                break
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                self._stop.wait(min(wait, 1.0))
                continue
            try:
                sent = self.step(everything=True)
            except Exception as error:
                self._failed(f"relaying failed: {error!r}", transient=True)
                continue
            if self._retry_at > time.monotonic() or self._solo:
                continue
            if following:
                if not sent:
                    self._stop.wait(POLL)
                continue
            if not sent or (follow is None and self._covered(target)):
                self.flush()
                try:  # the artifacts in scope, whether or not an event named them
                    self.artifacts.send(set(), sweep=True)
                except UplinkError as error:
                    self._failed(str(error), error.transient)
                    continue
                self.save()
                self._publish()
                return True
        return False

    def _covered(self, target: dict[tuple[str, str, int], dict[str, int]]) -> bool:
        """True when every run's resume point passed the sizes its segments had in ``target``
        (a torn last line there is left: it has no end yet)."""
        for key, sizes in target.items():
            track = self.tracks.get(key)
            if track is None or track.refused:
                continue
            if not track.asked or track.acked is None or track.last > track.acked:
                return False
            if any(track.safe.offsets.get(name, 0) < size for name, size in sizes.items()):
                return False
        return True

    # --- one round ---

    def step(self, everything: bool = False) -> bool:
        """Read the next batch, settle the one in flight, send the next: reading and the
        central server's work overlap, one batch in flight and one being read at most.
        False when there was nothing to send or settle."""
        self._scan()
        batch = Batch()
        try:
            self._read(batch, time.monotonic(), everything)
        except BaseException:
            batch.restore()  # what this batch read is read again next time
            raise
        if batch.chunks:
            batch.body = self._compressor.submit(ingest_body.encode, self.origin, batch.chunks)
        settled = False
        if self._inflight is not None:
            previous, self._inflight = self._inflight, None
            settled = True
            if not self._settle_batch(previous, previous.result()):
                batch.restore()  # built on top of a batch that failed: read again later
                previous.batch.restore()
                return True
            batch.drop_stale()
        batch.sweep = self.artifacts.sweep_due()
        sent = bool(batch.chunks or batch.sweep)
        if sent:
            self._inflight = Sent(batch, self._sender.submit(self._send, batch))
            if self._solo:  # one run a request, each answered before the next
                self.flush()
        # Bookkeeping once the next batch is on its way: the size of the runs looked at, and
        # a save of the acknowledgements (an fsync) at most every SAVE_EVERY seconds.
        self._measure(t for t in batch.looked if t not in batch.afters)
        self._maybe_save()
        self._publish()
        return sent or settled

    def _read(self, batch: Batch, now: float, everything: bool) -> None:
        """Fill the next batch: a question for each run not asked yet, new lines of the
        others. A run whose read fails is read again later from where it was."""
        outgoing = Outgoing()
        for track in self._due(now, everything):
            if not track.asked:
                track.asking = True
                batch.add(track, Chunk(track.project, track.run_id, -1, rank=track.rank), None)
                if len(batch.chunks) >= MAX_CHUNKS:
                    break
                continue
            before = track.position()
            try:
                unread = tailer.read_run(
                    track, track.dir, outgoing, self.batch_bytes - outgoing.bytes, READ_BLOCK
                )
            except OSError as error:
                track.go_to(before)
                outgoing.chunks.pop(track, None)
                outgoing.media.discard(track)
                track.looked_at = now
                self._failed(f"cannot read run {track.key}: {error}", transient=True, retry=False)
                continue
            except BaseException:
                track.go_to(before)
                raise
            track.looked_at = now
            batch.looked.append(track)
            if track.offsets != before.offsets:
                track.news_at = now
            chunk = outgoing.chunks.get(track)
            if chunk is not None:
                batch.add(track, chunk, before)
                if track in outgoing.media:
                    batch.media.append(track)
                batch.artifacts |= outgoing.artifacts
            else:
                self._settle_unsent(track)
            if (
                outgoing.bytes >= self.batch_bytes
                or unread
                or len(batch.chunks) >= MAX_CHUNKS
                or (self._solo and batch.chunks)
            ):
                break

    def _send(self, batch: Batch) -> list[dict] | UplinkError:
        """On the sender thread: the batch's stored files, then its events; the answers, or
        the error. It touches nothing the relay's thread reads but the uplink and the runs'
        sets of stored files; files refused are noted in the batch, said when it is settled."""
        try:
            for track in batch.media:
                self._send_files(track, batch)
            if batch.artifacts or batch.sweep:
                self.artifacts.send(batch.artifacts, sweep=batch.sweep)
            if not batch.chunks:
                return []
            body = batch.body.result() if batch.body is not None else None
            return self.uplink.ingest(self.origin, batch.chunks, body)
        except UplinkError as error:
            return error
        except Exception as error:  # a bug: the batch is given back, the relay goes on
            return UplinkError(f"sending failed: {error!r}", transient=True)

    def _settle_batch(self, sent: Sent, result: list[dict] | UplinkError) -> bool:
        """Take the answers to a batch; False when it failed as a whole."""
        batch = sent.batch
        for track in batch.tracks:
            track.asking = False
        for message in batch.file_errors:
            self._failed(message, transient=False, retry=False)
        self.totals["files"] += batch.files_sent
        self.totals["file_bytes"] += batch.file_bytes
        if isinstance(result, UplinkError):
            error = result
            if error.status == 413 and self.batch_bytes > 64 << 10:
                self.batch_bytes //= 2
                return False
            if error.status == 422 and len(batch.chunks) > 1:
                self._solo = [t for t in batch.tracks if t not in self._solo] + self._solo
            elif error.status == 422:
                track = batch.tracks[0]
                track.refused = f"the central server refused it: {error}"
                self._solo = [t for t in self._solo if t is not track]
                self.notices.say(f"run {track.key} is not relayed: {track.refused}")
            self._failed(str(error), error.transient)
            return False
        for track, chunk, answer in zip(batch.tracks, batch.chunks, result, strict=True):
            self._settle(track, chunk, answer, batch.befores.get(track), batch.afters.get(track))
            track.sent += len(chunk.seqs)
        self._measure(batch.tracks)
        self._solo = [t for t in self._solo if t not in batch.tracks]
        if batch.chunks:
            self.totals["batches"] += 1
            self.totals["events"] += sum(len(chunk.seqs) for chunk in batch.chunks)
            self.totals["bytes"] += sum(len(chunk.lines) for chunk in batch.chunks)
            self.last_ack = time.time()
        self._ok()
        self._publish()
        return True

    def flush(self) -> None:
        """Settle the batch in flight, if any (before stopping)."""
        if self._inflight is not None:
            previous, self._inflight = self._inflight, None
            if not self._settle_batch(previous, previous.result()):
                previous.batch.restore()

    def _due(self, now: float, everything: bool) -> list[Track]:
        """The runs to look at now, those with older news first; in solo mode, the first of
        the runs of a refused batch."""
        if self._solo:
            return self._solo[:1]
        due = [
            track
            for track in self.tracks.values()
            if not track.refused
            and not track.asking
            and (
                everything
                or not track.asked
                or now - track.looked_at
                >= (POLL if now - track.news_at < QUIET_AFTER else QUIET_POLL)
            )
        ]
        due.sort(key=lambda track: track.looked_at)
        return due

    def _settle_unsent(self, track: Track) -> None:
        """A run read with nothing to send: what it read is all acknowledged (or skipped), so
        the resume point moves to where it read."""
        if (
            track.acked is not None
            and track.last <= track.acked
            and track.safe.offsets != track.offsets
        ):
            track.safe = track.position()
            track.dirty = True

    def _settle(
        self,
        track: Track,
        chunk: Chunk,
        answer: dict,
        before: Position | None,
        after: Position | None,
    ) -> None:
        try:
            acked = int(answer["acked"])
        except (KeyError, TypeError, ValueError):
            raise UplinkError(f"answer without acked: {answer!r:.200}", transient=True) from None
        track.central_id = answer.get("id", track.central_id)
        track.dirty = True
        if not chunk.seqs and not track.asked:
            # A question: where the central server stands. A saved resume point it has not
            # passed stays; else the run is read again from before the event after it.
            track.asked = True
            if track.acked is None or track.safe.last > acked:
                track.safe = track.start_over(acked)
                track.go_to(track.safe)
            track.acked = track.skip_to = acked
            return
        if acked >= chunk.last:
            track.safe = after.copy() if after is not None else track.position()
            track.acked = acked
            track.skip_to = max(track.skip_to, acked)
            return
        # The central server holds less than this batch continues from: resume at or before
        # the event after what it holds.
        if before is not None and chunk.after <= acked:
            resume = before
        elif track.safe.last <= acked:
            resume = track.safe
        else:
            resume = track.start_over(acked)
        track.go_to(resume)
        track.safe = resume.copy()
        track.acked = acked
        track.skip_to = acked
        track.generation += 1  # what was read after the batch is read again
        track.looked_at = 0.0  # read it again at once

    def _measure(self, tracks: Any) -> None:
        """How many bytes of each run's segments are past its resume point."""
        for track in tracks:
            track.behind_bytes = sum(
                max(0, size - track.safe.offsets.get(name, 0))
                for name, size in _sizes(track.dir).items()
            )

    # --- stored files ---

    def _send_files(self, track: Track, batch: Batch) -> None:
        """Upload the stored files of a stream the central server lacks, before its events
        (named by their path in the run folder: ``ranks/<N>/media/…`` for a rank's)."""
        present = []
        prefix = f"{ranks.RANKS_DIR}/{track.rank}/" if track.rank else ""
        for folder in (MEDIA_DIR, FILES_DIR):
            for name in names.files(track.dir / folder):
                path = f"{prefix}{folder}/{name}"
                if path not in track.files_held and path not in track.files_bad:
                    present.append(path)
        for start in range(0, len(present), MAX_PATHS):
            asked = present[start : start + MAX_PATHS]
            lacking = self.uplink.lacking(self.origin, track.project, track.run_id, asked)
            for path in lacking:
                try:
                    self.uplink.upload(
                        self.origin, track.project, track.run_id, path, track.run_dir / path
                    )
                except UplinkError as error:
                    if error.transient or error.status in (401, 403):
                        raise
                    track.files_bad.add(path)
                    batch.file_errors.append(f"{track.key}/{path}: {error}")
                    continue
                except OSError as error:  # gone or unreadable since it was listed
                    track.files_bad.add(path)
                    batch.file_errors.append(f"{track.key}/{path}: {error}")
                    continue
                batch.files_sent += 1
                with contextlib.suppress(OSError):
                    batch.file_bytes += (track.run_dir / path).stat().st_size
            track.files_held.update(path for path in asked if path not in track.files_bad)

    # --- runs, state, status ---

    def _scan(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._scanned_at < RESCAN:
            return
        self._scanned_at = now
        for project, run_id in self.scope.runs():
            if (project, run_id) in self._foreign:
                continue
            run_dir = self.scope.root / project / run_id
            if (project, run_id, 0) not in self.tracks and read_origin(run_dir) is not None:
                self._foreign.add((project, run_id))  # relayed here: its origin relays it
                continue
            for rank, stream_dir in [(0, run_dir), *ranks.rank_streams(run_dir)]:
                key = (project, run_id, rank)
                if self.scope.rank not in (None, rank):
                    continue  # another rank's forwarder sends it
                if key in self.tracks or not segment.list_segments(stream_dir):
                    continue  # known, or no event yet
                track = Track(project, run_id, run_dir, rank)
                saved = self._saved.get(track.key)
                if saved is not None:
                    track.restore(saved)
                self.tracks[key] = track
                self._measure([track])

    def save(self) -> None:
        """Save the acknowledgements that changed (server/relay_state.py)."""
        changed = {
            t.key: t.saved() for t in self.tracks.values() if t.dirty and t.acked is not None
        }
        if not changed:
            return
        try:
            relay_state.save(self.state_path, self.uplink.url, self.origin, changed)
        except OSError as error:
            self.notices.fault(
                "relay-state",
                f"cannot save the relay's acknowledgements in {self.state_path}: {error}",
                "relaying goes on; after a restart it sends again what was acknowledged "
                "since the last save (the central server ignores it)",
            )
            return
        for track in self.tracks.values():
            if track.key in changed:
                track.dirty = False
        self._saved_at = time.monotonic()

    def _maybe_save(self) -> None:
        if time.monotonic() - self._saved_at >= SAVE_EVERY:
            self.save()

    def _ok(self) -> None:
        self._backoff = 0.0
        self._retry_at = 0.0
        self.notices.resolve("relay")

    def _failed(self, message: str, transient: bool, retry: bool = True) -> None:
        """Note an error; with ``retry``, wait before the next try (longer when a person has
        to act: a refused token)."""
        count = (self.last_error or {}).get("count", 0) + 1
        self.last_error = {"message": message, "t": time.time(), "count": count}
        if retry:
            self._backoff = min(BACKOFF_MAX, max(BACKOFF_MIN, self._backoff * 2))
            if not transient:
                self._backoff = BACKOFF_MAX
            self._retry_at = time.monotonic() + self._backoff
            self.notices.fault(
                "relay",
                message,
                f"retrying (every {BACKOFF_MAX:g} s at most); the runs keep logging to disk "
                "and nothing is lost",
            )
        self._publish()

    def _publish(self) -> None:
        behind_bytes = sum(t.behind_bytes for t in self.tracks.values() if not t.refused)
        per_event = (
            self.totals["bytes"] / self.totals["events"]
            if self.totals["events"]
            else EVENT_BYTES_GUESS
        )
        retrying = self._retry_at > time.monotonic()
        self._status = {
            "to": self.uplink.url,
            "origin": self.origin,
            "state": "retrying" if retrying else ("behind" if behind_bytes else "ok"),
            "runs": len({(t.project, t.run_id) for t in self.tracks.values()}),
            "streams": len(self.tracks),
            "behind_events": math.ceil(behind_bytes / per_event),
            "behind_bytes": behind_bytes,
            "sent_events": self.totals["events"],
            "sent_bytes": self.totals["bytes"],
            "sent_files": self.totals["files"],
            "skipped_lines": sum(track.skipped for track in self.tracks.values()),
            "refused": [
                {"run": track.key, "reason": track.refused}
                for track in self.tracks.values()
                if track.refused
            ]
            + self.artifacts.status_refused(),
            "last_ack": self.last_ack,
            "retry_in": round(max(0.0, self._retry_at - time.monotonic()), 3),
            "last_error": self.last_error,
        }

    def status(self) -> dict[str, Any]:
        """Where relaying stands (docs/api.md, "Health": ``relay``)."""
        status = dict(self._status)
        retry_in = self._retry_at - time.monotonic()
        status["retry_in"] = round(max(0.0, retry_in), 3)
        if retry_in <= 0 and status["state"] == "retrying":
            status["state"] = "behind" if status["behind_bytes"] else "ok"
        return status


def _sizes(run_dir: Path) -> dict[str, int]:
    sizes = {}
    for path in segment.list_segments(run_dir):
        try:
            sizes[path.name] = path.stat().st_size
        except OSError:
            continue
    return sizes
