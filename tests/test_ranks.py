"""Many processes, one run: the ranks of a job sharing a run id log into one run, each its own
stream, and every reader shows the merged run by default and each rank on demand.

Real processes throughout: plain ones sharing ``init(id=...)``, torchrun with gloo on CPU (when
torch is installed), a rank killed with -9; read back through the server, ``waddle ls`` and
``waddle.Api``.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap

import orjson
import pytest
from websockets.sync.client import connect

import waddle
from tests.conftest import PYTHON, child_env, events_of, wait_until
from tests.server_helpers import serving
from waddle import ranks

# One rank of a job: logs loss = 10 * rank + step; rank 1 also "only1"; rank 0 sets the
# run's config and summary, every rank its own config key. With "hang" it waits to be killed
# after logging, heartbeating every 0.2 s.
RANK = textwrap.dedent(
    """
    import os, sys, tempfile, time, waddle
    rank = int(os.environ["RANK"])
    run = waddle.init(project="ddp", id=sys.argv[2] if sys.argv[2] != "-" else None,
                      dir=sys.argv[1], config={"who": rank},
                      settings=waddle.Settings(system_metrics_interval=60))
    for step in range(5):
        run.log({"loss": 10.0 * rank + step, **({"only1": step} if rank == 1 else {})})
    run.summary["best"] = rank
    note = os.path.join(tempfile.mkdtemp(), "note.txt")
    with open(note, "w") as file:
        file.write(f"rank {rank}")
    run.save(note, policy="now")
    if rank == 1:
        run.log_artifact(note, name="notes", type="text")
    print(f"hello from rank {rank}", flush=True)
    run.flush()
    print("logged", run.id, flush=True)
    if sys.argv[3] == "hang":
        while True:
            time.sleep(1)
    if sys.argv[3] == "wait":
        sys.stdin.readline()
    run.finish()
    """
)


def _rank(tmp_path, rank: int, run_id: str, mode: str = "finish", **env) -> subprocess.Popen:
    variables = {"RANK": str(rank), "WORLD_SIZE": "2", "WADDLE_SILENT": "on", **env}
    return subprocess.Popen(
        [PYTHON, "-c", RANK, str(tmp_path), run_id, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(**variables),
    )


def _logged(child: subprocess.Popen) -> str:
    """The run id, once the child has logged and flushed."""
    for line in child.stdout:
        if line.startswith("logged "):
            return line.split()[1]
    raise AssertionError("the rank ended before logging")


def _two_ranks(tmp_path, run_id: str = "job-1") -> None:
    children = [_rank(tmp_path, rank, run_id) for rank in (0, 1)]
    for child in children:
        _logged(child)
        assert child.wait(timeout=60) == 0


def _ls(tmp_path, **env) -> list[dict]:
    out = subprocess.run(
        [PYTHON, "-m", "waddle.cli", "ls", str(tmp_path)],
        capture_output=True,
        text=True,
        env=child_env(**env),
        check=True,
    ).stdout.splitlines()
    header = out[0].split()
    return [dict(zip(header, line.split(), strict=False)) for line in out[1:]]


def test_two_processes_sharing_an_id_write_one_run_each_its_own_stream(tmp_path):
    _two_ranks(tmp_path)
    run_dir = tmp_path / "ddp" / "job-1"
    primary, other = events_of(run_dir), events_of(run_dir / "ranks" / "1")
    # Each stream is whole on its own: seq from 0, no gap, a finish of its own.
    for events in (primary, other):
        assert [event["seq"] for event in events] == list(range(len(events)))
        assert events[0]["type"] == "run_start" and events[-1]["type"] == "finish"
    assert [e["data"]["loss"] for e in primary if e["type"] == "log"] == [0, 1, 2, 3, 4]
    assert [e["data"]["loss"] for e in other if e["type"] == "log"] == [10, 11, 12, 13, 14]
    assert (run_dir / "ranks" / "1" / ".lock").exists()
    assert ranks.rank_streams(run_dir) == [(1, run_dir / "ranks" / "1")]


def test_ls_shows_one_line_per_run_with_its_ranks(tmp_path):
    _two_ranks(tmp_path)
    (line,) = _ls(tmp_path)
    assert line["RUN"] == "job-1" and line["RANKS"] == "2" and line["STATUS"] == "finished"
    assert line["STEPS"] == "5"


def test_api_reads_the_merged_run_and_each_rank_on_demand(tmp_path):
    _two_ranks(tmp_path)
    (run,) = waddle.Api({"dir": str(tmp_path)}).runs("ddp")
    assert run.ranks == [0, 1] and run.state == "finished"
    assert run.config == {"who": 0} and run.summary["best"] == 0  # rank 0's
    assert [row["loss"] for row in run.scan_history()] == [0, 1, 2, 3, 4]
    assert [row["loss"] for row in run.scan_history(rank=1)] == [10, 11, 12, 13, 14]
    rows = run.history(keys=["only1"], rank=1, pandas=False)
    assert [row["only1"] for row in rows] == [0, 1, 2, 3, 4]
    assert waddle.Api({"dir": str(tmp_path)}).run("ddp/job-1").ranks == [0, 1]
    with pytest.raises(ValueError, match="has no rank 2"):
        run.scan_history(rank=2)


def test_the_server_shows_the_merged_run_and_each_rank(tmp_path):
    _two_ranks(tmp_path)
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        listing = s.json("/api/projects/ddp/runs")
        assert listing["total"] == 1 and listing["runs"][0]["status"] == "finished"
        run = s.json("/api/projects/ddp/runs/job-1")
        assert run["config"] == {"who": 0} and run["summary"]["best"] == 0
        assert [(r["rank"], r["status"], r["last_step"]) for r in run["ranks"]] == [
            (0, "finished", 4),
            (1, "finished", 4),
        ]
        base = "/api/projects/ddp/runs/job-1"
        default = s.json(f"{base}/scalars", params={"key": "loss"})
        assert default["rank"] == 0 and default["series"]["value"] == [0, 1, 2, 3, 4]
        one = s.json(f"{base}/scalars", params={"key": "loss", "rank": 1})
        assert one["rank"] == 1 and one["series"]["value"] == [10, 11, 12, 13, 14]
        # A key rank 0 never logged: the lowest rank that did, and the answer says which.
        only = s.json(f"{base}/scalars", params={"key": "only1"})
        assert only["rank"] == 1 and only["series"]["value"] == [0, 1, 2, 3, 4]
        assert s.get(f"{base}/scalars", params={"key": "loss", "rank": 5}).status_code == 404
        batch = s.client.post(
            "/api/projects/ddp/scalars",
            json={
                "series": [
                    {"run": "job-1", "key": "loss"},
                    {"run": "job-1", "key": "loss", "rank": 1},
                    {"run": "job-1", "key": "only1"},
                ],
                "points": 10,
            },
        ).json()["results"]
        assert [(r["rank"], r["buckets"]["last"][-1]) for r in batch] == [(0, 4), (1, 14), (1, 4)]
        metrics = {m["key"]: m for m in s.json(f"{base}/metrics")["metrics"]}
        assert metrics["loss"]["ranks"] == [0, 1] and metrics["loss"]["last"] == 4
        assert metrics["only1"]["ranks"] == [1] and metrics["only1"]["rank"] == 1
        of_one = {m["key"]: m for m in s.json(f"{base}/metrics", params={"rank": 1})["metrics"]}
        assert of_one["loss"]["last"] == 14
        for rank in (0, 1):
            console = s.json(f"{base}/console", params={"rank": rank})["items"]
            assert f"hello from rank {rank}\n" in "".join(item["text"] for item in console)
            system = s.json(f"{base}/system", params={"rank": rank})["series"]
            assert "proc/rss" in system
        assert s.get(f"{base}/console", params={"rank": 3}).status_code == 404
        # Each rank's saved file is its own, served from its stream's folder.
        for rank in (0, 1):
            (saved,) = s.json(f"{base}/media", params={"rank": rank, "key": "files/note.txt"})[
                "items"
            ]
            prefix = f"ranks/{rank}/" if rank else ""
            served = s.get(f"/files/ddp/job-1/{prefix}{saved['value']['path']}")
            assert served.status_code == 200 and served.text == f"rank {rank}"
        # An artifact a rank logs goes to the project's store.
        assert [a["name"] for a in s.json("/api/projects/ddp/artifacts")["artifacts"]] == ["notes"]


def test_a_live_subscription_follows_the_rank_asked_for(tmp_path):
    children = [_rank(tmp_path, rank, "job-live", mode="wait") for rank in (0, 1)]
    for child in children:
        _logged(child)
    with serving(tmp_path) as s, connect(s.ws_url) as ws:
        base = "/api/projects/ddp/runs/job-live"
        wait_until(lambda: len(s.get(base).json().get("ranks", [])) == 2)
        params = {"key": "loss", "rank": 1}
        wait_until(lambda: s.get(f"{base}/scalars", params=params).status_code == 200)
        messages = []
        for sub, rank in (("a", 1), ("b", None)):
            fields = {"op": "subscribe", "id": sub, "project": "ddp", "run": "job-live"}
            ws.send(orjson.dumps({**fields, "key": "loss", "cursor": -1, "rank": rank}).decode())
        while sum(m["type"] == "points" for m in messages) < 2:
            messages.append(orjson.loads(ws.recv(timeout=10)))
        subscribed = {m["id"]: m["rank"] for m in messages if m["type"] == "subscribed"}
        assert subscribed == {"a": 1, "b": 0}
        points = {m["id"]: m["value"] for m in messages if m["type"] == "points"}
        assert points == {"a": [10, 11, 12, 13, 14], "b": [0, 1, 2, 3, 4]}
    for child in children:
        child.stdin.write("go\n")
        child.stdin.close()
        assert child.wait(timeout=60) == 0


def test_a_rank_killed_with_kill_9_marks_the_run_crashed(tmp_path, monkeypatch):
    primary = _rank(tmp_path, 0, "job-kill", mode="wait", WADDLE_HEARTBEAT_INTERVAL="0.2")
    doomed = _rank(tmp_path, 1, "job-kill", mode="hang")
    _logged(primary)
    _logged(doomed)
    base = "/api/projects/ddp/runs/job-kill"
    with serving(tmp_path, heartbeat_timeout=1.5) as s:
        wait_until(lambda: len(s.get(base).json().get("ranks", [])) == 2)
        assert s.json(base)["status"] == "running"
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)

        def crashed():
            run = s.json(base)
            return run["status"] == "crashed" and run

        run = wait_until(crashed, timeout=30)
        # Rank 0 goes on (its heartbeats keep it alive): the dead rank crashed the run.
        assert [(r["rank"], r["status"]) for r in run["ranks"]] == [(0, "running"), (1, "crashed")]
        assert s.json("/api/projects/ddp/runs", params={"status": "crashed"})["total"] == 1
        assert s.json("/api/projects")["projects"][0]["running"] == 0
        (line,) = _ls(tmp_path, WADDLE_HEARTBEAT_TIMEOUT="1.5")
        assert line["STATUS"] == "crashed" and line["RANKS"] == "2"
        primary.stdin.write("go\n")
        primary.stdin.close()
        assert primary.wait(timeout=60) == 0
        # The primary finished after its rank had died: the run stays crashed.
        wait_until(lambda: s.json(base)["ranks"][0]["status"] == "finished")
        assert s.json(base)["status"] == "crashed"
    monkeypatch.setenv("WADDLE_HEARTBEAT_TIMEOUT", "1.5")
    assert waddle.Api({"dir": str(tmp_path)}).run("ddp/job-kill").state == "crashed"


def test_a_rank_that_outlives_a_finished_primary_does_not_crash_the_run():
    """Staleness counts only before the primary finished: a launcher may stop the other ranks
    without a word once rank 0 is done."""
    primary = waddle.run_folder.RunRecord("p", "r", None, status="finished", last_activity=100.0)
    primary.finish = {"status": "finished"}
    quiet = waddle.run_folder.RunRecord("p", "r", None, last_activity=99.0)
    dead = waddle.run_folder.RunRecord("p", "r", None, last_activity=50.0)
    assert ranks.run_status(primary, [quiet], 10.0, now=1000.0) == "finished"
    assert ranks.run_status(primary, [dead], 10.0, now=1000.0) == "crashed"
    primary.finish, primary.status = None, "running"
    assert ranks.run_status(primary, [quiet], 10.0, now=105.0) == "running"
    assert ranks.run_status(primary, [quiet], 10.0, now=110.0) == "crashed"


STATUSES = ("running", "finished", "crashed")


@pytest.mark.parametrize("primary_status", STATUSES)
def test_the_index_spells_the_rule_of_run_status_alike(tmp_path, primary_status):
    """The server's SQL (RUNS_WITH_STATUS) and ranks.run_status agree on every mix of a
    primary and two other ranks: each finished, crashed or running, fresh or stale."""
    from waddle.server.routes.lookup import RUNS_WITH_STATUS, status_params
    from waddle.server.store import Store

    now, timeout = 1000.0, 10.0
    ages = (1.0, 50.0)  # seconds since a stream's newest event: fresh, stale
    streams = [(status, age) for status in STATUSES for age in ages]
    cases = [(p_age, a, b) for p_age in ages for a in streams for b in streams]
    store = Store(tmp_path / "index.duckdb")
    con = store.reader()
    for run, (p_age, *others) in enumerate(cases):
        con.execute(
            "INSERT INTO runs (run, project, run_id, status, updated) VALUES (?, 'p', ?, ?, ?)",
            [run, f"r{run}", primary_status, now - p_age],
        )
        for rank, (status, age) in enumerate(others, start=1):
            con.execute(
                "INSERT INTO ranks (run, rank, project, run_id, status, updated)"
                " VALUES (?, ?, 'p', ?, ?, ?)",
                [1000 + 2 * run + rank, rank, f"r{run}", status, now - age],
            )
    params = {**status_params(timeout), "cutoff": now - timeout}
    sql = dict(con.execute(f"SELECT run_id, run_status FROM {RUNS_WITH_STATUS}", params).fetchall())

    def record(status, age, primary=False):
        stale = status == "running" and age > timeout
        record = waddle.run_folder.RunRecord("p", "r", None, last_activity=now - age)
        record.status = "crashed" if primary and stale else status
        record.finish = None if status == "running" else {"status": status}
        return record

    for run, (p_age, *others) in enumerate(cases):
        primary = record(primary_status, p_age, primary=True)
        expected = ranks.run_status(primary, [record(*o) for o in others], timeout, now)
        assert sql[f"r{run}"] == expected, (primary_status, p_age, others)
    store.close()


def test_the_run_id_of_a_torchrun_job_is_the_same_on_every_rank():
    job = {"RANK": "1", "WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "b7e1c9a0-4f"}
    assert ranks.torchrun_id(job) == "torchrun-b7e1c9a0-4f"
    assert ranks.torchrun_id({**job, "RANK": "0"}) == "torchrun-b7e1c9a0-4f"
    # Not a name a folder can have: hashed, the same on every rank.
    odd = ranks.torchrun_id({**job, "TORCHELASTIC_RUN_ID": "a/b"})
    assert odd.startswith("torchrun-") and odd == ranks.torchrun_id(
        {**job, "RANK": "0", "TORCHELASTIC_RUN_ID": "a/b"}
    )
    assert ranks.torchrun_id({**job, "WORLD_SIZE": "1"}) is None
    assert ranks.torchrun_id({"RANK": "0", "WORLD_SIZE": "2"}) is None
    assert ranks.process_rank(None, {"RANK": "3"}) == 3
    assert ranks.process_rank(2, {"RANK": "3"}) == 2
    with pytest.raises(ValueError, match="RANK='x'"):
        ranks.process_rank(None, {"RANK": "x"})


def test_join_ranks_off_makes_each_rank_its_own_run(tmp_path):
    env = {"TORCHELASTIC_RUN_ID": "same-job", "WADDLE_JOIN_RANKS": "off"}
    children = [_rank(tmp_path, rank, "-", **env) for rank in (0, 1)]
    ids = {_logged(child) for child in children}
    for child in children:
        assert child.wait(timeout=60) == 0
    assert len(ids) == 2 and not any(i.startswith("torchrun-") for i in ids)
    assert all(not (tmp_path / "ddp" / i / "ranks").exists() for i in ids)
    joined = [_rank(tmp_path, rank, "-", TORCHELASTIC_RUN_ID="same-job") for rank in (0, 1)]
    assert {_logged(child) for child in joined} == {"torchrun-same-job"}
    for child in joined:
        assert child.wait(timeout=60) == 0


DDP = textwrap.dedent(
    """
    import sys, torch, torch.distributed as dist, waddle
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    run = waddle.init(project="ddp", dir=sys.argv[1], settings=waddle.Settings(console=False))
    for step in range(4):
        value = torch.tensor([float(rank + 1)])
        dist.all_reduce(value)  # 1 + 2 on every rank
        run.log({"sum": value.item(), "mine": float(rank)})
    print("run", run.id, flush=True)
    run.finish()
    dist.destroy_process_group()
    """
)


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_torchrun_with_gloo_logs_both_ranks_into_one_run(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP)
    logs = tmp_path / "logs"
    done = subprocess.run(
        [*TORCHRUN, str(script), str(logs)],
        capture_output=True,
        text=True,
        env=child_env(WADDLE_SILENT="on", OMP_NUM_THREADS="1"),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run_id,) = os.listdir(logs / "ddp")
    assert run_id.startswith("torchrun-")
    with serving(logs) as s:
        wait_until(s.caught_up)
        base = f"/api/projects/ddp/runs/{run_id}"
        run = s.json(base)
        assert run["status"] == "finished" and [r["rank"] for r in run["ranks"]] == [0, 1]
        assert s.json(f"{base}/scalars", params={"key": "sum"})["series"]["value"] == [3.0] * 4
        mine = s.json(f"{base}/scalars", params={"key": "mine", "rank": 1})["series"]["value"]
        assert mine == [1.0] * 4
    (line,) = _ls(logs)
    assert line["RANKS"] == "2" and line["STATUS"] == "finished"


def test_the_run_page_has_a_rank_selector_for_charts_and_console(tmp_path, page):
    from tests.browser import wait_js

    _two_ranks(tmp_path)
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        page.goto(s.url + "/p/ddp/r/job-1?tab=console")
        page.wait_for_selector(".console-lines .line")
        assert "hello from rank 0" in page.locator(".console-lines").text_content()
        page.locator("select.rank-select").select_option("1")
        wait_js(page, "location.search.includes('rank=1')")
        wait_js(page, "document.querySelector('.console-lines')?.textContent.includes('rank 1')")
        assert "hello from rank 0" not in page.locator(".console-lines").text_content()
        # Every rank's line on one chart, each under its rank's name.
        page.goto(s.url + "/p/ddp/r/job-1?rank=all")
        wait_js(page, "document.querySelector('.tab-body')?.textContent.includes('rank 1')")
        assert page.locator("select.rank-select").input_value() == "all"
        assert "rank 0" in page.locator(".tab-body").text_content()
        page.goto("about:blank")  # before the server stops: the page would retry /ws, an error
