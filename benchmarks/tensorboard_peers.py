"""TensorBoard benchmark (named so that `import tensorboard` finds the package, not this file): waddle's SummaryWriter and ``waddle import tensorboard`` against
TensorBoard's own writer and readers, on this machine, in one invocation.

Two figures, each measured in fresh subprocesses (this file with ``--child``):

- writer: ``calls`` ``add_scalar`` calls (4 tags, one step per 4 calls, the wall time stamped
  by the writer) through waddle's ``waddle.tensorboard.SummaryWriter``, torch's
  ``torch.utils.tensorboard.SummaryWriter`` and tensorboardX's, from the first call until
  ``close()`` has returned (waddle: and its run is finished, its files fsynced);
- import: reading a tfevents file of ``scalars`` scalars (4 tags, made byte for byte as
  TensorBoard writes them) into memory or a waddle run: ``waddle import tensorboard`` (the
  command, end to end: a waddle run on disk), ``tbparse`` (a DataFrame), TensorBoard's
  ``EventAccumulator`` with size guidance 0 (every point kept) and with its defaults (which
  keep a sample of 10,000 points per tag: the points it returns are counted).

The machine is shared and its load changes: only ratios from one run compare, so every
figure of a table comes from the same invocation, and the load average is printed.

    python benchmarks/tensorboard_peers.py                 # 1M calls, 1M scalars (minutes)
    python benchmarks/tensorboard_peers.py --quick         # 100k each
    python benchmarks/tensorboard_peers.py --peer-calls 200000   # fewer calls for the slow writers,
                                                           # their time scaled to `calls`
    python benchmarks/tensorboard_peers.py --only writer   # one of the two figures
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "tensorboard.md"
TAGS = ("loss", "acc", "lr", "grad")


def child_writer(kind: str, calls: int, folder: str) -> dict:
    if kind == "waddle":
        import waddle
        from waddle.tensorboard import SummaryWriter

        settings = waddle.Settings(console=False, system_metrics_interval=0, silent=True)
        waddle.init(project="bench", dir=folder, settings=settings)
    elif kind == "torch":
        from torch.utils.tensorboard import SummaryWriter
    else:
        from tensorboardX import SummaryWriter
    writer = SummaryWriter(os.path.join(folder, "runs", "bench"))
    started, cpu = time.perf_counter(), time.process_time()
    for step in range(calls // len(TAGS)):
        value = step * 0.001
        for tag in TAGS:
            writer.add_scalar(tag, value, step)
    writer.close()
    if kind == "waddle":
        waddle.finish()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": seconds, "cpu": cpu, "calls": calls // len(TAGS) * len(TAGS)}


def child_import(kind: str, logdir: str, folder: str) -> dict:
    """Seconds (wall and CPU) to read ``logdir`` with ``kind``, and the points it kept."""
    if kind == "waddle":
        before, started = os.times(), time.perf_counter()
        command = [sys.executable, "-m", "waddle.cli", "import", "tensorboard", logdir]
        subprocess.run([*command, "--dir", folder], check=True, capture_output=True)
        seconds, after = time.perf_counter() - started, os.times()
        cpu = (after.children_user + after.children_system) - (
            before.children_user + before.children_system
        )
        return {"seconds": seconds, "cpu": cpu, "points": _waddle_points(Path(folder))}
    started, cpu = time.perf_counter(), time.process_time()
    if kind == "tbparse":
        from tbparse import SummaryReader

        points = len(SummaryReader(logdir).scalars)
    else:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        guidance = {"scalars": 0} if kind == "EventAccumulator (all)" else None
        accumulator = EventAccumulator(
            os.path.join(logdir, "run"), **({"size_guidance": guidance} if guidance else {})
        )
        accumulator.Reload()
        points = sum(len(accumulator.Scalars(tag)) for tag in accumulator.Tags()["scalars"])
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": seconds, "cpu": cpu, "points": points}


def _waddle_points(folder: Path) -> int:
    import orjson

    points = 0
    for path in folder.rglob("events-*.jsonl"):
        with open(path, "rb") as file:
            for line in file:
                event = orjson.loads(line)
                if event["type"] == "log":
                    points += len(event["data"])
    return points


def make_file(logdir: Path, scalars: int) -> None:
    from waddle import tfevents

    (logdir / "run").mkdir(parents=True)
    with open(logdir / "run" / "events.out.tfevents.1700000000.bench.1.0", "wb") as file:
        chunk = []
        for step in range(scalars // len(TAGS)):
            for index, tag in enumerate(TAGS):
                wall_time = 1.7e9 + step * 0.01 + index * 0.001
                chunk.append(tfevents.scalar_record(step, wall_time, tag, step * 0.001))
            if len(chunk) >= 40_000:
                file.write(b"".join(chunk))
                chunk = []
        file.write(b"".join(chunk))


def run_child(*args: str, timeout: float = 3600) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_writers(calls: int, peer_calls: int, reps: int, scratch: Path) -> list:
    writers = []
    for kind in ("waddle", "torch", "tensorboardX"):
        count = calls if kind == "waddle" else peer_calls
        best = {}
        for _ in range(reps):  # the best of a few, for every writer alike
            folder = scratch / f"w-{kind}"
            out = run_child("writer", kind, str(count), str(folder))
            shutil.rmtree(folder, ignore_errors=True)
            if "error" in out:
                best = out
                break
            out["scaled"] = out["seconds"] * calls / out["calls"]
            if not best or out["seconds"] < best["seconds"]:
                best = out
        writers.append((kind, best))
        print(kind, best, file=sys.stderr)
    return writers


def measure_imports(logdir: Path, reps: int, scratch: Path) -> list:
    imports = []
    for kind in ("waddle", "tbparse", "EventAccumulator (all)", "EventAccumulator (defaults)"):
        best: dict = {}
        for _ in range(reps):  # the best of a few: the machine is shared
            folder = scratch / "imported"
            out = run_child("import", kind, str(logdir), str(folder))
            shutil.rmtree(folder, ignore_errors=True)
            if "error" in out or not best or out["seconds"] < best["seconds"]:
                best = out
            if "error" in out:
                break
        imports.append((kind, best))
        print(kind, best, file=sys.stderr)
    return imports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="100k calls and scalars")
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--scalars", type=int, default=1_000_000)
    parser.add_argument(
        "--peer-calls", type=int, help="calls for torch's and tensorboardX's writers (scaled)"
    )
    parser.add_argument("--reps", type=int, default=2, help="each figure: the best of this many")
    parser.add_argument("--only", choices=("writer", "import"), help="measure one figure")
    parser.add_argument("--results", default=str(RESULTS), help="markdown file to write")
    args = parser.parse_args()
    if args.child:
        task, kind, *rest = args.child
        if task == "writer":
            out = child_writer(kind, int(rest[0]), rest[1])
        else:
            out = child_import(kind, rest[0], rest[1])
        print(json.dumps(out))
        return
    calls = 100_000 if args.quick else args.calls
    scalars = 100_000 if args.quick else args.scalars
    peer_calls = args.peer_calls or calls
    load = os.getloadavg()
    scratch = Path(tempfile.mkdtemp(prefix="waddle-tb-bench-"))
    try:
        writers, imports, size = [], [], 0
        if args.only != "import":
            writers = measure_writers(calls, peer_calls, args.reps, scratch)
        if args.only != "writer":
            logdir = scratch / "tb"
            make_file(logdir, scalars)
            size = sum(path.stat().st_size for path in logdir.rglob("*tfevents*"))
            imports = measure_imports(logdir, args.reps, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report = _report(calls, peer_calls, scalars, size, load, writers, imports, args.reps)
    print(report)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(report)


def _report(calls, peer_calls, scalars, size, load, writers, imports, reps) -> str:
    end_load = os.getloadavg()

    def version(name: str) -> str:
        import importlib.metadata

        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    lines = [
        "# TensorBoard benchmark",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f} at the start, {end_load[0]:.2f} at the end (a shared machine: compare "
        "ratios, not seconds)",
        f"- versions: torch {version('torch')}, tensorboard {version('tensorboard')}, "
        f"tensorboardX {version('tensorboardX')}, tbparse {version('tbparse')}, "
        f"google-crc32c {version('google-crc32c')}",
    ]
    if writers:
        lines += _writer_table(calls, peer_calls, writers, reps)
    if imports:
        lines += _import_table(scalars, size, imports, reps)
    return "\n".join([*lines, ""])


def _writer_table(calls, peer_calls, writers, reps) -> list[str]:
    lines = [
        "",
        f"## Writer: {calls:,} `add_scalar` calls (4 tags), first call to `close()`, "
        f"the best of {reps}",
        "",
        "| writer | calls run | seconds | CPU seconds | seconds for all calls | µs per call "
        "| waddle × faster | waddle × less CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    mine = dict(writers).get("waddle", {})
    for kind, out in writers:
        if "error" in out:
            lines.append(f"| {kind} | error: {out['error']} | | | | | | |")
            continue
        scale = calls / out["calls"]
        ratio = f"{out['scaled'] / mine['scaled']:.1f}" if "scaled" in mine else ""
        cpu_ratio = (
            f"{out['cpu'] * scale / (mine['cpu'] * calls / mine['calls']):.1f}"
            if "cpu" in mine
            else ""
        )
        lines.append(
            f"| {kind} | {out['calls']:,} | {out['seconds']:.2f} | {out['cpu']:.2f} | "
            f"{out['scaled']:.2f} | {out['scaled'] / calls * 1e6:.2f} | {ratio} | {cpu_ratio} |"
        )
    if peer_calls != calls:
        lines += [
            "",
            f"torch's and tensorboardX's writers ran {peer_calls:,} calls; their time for "
            f"{calls:,} is scaled linearly.",
        ]
    return lines


def _import_table(scalars, size, imports, reps) -> list[str]:
    lines = [
        "",
        f"## Import: a tfevents file of {scalars:,} scalars (4 tags, {size / 1e6:.1f} MB), "
        f"the best of {reps}",
        "",
        "| reader | seconds | CPU seconds | points read | waddle × faster | waddle × less CPU |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    mine = dict(imports).get("waddle", {})
    for kind, out in imports:
        if "error" in out:
            lines.append(f"| {kind} | error: {out['error']} | | | | |")
            continue
        ratio = f"{out['seconds'] / mine['seconds']:.1f}" if "seconds" in mine else ""
        cpu_ratio = f"{out['cpu'] / mine['cpu']:.1f}" if "cpu" in mine else ""
        lines.append(
            f"| {kind} | {out['seconds']:.2f} | {out['cpu']:.2f} | {out['points']:,} | "
            f"{ratio} | {cpu_ratio} |"
        )
    lines += [
        "",
        "waddle's import is the command end to end (start-up, framing, CRC-32C of every record, "
        "decoding, a waddle run written and fsynced); the others read into memory only. "
        "EventAccumulator's defaults keep a sample of 10,000 points per tag, silently. "
        "CPU seconds are every thread's (a child process's for the command): on a loaded shared "
        "machine they vary less than the wall time, which waits for the CPU too.",
    ]
    return lines


if __name__ == "__main__":
    main()
