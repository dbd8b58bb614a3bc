"""A run's other records: media, histograms, tables, text, console, system metrics, alerts,
rejects. Each is a list ordered by step (or seq/time), paged with ``after`` and ``limit``.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query, Request
from waddle.server import wire
from waddle.server.routes.lookup import context, stream_number
from waddle.server.routes.params import After, Limit, Rank, Step

router = APIRouter(prefix="/api/projects/{project}/runs/{run_id}", tags=["records"])


def _rich(request, project, run_id, table, key, step, after, limit, rank):
    run = stream_number(request, project, run_id, rank)
    where, params = ["run = $run", "seq > $after"], {"run": run, "after": after}
    if key is not None:
        where.append("key = $key")
        params["key"] = key
    if step is not None:
        where.append("step = $step")
        params["step"] = step
    rows = (
        context(request)
        .store.reader()
        .execute(
            f"SELECT key, step, t, seq, type, value FROM {table} WHERE {' AND '.join(where)}"
            f" ORDER BY seq LIMIT {limit}",
            params,
        )
        .fetchall()
    )
    items = [
        {"key": k, "step": s, "t": t, "seq": q, "type": kind, "value": wire.loads_json_column(v)}
        for k, s, t, q, kind, v in rows
    ]
    return wire.WireJSON({"items": items, "cursor": items[-1]["seq"] if items else after})


def _rich_route(table: str, default_limit: int, summary: str) -> None:
    """GET /{table}: the rows of one rich-value table, by key and step, paged by seq."""

    def endpoint(
        request: Request,
        project: str,
        run_id: str,
        key: str | None = None,
        step: Step = None,
        after: After = -1,
        limit: Limit = default_limit,
        rank: Rank = None,
    ):
        return _rich(request, project, run_id, table, key, step, after, limit, rank)

    router.add_api_route(f"/{table}", endpoint, methods=["GET"], name=table, description=summary)


_rich_route(
    "media", 1000, 'Rich values (`{"_type": ...}` objects) other than histograms and tables.'
)
_rich_route("histograms", 1000, "Histograms of a key, all steps or one `step`.")
_rich_route("tables", 100, "Logged tables, paged by seq (`after` = the previous page's `cursor`).")


@router.get("/text")
def text(
    request: Request,
    project: str,
    run_id: str,
    key: str | None = None,
    after: After = -1,
    limit: Limit = 1000,
    rank: Rank = None,
):
    """String values logged with ``run.log()``."""
    run = stream_number(request, project, run_id, rank)
    rows = (
        context(request)
        .store.reader()
        .execute(
            "SELECT key, step, t, seq, value FROM text WHERE run = $run AND seq > $after"
            " AND ($key IS NULL OR key = $key) ORDER BY seq LIMIT $limit",
            {"run": run, "after": after, "key": key, "limit": limit},
        )
        .fetchall()
    )
    items = [{"key": k, "step": s, "t": t, "seq": q, "value": v} for k, s, t, q, v in rows]
    return wire.WireJSON({"items": items, "cursor": items[-1]["seq"] if items else after})


@router.get("/console")
def console(
    request: Request,
    project: str,
    run_id: str,
    after: After = -1,
    limit: Limit = 1000,
    rank: Rank = None,
):
    """Captured stdout/stderr after the cursor ``after`` (a seq of the rank's stream)."""
    run = stream_number(request, project, run_id, rank)
    rows = context(request).store.query(
        "SELECT seq, t, stream, text FROM console WHERE run = ? AND seq > ? ORDER BY seq LIMIT ?",
        [run, after, limit],
    )
    items = [{"seq": q, "t": t, "stream": s, "text": x} for q, t, s, x in rows]
    return wire.WireJSON({"items": items, "cursor": items[-1]["seq"] if items else after})


@router.get("/system")
def system(
    request: Request,
    project: str,
    run_id: str,
    key: str | None = None,
    after: After = -1,
    limit: Annotated[int, Query(ge=1, le=1_000_000)] = 100_000,
    rank: Rank = None,
):
    """System metrics as series over time: ``{key: {"t": [...], "value": [...]}}``."""
    run = stream_number(request, project, run_id, rank)
    rows = (
        context(request)
        .store.reader()
        .execute(
            "SELECT key, t, value, seq FROM system WHERE run = $run AND seq > $after"
            " AND ($key IS NULL OR key = $key) ORDER BY seq LIMIT $limit",
            {"run": run, "after": after, "key": key, "limit": limit},
        )
        .fetchall()
    )
    columns: dict[str, tuple[list, list]] = {}
    for k, t, value, _seq in rows:
        times, values = columns.setdefault(k, ([], []))
        times.append(t)
        values.append(value)
    series = {
        k: {"t": times, "value": wire.floats(np.array(values, dtype=np.float64))}
        for k, (times, values) in columns.items()
    }
    return wire.WireJSON({"series": series, "cursor": rows[-1][3] if rows else after})


@router.get("/alerts")
def alerts(request: Request, project: str, run_id: str, rank: Rank = None):
    """Alerts raised with ``run.alert()``."""
    run = stream_number(request, project, run_id, rank)
    rows = context(request).store.query(
        "SELECT seq, t, title, text, level FROM alerts WHERE run = ? ORDER BY seq", [run]
    )
    return wire.WireJSON(
        {
            "items": [
                {"seq": q, "t": t, "title": title, "text": x, "level": level}
                for q, t, title, x, level in rows
            ]
        }
    )


@router.get("/rejects")
def rejects(request: Request, project: str, run_id: str, limit: Limit = 1000, rank: Rank = None):
    """Lines and values the index could not take, and gaps: file, byte offset, kind, reason."""
    run = stream_number(request, project, run_id, rank)
    rows = context(request).store.query(
        'SELECT file, "offset", kind, reason, t FROM rejects WHERE run = ?'
        ' ORDER BY t, "offset" LIMIT ?',
        [run, limit],
    )
    return wire.WireJSON(
        {
            "items": [
                {"file": f, "offset": o, "kind": k, "reason": r, "t": t} for f, o, k, r, t in rows
            ]
        }
    )
