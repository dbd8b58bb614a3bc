"""Client peer benchmark: waddle's logging client against wandb, tensorboardX, mlflow, trackio, aim
and kohakuboard, on this machine, in one invocation.

Every tracker runs in a fresh worker subprocess (this file with ``--worker``) for each workload,
so its imports, threads, helper processes and peak RSS are its own. Two workloads:

- "scalars": 10-scalar dicts, as fast as the tracker takes them (below);
- "rich": ``rich_steps`` steps of 10 scalars, with a histogram of 1,000,000 float32 values every
  10 steps and a 256x256 RGB uint8 image every 20 steps, each logged in that step's ``log()``
  call where the tracker's API allows (see ``measure_rich``).

The "scalars" worker, with its working directory set to an empty data folder:

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
values; the counts used are in the table. The parent prints one markdown table per workload (also
written to ``benchmarks/results/client.md`` and ``client-rich.md``) with a row per tracker,
waddle's goals, and waddle's ratio to the best peer for each figure: the machine is shared and
noisy, so only ratios from one run compare.

A workload is a measuring function plus the figures it reports (``WORKLOADS``); a tracker is an
adapter class with ``import_library``/``start``/``finish`` (``TRACKERS``), and for the rich
workload ``histogram``/``image`` (the tracker's objects for a ``log()`` dict) or its own
``start_rich``.

    python benchmarks/client.py                      # every workload and tracker, full counts
    python benchmarks/client.py --quick --only waddle,wandb
    python benchmarks/client.py --workload rich
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
RESULTS_DIR = BENCHMARKS_DIR / "results"
DEFAULT_DATA_DIR = BENCHMARKS_DIR / "_data"
RESULT_MARKER = "@@client-benchmark-result "
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

SCALAR_KEYS = tuple(f"train/metric_{index}" for index in range(10))
RUN_CONFIG = {"lr": 1e-3, "batch_size": 64, "optimizer": "adam", "layers": [64, 64]}
# Random full-precision floats, cycled through so that building each step's new dict costs little.
VALUE_POOL_STEPS = 1009

# The rich workload: a histogram on steps 0, 10, 20, ...; an image on steps 5, 25, 45, ..., so
# that no call carries both and each kind's latency is its own.
HISTOGRAM_KEY = "weights/layer_0"
HISTOGRAM_VALUES = 1_000_000
HISTOGRAM_BINS = 64
HISTOGRAM_EVERY = 10
IMAGE_KEY = "samples/input"
IMAGE_SIDE = 256
IMAGE_EVERY = 20
IMAGE_OFFSET = 5
RICH_SEED = 20261123


# ---- what a worker is asked to do ----------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """How much each worker logs; a ``log()`` loop also stops once it has run for its budget."""

    latency_calls: int = 20_000
    latency_budget_s: float = 15.0
    throughput_steps: int = 100_000
    throughput_min_steps: int = 1_000
    throughput_budget_s: float = 20.0
    rich_steps: int = 200
    rich_runs: int = 3
    worker_timeout_s: float = 150.0


QUICK_COUNTS = Counts(
    latency_calls=2_000,
    latency_budget_s=3.0,
    throughput_steps=10_000,
    throughput_min_steps=200,
    throughput_budget_s=3.0,
    rich_runs=1,
    worker_timeout_s=90.0,
)


# ---- tracker adapters (used in the worker) --------------------------------------------------

LogFunction = Callable[[dict[str, float]], Any]
# One rich-workload step: its scalars, and the histogram's values and the image's HxWx3 uint8
# pixels (numpy arrays) when the step has them.
RichLogFunction = Callable[[dict[str, Any], Any, Any], Any]


class Tracker:
    """One tracker as a training script uses it: one ``log()`` call per step with a dict."""

    name = ""
    distributions: tuple[str, ...] = ()  # installed packages whose versions are reported
    settings_note = ""  # what was changed from the tracker's defaults, for the table's notes
    latency_calls_limit: int | None = None  # for a tracker whose finish() drains very slowly
    supports_histograms = True
    supports_images = True
    rich_note = ""  # how the rich workload's histograms and images are logged

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

    def histogram(self, values: Any) -> Any:
        """The tracker's histogram object (64 bins) for a ``log()`` dict."""
        raise NotImplementedError

    def image(self, pixels: Any) -> Any:
        """The tracker's image object for a ``log()`` dict."""
        raise NotImplementedError

    def start_rich(self, data_dir: Path, run_name: str) -> RichLogFunction:
        """Open a run and return the call that logs one rich-workload step in one ``log()``."""
        log = self.start(data_dir, run_name)

        def log_step(values: dict[str, Any], histogram_values: Any, image_pixels: Any) -> None:
            if histogram_values is not None:
                values[HISTOGRAM_KEY] = self.histogram(histogram_values)
            if image_pixels is not None:
                values[IMAGE_KEY] = self.image(image_pixels)
            log(values)

        return log_step

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

    def histogram(self, values: Any) -> Any:
        return values

    def image(self, pixels: Any) -> Any:
        return pixels


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

    def histogram(self, values: Any) -> Any:
        return self.waddle.Histogram(values, num_bins=HISTOGRAM_BINS)

    def image(self, pixels: Any) -> Any:
        return self.waddle.Image(pixels)

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

    def histogram(self, values: Any) -> Any:
        return self.wandb.Histogram(values, num_bins=HISTOGRAM_BINS)

    def image(self, pixels: Any) -> Any:
        return self.wandb.Image(pixels)


class TensorboardXTracker(Tracker):
    name = "tensorboardX"
    distributions = ("tensorboardX", "protobuf")
    settings_note = "SummaryWriter defaults; add_scalar once per key"
    rich_note = (
        "rich: no dict call, so add_histogram(bins=64) or add_image(dataformats='HWC') after "
        "the step's add_scalar calls, all timed as the step's call"
    )

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

    def start_rich(self, data_dir: Path, run_name: str) -> RichLogFunction:
        log_scalars = self.start(data_dir, run_name)
        writer = self.writer
        steps = itertools.count()

        def log_step(values: dict[str, Any], histogram_values: Any, image_pixels: Any) -> None:
            step = next(steps)
            log_scalars(values)
            if histogram_values is not None:
                writer.add_histogram(HISTOGRAM_KEY, histogram_values, step, bins=HISTOGRAM_BINS)
            if image_pixels is not None:
                writer.add_image(IMAGE_KEY, image_pixels, step, dataformats="HWC")

        return log_step

    def finish(self) -> None:
        self.writer.close()


class MlflowTracker(Tracker):
    name = "mlflow"
    distributions = ("mlflow-skinny", "mlflow", "sqlalchemy")
    settings_note = "default local tracking URI; synchronous log_metrics (its default)"
    supports_histograms = False
    rich_note = (
        "rich: no histogram type (its histogram steps log scalars only); images with "
        "log_image(key=, step=) (its default, asynchronous) after the step's log_metrics"
    )
    synchronous_metrics: bool | None = None  # log_metrics(synchronous=): None is its default

    def import_library(self) -> None:
        import mlflow

        self.mlflow = mlflow

    def start(self, data_dir: Path, run_name: str) -> LogFunction:
        mlflow = self.mlflow
        mlflow.start_run(run_name=run_name)
        mlflow.log_params(RUN_CONFIG)
        steps = itertools.count()
        synchronous = self.synchronous_metrics

        def log(values: dict[str, float]) -> None:
            mlflow.log_metrics(values, step=next(steps), synchronous=synchronous)

        return log

    def start_rich(self, data_dir: Path, run_name: str) -> RichLogFunction:
        log_scalars = self.start(data_dir, run_name)
        log_image = self.mlflow.log_image
        steps = itertools.count()

        def log_step(values: dict[str, Any], histogram_values: Any, image_pixels: Any) -> None:
            step = next(steps)
            log_scalars(values)
            if image_pixels is not None:
                log_image(image_pixels, key=IMAGE_KEY, step=step)

        return log_step

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
    synchronous_metrics = False


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

    def histogram(self, values: Any) -> Any:
        return self.trackio.Histogram(values, num_bins=HISTOGRAM_BINS)

    def image(self, pixels: Any) -> Any:
        return self.trackio.Image(pixels)


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

    def histogram(self, values: Any) -> Any:
        return self.aim.Distribution(values, bin_count=HISTOGRAM_BINS)

    def image(self, pixels: Any) -> Any:
        return self.aim.Image(pixels)


class KohakuboardTracker(Tracker):
    name = "kohakuboard"
    distributions = ("kohakuboard", "kohakuvault")
    settings_note = "local Board, output capture off"

    def import_library(self) -> None:
        from kohakuboard.client import Board, Histogram, Media

        self.board_class = Board
        self.histogram_class = Histogram
        self.media_class = Media

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

    def histogram(self, values: Any) -> Any:
        return self.histogram_class(values, num_bins=HISTOGRAM_BINS)

    def image(self, pixels: Any) -> Any:
        return self.media_class(pixels)


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


def measure_rich(tracker: Tracker, data_dir: Path, counts: Counts) -> dict[str, Any]:
    """The "rich" workload: ``rich_runs`` runs of ``rich_steps`` steps with histograms and images.

    Each step's call is timed with the building of the tracker's histogram or image object in it
    (``log({"h": waddle.Histogram(values)})`` is what the user waits for); the numpy data is made
    beforehand, outside the timing. A run's total runs from its first ``log()`` until
    ``finish()`` returned and every file is fsynced, less the time spent making data and reading
    helper RSS. Latencies are pooled over all runs, so the first run's lazy imports are in the
    maxima; the total is the median run's, and the first run's (cold) is reported beside it.
    """
    import numpy as np

    values_for = step_values()
    now_ns = time.perf_counter_ns
    clock = time.perf_counter
    random_numbers = np.random.default_rng(RICH_SEED)
    # A smooth picture with a little noise, a new one for every image step.
    ramp = np.linspace(0, 223, IMAGE_SIDE, dtype=np.float32)
    gradient = (ramp[:, None, None] * 0.5 + ramp[None, :, None] * 0.5).astype(np.uint8)
    gradient = np.repeat(gradient, 3, axis=2)

    tracker.import_library()
    latencies: dict[str, list[int]] = {"histogram": [], "image": [], "scalars": []}
    totals_s = []
    helper_rss = 0
    for run_index in range(counts.rich_runs):
        log_step = tracker.start_rich(data_dir, f"rich-{run_index}")
        excluded_s = 0.0
        started = clock()
        for step in range(counts.rich_steps):
            histogram_values = image_pixels = None
            kind = "scalars"
            making_data = clock()
            if step % HISTOGRAM_EVERY == 0 and tracker.supports_histograms:
                histogram_values = random_numbers.standard_normal(
                    HISTOGRAM_VALUES, dtype=np.float32
                )
                kind = "histogram"
            if step % IMAGE_EVERY == IMAGE_OFFSET and tracker.supports_images:
                noise = random_numbers.integers(0, 32, gradient.shape, dtype=np.uint8)
                image_pixels = gradient + noise
                kind = "image"
            values = values_for(step)
            excluded_s += clock() - making_data
            before = now_ns()
            log_step(values, histogram_values, image_pixels)
            latencies[kind].append(now_ns() - before)
        reading_rss = clock()
        helper_rss = max(helper_rss, helper_processes_rss_bytes())
        excluded_s += clock() - reading_rss
        tracker.finish()
        disk_bytes = fsync_tree(data_dir)
        totals_s.append(clock() - started - excluded_s)

    figures: dict[str, Any] = {
        "complete": tracker.supports_histograms and tracker.supports_images,
        "total_s": sorted(totals_s)[len(totals_s) // 2],
        "first_total_s": totals_s[0],
        "peak_rss_mb": peak_rss_bytes() / 2**20,
        "helper_rss_mb": helper_rss / 2**20,
        "disk_mb": disk_bytes / counts.rich_runs / 2**20,
    }
    for kind, durations in latencies.items():
        figures[f"{kind}_calls"] = len(durations)
        if not durations:
            continue
        durations.sort()
        unit = 1e3 if kind == "scalars" else 1e6  # µs for scalar calls, ms for the others
        figures[f"{kind}_p50"] = percentile(durations, 0.50) / unit
        figures[f"{kind}_p99"] = percentile(durations, 0.99) / unit
        figures[f"{kind}_max_ms"] = durations[-1] / 1e6
    return figures


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
    notes = [tracker.settings_note, workload.tracker_note(tracker), tracker.describe()]
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
    goal_beats_peers: bool = False  # waddle's target: better than every (compared) peer
    # Compare only with peers that did the whole workload (not one that skipped histograms).
    complete_peers_only: bool = False

    def format(self, value: float) -> str:
        if abs(value) >= 10_000:
            return f"{value:,.0f}"
        return f"{value:,.{self.digits}f}"

    def meets_goal(self, value: float) -> bool:
        assert self.goal is not None
        return value <= self.goal if self.lower_is_better else value >= self.goal


@dataclass(frozen=True)
class Workload:
    measure: Callable[[Tracker, Path, Counts], dict[str, Any]]
    figures: tuple[Figure, ...]
    results_name: str  # its markdown file in the results folder
    describe: Callable[[Counts], str]  # the workload's line under the table's title
    tracker_note: Callable[[Tracker], str]  # per tracker, for the notes
    footnote: str  # what some figures mean, under the notes


def describe_scalars(counts: Counts) -> str:
    return (
        "one 10-scalar dict (random floats, a new dict each call) per log() call; latency run: "
        f"up to {counts.latency_calls:,} timed calls ({counts.latency_budget_s:.0f} s budget); "
        f"throughput run: up to {counts.throughput_steps:,} steps, sized to take about "
        f"{counts.throughput_budget_s:.0f} s"
    )


def describe_rich(counts: Counts) -> str:
    runs = f"{counts.rich_runs} runs" if counts.rich_runs > 1 else "1 run"
    return (
        f"{runs} of {counts.rich_steps} steps, one log() call per step with 10 scalars; on "
        f"every {HISTOGRAM_EVERY}th step (0, {HISTOGRAM_EVERY}, ...) a histogram of "
        f"{HISTOGRAM_VALUES:,} float32 normal values ({HISTOGRAM_BINS} bins), on every "
        f"{IMAGE_EVERY}th step ({IMAGE_OFFSET}, {IMAGE_OFFSET + IMAGE_EVERY}, ...) a "
        f"{IMAGE_SIDE}×{IMAGE_SIDE} RGB uint8 image (a gradient plus noise), new data each "
        "time, in the same call as the step's scalars"
    )


def no_tracker_note(tracker: Tracker) -> str:
    return ""


def rich_tracker_note(tracker: Tracker) -> str:
    return tracker.rich_note


WORKLOADS: dict[str, Workload] = {
    "scalars": Workload(
        measure=measure_scalars,
        results_name="client.md",
        describe=describe_scalars,
        tracker_note=no_tracker_note,
        footnote=(
            "Helper procs: RSS of the processes a tracker starts (not in its peak RSS), "
            "read just before finish()."
        ),
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
    "rich": Workload(
        measure=measure_rich,
        results_name="client-rich.md",
        describe=describe_rich,
        tracker_note=rich_tracker_note,
        footnote=(
            "Histogram and image calls are timed with the building of the tracker's histogram "
            "or image object inside (the numpy data is made beforehand); their p99 over so few "
            "calls is close to the max. Total: from a run's first log() until finish() returned "
            "and every file is fsynced, the median run's (first run: the cold one, with lazy "
            "imports); making the data is not in it. On disk: per run. Helper procs: RSS of "
            "the processes a tracker starts (not in its peak RSS), the largest read just before "
            "a finish(). Only peers that log both histograms and images are compared on the "
            "totals."
        ),
        figures=(
            Figure("histogram_p50", "histogram call p50 ms", True, 2, goal=2),
            Figure("histogram_p99", "histogram call p99 ms", True, 2, goal=2),
            Figure("histogram_max_ms", "histogram call max ms", True, 1),
            Figure("image_p50", "image call p50 ms", True, 2, goal=1),
            Figure("image_p99", "image call p99 ms", True, 2, goal=1),
            Figure("image_max_ms", "image call max ms", True, 1),
            Figure("scalars_p50", "scalar call p50 µs", True, 2),
            Figure("scalars_p99", "scalar call p99 µs", True, 1),
            Figure("scalars_max_ms", "scalar call max ms", True, 1),
            Figure("total_s", "total s", True, 2, goal_beats_peers=True, complete_peers_only=True),
            Figure("first_total_s", "first run total s", True, 2, complete_peers_only=True),
            Figure("histogram_calls", "histogram calls", True, 0, compared=False),
            Figure("image_calls", "image calls", True, 0, compared=False),
            Figure("scalars_calls", "scalar calls", True, 0, compared=False),
            Figure("peak_rss_mb", "peak RSS MB", True, 1),
            Figure("helper_rss_mb", "helper procs MB", True, 1, compared=False),
            Figure("disk_mb", "on disk MB per run", True, 2, compared=False),
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
    lines += [f"- workload: {workload.describe(counts)}", ""]
    headings = ["tracker", *(figure.heading for figure in figures)]
    lines.append("| " + " | ".join(headings) + " |")
    lines.append("|---|" + "---:|" * len(figures))
    lines.append("| *waddle goal* | " + " | ".join(goal_cell(figure) for figure in figures) + " |")
    for outcome in outcomes:
        if outcome.result is None:
            cells = [f"failed: {(outcome.error or '').replace('|', '/')}"] + [""] * (
                len(figures) - 1
            )
        else:
            values = outcome.result["figures"]
            cells = [
                figure.format(values[figure.key]) if figure.key in values else "not supported"
                for figure in figures
            ]
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
            + workload.footnote,
        ]
    return "\n".join(lines) + "\n"


def goal_cell(figure: Figure) -> str:
    if figure.goal_beats_peers:
        return "best of all"
    return figure.format(figure.goal) if figure.goal is not None else ""


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
        best_peer = best_peer_for(figure, peers)
        if value is None:
            goal_cells.append("")
        elif figure.goal is not None:
            goal_cells.append("yes" if figure.meets_goal(value) else "**no**")
        elif figure.goal_beats_peers and best_peer is not None:
            goal_cells.append("yes" if ratio(figure, value, best_peer[1]) > 1 else "**no**")
        else:
            goal_cells.append("")
        ratio_cells.append(ratio_cell(figure, value, best_peer))
    return [
        "| *waddle meets goal* | " + " | ".join(goal_cells) + " |",
        "| *waddle vs best peer* | " + " | ".join(ratio_cells) + " |",
    ]


def best_peer_for(figure: Figure, peers: dict[str, dict[str, Any]]) -> tuple[str, float] | None:
    """The peer with the best value of ``figure`` and that value, among those it compares."""
    candidates = {
        name: figures_of[figure.key]
        for name, figures_of in peers.items()
        if figures_of.get(figure.key) is not None
        and (figures_of.get("complete", True) or not figure.complete_peers_only)
    }
    if not figure.compared or not candidates:
        return None
    pick = min if figure.lower_is_better else max
    best_name = pick(candidates, key=lambda name: candidates[name])
    return best_name, candidates[best_name]


def ratio(figure: Figure, value: float, best: float) -> float:
    """How many times better ``value`` is than ``best``: above 1, waddle is ahead."""
    numerator, denominator = (best, value) if figure.lower_is_better else (value, best)
    return numerator / denominator if denominator > 0 else float("inf")


def ratio_cell(figure: Figure, value: float | None, best_peer: tuple[str, float] | None) -> str:
    if value is None or best_peer is None:
        return ""
    best_name, best = best_peer
    times = ratio(figure, value, best)
    if times == float("inf"):
        return f"– ({best_name})"
    shown = f"{times:.2g}×" if times < 1 else f"{times:.1f}×"
    return f"{shown if times >= 1 else '**' + shown + '**'} ({best_name})"


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
    parser.add_argument(
        "--workload",
        choices=[*WORKLOADS, "all"],
        default="all",
        help="which workload to run (default: %(default)s, one after the other)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="scratch folder for the trackers' files, emptied after each (default: %(default)s)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="folder whose markdown table of each workload run is overwritten "
        "(default: %(default)s)",
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
    workloads = list(WORKLOADS) if args.workload == "all" else [args.workload]
    for workload in workloads:
        header = machine_description()
        outcomes = []
        for tracker in trackers:
            python = pythons.get(tracker, sys.executable)
            print(f"running {workload}: {tracker} ({python}) ...", file=sys.stderr, flush=True)
            started = time.monotonic()
            outcome = run_tracker(tracker, workload, counts, python, args.data_dir.resolve())
            state = "ok" if outcome.result is not None else f"failed: {outcome.error}"
            print(f"  {state} ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
            outcomes.append(outcome)
        report = render_report(workload, counts, outcomes, header)
        print(report)
        results_file = args.results_dir / WORKLOADS[workload].results_name
        results_file.parent.mkdir(parents=True, exist_ok=True)
        results_file.write_text(report)


if __name__ == "__main__":
    main()
