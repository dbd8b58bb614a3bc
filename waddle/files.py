"""``run.save()``: files (a checkpoint, a config, a plot) copied into ``<run>/files/``.

The caller's thread only checks that the file exists and notes its size and modification time;
the run's copier thread (waddle/copier.py) copies it (a copy-on-write clone where the file system offers one, else a
plain copy; a hard link with ``link=True``), hashes it, stores it by content hash
(waddle.media) and writes a ``file`` event (docs/format.md). It promises that the stored file
is the one ``save()`` saw: if the file changed between ``save()`` and the end of the copy, no
event is written and a notice says so, rather than record a file that may be half rewritten.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from waddle import media
from waddle.values import check_text

WHAT = "save()"
MAX_NAME = 1024
_EXTENSION = re.compile(r"\.[a-z0-9]{1,15}")


class SavedFile:
    """The ``file`` event of one ``run.save()`` call, stored by the copier thread."""

    __slots__ = ("link", "name", "path", "stamp", "step")

    def __init__(self, path: Any, name: str | None, step: int, link: bool) -> None:
        self.path = media.existing_file(WHAT, path)
        if name is None:
            name = self.path.name
        if type(name) is not str or not name or len(name) > MAX_NAME or "\0" in name:
            raise ValueError(f"{WHAT}: name must be a non-empty string, got {name!r}")
        check_text(f"{WHAT}: name", name)
        self.name = name
        self.stamp = stamp(self.path)
        self.step = step
        self.link = bool(link)


def expand(
    pattern: Any, base_path: Any, use_glob: bool, name: str | None
) -> list[tuple[Path, str]]:
    """The files ``save(pattern, base_path, glob=use_glob, name=name)`` means, each with the
    name it is saved under: its path relative to ``base_path`` (default: the pattern's
    folder). A pattern with no wildcard is one file, which must exist."""
    text = os.fspath(pattern)
    if not (use_glob and glob.has_magic(text)):
        path = media.existing_file(WHAT, text)
        return [(path, name if name is not None else _relative(path, base_path))]
    if name is not None:
        raise ValueError(f"{WHAT}: name= names one file; {text!r} is a pattern")
    matches = sorted(Path(match) for match in glob.glob(text, recursive=True))
    return [(path, _relative(path, base_path)) for path in matches if path.is_file()]


def _relative(path: Path, base_path: Any) -> str:
    if base_path is None:
        return path.name
    try:
        return path.resolve().relative_to(Path(base_path).resolve()).as_posix()
    except ValueError:
        raise ValueError(
            f"{WHAT}: {str(path)!r} is not under base_path {str(base_path)!r}"
        ) from None


def snapshot(
    path: Any, name: str | None, step: int, link: bool = False
) -> Callable[[Path], dict[str, Any]]:
    """Check ``path`` now; the returned function copies it into a run folder and gives the
    ``file`` event's fields."""
    saved = SavedFile(path, name, step, link)
    return lambda run_dir: _store(run_dir, saved)


def _store(run_dir: Path, saved: SavedFile) -> dict[str, Any]:
    suffix = saved.path.suffix.lower()
    extension = suffix if _EXTENSION.fullmatch(suffix) else ""
    stored = media.store_file(
        run_dir, saved.path, extension, folder=media.FILES_DIR, link=saved.link
    )
    if stamp(saved.path) != saved.stamp:
        raise RuntimeError(
            f"{saved.path} changed before it was copied; call save() again once it is written"
        )
    return {"name": saved.name, **stored, "step": saved.step}


def stamp(path: Path) -> tuple[int, int, int]:
    """What tells that a file is unchanged since it was checked: its size, modification time
    (ns) and inode (a rewrite of the same size within the file system's time granularity goes
    unseen). run.save() and artifacts (waddle/artifact.py) copy only a file whose stamp held."""
    stat = os.stat(path)
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino)
