"""The central side of relaying: what relays send, appended to this server's own log folder.

The intake owns the run folders of relayed runs, ``<log dir>/<project>/<origin>.<run id>/``
(waddle/names.py ``relayed_folder``; docs/format.md, "Relayed runs"), and writes them in the
format any run has, so the indexer reads them as it reads runs logged here: one code path. Each
stream of a run (rank 0's in the run folder, rank N's in ``ranks/N/``: waddle/ranks.py) is
appended on its own, with its own seqs and ``held``. It promises:

- **exactly once**: per stream it holds ``held``, the seq of the newest event written, with every
  event the origin had before it written too. A chunk (server/ingest_body.py) is appended only
  when it continues that (its ``after`` is at most ``held``): its events up to ``held`` are
  replays and are skipped; a chunk whose ``after`` is beyond ``held`` would leave a gap, and
  nothing of it is written. The answer (``acked``) is the newest seq fsynced: a request's
  chunks are written, then their runs fsynced at once, then answered;
- lines are appended exactly as sent, into segments named by their first seq and rotated past
  ``segment_bytes``; ``origin.json`` is written before the first event or file, and made
  durable with them (the fsyncs of a request's runs, files and folders run side by side);
- after a kill, ``held`` is read back from the folder's newest segment, and a torn last line
  (a write the kill cut short, never acknowledged) is cut off first, so no reader sees it;
- a write that fails (a full disk) is cut back to the last whole line and reported;
- media and saved files go by content hash: :meth:`Intake.lacking` says which a run misses,
  :meth:`Intake.store_file` keeps an upload only if its sha256 is the one its name says,
  written as the client writes media (temporary name, fsync, rename);
- one process owns a relayed run folder: it holds the folder's ``.lock`` while it has the run
  open (as many runs at once as its file limit allows, up to MAX_OPEN; the least recently
  used is closed first).
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import hashlib
import math
import os
import re
import resource
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from waddle.server.errors import ApiError
from waddle.server.ingest_body import Chunk
from waddle.server.notices import Notices

from waddle import names, ranks, segment
from waddle.run_folder import ORIGIN_FILE, Origin, inspect_run, write_origin

# Runs open at once: each holds two files (its lock and its newest segment).
MAX_OPEN = 8192
# An uploaded file: at most this big (a checkpoint); written in pieces of this size.
MAX_FILE_BYTES = 64 << 30
_PIECE = 1 << 20
# A stored file's name: the sha256 of its content, then an extension (waddle/media.py).
_STORED = re.compile(r"(media|files)/([0-9a-f]{64})[A-Za-z0-9_.\-]*\Z")


def stored_hash(path: str) -> str | None:
    """The sha256 a stored file's path names (``media/<sha256><ext>``, or a rank's:
    ``ranks/<N>/media/<sha256><ext>``), or None if the path is not one a run stores files
    under."""
    path = ranks.split_path(path)[1]
    match = _STORED.match(path)
    if match is None or not names.is_valid(path.split("/", 1)[1]):
        return None
    return match.group(2)


class _Inbox:
    """One stream of a relayed run open for appending: its folder, lock, newest segment and
    ``held``. ``run_dir`` is the run folder (where ``origin.json`` goes), ``stream_dir`` the
    stream's (the run folder itself for rank 0)."""

    def __init__(self, run_dir: Path, stream_dir: Path, origin: Origin, segment_bytes: int):
        self.run_dir = run_dir
        self.dir = stream_dir
        self.origin = origin
        self.segment_bytes = segment_bytes
        self.lock = threading.Lock()
        stream_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(stream_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise ApiError(
                "conflict",
                f"the run folder {run_dir.name} ({stream_dir.relative_to(run_dir.parent)}) is "
                "held by another process "
                "(another waddle serve, or a training script): one process writes a run",
            ) from None
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, f"pid {os.getpid()} (waddle serve, relayed)".encode(), 0)
        self._fd: int | None = None
        self._size = 0
        self.closed = False
        self.held = self.durable = self._recover()
        # Written, to be made durable by the next sync(): origin.json, names in the folder.
        self._origin_written = False
        self._folder_changed = False
        self._origin_checked = False

    def _recover(self) -> int:
        """``held`` as the folder says, after cutting off a torn last line."""
        segments = segment.list_segments(self.dir)
        if segments:
            cut_torn_line(segments[-1])
        record = inspect_run(self.dir, math.inf)
        return -1 if record is None else record.next_seq - 1

    def append(self, chunk: Chunk) -> None:
        """Append what ``chunk`` holds beyond ``held`` (the caller checked ``after``)."""
        skip = bisect.bisect_right(chunk.seqs, self.held)
        if skip == len(chunk.seqs):
            return
        data = memoryview(chunk.lines)[chunk.ends[skip - 1] if skip else 0 :]
        if not self._origin_checked:
            if write_origin(self.run_dir, self.origin, sync=False):
                self._origin_written = self._folder_changed = True
            self._origin_checked = True
        if self._fd is None or self._size >= self.segment_bytes:
            self._open_segment(chunk.seqs[skip])
        before = self._size
        try:
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
                self._size += written
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, before)
            self._size = before
            raise
        self.held = chunk.seqs[-1]

    def sync(self) -> None:
        """Make what was written durable (origin.json, the folder's names, the lines);
        ``durable`` follows."""
        if self._origin_written:
            _fsync_path(self.run_dir / ORIGIN_FILE)
            self._origin_written = False
        if self._folder_changed:
            folder = self.dir
            while True:  # a rank's folder, ranks/, and the run folder that names them
                _fsync_path(folder)
                if folder == self.run_dir:
                    break
                folder = folder.parent
            self._folder_changed = False
        if self._fd is not None and self.durable != self.held:
            os.fdatasync(self._fd)
        self.durable = self.held

    def _open_segment(self, first_seq: int) -> None:
        self._close_segment()
        segments = segment.list_segments(self.dir)
        path = self.dir / segment.segment_name(first_seq)
        if segments and segments[-1].stat().st_size < self.segment_bytes:
            path = segments[-1]  # the newest segment still has room
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._fd, self._size = fd, os.fstat(fd).st_size
        self._folder_changed = True

    def _close_segment(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        try:
            self.sync()
        finally:
            self._close_segment()
            os.close(self._lock_fd)
            self.closed = True


class Intake:
    """The relayed runs of one log folder."""

    def __init__(self, root: Path, notices: Notices, segment_bytes: int = 64 << 20) -> None:
        self.root = Path(root)
        self.notices = notices
        self.segment_bytes = segment_bytes
        self._inboxes: OrderedDict[Path, _Inbox] = OrderedDict()
        self._lock = threading.Lock()
        self.max_open = _open_runs_allowed()
        # The runs one request wrote are fsynced at once (fdatasync lets go of the GIL).
        self._syncer = ThreadPoolExecutor(8, thread_name_prefix="waddle-intake-sync")
        # Uploads a kill cut short: received, never checked, never acknowledged.
        for stale in (self.root / ".waddle" / "incoming").glob("*"):
            with contextlib.suppress(OSError):
                stale.unlink()
        self.totals = {
            "requests": 0,
            "events": 0,
            "bytes": 0,
            "replayed": 0,
            "gaps_refused": 0,
            "files": 0,
        }

    def run_dir(self, origin: str, project: str, run_id: str) -> Path:
        return self.root / project / names.relayed_folder(origin, run_id)

    def _inbox(self, origin: str, project: str, run_id: str, rank: int) -> _Inbox:
        run_dir = self.run_dir(origin, project, run_id)
        stream_dir = ranks.stream_dir(run_dir, rank)
        with self._lock:
            inbox = self._inboxes.get(stream_dir)
            if inbox is not None:
                self._inboxes.move_to_end(stream_dir)
                return inbox
            inbox = _Inbox(run_dir, stream_dir, Origin(origin, project, run_id), self.segment_bytes)
            self._inboxes[stream_dir] = inbox
            while len(self._inboxes) > self.max_open:
                _, oldest = self._inboxes.popitem(last=False)
                with oldest.lock:
                    oldest.close()
            return inbox

    def ingest(self, origin: str, chunks: list[Chunk]) -> list[dict]:
        """Append each chunk that continues its stream, fsync the streams written, and answer
        per chunk the newest seq of its stream that is durable."""
        self.totals["requests"] += 1
        inboxes: list[_Inbox | None] = []
        try:
            for chunk in chunks:
                inboxes.append(self._append(origin, chunk))
            touched = {id(inbox): inbox for inbox in inboxes if inbox is not None}
            list(self._syncer.map(_sync, touched.values()))
        except OSError as error:
            self.notices.fault(
                "intake",
                f"cannot write a relayed run of {origin}: {error}",
                "relays keep their events and retry; check the disk of the log folder",
            )
            for inbox in inboxes:  # read back from disk at the next request
                if inbox is not None:
                    self._forget(inbox)
            raise ApiError("unavailable", "this server cannot write its log folder") from None
        self.notices.resolve("intake")
        answers = []
        for chunk, inbox in zip(chunks, inboxes, strict=True):
            name = self.run_dir(origin, chunk.project, chunk.run).name
            acked = inbox.durable if inbox else -1
            answer = {"project": chunk.project, "run": chunk.run, "id": name, "acked": acked}
            if chunk.rank:
                answer["rank"] = chunk.rank
            answers.append(answer)
        return answers

    def _append(self, origin: str, chunk: Chunk) -> _Inbox | None:
        """Write what ``chunk`` adds to its stream; the stream, or None when this server has
        nothing of it and the chunk would not start it (a question, or a gap): no folder is
        made."""
        run_dir = self.run_dir(origin, chunk.project, chunk.run)
        stream_dir = ranks.stream_dir(run_dir, chunk.rank)
        if (not chunk.seqs or chunk.after >= 0) and not stream_dir.is_dir():
            if chunk.seqs:
                self.totals["gaps_refused"] += 1
            return None
        while True:
            inbox = self._inbox(origin, chunk.project, chunk.run, chunk.rank)
            with inbox.lock:
                if inbox.closed:  # closed by another request meanwhile: open it again
                    continue
                held = inbox.held
                if chunk.after > held:
                    self.totals["gaps_refused"] += 1
                    return inbox
                inbox.append(chunk)

            replayed = bisect.bisect_right(chunk.seqs, held)
            self.totals["events"] += len(chunk.seqs) - replayed
            self.totals["replayed"] += replayed
            self.totals["bytes"] += len(chunk.lines)
            return inbox

    def _forget(self, inbox: _Inbox) -> None:
        with self._lock:
            if self._inboxes.get(inbox.dir) is inbox:
                del self._inboxes[inbox.dir]
        with inbox.lock:
            if not inbox.closed:
                with contextlib.suppress(OSError):
                    inbox.close()

    def lacking(self, origin: str, project: str, run_id: str, paths: list[str]) -> list[str]:
        """Those of ``paths`` (stored files of the run, ``ranks/<N>/…`` for a rank's) this
        server does not hold."""
        run_dir = self.run_dir(origin, project, run_id)
        bad = [path for path in paths if stored_hash(path) is None]
        if bad:
            raise ApiError(
                "invalid_parameter",
                f"not a stored file's path: {bad[0]!r} (media/ or files/, then the sha256 of "
                "the content and an extension)",
            )
        return [path for path in paths if not (run_dir / path).is_file()]

    async def store_file(
        self, origin: str, project: str, run_id: str, path: str, body: AsyncIterator[bytes]
    ) -> bool:
        """Keep the uploaded file ``path`` of the run if its content has the hash its name
        says; False when it was there already. Nothing is kept of a file that does not match."""
        digest = stored_hash(path)
        if digest is None:
            raise ApiError("invalid_parameter", f"not a stored file's path: {path!r}")
        run_dir = self.run_dir(origin, project, run_id)
        target = run_dir / path
        async with received(self.root, digest, path, body) as temp:
            if target.exists():
                return False
            target.parent.mkdir(parents=True, exist_ok=True)
            write_origin(run_dir, Origin(origin, project, run_id))
            os.replace(temp, target)
            _fsync_path(target.parent)
        self.totals["files"] += 1
        return True

    def status(self) -> dict:
        """What relays sent since the server started (docs/api.md, "Health": ``intake``)."""
        with self._lock:
            open_runs = len(self._inboxes)
        return {"open_runs": open_runs, **self.totals}

    def close(self) -> None:
        with self._lock:
            for inbox in self._inboxes.values():
                with inbox.lock:
                    inbox.close()
            self._inboxes.clear()
        self._syncer.shutdown()


def _open_runs_allowed() -> int:
    """How many runs may be open at once: raise this process's file limit to its hard limit
    where it can, and leave room for sockets and the index."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            wanted = 65536 if hard == resource.RLIM_INFINITY else hard
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    except (ValueError, OSError):
        soft = 1024
    return max(16, min(MAX_OPEN, (soft - 512) // 2))


def _sync(inbox: _Inbox) -> None:
    with inbox.lock:
        if not inbox.closed:
            inbox.sync()


@contextlib.asynccontextmanager
async def received(
    root: Path, digest: str, what: str, body: AsyncIterator[bytes]
) -> AsyncIterator[Path]:
    """Receive an upload, checked: the temporary file (fsynced) holding it once its sha256 is
    ``digest``, for the caller to move into place; ApiError (``hash_mismatch``, ``too_large``)
    otherwise. It is received beside the index, ``<log dir>/.waddle/incoming/``, so a file that
    does not match leaves nothing in the log folder; what the caller did not move is removed."""
    incoming = root / ".waddle" / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    temp = incoming / f"{os.getpid()}.{threading.get_ident()}.{time.monotonic_ns()}"
    hasher, size = hashlib.sha256(), 0
    try:
        with open(temp, "wb") as file:
            async for piece in body:
                size += len(piece)
                if size > MAX_FILE_BYTES:
                    raise ApiError("too_large", f"{what}: a file may hold {MAX_FILE_BYTES} bytes")
                hasher.update(piece)
                file.write(piece)
            if hasher.hexdigest() != digest:
                raise ApiError(
                    "hash_mismatch",
                    f"{what}: the content's sha256 is {hasher.hexdigest()}, not the one its "
                    "name says; nothing was kept",
                )
            file.flush()
            os.fsync(file.fileno())
        yield temp
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def cut_torn_line(path: Path) -> None:
    """Cut a segment back to its last newline (a torn line is never acknowledged)."""
    with open(path, "rb+") as file:
        size = file.seek(0, os.SEEK_END)
        at = size
        while at > 0:
            start = max(0, at - _PIECE)
            file.seek(start)
            block = file.read(at - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                at = start + cut + 1
                break
            at = start
        if at < size:
            file.truncate(at)
            os.fsync(file.fileno())


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
