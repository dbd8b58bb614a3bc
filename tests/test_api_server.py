"""waddle.Api() through a server: the same answers as from the log folder, and clear errors."""

from __future__ import annotations

import math

import pytest

import waddle
from tests.conftest import QUIET, wait_until
from tests.server_helpers import serving


def _same(value):
    """``value`` with NaN spelled out, so that answers compare with ==."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return {key: _same(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_same(item) for item in value]
    return value


def _log_everything(folder, tmp_path):
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"weights \x00\xff")
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    with waddle.init(
        project="p",
        dir=folder,
        settings=QUIET,
        id="r1",
        name="first",
        config={"lr": 0.1, "inf": math.inf, "layers": [1, 2]},
        tags=["base"],
        group="g",
    ) as run:
        run.define_metric("acc", summary="max")
        for step in range(12):
            loss = [0.5, math.nan, math.inf, -math.inf][step % 4] if step % 3 else step / 10
            run.log({"loss": loss}, commit=False)
            run.log({"acc": step / 12, "note": "NaN" if step == 4 else f"s{step}"})
        run.log({"hist": waddle.Histogram([1.0, 2.0, 2.5])})
        run.summary["best"] = -math.inf
        run.save(str(weights), base_path=str(tmp_path))
        artifact = waddle.Artifact("data", "dataset", metadata={"rows": 1, "top": math.inf})
        artifact.add_file(str(data))
        run.log_artifact(artifact, aliases=["best"])
    with waddle.init(project="p", dir=folder, settings=QUIET, id="r2", name="second") as other:
        other.log({"loss": 1.0})
        other.use_artifact("data:best")


def test_folder_and_server_answer_the_same(tmp_path):
    folder = tmp_path / "logs"
    _log_everything(folder, tmp_path)
    local = waddle.Api(overrides={"dir": str(folder)})
    with serving(folder) as served:
        wait_until(served.caught_up, timeout=30)
        remote = waddle.Api(overrides={"base_url": served.url})
        assert [p.name for p in remote.projects()] == [p.name for p in local.projects()] == ["p"]
        for api in (local, remote):
            assert [run.name for run in api.runs("p", order="-summary_metrics.loss")] == [
                "second",
                "first",
            ]
            assert [r.id for r in api.runs("p", filters={"config.lr": {"$gt": 0.01}})] == ["r1"]
        one, two = local.run("p/r1"), remote.run("p/r1")
        for name in ("id", "name", "tags", "group", "state", "created_at", "lastHistoryStep"):
            assert getattr(one, name) == getattr(two, name), name
        assert _same(one.config) == _same(two.config)
        assert two.config["inf"] == math.inf
        # Both hold, as the client's and W&B's, each key's last value, text and rich values too.
        assert _same(two.summary) == _same(one.summary)
        assert two.summary["note"] == "s11" and two.summary["hist"]["_type"] == "histogram"
        assert two.summary["best"] == -math.inf and two.summary["acc"] == {"max": 11 / 12}
        assert one.metadata["argv"] == two.metadata["argv"]

        for keys in (["loss"], ["loss", "acc"]):
            rows = two.history(keys=keys, pandas=False, samples=0)
            assert _same(rows) == _same(one.history(keys=keys, pandas=False, samples=0))
            assert len(rows) == 12 and math.isnan(rows[1]["loss"]) and rows[2]["loss"] == math.inf
        assert (
            _same(two.history(keys=["loss"], samples=5, pandas=False))
            == _same(one.history(keys=["loss"], samples=5, pandas=False))
            and len(two.history(keys=["loss"], samples=5, pandas=False)) == 5
        )
        everything = two.history(pandas=False, samples=0)
        assert _same(everything) == _same(one.history(pandas=False, samples=0))
        assert everything[4]["note"] == "NaN" and everything[12]["hist"]["_type"] == "histogram"
        scanned = list(two.scan_history(keys=["acc", "note"], min_step=3, max_step=9, page_size=2))
        assert [row["_step"] for row in scanned] == [3, 4, 5, 6, 7, 8]
        assert _same(scanned) == _same(
            list(one.scan_history(keys=["acc", "note"], min_step=3, max_step=9))
        )
        for keys, x_axis in ((["absent"], "_step"), (["loss"], "acc")):
            assert _same(two.history(keys=keys, x_axis=x_axis, pandas=False)) == _same(
                one.history(keys=keys, x_axis=x_axis, pandas=False)
            )
        assert set(two.history(keys=["loss"], x_axis="acc", pandas=False)[0]) >= {"acc", "loss"}
        frame = two.history(keys=["loss"])
        assert list(frame.columns) == ["_step", "_timestamp", "_runtime", "loss"]

        assert [f.name for f in two.files()] == [f.name for f in one.files()] == ["model.pt"]
        got = two.file("model.pt").download(root=str(tmp_path / "from-server"))
        assert got.read_bytes() == b"weights \x00\xff"

        for api in (local, remote):
            stored = api.artifact("p/data:best", type="dataset")
            assert (stored.name, stored.aliases, stored.metadata) == (
                "data:v0",
                ["best", "latest"],
                {"rows": 1, "top": math.inf},
            )
            target = stored.download(root=str(tmp_path / f"art-{id(api)}"))
            assert (tmp_path / target / "data.csv").read_text() == "a,b\n1,2\n"
            assert [a.name for a in api.run("p/r2").used_artifacts()] == ["data:v0"]
            assert [a.name for a in api.run("p/r1").logged_artifacts()] == ["data:v0"]
            assert [a.version for a in api.artifacts("dataset", "p/data")] == ["v0"]
            assert stored.logged_by().id == "r1"


def test_waddle_server_routes_the_api_and_errors_name_what_failed(tmp_path, monkeypatch):
    folder = tmp_path / "logs"
    with waddle.init(project="p", dir=folder, settings=QUIET, id="r1") as run:
        run.log({"loss": 1.0})
    with serving(folder, token="s3cret") as served:
        wait_until(served.caught_up, timeout=30)
        monkeypatch.setenv("WADDLE_SERVER", served.url)
        monkeypatch.delenv("WADDLE_TOKEN", raising=False)
        with pytest.raises(PermissionError, match=r"401.*WADDLE_TOKEN") as refused:
            waddle.Api().run("p/r1")
        assert served.url in str(refused.value) and "s3cret" not in str(refused.value)
        assert waddle.Api(api_key="s3cret").run("p/r1").summary == {"loss": 1.0}
        monkeypatch.setenv("WADDLE_TOKEN", "s3cret")
        api = waddle.Api()
        assert repr(api) == f"<Api {served.url}>"
        with pytest.raises(ValueError, match="no run 'nope' in project 'p'"):
            api.run("p/nope")
        with pytest.raises(ValueError, match="no project 'q'"):
            api.runs("q")
        token_file = tmp_path / "tokens"
        token_file.write_text("read s3cret\n")
        monkeypatch.delenv("WADDLE_TOKEN")
        monkeypatch.setenv("WADDLE_TOKEN_FILE", str(token_file))
        assert [r.id for r in waddle.Api().runs("p")] == ["r1"]
        port = served.url.rsplit(":", 1)[1]
    with pytest.raises(ConnectionError, match=f"cannot reach http://127.0.0.1:{port}"):
        waddle.Api().runs("p")
    assert waddle.Api(overrides={"dir": str(folder)}).run("p/r1").summary == {"loss": 1.0}


def test_a_relayed_run_is_read_as_the_central_server_names_it(tmp_path):
    """A relayed run's folder on the central server is <origin>.<id>: the Api reads it so."""
    central = tmp_path / "central"
    relayed = central / "p" / "gpu-7.r1"
    with waddle.init(project="p", dir=tmp_path / "local", settings=QUIET, id="r1") as run:
        run.log({"loss": math.nan})
    relayed.parent.mkdir(parents=True)
    (tmp_path / "local" / "p" / "r1").rename(relayed)
    (relayed / "origin.json").write_text('{"origin": "gpu-7", "project": "p", "run_id": "r1"}')
    with serving(central) as served:
        wait_until(served.caught_up, timeout=30)
        (found,) = waddle.Api(overrides={"base_url": served.url}).runs("p")
        assert (found.id, found.origin) == ("gpu-7.r1", "gpu-7")
        rows = (
            waddle.Api(overrides={"base_url": served.url})
            .run("p/gpu-7.r1")
            .history(keys=["loss"], pandas=False)
        )
        assert len(rows) == 1 and math.isnan(rows[0]["loss"])


def test_each_rank_reads_the_same_through_a_server(tmp_path):
    from tests.test_ranks import _two_ranks

    _two_ranks(tmp_path)
    local = waddle.Api(overrides={"dir": str(tmp_path)}).run("ddp/job-1")
    with serving(tmp_path) as served:
        wait_until(served.caught_up, timeout=30)
        (listed,) = waddle.Api(overrides={"base_url": served.url}).runs("ddp")
        assert listed.ranks == local.ranks == [0, 1] and listed.state == local.state
        for rank in (0, 1):
            assert _same(list(listed.scan_history(rank=rank))) == _same(
                list(local.scan_history(rank=rank))
            )
            assert _same(listed.history(keys=["loss"], rank=rank, pandas=False)) == _same(
                local.history(keys=["loss"], rank=rank, pandas=False)
            )
        assert [row["loss"] for row in listed.scan_history(rank=1)] == [10, 11, 12, 13, 14]
        with pytest.raises(ValueError, match="has no rank 2"):
            listed.scan_history(rank=2)
