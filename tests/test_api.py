"""waddle.Api(): W&B's public API over a local log folder, no server."""

from __future__ import annotations

import math
import shutil

import pytest

import waddle
from tests.conftest import QUIET, wait_until
from waddle import history


def _run(folder, name, lr, losses, **kwargs):
    with waddle.init(
        project="p",
        dir=folder,
        settings=QUIET,
        name=name,
        config={"lr": lr},
        reinit="create_new",
        **kwargs,
    ) as run:
        run.define_metric("acc", summary="max")
        for loss in losses:
            run.log({"loss": loss, "acc": 1 - loss})
    return run


def test_runs_are_filtered_and_ordered_as_wandb_does(tmp_path):
    _run(tmp_path, "a", 0.1, [0.9, 0.5], tags=["base"])
    _run(tmp_path, "b", 0.01, [0.8, 0.2])
    _run(tmp_path, "c", 0.001, [0.7, 0.6], tags=["base", "x"])
    api = waddle.Api(overrides={"dir": str(tmp_path)})
    assert [run.name for run in api.runs("p")] == ["a", "b", "c"]  # +created_at
    assert [run.name for run in api.runs("p", filters={"config.lr": {"$lt": 0.05}})] == ["b", "c"]
    assert [run.name for run in api.runs("p", filters={"tags": {"$in": ["base"]}})] == ["a", "c"]
    assert [
        run.name
        for run in api.runs("p", filters={"$or": [{"display_name": "a"}, {"state": "crashed"}]})
    ] == ["a"]
    best_first = api.runs("local/p", order="-summary_metrics.loss")
    assert [run.name for run in best_first] == ["c", "a", "b"]
    run = api.run(f"p/{best_first[0].id}")
    assert run.state == "finished" and run.config == {"lr": 0.001}
    assert run.summary["loss"] == 0.6 and run.summary["acc"] == {"max": pytest.approx(0.4)}
    with pytest.raises(ValueError, match="no run 'nope'"):
        api.run("p/nope")


def test_history_rows_per_step_keys_samples_and_pandas(tmp_path):
    with waddle.init(project="p", dir=tmp_path, settings=QUIET) as run:
        for step in range(10):
            run.log({"loss": float(step)}, commit=False)
            run.log({"acc": step / 10} if step % 2 else {"other": "text"})
        run.log({"loss": math.nan})
    api = waddle.Api(overrides={"dir": str(tmp_path)})
    read = api.run(f"p/{run.id}")
    rows = read.history(pandas=False, samples=1000)
    assert len(rows) == 11 and rows[3]["loss"] == 3.0 and rows[3]["acc"] == 0.3  # one row per step
    assert rows[2]["other"] == "text" and math.isnan(rows[10]["loss"])
    both = read.history(keys=["loss", "acc"], pandas=False)
    assert [row["_step"] for row in both] == [1, 3, 5, 7, 9]  # only steps with every key
    assert set(both[0]) == {"_step", "_timestamp", "_runtime", "loss", "acc"}
    assert len(read.history(samples=4, pandas=False)) == 4
    frame = read.history(keys=["loss"])
    assert list(frame["loss"])[:3] == [0.0, 1.0, 2.0] and len(frame) == 11
    assert [row["_step"] for row in read.scan_history(keys=["acc"], min_step=4)] == [5, 7, 9]


def test_the_two_history_readers_agree(tmp_path):
    """DuckDB (numbers of chosen keys) and Python (every value): the same rows."""
    pytest.importorskip("duckdb")
    with waddle.init(project="p", dir=tmp_path, settings=QUIET) as run:
        for step in range(50):
            value = [1.5, math.nan, math.inf, -math.inf, 7][step % 5]
            run.log({"x": value, "y": step}, commit=step % 3 != 0)
            if step % 7 == 0:
                run.log({"x": -1.0}, step=run.step)  # the same step again: the newest wins
    columns = history.scalar_columns(run.dir, ["x", "y"], 0.0)
    rows = [row for row in history.scan(run.dir, 0.0) if "x" in row or "y" in row]
    assert list(columns["_step"]) == [row["_step"] for row in rows]
    for key in ("x", "y"):
        expected = [row.get(key, math.nan) for row in rows]
        assert [str(value) for value in columns[key]] == [str(float(value)) for value in expected]
        assert list(columns[history.HAS + key]) == [key in row for row in rows]
    with waddle.init(project="p", dir=tmp_path, settings=QUIET) as texts:
        texts.log({"x": "not a number"})
    assert history.scalar_columns(texts.dir, ["x"], 0.0) is None  # the Python reader takes it


def test_files_saved_with_the_run_can_be_downloaded(tmp_path):
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"weights")
    with waddle.init(project="p", dir=tmp_path / "logs", settings=QUIET) as run:
        run.save(str(weights))
    api = waddle.Api(overrides={"dir": str(tmp_path / "logs")})
    read = api.run(f"p/{run.id}")
    assert [file.name for file in read.files()] == ["model.pt"]
    target = read.file("model.pt").download(root=str(tmp_path / "out"))
    assert target.read_bytes() == b"weights"


def _whole_copies(cache):
    """How many of the history cache's copies are whole (written beside the answer, by a
    thread of the reader's own)."""
    import numpy as np

    whole = 0
    for copy in cache.glob("*.npy"):
        try:
            np.load(copy, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            continue
        whole += 1
    return whole


def test_history_keeps_a_columnar_copy_while_the_segments_stay_the_same(tmp_path):
    pytest.importorskip("duckdb")
    with waddle.init(project="p", dir=tmp_path, settings=QUIET, id="r1") as run:
        for step in range(5):
            run.log({"loss": float(step), "acc": math.inf if step == 2 else step / 10})
    api = waddle.Api(overrides={"dir": str(tmp_path)})
    assert api.run("p/r1").history(keys=["loss"], pandas=False)[-1]["loss"] == 4.0
    cache = tmp_path / ".waddle" / "history" / "p" / "r1"
    wait_until(lambda: _whole_copies(cache) == 1)
    with waddle.init(project="p", dir=tmp_path, settings=QUIET, id="r1", resume="allow") as run:
        run.log({"loss": math.nan, "acc": 1.0})  # the segment grows: its copy is stale
    rows = api.run("p/r1").history(keys=["acc", "loss"], pandas=False)
    assert [row["_step"] for row in rows] == [0, 1, 2, 3, 4, 5]
    assert rows[2]["acc"] == math.inf and math.isnan(rows[5]["loss"]) and rows[5]["acc"] == 1.0
    segments = len(list((tmp_path / "p" / "r1").glob("*.jsonl")))
    wait_until(lambda: _whole_copies(cache) == 2 * segments)  # one per segment and key
    again = api.run("p/r1").history(keys=["acc", "loss"], pandas=False)  # from the copies
    assert repr(again) == repr(rows)  # NaN and ±Inf as parsed
    for copy in cache.glob("*.npy"):
        copy.write_bytes(copy.read_bytes()[:100])  # torn or foreign copies: parsed again
    assert repr(api.run("p/r1").history(keys=["acc", "loss"], pandas=False)) == repr(rows)
    wait_until(lambda: _whole_copies(cache) == 2 * segments)  # written again
    shutil.rmtree(tmp_path / ".waddle")
    (tmp_path / ".waddle").write_text("")  # a cache that cannot be written: only slower
    with waddle.init(project="p", dir=tmp_path, settings=QUIET, id="r1", resume="allow") as run:
        run.log({"loss": 9.0})
    assert api.run("p/r1").history(keys=["loss"], pandas=False)[-1]["loss"] == 9.0
