"""History: a run's logged values as rows, one per step (what ``waddle.Api()`` pages through
for W&B's ``history()`` and ``scan_history()`` when it reads a server).

A row holds, per key, the value logged at that step with the highest seq (docs/api.md, "One
value per step"), whatever its kind: scalars (non-finite as the wire's strings) apart from the
other values (text, rich values, lists, as logged), so that a text ``"NaN"`` is never read back
as a float. Rows are read by a window of steps, and each answer says where the next one
starts, so that a client pages through a run of any length in steps it chooses.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from waddle.server import wire
from waddle.server.errors import invalid
from waddle.server.routes.lookup import context, stream_number
from waddle.server.routes.params import Rank

from waddle.event import STEP_MAX

router = APIRouter(prefix="/api/projects/{project}/runs/{run_id}", tags=["history"])

MAX_WINDOW = 100_000  # steps one request may span
DEFAULT_WINDOW = 1_000

# Every value of a log event, by the table the index keeps it in: (table, value, other).
_SOURCES = (
    ("scalars", "value", "NULL::JSON"),
    ("scalars_live", "value", "NULL::JSON"),
    ("text", "NULL::DOUBLE", "to_json(value)"),
    ("media", "NULL::DOUBLE", "value"),  # files saved with run.save() are no logged value
    ("histograms", "NULL::DOUBLE", "value"),
    ("tables", "NULL::DOUBLE", "value"),
)


def _values(where: str, columns: str) -> str:
    """SQL of the values of every source table matching ``where``."""
    parts = []
    for table, value, other in _SOURCES:
        kept = f"{where} AND type <> 'file'" if table == "media" else where
        parts.append(f"SELECT {columns.format(value=value, other=other)} FROM {table} WHERE {kept}")
    return " UNION ALL ".join(parts)


@router.get("/history")
def history(
    request: Request,
    project: str,
    run_id: str,
    min_step: Annotated[int, Query(ge=0, le=STEP_MAX)] = 0,
    max_step: Annotated[
        int | None, Query(ge=1, le=STEP_MAX + 1, description="exclusive; default min_step+1000")
    ] = None,
    key: Annotated[
        list[str] | None, Query(description="repeatable: only steps holding every key, and those")
    ] = None,
    rank: Rank = None,
):
    """Rows of the steps in [min_step, max_step) of one rank's stream, and ``next``: the first
    step at or after max_step holding a value (of ``key``s), where the next window starts
    (null: none)."""
    if max_step is None:
        max_step = min(min_step + DEFAULT_WINDOW, STEP_MAX + 1)
    if not min_step < max_step <= min_step + MAX_WINDOW:
        raise invalid(f"max_step must be above min_step and at most {MAX_WINDOW} steps after it")
    run = stream_number(request, project, run_id, rank)
    params: dict = {"run": run, "low": min_step, "high": max_step}
    where = "run = $run"
    if key:
        where += " AND list_contains($keys, key)"
        params["keys"] = key
    cursor = context(request).store.reader()
    rows = cursor.execute(
        _values(
            f"{where} AND step >= $low AND step < $high",
            "key, step, t, seq, {value} AS value, {other} AS other",
        )
        + " QUALIFY row_number() OVER (PARTITION BY key, step ORDER BY seq DESC) = 1"
        " ORDER BY step, key",
        params,
    ).fetchall()
    ((following,),) = cursor.execute(
        f"SELECT min(step) FROM ({_values(f'{where} AND step >= $high', 'step')})",
        {name: value for name, value in params.items() if name != "low"},
    ).fetchall()
    out: list[dict] = []
    for name, step, t, _seq, value, other in rows:
        if not out or out[-1]["step"] != step:
            out.append({"step": step, "t": t, "scalars": {}, "values": {}})
        row = out[-1]
        row["t"] = max(row["t"], t)
        if other is None:
            row["scalars"][name] = wire.float_token(value)
        else:
            row["values"][name] = wire.loads_json_column(other)
    if key:
        wanted = set(key)
        out = [row for row in out if wanted <= {*row["scalars"], *row["values"]}]
    return wire.WireJSON({"rows": out, "next": following})
