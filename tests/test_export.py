"""waddle export: the index of a log folder as Hive-partitioned Parquet, incrementally, read
back by DuckDB as the server's index has it (server/export.py)."""

from __future__ import annotations

import math
import subprocess

import duckdb
import numpy as np
import pytest
from waddle.server.export import Export

import waddle
from tests.conftest import PYTHON, QUIET, child_env


def _log(tmp_path, run_id: str, steps: range, resume: str | None = None) -> None:
    run = waddle.init(project="p", id=run_id, dir=tmp_path / "logs", settings=QUIET, resume=resume)
    for step in steps:
        values = {"loss": 1 / (step + 1), "odd": [math.nan, math.inf, -math.inf, 0.5][step % 4]}
        if step % 50 == 0:
            values["img"] = waddle.Image(np.zeros((2, 2, 3), dtype=np.uint8))
        run.log(values, step=step)
    run.finish()


def _scalars(to) -> list[tuple]:
    return duckdb.sql(
        f"SELECT project, run, key, step, value FROM read_parquet('{to}/scalars/**/*.parquet',"
        " hive_partitioning = true) ORDER BY run, key, step"
    ).fetchall()


def _expected(runs: dict[str, range]) -> list[tuple]:
    rows = []
    for run_id, steps in sorted(runs.items()):
        for key in ("loss", "odd"):
            for step in steps:
                value = (
                    1 / (step + 1)
                    if key == "loss"
                    else [math.nan, math.inf, -math.inf, 0.5][step % 4]
                )
                rows.append(("p", run_id, key, step, value))
    return rows


def _same(got: list[tuple], expected: list[tuple]) -> None:
    assert len(got) == len(expected)
    for row, want in zip(got, expected, strict=True):
        assert row[:4] == want[:4]
        assert row[4] == want[4] or (math.isnan(row[4]) and math.isnan(want[4]))


def test_export_writes_each_table_partitioned_by_project_and_run_and_then_only_what_is_new(
    tmp_path,
):
    to = tmp_path / "export"
    _log(tmp_path, "a", range(300))
    _log(tmp_path, "b", range(120))
    totals = Export(tmp_path / "logs", str(to)).run()
    assert (totals["runs"], totals["changed"]) == (2, 2)
    _same(_scalars(to), _expected({"a": range(300), "b": range(120)}))
    runs = duckdb.sql(
        f"SELECT run, name, status, last_step FROM read_parquet('{to}/runs/**/*.parquet',"
        " hive_partitioning = true) ORDER BY run"
    ).fetchall()
    assert [(run, status, last) for run, _, status, last in runs] == [
        ("a", "finished", 299),
        ("b", "finished", 119),
    ]
    media = duckdb.sql(
        f"SELECT run, count(*) FROM read_parquet('{to}/media/**/*.parquet', hive_partitioning = true)"
        " GROUP BY run ORDER BY run"
    ).fetchall()
    assert media == [("a", 6), ("b", 3)]
    files_before = {path: path.stat().st_mtime_ns for path in to.rglob("*.parquet")}

    assert Export(tmp_path / "logs", str(to)).run()["changed"] == 0  # nothing new: nothing written
    assert {path: path.stat().st_mtime_ns for path in to.rglob("*.parquet")} == files_before

    _log(tmp_path, "b", range(120, 200), resume="must")  # b goes on; a does not
    totals = Export(tmp_path / "logs", str(to)).run()
    assert totals["changed"] == 1
    _same(_scalars(to), _expected({"a": range(300), "b": range(200)}))
    for path, mtime in files_before.items():
        if "run=a" in str(path) or "part-" in path.name:
            assert path.stat().st_mtime_ns == mtime, f"{path} was written again"


def test_an_export_cut_short_leaves_no_duplicate_once_run_again(tmp_path, monkeypatch):
    to = tmp_path / "export"
    _log(tmp_path, "a", range(200))
    export = Export(tmp_path / "logs", str(to))

    def killed(state):
        raise KeyboardInterrupt  # the parts are written, the state is not

    monkeypatch.setattr(export, "_save", killed)
    with pytest.raises(KeyboardInterrupt):
        export.run()
    monkeypatch.undo()
    Export(tmp_path / "logs", f"file://{to}").run()  # a URI: the path s3:// takes too
    _same(_scalars(to), _expected({"a": range(200)}))


# One rank of run "job": loss = 10 * rank + step, an image at step 0, a console line.
RANK = """
import os, numpy as np, waddle
rank = int(os.environ["WADDLE_RANK"])
run = waddle.init(project="p", id="job", settings=waddle.Settings(system_metrics_interval=0))
for step in range(50):
    values = {"loss": 10.0 * rank + step}
    if step == 0:
        values["img"] = waddle.Image(np.zeros((2, 2, 3), dtype=np.uint8))
    run.log(values, step=step)
print(f"hello from rank {rank}", flush=True)
run.finish()
"""


def _log_rank(tmp_path, rank: int) -> None:
    done = subprocess.run(
        [PYTHON, "-c", RANK],
        env=child_env(WADDLE_DIR=str(tmp_path / "logs"), WADDLE_RANK=str(rank), WADDLE_SILENT="on"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def _query(sql: str) -> list[tuple]:
    return duckdb.sql(sql).fetchall()


def test_export_writes_every_rank_of_a_run_with_a_rank_column_and_picks_up_a_late_rank(tmp_path):
    to = tmp_path / "export"
    for rank in (0, 1):
        _log_rank(tmp_path, rank)
    assert Export(tmp_path / "logs", str(to)).run()["changed"] == 1
    scalars = f"read_parquet('{to}/scalars/**/*.parquet', hive_partitioning = true)"
    expected = [(rank, 50, 10.0 * rank, 10.0 * rank + 49) for rank in (0, 1)]
    by_rank = (
        f"SELECT rank, count(*), min(value), max(value) FROM {scalars} "
        "WHERE run = 'job' AND key = 'loss' GROUP BY rank ORDER BY rank"
    )
    assert _query(by_rank) == expected
    for table in ("media", "console", "metrics"):
        rows = _query(
            f"SELECT DISTINCT rank FROM read_parquet('{to}/{table}/**/*.parquet', "
            "hive_partitioning = true) ORDER BY rank"
        )
        assert rows == [(0,), (1,)], table
    runs = _query(
        f"SELECT run, status FROM read_parquet('{to}/runs/**/*.parquet', hive_partitioning = true)"
    )
    assert runs == [("job", "finished")]  # one run: rank 0's row
    others = _query(
        f"SELECT run, rank, status, last_step FROM read_parquet('{to}/ranks/**/*.parquet', "
        "hive_partitioning = true)"
    )
    assert others == [("job", 1, "finished", 49)]

    assert Export(tmp_path / "logs", str(to)).run()["changed"] == 0  # nothing new
    _log_rank(tmp_path, 2)  # a rank that starts after the run was exported
    assert Export(tmp_path / "logs", str(to)).run()["changed"] == 1
    assert _query(by_rank) == [*expected, (2, 50, 20.0, 69.0)]
