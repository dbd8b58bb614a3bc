"""Resolving a request's path parameters to the index: the server context and a run's id.

Unknown projects and runs raise 404 with a message naming what was not found.
"""

from __future__ import annotations

import time

from starlette.requests import HTTPConnection as Request
from waddle.server.errors import ApiError, not_found

RUN_STATUS = "CASE WHEN status = 'running' AND updated < $cutoff THEN 'crashed' ELSE status END"


def context(request: Request):
    return request.app.state.waddle


def cutoff(request: Request) -> float:
    """Runs whose newest event is older than this without a finish count as crashed."""
    return time.time() - context(request).settings.heartbeat_timeout


def run_number(request: Request, project: str, run_id: str) -> int:
    store = context(request).store
    row = store.query("SELECT run FROM runs WHERE project = ? AND run_id = ?", [project, run_id])
    if row:
        return row[0][0]
    if not store.query("SELECT 1 FROM runs WHERE project = ? LIMIT 1", [project]):
        raise not_found(f"no project {project!r}")
    raise no_run(project, run_id)


def no_run(project: str, run_id: str) -> ApiError:
    return not_found(f"no run {run_id!r} in project {project!r}")
