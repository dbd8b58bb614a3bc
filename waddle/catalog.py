"""The catalog: every project and run found in a log folder, read straight from the files.

Used by ``waddle ls``; needs no server and no index. A project is a folder of the log folder,
a run a folder of a project holding at least one segment. Folders whose names start with a
dot (the server keeps its index in ``.waddle``) are not projects.
"""

from __future__ import annotations

import os
from pathlib import Path

from waddle.run_folder import RunRecord, inspect_run


def list_runs(
    log_dir: Path, heartbeat_timeout: float, project: str | None = None
) -> list[RunRecord]:
    """Every run under ``log_dir`` (or one project of it), oldest first within each project."""
    records = []
    for project_dir in _subfolders(log_dir):
        if project is not None and project_dir.name != project:
            continue
        for run_dir in _subfolders(project_dir):
            record = inspect_run(run_dir, heartbeat_timeout)
            if record is not None:
                records.append(record)
    return records


def _subfolders(path: Path) -> list[Path]:
    try:
        entries = sorted(os.scandir(path), key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [
        Path(entry.path) for entry in entries if entry.is_dir() and not entry.name.startswith(".")
    ]
