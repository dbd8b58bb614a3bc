"""``GET /api/projects/{p}/keys``: what a runs table offers as columns and tag filters."""

from __future__ import annotations

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
        }
        missing = s.get("/api/projects/nope/keys")
        assert missing.status_code == 404
        assert missing.json()["error"]["message"] == "no project 'nope'"
