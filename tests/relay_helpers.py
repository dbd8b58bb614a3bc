"""Helpers for the relaying tests: a central `waddle serve` and `waddle relay` as real processes
(so they can be killed with -9 and started again on the same port and folder), training
processes, and what an index holds of a run, read through the API, to compare two indexes."""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
from pathlib import Path

import httpx

from tests.conftest import PYTHON, QUIET_ENV, child_env, start_training, wait_until

TOKEN = "relay-test-token-1"


_started: list[subprocess.Popen] = []


@atexit.register
def _kill_left_running() -> None:
    for child in _started:
        if child.poll() is None:
            child.kill()
            child.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A waddle command in a child process, its output in a file. One a failing test left
    running (a relay retries for good) is killed when the tests end, never left behind."""

    def __init__(self, args: list[str], log: Path, **env: str) -> None:
        self.args, self.log, self.env = args, log, env
        self.child: subprocess.Popen | None = None

    def start(self) -> Process:
        with open(self.log, "ab") as out:
            self.child = subprocess.Popen(
                [PYTHON, "-m", "waddle.cli", *self.args],
                env=child_env(**{**QUIET_ENV, **self.env}),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _started.append(self.child)
        return self

    def kill(self) -> None:
        """kill -9, as a crash or a power cut would."""
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGKILL)
            self.child.wait(timeout=30)

    def stop(self) -> int:
        """Ctrl-C, and wait for it to exit."""
        if self.child is None:
            return 0
        if self.child.poll() is None:
            self.child.send_signal(signal.SIGINT)
        return self.child.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Central(Process):
    """`waddle serve FOLDER --token-file …` on a fixed loopback port, so it comes back at the
    same URL after a kill."""

    def __init__(self, folder: Path, log: Path, port: int | None = None, *extra: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        token_file = folder.parent / f"{folder.name}.tokens"
        token_file.write_text(f"# tokens of the test's central server\n{TOKEN}\nread viewer-1\n")
        super().__init__(
            [
                "serve",
                str(folder),
                "--port",
                str(self.port),
                "--token-file",
                str(token_file),
                *extra,
            ],
            log,
        )
        self.client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )

    def start(self) -> Central:
        super().start()
        wait_until(self._answers, timeout=30)
        return self

    def _answers(self) -> bool:
        assert self.child.poll() is None, self.output()
        try:
            return self.client.get("/api/health").status_code == 200
        except httpx.TransportError:
            return False

    def json(self, path: str, **params):
        response = self.client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def events_of(self, project: str, run_id: str) -> int:
        response = self.client.get(f"/api/projects/{project}/runs/{run_id}")
        return response.json()["events"] if response.status_code == 200 else -1


def relay_process(folder: Path, central: Central, log: Path, origin: str, *extra: str) -> Process:
    token_file = log.with_suffix(".token")
    token_file.write_text(TOKEN + "\n")
    return Process(
        [
            "relay",
            str(folder),
            "--to",
            central.url,
            "--token-file",
            str(token_file),
            "--origin",
            origin,
            *extra,
        ],
        log,
    )


# Scalars (NaN and ±Inf among them), text, an image every 250 steps, a saved file, a finish;
# prints the step every 500 steps so that a test can act mid-stream. STEPS and PAUSE vary.
TRAINING = """
    import math, os, sys, time
    import numpy as np
    import waddle
    steps, pause = int(os.environ["STEPS"]), float(os.environ["PAUSE"])
    run = waddle.init(project="p", id=os.environ.get("RUN_ID"), config={"lr": 0.1})
    for step in range(steps):
        values = {"loss": 1 / (step + 1), "acc": step * 0.01, "lr/x": math.sin(step)}
        if step % 97 == 0:
            values["odd"] = [math.nan, math.inf, -math.inf][step % 3]
        if step % 250 == 0:
            values["img"] = waddle.Image(np.full((4, 4, 3), step % 256, dtype=np.uint8))
            values["note"] = f"step {step}"
        run.log(values)
        if step % 500 == 0:
            print(step, flush=True)
        time.sleep(pause)
    path = os.path.join(os.environ["WADDLE_DIR"], "weights.bin")
    with open(path, "wb") as file:
        file.write(os.urandom(5000))
    run.save(path)
    run.finish()
    print("done", run.id, flush=True)
"""


def train(log_dir: Path, steps: int = 600, pause: float = 0.0, **env: str) -> subprocess.Popen:
    return start_training(TRAINING, log_dir, STEPS=str(steps), PAUSE=str(pause), **env)


def finished_id(child: subprocess.Popen) -> str:
    """Wait for a training child to end well; its run id."""
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    return out.split()[-1]


def index_view(client: httpx.Client, project: str, run_id: str, rank: int | None = None) -> dict:
    """What an index holds of one run (of its stream ``rank``: every answer that takes
    ``rank=``), through the API: the run, its metrics, every scalar series in full, and the
    records of every other kind (ids and origin left out, so that a relayed copy compares
    equal to its original)."""
    base = f"/api/projects/{project}/runs/{run_id}"

    def get(path: str, **params):
        if rank is not None and path:
            params["rank"] = rank
        response = client.get(base + path, params=params)
        assert response.status_code == 200, (path, response.text)
        return response.json()

    run = get("")
    for name in ("id", "origin", "origin_run_id"):
        run.pop(name, None)
    for reject in run.get("rejects", []):
        reject["file"] = reject["file"].rsplit("/", 1)[-1]
    metrics = get("/metrics")["metrics"]
    view = {"run": run, "metrics": metrics}
    for metric in metrics:
        if metric["type"] == "scalar":
            series = get("/scalars", key=metric["key"], x="step")
            view[f"scalars {metric['key']}"] = (series["series"], series["cursor"])
    for kind in ("media", "histograms", "tables", "text", "console", "alerts", "system"):
        view[kind] = get(f"/{kind}")
    view["rejects"] = [
        {**reject, "file": reject["file"].rsplit("/", 1)[-1]} for reject in get("/rejects")["items"]
    ]
    return view


def local_index_view(log_dir: Path, project: str, run_id: str) -> dict:
    """The view of a run from a local index of ``log_dir`` (a server started for it)."""
    from tests.server_helpers import serving

    with serving(log_dir) as served:
        wait_until(served.caught_up, timeout=60)
        return index_view(served.client, project, run_id)


def kill_group(child: subprocess.Popen) -> None:
    if child.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
