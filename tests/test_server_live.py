"""Live updates end to end: a real training process, a real server, a real WebSocket client."""

from __future__ import annotations

import gc
import signal
import socket
import subprocess
import textwrap

import orjson
import psutil
from waddle.server import hub
from waddle.server.errors import CODES
from websockets.sync.client import connect

from tests.conftest import PYTHON, child_env, wait_until
from tests.server_helpers import serving

# Prints its run id, waits for a line on stdin, then logs; with "hang" it then waits to be killed.
TRAIN = textwrap.dedent(
    """
    import math, sys, time, waddle
    run = waddle.init(project="live", dir=sys.argv[1],
                      settings=waddle.Settings(console=False, system_metrics_interval=0))
    print(run.id, flush=True)
    sys.stdin.readline()
    for step in range(int(sys.argv[2])):
        run.log({"loss": math.nan if step % 100 == 7 else step * 0.5})
    if sys.argv[3] == "hang":
        run.flush()
        print("logged", flush=True)
        while True:
            time.sleep(1)
    run.finish()
    """
)


def _child(root, steps: int, mode: str, **env) -> tuple[subprocess.Popen, str]:
    child = subprocess.Popen(
        [PYTHON, "-c", TRAIN, str(root), str(steps), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(**env),
    )
    return child, child.stdout.readline().strip()


class Listener:
    """A WebSocket client that keeps every message it receives, by type."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.messages: list[dict] = []

    def send(self, **message) -> None:
        self.ws.send(orjson.dumps(message).decode())

    def receive(self) -> list[dict]:
        self.messages.append(orjson.loads(self.ws.recv(timeout=10)))
        return self.messages

    def of(self, kind: str) -> list[dict]:
        return [m for m in self.messages if m["type"] == kind]

    def follow(self, run_id: str, key: str, child: subprocess.Popen) -> None:
        """Subscribe to the run's key from its start, then let the child go on."""
        self.send(op="subscribe", id=key, project="live", run=run_id, key=key, cursor=0)
        wait_until(lambda: self.receive() and self.of("subscribed"))
        child.stdin.write("go\n")
        child.stdin.flush()


def test_logged_points_reach_a_subscriber_in_order(tmp_path):
    steps = 3000
    with serving(tmp_path) as s:
        child, run_id = _child(tmp_path, steps, "finish")
        wait_until(lambda: s.get(f"/api/projects/live/runs/{run_id}").status_code == 200)
        with connect(s.ws_url) as ws:
            live = Listener(ws)
            live.follow(run_id, "loss", child)

            def points():
                return [
                    point
                    for m in live.of("points")
                    for point in zip(m["seq"], m["step"], m["value"], strict=True)
                ]

            wait_until(lambda: live.receive() and len(points()) >= steps, timeout=60)
        assert child.wait(timeout=60) == 0
        got = points()
        assert [step for _, step, _ in got] == list(range(steps))
        assert [seq for seq, _, _ in got] == sorted({seq for seq, _, _ in got})
        expected = ["NaN" if step % 100 == 7 else step * 0.5 for step in range(steps)]
        assert [value for _, _, value in got] == expected
        assert all(m["cursor"] == m["seq"][-1] for m in live.of("points"))


def test_a_killed_run_is_pushed_as_crashed_after_the_heartbeat_timeout(tmp_path):
    with serving(tmp_path, heartbeat_timeout=1.5) as s:
        # The child beats every 0.2 s, so it counts as running until it is killed.
        child, run_id = _child(tmp_path, 10, "hang", WADDLE_HEARTBEAT_INTERVAL="0.2")
        try:
            with connect(s.ws_url) as ws:
                live = Listener(ws)
                live.send(op="subscribe", id="runs", project="live")
                wait_until(lambda: live.receive() and live.of("subscribed"))
                child.stdin.write("go\n")
                child.stdin.flush()
                assert child.stdout.readline().strip() == "logged"

                def status():
                    runs = [r for m in live.of("runs") for r in m["runs"] if r["id"] == run_id]
                    return runs[-1]["status"] if runs else None

                wait_until(lambda: live.receive() and status() == "running")
                child.send_signal(signal.SIGKILL)
                child.wait(timeout=30)
                wait_until(lambda: live.receive() and status() == "crashed", timeout=30)
                assert s.json(f"/api/projects/live/runs/{run_id}")["status"] == "crashed"
        finally:
            child.kill()
            child.wait(timeout=30)


def test_a_bad_message_gets_an_error_with_the_code_http_gives_the_same_cause(tmp_path, new_run):
    run = new_run()
    run.log({"loss": 1.0})
    run.finish()
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        http = s.get("/api/projects/p/runs/nope").json()["error"]
        subscribe = {"op": "subscribe", "id": "s", "project": "p", "key": "loss"}
        sent = [
            ("not json", "invalid_parameter"),
            ("[1]", "invalid_parameter"),
            (_text({"op": "subscribe"}), "invalid_parameter"),
            (_text({"op": "wave", "id": "s"}), "invalid_parameter"),
            (_text(subscribe | {"run": run.id, "cursor": 2**63}), "invalid_parameter"),
            (_text(subscribe | {"run": run.id, "cursor": True}), "invalid_parameter"),
            (_text(subscribe | {"run": 5}), "invalid_parameter"),
            (b"\x00binary", "invalid_parameter"),
            (_text(subscribe | {"run": "nope"}), "not_found"),
        ]
        with connect(s.ws_url) as ws:
            for frame, _ in sent:
                ws.send(frame)  # a str is a text frame, bytes a binary one
            errors = [orjson.loads(ws.recv(timeout=10)) for _ in sent]
            ws.send(_text(subscribe | {"run": run.id}))
            assert orjson.loads(ws.recv(timeout=10))["type"] == "subscribed"  # still open
    assert [(e["type"], e["code"]) for e in errors] == [("error", code) for _, code in sent]
    assert all(e["code"] in CODES and e["message"] for e in errors)
    assert errors[-1]["message"] == http["message"] and errors[-1]["id"] == "s"


def _text(message: dict) -> str:
    return orjson.dumps(message).decode()


# 1,000 WebSocket clients at once, each subscribed to the runs of a project and to a series
# with its backlog; they wait for their points, then all leave.
CLIENTS = textwrap.dedent(
    """
    import asyncio, sys, orjson
    from websockets.asyncio.client import connect

    async def client(url, run_id):
        ws = await connect(url)
        await ws.send(orjson.dumps({"op": "subscribe", "id": "r", "project": "p"}).decode())
        series = {"op": "subscribe", "id": "s", "project": "p", "run": run_id, "key": "loss"}
        await ws.send(orjson.dumps(series | {"cursor": -1}).decode())
        while orjson.loads(await asyncio.wait_for(ws.recv(), 60))["type"] != "points":
            pass
        return ws

    async def main(url, run_id, count):
        sockets = []
        for _ in range(0, count, 100):
            sockets += await asyncio.gather(*(client(url, run_id) for _ in range(100)))
        await asyncio.gather(*(ws.close() for ws in sockets))

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


def test_memory_comes_back_after_a_thousand_subscribers_leave(tmp_path, new_run):
    run = new_run()
    for step in range(2000):
        run.log({"loss": float(step)})
    run.flush()
    process = psutil.Process()

    def clients(count: int) -> float:
        subprocess.run([PYTHON, "-c", CLIENTS, s.ws_url, run.id, str(count)], check=True)
        wait_until(lambda: not s.app.state.waddle.hub.connections)
        gc.collect()
        return process.memory_info().rss / 2**20

    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        clients(100)  # threads and caches a server has after its first clients
        # The allocator keeps the high-water mark of a thousand connections at once; what a
        # second thousand adds on top of it is what they left behind.
        first = clients(1000)
        second = clients(1000)
    assert second - first < 25, (
        f"RSS {first:.0f} MB after 1,000 clients, {second:.0f} MB after 2,000"
    )


def test_a_client_that_does_not_read_gets_resync_instead_of_a_growing_queue(
    tmp_path, new_run, monkeypatch
):
    """Back-pressure: sending to a client that does not read waits once the socket is full;
    meanwhile the hub keeps at most MAX_PENDING points for it, then tells it to resync."""
    monkeypatch.setattr(hub, "MAX_PENDING", 2000)
    run = new_run()
    run.log({"loss": 0.0})
    run.flush()
    with serving(tmp_path) as s:
        wait_until(lambda: s.get(f"/api/projects/p/runs/{run.id}").status_code == 200)
        slow = socket.create_connection(("127.0.0.1", int(s.url.rsplit(":", 1)[1])))
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with connect(s.ws_url, sock=slow, max_queue=1) as ws:
            subscribe = {"op": "subscribe", "id": "s", "project": "p", "run": run.id}
            ws.send(_text(subscribe | {"key": "loss"}))
            assert orjson.loads(ws.recv(timeout=10))["type"] == "subscribed"
            for step in range(1, 150_001):  # several MB of messages, not read for now
                run.log({"loss": float(step)})
            run.flush()
            (sub,) = next(iter(s.app.state.waddle.hub.connections)).subscriptions.values()
            wait_until(lambda: sub.overflow, timeout=60)
            assert sub.pending_points == 0
            kinds = set()
            while "resync" not in kinds:
                kinds.add(orjson.loads(ws.recv(timeout=30))["type"])


TB_TRAIN = textwrap.dedent(
    """
    import sys, waddle
    from waddle.tensorboard import SummaryWriter
    run = waddle.init(project="live", dir=sys.argv[1],
                      settings=waddle.Settings(console=False, system_metrics_interval=0))
    print(run.id, flush=True)
    sys.stdin.readline()
    writer = SummaryWriter(run=run)
    for step in range(500):
        writer.add_scalar("loss", step * 1.0, step)
    for step in range(200, 400):  # restarted from a checkpoint at step 200
        writer.add_scalar("loss", -step * 1.0, step)
    run.finish()
    """
)


def test_a_tensorboard_series_going_back_reads_as_in_order_live_and_over_http(tmp_path):
    expected = {step: -float(step) if 200 <= step < 400 else float(step) for step in range(500)}
    with serving(tmp_path) as s:
        child = subprocess.Popen(
            [PYTHON, "-c", TB_TRAIN, str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        run_id = child.stdout.readline().strip()
        wait_until(lambda: s.get(f"/api/projects/live/runs/{run_id}").status_code == 200)
        with connect(s.ws_url) as ws:
            live = Listener(ws)
            live.follow(run_id, "loss", child)
            assert child.wait(timeout=60) == 0

            def applied() -> dict:
                """What a client holds: per step, the point of the higher seq."""
                newest: dict[int, tuple[int, float]] = {}
                for m in live.of("points"):
                    for seq, step, value in zip(m["seq"], m["step"], m["value"], strict=True):
                        if step not in newest or seq > newest[step][0]:
                            newest[step] = (seq, value)
                return {step: value for step, (_, value) in newest.items()}

            wait_until(lambda: live.receive() and applied() == expected, timeout=60)
        for message in live.of("points"):  # each step at most once per message, in seq order
            assert len(set(message["step"])) == len(message["step"])
            assert message["seq"] == sorted(message["seq"])
        series = s.json(f"/api/projects/live/runs/{run_id}/scalars", params={"key": "loss"})
        assert series["series"]["step"] == list(range(500))
        assert series["series"]["value"] == [expected[step] for step in range(500)]
        run = s.json(f"/api/projects/live/runs/{run_id}")
        assert run["last_step"] == 499 and run["summary"]["loss"] == 499.0
        (metric,) = s.json(f"/api/projects/live/runs/{run_id}/metrics")["metrics"]
        assert (metric["count"], metric["min"], metric["max"]) == (500, -399.0, 499.0)
