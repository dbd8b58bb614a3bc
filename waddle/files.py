"""``run.save()``: files (a checkpoint, a config, a plot) copied into ``<run>/files/``.

The caller's thread only checks that the file exists and notes its size and modification time;
the writer thread copies it (a copy-on-write clone where the file system offers one, else a
plain copy; a hard link with ``link=True``), hashes it, stores it by content hash
(waddle.media) and writes a ``file`` event (docs/format.md). It promises that the stored file
is the one ``save()`` saw: if the file changed between ``save()`` and the end of the copy, no
event is written and a notice says so, rather than record a file that may be half rewritten.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from waddle import media
from waddle.values import check_text

WHAT = "save()"
MAX_NAME = 1024
_EXTENSION = re.compile(r"\.[a-z0-9]{1,15}")


class SavedFile:
    """The ``file`` event of one ``run.save()`` call, materialised by the writer thread."""

    __slots__ = ("link", "name", "path", "stamp", "step")

    def __init__(self, path: Any, name: str | None, step: int, link: bool) -> None:
        self.path = media.existing_file(WHAT, path)
        if name is None:
            name = self.path.name
        if type(name) is not str or not name or len(name) > MAX_NAME or "\0" in name:
            raise ValueError(f"{WHAT}: name must be a non-empty string, got {name!r}")
        check_text(f"{WHAT}: name", name)
        self.name = name
        self.stamp = _stamp(self.path)
        self.step = step
        self.link = bool(link)


def snapshot(path: Any, name: str | None, step: int, link: bool = False) -> media.Snapshot:
    """Check ``path`` now; the returned Deferred copies it and gives the event's fields."""
    saved = SavedFile(path, name, step, link)
    return media.Snapshot(lambda run_dir: _store(run_dir, saved))


def _store(run_dir: Path, saved: SavedFile) -> dict[str, Any]:
    suffix = saved.path.suffix.lower()
    extension = suffix if _EXTENSION.fullmatch(suffix) else ""
    stored = media.store_file(
        run_dir, saved.path, extension, folder=media.FILES_DIR, link=saved.link
    )
    if _stamp(saved.path) != saved.stamp:
        raise RuntimeError(
            f"{saved.path} changed before it was copied; call save() again once it is written"
        )
    return {"name": saved.name, **stored, "step": saved.step}


def _stamp(path: Path) -> tuple[int, int, int]:
    stat = os.stat(path)
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino)
