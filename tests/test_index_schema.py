"""One schema: each index table's columns are defined once (server/schema.py), and the DDL, the
Arrow schemas, a run's row and the SELECTs reading it back all agree with that definition."""

from __future__ import annotations

import dataclasses

from waddle.server.run_state import RunState, Stat
from waddle.server.schema import METRICS, RANKS, RUN_TABLES, RUNS, TABLES, TYPES
from waddle.server.store import Store, insert_arrow


def test_every_table_is_created_with_its_defined_columns_and_types(tmp_path):
    store = Store(tmp_path / "index.duckdb")
    for table in TABLES.values():
        described = store.query(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = ? ORDER BY ordinal_position",
            [table.name],
        )
        assert described == [(name, TYPES[kind][0]) for name, kind in table.columns], table.name
    assert set(RUN_TABLES) == {name for name, t in TABLES.items() if t.names[0] == "run"}


def test_the_stats_of_a_key_are_the_metrics_columns():
    assert tuple(f.name for f in dataclasses.fields(Stat)) == METRICS.names[3:]


def test_a_run_state_comes_back_from_its_row_in_the_index(tmp_path):
    state = RunState(7, "p", "r")
    changed = {
        "origin": "gpu-7", "origin_run_id": "r0", "name": "n", "group": "g", "job_type": "j", "tags": ["a", "b"], "notes": "x",
        "config": {"lr": 0.1}, "context": {"host": "h"}, "status": "finished", "created": 1.5,
        "updated": 2.5, "heartbeat": 2.0, "last_step": 9, "next_seq": 11, "events": 11,
        "rejected": 2, "gaps": 3, "missing": [[2, 4]], "dropped_steps": 3, "dropped_values": 4, "lost_events": 5,
        "exit_code": 3221225477, "finish": {"status": "finished"},
        "defines": [{"name": "val/*", "summary": "max"}], "explicit_summary": {"best": 1},
        "rank": 2,  # a rank's stream: its row is in ranks
    }  # fmt: skip
    persisted = {f.name for f in dataclasses.fields(RunState)} - {"run", "project", "run_id"}
    assert set(changed) == persisted - {"stats", "offsets"}, "a field the test leaves out"
    for name, value in changed.items():
        setattr(state, name, value)
    store = Store(tmp_path / "index.duckdb")
    assert state.table is RANKS
    with store.transaction() as con:
        insert_arrow(con, "ranks", RANKS.from_dicts([state.row()]))
    (values,) = store.query(RANKS.select)
    back = RunState.from_row(dict(zip(RANKS.names, values, strict=True)))
    assert vars(back) == vars(state)
    state.rank = 0  # rank 0's stream, the run folder's own: its row is in runs
    with store.transaction() as con:
        insert_arrow(con, "runs", RUNS.from_dicts([state.row()]))
    (values,) = store.query(RUNS.select)
    assert vars(RunState.from_row(dict(zip(RUNS.names, values, strict=True)))) == vars(state)
