"""Runs: the list of a project (filter, sort, page), one run in full, and its metric keys."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from waddle.server import wire
from waddle.server.errors import invalid, not_found
from waddle.server.ingester import VALUE_TABLES
from waddle.server.routes.artifacts import run_artifacts
from waddle.server.routes.lookup import (
    RUNS_WITH_STATUS,
    STREAM_STATUS,
    STREAMS,
    context,
    run_number,
    status_of,
    stream_number,
)
from waddle.server.routes.params import Limit, Rank
from waddle.server.run_state import AGGREGATES, summary_spec

from waddle.event import INT64_MAX

router = APIRouter(prefix="/api/projects/{project}/runs", tags=["runs"])

# (name in the response, column of the list query) per field of a listed run.
LIST_FIELDS = (
    ("id", "run_id"),
    ("origin", "origin"),
    ("name", "name"),
    ("status", "run_status"),
    ("tags", "tags"),
    ("group", '"group"'),
    ("job_type", "job_type"),
    ("notes", "notes"),
    ("config", "config"),
    ("summary", "summary"),
    ("created", "created"),
    ("updated", "updated"),
    ("last_step", "last_step"),
    ("rejected", "rejected"),
    ("gaps", "gaps"),
)
PLAIN_SORTS = {"created", "updated", "name", "run_id", "status", "last_step", "origin"}
# ``origin=`` of the runs logged on this server (not relayed): no origin may be named "-".
HERE = "-"
SORT = re.compile(r"(-?)(summary|config)\.(.+)\Z|(-?)([a-z_]+)\Z", re.S)
METRIC_SORT = re.compile(r"(-?)metric\.(.+)\.(min|max|last)\Z", re.S)


def _wire_double(column: str) -> str:
    """SQL writing a DOUBLE as JSON the wire's way (non-finite as "NaN", "Infinity", ...)."""
    return (
        f"CASE WHEN isnan({column}) THEN to_json('NaN') WHEN isinf({column}) AND {column} > 0"
        f" THEN to_json('Infinity') WHEN isinf({column}) THEN to_json('-Infinity')"
        f" ELSE to_json({column}) END"
    )


# Per listed run, the min, max and last of the scalar keys asked for with ``metric=``.
METRICS_FIELD = (
    "(SELECT json_group_object(m.key, json_object("
    + ", ".join(f"'{name}', {_wire_double('m.' + name)}" for name in ("min", "max", "last"))
    + ")) FROM metrics m WHERE m.run = page.run AND m.kind = 'scalar'"
    " AND list_contains($metric_keys, m.key))"
)


# Per listed run, with ``scalar_keys=true``: every key it logged as a scalar, on any rank (what
# a compare view makes charts of), sorted.
SCALAR_KEYS_FIELD = (
    "(SELECT coalesce(list_sort(list_distinct(list(m.key))), []) FROM metrics m"
    " WHERE m.kind = 'scalar' AND (m.run = page.run OR m.run IN (SELECT r.run FROM ranks r"
    " WHERE r.project = $project AND r.run_id = page.run_id)))"
)


def _run_dict(names: list[str], row: tuple):
    out = dict(zip(names, row, strict=True))
    for name in ("config", "summary", "context", "finish"):
        if name in out:
            out[name] = wire.loads_json_column(out[name])
    return out


@router.get("")
def list_runs(
    request: Request,
    project: str,
    status: Annotated[Literal["running", "finished", "crashed"] | None, Query()] = None,
    tag: str | None = None,
    origin: Annotated[
        str | None,
        Query(description='the machine runs were relayed from; "-" for the runs logged here'),
    ] = None,
    text: Annotated[str | None, Query(description="in name, id, notes, group or tags")] = None,
    sort: Annotated[
        str,
        Query(
            description="created, updated, name, run_id, status, last_step, origin, "
            "summary.KEY or config.KEY; prefix - for descending"
        ),
    ] = "-created",
    limit: Limit = 100,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
    metric: Annotated[
        list[str] | None,
        Query(description="a scalar key (repeatable): each run carries metrics.KEY.min/max/last"),
    ] = None,
    id: Annotated[
        list[str] | None, Query(description="a run id (repeatable): only these runs")
    ] = None,
    scalar_keys: Annotated[
        bool, Query(description="each run carries scalar_keys: the keys it logged as scalars")
    ] = False,
):
    """The project's runs: filter by status, tag, origin and text; sort by any field; page."""
    by_metric = METRIC_SORT.match(sort)
    match = SORT.match(sort)
    if not by_metric and (not match or (match.group(5) and match.group(5) not in PLAIN_SORTS)):
        raise invalid(
            f"sort={sort!r}: use one of {', '.join(sorted(PLAIN_SORTS))}, summary.KEY, "
            "config.KEY or metric.KEY.min|max|last, with - in front for descending"
        )
    params: dict = {"project": project, **status_of(request)}
    if by_metric:
        descending = by_metric.group(1) == "-"
        params["sort_key"] = by_metric.group(2)
        order = (
            f"(SELECT {by_metric.group(3)} FROM metrics m WHERE m.run = page.run"
            " AND m.key = $sort_key AND m.kind = 'scalar') {d} NULLS LAST"
        )
    elif match.group(2):
        descending = match.group(1) == "-"
        name = match.group(3)
        params["path"] = _json_path(name)
        # KEY.AGGREGATE reaches into a summary that define_metric made an object
        # ({"max": ...}); a key whose own name ends that way wins.
        head, _, tail = name.rpartition(".")
        params["inner"] = _json_path(head, tail) if head and tail in AGGREGATES else "$.__none__"
        text_value = (
            f"coalesce(json_extract_string({match.group(2)}, $path),"
            f" json_extract_string({match.group(2)}, $inner))"
        )
        order = f"TRY_CAST({text_value} AS DOUBLE) {{d}} NULLS LAST, {text_value} {{d}} NULLS LAST"
    else:
        descending = match.group(4) == "-"
        field = match.group(5)
        order = f"{field if field != 'status' else 'run_status'} {{d}} NULLS LAST"
    order = order.format(d="DESC" if descending else "ASC") + ", run_id"
    where = ["project = $project"]
    if origin == HERE:
        where.append("origin IS NULL")
        origin = None
    for value, name, clause in (
        (status, "status", "run_status = $status"),
        (tag, "tag", "list_contains(tags, $tag)"),
        (origin, "origin", "origin = $origin"),
        (id, "ids", "list_contains($ids, run_id)"),
    ):
        if value:
            where.append(clause)
            params[name] = value
    if text:
        where.append(
            '(name ILIKE $text OR run_id ILIKE $text OR notes ILIKE $text OR "group" ILIKE $text'
            " OR len(list_filter(tags, lambda tag: tag ILIKE $text)) > 0)"
        )
        params["text"] = f"%{text}%"
    cursor = context(request).store.reader()
    columns = ", ".join(column for _, column in LIST_FIELDS)
    sql = f"SELECT run, {columns} FROM {RUNS_WITH_STATUS} WHERE {' AND '.join(where)}"
    filters = {
        name: value for name, value in params.items() if name not in ("path", "inner", "sort_key")
    }
    total = cursor.execute(f"SELECT count(*) FROM ({sql})", filters).fetchone()[0]
    if (
        total == 0
        and not cursor.execute("SELECT 1 FROM runs WHERE project = ? LIMIT 1", [project]).fetchall()
    ):
        raise not_found(f"no project {project!r}")
    # DuckDB writes each run's JSON, its config and summary spliced in as stored: parsing them
    # and encoding 10,000 runs in Python took most of the list's time.
    fields = ", ".join(f"'{name}', {column}" for name, column in LIST_FIELDS)
    if metric:
        fields += f", 'metrics', coalesce({METRICS_FIELD}, '{{}}'::JSON)"
        params["metric_keys"] = metric
    if scalar_keys:
        fields += f", 'scalar_keys', {SCALAR_KEYS_FIELD}"
    ((runs,),) = cursor.execute(
        f"SELECT coalesce(string_agg(json_object({fields})::VARCHAR, ',' ORDER BY {order}), '')"
        f" FROM (SELECT * FROM ({sql}) AS page ORDER BY {order} LIMIT {limit} OFFSET {offset})"
        " AS page",
        params,
    ).fetchall()
    head = wire.dumps({"total": total, "limit": limit, "offset": offset})
    body = head[:-1] + b',"runs":[' + runs.encode() + b"]}"
    return Response(body, media_type="application/json")


@router.get("/{run_id}")
def get_run(request: Request, project: str, run_id: str):
    """One run with its context, finish record, counts of dropped values and rejected lines."""
    run = run_number(request, project, run_id)
    cursor = context(request).store.reader()
    result = cursor.execute(
        "SELECT * EXCLUDE (status, explicit_summary, next_seq, missing, run_status),"
        f" run_status AS status FROM {RUNS_WITH_STATUS} WHERE run = $run",
        {"run": run, **status_of(request)},
    )
    names = [column[0] for column in result.description]
    out = _run_dict(names, result.fetchone())
    defines = orjson.loads(out.pop("defines") or "[]")
    # The numbers' summary first, then each rich key's newest value (a value set explicitly
    # wins over it).
    summary = out["summary"]
    for key, value in _last_values(cursor, run, defines).items():
        summary.setdefault(key, value)
    out["id"] = out.pop("run_id")
    out.pop("run")
    out["dropped"] = {"steps": out.pop("dropped_steps"), "values": out.pop("dropped_values")}
    rejects = cursor.execute(
        'SELECT file, "offset", kind, reason, t FROM rejects WHERE run = ?'
        ' ORDER BY t, "offset" LIMIT 100',
        [run],
    ).fetchall()
    out["rejects"] = [
        {"file": file, "offset": offset, "kind": kind, "reason": reason, "t": t}
        for file, offset, kind, reason, t in rejects
    ]
    out["artifacts"] = run_artifacts(request, run)
    out["ranks"] = _ranks(cursor, request, project, run_id, run)
    return out


# Per key of a run logged as text or rich values only (no number), the value at its newest
# step (the newest logged there): the summary's "last" of such a key, as the client's.
LAST_VALUES = """
WITH wanted AS (
    SELECT key, max(last_step) AS step FROM metrics WHERE run = $run
    GROUP BY key HAVING bool_and(kind <> 'scalar')
)
SELECT key, arg_max(value, seq) FROM ({}) JOIN wanted USING (key, step)
GROUP BY key
""".format(
    " UNION ALL ".join(
        f"SELECT key, step, seq, {'to_json(value)' if table == 'text' else 'value'}::VARCHAR"
        f" AS value FROM {table} WHERE run = $run"
        for table in VALUE_TABLES  # text holds strings; the others JSON
    )
)


def _last_values(cursor, run: int, defines: list[dict]) -> dict[str, Any]:
    """The summary's part the index's stats do not hold: :data:`LAST_VALUES`, less the keys
    a define_metric gave no summary ("none")."""
    return {
        key: orjson.loads(value)
        for key, value in cursor.execute(LAST_VALUES, {"run": run}).fetchall()
        if summary_spec(defines, key) != []
    }


# Per stream of a run, what the run answer lists of it under ``ranks``.
RANK_FIELDS = (
    "rank",
    "status",
    "created",
    "updated",
    "last_step",
    "events",
    "rejected",
    "gaps",
    "exit_code",
    "host",
)


def _ranks(cursor, request: Request, project: str, run_id: str, run: int) -> list[dict]:
    """Each rank's stream of the run, rank 0 first, with its own status."""
    columns = (
        f"{STREAM_STATUS}, created, updated, last_step, events, rejected, gaps, exit_code,"
        " json_extract_string(context, '$.host')"
    )
    rows = cursor.execute(
        f"SELECT 0, {columns} FROM runs WHERE run = $run UNION ALL SELECT rank, {columns}"
        " FROM ranks WHERE project = $project AND run_id = $run_id ORDER BY 1",
        {"run": run, "project": project, "run_id": run_id, "cutoff": status_of(request)["cutoff"]},
    ).fetchall()
    return [dict(zip(RANK_FIELDS, row, strict=True)) for row in rows]


@router.get("/{run_id}/metrics")
def metrics(request: Request, project: str, run_id: str, rank: Rank = None):
    """Every key the run logged: its kind (scalar, text or a rich type), count, steps, stats;
    ``ranks``: the ranks that logged it, the stats being of the first of them (or of
    ``rank``'s stream, when asked for)."""
    run = stream_number(request, project, run_id, rank)
    rows = context(request).store.query(
        "SELECT key, kind, count, first_step, last_step, min, max,"
        " CASE WHEN finite > 0 THEN sum / finite END, last, s.rank,"
        " list(s.rank ORDER BY s.rank) OVER (PARTITION BY key, kind) AS ranks"
        f" FROM metrics JOIN ({STREAMS}) s USING (run)"
        " QUALIFY ($rank IS NULL AND s.rank = min(s.rank) OVER (PARTITION BY key, kind))"
        " OR run = $run ORDER BY key, kind",
        {"project": project, "run_id": run_id, "rank": rank, "run": run},
    )
    metrics = [
        {
            "key": key,
            "type": kind,
            "count": count,
            "first_step": first,
            "last_step": last,
            "min": low,
            "max": high,
            "mean": mean,
            "last": last_value,
            "rank": of_rank,
            "ranks": ranks,
        }
        for key, kind, count, first, last, low, high, mean, last_value, of_rank, ranks in rows
    ]
    return wire.WireJSON({"metrics": metrics})


def _json_path(*names: str) -> str:
    """A JSON path to the member ``names[0]``, then ``names[1]``…, each quoted."""
    return "$" + "".join('."' + n.replace("\\", "\\\\").replace('"', '\\"') + '"' for n in names)
