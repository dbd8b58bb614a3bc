"""Reading a run back: ``waddle.Api().run(...).history(keys=[key])`` of a 1M-point key from the
log files and through ``waddle serve``, against MLflow's ``get_metric_history`` of the same
points from its local file store, in one invocation (each reader in its own process).

The run is one key (plus a second key logged beside it, which the read must skip) over
``--steps`` steps. A figure is wall time from the call to the rows in hand: waddle's as a pandas
DataFrame (W&B's default), MLflow's as its list of Metric objects. "first" is a process's first
read (duckdb and pandas already imported) with the default settings: from the log files, DuckDB
parses the segments (the client wrote the run with ``scalar_copies`` on, but its copies are set
aside for this read) and the reader caches what it parsed; "best" the best of ``--repeat``
reads after it (from that cache). "scalar copies on" is a first read in a new ``Api`` with the
copies back and the reader's cache removed (the segments' copies read, no JSON parsed), then the
best of ``--repeat`` reads after it. ``scan_history()`` is timed over every row of the key,
with how much the process's memory grew meanwhile (it streams: it must not hold the run).
The target (issue 10): waddle ≤ 0.5 s for 1M points. W&B's own ``wandb.Api()`` is not
measured: it is a client of W&B's server, and an offline run is readable through it only after
``wandb sync`` uploads it.

    python benchmarks/api.py [--steps 1000000] [--repeat 3] [--only waddle,waddle-server,mlflow]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "_data" / "api"


def write_waddle(folder: Path, steps: int) -> str:
    import waddle

    settings = waddle.Settings(
        console=False, system_metrics_interval=0, queue_size=200_000, scalar_copies=True
    )
    with waddle.init(project="bench", dir=str(folder), settings=settings) as run:
        for step in range(steps):
            run.log({"loss": 1.0 / (step + 1), "other": float(step)})
    return f"bench/{run.id}"


def read_waddle(api, path: str) -> tuple[float, int]:
    started = time.perf_counter()
    frame = api.run(path).history(keys=["loss"], samples=0)
    return time.perf_counter() - started, len(frame)


def scan_waddle(api, path: str) -> tuple[float, int, float]:
    """Seconds to scan every row of the key, rows, and the memory grown meanwhile (MB)."""
    import psutil

    process = psutil.Process()
    base = peak = process.memory_info().rss
    started = time.perf_counter()
    rows = 0
    for _ in api.run(path).scan_history(keys=["loss"], page_size=10_000):
        rows += 1
        if rows % 50_000 == 0:
            peak = max(peak, process.memory_info().rss)
    return time.perf_counter() - started, rows, (peak - base) / 1e6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def served(folder: Path):
    """``waddle serve folder`` in its own process group, caught up; its URL."""
    import httpx

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "waddle.cli", "serve", str(folder), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                health = httpx.get(f"{url}/api/health", timeout=5).json()
                if health["ingest"]["caught_up"]:
                    break
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)


def worker_waddle(folder: Path, steps: int, repeat: int, through_server: bool) -> dict:
    import waddle

    path = write_waddle(folder, steps)
    import duckdb  # noqa: F401 (imported before the first read: it times the read, not imports)
    import pandas  # noqa: F401

    with served(folder) if through_server else contextlib.nullcontext() as url:
        copies = {}
        if not through_server:  # the default first: scalar copies are opt-in
            for kept in folder.glob("*/*/.scalars"):
                copies[kept] = kept.with_name(".scalars-aside")
                kept.rename(copies[kept])
        api = waddle.Api(overrides={"base_url": url} if url else {"dir": str(folder)})
        first, rows = read_waddle(api, path)
        best = min(read_waddle(api, path)[0] for _ in range(repeat))
        with_copies = cached = None
        if not through_server:
            for kept, aside in copies.items():
                aside.rename(kept)
            shutil.rmtree(folder / ".waddle" / "history", ignore_errors=True)
            again = waddle.Api(overrides={"dir": str(folder)})
            with_copies = read_waddle(again, path)[0]
            cached = min(read_waddle(again, path)[0] for _ in range(repeat))
        scan, scanned, grown = scan_waddle(api, path)
    return {
        "first": first,
        "with_copies": with_copies,
        "cached": cached,
        "best": best,
        "rows": rows,
        "scan": scan,
        "scanned": scanned,
        "grown": grown,
    }


def worker_mlflow(folder: Path, steps: int, repeat: int) -> dict:
    # MLflow's file store: its fastest local reader (SQLite read 20k points in 0.7 s against
    # 0.06 s here); MLflow 3 wants it asked for.
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    import mlflow
    from mlflow.entities import Metric

    mlflow.set_tracking_uri(folder.as_uri())
    client = mlflow.tracking.MlflowClient()
    run = client.create_run(client.create_experiment("bench"))
    now = int(time.time() * 1000)
    for begin in range(0, steps, 1000):
        span = range(begin, min(steps, begin + 1000))
        batch = [Metric("loss", 1.0 / (s + 1), now, s) for s in span]
        batch += [Metric("other", float(s), now, s) for s in span]
        client.log_batch(run.info.run_id, metrics=batch)
    times, rows = [], 0
    for _ in range(repeat + 1):
        started = time.perf_counter()
        rows = len(mlflow.tracking.MlflowClient().get_metric_history(run.info.run_id, "loss"))
        times.append(time.perf_counter() - started)
    return {"first": times[0], "best": min(times[1:]), "rows": rows}


def worker(name: str, steps: int, repeat: int) -> None:
    folder = DATA / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        if name == "mlflow":
            result = worker_mlflow(folder, steps, repeat)
        else:
            result = worker_waddle(folder, steps, repeat, through_server=name == "waddle-server")
        print(json.dumps(result))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


READERS = {
    "waddle": "waddle.Api(), log files",
    "waddle-server": "waddle.Api(), through waddle serve",
    "mlflow": "MLflow get_metric_history, local file store",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default=",".join(READERS))
    parser.add_argument("--worker")
    parser.add_argument("--results-dir", default=str(ROOT / "results"))
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.repeat)
        return 0
    results = {}
    for name in args.only.split(","):
        command = [sys.executable, __file__, "--worker", name]
        command += ["--steps", str(args.steps), "--repeat", str(args.repeat)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            results[name] = (done.stderr.strip().splitlines() or ["?"])[-1][:80]
            continue
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    own = results.get("waddle")
    lines = [
        f"# Reading a run back: history of one key of {args.steps:,} points",
        "",
        f"| reader | first read, s | best of {args.repeat} after, s | first read, scalar copies"
        f" on, s | best of {args.repeat} after, copies on, s | rows | best ÷ waddle's (log files)"
        " | scan_history, s | memory grown by the scan, MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        if isinstance(result, str):
            lines.append(f"| {READERS[name]} | failed: {result} | | | | | | | |")
            continue
        ratio = f"{result['best'] / own['best']:.1f}×" if isinstance(own, dict) else ""
        scan = f"{result['scan']:.2f}" if "scan" in result else "n/a"
        grown = f"{result['grown']:.0f}" if "grown" in result else "n/a"
        with_copies = f"{result['with_copies']:.3f}" if result.get("with_copies") else "n/a"
        cached = f"{result['cached']:.3f}" if result.get("cached") else "n/a"
        lines.append(
            f"| {READERS[name]} | {result['first']:.3f} | {result['best']:.3f} | {with_copies} |"
            f" {cached} | {result['rows']:,} | {ratio} | {scan} | {grown} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.results_dir, "api.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
