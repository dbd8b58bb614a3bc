"""M4 downsampling against a brute-force reference, on a real DuckDB index.

Whatever path the server takes (points, or per-block summaries plus the points at the ends),
every bucket must hold exactly the points of its x range, with their true first, last, min
and max, NaN counted and ±Infinity kept.
"""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest
from waddle.server import series
from waddle.server.blocks import BLOCK_STEPS, BLOCKS_SQL, block_table
from waddle.server.store import Store, insert_arrow

from tests.server_helpers import check_m4


def _rows(run: int, key: str, steps: np.ndarray, values: np.ndarray) -> pa.Table:
    n = len(steps)
    return pa.table(
        {
            "run": pa.array([run] * n, pa.int32()),
            "key": [key] * n,
            "step": steps,
            "t": steps * 0.01,
            "seq": steps + 1,
            "value": values,
        }
    )


def _ingested(con, run: int, key: str, steps: np.ndarray, values: np.ndarray) -> None:
    """Rows and their blocks as ingest writes a large group (blocks made in numpy)."""
    insert_arrow(con, "scalars", _rows(run, key, steps, values))
    insert_arrow(con, "scalar_blocks", block_table([(run, key, steps, values)]))


@pytest.fixture
def indexed(tmp_path):
    """A real index holding one series of 60,000 steps with spikes, NaN and ±Inf, written as
    ingest does: chunks that split blocks, one chunk compacted from ``scalars_live`` (blocks
    made in SQL), and the newest points still in ``scalars_live``."""
    rng = np.random.default_rng(7)
    steps = np.arange(60_000, dtype=np.int64) * 3 + 5  # not block-aligned, not from 0
    values = rng.normal(size=len(steps))
    values[[10, 4_444, 59_990]] = [np.nan, 1e6, -1e6]
    values[[11, 12]] = [np.inf, -np.inf]
    values[20_000:20_100] = np.nan  # whole blocks of NaN
    store = Store(tmp_path / "index.duckdb")
    cuts = [0, 1_001, 17_777, 50_000, 58_000, len(steps)]
    with store.transaction() as con:
        con.execute(
            "INSERT INTO metrics (run, key, kind, count, first_step, last_step, rows)"
            " VALUES (1, 'loss', 'scalar', $n, $first, $last, $n),"
            " (1, 'other', 'scalar', $n, $first, $last, $n)",
            {"n": len(steps), "first": int(steps[0]), "last": int(steps[-1])},
        )
        for begin, stop in itertools.pairwise(cuts[:-2]):
            _ingested(con, 1, "loss", steps[begin:stop], values[begin:stop])
        insert_arrow(
            con, "scalars_live", _rows(1, "loss", steps[50_000:58_000], values[50_000:58_000])
        )
    store.compact()
    with store.transaction() as con:
        insert_arrow(con, "scalars_live", _rows(1, "loss", steps[cuts[-2] :], values[cuts[-2] :]))
        _ingested(con, 1, "other", steps, -values)
    yield store, steps, values
    store.close()


def test_blocks_from_numpy_equal_blocks_from_sql(tmp_path):
    rng = np.random.default_rng(3)
    steps = np.sort(rng.choice(5_000, size=2_000, replace=False)).astype(np.int64)
    values = rng.normal(size=len(steps))
    values[rng.choice(len(values), 300, replace=False)] = np.nan
    values[100:180] = np.nan
    values[[5, 6]] = [np.inf, -np.inf]
    shuffled = rng.permutation(len(steps))  # ingest hands points in seq order, not sorted
    store = Store(tmp_path / "index.duckdb")
    with store.transaction() as con:
        insert_arrow(
            con, "scalar_blocks", block_table([(1, "a", steps[shuffled], values[shuffled])])
        )
        con.register("_rows", _rows(2, "a", steps, values))
        con.execute(BLOCKS_SQL.format(rows="_rows"))
    query = "SELECT * EXCLUDE (run) FROM scalar_blocks WHERE run = ? ORDER BY block"
    from_numpy, from_sql = (store.query(query, [run]) for run in (1, 2))
    store.close()
    assert len(from_numpy) == len(from_sql) > 100
    assert any(row[-1] == row[2] for row in from_sql)  # a block of only NaN: NULL min and max
    assert repr(from_numpy) == repr(from_sql)  # repr: NaN equals NaN


@pytest.mark.parametrize(
    ("start", "end", "points"),
    [
        (None, None, 300),  # whole range: per-block summaries
        (None, None, 7),
        (1_000.5, 150_000.0, 100),  # bounds off the block grid
        (30_000, 31_000, 50),  # narrow zoom: points only
        (None, None, 100_000),  # more buckets than points
    ],
)
def test_m4_matches_brute_force(indexed, start, end, points):
    store, steps, values = indexed
    cursor = store.reader()
    src = series.source(cursor, 1, "loss", series.STEP)
    assert src.blocks == ("run", "key", True)
    low = steps[0] if start is None else start
    high = steps[-1] if end is None else end
    buckets = series.m4(cursor, [src], start, end, points)[0]
    check_m4(buckets, steps, values, low, high, points)


def test_blocks_serve_wide_ranges_and_a_batch_mixes_both_paths(indexed):
    store, steps, values = indexed
    cursor = store.reader()
    span = int(steps[-1] - steps[0] + 1)
    assert series._aligned(steps[0], steps[-1], 300) is not None
    assert series._aligned(30_000, 31_000, 50) is None
    assert span // 300 >= 4 * BLOCK_STEPS
    wide = series.source(cursor, 1, "loss", series.STEP, "_a")
    other = series.source(cursor, 1, "other", series.STEP, "_b")
    by_time = series.source(cursor, 1, "loss", series.TIME, "_c")
    assert other.blocks == ("run_b", "key_b", False) and by_time.blocks is None
    a, b, c = series.m4(cursor, [wide, other, by_time], None, None, 300)
    check_m4(a, steps, values, steps[0], steps[-1], 300)
    check_m4(b, steps, -values, steps[0], steps[-1], 300)
    assert len(c["count"]) == 300 and sum(c["count"]) == len(steps)  # time: equal widths
