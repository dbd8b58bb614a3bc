"""Ctrl-C into a logging loop: a training child that takes SIGINTs one after another, on one CPU
kept busy by other processes, and tells how many logging calls returned.

A test gives the loop's setup and body (:func:`interrupted_script`); :func:`run_interrupted`
sends the SIGINTs, each once the child says it is logging again, and fails when the child
hangs; :func:`busy_cpu` keeps CPU 0 busy meanwhile.
"""

from __future__ import annotations

import contextlib
import selectors
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import PYTHON, QUIET_ENV, child_env

# The protocol: the child prints "ready" inside the try (so the next SIGINT always lands in
# the loop), "interrupted N" after each interrupt, and "done N" once its run is finished; N:
# the logging calls that returned (``calls``, which the body counts).
_SCRIPT = """
import os, sys, waddle
os.sched_setaffinity(0, {{0}})
run = waddle.init(project="p", id=sys.argv[1])
{setup}
calls = interrupts = 0
news = "ready"
while interrupts < int(sys.argv[2]):
    try:
        print(news, flush=True)
        while True:
{body}
    except KeyboardInterrupt:
        interrupts += 1
        news = f"interrupted {{calls}}"
run.finish()
print(news, flush=True)
print("done", calls, flush=True)
"""


def interrupted_script(setup: str, body: str) -> str:
    """The child's script: ``setup`` once after ``waddle.init`` (``run``), then ``body`` in a
    loop until interrupted; ``body`` counts each logging call that returned in ``calls``."""
    return _SCRIPT.format(
        setup=textwrap.dedent(setup).strip(),
        body=textwrap.indent(textwrap.dedent(body).strip(), " " * 12),
    )


def run_interrupted(script: str, run_id: str, interrupts: int, log_dir: Path) -> int:
    """Run ``script`` (:func:`interrupted_script`) as run ``run_id`` in ``log_dir``, send it
    ``interrupts`` SIGINTs, each once it says it is logging again; the count it logged."""
    child = subprocess.Popen(
        [PYTHON, "-c", script, run_id, str(interrupts)],
        env=child_env(WADDLE_DIR=str(log_dir), **QUIET_ENV),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline() == "ready\n"
    for _ in range(interrupts):
        child.send_signal(signal.SIGINT)
        line = _readline_within(child, 30)
        assert line.startswith("interrupted"), f"{run_id}: {line!r}"
    last = _readline_within(child, 30)
    assert last.startswith("done"), f"{run_id} hung or failed: {last!r}"
    assert child.wait(timeout=30) == 0, child.stderr.read()
    return int(last.split()[1])


@contextlib.contextmanager
def busy_cpu(processes: int = 2) -> Iterator[None]:
    """Within: ``processes`` children burn CPU 0, where the interrupted child runs."""
    code = "import os\nos.sched_setaffinity(0, {0})\nwhile True: pass"
    burners = [subprocess.Popen([PYTHON, "-c", code]) for _ in range(processes)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def _readline_within(child: subprocess.Popen, seconds: float) -> str:
    """The child's next line, or "" if it wrote none within ``seconds`` (it hung)."""
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        if not selector.select(seconds):
            child.kill()
            return ""
    return child.stdout.readline()
