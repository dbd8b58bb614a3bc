"""``run.log_code()``: which source files of a tree to save with a run, as W&B chooses them.

A file is saved when ``include_fn`` accepts it (by default: Python files, requirements files
and Dockerfiles) and ``exclude_fn`` does not. Inside a git work tree the candidates are the
files git tracks or would track (``.gitignore`` respected); elsewhere, every file under the
root except hidden folders, virtual environments and ``node_modules``. The run's log folder is
never included. The files are stored through ``run.save`` under ``code/<path in the tree>``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

SKIPPED_FOLDERS = frozenset({"node_modules", "__pycache__", "site-packages"})
MAX_FILES = 10_000


def is_source(path: str, root: str | None = None) -> bool:
    """W&B's default: Python files, requirements files and Dockerfiles."""
    name = os.path.basename(path)
    return name.endswith(".py") or name.startswith("requirements") or name == "Dockerfile"


def source_files(
    root: Path,
    include_fn: Callable[..., bool] | None,
    exclude_fn: Callable[..., bool] | None,
    log_dir: Path,
) -> list[Path]:
    """The files under ``root`` to save, at most MAX_FILES, in path order."""
    root = root.resolve()
    log_dir = log_dir.resolve()
    include = include_fn or is_source
    chosen = []
    for path in _candidates(root):
        if path.is_relative_to(log_dir) or not path.is_file():
            continue
        if _accepts(include, path, root) and not (exclude_fn and _accepts(exclude_fn, path, root)):
            chosen.append(path)
            if len(chosen) >= MAX_FILES:
                break
    return chosen


def _accepts(function: Callable[..., Any], path: Path, root: Path) -> bool:
    # W&B's include_fn and exclude_fn take (path, root) or just (path).
    try:
        return bool(function(str(path), str(root)))
    except TypeError:
        return bool(function(str(path)))


def _candidates(root: Path) -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return sorted(_walk(root))
    return sorted(root / name for name in os.fsdecode(listed).split("\0") if name)


def _walk(root: Path) -> list[Path]:
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [
            name
            for name in subfolders
            if not name.startswith(".")
            and name not in SKIPPED_FOLDERS
            and not (Path(folder) / name / "pyvenv.cfg").exists()
        ]
        found.extend(Path(folder) / name for name in files)
    return found
