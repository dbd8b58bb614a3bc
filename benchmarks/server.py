"""Server benchmark: waddle's ingest and query speed against its targets, and peers' read paths.

Run it with the peers' venv (it holds waddle too): ``.venv-peers/bin/python benchmarks/server.py``
(about 5-8 minutes; ``--quick`` about 2). It prints markdown tables and writes them to
``benchmarks/results/server.md``. Every figure comes from this one run on this machine; the
machine is shared and noisy, so compare ratios from the same run rather than absolute figures.

What is measured (see the notes printed under the tables for the sizes used):

- ingest: catch-up of a folder of finished runs (the ``waddle reindex`` code path, in a fresh
  process), and the live tail: a ``waddle serve`` process ingesting while a training process logs
  through waddle's client as fast as it can;
- query latency over HTTP against ``waddle serve``: the M4-downsampled scalars endpoint on a
  1M-point series (full range and a zoom), the batch endpoint for 20 such series, the runs list
  of a project with 10,000 runs;
- log() -> WebSocket latency: a training process logs its CLOCK_MONOTONIC stamp as the value,
  a WebSocket client subscribed to that series through the server subtracts it on arrival;
- peers, on the same shape of data where they can hold it: mlflow's tracking server
  (get-history-bulk-interval, its downsampled history), trackio's local SQLite read path, aim's
  SDK read path. A peer that fails is a row with its error.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import random
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "server"
RESULTS = HERE / "results" / "server.md"
KEYS = [f"train/k{i}" for i in range(10)]
T0 = 1.79e9

# Targets from GitHub issue 4.
TARGETS = {
    "ingest": 1_000_000,  # points/s, sustained
    "m4": 30.0,  # ms, 1M-point series -> 2,000 buckets
    "batch": 300.0,  # ms, 20 such series in one request
    "runs": 100.0,  # ms, runs list of 10,000 runs
    "ws_p99": 1000.0,  # ms, log() -> WebSocket
}


# --- writing logs: valid event lines (docs/format.md), written directly ---


def write_run(
    root: Path, project: str, run_id: str, steps: int, keys: list[str], seed: int = 0
) -> int:
    """One finished run of ``steps`` log events with ``keys`` random floats each; its points."""
    run_dir = root / project / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed).random
    dumps = orjson.dumps
    start = {"v": 1, "seq": 0, "t": T0, "type": "run_start", "project": project}
    start |= {"run_id": run_id, "name": run_id, "config": {"seed": seed}, "tags": ["bench"]}
    start |= {"notes": None, "group": None, "job_type": None, "resumed": False, "context": {}}
    with open(run_dir / "events-000000000000.jsonl", "wb") as file:
        file.write(dumps(start) + b"\n")
        for begin in range(0, steps, 10_000):
            lines = [
                dumps(
                    {
                        "v": 1,
                        "seq": step + 1,
                        "t": T0 + step * 0.01,
                        "type": "log",
                        "step": step,
                        "data": {key: rnd() for key in keys},
                    }
                )
                for step in range(begin, min(steps, begin + 10_000))
            ]
            file.write(b"\n".join(lines) + b"\n")
        finish = {"v": 1, "seq": steps + 1, "t": T0 + steps * 0.01, "type": "finish"}
        finish |= {"exit_code": 0, "status": "finished", "last_step": steps - 1}
        finish |= {"dropped": {"steps": 0, "values": 0}, "stalled_seconds": 0.0}
        finish |= {"lost_events": 0, "lost_values": 0}
        file.write(dumps(finish) + b"\n")
    return steps * len(keys)


# --- child processes (python benchmarks/server.py --child NAME ...) ---


def child_catch_up(folder: str, db: str) -> dict:
    from waddle.server.indexer import Indexer
    from waddle.server.store import Store

    store = Store(Path(db))
    indexer = Indexer(store, Path(folder))
    start = time.perf_counter()
    indexer.catch_up()
    seconds = time.perf_counter() - start
    store.close()
    size = sum(path.stat().st_size for path in Path(db).parent.glob(Path(db).name + "*"))
    return {"seconds": seconds, "bytes": size, **indexer.totals}


def child_writer(folder: str, project: str, steps: str, rate: str) -> dict:
    """Log through waddle's client: full speed (rate 0, 10 keys), or paced monotonic stamps."""
    import waddle

    steps_n, rate_f = int(steps), float(rate)
    settings = {"console": False, "system_metrics_interval": 0}
    run = waddle.init(project=project, dir=folder, settings=settings)
    print(json.dumps({"run": run.id}), flush=True)
    start = time.monotonic()
    if rate_f:
        clock = time.clock_gettime
        for step in range(steps_n):
            run.log({"lat": clock(time.CLOCK_MONOTONIC)})
            time.sleep(max(0.0, start + (step + 1) / rate_f - time.monotonic()))
    else:
        rnd = random.random
        for _ in range(steps_n):
            run.log({key: rnd() for key in KEYS})
    logged = time.monotonic()
    run.finish(quiet=True)
    return {"start": start, "logged": logged, "finished": time.monotonic()}


def child_trackio(folder: str, points: str, reps: str) -> dict:
    os.environ["TRACKIO_DIR"] = folder
    from trackio.sqlite_storage import SQLiteStorage

    n = int(points)
    start = time.perf_counter()
    for begin in range(0, n, 10_000):
        steps = list(range(begin, min(n, begin + 10_000)))
        SQLiteStorage.bulk_log(
            "bench",
            "big",
            [{"train/k0": random.random()} for _ in steps],
            steps=steps,
            timestamps=["2026-11-23T00:00:00"] * len(steps),
        )
    load = time.perf_counter() - start
    zoom = (n * 2 // 5, n * 2 // 5 + n // 50)
    cases = {
        "m4": lambda: SQLiteStorage.get_metric_values("bench", "big", "train/k0", max_points=2000),
        "zoom": lambda: SQLiteStorage.get_metric_values(
            "bench", "big", "train/k0", around_step=sum(zoom) // 2, window=n // 100, max_points=2000
        ),
    }
    return {"load_s": load, **{name: _times(fn, int(reps)) for name, fn in cases.items()}}


def child_aim(folder: str, points: str, reps: str) -> dict:
    from aim import Run

    n = int(points)
    start = time.perf_counter()
    run = Run(repo=folder, system_tracking_interval=None, log_system_params=False)
    for step in range(n):
        run.track(random.random(), name="train/k0", step=step)
    load = time.perf_counter() - start

    def read() -> None:
        # Through the writing Run: aim 3.29 showed a reopened read-only Run no metrics at all.
        (metric,) = [m for m in run.metrics() if m.name == "train/k0"]
        _steps, values = metric.values.sparse_numpy()
        if len(values) != n:
            raise RuntimeError(f"aim read {len(values)} of {n} points")

    try:
        return {"load_s": load, "full": _times(read, int(reps))}
    finally:
        run.close()


CHILDREN: dict[str, Callable[..., dict]] = {
    "catch-up": child_catch_up,
    "writer": child_writer,
    "trackio": child_trackio,
    "aim": child_aim,
}


def _times(fn: Callable[[], object], reps: int, budget: float = 15.0) -> list[float]:
    """Milliseconds of up to ``reps`` calls after 2 untimed ones (1 for a call over a second);
    a slow read stops after 3 timed calls once ``budget`` seconds have gone."""
    start = time.perf_counter()
    fn()
    if time.perf_counter() - start < 1.0:
        fn()
    out: list[float] = []
    began = time.perf_counter()
    while len(out) < reps and (len(out) < 3 or time.perf_counter() - began < budget):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def run_child(name: str, *args: object, timeout: float = 600) -> dict:
    command = [sys.executable, __file__, "--child", name, *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(_last_error(done.stderr))
    return json.loads(done.stdout.strip().splitlines()[-1])


def _last_error(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "failed without a message"


# --- waddle serve ---


class Server:
    """``waddle serve FOLDER`` in a subprocess on a free port."""

    def __init__(
        self,
        folder: Path,
        stderr: int | None = None,
        python: str = sys.executable,
        db: Path | None = None,
    ) -> None:
        code = "import sys; from waddle.cli import main; sys.exit(main())"
        index = ["--db", str(db)] if db is not None else []
        self.process = subprocess.Popen(
            [python, "-c", code, "serve", str(folder), "--port", "0", *index],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        line = self.process.stdout.readline()
        match = re.search(r"http://[^\s]+", line)
        if not match:
            self.process.kill()
            raise RuntimeError(f"waddle serve did not start: {line!r}")
        self.url = match.group(0)
        self.http = httpx.Client(base_url=self.url, timeout=120)

    def ingest(self) -> dict:
        return self.http.get("/api/health").json()["ingest"]

    def wait_points(self, points: int, timeout: float = 600) -> float:
        """Poll until the index holds ``points`` scalar points; the monotonic time it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ingest = self.ingest()
            if ingest["points"] >= points and ingest["caught_up"]:
                return time.monotonic()
            time.sleep(0.02)
        raise TimeoutError(f"the index did not reach {points} points in {timeout} s")

    def close(self) -> None:
        self.http.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@contextlib.contextmanager
def serving(folder: Path) -> Iterator[Server]:
    server = Server(folder)
    try:
        yield server
    finally:
        server.close()


# --- the measurements ---


def measure_catch_up(runs: int, steps: int, reps: int) -> dict:
    folder = DATA / "catch-up"
    shutil.rmtree(folder, ignore_errors=True)
    points = sum(
        write_run(folder, "bench", f"run-{index:05d}", steps, KEYS, seed=index)
        for index in range(runs)
    )
    rates = []
    for rep in range(reps):
        db = DATA / f"catch-up-{rep}.duckdb"
        db.unlink(missing_ok=True)
        result = run_child("catch-up", folder, db)
        if result["points"] != points:
            raise RuntimeError(f"catch-up indexed {result['points']} of {points} points")
        rates.append(points / result["seconds"])
        db.unlink(missing_ok=True)
    log_bytes = sum(path.stat().st_size for path in folder.rglob("*.jsonl"))
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "points": points,
        "rates": rates,
        "runs": runs,
        "steps": steps,
        "log_bytes": log_bytes,
        "index_bytes": result["bytes"],
    }


def measure_live_tail(steps: int, reps: int) -> dict:
    """A server on an empty folder; a writer logs ``steps`` x 10 keys at full speed."""
    points = steps * len(KEYS)
    results = []
    for rep in range(reps):
        folder = DATA / f"live-{rep}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        with serving(folder) as server:
            command = [sys.executable, __file__, "--child", "writer", folder, "live", steps, 0]
            writer = subprocess.Popen(
                list(map(str, command)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            indexed_at_end = None
            while writer.poll() is None:
                time.sleep(0.05)
                indexed_at_end = server.ingest()["points"]
            stamps = json.loads(writer.stdout.read().strip().splitlines()[-1])
            caught_up = server.wait_points(points)
        shutil.rmtree(folder, ignore_errors=True)
        results.append(
            {
                "end_to_end": points / (caught_up - stamps["start"]),
                "writer": points / (stamps["finished"] - stamps["start"]),
                "during": indexed_at_end / (stamps["finished"] - stamps["start"]),
                "lag_s": caught_up - stamps["finished"],
            }
        )
    return {"points": points, "reps": results}


def build_query_folder(folder: Path, big_steps: int, mid_steps: int, many: int) -> dict:
    shutil.rmtree(folder, ignore_errors=True)
    points = 0
    for index in range(2):
        points += write_run(folder, "bench", f"big-{index}", big_steps, KEYS, seed=index)
        points += write_run(folder, "mid", f"mid-{index}", mid_steps, KEYS, seed=10 + index)
    for index in range(many):
        points += write_run(folder, "many", f"run-{index:05d}", 10, KEYS[:3], seed=index)
    return {"points": points}


def measure_queries(server: Server, big_steps: int, mid_steps: int, reps: int) -> dict:
    http = server.http

    def get(path: str, **params) -> Callable[[], None]:
        def call() -> None:
            response = http.get(path, params=params)
            response.raise_for_status()
            response.content  # noqa: B018 - the body is part of the latency

        return call

    def batch(project: str, runs: list[str], **extra) -> Callable[[], None]:
        body = {"series": [{"run": r, "key": k} for r in runs for k in KEYS], "points": 2000}

        def call() -> None:
            response = http.post(f"/api/projects/{project}/scalars", json=body | extra)
            response.raise_for_status()
            for result in response.json()["results"]:
                if "error" in result:
                    raise RuntimeError(result["error"])

        return call

    big = "/api/projects/bench/runs/big-0/scalars"
    mid = "/api/projects/mid/runs/mid-0/scalars"
    zoom = (big_steps * 2 // 5, big_steps * 2 // 5 + big_steps // 50 - 1)
    mid_zoom = (mid_steps * 2 // 5, mid_steps * 2 // 5 + mid_steps // 50 - 1)
    cases = {
        "m4": get(big, key="train/k0", points=2000),
        "zoom": get(big, key="train/k0", points=2000, start=zoom[0], end=zoom[1]),
        "m4_time": get(big, key="train/k0", x="time", points=2000),
        "m4_custom": get(big, key="train/k0", x="train/k1", points=2000),
        "batch": batch("bench", ["big-0", "big-1"]),
        "runs": get("/api/projects/many/runs", limit=10_000),
        "mid_m4": get(mid, key="train/k0", points=2000),
        "mid_zoom": get(mid, key="train/k0", points=2000, start=mid_zoom[0], end=mid_zoom[1]),
        "mid_batch": batch("mid", ["mid-0", "mid-1"]),
        "mid_full": get(mid, key="train/k0"),
    }
    count = len(http.get("/api/projects/many/runs", params={"limit": 10_000}).json()["runs"])
    out = {name: _times(fn, reps) for name, fn in cases.items()}
    out["runs_listed"] = count
    return out


def measure_ws(server: Server, folder: Path, seconds: float, rate: float) -> dict:
    """A paced writer logs its monotonic clock; a subscriber measures arrival minus stamp."""
    from websockets.sync.client import connect

    steps = int(seconds * rate)
    command = [sys.executable, __file__, "--child", "writer", folder, "latency", steps, rate]
    writer = subprocess.Popen(
        list(map(str, command)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    run_id = json.loads(writer.stdout.readline())["run"]
    deadline = time.monotonic() + 30
    while server.http.get(f"/api/projects/latency/runs/{run_id}").status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError("the latency run never appeared in the index")
        time.sleep(0.02)
    latencies = []
    with connect(server.url.replace("http://", "ws://") + "/ws") as ws:
        subscribe = {"op": "subscribe", "id": "lat", "project": "latency", "run": run_id}
        ws.send(json.dumps(subscribe | {"key": "lat"}))
        subscribed = time.clock_gettime(time.CLOCK_MONOTONIC)
        last = 0.0
        while last < steps - 1:  # until the point of the last step arrives
            try:
                message = json.loads(ws.recv(timeout=5))
            except TimeoutError:
                if writer.poll() is not None:
                    break
                continue
            if message.get("type") != "points":
                continue
            now = time.clock_gettime(time.CLOCK_MONOTONIC)
            latencies += [now - v for v in message["value"] if v > subscribed]
            last = max(message["step"], default=last)
    writer.wait(timeout=60)
    if not latencies:
        raise RuntimeError("no point reached the WebSocket subscriber")
    ms = np.array(latencies) * 1000
    return {"n": len(ms), "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}


# --- mlflow ---


def measure_mlflow(points: int, mid_points: int, reps: int) -> dict:
    """mlflow's tracking server on SQLite; its history endpoints over HTTP."""
    folder = DATA / "mlflow"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    mlflow = Path(sys.executable).with_name("mlflow")
    port = _free_port()
    db = folder / "mlflow.db"
    command = [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{db}", "--host"]
    command += ["127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--default-artifact-root", str(folder / "artifacts")]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300)
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if http.get("/health").status_code == 200:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("mlflow server did not start")
            time.sleep(0.5)
        start = time.perf_counter()
        big = _mlflow_run(http, db, "big", points)
        mids = [_mlflow_run(http, db, f"mid-{index}", mid_points) for index in range(20)]
        load = time.perf_counter() - start
        interval = "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"
        zoom = (points * 2 // 5, points * 2 // 5 + points // 50 - 1)

        def get(path: str, params: dict) -> Callable[[], None]:
            def call() -> None:
                response = http.get(path, params=params)
                response.raise_for_status()
                response.content  # noqa: B018

            return call

        one = {"run_ids": big, "metric_key": "train/k0", "max_results": 2000}
        cases = {
            "m4": get(interval, one),
            "zoom": get(interval, one | {"start_step": zoom[0], "end_step": zoom[1]}),
            "mid_batch": get(
                interval, {"run_ids": mids, "metric_key": "train/k0", "max_results": 2000}
            ),
        }
        out = {name: _times(fn, reps) for name, fn in cases.items()}
        out["load_s"] = load
        return out
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(folder, ignore_errors=True)


def _mlflow_run(http: httpx.Client, db: Path, name: str, points: int) -> str:
    """A run with one ``points``-long series: the first point through the REST API (which
    creates the schema's rows), the rest inserted into its SQLite table as log-batch would."""
    response = http.post(
        "/api/2.0/mlflow/runs/create", json={"experiment_id": "0", "run_name": name}
    )
    response.raise_for_status()
    run_id = response.json()["run"]["info"]["run_id"]
    metric = {"key": "train/k0", "value": 0.5, "timestamp": 1, "step": 0}
    http.post("/api/2.0/mlflow/runs/log-batch", json={"run_id": run_id, "metrics": [metric]})
    with sqlite3.connect(db, timeout=60) as con:
        con.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
            " VALUES ('train/k0', ?, ?, ?, ?, 0)",
            ((random.random(), 1 + step, run_id, step) for step in range(1, points)),
        )
    return run_id


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the report ---


def p50(values: list[float]) -> float:
    return float(np.median(values))


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99))


def fmt_ms(values: list[float] | None) -> str:
    if not values:
        return "–"
    return f"{p50(values):,.1f} ms (p99 {p99(values):,.1f})"


def attempt(errors: dict, name: str, fn: Callable[[], dict]) -> dict | None:
    try:
        return fn()
    except Exception as error:  # a failing part is a row with its error, never a crash
        errors[name] = f"{type(error).__name__}: {error}"[:300]
        print(f"  {name} failed: {errors[name]}", file=sys.stderr)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about 2 minutes")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--results", default=str(RESULTS), help="markdown file to write")
    parser.add_argument("--only", default="", help="comma list of parts (default: all)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child[0]](*args.child[1:])), flush=True)
        return

    quick = args.quick
    sizes = {
        "catch_runs": 100,
        "catch_steps": 1_000 if quick else 100_000,
        "tail_steps": 200_000 if quick else 1_000_000,
        "big_steps": 200_000 if quick else 1_000_000,
        "mid_steps": 20_000 if quick else 100_000,
        "many": 2_000 if quick else 10_000,
        "reps": 7 if quick else 15,
        "ingest_reps": 1 if quick else 2,
        "ws_seconds": 4 if quick else 10,
        "peer_points": 200_000 if quick else 1_000_000,  # as big_steps: ratios need it
        "aim_points": 20_000 if quick else 100_000,  # as mid_steps: the same series size
    }
    only = set(filter(None, args.only.split(",")))
    wanted = lambda part: not only or part in only  # noqa: E731
    DATA.mkdir(parents=True, exist_ok=True)
    errors: dict[str, str] = {}
    res: dict[str, dict | None] = {}
    started = time.monotonic()
    load = os.getloadavg()

    def step(name: str, fn: Callable[[], dict]) -> None:
        if wanted(name):
            print(f"[{time.monotonic() - started:6.1f} s] {name}", file=sys.stderr, flush=True)
            res[name] = attempt(errors, name, fn)

    step(
        "catch_up",
        lambda: measure_catch_up(sizes["catch_runs"], sizes["catch_steps"], sizes["ingest_reps"]),
    )
    step("live_tail", lambda: measure_live_tail(sizes["tail_steps"], sizes["ingest_reps"]))
    if any(wanted(part) for part in ("queries", "ws")):
        folder = DATA / "query"
        built = build_query_folder(folder, sizes["big_steps"], sizes["mid_steps"], sizes["many"])
        with serving(folder) as server:
            begin = time.monotonic()
            res["serve_catch_up"] = attempt(
                errors, "serve_catch_up", lambda: _serve_catch_up(server, built["points"], begin)
            )
            step(
                "queries",
                lambda: measure_queries(
                    server, sizes["big_steps"], sizes["mid_steps"], sizes["reps"]
                ),
            )
            step("ws", lambda: measure_ws(server, folder, sizes["ws_seconds"], 50.0))
        shutil.rmtree(folder, ignore_errors=True)
    step(
        "mlflow",
        lambda: measure_mlflow(sizes["peer_points"], sizes["mid_steps"], sizes["reps"]),
    )
    step(
        "trackio",
        lambda: run_child("trackio", _fresh("trackio"), sizes["peer_points"], sizes["reps"]),
    )
    step("aim", lambda: run_child("aim", _fresh("aim"), sizes["aim_points"], sizes["reps"]))
    shutil.rmtree(DATA, ignore_errors=True)

    report = render(res, errors, sizes, quick, load, time.monotonic() - started)
    print(report)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(report)


def _serve_catch_up(server: Server, points: int, begin: float) -> dict:
    done = server.wait_points(points)
    return {"points": points, "seconds": done - begin}


def _fresh(name: str) -> Path:
    folder = DATA / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def render(res: dict, errors: dict, sizes: dict, quick: bool, load: tuple, seconds: float) -> str:
    """The markdown report: targets table, peers table, then notes."""
    out = ["# Server benchmark: ingest and query", ""]
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out.append(f"- date: {now}; {'--quick' if quick else 'full'} run, {seconds:.0f} s")
    out.append(
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Linux {platform.release()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        "at the start; Python " + platform.python_version()
    )
    out.append(f"- commit: {_commit()}")
    out += ["", "## waddle against its targets", ""]
    out += ["| figure | waddle | target | met |", "|---|---:|---:|---|"]

    def row(figure: str, value: str, target: str, met: bool | None) -> None:
        verdict = "–" if met is None else ("yes" if met else "**no**")
        out.append(f"| {figure} | {value} | {target} | {verdict} |")

    def error_row(figure: str, name: str) -> None:
        out.append(f"| {figure} | error: {errors.get(name, 'not run')} | | |")

    catch = res.get("catch_up")
    if catch:
        rates = catch["rates"]
        size = f"{catch['runs']} runs × 10 keys × {catch['steps']:,} steps"
        value = f"{max(rates) / 1e6:.2f} M points/s" + (
            f" ({min(rates) / 1e6:.2f}–{max(rates) / 1e6:.2f})" if len(rates) > 1 else ""
        )
        row(
            f"catch-up ingest, {size} ({catch['points'] / 1e6:.0f}M points)",
            value,
            "≥ 1 M/s",
            max(rates) >= TARGETS["ingest"],
        )
        row(
            "… size of the logs / of the index built from them",
            f"{catch['log_bytes'] / 1e9:.2f} / {catch['index_bytes'] / 1e9:.2f} GB",
            "",
            None,
        )
    else:
        error_row("catch-up ingest", "catch_up")
    tail = res.get("live_tail")
    if tail:
        ends = [rep["end_to_end"] for rep in tail["reps"]]
        during = [rep["during"] for rep in tail["reps"]]
        writer = [rep["writer"] for rep in tail["reps"]]
        lag = [rep["lag_s"] for rep in tail["reps"]]
        size = f"{tail['points'] / 1e6:.0f}M points from one training process"
        row(
            f"live-tail ingest, writer start → all indexed ({size})",
            f"{max(ends) / 1e6:.2f} M points/s" + _range(ends),
            "≥ 1 M/s",
            max(ends) >= TARGETS["ingest"],
        )
        row(
            "… indexed while the writer was logging / the writer's own rate",
            f"{max(during) / 1e6:.2f} / {max(writer) / 1e6:.2f} M points/s",
            "",
            None,
        )
        row("… index behind the writer's finish()", f"{min(lag):.2f} s", "", None)
    else:
        error_row("live-tail ingest", "live_tail")
    served = res.get("serve_catch_up")
    if served:
        row(
            f"`waddle serve` start → caught up, query folder ({served['points'] / 1e6:.1f}M "
            "points, 10,004 runs)"
            if not quick
            else "`waddle serve` start → caught up, query "
            f"folder ({served['points'] / 1e6:.1f}M points)",
            f"{served['seconds']:.1f} s ({served['points'] / served['seconds'] / 1e6:.2f} M/s)",
            "",
            None,
        )
    queries = res.get("queries")
    big = f"{sizes['big_steps'] / 1e6:g}M"
    if queries:
        row(
            f"scalars M4, {big}-point series → 2,000 buckets, full range",
            fmt_ms(queries["m4"]),
            "≤ 30 ms",
            p50(queries["m4"]) <= TARGETS["m4"],
        )
        row(f"scalars M4, zoom on 2 % of the {big} series", fmt_ms(queries["zoom"]), "", None)
        row(f"scalars M4, {big} series on the wall-time axis", fmt_ms(queries["m4_time"]), "", None)
        row(
            f"scalars M4, {big} series against another key (custom x, a {big}-row join)",
            fmt_ms(queries["m4_custom"]),
            "",
            None,
        )
        row(
            f"batch: 20 series of {big} points → 2,000 buckets each",
            fmt_ms(queries["batch"]),
            "≤ 300 ms",
            p50(queries["batch"]) <= TARGETS["batch"],
        )
        row(
            f"runs list of {queries['runs_listed']:,} runs (limit=10000)",
            fmt_ms(queries["runs"]),
            "≤ 100 ms",
            p50(queries["runs"]) <= TARGETS["runs"],
        )
    else:
        error_row("query latency", "queries")
    ws = res.get("ws")
    if ws:
        row(
            f"log() → WebSocket, p50 / p99 ({ws['n']} points at 50/s)",
            f"{ws['p50']:.0f} / {ws['p99']:.0f} ms",
            "p99 ≤ 1,000 ms",
            ws["p99"] <= TARGETS["ws_p99"],
        )
    else:
        error_row("log() → WebSocket", "ws")

    out += ["", "## Peers: the same reads, ratios from this run", ""]
    out += [
        "| read | data | waddle | peer | peer figure | peer ÷ waddle |",
        "|---|---|---:|---|---:|---:|",
    ]
    mid = f"{sizes['mid_steps'] / 1e3:g}k"
    peer_points = f"{sizes['peer_points'] / 1e6:g}M"

    def peer(read: str, data: str, ours: list | None, name: str, theirs: list | None) -> None:
        if theirs is None:
            out.append(
                f"| {read} | {data} | {fmt_ms(ours)} | {name} | error: "
                f"{errors.get(name, 'not run')} | |"
            )
            return
        ratio = f"{p50(theirs) / p50(ours):,.1f}×" if ours else "–"
        out.append(f"| {read} | {data} | {fmt_ms(ours)} | {name} | {fmt_ms(theirs)} | {ratio} |")

    q = queries or {}
    same = peer_points == big
    ours_m4 = q.get("m4") if same else None
    ours_zoom = q.get("zoom") if same else None
    ml = res.get("mlflow")
    peer(
        "one series → 2,000 points, full range",
        f"{peer_points} points",
        ours_m4,
        "mlflow",
        ml and ml["m4"],
    )
    peer(
        "one series → 2,000 points, zoom (2 %)",
        f"{peer_points} points",
        ours_zoom,
        "mlflow",
        ml and ml["zoom"],
    )
    peer(
        "20 series → 2,000 points each, one request",
        f"20 × {mid} points",
        q.get("mid_batch"),
        "mlflow",
        ml and ml["mid_batch"],
    )
    tk = res.get("trackio")
    peer(
        "one series → 2,000 points, full range",
        f"{peer_points} points",
        ours_m4,
        "trackio",
        tk and tk["m4"],
    )
    peer(
        "one series → 2,000 points, zoom (2 %)",
        f"{peer_points} points",
        ours_zoom,
        "trackio",
        tk and tk["zoom"],
    )
    am = res.get("aim")
    peer(
        "whole series (waddle: its full-series JSON endpoint)",
        f"{mid} points",
        q.get("mid_full"),
        "aim",
        am and am["full"],
    )

    out += ["", "## Notes", ""]
    notes = [
        "Latencies are p50 (p99) over "
        f"{sizes['reps']} requests after 2 warm-ups (a read slower than 1 s: 1 warm-up, and at "
        "least 3 timed calls within 15 s), from a client in another process on 127.0.0.1; "
        "'met' judges the p50. Ingest figures are the best of "
        f"{sizes['ingest_reps']} repetitions (range in brackets).",
        "Catch-up runs the `waddle reindex` code path (Indexer.catch_up) in a fresh process on a "
        "folder of finished runs written as valid event lines: the issue's 100 runs × 10 keys × "
        "100k steps (100M points); --quick scales it down as stated in the row.",
        "Live tail: `waddle serve` on an empty folder, then one training process logs 10 random "
        "floats per step through waddle's client as fast as it can; the rate is all points over "
        "the time from its first log() to the index holding the last one (health endpoint, "
        "polled every 50 ms). Both processes share the 2 cores.",
        f"Query folder: 2 runs × 10 keys × {sizes['big_steps']:,} steps (the 20 series of the "
        f"batch), 2 runs × 10 keys × {sizes['mid_steps']:,} steps, and {sizes['many']:,} small "
        "runs in their own project (the runs list), all ingested by `waddle serve` at start.",
        "log() → WebSocket: a training process logs `time.clock_gettime(CLOCK_MONOTONIC)` as the "
        "value 50 times a second; a WebSocket client subscribed to that series through the "
        "server takes the same clock on arrival. Points logged before the subscription are "
        "left out.",
        f"mlflow {_version('mlflow')}: `mlflow server` on SQLite; get-history-bulk-interval "
        "with max_results=2000 (its downsampled history; it samples steps, where waddle's M4 "
        "keeps min/max/first/last per bucket). The first point of each run goes through its "
        "REST log-batch; the rest is inserted into its `metrics` table with the same columns, "
        "since loading 1M points through its API takes minutes. Its batch row is 20 runs × one "
        f"key of {mid} points (bulk-interval takes one key), waddle's is 2 runs × 10 keys.",
        f"trackio {_version('trackio')}: its local SQLite storage, loaded with bulk_log; the "
        "read is SQLiteStorage.get_metric_values(max_points=2000) in process (no HTTP), the zoom "
        "its around_step/window filter.",
        f"aim {_version('aim')}: tracking is slow (about 5k points/s), so it holds the "
        f"{mid}-point series only; the read is its SDK in process (the series' values through "
        "the Run that wrote them: a Run reopened read-only showed no metrics), a whole series, "
        "set beside waddle's whole-series JSON endpoint over HTTP on a series of the same size.",
        "peer ÷ waddle > 1 means waddle is faster. A ratio is only given when both sides "
        "read the same amount of data.",
    ]
    out += [f"- {note}" for note in notes]
    return "\n".join(out) + "\n"


def _range(values: list[float]) -> str:
    return f" ({min(values) / 1e6:.2f}–{max(values) / 1e6:.2f})" if len(values) > 1 else ""


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    for name in (package, f"{package}-skinny"):
        with contextlib.suppress(PackageNotFoundError):
            return version(name)
    return "?"


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "server", "waddle"],
            capture_output=True,
            text=True,
            cwd=HERE,
        ).stdout.strip()
    except OSError:
        return "?"
    return head + (" with uncommitted changes in server/ or waddle/" if dirty else "")


if __name__ == "__main__":
    main()
