"""Health and projects: ``GET /api/health``, ``GET /api/projects``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from waddle.server.errors import not_found
from waddle.server.routes.lookup import RUN_STATUS, context, cutoff

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
        "faults": faults,
    }


@router.get("/projects")
def projects(request: Request):
    """Every project with its run count, running count and last activity (newest first)."""
    rows = (
        context(request)
        .store.reader()
        .execute(
            f"SELECT project, count(*), count(*) FILTER (WHERE ({RUN_STATUS}) = 'running'),"
            " max(updated) FROM runs GROUP BY project ORDER BY max(updated) DESC NULLS LAST",
            {"cutoff": cutoff(request)},
        )
        .fetchall()
    )
    return {
        "projects": [
            {"name": name, "runs": count, "running": running, "last_activity": last}
            for name, count, running, last in rows
        ]
    }


@router.get("/projects/{project}/keys")
def keys(request: Request, project: str):
    """The top-level config and summary keys and the tags used by any of the project's runs
    (what a runs table offers as columns and filters), each sorted."""
    cursor = context(request).store.reader()
    found = {}
    for name, expression in (
        ("config", "unnest(json_keys(config))"),
        ("summary", "unnest(json_keys(summary))"),
        ("tags", "unnest(tags)"),
    ):
        rows = cursor.execute(
            f"SELECT DISTINCT {expression} AS k FROM runs WHERE project = ? ORDER BY k", [project]
        ).fetchall()
        found[name] = [key for (key,) in rows if key is not None]
    if (
        not any(found.values())
        and not cursor.execute("SELECT 1 FROM runs WHERE project = ? LIMIT 1", [project]).fetchall()
    ):
        raise not_found(f"no project {project!r}")
    return found
