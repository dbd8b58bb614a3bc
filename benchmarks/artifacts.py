"""Logging an artifact while training goes on: what the training loop waits for, with waddle
and with W&B (offline), each in its own process.

The artifact is a checkpoint of ``--mb`` MiB and a dataset folder of ``--files`` files of
4 KiB. The worker times the ``add_file``/``add_dir`` calls and ``log_artifact()`` (what the
caller waits for before its next step), then ``--steps`` back-to-back ``log()`` calls of 10
scalars while the tracker stores the artifact in the background (their p50, p99 and slowest),
then the time until the version is stored: waddle's ``artifact.wait()``; W&B's offline run
cannot wait for an artifact, so its ``finish()``.

    python benchmarks/artifacts.py [--mb 256] [--files 1000] [--steps 20000] [--only waddle]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "_data" / "artifacts"
TRACKERS = ("waddle", "wandb")


def make_inputs(folder: Path, megabytes: int, files: int) -> tuple[Path, Path]:
    checkpoint = folder / "model.pt"
    with open(checkpoint, "wb") as file:
        for _ in range(megabytes):
            file.write(os.urandom(1 << 20))
    dataset = folder / "dataset"
    dataset.mkdir()
    for index in range(files):
        (dataset / f"{index:05d}.bin").write_bytes(os.urandom(4096))
    return checkpoint, dataset


def worker(name: str, megabytes: int, files: int, steps: int) -> dict:
    folder = DATA / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        checkpoint, dataset = make_inputs(folder, megabytes, files)
        os.chdir(folder)
        if name == "waddle":
            import waddle as tracker

            settings = tracker.Settings(console=False, system_metrics_interval=0)
            run = tracker.init(project="bench", dir=str(folder / "logs"), settings=settings)
        else:
            import wandb as tracker

            os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(folder))
            run = tracker.init(project="bench", settings=tracker.Settings(x_disable_stats=True))
        started = time.perf_counter()
        artifact = tracker.Artifact("bundle", type="model")
        artifact.add_file(str(checkpoint))
        artifact.add_dir(str(dataset), name="dataset")
        added = time.perf_counter()
        run.log_artifact(artifact)
        logged = time.perf_counter()
        latencies = []
        for step in range(steps):
            values = {f"k{i}": step * 0.001 + i for i in range(10)}
            before = time.perf_counter_ns()
            run.log(values)
            latencies.append(time.perf_counter_ns() - before)
        if name == "waddle":
            artifact.wait()
            stored = time.perf_counter()
            run.finish()
        else:
            run.finish()
            stored = time.perf_counter()
        latencies.sort()
        return {
            "add_ms": (added - started) * 1000,
            "log_artifact_ms": (logged - added) * 1000,
            "p50_us": latencies[len(latencies) // 2] / 1000,
            "p99_us": latencies[int(len(latencies) * 0.99)] / 1000,
            "max_ms": latencies[-1] / 1e6,
            "stored_s": stored - started,
        }
    finally:
        os.chdir(ROOT)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--only", default=",".join(TRACKERS))
    parser.add_argument("--worker")
    parser.add_argument("--results-dir", default=str(ROOT / "results"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.mb, args.files, args.steps)))
        return 0
    lines = [
        f"# Logging an artifact ({args.mb} MiB checkpoint + {args.files:,} files of 4 KiB) "
        f"while {args.steps:,} log() calls go on",
        "",
        "| tracker | add_file + add_dir ms | log_artifact() ms | log() p50 / p99 µs, max ms "
        "| stored s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in args.only.split(","):
        command = [sys.executable, __file__, "--worker", name, "--mb", str(args.mb)]
        command += ["--files", str(args.files), "--steps", str(args.steps)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["?"])[-1][:80]
            lines.append(f"| {name} | failed: {reason} | | | |")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        lines.append(
            f"| {name} | {r['add_ms']:,.1f} | {r['log_artifact_ms']:,.1f} | "
            f"{r['p50_us']:.2f} / {r['p99_us']:.1f}, {r['max_ms']:.1f} | {r['stored_s']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.results_dir, "artifacts.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
