"""Nothing is lost: kill -9, SIGTERM, crashes, exit without finish(), fork, full disks, slow writers.

Each test runs a real training process (a child Python) and reads its log folder afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.conftest import PYTHON, QUIET_ENV, child_env, events_of, start_training, wait_until
from tests.interrupt_helpers import busy_cpu, interrupted_script, run_interrupted
from waddle import names, segment


def only_run_dir(log_dir: Path, project: str = "p") -> Path:
    runs = [path for path in (log_dir / project).iterdir() if path.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def waddle_ls(log_dir: Path, **env: str) -> str:
    result = subprocess.run(
        [PYTHON, "-m", "waddle.cli", "ls", str(log_dir)],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


HEAVY_LOGGING = """
    import waddle
    run = waddle.init(project="p")
    step = 0
    while True:
        run.log({f"k{i}": step * 0.5 + i for i in range(10)})
        if step % 2000 == 0:
            print(step, flush=True)
        step += 1
"""


def test_kill_9_during_heavy_logging_leaves_a_readable_log_of_what_was_written(tmp_path):
    child = start_training(HEAVY_LOGGING, tmp_path)
    for _ in range(3):  # the loop is well under way: steps 0, 2000 and 4000 have returned
        line = child.stdout.readline()
        assert line, child.stderr.read()
    reported = int(line.split()[0])
    run_dir = tmp_path / "p" / wait_until(lambda: names.folders(tmp_path / "p"))[0]

    def logged_steps() -> list[int]:
        return [event["step"] for event in events_of(run_dir) if event["type"] == "log"]

    # Written while the loop runs, not only at its end (how soon is a timing: not asserted).
    wait_until(lambda: (steps := logged_steps()) and steps[-1] >= reported, timeout=30)
    on_disk = logged_steps()[-1]
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)

    lines = b"".join(path.read_bytes() for path in segment.list_segments(run_dir)).split(b"\n")
    complete, torn = lines[:-1], lines[-1]
    events = [orjson.loads(line) for line in complete]  # every complete line is valid JSON
    assert [event["seq"] for event in events] == list(range(len(events)))
    assert events[0]["type"] == "run_start"
    steps = [event["step"] for event in events if event["type"] == "log"]
    assert steps == list(range(len(steps)))
    assert steps[-1] >= on_disk  # nothing that was on disk is harmed by the kill
    # The reader ignores the torn tail, if the kill left one.
    assert len(events_of(run_dir)) == len(events)
    if torn:
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(torn)

    # Once its last event is older than the heartbeat timeout, the run shows as crashed.
    listing = wait_until(
        lambda: (
            (out := waddle_ls(tmp_path, WADDLE_HEARTBEAT_TIMEOUT="0.5"))
            and "crashed" in out
            and out
        )
    )
    assert run_dir.name in listing


def test_ls_shows_a_live_run_as_running_and_its_progress(tmp_path):
    child = start_training(HEAVY_LOGGING, tmp_path)
    try:
        assert child.stdout.readline()
        listing = wait_until(lambda: (out := waddle_ls(tmp_path)) and "k0=" in out and out)
        assert "running" in listing
    finally:
        child.kill()
        child.wait(timeout=30)


def test_sigterm_writes_everything_and_a_crashed_finish_then_dies_of_the_signal(tmp_path):
    child = start_training(HEAVY_LOGGING, tmp_path)
    for _ in range(5):
        assert child.stdout.readline()
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == -signal.SIGTERM
    events = events_of(only_run_dir(tmp_path))
    finish = events[-1]
    assert finish["type"] == "finish"
    assert (finish["status"], finish["reason"], finish["exit_code"]) == ("crashed", "SIGTERM", 143)
    assert [event["seq"] for event in events] == list(range(len(events)))
    steps = [event["step"] for event in events if event["type"] == "log"]
    assert steps == list(range(len(steps))) and finish["last_step"] == steps[-1]


def test_ctrl_c_flushes_then_raises_keyboardinterrupt_as_usual(tmp_path):
    child = start_training(HEAVY_LOGGING, tmp_path)
    for _ in range(5):
        assert child.stdout.readline()
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGINT and "KeyboardInterrupt" in err  # as Python does
    events = events_of(only_run_dir(tmp_path))
    finish = events[-1]
    assert (finish["type"], finish["status"], finish["reason"]) == (
        "finish",
        "crashed",
        "KeyboardInterrupt",
    )
    steps = [event["step"] for event in events if event["type"] == "log"]
    assert steps == list(range(len(steps))) and finish["last_step"] == steps[-1]


def test_an_uncaught_exception_marks_the_run_crashed_with_its_traceback(tmp_path):
    child = start_training(
        """
        import waddle
        run = waddle.init(project="p")
        run.log({"loss": 1.0})
        raise RuntimeError("exploded at step 1")
        """,
        tmp_path,
    )
    _, err = child.communicate(timeout=60)
    assert child.returncode == 1 and "exploded at step 1" in err  # the user still sees it
    finish = events_of(only_run_dir(tmp_path))[-1]
    assert (finish["status"], finish["reason"], finish["exit_code"]) == (
        "crashed",
        "RuntimeError",
        1,
    )
    assert "exploded at step 1" in finish["traceback"]


def test_exit_without_finish_still_finishes_the_run(tmp_path):
    child = start_training(
        """
        import waddle
        run = waddle.init(project="p")
        for step in range(1000):
            run.log({"loss": 1.0 / (step + 1)})
        """,
        tmp_path,
    )
    child.communicate(timeout=60)
    assert child.returncode == 0
    events = events_of(only_run_dir(tmp_path))
    assert events[-1]["type"] == "finish" and events[-1]["status"] == "finished"
    assert sum(event["type"] == "log" for event in events) == 1000


def test_a_forked_child_never_writes_into_the_parents_run(tmp_path):
    child = start_training(
        """
        import multiprocessing, os, waddle
        run = waddle.init(project="p", settings=waddle.Settings(console=True))

        def worker(index):
            run.log({"from_child": index})  # ignored: the run belongs to the parent
            print(f"child output {index}", flush=True)  # one write: children share the pipe
            waddle.log({"also": index})
            return os.getpid()

        run.log({"before": 1})
        with multiprocessing.get_context("fork").Pool(2) as pool:
            pids = pool.map(worker, range(4))
        run.log({"after": 2})
        run.finish()
        print("pids", sorted(set(pids)))
        """,
        tmp_path,
    )
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert "child output 3" in out  # children still print normally
    events = events_of(only_run_dir(tmp_path))
    assert [event["seq"] for event in events] == list(range(len(events)))
    assert [event["data"] for event in events if event["type"] == "log"] == [
        {"before": 1},
        {"after": 2},
    ]
    console = "".join(event["text"] for event in events if event["type"] == "console")
    assert "child output" not in console
    assert sum(event["type"] == "finish" for event in events) == 1


def test_a_full_disk_gives_one_clear_notice_and_training_goes_on(tmp_path):
    run_dir = tmp_path / "p" / "full"
    run_dir.mkdir(parents=True)
    (run_dir / segment.segment_name(0)).symlink_to("/dev/full")  # every write: ENOSPC
    child = start_training(
        """
        import waddle
        run = waddle.init(project="p", id="full", resume="allow")
        for step in range(20000):
            run.log({"loss": float(step)})
        run.finish()
        print("training finished")
        """,
        tmp_path,
    )
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0 and "training finished" in out
    assert err.count("cannot write the event log") == 1
    assert "No space left on device" in err
    assert "lost" in err  # at the end the user is told what could not be written


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop the permission override")
def test_an_unwritable_log_folder_gives_one_clear_notice_and_training_goes_on(tmp_path):
    log_dir = tmp_path / "readonly"
    log_dir.mkdir()
    log_dir.chmod(0o555)
    child = subprocess.run(
        [
            "setpriv",  # root without the capability to override file permissions
            "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search",
            PYTHON,
            "-c",
            "import waddle\nrun = waddle.init(project='p')\n"
            "for s in range(100): run.log({'x': s})\nrun.finish()\nprint('training finished')",
        ],
        env=child_env(WADDLE_DIR=str(log_dir), HOME="/tmp", **QUIET_ENV),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0 and "training finished" in child.stdout, child.stderr
    assert child.stderr.count("cannot write the event log") == 1
    assert "Permission denied" in child.stderr


def test_a_full_queue_makes_log_wait_not_drop_and_says_so_once(tmp_path):
    child = start_training(
        """
        import waddle
        run = waddle.init(project="p")
        for step in range(30000):
            run.log({"a": step, "b": step * 2.0})
        run.finish()
        """,
        tmp_path,
        WADDLE_QUEUE_SIZE="50",
        WADDLE_FLUSH_INTERVAL="0.2",
    )
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert err.count("log() is waiting for the writer") == 1
    events = events_of(only_run_dir(tmp_path))
    assert [event["step"] for event in events if event["type"] == "log"] == list(range(30000))
    assert events[-1]["stalled_seconds"] > 0


INTERRUPTED_LOGGING = interrupted_script(
    setup="",
    body="""
        run.log({"x": float(calls)})
        calls += 1
    """,
)


def test_many_ctrl_c_never_hang_a_training_script_nor_lose_what_it_logged(tmp_path):
    """Each SIGINT lands anywhere in log() or the writer's hand-off, on one busy CPU."""
    scripts, interrupts = 8, 25
    total = 0  # log() calls that returned, over all scripts
    with busy_cpu():
        for index in range(scripts):
            logged = run_interrupted(INTERRUPTED_LOGGING, f"r{index}", interrupts, tmp_path)
            events = events_of(tmp_path / "p" / f"r{index}")
            assert [event["seq"] for event in events] == list(range(len(events)))
            steps = [event["step"] for event in events if event["type"] == "log"]
            # Every log() that returned is there, at the next step; a call interrupted after
            # queuing its values is there too, and then the next call adds to its step. (On a
            # busy CPU every interrupt may come before the first log() returns: then none.)
            assert steps == sorted(steps) and set(steps) == set(range(len(set(steps))))
            assert len(set(steps)) >= logged, f"script {index}: {logged} logged, {steps[-3:]}"
            total += logged
            assert events[-1]["type"] == "finish" and events[-1]["status"] == "finished"
    assert total > 0  # the interrupts landed in a logging loop, not only before it
