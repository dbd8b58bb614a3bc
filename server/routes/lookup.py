"""Resolving a request's path parameters to the index: the server context and a run's id.

Unknown projects and runs raise 404 with a message naming what was not found.
"""

from __future__ import annotations

import time

from starlette.requests import HTTPConnection as Request
from waddle.server.errors import ApiError, not_found

# One stream's status: crashed once its newest event is older than the heartbeat timeout
# without a finish (docs/format.md, "Run status").
STREAM_STATUS = "CASE WHEN status = 'running' AND updated < $cutoff THEN 'crashed' ELSE status END"
# Per run, its ranks other than 0 (rows of ``ranks``) in one row: whether one's finish says
# crashed, and the oldest newest event of those without a finish.
_RANKS = (
    "(SELECT project, run_id, bool_or(status = 'crashed') AS crashed,"
    " min(updated) FILTER (WHERE status = 'running') AS oldest_running"
    " FROM ranks GROUP BY project, run_id)"
)
# The rows of ``runs`` with each run's status as ``run_status``: crashed when one of its ranks
# died (its finish says crashed, or its stream went stale without a finish before the primary
# finished), else its primary's. The rule of waddle/ranks.py's run_status, in SQL. Takes
# $cutoff and $timeout (:func:`status_params`). A join, not a subquery per run: DuckDB
# answered that one by copying the whole table first (9 of a 10,000-run list's 12 ms count).
RUNS_WITH_STATUS = (
    "(SELECT runs.*, CASE WHEN k.crashed OR k.oldest_running < CASE WHEN runs.status ="
    " 'running' THEN $cutoff ELSE runs.updated - $timeout END THEN 'crashed' ELSE"
    f" {STREAM_STATUS} END AS run_status FROM runs LEFT JOIN {_RANKS} AS k"
    " ON k.project = runs.project AND k.run_id = runs.run_id)"
)


def context(request: Request):
    return request.app.state.waddle


def status_of(request: Request) -> dict[str, float]:
    """:func:`status_params` of the server: streams whose newest event is older than the
    cutoff without a finish count as crashed."""
    return status_params(context(request).settings.heartbeat_timeout)


# The streams of a run (rank 0's in runs, the others' in ranks) as (run, rank) rows; takes
# $project and $run_id.
STREAMS = (
    "SELECT run, 0 AS rank FROM runs WHERE project = $project AND run_id = $run_id"
    " UNION ALL SELECT run, rank FROM ranks WHERE project = $project AND run_id = $run_id"
)


def status_params(heartbeat_timeout: float) -> dict[str, float]:
    """The parameters :data:`RUNS_WITH_STATUS` and :data:`STREAM_STATUS` take, as of now."""
    return {"cutoff": time.time() - heartbeat_timeout, "timeout": heartbeat_timeout}


def run_number(request: Request, project: str, run_id: str) -> int:
    store = context(request).store
    row = store.query("SELECT run FROM runs WHERE project = ? AND run_id = ?", [project, run_id])
    if row:
        return row[0][0]
    if not store.query("SELECT 1 FROM runs WHERE project = ? LIMIT 1", [project]):
        raise not_found(f"no project {project!r}")
    raise no_run(project, run_id)


def stream_number(request: Request, project: str, run_id: str, rank: int | None) -> int:
    """The index's number of rank ``rank``'s stream of a run (rank 0's when None)."""
    run = run_number(request, project, run_id)
    if not rank:
        return run
    row = context(request).store.query(
        "SELECT run FROM ranks WHERE project = ? AND run_id = ? AND rank = ?",
        [project, run_id, rank],
    )
    if not row:
        raise not_found(f"run {run_id!r} in project {project!r} has no rank {rank}")
    return row[0][0]


def series_stream(
    request: Request, project: str, run_id: str, rank: int | None, key: str
) -> tuple[int, int]:
    """(rank, stream number) of a run's series of the scalar ``key``: ``rank``'s; without it
    rank 0's when rank 0 logged the key, else the lowest rank's that did (else rank 0's)."""
    run_number(request, project, run_id)  # the 404 of a missing run or project
    rows = context(request).store.query(
        f"SELECT s.rank, s.run FROM ({STREAMS}) s WHERE $rank IS NULL OR s.rank = $rank"
        " ORDER BY EXISTS (SELECT 1 FROM metrics m WHERE m.run = s.run AND m.key = $key"
        " AND m.kind = 'scalar') DESC, s.rank LIMIT 1",
        {"project": project, "run_id": run_id, "rank": rank, "key": key},
    )
    if not rows:
        raise not_found(f"run {run_id!r} in project {project!r} has no rank {rank}")
    return rows[0]


def no_run(project: str, run_id: str) -> ApiError:
    return not_found(f"no run {run_id!r} in project {project!r}")
