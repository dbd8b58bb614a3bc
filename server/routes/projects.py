"""Health and projects: ``GET /api/health``, ``GET /api/projects``."""

from __future__ import annotations

from fastapi import APIRouter, Request
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
        "relay": ctx.relay.status() if ctx.relay is not None else None,
        "intake": ctx.intake.status(),
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
