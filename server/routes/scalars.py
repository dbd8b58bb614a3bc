"""Scalar series: one series, many series in one request, and a run's scalars as CSV or Parquet.

Without ``points`` a series comes back whole (as JSON, or as an Arrow IPC stream); with
``points=N`` as at most N M4 buckets over [start, end] of x (see :mod:`waddle.server.series`);
``smooth`` applies the debiased EMA first. x is the step, the time, or another scalar key; by
default the step_metric the run defined for the key (``define_metric``), else the step.
"""

from __future__ import annotations

import io
import math
from typing import Annotated, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv
import pyarrow.parquet
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from waddle.server import series, wire
from waddle.server.errors import ApiError, invalid, not_found
from waddle.server.routes.lookup import context, no_run, run_number
from waddle.server.routes.params import RANK_HELP, Bound, Rank

from waddle.ranks import RANK_MAX

router = APIRouter(prefix="/api/projects/{project}", tags=["scalars"])

MAX_POINTS = 100_000
ARROW = "application/vnd.apache.arrow.stream"
X_HELP = "step, time, or another scalar key (default: the run's step_metric for the key, else step)"


def _axis(run_id: str, key: str, x: str | None, defines: str | None, known: dict) -> str:
    """The x axis to use: the one asked for, else the run's step_metric for ``key``, else step.

    ``known`` is :func:`series.scalar_keys` of the run for :func:`_names`.
    """
    if key not in known:
        raise not_found(f"run {run_id!r} has no scalar key {key!r}")
    if x is None:
        x = series.default_x(defines, key)
        return x if x is not None and x != key and x in known else series.STEP
    if x in (series.STEP, series.TIME) or x in known:
        return x
    raise not_found(f"run {run_id!r} has no scalar key {x!r} to use as x")


def _names(key: str, x: str | None, defines: str | None) -> list[str]:
    """The scalar keys :func:`_axis` and :func:`series.source` need to know of for ``key``."""
    return [key, x if x is not None else series.default_x(defines, key) or key]


Stream = tuple[int, int, str | None]  # (run, cursor, defines) of one rank's stream


def _runs(cursor, project: str, run_ids: list[str]) -> dict[str, dict[int, Stream]]:
    """run_id -> rank -> (run, cursor, defines) of the streams of the project's runs among
    ``run_ids``, in one query (under load every round trip to the index waits its turn for
    the GIL). A run is there once its rank 0 is.

    The cursor is the stream's highest seq the index holds (-1: none yet). Read in the same
    snapshot as a series, every point of the stream with a higher seq is missing from that
    answer and every point with a lower one is in it: the cursor to subscribe with over /ws.
    """
    rows = cursor.execute(
        "SELECT run_id, 0, run, next_seq - 1, defines FROM runs"
        " WHERE project = $project AND list_contains($ids, run_id)"
        " UNION ALL SELECT run_id, rank, run, next_seq - 1, defines FROM ranks"
        " WHERE project = $project AND list_contains($ids, run_id)",
        {"project": project, "ids": run_ids},
    ).fetchall()
    out: dict[str, dict[int, Stream]] = {}
    for run_id, rank, *rest in rows:
        out.setdefault(run_id, {})[rank] = tuple(rest)
    return {run_id: streams for run_id, streams in out.items() if 0 in streams}


def _candidates(run_id: str, streams: dict[int, Stream], rank: int | None) -> list[int]:
    """The ranks whose stream may hold a series: ``rank`` when asked for, else every one."""
    if rank is None:
        return sorted(streams)
    if rank not in streams:
        raise not_found(f"run {run_id!r} has no rank {rank}")
    return [rank]


def _pick(candidates: list[int], streams: dict[int, Stream], key: str, known: dict) -> int:
    """The rank whose series of ``key`` is answered: the first candidate (rank 0 first) that
    logged it; else the first, whose answer says the key is missing."""
    for rank in candidates:
        if key in known[streams[rank][0]]:
            return rank
    return candidates[0]


def _series(request, project, run_id, key, x, start, end, points, smooth, rank=None) -> dict:
    """One series: its buckets, or (without ``points``) its Arrow table under ``"table"``."""
    cursor = context(request).store.reader()
    with series.snapshot(cursor):
        streams = _runs(cursor, project, [run_id]).get(run_id)
        if streams is None:
            run_number(request, project, run_id)  # raises the 404 that says what is missing
        candidates = _candidates(run_id, streams, rank)
        wanted = {streams[r][0]: _names(key, x, streams[r][2]) for r in candidates}
        known_of = series.scalar_keys_of(cursor, wanted)
        rank = _pick(candidates, streams, key, known_of)
        run, seq, defines = streams[rank]
        known = known_of[run]
        axis = _axis(run_id, key, x, defines, known)
        src = series.source(cursor, run, key, axis, "", known)
        out = {"run": run_id, "rank": rank, "key": key, "x": axis, "smooth": smooth or None}
        out["points"], out["cursor"] = points, seq
        if points is not None and not smooth:
            out["buckets"] = series.m4(cursor, [src], start, end, points)[0]
            return out
        table = series.fetch(cursor, src, *((None, None) if smooth else (start, end)))
        if smooth:
            smoothed = series.ema(table["value"].to_numpy(), smooth)
            table = table.set_column(table.schema.get_field_index("value"), "value", [smoothed])
        if points is not None:
            out["buckets"] = series.m4_table(cursor, table, axis, start, end, points)
            return out
    if smooth and (start is not None or end is not None):
        low = -math.inf if start is None else start
        high = math.inf if end is None else end
        x_column = table["x"]
        table = table.filter(
            pc.and_(pc.greater_equal(x_column, low), pc.less_equal(x_column, high))
        )
    if axis == series.TIME:
        table = table.sort_by("x")
    if axis in (series.STEP, series.TIME):
        table = table.drop_columns(["x"])
    out["table"] = table.select(
        [name for name in ("step", "t", "x", "value") if name in table.column_names]
    )
    return out


def _json(out: dict) -> dict:
    table = out.pop("table", None)
    if table is not None:
        out["series"] = {
            name: wire.floats(table[name].to_numpy())
            if name in ("value", "x")
            else table[name].to_numpy().tolist()
            for name in table.column_names
        }
    return out


def _arrow(out: dict) -> Response:
    table = out.pop("table")
    meta = {name: str(value) for name, value in out.items() if value is not None}
    table = table.replace_schema_metadata({f"waddle.{name}": value for name, value in meta.items()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return Response(sink.getvalue().to_pybytes(), media_type=ARROW)


@router.get("/runs/{run_id}/scalars")
def scalars(
    request: Request,
    project: str,
    run_id: str,
    key: str,
    x: Annotated[str | None, Query(min_length=1, max_length=256, description=X_HELP)] = None,
    start: Bound = None,
    end: Bound = None,
    points: Annotated[int | None, Query(ge=1, le=MAX_POINTS)] = None,
    smooth: Annotated[float, Query(ge=0, lt=1, description="EMA weight, 0 = off")] = 0.0,
    format: Annotated[
        Literal["json", "arrow"], Query(description="arrow: the full series as an Arrow IPC stream")
    ] = "json",
    rank: Rank = None,
):
    """One series: whole, or as M4 buckets (``points``), optionally smoothed first."""
    if format == "arrow" and points is not None:
        raise invalid("format=arrow is for the whole series: leave out points")
    out = _series(request, project, run_id, key, x, start, end, points, smooth, rank)
    return _arrow(out) if format == "arrow" else wire.WireJSON(_json(out))


class SeriesRef(BaseModel):
    run: str
    key: str
    rank: int | None = Field(
        default=None,
        ge=0,
        le=RANK_MAX,
        description=RANK_HELP + ", else the lowest that logged the key",
    )


class BatchRequest(BaseModel):
    series: list[SeriesRef] = Field(min_length=1, max_length=500)
    x: str | None = Field(default=None, min_length=1, max_length=256, description=X_HELP)
    start: float | None = Field(default=None, allow_inf_nan=False)
    end: float | None = Field(default=None, allow_inf_nan=False)
    points: int | None = Field(default=None, ge=1, le=MAX_POINTS)
    smooth: float = Field(default=0.0, ge=0, lt=1)


@router.post("/scalars")
def scalars_batch(request: Request, project: str, body: BatchRequest):
    """Many (run, key) series of the project in one request; a missing one gets an error entry."""
    if not context(request).store.query("SELECT 1 FROM runs WHERE project = ? LIMIT 1", [project]):
        raise not_found(f"no project {project!r}")
    if body.points is not None and not body.smooth:
        return wire.WireJSON({"results": _batch_m4(request, project, body)})
    results = []
    for ref in body.series:
        try:
            results.append(
                _json(
                    _series(
                        request,
                        project,
                        ref.run,
                        ref.key,
                        body.x,
                        body.start,
                        body.end,
                        body.points,
                        body.smooth,
                        ref.rank,
                    )
                )
            )
        except Exception as error:  # one missing series must not fail the others
            results.append(_error(ref, error))
    return wire.WireJSON({"results": results})


def _batch_m4(request, project: str, body: BatchRequest) -> list[dict]:
    """M4 of every series of the batch in one query, on one snapshot: the runs and their keys
    are looked up in two queries for the whole batch, not a few per series."""
    cursor = context(request).store.reader()
    results, sources = [], []
    with series.snapshot(cursor):
        runs = _runs(cursor, project, sorted({ref.run for ref in body.series}))
        wanted: dict[int, list[str]] = {}
        candidates: dict[int, list[int] | ApiError] = {}
        for index, ref in enumerate(body.series):
            streams = runs.get(ref.run)
            try:
                if streams is None:
                    raise no_run(project, ref.run)
                candidates[index] = _candidates(ref.run, streams, ref.rank)
            except ApiError as error:
                candidates[index] = error
                continue
            for rank in candidates[index]:
                run, _, defines = streams[rank]
                wanted.setdefault(run, []).extend(_names(ref.key, body.x, defines))
        known = series.scalar_keys_of(cursor, wanted)
        for index, ref in enumerate(body.series):
            try:
                if isinstance(candidates[index], ApiError):
                    raise candidates[index]
                streams = runs[ref.run]
                rank = _pick(candidates[index], streams, ref.key, known)
                run, seq, defines = streams[rank]
                axis = _axis(ref.run, ref.key, body.x, defines, known[run])
            except ApiError as error:  # one missing series must not fail the others
                results.append(_error(ref, error))
                continue
            sources.append(series.source(cursor, run, ref.key, axis, f"_{index}", known[run]))
            results.append(
                {
                    "run": ref.run,
                    "rank": rank,
                    "key": ref.key,
                    "x": axis,
                    "smooth": None,
                    "points": body.points,
                    "cursor": seq,
                }
            )
        buckets = iter(series.m4(cursor, sources, body.start, body.end, body.points))
    for result in results:
        if "error" not in result:
            result["buckets"] = next(buckets)
    return results


def _error(ref: SeriesRef, error: Exception) -> dict:
    return {
        "run": ref.run,
        "key": ref.key,
        "error": {
            "code": getattr(error, "code", "internal"),
            "message": getattr(error, "message", str(error)),
        },
    }


@router.get("/runs/{run_id}/export")
def export(
    request: Request, project: str, run_id: str, format: Literal["csv", "parquet"] = "csv"
) -> Response:
    """All the run's scalars in long form (key, step, t, value) as CSV or Parquet."""
    run = run_number(request, project, run_id)
    table = (
        context(request)
        .store.reader()
        .sql(
            "SELECT key, step, t, value FROM (SELECT key, step, t, value, seq FROM scalars WHERE"
            " run = $run UNION ALL SELECT key, step, t, value, seq FROM scalars_live WHERE run = $run)"
            " QUALIFY row_number() OVER (PARTITION BY key, step ORDER BY seq DESC) = 1"
            " ORDER BY key, step",
            params={"run": run},
        )
        .to_arrow_table()
    )
    buffer = io.BytesIO()
    if format == "csv":
        pyarrow.csv.write_csv(table, buffer)
        media = "text/csv"
    else:
        pyarrow.parquet.write_table(table, buffer)
        media = "application/vnd.apache.parquet"
    name = f"{project}-{run_id}-scalars.{format}"
    return Response(
        buffer.getvalue(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
