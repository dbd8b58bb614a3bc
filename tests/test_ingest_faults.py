"""Ingest keeps going whatever one file holds: bad lines, odd files and failing reads of one run
never stop the others, and /api/health tells when ingest is not keeping up."""

from __future__ import annotations

import errno
from pathlib import Path

import orjson
from waddle.server import indexer as indexer_module
from waddle.server.ingester import REJECT_KINDS

from tests.conftest import wait_until
from tests.server_helpers import serving
from waddle import segment


def _line(seq, kind="log", **fields):
    event = {"v": 1, "seq": seq, "t": 1.0e9 + seq, "type": kind, **fields}
    return orjson.dumps(event) + b"\n"


def _run(root, project, run_id, *lines, segment="events-000000000000.jsonl"):
    run_dir = root / project / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / segment
    path.write_bytes(_line(0, "run_start", name=run_id) + b"".join(lines))
    return path


def _values(s, run_id, key="x"):
    response = s.get(f"/api/projects/p/runs/{run_id}/scalars", params={"key": key})
    return response.json()["series"]["value"] if response.status_code == 200 else None


def test_a_folder_named_like_a_segment_is_not_read(tmp_path):
    # A directory called events-….jsonl killed the indexer thread (IsADirectoryError): every
    # run after it stayed as it was while HTTP kept answering.
    odd = _run(tmp_path, "p", "odd", _line(1, step=0, data={"x": 1.0}))
    (odd.parent / "events-000000000005.jsonl").mkdir()
    good = _run(tmp_path, "p", "good", _line(1, step=0, data={"x": 1.0}))
    with serving(tmp_path) as s:
        wait_until(lambda: _values(s, "odd") == [1.0] and _values(s, "good") == [1.0])
        with good.open("ab") as file:
            file.write(_line(2, step=1, data={"x": 2.0}))
        wait_until(lambda: _values(s, "good") == [1.0, 2.0])


def test_a_seq_jump_is_a_gap_and_a_late_line_inside_it_is_out_of_order(tmp_path):
    # 1 -> 5 was taken silently, and a later seq 3 was called "already indexed", though it
    # never was: a gap is data loss, counted and shown, and a line inside it is out of order.
    _run(
        tmp_path,
        "p",
        "r",
        _line(1, step=0, data={"x": 1.0}),
        _line(5, step=1, data={"x": 5.0}),
        _line(3, step=2, data={"x": 3.0}),
        _line(5, step=2, data={"x": 5.5}),
        _line(6, step=2, data={"x": 6.0}),
        _line(9, step=3, data={"x": 9.0}),
    )
    with serving(tmp_path) as s:
        wait_until(lambda: _values(s, "r") == [1.0, 5.0, 6.0, 9.0])
        run = s.json("/api/projects/p/runs/r")
        assert run["gaps"] == 5  # seqs 2, 3, 4, 7 and 8
        assert run["rejected"] == 2  # the late seq 3 and the second seq 5
        rejects = s.json("/api/projects/p/runs/r/rejects")["items"]
        by_kind = {}
        for reject in rejects:
            by_kind.setdefault(reject["kind"], []).append(reject["reason"])
        assert sorted(by_kind) == ["duplicate", "gap", "out_of_order"]
        assert "seqs 2 to 4 missing" in by_kind["gap"][0]
        assert "seqs 7 to 8 missing" in by_kind["gap"][1]
        assert "seq 3" in by_kind["out_of_order"][0] and "2 to 4" in by_kind["out_of_order"][0]
        assert "duplicate seq 5" in by_kind["duplicate"][0]
        listed = s.json("/api/projects/p/runs")["runs"][0]
        assert (listed["gaps"], listed["rejected"]) == (5, 2)


def test_a_run_that_cannot_be_read_is_retried_and_the_others_go_on(tmp_path, monkeypatch, capfd):
    # A read error in one run used to end the indexer thread: nothing more was indexed, and
    # /api/health kept saying ok.
    bad = _run(tmp_path, "p", "bad", _line(1, step=0, data={"x": 1.0}))
    good = _run(tmp_path, "p", "good", _line(1, step=0, data={"x": 1.0}))
    failing = {bad}
    read = segment.read_complete_lines

    def flaky_disk(path, *args, **kwargs):
        if path in failing:
            raise OSError(errno.EIO, "Input/output error", str(path))
        return read(path, *args, **kwargs)

    monkeypatch.setattr(segment, "read_complete_lines", flaky_disk)
    with serving(tmp_path) as s:
        wait_until(lambda: _values(s, "good") == [1.0])
        with good.open("ab") as file:
            file.write(_line(2, step=1, data={"x": 2.0}))
        wait_until(lambda: _values(s, "good") == [1.0, 2.0])

        def retried_twice():
            health = s.json("/api/health")
            failing_runs = health["ingest"]["failing"]
            return failing_runs and failing_runs[0]["retries"] >= 2 and health

        health = wait_until(retried_twice, timeout=20)
        assert health["status"] == "degraded"
        ingest = health["ingest"]
        assert ingest["alive"] and ingest["failing"][0]["run"] == "p/bad"
        assert "Input/output error" in ingest["failing"][0]["error"]
        assert "Input/output error" in ingest["last_error"]["message"]
        assert ingest["retries"] >= 2
        assert ingest["lag_bytes"] == bad.stat().st_size and ingest["lag_events"] >= 1
        assert ingest["lag_seconds"] > 0

        failing.clear()  # the disk recovers: the run is read at its next retry
        wait_until(lambda: _values(s, "bad") == [1.0], timeout=20)
        health = wait_until(lambda: (h := s.json("/api/health"))["status"] == "ok" and h)
        assert health["ingest"]["failing"] == [] and health["ingest"]["lag_bytes"] == 0
    printed = capfd.readouterr().err
    assert printed.count("Input/output error") == 1, printed  # once; then counted in health
    assert "p/bad" in printed


def test_health_says_down_when_the_indexer_has_stopped(tmp_path):
    _run(tmp_path, "p", "r", _line(1, step=0, data={"x": 1.0}))
    with serving(tmp_path) as s:
        wait_until(lambda: s.json("/api/health")["status"] == "ok")
        s.app.state.waddle.indexer.stop()
        health = s.json("/api/health")
        assert health["status"] == "down" and health["ingest"]["alive"] is False


def test_a_run_whose_commit_fails_is_found_and_backed_off_alone(tmp_path, monkeypatch):
    # A transaction that failed was retried whole, forever: one run's rows that the index
    # refused stopped every run that shared its transactions.
    _run(tmp_path, "p", "bad", _line(1, step=0, data={"x": 1.0}))
    good = _run(tmp_path, "p", "good", _line(1, step=0, data={"x": 1.0}))
    real = indexer_module.metrics_table

    def refusing(runs):
        if any(state.run_id == "bad" for state in runs):
            raise RuntimeError("the index refused these rows")
        return real(runs)

    monkeypatch.setattr(indexer_module, "metrics_table", refusing)
    with serving(tmp_path) as s:
        wait_until(lambda: _values(s, "good") == [1.0])
        with good.open("ab") as file:
            file.write(_line(2, step=1, data={"x": 2.0}))
        wait_until(lambda: _values(s, "good") == [1.0, 2.0])
        health = wait_until(lambda: (h := s.json("/api/health"))["ingest"]["failing"] and h)
        assert health["status"] == "degraded"
        assert health["ingest"]["failing"][0]["run"] == "p/bad"
        assert "refused" in health["ingest"]["failing"][0]["error"]
        assert s.get("/api/projects/p/runs/bad").status_code == 404


def test_the_server_says_once_per_file_that_it_rejected_lines_there(tmp_path, capfd):
    first = _run(tmp_path, "p", "r", b"{not json\n", _line(1, step=0, data={"x": 1.0}), b"[]\n")
    other = _run(tmp_path, "p", "q", _line(2, step=0, data={"x": 1.0}))  # seq 1 is missing
    clean = _run(tmp_path, "p", "c", _line(1, step=0, data={"x": 1.0}))
    with serving(tmp_path) as s:
        wait_until(lambda: all(_values(s, run) == [1.0] for run in "rqc"))
        with first.open("ab") as file:
            file.write(b"more garbage\n")
        wait_until(lambda: s.json("/api/projects/p/runs/r")["rejected"] == 3)
    lines = capfd.readouterr().err.splitlines()
    said = {path.parent.name: [line for line in lines if str(path.relative_to(tmp_path)) in line]
            for path in (first, other, clean)}  # fmt: skip
    assert len(said["r"]) == 1 and len(said["q"]) == 1 and not said["c"]
    at = len(_line(0, "run_start", name="r"))  # the first bad line follows the run_start
    assert "2 rejects so far" in said["r"][0] and f"first at byte {at} " in said["r"][0]
    assert "/api/projects/p/runs/r/rejects" in said["r"][0]
    assert "1 reject so far" in said["q"][0] and "seq 1 missing" in said["q"][0]


def test_every_kind_of_reject_is_documented():
    api = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    for kind in REJECT_KINDS:
        assert f"- `{kind}`: " in api, kind
