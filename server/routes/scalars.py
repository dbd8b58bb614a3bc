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
from waddle.server.errors import invalid, not_found
from waddle.server.routes.lookup import context, run_number
from waddle.server.routes.params import Bound

router = APIRouter(prefix="/api/projects/{project}", tags=["scalars"])

MAX_POINTS = 100_000
ARROW = "application/vnd.apache.arrow.stream"
X_HELP = "step, time, or another scalar key (default: the run's step_metric for the key, else step)"


def _axis(cursor, run: int, run_id: str, key: str, x: str | None) -> str:
    """The x axis to use: the one asked for, else the run's step_metric for ``key``, else step."""
    rows = cursor.execute(
        "SELECT key, (SELECT defines FROM runs WHERE run = $run) FROM metrics"
        " WHERE run = $run AND kind = 'scalar' AND key IN ($key, $x)",
        {"run": run, "key": key, "x": x or key},
    ).fetchall()
    scalars = {name for name, _ in rows}
    if key not in scalars:
        raise not_found(f"run {run_id!r} has no scalar key {key!r}")
    if x is None:
        x = series.default_x(rows[0][1], key)
        if x is None or x == key:
            return series.STEP
        ((found,),) = cursor.execute(
            "SELECT count(*) FROM metrics WHERE run = ? AND kind = 'scalar' AND key = ?", [run, x]
        ).fetchall()
        return x if found else series.STEP
    if x in (series.STEP, series.TIME) or x in scalars:
        return x
    raise not_found(f"run {run_id!r} has no scalar key {x!r} to use as x")


def _source(request, project, run_id, key, x, tag: str = "", run=None, known=None):
    """The series.Source of ``key`` of ``run_id``; ``run`` (its number) and ``known``
    (:func:`series.scalar_keys`) when the caller has them."""
    run = run_number(request, project, run_id) if run is None else run
    cursor = context(request).store.reader()
    return series.source(cursor, run, key, _axis(cursor, run, run_id, key, x), tag, known)


def _series(request, project, run_id, key, x, start, end, points, smooth) -> dict:
    """One series: its buckets, or (without ``points``) its Arrow table under ``"table"``."""
    cursor = context(request).store.reader()
    with series.snapshot(cursor):
        run = run_number(request, project, run_id)
        src = _source(request, project, run_id, key, x, run=run)
        axis = src.x
        out = {"run": run_id, "key": key, "x": axis, "smooth": smooth or None, "points": points}
        out["cursor"] = series.cursor_of(cursor, run)
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
):
    """One series: whole, or as M4 buckets (``points``), optionally smoothed first."""
    if format == "arrow" and points is not None:
        raise invalid("format=arrow is for the whole series: leave out points")
    out = _series(request, project, run_id, key, x, start, end, points, smooth)
    return _arrow(out) if format == "arrow" else wire.WireJSON(_json(out))


class SeriesRef(BaseModel):
    run: str
    key: str


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
                    )
                )
            )
        except Exception as error:  # one missing series must not fail the others
            results.append(_error(ref, error))
    return wire.WireJSON({"results": results})


def _batch_m4(request, project: str, body: BatchRequest) -> list[dict]:
    """M4 of every series of the batch in one query, on one snapshot."""
    cursor = context(request).store.reader()
    results, sources, runs = [], [], {}
    with series.snapshot(cursor):
        for index, ref in enumerate(body.series):
            try:
                if ref.run not in runs:
                    run = run_number(request, project, ref.run)
                    names = [r.key for r in body.series if r.run == ref.run] + [body.x or ""]
                    known = series.scalar_keys(cursor, run, names)
                    runs[ref.run] = run, known, series.cursor_of(cursor, run)
                run, known, seq = runs[ref.run]
                src = _source(request, project, ref.run, ref.key, body.x, f"_{index}", run, known)
            except Exception as error:  # one missing series must not fail the others
                results.append(_error(ref, error))
                continue
            sources.append(src)
            results.append(
                {
                    "run": ref.run,
                    "key": ref.key,
                    "x": src.x,
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
