"""Health and projects: ``GET /api/health``, ``GET /api/projects``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from waddle.server.errors import not_found
from waddle.server.routes.lookup import RUNS_WITH_STATUS, context, status_of

router = APIRouter(prefix="/api", tags=["projects"])


# News waiting longer than this to be indexed, once caught up, means ingest is not keeping up.
LAG_LIMIT = 30.0


@router.get("/health")
def health(request: Request):
    """Liveness, the API version, where ingest stands, and the background faults."""
    ctx = context(request)
    ingest = ctx.indexer.status()
    faults = ctx.notices.snapshot()
    if not ingest["alive"]:
        status = "down"
    elif any(fault["active"] for fault in faults) or (
        ctx.indexer.caught_up.is_set() and ingest["lag_seconds"] > LAG_LIMIT
    ):
        status = "degraded"
    elif not ctx.indexer.caught_up.is_set():
        status = "catching_up"
    else:
        status = "ok"
    return {
        "status": status,
        "api_version": 1,
        "log_dir": str(ctx.root),
        "watcher": ctx.watcher.using,
        "ingest": ingest,
        "relay": ctx.relay.status() if ctx.relay is not None else None,
        "intake": {**ctx.intake.status(), "artifacts": dict(ctx.artifact_intake.totals)},
        "faults": faults,
    }


@router.get("/projects")
def projects(request: Request):
    """Every project with its run count, running count and last activity (newest first)."""
    rows = (
        context(request)
        .store.reader()
        .execute(
            "SELECT project, count(*), count(*) FILTER (WHERE run_status = 'running'),"
            f" max(updated) FROM {RUNS_WITH_STATUS} GROUP BY project"
            " ORDER BY max(updated) DESC NULLS LAST",
            status_of(request),
        )
        .fetchall()
    )
    return {
        "projects": [
            {"name": name, "runs": count, "running": running, "last_activity": last}
            for name, count, running, last in rows
        ]
    }


# Summary keys; a key whose summary is an object of aggregates (define_metric's {"max": …})
# is offered as KEY.AGGREGATE, what the runs list sorts by.
_SUMMARY_KEYS = """
SELECT DISTINCT k || coalesce('.' || aggregate_name, '') AS k FROM (
  SELECT k, unnest(CASE WHEN json_type(v) = 'OBJECT' THEN json_keys(v) ELSE [NULL] END) AS aggregate_name
  FROM (
    SELECT k, json_extract(summary, '$."' || replace(replace(k, '\\', '\\\\'), '"', '\\"') || '"') AS v
    FROM (SELECT unnest(json_keys(summary)) AS k, summary FROM runs WHERE project = ?)
  )
)"""


@router.get("/projects/{project}/keys")
def keys(request: Request, project: str):
    """The top-level config and summary keys (``KEY.AGGREGATE`` for a summary that is an
    object of aggregates), the tags and the origins (machines relayed runs came from) of any of
    the project's runs (what a runs table offers as columns and filters), each sorted."""
    cursor = context(request).store.reader()
    found = {}
    for name, sql in (
        ("config", "SELECT DISTINCT unnest(json_keys(config)) AS k FROM runs WHERE project = ?"),
        ("summary", _SUMMARY_KEYS),
        ("tags", "SELECT DISTINCT unnest(tags) AS k FROM runs WHERE project = ?"),
        ("origins", "SELECT DISTINCT origin AS k FROM runs WHERE project = ?"),
    ):
        rows = cursor.execute(f"{sql} ORDER BY k", [project]).fetchall()
        found[name] = [key for (key,) in rows if key is not None]
    if (
        not any(found.values())
        and not cursor.execute("SELECT 1 FROM runs WHERE project = ? LIMIT 1", [project]).fetchall()
    ):
        raise not_found(f"no project {project!r}")
    return found
