"""``GET /api/projects/{p}/keys``: what a runs table offers as columns and tag filters."""

from __future__ import annotations

import numpy as np

import waddle
from tests.conftest import wait_until
from tests.server_helpers import serving


def test_keys_lists_every_config_and_summary_key_and_tag_of_the_project(tmp_path, new_run):
    a = new_run(config={"lr": 0.1, "opt": "adam"}, tags=["x", "y"])
    a.log({"loss": 1.0})
    a.finish()
    b = new_run(config={"lr": 0.2, "depth": 3}, tags=["y"])
    b.log({"acc": 0.5})
    b.summary["best"] = 0.9
    b.finish()
    other = new_run(project="other", config={"secret": 1}, tags=["z"])
    other.finish()
    with serving(tmp_path) as s:
        wait_until(lambda: s.caught_up() and len(s.json("/api/projects")["projects"]) == 2)
        assert s.json("/api/projects/p/keys") == {
            "config": ["depth", "lr", "opt"],
            "summary": ["acc", "best", "loss"],
            "tags": ["x", "y"],
            "origins": [],  # no relayed runs
        }
        missing = s.get("/api/projects/nope/keys")
        assert missing.status_code == 404
        assert missing.json()["error"]["message"] == "no project 'nope'"


def test_runs_carry_and_sort_by_the_min_max_and_last_of_a_scalar_key(tmp_path, new_run):
    ids = {}
    for name, losses in (
        ("a", [3.0, 0.5, 2.0]),
        ("b", [1.0, 0.9, 0.8]),
        ("c", [float("inf"), 0.7, float("nan")]),
    ):
        run = new_run(name=name)
        for loss in losses:
            run.log({"loss": loss, "other": 1.0})
        run.finish()
        ids[name] = run.id
    new_run(name="d").finish()  # no loss at all: sorts last, carries no metric
    with serving(tmp_path) as s:
        wait_until(lambda: s.caught_up() and s.json("/api/projects/p/runs")["total"] == 4)
        answer = s.json(
            "/api/projects/p/runs", params={"metric": "loss", "sort": "metric.loss.min"}
        )
        assert [r["name"] for r in answer["runs"]] == ["a", "c", "b", "d"]
        by_name = {r["name"]: r for r in answer["runs"]}
        assert by_name["a"]["metrics"] == {"loss": {"min": 0.5, "max": 3.0, "last": 2.0}}
        assert by_name["c"]["metrics"]["loss"]["max"] == "Infinity"
        assert by_name["c"]["metrics"]["loss"]["last"] == "NaN"
        assert by_name["d"]["metrics"] == {}
        descending = s.json("/api/projects/p/runs", params={"sort": "-metric.loss.max"})
        assert [r["name"] for r in descending["runs"]] == ["c", "a", "b", "d"]
        assert "metrics" not in descending["runs"][0]  # only when asked for
        bad = s.get("/api/projects/p/runs", params={"sort": "metric.loss.median"})
        assert (
            bad.status_code == 422 and "metric.KEY.min|max|last" in bad.json()["error"]["message"]
        )


def test_a_summary_of_aggregates_is_offered_per_aggregate(tmp_path, new_run):
    run = new_run()
    run.define_metric("val/acc", summary="max,min")
    run.log({"val/acc": 0.5, "loss": 1.0})
    run.finish()
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        assert s.json("/api/projects/p/keys")["summary"] == ["loss", "val/acc.max", "val/acc.min"]


def test_the_runs_list_answers_chosen_runs_with_their_scalar_keys(tmp_path, new_run):
    """What a compare view asks for in one request: some runs by id, each with its keys."""
    a = new_run(name="a")
    a.log({"loss": 1.0, "train/acc": 0.5, "pic": waddle.Image(np.zeros((2, 2), dtype=np.uint8))})
    a.finish()
    b = new_run(name="b")
    b.log({"val/loss": 2.0})
    b.finish()
    new_run(name="c").finish()
    with serving(tmp_path) as s:
        wait_until(lambda: s.caught_up() and s.json("/api/projects/p/runs")["total"] == 3)
        asked = {"id": [a.id, b.id, "nope"], "scalar_keys": "true"}
        answer = s.json("/api/projects/p/runs", params=asked)
        assert answer["total"] == 2
        keys = {r["name"]: r["scalar_keys"] for r in answer["runs"]}
        assert keys == {"a": ["loss", "train/acc"], "b": ["val/loss"]}  # no image key
        plain = s.json("/api/projects/p/runs", params={"id": a.id})["runs"]
        assert [r["name"] for r in plain] == ["a"] and "scalar_keys" not in plain[0]
        none = s.json("/api/projects/p/runs", params={"id": "c-nope", "scalar_keys": "true"})
        assert none["runs"] == [] and none["total"] == 0
