"""Ingest keeps going whatever one file holds: bad lines, odd files and failing reads of one run
never stop the others, and /api/health tells when ingest is not keeping up."""

from __future__ import annotations

import orjson

from tests.conftest import wait_until
from tests.server_helpers import serving


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
