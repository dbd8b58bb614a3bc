"""Reading a run back from its files: ``waddle.Api().run(...).history(keys=[key])`` of a
1M-point key, against MLflow's ``get_metric_history`` of the same points from its local
store, in one invocation (each reader in its own process, the best of ``--repeat`` reads).

The run is one key (plus a second key logged beside it, which the read must skip) over
``--steps`` steps. The figure is wall time from the call to the rows in hand: waddle's as a
pandas DataFrame (W&B's default), MLflow's as its list of Metric objects. The target (issue
10): waddle ≤ 0.5 s for 1M points.

    python benchmarks/api.py [--steps 1000000] [--repeat 3] [--only waddle]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "_data" / "api"


def write_waddle(folder: Path, steps: int) -> str:
    import waddle

    settings = waddle.Settings(console=False, system_metrics_interval=0, queue_size=200_000)
    with waddle.init(project="bench", dir=str(folder), settings=settings) as run:
        for step in range(steps):
            run.log({"loss": 1.0 / (step + 1), "other": float(step)})
    return f"bench/{run.id}"


def read_waddle(folder: Path, path: str) -> tuple[float, int]:
    import waddle

    started = time.perf_counter()
    api = waddle.Api(overrides={"dir": str(folder)})
    frame = api.run(path).history(keys=["loss"], samples=0)
    return time.perf_counter() - started, len(frame)


def write_mlflow(folder: Path, steps: int) -> str:
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
    return run.info.run_id


def read_mlflow(folder: Path, run_id: str) -> tuple[float, int]:
    import mlflow

    mlflow.set_tracking_uri(folder.as_uri())
    started = time.perf_counter()
    points = mlflow.tracking.MlflowClient().get_metric_history(run_id, "loss")
    return time.perf_counter() - started, len(points)


READERS = {"waddle": (write_waddle, read_waddle), "mlflow": (write_mlflow, read_mlflow)}


def worker(name: str, steps: int, repeat: int) -> None:
    write, read = READERS[name]
    folder = DATA / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        path = write(folder, steps)
        times, rows = [], 0
        for _ in range(repeat):
            seconds, rows = read(folder, path)
            times.append(seconds)
        print(json.dumps({"best": min(times), "rows": rows}))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
    lines = [
        f"# Reading a run back: history of one key of {args.steps:,} points",
        "",
        f"| reader | best of {args.repeat}, s | rows |",
        "|---|---:|---:|",
    ]
    for name in args.only.split(","):
        command = [sys.executable, __file__, "--worker", name]
        command += ["--steps", str(args.steps), "--repeat", str(args.repeat)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["?"])[-1][:80]
            lines.append(f"| {name} | failed: {reason} | |")
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        lines.append(f"| {name} | {result['best']:.3f} | {result['rows']:,} |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.results_dir, "api.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
