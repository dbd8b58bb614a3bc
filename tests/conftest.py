"""Shared test helpers: a run factory writing to tmp_path, and waiting on conditions, not sleeps."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import waddle
from waddle import segment

# The browser tests' fixtures (browser, page).
pytest_plugins = ["tests.browser"]

QUIET = waddle.Settings(console=False, system_metrics_interval=0)


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.01
) -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(
                f"condition not met within {timeout} s: {getattr(predicate, '__name__', predicate)}"
            )
        time.sleep(interval)


def events_of(run_dir: Path, rejects: list | None = None) -> list[dict]:
    on_reject = (
        (lambda path, offset, reason: rejects.append((path, offset, reason)))
        if rejects is not None
        else None
    )
    return list(segment.read_events(Path(run_dir), on_reject))


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a child Python that imports this checkout's waddle."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


PYTHON = sys.executable
# A child training script's settings: no console capture nor system sampler, so what it writes
# is what the test logged.
QUIET_ENV = {"WADDLE_CONSOLE": "0", "WADDLE_SYSTEM_METRICS_INTERVAL": "0"}


def start_training(code: str, log_dir: Path, **env: str) -> subprocess.Popen:
    """A training script (``code``) in a child Python logging to ``log_dir``; its stdout and
    stderr are pipes."""
    return subprocess.Popen(
        [PYTHON, "-c", textwrap.dedent(code)],
        env=child_env(WADDLE_DIR=str(log_dir), **{**QUIET_ENV, **env}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(autouse=True)
def no_run_left_open():
    """Each test starts with no open run: init() would return one a failed test left open."""
    yield
    from waddle import process_hooks

    for run in process_hooks.open_runs():
        run.finish()


@pytest.fixture
def new_run(tmp_path):
    """``new_run(**init_kwargs)``: a quiet run in tmp_path; finished at teardown if still open.
    Several may be open at once (``reinit="create_new"``)."""
    runs = []

    def make(**kwargs):
        kwargs.setdefault("project", "p")
        kwargs.setdefault("dir", tmp_path)
        kwargs.setdefault("settings", QUIET)
        kwargs.setdefault("reinit", "create_new")
        run = waddle.init(**kwargs)
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.finish()
