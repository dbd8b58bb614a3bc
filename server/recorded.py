"""The files of a run folder that may be served: those the run's events recorded, as recorded.

A run's events name every file they store (docs/format.md, "Rich values"): its path in the
run folder, its sha256 and its size, for media values, saved files (``file`` events), table
side files, and media inside table cells (recorded through their table's side file, which is
itself checked first). This module promises that :meth:`RecordedFiles.open` gives an open file
only when

- an event of the run, in the index, recorded that path (else :class:`NotRecorded`), and
- the file open at that path has the recorded size and sha256 (else :class:`Changed`).

The check is made on the open file descriptor, which is what is then served, so renaming
another file over the path after the check changes nothing. Why this rule and not a check of
the path alone: anyone who can write into the log folder can hard-link (or copy the name of)
a file from elsewhere on the same file system into a run folder; its path is then inside the
run folder and a path check passes. Its content, though, is not what an event recorded, unless
whoever made the link already knew the file's sha256. A link count check (``st_nlink > 1``)
would refuse files legitimately saved with ``run.save(link=True)``, and passes once the
original name is deleted. Hashes are cached per (device, inode, size, mtime, ctime), so a file
is read in full once until it changes.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import Any

import orjson

from waddle import names

_CHUNK = 1 << 20
_MIME = re.compile(r"[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*\Z")


@dataclass(frozen=True)
class Record:
    """A file as an event recorded it."""

    path: str
    sha256: str
    bytes: int
    mime: str | None = None  # the media type the writer gave it, when it gave one
    name: str | None = None  # the name given to run.save(), for a saved file


class NotRecorded(LookupError):
    """No event of the run recorded a file at this path."""


class Changed(LookupError):
    """The file at a recorded path is not the one recorded (rewritten, replaced, or missing)."""


def is_file_path(path: str) -> bool:
    """True if ``path`` could name a stored file: ``<folder>/<name>``, every part a valid name
    (waddle/names.py), so no NUL, no ``..``, no hidden file and no absolute path."""
    parts = path.split("/")
    return len(parts) >= 2 and all(names.is_valid(part) for part in parts)


class RecordedFiles:
    """Finds and opens a server's recorded files; holds the caches that make it cheap."""

    def __init__(self, hashes: int = 4096, tables: int = 256) -> None:
        self._hashes = _Lru(hashes)  # (device, inode, size, mtime, ctime) -> sha256
        self._cells = _Lru(tables)  # (run folder, side file sha256) -> {path: Record}

    def open(
        self, cursor, run: int, run_dir: Path, path: str
    ) -> tuple[int, os.stat_result, Record]:
        """An open descriptor of the recorded file ``path`` of ``run``, its stat and its record.

        The caller owns the descriptor. Raises :class:`NotRecorded` or :class:`Changed`.
        """
        record = self._find(cursor, run, run_dir, path)
        if record is None:
            raise NotRecorded(path)
        return (*self._open_checked(run_dir, record), record)

    def open_record(self, folder: Path, record: Record) -> tuple[int, os.stat_result]:
        """An open descriptor of a file recorded elsewhere than in a run's events (an
        artifact's manifest records the objects of its store), found at ``record.path``
        inside the resolved ``folder`` and checked the same way, and its stat. Raises
        :class:`Changed`."""
        return self._open_checked(folder, record)

    def _find(self, cursor, run: int, run_dir: Path, path: str) -> Record | None:
        # The path is in the value's JSON as it is (its characters need no escaping); the
        # values containing it are few, and walking them finds the object that records it.
        rows = cursor.execute(
            "SELECT value, seq FROM media WHERE run = $run AND contains(value::VARCHAR, $path)"
            " UNION ALL SELECT value, seq FROM tables WHERE run = $run"
            " AND contains(value::VARCHAR, $path) ORDER BY seq DESC",
            {"run": run, "path": path},
        ).fetchall()
        for value, _ in rows:
            for record in _records(orjson.loads(value)):
                if record.path == path:
                    return record
        if not path.startswith("media/"):
            return None
        # Media inside table cells: recorded in a side file, which must be as recorded first.
        tables = cursor.execute(
            "SELECT value FROM tables WHERE run = $run UNION ALL SELECT value FROM media"
            " WHERE run = $run AND type = 'list' AND contains(value::VARCHAR, '\"table\"')",
            {"run": run},
        ).fetchall()
        for (value,) in tables:
            for table in _records(orjson.loads(value)):
                if table.path.endswith(".table.json"):
                    found = self._table_cells(run_dir, table).get(path)
                    if found is not None:
                        return found
        return None

    def _table_cells(self, run_dir: Path, table: Record) -> dict[str, Record]:
        """The files recorded in the cells of a table's side file (once it is checked)."""
        key = (str(run_dir), table.sha256)
        found = self._cells.get(key)
        if found is not None:
            return found
        try:
            fd, _ = self._open_checked(run_dir, table)
        except Changed:
            return {}
        try:
            cells = orjson.loads(b"".join(_chunks(fd))).get("data")
        except (orjson.JSONDecodeError, AttributeError):
            cells = None
        finally:
            os.close(fd)
        found = {record.path: record for record in _records(cells)}
        self._cells.put(key, found)
        return found

    def _open_checked(self, run_dir: Path, record: Record) -> tuple[int, os.stat_result]:
        """Open ``record``'s file inside ``run_dir`` and check it is the file recorded."""
        if not is_file_path(record.path):
            raise Changed(record.path)
        target = (run_dir / record.path).resolve()
        if not target.is_relative_to(run_dir):
            raise Changed(record.path)  # a symlink leading out of the run folder
        try:
            fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            raise Changed(record.path) from None
        try:
            stat = os.fstat(fd)
            if (
                not S_ISREG(stat.st_mode)
                or stat.st_size != record.bytes
                or self._sha256(fd, stat) != record.sha256
            ):
                raise Changed(record.path)
        except BaseException:
            os.close(fd)
            raise
        return fd, stat

    def _sha256(self, fd: int, stat: os.stat_result) -> str:
        # ctime changes with every change to the inode (content, links, a rename onto it) and
        # no user can set it, so an entry cannot outlive the content it was computed from.
        key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        found = self._hashes.get(key)
        if found is None:
            digest = hashlib.sha256()
            for chunk in _chunks(fd):
                digest.update(chunk)
            found = digest.hexdigest()
            self._hashes.put(key, found)
        return found


def _records(value: Any) -> Iterator[Record]:
    """Every object with a path, sha256 and size inside a logged value."""
    if isinstance(value, list):
        for item in value:
            yield from _records(item)
    elif isinstance(value, dict):
        path, sha, size = value.get("path"), value.get("sha256"), value.get("bytes")
        if type(path) is str and type(sha) is str and type(size) is int:
            mime = value.get("mime")
            name = value.get("name") if value.get("_type") == "file" else None
            yield Record(
                path,
                sha.lower(),
                size,
                mime if type(mime) is str and _MIME.match(mime) else None,
                name if type(name) is str else None,
            )
        for item in value.values():
            if isinstance(item, (list, dict)):
                yield from _records(item)


def _chunks(fd: int) -> Iterator[bytes]:
    offset = 0
    while chunk := os.pread(fd, _CHUNK, offset):
        yield chunk
        offset += len(chunk)


class _Lru:
    """A bounded mapping, oldest use evicted first; safe across request threads."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
