"""GPU check: a training loop that logs CUDA tensors without ``.item()`` reaches the disk as the
device computes it, and what ``log()`` of a CUDA scalar costs. Needs an NVIDIA GPU and torch.

The loop runs bf16 matmuls for ``--seconds`` and logs ``{"loss": x.float().mean(), "i": i}``
each step, never syncing. A thread notes every ``--sample`` seconds how many bytes the run's
log holds, and another notes when the device finished each step (a CUDA event per step, polled).
Afterwards each step's line is located in the log, so for every step we know:

- ``logged``: when ``log()`` was called (host clock);
- ``computed``: when the device had computed its value (the step's event completed);
- ``on disk``: the first size sample at which the file held its line.

The device's own lag is computed - logged; waddle's lag is on disk - computed, which should be
about the writer's flush interval plus one size sample, whatever the loop's length. It also
prints log() p50/p99 of a CUDA scalar against a Python float, and checks that system events
carry GPU metrics (NVML) while the loop runs. Results go to benchmarks/results/gpu.md.

    python benchmarks/gpu.py [--seconds 8] [--sample 0.25]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import waddle
from waddle import event as event_format
from waddle import segment

ROOT = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--sample", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=8192, help="matmul side")
    parser.add_argument("--results-dir", default=str(ROOT / "results"))
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("benchmarks/gpu.py needs torch with CUDA", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("benchmarks/gpu.py needs a CUDA device; none answers here", file=sys.stderr)
        return 2
    folder = tempfile.mkdtemp(prefix="waddle-gpu-")
    lines = [f"# GPU check ({torch.cuda.get_device_name(0)}, torch {torch.__version__})", ""]
    lines += _lag(torch, folder, args)
    lines += ["", *_call_cost(torch, folder)]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    (Path(args.results_dir) / "gpu.md").write_text(text)
    return 0


def _lag(torch, folder: str, args) -> list[str]:
    settings = waddle.Settings(console=False, system_metrics_interval=1.0)
    run = waddle.init(project="gpu", dir=folder, settings=settings)
    sizes: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample_sizes() -> None:
        while not stop.is_set():
            total = sum(path.stat().st_size for path in segment.list_segments(run.dir))
            sizes.append((time.time(), total))
            stop.wait(args.sample)

    events: list = []  # (step, CUDA event)
    computed: dict[int, float] = {}

    def poll_events() -> None:
        index = 0
        while not stop.is_set() or index < len(events):
            while index < len(events) and events[index][1].query():
                computed[events[index][0]] = time.time()
                index += 1
            time.sleep(0.001)

    threads = [threading.Thread(target=sample_sizes), threading.Thread(target=poll_events)]
    for thread in threads:
        thread.start()
    a = torch.randn(args.size, args.size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(args.size, args.size, device="cuda", dtype=torch.bfloat16)
    logged: dict[int, float] = {}
    started = time.time()
    step = 0
    while time.time() - started < args.seconds:
        x = a @ b
        a = x / x.abs().amax()
        logged[step] = time.time()
        run.log({"loss": x.float().mean(), "i": step})
        done = torch.cuda.Event()
        done.record()
        events.append((step, done))
        step += 1
    loop_end = time.time()
    run.finish()
    stop.set()
    for thread in threads:
        thread.join()
    on_disk: dict[int, float] = {}
    offset = 0
    data = b"".join(path.read_bytes() for path in segment.list_segments(run.dir))
    for line in data.splitlines(keepends=True):
        offset += len(line)
        event = event_format.decode(line)
        if event["type"] == "log":
            when = next((t for t, size in sizes if size >= offset), None)
            if when is not None:
                on_disk[event["step"]] = when
    system = [e for e in segment.read_events(run.dir) if e["type"] == "system"]
    gpu_keys = sorted({k for e in system for k in e["data"] if k.startswith("gpu/")})
    device_lag = [computed[s] - logged[s] for s in logged if s in computed]
    waddle_lag = [on_disk[s] - computed[s] for s in on_disk if s in computed]
    before_end = sum(1 for s in on_disk if on_disk[s] <= loop_end)
    return [
        f"Loop: {step} steps in {loop_end - started:.1f} s; file size sampled every {args.sample} s.",
        "",
        "| figure | p50 | p99 | max |",
        "|---|---:|---:|---:|",
        _row("device lag: computed - logged (s)", device_lag),
        _row("waddle lag: on disk - computed (s)", waddle_lag),
        "",
        f"Steps on disk before the loop ended: {before_end} of {step}.",
        f"System events while running: {len(system)}; GPU metrics: {', '.join(gpu_keys) or 'none'}.",
    ]


def _call_cost(torch, folder: str) -> list[str]:
    settings = waddle.Settings(console=False, system_metrics_interval=0)
    run = waddle.init(project="gpu", dir=folder, settings=settings)
    scalar = torch.ones((), device="cuda")
    rows = []
    for name, make in (("float", lambda: 1.5), ("CUDA fp32 scalar", lambda: scalar * 2)):
        times = []
        for _ in range(5000):
            value = make()
            begin = time.perf_counter_ns()
            run.log({"x": value})
            times.append((time.perf_counter_ns() - begin) / 1000)
        times.sort()
        rows.append(
            f"| {name} | {statistics.median(times):.1f} | {times[int(len(times) * 0.99)]:.1f} |"
        )
    run.finish()
    return ["| log() of | p50 µs | p99 µs |", "|---|---:|---:|", *rows]


def _row(name: str, values: list[float]) -> str:
    if not values:
        return f"| {name} | - | - | - |"
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return f"| {name} | {statistics.median(values):.3f} | {p99:.3f} | {values[-1]:.3f} |"


if __name__ == "__main__":
    sys.exit(main())
