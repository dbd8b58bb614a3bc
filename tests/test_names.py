"""One name rule (waddle/names.py) for the client that writes folders and every reader of them."""

from __future__ import annotations

import shutil

import pytest
from hypothesis import given
from hypothesis import strategies as st

import waddle
from tests.conftest import QUIET, wait_until
from waddle import names
from waddle.catalog import list_runs


@pytest.mark.parametrize("bad", ["demo\n", "demo\r", "de/mo", "..", ".hidden", "-x", "a" * 129])
def test_the_client_refuses_a_project_or_run_id_that_readers_would_not_list(tmp_path, bad):
    with pytest.raises(ValueError, match="not allowed"):
        waddle.init(project=bad, dir=tmp_path, settings=QUIET)
    with pytest.raises(ValueError, match="not allowed"):
        waddle.init(project="p", id=bad, dir=tmp_path, settings=QUIET)
    assert not any(path.name != "p" for path in tmp_path.iterdir())


@given(st.text(alphabet="aZ09_.-\n\r/ \x00é", max_size=6))
def test_a_name_is_valid_exactly_when_the_client_accepts_it(name):
    try:
        names.check("project", name)
        accepted = True
    except ValueError:
        accepted = False
    assert accepted == names.is_valid(name)
    if accepted:  # a valid name is one plain path component
        assert "/" not in name and "\n" not in name and name not in (".", "..")
        assert not name.startswith((".", "-"))


def _copies_of_one_run(tmp_path):
    """A real run under project `good`, copied into folders no rule-abiding client writes."""
    with waddle.init(project="good", dir=tmp_path, settings=QUIET) as run:
        run.log({"loss": 1.0})
    for project in ("bad\n", ".hidden", "-dash"):
        shutil.copytree(tmp_path / "good", tmp_path / project)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    shutil.copytree(tmp_path / "good", outside)
    (tmp_path / "linked").symlink_to(outside)  # a link could lead anywhere
    shutil.copytree(run.dir, tmp_path / "good" / "run\n")
    return run


def test_ls_and_the_server_list_the_same_folders_by_the_same_rule(tmp_path):
    from waddle.server.serve import reindex
    from waddle.server.settings import ServerSettings

    run = _copies_of_one_run(tmp_path)
    listed = {(r.project, r.run_id) for r in list_runs(tmp_path, 120)}
    assert listed == {("good", run.id)}
    counts = reindex(ServerSettings(dir=str(tmp_path)))
    assert counts["runs"] == 1


def test_a_live_server_ignores_folders_outside_the_rule(tmp_path):
    from tests.server_helpers import serving

    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        first = _copies_of_one_run(tmp_path)
        with waddle.init(project="good", dir=tmp_path, settings=QUIET) as second:
            second.log({"loss": 2.0})
        runs = "/api/projects/good/runs"
        wait_until(lambda: s.get(runs).status_code == 200 and s.json(runs)["total"] == 2)
        assert {p["name"] for p in s.json("/api/projects")["projects"]} == {"good"}
        ids = {r["id"] for r in s.json("/api/projects/good/runs")["runs"]}
        assert ids == {first.id, second.id}
