"""The name rule: what a project, a run id or a stored file may be called, and listing them.

Project names and run ids become folders of the log folder, and stored files are named inside a
run folder, so one rule decides which names are valid for the client that creates them and for
every reader that lists or serves them (``waddle ls``, the server's watcher, indexer and
``/files``): 1 to 128 letters, digits, ``_``, ``-`` or ``.``, not starting with ``.`` or ``-``.
A valid name can never climb out of its folder (``.`` and ``..`` start with a dot) nor hide a
separator, a NUL or a newline; a folder with any other name is, for every reader, not a project
or a run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_RULE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")
RULE_TEXT = "1 to 128 letters, digits, '_', '-' or '.', not starting with '.' or '-'"


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
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(
        entry.name
        for entry in entries
        if is_valid(entry.name) and entry.is_dir(follow_symlinks=False)
    )
