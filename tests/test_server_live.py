"""Live updates end to end: a real training process, a real server, a real WebSocket client."""

from __future__ import annotations

import signal
import subprocess
import textwrap

import orjson
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


def test_logged_points_reach_a_subscriber_in_order(tmp_path):
    steps = 3000
    with serving(tmp_path) as s:
        child, run_id = _child(tmp_path, steps, "finish")
        wait_until(lambda: s.get(f"/api/projects/live/runs/{run_id}").status_code == 200)
        with connect(s.ws_url) as ws:
            live = Listener(ws)
            live.send(op="subscribe", id="loss", project="live", run=run_id, key="loss", cursor=0)
            wait_until(lambda: live.receive() and live.of("subscribed"))
            child.stdin.write("go\n")
            child.stdin.flush()

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
