"""Client peer benchmark: waddle's logging client against wandb, tensorboardX, mlflow, trackio, aim
and kohakuboard, on this machine, in one invocation.

Every tracker runs in a fresh worker subprocess (this file with ``--worker``), so its imports,
threads, helper processes and peak RSS are its own. The worker, with its working directory set to
an empty data folder:

1. reads its RSS, then imports the tracker (timed);
2. latency run: ``init()`` (timed: the first one in the process, so lazy imports count), then up
   to ``latency_calls`` back-to-back ``log()`` calls of a new 10-scalar dict each, every call timed
   with ``perf_counter_ns`` (the tracker's background machinery is busy the whole time), then
   ``finish()`` (timed);
3. throughput run: a second run that logs ``steps`` x 10 scalars flat out and finishes; the clock
   runs from just before the first ``log()`` until ``finish()`` has returned and every file in
   the data folder has been fsynced, so values/s is end to end, data on disk. ``steps`` is sized
   from the latency run so that each tracker takes about ``throughput_budget_s``;
4. reads its peak RSS (``ru_maxrss``), its RSS after the workload (client overhead = that minus
   the RSS before the import) and, just before the throughput run's ``finish()``, the RSS of any
   helper processes the tracker started (wandb's service, kohakuboard's writer), which the
   process's own RSS does not include.

Every ``log()`` loop also stops once it has run for its time budget, so a slow peer logs fewer
values; the counts used are in the table. The parent prints one markdown table (also written to
``benchmarks/results/client.md``) with a row per tracker, waddle's goals, and waddle's ratio to the
best peer for each figure: the machine is shared and noisy, so only ratios from one run compare.

A workload is a measuring function plus the figures it reports (``WORKLOADS``); a tracker is an
adapter class with ``import_library``/``start``/``finish`` (``TRACKERS``). A new workload (the
planned "rich" one: histograms and images) adds an entry to ``WORKLOADS`` and, where it needs
them, methods on the adapters.

    python benchmarks/client.py                      # every tracker, full counts
    python benchmarks/client.py --quick --only waddle,wandb
    python benchmarks/client.py --python mlflow=/path/to/venv/bin/python
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCHMARKS_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCHMARKS_DIR / "results" / "client.md"
DEFAULT_DATA_DIR = BENCHMARKS_DIR / "_data"
RESULT_MARKER = "@@client-benchmark-result "
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

SCALAR_KEYS = tuple(f"train/metric_{index}" for index in range(10))
RUN_CONFIG = {"lr": 1e-3, "batch_size": 64, "optimizer": "adam", "layers": [64, 64]}
# Random full-precision floats, cycled through so that building each step's new dict costs little.
VALUE_POOL_STEPS = 1009


# ---- what a worker is asked to do ----------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """How much each worker logs; a ``log()`` loop also stops once it has run for its budget."""

    latency_calls: int = 20_000
    latency_budget_s: float = 15.0
    throughput_steps: int = 100_000
    throughput_min_steps: int = 1_000
    throughput_budget_s: float = 20.0
    worker_timeout_s: float = 150.0


QUICK_COUNTS = Counts(
    latency_calls=2_000,
    latency_budget_s=3.0,
    throughput_steps=10_000,
    throughput_min_steps=200,
    throughput_budget_s=3.0,
    worker_timeout_s=90.0,
)


# ---- tracker adapters (used in the worker) --------------------------------------------------

LogFunction = Callable[[dict[str, float]], Any]


class Tracker:
    """One tracker as a training script uses it: one ``log()`` call per step with a dict."""

    name = ""
    distributions: tuple[str, ...] = ()  # installed packages whose versions are reported
    settings_note = ""  # what was changed from the tracker's defaults, for the table's notes
    latency_calls_limit: int | None = None  # for a tracker whose finish() drains very slowly

    def environment(self, data_dir: Path) -> dict[str, str]:
        """Variables set before the import."""
        return {}

    def import_library(self) -> None:
        raise NotImplementedError

    def start(self, data_dir: Path, run_name: str) -> LogFunction:
        """Open a run and return the call that logs one step's dict."""
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        """Facts known only after the import (such as mlflow's store), for the notes."""
        return ""


class NoOpTracker(Tracker):
    """No tracker at all: the harness's own cost (building the dict, timing the call)."""

    name = "no-op"
    settings_note = "log() is an empty function: the harness's own floor, not a peer"

    def import_library(self) -> None:
        pass

    def start(self, data_dir: Path, run_name: str) -> LogFunction:
        def discard(values: dict[str, float]) -> None:
            pass

        return discard

    def finish(self) -> None:
        pass


class WaddleTracker(Tracker):
    name = "waddle"
    distributions = ("waddle", "orjson")
    settings_note = "console capture and system metrics off"

    def import_library(self) -> None:
        import waddle

        self.waddle = waddle

    def start(self, data_dir: Path, run_name: str) -> LogFunction:
        settings = self.waddle.Settings(console=False, system_metrics_interval=0)
        self.run = self.waddle.init(
            project="bench", name=run_name, dir=data_dir, config=RUN_CONFIG, settings=settings
        )
        return self.run.log

    def finish(self) -> None:
        self.run.finish()

    def describe(self) -> str:
        """The commit measured, and whether waddle/ had uncommitted changes (others edit it)."""
        package_dir = Path(self.waddle.__file__).parent
        try:
            commit = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                cwd=package_dir,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            changed = subprocess.run(
                ["git", "status", "--porcelain", "--", "."],
                cwd=package_dir,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""
        return f"commit {commit}" + (" with uncommitted changes in waddle/" if changed else "")


class WandbTracker(Tracker):
    name = "wandb"
    distributions = ("wandb",)
    settings_note = (
        "offline; console capture, system stats, metadata, machine info, git, code and "
        "requirements saving off"
    )

    def environment(self, data_dir: Path) -> dict[str, str]:
        return {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(data_dir)}

    def import_library(self) -> None:
        import wandb

        self.wandb = wandb

    def start(self, data_dir: Path, run_name: str) -> LogFunction:
        settings = self.wandb.Settings(
            console="off",
            x_disable_stats=True,
            x_disable_meta=True,
            x_disable_machine_info=True,
            disable_git=True,
            disable_code=True,
            save_code=False,
            x_save_requirements=False,
        )
        self.run = self.wandb.init(
            project="bench",
            name=run_name,
            dir=data_dir,
            config=RUN_CONFIG,
            mode="offline",
            settings=settings,
        )
        return self.run.log

    def finish(self) -> None:
        self.run.finish()


class TensorboardXTracker(Tracker):
    name = "tensorboardX"
    distributions = ("tensorboardX", "protobuf")
    settings_note = "SummaryWriter defaults; add_scalar once per key"

    def import_library(self) -> None:
        from tensorboardX import SummaryWriter

        self.summary_writer = SummaryWriter

    def start(self, data_dir: Path, run_name: str) -> LogFunction:
        writer = self.writer = self.summary_writer(logdir=str(data_dir / run_name))
        writer.add_text("config", json.dumps(RUN_CONFIG))
        steps = itertools.count()

        def log(values: dict[str, float]) -> None:
            step = next(steps)
            for key, value in values.items():
                writer.add_scalar(key, value, step)

        return log

    def finish(self) -> None:
        self.writer.close()


class MlflowTracker(Tracker):
    name = "mlflow"
    distributions = ("mlflow-skinny", "mlflow", "sqlalchemy")
    settings_note = "default local tracking URI; synchronous log_metrics (its default)"

    def import_library(self) -> None:
        import mlflow

        self.mlflow = mlflow

    def start(self, data_dir: Path, run_name: str) -> LogFunction:
        mlflow = self.mlflow
        mlflow.start_run(run_name=run_name)
        mlflow.log_params(RUN_CONFIG)
        steps = itertools.count()

        def log(values: dict[str, float]) -> None:
            mlflow.log_metrics(values, step=next(steps))

        return log

    def finish(self) -> None:
        self.mlflow.end_run()

    def describe(self) -> str:
        uri = self.mlflow.get_tracking_uri().replace(os.getcwd(), "<data>")
        return f"store {uri}"


class MlflowAsyncTracker(MlflowTracker):
    """mlflow with its opt-in asynchronous logging, waddle's way of working."""

    name = "mlflow-async"
    settings_note = "default local tracking URI; log_metrics(synchronous=False)"
    # finish() drains its queue at about 150 steps/s: 20,000 calls would take minutes.
    latency_calls_limit = 2_000

    def start(self, data_dir: Path, run_name: str) -> LogFunction:
        mlflow = self.mlflow
        mlflow.start_run(run_name=run_name)
        mlflow.log_params(RUN_CONFIG)
        steps = itertools.count()

        def log(values: dict[str, float]) -> None:
            mlflow.log_metrics(values, step=next(steps), synchronous=False)

        return log


class TrackioTracker(Tracker):
    name = "trackio"
    distributions = ("trackio",)
    settings_note = "local mode, no dashboard (embed=False), CPU/GPU logging off"

    def environment(self, data_dir: Path) -> dict[str, str]:
        return {"TRACKIO_DIR": str(data_dir / "trackio"), "HF_HOME": str(data_dir / "hf")}

    def import_library(self) -> None:
        import trackio

        self.trackio = trackio

    def start(self, data_dir: Path, run_name: str) -> LogFunction:
        self.run = self.trackio.init(
            project="bench",
            name=run_name,
            config=RUN_CONFIG,
            embed=False,
            auto_log_cpu=False,
            auto_log_gpu=False,
        )
        return self.run.log

    def finish(self) -> None:
        self.trackio.finish()


class AimTracker(Tracker):
    name = "aim"
    distributions = ("aim",)
    settings_note = "local repo; system tracking and terminal log capture off"

    def import_library(self) -> None:
        import aim

        self.aim = aim

    def start(self, data_dir: Path, run_name: str) -> LogFunction:
        run = self.run = self.aim.Run(
            repo=str(data_dir),
            experiment="bench",
            system_tracking_interval=None,
            capture_terminal_logs=False,
            log_system_params=False,
        )
        run.name = run_name
        run["hparams"] = RUN_CONFIG
        steps = itertools.count()

        def log(values: dict[str, float]) -> None:
            run.track(values, step=next(steps))

        return log

    def finish(self) -> None:
        self.run.close()


class KohakuboardTracker(Tracker):
    name = "kohakuboard"
    distributions = ("kohakuboard", "kohakuvault")
    settings_note = "local Board, output capture off"

    def import_library(self) -> None:
        from kohakuboard.client import Board

        self.board_class = Board

    def start(self, data_dir: Path, run_name: str) -> LogFunction:
        board = self.board = self.board_class(
            name=run_name,
            config=RUN_CONFIG,
            project="bench",
            base_dir=data_dir,
            capture_output=False,
        )

        def log(values: dict[str, float]) -> None:
            board.log(**values)

        return log

    def finish(self) -> None:
        self.board.finish()


TRACKERS: dict[str, type[Tracker]] = {
    tracker.name: tracker
    for tracker in (
        NoOpTracker,
        WaddleTracker,
        WandbTracker,
        TensorboardXTracker,
        MlflowTracker,
        MlflowAsyncTracker,
        TrackioTracker,
        AimTracker,
        KohakuboardTracker,
    )
}
SUBJECT = "waddle"
# Rows that are neither waddle nor a peer: shown, never compared against.
REFERENCE_ROWS = ("no-op",)


# ---- measuring (in the worker) --------------------------------------------------------------


def current_rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def helper_processes_rss_bytes() -> int:
    """RSS of every live descendant of this process (a tracker's service or writer processes)."""
    total = 0
    pending = [os.getpid()]
    while pending:
        pid = pending.pop()
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as children:
                    pending.extend(int(child) for child in children.read().split())
            if pid != os.getpid():
                total += current_rss_bytes(pid)
        except OSError:
            continue  # the process ended meanwhile
    return total


def fsync_tree(root: Path) -> int:
    """fsync every regular file and folder under ``root``; return the bytes of the files."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            try:
                if not os.path.isfile(path) or os.path.islink(path):
                    continue
                total += os.path.getsize(path)
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError:
                continue  # a lock or temp file that vanished
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return total


def step_values() -> Callable[[int], dict[str, float]]:
    """A function building step ``i``'s new 10-scalar dict of random floats."""
    pool = [random.random() for _ in range(VALUE_POOL_STEPS * len(SCALAR_KEYS))]
    width = len(SCALAR_KEYS)

    def values_for(step: int) -> dict[str, float]:
        offset = (step % VALUE_POOL_STEPS) * width
        return dict(zip(SCALAR_KEYS, pool[offset : offset + width], strict=True))

    return values_for


def percentile(sorted_values: list[int], fraction: float) -> int:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, round(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def timer_overhead_ns() -> int:
    """Median cost of the two perf_counter_ns calls around an empty statement."""
    now = time.perf_counter_ns
    samples = []
    for _ in range(20_000):
        started = now()
        samples.append(now() - started)
    samples.sort()
    return samples[len(samples) // 2]


def measure_scalars(tracker: Tracker, data_dir: Path, counts: Counts) -> dict[str, Any]:
    """The "scalars" workload: log() latency, end-to-end throughput, init/finish, memory."""
    rss_before_import = current_rss_bytes()
    values_for = step_values()
    now_ns = time.perf_counter_ns
    clock = time.perf_counter

    started = clock()
    tracker.import_library()
    import_s = clock() - started

    # Latency run: every call timed, calls back to back.
    started = clock()
    log = tracker.start(data_dir, "latency")
    init_s = clock() - started
    latency_calls = min(counts.latency_calls, tracker.latency_calls_limit or counts.latency_calls)
    durations = [0] * latency_calls
    deadline = clock() + counts.latency_budget_s
    calls = 0
    logging_started = clock()
    for calls in range(latency_calls):
        values = values_for(calls)
        before = now_ns()
        log(values)
        durations[calls] = now_ns() - before
        if calls % 256 == 255 and clock() > deadline:
            break
    calls += 1
    logging_s = clock() - logging_started
    started = clock()
    tracker.finish()
    finish_s = clock() - started
    fsync_tree(data_dir)
    durations = sorted(durations[:calls])

    # Throughput run, sized from the latency run's end-to-end rate.
    latency_run_rate = calls / (logging_s + finish_s)
    steps = int(latency_run_rate * counts.throughput_budget_s)
    steps = max(counts.throughput_min_steps, min(counts.throughput_steps, steps))
    log = tracker.start(data_dir, "throughput")
    deadline = clock() + 2 * counts.throughput_budget_s
    step = 0
    started = clock()
    for step in range(steps):
        log(values_for(step))
        if step % 1024 == 1023 and clock() > deadline:
            break
    steps_logged = step + 1
    helper_rss = helper_processes_rss_bytes()
    tracker.finish()
    disk_bytes = fsync_tree(data_dir)
    throughput_s = clock() - started

    return {
        "import_s": import_s,
        "init_ms": init_s * 1e3,
        "log_p50_us": percentile(durations, 0.50) / 1e3,
        "log_p99_us": percentile(durations, 0.99) / 1e3,
        "log_max_ms": durations[-1] / 1e6,
        "latency_calls": calls,
        "finish_ms": finish_s * 1e3,
        "values_per_s": steps_logged * len(SCALAR_KEYS) / throughput_s,
        "throughput_steps": steps_logged,
        "peak_rss_mb": peak_rss_bytes() / 2**20,
        "overhead_mb": (current_rss_bytes() - rss_before_import) / 2**20,
        "helper_rss_mb": helper_rss / 2**20,
        "disk_mb": disk_bytes / 2**20,
    }


def installed_versions(distributions: tuple[str, ...]) -> dict[str, str]:
    versions = {}
    for distribution in distributions:
        try:
            versions[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def run_worker(request: dict[str, Any]) -> None:
    tracker = TRACKERS[request["tracker"]]()
    data_dir = Path(request["data_dir"])
    os.environ.update(tracker.environment(data_dir))
    workload = WORKLOADS[request["workload"]]
    figures = workload.measure(tracker, data_dir, Counts(**request["counts"]))
    notes = [tracker.settings_note, tracker.describe()]
    if figures.get("disk_mb") == 0 and not isinstance(tracker, NoOpTracker):
        notes.append("**wrote nothing to its data folder: its figures are suspect**")
    result = {
        "figures": figures,
        "versions": installed_versions(tracker.distributions),
        "python": platform.python_version(),
        "notes": "; ".join(note for note in notes if note),
        "timer_overhead_ns": timer_overhead_ns(),
    }
    sys.stdout.flush()
    # os.write: some trackers wrap sys.stdout; the marker line must reach the pipe whole.
    os.write(1, (RESULT_MARKER + json.dumps(result) + "\n").encode())


# ---- workloads and their figures ------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    key: str
    heading: str
    lower_is_better: bool
    digits: int
    goal: float | None = None  # waddle's target
    compared: bool = True  # whether waddle's ratio to the best peer is reported

    def format(self, value: float | None) -> str:
        if value is None:
            return ""
        if abs(value) >= 10_000:
            return f"{value:,.0f}"
        return f"{value:,.{self.digits}f}"

    def meets_goal(self, value: float) -> bool:
        assert self.goal is not None
        return value <= self.goal if self.lower_is_better else value >= self.goal


@dataclass(frozen=True)
class Workload:
    description: str
    measure: Callable[[Tracker, Path, Counts], dict[str, Any]]
    figures: tuple[Figure, ...]


WORKLOADS: dict[str, Workload] = {
    "scalars": Workload(
        description="one 10-scalar dict (random floats, a new dict each call) per log() call",
        measure=measure_scalars,
        figures=(
            Figure("import_s", "import s", True, 2),
            Figure("init_ms", "init() ms", True, 1, goal=50),
            Figure("log_p50_us", "log() p50 µs", True, 2, goal=3),
            Figure("log_p99_us", "log() p99 µs", True, 1, goal=30),
            Figure("log_max_ms", "log() max ms", True, 1),
            Figure("latency_calls", "calls timed", True, 0, compared=False),
            Figure("finish_ms", "finish() ms", True, 1),
            Figure("values_per_s", "values/s end to end", False, 0, goal=2_000_000),
            Figure("throughput_steps", "steps (x10 values)", False, 0, compared=False),
            Figure("peak_rss_mb", "peak RSS MB", True, 1),
            Figure("overhead_mb", "client overhead MB", True, 1, goal=30),
            Figure("helper_rss_mb", "helper procs MB", True, 1, compared=False),
            Figure("disk_mb", "on disk MB", True, 1, compared=False),
        ),
    ),
}


# ---- the parent: run the workers, print the table -------------------------------------------


@dataclass
class Outcome:
    tracker: str
    python: str
    result: dict[str, Any] | None = None
    error: str | None = None


def run_tracker(
    tracker: str, workload: str, counts: Counts, python: str, data_root: Path
) -> Outcome:
    data_dir = data_root / tracker
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    request = {
        "tracker": tracker,
        "workload": workload,
        "data_dir": str(data_dir),
        "counts": asdict(counts),
    }
    command = [python, str(Path(__file__).resolve()), "--worker", json.dumps(request)]
    outcome = Outcome(tracker, python)
    try:
        completed = subprocess.run(
            command,
            cwd=data_dir,
            capture_output=True,
            text=True,
            timeout=counts.worker_timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        outcome.error = f"no result within {counts.worker_timeout_s:.0f} s (killed)"
        return outcome
    except OSError as error:
        outcome.error = f"could not start {python}: {error}"
        return outcome
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            outcome.result = json.loads(line[len(RESULT_MARKER) :])
            return outcome
    outcome.error = last_error_line(completed.stderr) or f"exit code {completed.returncode}"
    return outcome


def last_error_line(stderr: str) -> str:
    """The most telling line of a worker's stderr: its last exception, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line.split(":")[0] or "Exception" in line.split(":")[0]:
            return line[:300]
    return lines[-1][:300] if lines else ""


def machine_description() -> list[str]:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return [
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"load average {' '.join(f'{load:.2f}' for load in os.getloadavg())} at the start",
    ]


def render_report(
    workload_name: str, counts: Counts, outcomes: list[Outcome], header: list[str]
) -> str:
    workload = WORKLOADS[workload_name]
    figures = workload.figures
    lines = [f"# Client peer benchmark: {workload_name}", ""]
    lines += header
    lines += [
        f"- workload: {workload.description}; latency run: up to {counts.latency_calls:,} "
        f"timed calls ({counts.latency_budget_s:.0f} s budget); throughput run: up to "
        f"{counts.throughput_steps:,} steps, sized to take about "
        f"{counts.throughput_budget_s:.0f} s",
        "",
    ]
    headings = ["tracker", *(figure.heading for figure in figures)]
    lines.append("| " + " | ".join(headings) + " |")
    lines.append("|---|" + "---:|" * len(figures))
    goals = [figure.format(figure.goal) if figure.goal is not None else "" for figure in figures]
    lines.append("| *waddle goal* | " + " | ".join(goals) + " |")
    for outcome in outcomes:
        if outcome.result is None:
            cells = [f"failed: {(outcome.error or '').replace('|', '/')}"] + [""] * (
                len(figures) - 1
            )
        else:
            values = outcome.result["figures"]
            cells = [figure.format(values.get(figure.key)) for figure in figures]
        lines.append(f"| {outcome.tracker} | " + " | ".join(cells) + " |")
    lines += comparison_rows(figures, outcomes)
    lines += [
        "",
        "Ratios: how many times better waddle is than the best peer on that figure "
        "(> 1: waddle ahead; the peer named). Goals: waddle's targets.",
        "",
    ]
    lines += ["Versions and settings:", ""]
    for outcome in outcomes:
        if outcome.result is None:
            lines.append(f"- {outcome.tracker}: failed ({outcome.python}): {outcome.error}")
            continue
        result = outcome.result
        versions = ", ".join(f"{name} {version}" for name, version in result["versions"].items())
        details = "; ".join(part for part in (versions, result["notes"]) if part)
        lines.append(f"- {outcome.tracker}: Python {result['python']}; {details}")
    overheads = [o.result["timer_overhead_ns"] for o in outcomes if o.result is not None]
    if overheads:
        lines += [
            "",
            f"log() times include the timer's own cost, about {min(overheads)} ns per call. "
            "Helper procs: RSS of the processes a tracker starts (not in its peak RSS), "
            "read just before finish().",
        ]
    return "\n".join(lines) + "\n"


def comparison_rows(figures: tuple[Figure, ...], outcomes: list[Outcome]) -> list[str]:
    by_tracker = {o.tracker: o.result["figures"] for o in outcomes if o.result is not None}
    subject = by_tracker.get(SUBJECT)
    peers = {
        name: figures_of
        for name, figures_of in by_tracker.items()
        if name != SUBJECT and name not in REFERENCE_ROWS
    }
    if subject is None:
        return []
    goal_cells = []
    ratio_cells = []
    for figure in figures:
        value = subject.get(figure.key)
        if figure.goal is None or value is None:
            goal_cells.append("")
        else:
            goal_cells.append("yes" if figure.meets_goal(value) else "**no**")
        ratio_cells.append(ratio_to_best_peer(figure, value, peers))
    return [
        "| *waddle meets goal* | " + " | ".join(goal_cells) + " |",
        "| *waddle vs best peer* | " + " | ".join(ratio_cells) + " |",
    ]


def ratio_to_best_peer(
    figure: Figure, value: float | None, peers: dict[str, dict[str, Any]]
) -> str:
    candidates = {
        name: figures_of[figure.key]
        for name, figures_of in peers.items()
        if figures_of.get(figure.key) is not None
    }
    if not figure.compared or value is None or not candidates:
        return ""
    pick = min if figure.lower_is_better else max
    best_name = pick(candidates, key=lambda name: candidates[name])
    best = candidates[best_name]
    numerator, denominator = (best, value) if figure.lower_is_better else (value, best)
    if denominator <= 0:
        return f"– ({best_name})"
    ratio = numerator / denominator
    shown = f"{ratio:.2f}×" if ratio < 1 else f"{ratio:.1f}×"
    return f"{shown if ratio >= 1 else '**' + shown + '**'} ({best_name})"


def parse_python_overrides(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        tracker, separator, python = pair.partition("=")
        if not separator or tracker not in TRACKERS:
            raise SystemExit(
                f"--python takes TRACKER=/path/to/python with TRACKER one of {', '.join(TRACKERS)}"
            )
        overrides[tracker] = python
    return overrides


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument(
        "--only", help=f"comma-separated trackers to run (default: all of {', '.join(TRACKERS)})"
    )
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="TRACKER=PATH",
        help="interpreter (e.g. a venv's bin/python) for one tracker; default: this one",
    )
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="scalars")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="scratch folder for the trackers' files, emptied after each (default: %(default)s)",
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS_FILE, help="markdown file to overwrite"
    )
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(json.loads(args.worker))
        return

    trackers = list(TRACKERS) if not args.only else args.only.split(",")
    unknown = [name for name in trackers if name not in TRACKERS]
    if unknown:
        raise SystemExit(f"unknown tracker(s) {', '.join(unknown)}; known: {', '.join(TRACKERS)}")
    counts = QUICK_COUNTS if args.quick else Counts()
    pythons = parse_python_overrides(args.python)
    header = machine_description()
    outcomes = []
    for tracker in trackers:
        python = pythons.get(tracker, sys.executable)
        print(f"running {tracker} ({python}) ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        outcome = run_tracker(tracker, args.workload, counts, python, args.data_dir.resolve())
        state = "ok" if outcome.result is not None else f"failed: {outcome.error}"
        print(f"  {state} ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
        outcomes.append(outcome)
    report = render_report(args.workload, counts, outcomes, header)
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)


if __name__ == "__main__":
    main()
