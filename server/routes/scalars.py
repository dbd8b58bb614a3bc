"""Scalar series: one series, many series in one request, and a run's scalars as CSV or Parquet.

Without ``points`` a series comes back whole; with ``points=N`` as at most N M4 buckets over
[start, end] (see :mod:`waddle.server.series`); ``smooth`` applies the debiased EMA first.
"""

from __future__ import annotations

import io
from typing import Annotated, Literal

import pyarrow.csv
import pyarrow.parquet
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from waddle.server import series, wire
from waddle.server.errors import not_found
from waddle.server.routes.lookup import context, run_number

router = APIRouter(prefix="/api/projects/{project}", tags=["scalars"])

XAxis = Literal["step", "time"]
MAX_POINTS = 100_000


def _series(request, project, run_id, key, x, start, end, points, smooth):
    run = run_number(request, project, run_id)
    cursor = context(request).store.reader()
    found = cursor.execute(
        "SELECT 1 FROM metrics WHERE run = ? AND key = ? AND kind = 'scalar'", [run, key]
    ).fetchall()
    if not found:
        raise not_found(f"run {run_id!r} has no scalar key {key!r}")
    out = {"run": run_id, "key": key, "x": x, "smooth": smooth or None, "points": points}
    if points is not None and not smooth:
        out["buckets"] = series.m4_stored(cursor, run, key, x, start, end, points)
        return out
    columns = series.fetch(cursor, run, key, x, None if smooth else start, end)
    if smooth:
        columns["value"] = series.ema(columns["value"], smooth)
    if points is not None:
        out["buckets"] = series.m4_arrays(cursor, columns, x, start, end, points)
        return out
    if smooth and start is not None:
        keep = columns[series.X_COLUMNS[x]] >= start
        columns = {name: array[keep] for name, array in columns.items()}
    out["series"] = {
        "step": columns["step"].tolist(),
        "t": columns["t"].tolist(),
        "value": wire.floats(columns["value"]),
    }
    return out


@router.get("/runs/{run_id}/scalars")
def scalars(
    request: Request,
    project: str,
    run_id: str,
    key: str,
    x: XAxis = "step",
    start: float | None = None,
    end: float | None = None,
    points: Annotated[int | None, Query(ge=1, le=MAX_POINTS)] = None,
    smooth: Annotated[float, Query(ge=0, lt=1, description="EMA weight, 0 = off")] = 0.0,
):
    """One series: whole, or as M4 buckets (``points``), optionally smoothed first."""
    return _series(request, project, run_id, key, x, start, end, points, smooth)


class SeriesRef(BaseModel):
    run: str
    key: str


class BatchRequest(BaseModel):
    series: list[SeriesRef] = Field(min_length=1, max_length=500)
    x: XAxis = "step"
    start: float | None = None
    end: float | None = None
    points: int | None = Field(default=None, ge=1, le=MAX_POINTS)
    smooth: float = Field(default=0.0, ge=0, lt=1)


@router.post("/scalars")
def scalars_batch(request: Request, project: str, body: BatchRequest):
    """Many (run, key) series of the project in one request; a missing one gets an error entry."""
    results = []
    for ref in body.series:
        try:
            results.append(
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
        except Exception as error:  # one missing series must not fail the others
            code = getattr(error, "code", "internal")
            results.append(
                {
                    "run": ref.run,
                    "key": ref.key,
                    "error": {"code": code, "message": getattr(error, "message", str(error))},
                }
            )
    return {"results": results}


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
            " ORDER BY key, step, seq",
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
