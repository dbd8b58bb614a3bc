"""Series whose steps go back (keyed steps, docs/format.md) give the same answers as in order.

A TensorBoard tag's steps may repeat or go back. Whatever order the points came in, and however
the indexer's transactions cut them, the index must hold what it would hold had the series been
logged in step order, one value per step (the highest seq wins): the stored points, the
per-key summary (server/run_state.py's Stat), M4 and the live hub's messages. Each is checked
against a brute-force reference on a real DuckDB index built from real segment files.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from waddle.server import series
from waddle.server.hub import _newest_per_step
from waddle.server.indexer import Indexer
from waddle.server.store import Store

from tests.server_helpers import check_m4
from waddle import event as event_format

SPECIAL = [math.nan, math.inf, -math.inf, 0.0, -1e300]
values_strategy = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from(SPECIAL))
points_strategy = st.lists(st.tuples(st.integers(0, 60), values_strategy), min_size=1, max_size=80)


def _write(path, events: list[dict]) -> None:
    with open(path, "ab") as file:
        for event in events:
            file.write(event_format.encode(event))


def _log(seq: int, step: int, data: dict, keyed: bool) -> dict:
    event = {"v": 1, "seq": seq, "t": 1.7e9 + seq, "type": "log", "step": step, "data": data}
    if keyed:
        event["keyed"] = True
    return event


def _reference(points: list[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    newest = {}
    for step, value in points:  # in seq order: a later point of a step replaces it
        newest[step] = value
    steps = np.array(sorted(newest), dtype=np.int64)
    return steps, np.array([newest[int(step)] for step in steps], dtype=np.float64)


def _index(tmp_path, runs: dict[str, list[list[dict]]]) -> tuple[Store, Indexer]:
    """Index each run's events chunk by chunk, a catch-up per chunk (one transaction each
    few events), as a live run's events arrive."""
    store = Store(tmp_path / "index.duckdb")
    indexer = Indexer(store, tmp_path, max_events=25)
    chunks = max(len(parts) for parts in runs.values())
    for index in range(chunks):
        for run_id, parts in runs.items():
            if index < len(parts):
                folder = tmp_path / "p" / run_id
                folder.mkdir(parents=True, exist_ok=True)
                _write(folder / "events-000000000000.jsonl", parts[index])
        indexer.catch_up()
    return store, indexer


def _stat_row(store: Store, run_id: str, key: str, kind: str = "scalar") -> dict:
    rows = store.query(
        "SELECT m.* EXCLUDE (run, key, kind) FROM metrics m JOIN runs r USING (run)"
        " WHERE r.run_id = ? AND m.key = ? AND m.kind = ?",
        [run_id, key, kind],
    )
    names = [
        "count", "first_step", "last_step", "min", "max", "sum", "finite", "first", "last",
        "before_min", "before_max", "rows",
    ]  # fmt: skip
    (row,) = rows
    return dict(zip(names, row, strict=True))


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-6)
    return a == b


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(points=points_strategy, cuts=st.lists(st.integers(1, 79), max_size=4))
def test_a_keyed_series_indexes_as_the_same_series_in_order(tmp_path_factory, points, cuts):
    tmp_path = tmp_path_factory.mktemp("keyed")
    steps, values = _reference(points)
    keyed = [_log(seq, step, {"loss": value}, True) for seq, (step, value) in enumerate(points)]
    in_order = [
        _log(seq, int(step), {"loss": float(value)}, False)
        for seq, (step, value) in enumerate(zip(steps, values, strict=True))
    ]
    bounds = sorted({0, len(keyed), *(cut for cut in cuts if cut < len(keyed))})
    parts = [keyed[a:b] for a, b in itertools.pairwise(bounds)]
    store, indexer = _index(tmp_path, {"keyed": parts, "plain": [in_order]})
    try:
        got, want = _stat_row(store, "keyed", "loss"), _stat_row(store, "plain", "loss")
        assert got["rows"] == len(points) and want["rows"] == len(steps)
        for name in got:
            if name != "rows":
                assert _same(got[name], want[name]), (name, got[name], want[name])
        states = {state.run_id: state for state in indexer.states.values()}
        assert _same(states["keyed"].summary()["loss"], states["plain"].summary()["loss"])
        assert states["keyed"].last_step == int(steps[-1])
        cursor = store.reader()
        (run,) = store.query("SELECT run FROM runs WHERE run_id = 'keyed'")[0]
        src = series.source(cursor, run, "loss", series.STEP)
        table = series.fetch(cursor, src)
        assert table.column("step").to_pylist() == steps.tolist()
        assert np.array_equal(table.column("value").to_numpy(), values, equal_nan=True)
        for points_wanted in (3, 1000):
            buckets = series.m4(cursor, [src], None, None, points_wanted)[0]
            check_m4(buckets, steps, values, steps[0], steps[-1], points_wanted)
    finally:
        store.close()


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(st.integers(0, 30), min_size=1, max_size=60))
def test_keyed_text_counts_each_step_once(tmp_path_factory, steps):
    tmp_path = tmp_path_factory.mktemp("text")
    events = [_log(seq, step, {"note": f"v{seq}"}, True) for seq, step in enumerate(steps)]
    store, _ = _index(tmp_path, {"keyed": [events[: len(events) // 2], events[len(events) // 2 :]]})
    try:
        stat = _stat_row(store, "keyed", "note", "text")
        assert (stat["count"], stat["rows"]) == (len(set(steps)), len(steps))
        assert (stat["first_step"], stat["last_step"]) == (min(steps), max(steps))
    finally:
        store.close()


def test_a_large_keyed_series_restarted_from_a_checkpoint(tmp_path):
    """Clustered batches (blocks) and a restart: steps 0..4999, then 2000..5999 again."""
    rng = np.random.default_rng(5)
    first, second = rng.normal(size=5000), rng.normal(size=4000)
    second[[10, 20]] = [math.nan, math.inf]
    events = [_log(i, i, {"loss": float(v)}, True) for i, v in enumerate(first)]
    events += [_log(5000 + i, 2000 + i, {"loss": float(v)}, True) for i, v in enumerate(second)]
    store = Store(tmp_path / "index.duckdb")
    try:
        indexer = Indexer(store, tmp_path)
        folder = tmp_path / "p" / "r"
        folder.mkdir(parents=True)
        _write(folder / "events-000000000000.jsonl", events[:5000])
        indexer.catch_up()
        _write(folder / "events-000000000000.jsonl", events[5000:])
        indexer.catch_up()
        steps = np.arange(6000)
        values = np.concatenate([first[:2000], second])
        stat = _stat_row(store, "r", "loss")
        assert (stat["count"], stat["rows"], stat["last"]) == (6000, 9000, values[-1])
        assert stat["max"] == math.inf and stat["finite"] == 5998
        cursor = store.reader()
        src = series.source(cursor, 1, "loss", series.STEP)
        assert src.blocks is None  # steps logged twice: the points, newest per step
        check_m4(series.m4(cursor, [src], None, None, 50)[0], steps, values, 0, 5999, 50)
    finally:
        store.close()


@given(steps=st.lists(st.integers(0, 20), max_size=50))
def test_the_hub_sends_the_newest_point_of_each_step_in_seq_order(steps):
    array = np.array(steps, dtype=np.int64)
    newest = _newest_per_step(array)
    kept = list(range(len(steps))) if newest is None else newest.tolist()
    want = sorted({step: index for index, step in enumerate(steps)}.values())
    assert kept == want


def test_an_index_restart_goes_on_from_recounted_stats(tmp_path):
    folder = tmp_path / "p" / "r"
    folder.mkdir(parents=True)
    lines = [_log(0, 5, {"a": 1.0}, True), _log(1, 3, {"a": 2.0}, True)]
    _write(folder / "events-000000000000.jsonl", lines)
    store = Store(tmp_path / "index.duckdb")
    Indexer(store, tmp_path).catch_up()
    _write(folder / "events-000000000000.jsonl", [_log(2, 3, {"a": 9.0}, True)])
    Indexer(store, tmp_path).catch_up()  # a new server: stats loaded from the index
    stat = _stat_row(store, "r", "a")
    store.close()
    assert (stat["count"], stat["rows"], stat["first"], stat["last"]) == (2, 3, 9.0, 1.0)
    assert (stat["min"], stat["max"]) == (1.0, 9.0)
    assert orjson.loads(orjson.dumps(stat))  # plain values, as the API sends them


def _ls_row(capsys, log_dir, run_id: str) -> tuple[str, str]:
    from waddle.cli import main

    capsys.readouterr()
    assert main(["ls", str(log_dir)]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    start = header.index("METRICS")
    for row in rows:
        if row.split()[1] == run_id:
            return row.split()[4], row[start : header.index("STARTED")].strip()
    raise AssertionError(f"no row for {run_id}")


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    points=st.lists(
        st.tuples(st.integers(0, 40), st.sampled_from(["a", "b"]), values_strategy),
        min_size=1,
        max_size=40,
    ),
    cut=st.integers(0, 40),
)
def test_ls_shows_a_keyed_run_as_the_same_run_in_order(tmp_path_factory, capsys, points, cut):
    """Steps and the values at the last step, read through the cache (an ls between two
    appends, and a second segment)."""
    tmp_path = tmp_path_factory.mktemp("ls")
    newest: dict[int, dict[str, float]] = {}
    for step, key, value in points:
        newest.setdefault(step, {})[key] = value
    start = {"v": 1, "t": 1.7e9, "type": "run_start", "name": "x"}
    keyed = tmp_path / "p" / "keyed"
    plain = tmp_path / "p" / "plain"
    for folder in (keyed, plain):
        folder.mkdir(parents=True)
        _write(folder / "events-000000000000.jsonl", [{**start, "seq": 0}])
    events = [
        _log(seq + 1, step, {key: value}, True) for seq, (step, key, value) in enumerate(points)
    ]
    cut = min(cut, len(events))
    _write(keyed / "events-000000000000.jsonl", events[:cut])
    _ls_row(capsys, tmp_path, "keyed")  # counted and cached up to here
    _write(keyed / f"events-{cut + 1:012d}.jsonl", events[cut:])
    in_order = [_log(seq + 1, step, newest[step], False) for seq, step in enumerate(sorted(newest))]
    _write(plain / "events-000000000000.jsonl", in_order)
    assert _ls_row(capsys, tmp_path, "keyed") == _ls_row(capsys, tmp_path, "plain")
