"""Ingest against real files, real watchdog, real DuckDB files and real processes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import textwrap

import duckdb
import httpx
import orjson

from tests.conftest import PYTHON, child_env, wait_until
from tests.server_helpers import serving

TRAIN = textwrap.dedent(
    """
    import sys, waddle
    run = waddle.init(project="live", dir=sys.argv[1], name=sys.argv[2],
                      settings=waddle.Settings(console=False, system_metrics_interval=0))
    for step in range(int(sys.argv[3])):
        run.log({"loss": 1.0 / (step + 1), "acc": step / 1000})
    run.finish()
    """
)


def _line(seq, kind="log", **fields):
    return orjson.dumps({"v": 1, "seq": seq, "t": 1.0e9 + seq, "type": kind, **fields}) + b"\n"


def test_live_runs_from_subprocesses(tmp_path):
    with serving(tmp_path) as s:
        children = [
            subprocess.Popen(
                [PYTHON, "-c", TRAIN, str(tmp_path), f"r{i}", str(steps)], env=child_env()
            )
            for i, steps in enumerate((3000, 5000, 800))
        ]

        def all_finished():
            runs = s.get("/api/projects/live/runs").json().get("runs", [])
            return len(runs) == 3 and all(r["status"] == "finished" for r in runs) and runs

        runs = wait_until(all_finished, timeout=90)
        for child in children:
            assert child.wait(timeout=60) == 0
        by_name = {r["name"]: r for r in runs}
        for name, steps in (("r0", 3000), ("r1", 5000), ("r2", 800)):
            run = by_name[name]
            assert run["last_step"] == steps - 1
            assert run["summary"]["loss"] == 1.0 / steps
            series = s.json(f"/api/projects/live/runs/{run['id']}/scalars", params={"key": "loss"})
            assert series["series"]["step"] == list(range(steps))
            assert series["series"]["value"] == [1.0 / (i + 1) for i in range(steps)]


def test_bad_lines_are_rejected_with_reasons_and_the_rest_kept(tmp_path):
    run_dir = tmp_path / "p" / "r1"
    run_dir.mkdir(parents=True)
    segment = run_dir / "events-000000000000.jsonl"
    start = _line(0, "run_start", name="bad-lines", config={}, tags=[])
    good1 = _line(1, step=0, data={"x": 1.0, "bad": [1, 2]})
    garbage = b"\x00\xff\xfe binary garbage\n"
    not_json = b"{not json\n"
    unknown = _line(2, "teleport")
    oversized = b'{"v":1,"pad":"' + b"x" * (16 * 1024 * 1024 + 10) + b'"}\n'
    good2 = _line(3, step=1, data={"x": 2.0})
    replayed = _line(3, step=1, data={"x": 9.0})  # a seq already taken: never indexed twice
    torn = _line(4, step=2, data={"x": 3.0})
    segment.write_bytes(
        start + good1 + garbage + not_json + unknown + oversized + good2 + replayed + torn[:10]
    )
    with serving(tmp_path) as s:
        url = "/api/projects/p/runs/r1"

        def two_points():
            r = s.get(url + "/scalars", params={"key": "x"})
            return r.status_code == 200 and r.json()["series"]["value"] == [1.0, 2.0]

        wait_until(two_points, timeout=30)
        rejects = s.json(url + "/rejects")["items"]
        reasons = " | ".join(r["reason"] for r in rejects)
        assert "not valid JSON" in reasons and "unknown event type" in reasons
        assert "longer than" in reasons
        assert "'bad'" not in reasons  # a plain list is indexed (as an array), not rejected
        assert "duplicate seq 3" in reasons
        offsets = {r["offset"] for r in rejects}
        assert len(start + good1) in offsets  # the garbage line, at its byte offset
        assert all(r["file"] == "p/r1/events-000000000000.jsonl" for r in rejects)
        assert s.json(url)["name"] == "bad-lines"

        with segment.open("ab") as file:  # the torn line completes
            file.write(torn[10:])
        wait_until(
            lambda: (
                s.json(url + "/scalars", params={"key": "x"})["series"]["value"] == [1.0, 2.0, 3.0]
            )
        )

        # A segment that shrinks: rejected with a reason, nothing indexed is lost, and
        # lines appended after it are still taken.
        size = segment.stat().st_size
        os.truncate(segment, size - len(torn))
        wait_until(lambda: any("shrank" in r["reason"] for r in s.json(url + "/rejects")["items"]))
        with segment.open("ab") as file:
            file.write(_line(5, step=3, data={"x": 4.0}))
        wait_until(
            lambda: (
                s.json(url + "/scalars", params={"key": "x"})["series"]["value"]
                == [1.0, 2.0, 3.0, 4.0]
            )
        )


def test_deleted_run_folder_leaves_the_index(tmp_path):
    for name in ("keep", "drop"):
        (tmp_path / "p" / name).mkdir(parents=True)
        (tmp_path / "p" / name / "events-000000000000.jsonl").write_bytes(
            _line(0, "run_start", name=name) + _line(1, step=0, data={"x": 1.0})
        )
    with serving(tmp_path) as s:
        wait_until(lambda: s.get("/api/projects/p/runs").json().get("total") == 2)
        shutil.rmtree(tmp_path / "p" / "drop")
        wait_until(lambda: s.get("/api/projects/p/runs").json().get("total") == 1)
        assert s.get("/api/projects/p/runs/drop").status_code == 404
        assert s.json("/api/projects/p/runs/keep")["name"] == "keep"


def _heavy_folder(root, runs=3, events=30_000):
    for r in range(runs):
        run_dir = root / "heavy" / f"run{r}"
        run_dir.mkdir(parents=True)
        lines = [_line(0, "run_start", name=f"run{r}")]
        lines += [
            _line(i + 1, step=i, data={f"k{k}": (i * 7 + k) / 3 for k in range(5)})
            for i in range(events)
        ]
        (run_dir / "events-000000000000.jsonl").write_bytes(b"".join(lines))


def _start_server(root, db):
    process = subprocess.Popen(
        [PYTHON, "-m", "waddle.cli", "serve", str(root), "--port", "0", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    url = re.search(r"http://\S+", process.stdout.readline()).group(0)
    return process, url


def _ingested(url):
    try:
        return httpx.get(url + "/api/health", timeout=5).json()["ingest"]
    except httpx.HTTPError:
        return None


def _snapshot(db):
    with duckdb.connect(str(db), read_only=True) as con:
        points = con.execute(
            "SELECT r.run_id, s.key, s.step, s.seq, s.value FROM (SELECT * FROM scalars UNION ALL"
            " SELECT * FROM scalars_live) s JOIN runs r USING (run) ORDER BY 1, 2, 4"
        ).fetchall()
        runs = con.execute(
            "SELECT run_id, events, next_seq, last_step, summary FROM runs ORDER BY run_id"
        ).fetchall()
    return points, runs


def test_kill_9_during_ingest_then_restart_equals_reindex(tmp_path):
    _heavy_folder(tmp_path)
    db = tmp_path / "index.duckdb"
    process, url = _start_server(tmp_path, db)
    try:
        wait_until(lambda: (_ingested(url) or {}).get("events", 0) > 0, timeout=60, interval=0.002)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    process, url = _start_server(tmp_path, db)
    try:
        wait_until(lambda: (_ingested(url) or {}).get("caught_up"), timeout=120)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    fresh = tmp_path / "fresh.duckdb"
    done = subprocess.run(
        [PYTHON, "-m", "waddle.cli", "reindex", str(tmp_path), "--db", str(fresh)],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
    )
    assert done.returncode == 0, done.stderr
    assert "reindexed 3 runs: 90003 events, 450000 scalar points" in done.stdout
    served_points, served_runs = _snapshot(db)
    fresh_points, fresh_runs = _snapshot(fresh)
    assert len(served_points) == len(fresh_points) == 450_000
    assert served_points == fresh_points
    assert served_runs == fresh_runs


def test_polling_watcher_follows_a_run(tmp_path):
    with serving(tmp_path, watcher="poll") as s:
        assert s.json("/api/health")["watcher"] == "poll"
        run_dir = tmp_path / "p" / "polled"
        run_dir.mkdir(parents=True)
        segment = run_dir / "events-000000000000.jsonl"
        segment.write_bytes(_line(0, "run_start", name="polled"))
        wait_until(lambda: s.get("/api/projects/p/runs/polled").status_code == 200)
        with segment.open("ab") as file:
            file.write(_line(1, step=0, data={"x": 1.0}))
        wait_until(lambda: s.json("/api/projects/p/runs/polled")["last_step"] == 0)


def test_the_ingester_handles_every_event_type_of_the_format():
    from waddle.server.ingester import _HANDLERS

    from waddle.event import EVENT_TYPES

    assert set(_HANDLERS) == set(EVENT_TYPES)


def test_plain_lists_and_nulls_are_indexed_not_rejected(tmp_path, new_run):
    """W&B keeps short arrays as lists and None as a null: both reach the index cleanly."""
    from tests.server_helpers import serving

    run = new_run()
    run.log({"short": [1, 2.5, None, "a", [3]], "none": None, "x": 1.0})
    run.log({"short": [float("nan")], "x": 2.0})
    run.finish()
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        base = f"/api/projects/p/runs/{run.id}"
        assert s.json(base)["rejected"] == 0
        items = s.json(base + "/media", params={"key": "short"})["items"]
        assert [(i["step"], i["type"], i["value"]) for i in items] == [
            (0, "array", [1, 2.5, None, "a", [3]]),
            (1, "array", ["NaN"]),
        ]
        kinds = {m["key"]: m["type"] for m in s.json(base + "/metrics")["metrics"]}
        assert kinds == {"short": "array", "x": "scalar"}
