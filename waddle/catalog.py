"""The catalog: every project and run found in a log folder, read straight from the files.

Used by ``waddle ls``; needs no server and no index. A run of several ranks is one record, rank
0's, with the others in ``ranks`` and the run's status (waddle/ranks.py). A project is a folder of the log folder,
a run a folder of a project holding at least one segment; both named by the rule of
waddle/names.py (so ``.waddle``, where the server keeps its index, is not a project).
"""

from __future__ import annotations

from pathlib import Path

from waddle import names
from waddle.ranks import inspect_ranks
from waddle.run_folder import RunRecord, inspect_run


def list_runs(
    log_dir: Path, heartbeat_timeout: float, project: str | None = None
) -> list[RunRecord]:
    """Every run under ``log_dir`` (or one project of it), oldest first within each project."""
    records = []
    for name in names.folders(log_dir):
        if project is not None and name != project:
            continue
        for run_id in names.folders(log_dir / name):
            record = inspect_run(log_dir / name / run_id, heartbeat_timeout)
            if record is not None:
                inspect_ranks(record, heartbeat_timeout)
                records.append(record)
    return records
