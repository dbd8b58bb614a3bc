"""Relaying a run of several ranks (docs/format.md, "Ranks" and "Relayed runs"): every rank's
stream reaches the central server exactly once, through a kill -9 of the relay, and the central
index answers for the run, its ranks and each rank's series what the local one answers.

Real processes throughout: the ranks are training scripts sharing a run id, a central `waddle
serve` and `waddle relay` run as children, and a rank killed with -9 marks the run crashed on
both sides."""

from __future__ import annotations

import signal
import subprocess
import textwrap

import orjson
import pytest

from tests.conftest import PYTHON, child_env, wait_until
from tests.relay_helpers import QUIET_ENV, TOKEN, Central, index_view, relay_process
from tests.server_helpers import serving
from waddle import ranks, segment
from waddle.run_folder import inspect_run

HEARTBEAT_TIMEOUT = "2"  # seconds: a rank killed with -9 counts as dead soon
ORIGIN = "gpu-1"

# One rank of job "job-1": scalars (NaN and ±Inf among them), an image every 250 steps,
# console lines, a saved file of its own; prints its step every 500 steps, then "ready", and
# finishes once told to on stdin, so that the test decides when rank 0 ends.
RANK = """
    import math, os, sys, time
    import numpy as np
    import waddle
    rank, steps = int(os.environ["WADDLE_RANK"]), int(os.environ["STEPS"])
    run = waddle.init(project="p", id="job-1", config={"lr": 0.1})
    for step in range(steps):
        values = {"loss": (rank + 1) / (step + 1), "grad": math.sin(step + rank)}
        if step % 97 == 0:
            values["odd"] = [math.nan, math.inf, -math.inf][step % 3]
        if step % 250 == 0:
            values["img"] = waddle.Image(np.full((4, 4, 3), (step + rank) % 256, dtype=np.uint8))
        run.log(values)
        if step % 500 == 0:
            print(step, flush=True)
        time.sleep(0.001)
    path = os.path.join(os.environ["OUT"], f"weights-{rank}.bin")
    with open(path, "wb") as file:
        file.write(os.urandom(3000))
    run.save(path)
    print("ready", flush=True)
    sys.stdin.readline()
    run.finish()
    print("done", flush=True)
"""


def _rank(local, tmp_path, rank: int, steps: int, **extra: str) -> subprocess.Popen:
    env = child_env(
        WADDLE_DIR=str(local),
        OUT=str(tmp_path),
        STEPS=str(steps),
        **{**QUIET_ENV, "WADDLE_CONSOLE": "1", "WADDLE_SYSTEM_METRICS_INTERVAL": "0.5"},
        WADDLE_RANK=str(rank),
        **extra,
    )
    return subprocess.Popen(
        [PYTHON, "-c", textwrap.dedent(RANK)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _said(child: subprocess.Popen, expected: str) -> None:
    assert child.stdout.readline().strip() == expected, child.stderr.read()


def _finish(child: subprocess.Popen) -> None:
    child.stdin.write("\n")
    child.stdin.flush()
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0 and out.strip() == "done", err


def _streams(run_dir) -> dict[int, bytes]:
    """Each stream's segments of a run folder, by rank."""
    found = [(0, run_dir), *ranks.rank_streams(run_dir)]
    return {
        rank: b"".join(path.read_bytes() for path in segment.list_segments(path))
        for rank, path in found
    }


def _stored(run_dir) -> list[str]:
    return sorted(
        str(path.relative_to(run_dir))
        for path in run_dir.rglob("*")
        if path.is_file() and path.parent.name in ("media", "files")
    )


def _ls(folder) -> str:
    done = subprocess.run(
        [PYTHON, "-m", "waddle.cli", "ls", str(folder)],
        env=child_env(**QUIET_ENV, WADDLE_HEARTBEAT_TIMEOUT=HEARTBEAT_TIMEOUT),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _runs(client) -> list[dict]:
    runs = client.get("/api/projects/p/runs").json()["runs"]
    return [{k: v for k, v in run.items() if k not in ("id", "origin")} for run in runs]


def test_every_rank_of_a_run_reaches_the_central_server_once_through_a_kill_9_of_the_relay(
    tmp_path,
):
    local = tmp_path / "local"
    local.mkdir()
    central = Central(tmp_path / "central", tmp_path / "central.log")
    central.env = {"WADDLE_HEARTBEAT_TIMEOUT": HEARTBEAT_TIMEOUT}
    central.start()
    relay = relay_process(local, central, tmp_path / "relay.log", ORIGIN).start()
    central_run = central.folder / "p" / f"{ORIGIN}.job-1"
    children = []
    try:
        first, second = _rank(local, tmp_path, 0, 3000), _rank(local, tmp_path, 1, 3000)
        children += [first, second]
        for child in (first, second):
            _said(child, "0")
            _said(child, "500")
        # Both streams acknowledged, then the relay dies mid-stream while both ranks log on.
        wait_until(lambda: len(_streams(central_run).get(1, b"")) > 0, timeout=60)
        wait_until(lambda: len(_streams(central_run)[0]) > 0, timeout=60)
        relay.kill()
        for child in (first, second):
            _said(child, "1000")
        relay.start()
        # Ranks that start once the run is acknowledged: one ends well, one is killed with -9.
        late, killed = _rank(local, tmp_path, 2, 600), _rank(local, tmp_path, 3, 100_000)
        children += [late, killed]
        _said(killed, "0")
        wait_until(lambda: 3 in _streams(central_run), timeout=60)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        # Rank 0 finishes once rank 3 has been silent past the heartbeat timeout: a dead rank.
        wait_until(lambda: _local_status(local) == "crashed", timeout=30)
        for child in (first, second, late):
            for said in iter(child.stdout.readline, "ready\n"):
                assert said, child.stderr.read()
        for child in (second, late, first):
            _finish(child)
        local_streams = _streams(local / "p" / "job-1")
        assert sorted(local_streams) == [0, 1, 2, 3]
        # Every stream byte for byte: nothing lost, nothing repeated, in any rank.
        wait_until(lambda: _streams(central_run) == local_streams, timeout=90)
        wait_until(lambda: _stored(central_run) == _stored(local / "p" / "job-1"), timeout=60)
        assert len(_stored(central_run)) >= 4 * 2  # each rank's image and saved file
        with serving(local, heartbeat_timeout=float(HEARTBEAT_TIMEOUT)) as served:
            wait_until(served.caught_up, timeout=60)
            central_id = f"{ORIGIN}.job-1"
            wait_until(
                lambda: central.events_of("p", central_id) == served_events(served), timeout=60
            )
            wait_until(lambda: _runs(central.client) == _runs(served.client), timeout=60)
            run = central.json(f"/api/projects/p/runs/{central_id}")
            assert run["status"] == "crashed"
            assert [(r["rank"], r["status"]) for r in run["ranks"]] == [
                (0, "finished"),
                (1, "finished"),
                (2, "finished"),
                (3, "crashed"),
            ]
            assert all(r["gaps"] == 0 and r["rejected"] == 0 for r in run["ranks"])
            for rank in (None, 0, 1, 2, 3):
                local_view = index_view(served.client, "p", "job-1", rank)
                for metric in local_view["metrics"]:  # a sum's last bit depends on batching
                    if metric["mean"] is not None:
                        metric["mean"] = pytest.approx(metric["mean"], rel=1e-12)
                assert index_view(central.client, "p", central_id, rank) == local_view, rank
            loss = central.json(f"/api/projects/p/runs/{central_id}/scalars", key="loss", rank=1)
            assert (loss["rank"], loss["series"]["value"][0]) == (1, 2.0)  # rank 1's, not 0's
        central_ls = _ls(central.folder).replace(f"{ORIGIN}.job-1", "job-1")
        assert [line.split() for line in central_ls.splitlines()] == [
            line.split() for line in _ls(local).splitlines()
        ]
        assert "crashed" in central_ls and " 4 " in central_ls  # the run's status, its ranks
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=30)
        relay.stop()
        central.kill()


def served_events(served) -> int:
    return served.client.get("/api/projects/p/runs/job-1").json()["events"]


def _local_status(local) -> str | None:
    record = inspect_run(local / "p" / "job-1", float(HEARTBEAT_TIMEOUT))
    if record is None:
        return None
    ranks.inspect_ranks(record, float(HEARTBEAT_TIMEOUT))
    return record.status


def _run_ranks(local, tmp_path, count: int, **env: str) -> None:
    """Ranks 0 to count - 1 of job-1, run to their finish."""
    children = [_rank(local, tmp_path, rank, 300, **env) for rank in range(count)]
    for child in children:
        for said in iter(child.stdout.readline, "ready\n"):
            assert said, child.stderr.read()
    for child in children:
        _finish(child)


def test_sync_sends_every_rank_once_and_counts_them(tmp_path):
    local = tmp_path / "local"
    central = Central(tmp_path / "central", tmp_path / "central.log").start()
    try:
        _run_ranks(local, tmp_path, 3)
        sync = [PYTHON, "-m", "waddle.cli", "sync", str(local), "--to", central.url]
        sync += ["--token", TOKEN, "--origin", "box"]

        def run_sync() -> str:
            done = subprocess.run(
                sync, env=child_env(**QUIET_ENV), capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        first = run_sync()
        assert first.startswith(f"waddle sync: sent 1 run (3 ranks) to {central.url}: "), first
        assert _streams(central.folder / "p" / "box.job-1") == _streams(local / "p" / "job-1")
        assert _stored(central.folder / "p" / "box.job-1") == _stored(local / "p" / "job-1")
        again = run_sync()
        assert "sent 0 runs (0 ranks)" in again and "1 run was there already" in again, again
        assert central.json("/api/health")["intake"]["replayed"] == 0
    finally:
        central.kill()


def test_every_rank_of_an_online_run_reaches_the_central_server(tmp_path):
    local = tmp_path / "local"
    central = Central(tmp_path / "central", tmp_path / "central.log").start()
    try:
        online = {"WADDLE_MODE": "online", "WADDLE_SERVER": central.url, "WADDLE_TOKEN": TOKEN}
        _run_ranks(local, tmp_path, 2, **online, WADDLE_ORIGIN="laptop")
        central_run = central.folder / "p" / "laptop.job-1"
        local_streams = _streams(local / "p" / "job-1")
        assert sorted(local_streams) == [0, 1]
        wait_until(lambda: _streams(central_run) == local_streams, timeout=60)
        wait_until(lambda: _stored(central_run) == _stored(local / "p" / "job-1"), timeout=60)
        # Each rank's forwarder saved the acknowledgements of its own stream.
        wait_until(lambda: sorted(_acknowledged(local)) == ["p/job-1", "p/job-1/ranks/1"], 60)
    finally:
        central.kill()


def _acknowledged(local) -> list[str]:
    return [
        key
        for path in (local / ".waddle" / "relay").glob("*.json")
        for key in orjson.loads(path.read_bytes())["runs"]
    ]
