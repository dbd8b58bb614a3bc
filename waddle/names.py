"""The name rule: what a project, a run id or a stored file may be called, and listing them.

Project names and run ids become folders of the log folder, and stored files are named inside a
run folder, so one rule decides which names are valid for the client that creates them and for
every reader that lists or serves them (``waddle ls``, the server's watcher, indexer and
``/files``): 1 to 128 letters, digits, ``_``, ``-`` or ``.``, not starting with ``.`` or ``-``.
A valid name can never climb out of its folder (``.`` and ``..`` start with a dot) nor hide a
separator, a NUL or a newline; a folder with any other name is, for every reader, not a project
or a run.

An **origin** names the machine a run was relayed from (docs/format.md, "Relayed runs"): 1 to
63 letters, digits, ``_`` or ``-`` (a host name's first label), so ``<origin>.<run id>``, the
folder a central server keeps that run in, is a valid run folder name that no two origins or
run ids share.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

_RULE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")
RULE_TEXT = "1 to 128 letters, digits, '_', '-' or '.', not starting with '.' or '-'"
MAX_NAME = 128
_ORIGIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]{0,62}")
ORIGIN_TEXT = "1 to 63 letters, digits, '_' or '-', not starting with '-'"


def is_valid(name: object) -> bool:
    """True if ``name`` may be a project, a run id or a stored file's name."""
    return type(name) is str and _RULE.fullmatch(name) is not None


def check(kind: str, name: object) -> str:
    """Return ``name`` if it is valid; raise ValueError naming ``kind`` and the rule if not."""
    if not is_valid(name):
        raise ValueError(f"{kind} {name!r} is not allowed: use {RULE_TEXT}")
    return name


def is_folder(path: Path) -> bool:
    """True if ``path`` is a folder itself, not a symlink to one."""
    return path.is_dir() and not path.is_symlink()


def folders(path: Path) -> list[str]:
    """The valid names of the folders in ``path``, sorted; symlinks are not followed (a link
    could lead out of the log folder). Empty when ``path`` is not a folder."""
    return _entries(path, os.DirEntry.is_dir)


def check_origin(origin: object) -> str:
    """Return ``origin`` if it may name a machine; raise ValueError naming the rule if not."""
    if type(origin) is not str or _ORIGIN.fullmatch(origin) is None:
        raise ValueError(f"origin {origin!r} is not allowed: use {ORIGIN_TEXT}")
    return origin


def origin_of_host(hostname: str) -> str:
    """The default origin of a machine: its host name's first label, any character the rule
    does not allow replaced by ``-`` (``gpu-7.cluster.local`` gives ``gpu-7``)."""
    label = re.sub(r"[^A-Za-z0-9_-]", "-", hostname.split(".")[0])[:63].lstrip("-")
    return label or "host"


def relayed_folder(origin: str, run_id: str) -> str:
    """The run folder a central server keeps the run ``run_id`` of ``origin`` in.

    ``<origin>.<run id>``: an origin holds no dot, so no two (origin, run id) pairs meet. When
    that is longer than a name may be, the run id is cut and the sha256 of the whole of it
    (12 hex digits) keeps it apart from every other cut the same way.
    """
    folder = f"{check_origin(origin)}.{check('run id', run_id)}"
    if len(folder) <= MAX_NAME:
        return folder
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:12]
    return f"{folder[: MAX_NAME - 13]}-{digest}"


def files(path: Path) -> list[str]:
    """The valid names of the regular files in ``path`` (not symlinks, not hidden: a name
    starting with ``.`` is a file still being written), sorted. Empty when ``path`` is not a
    folder."""
    return _entries(path, os.DirEntry.is_file)


def _entries(path: Path, kind: Callable[..., bool]) -> list[str]:
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(
        entry.name
        for entry in entries
        if is_valid(entry.name) and kind(entry, follow_symlinks=False)
    )
