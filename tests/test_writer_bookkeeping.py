"""The writer's bookkeeping never costs an event: whatever run.summary's tracking, the scalar
copies or the system sampler do, every event reaches the log.

Each test injects a failure into one piece of bookkeeping (the summary tracker, a define, the
scalar-copy collector, the sampler) on some value, logs through ``run.log``, ``commit=False``
merges and TensorBoard's ``add_scalar`` (its fast path and its general one), and checks what a
user would notice: every event on disk in seq order, a finished run, one notice naming the key
and the error, and that piece of bookkeeping off or repaired (the key's summary unknown, the
copies given up so that reads parse the JSON and give the same values).
"""

from __future__ import annotations

import threading

import pytest

import waddle
from tests.conftest import events_of
from waddle import history, scalar_copy, segment, writer
from waddle.summary import Logged
from waddle.system_metrics import SystemSampler
from waddle.tensorboard import SummaryWriter
from waddle.values import Deferred

QUIET = waddle.Settings(console=False, system_metrics_interval=0)
STEPS = 40
POISON_STEP = 7  # the step at which "poison" is logged, beside "loss"


class Injected(RuntimeError):
    """The failure a test injects."""


def _poisoned(original):
    """``original`` (a method taking a dict of values somewhere in its arguments), raising
    Injected when the dict holds the key "poison"."""

    def wrapper(self, *args):
        if any(isinstance(arg, dict) and "poison" in arg for arg in args):
            raise Injected("injected fault")
        return original(self, *args)

    return wrapper


def _log_all(run, path: str) -> None:
    """Log "loss" at steps 0..STEPS-1 through ``path``, and "poison" at POISON_STEP; flush
    every 10 steps (with small segments, each later write starts a segment)."""
    if path in ("add_scalar", "add_scalar_general"):
        board = SummaryWriter(run=run)
        for step in range(STEPS):
            if step % 10 == 0:
                run.flush()
            if path == "add_scalar_general":  # a wall time given: _log_keyed's tuples
                board.add_scalar("loss", float(step), step, walltime=1.7e9 + step)
            else:
                board.add_scalar("loss", float(step), step)
            if step == POISON_STEP:
                board.add_scalar("poison", 1.0, step)
        return
    for step in range(STEPS):
        if step % 10 == 0:
            run.flush()
        if path == "commit_false":  # the step's keys in several calls, merged at the step
            run.log({"loss": float(step)}, commit=False)
            if step == POISON_STEP:
                run.log({"poison": 1.0}, commit=False)
            run.log({"other": step})
        else:
            values = {"loss": float(step)}
            if step == POISON_STEP:
                values["poison"] = 1.0
            run.log(values)


def _logged(run_dir) -> dict[tuple[str, int], object]:
    """Every logged (key, step) on disk, with its value; checks seqs are gap-free and the run
    finished."""
    events = events_of(run_dir)
    assert [event["seq"] for event in events] == list(range(len(events)))
    assert events[-1]["type"] == "finish" and events[-1]["status"] == "finished"
    return {
        (key, event["step"]): value
        for event in events
        if event["type"] == "log"
        for key, value in event["data"].items()
    }


PATHS = ["log", "commit_false", "add_scalar", "add_scalar_general"]


@pytest.mark.parametrize("path", PATHS)
def test_a_failing_summary_update_loses_no_event_and_leaves_the_key_unknown(
    new_run, capfd, monkeypatch, path
):
    monkeypatch.setattr(Logged, "update", _poisoned(Logged.update))
    run = new_run()
    run.define_metric("loss", summary="max")
    _log_all(run, path)
    run.log({"after": 1})  # the writer goes on after the failure
    assert "poison" not in run.summary  # unknown: never a wrong value
    assert run.summary["loss"] == {"max": float(STEPS - 1)}  # the others are kept
    assert run.summary["after"] == 1
    run.finish()
    logged = _logged(run.dir)
    assert all(logged[("loss", step)] == float(step) for step in range(STEPS))
    assert logged[("poison", POISON_STEP)] == 1.0
    assert 1 in [value for (key, _), value in logged.items() if key == "after"]
    err = capfd.readouterr().err
    assert err.count("run.summary['poison']") == 1, err  # said once, naming the key
    assert "Injected: injected fault" in err
    assert "the writer thread failed" not in err


def test_a_failing_define_metric_is_said_and_the_events_go_on(new_run, capfd, monkeypatch):
    def broken(self, name, summary):
        raise Injected("injected fault")

    monkeypatch.setattr(Logged, "define", broken)
    run = new_run()
    run.define_metric("loss", summary="max")
    for step in range(STEPS):
        run.log({"loss": float(step)})
    assert run.summary["loss"] == float(STEPS - 1)  # no aggregate: the last value
    run.finish()
    events = events_of(run.dir)
    assert [event["name"] for event in events if event["type"] == "define_metric"] == ["loss"]
    assert len(_logged(run.dir)) == STEPS
    err = capfd.readouterr().err
    assert "define_metric('loss'" in err and "Injected: injected fault" in err, err


COPIES = waddle.Settings(
    console=False, system_metrics_interval=0, scalar_copies=True, segment_bytes=1000
)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["add", "settle", "write"])
def test_a_failing_scalar_copy_loses_no_event_and_reads_parse_the_json(
    new_run, capfd, monkeypatch, path, method
):
    original = getattr(scalar_copy.Collector, method)
    if method == "add":  # on the poisoned event only
        monkeypatch.setattr(scalar_copy.Collector, method, _poisoned(original))
    else:  # on every call: the copies must be given up, not retried event after event

        def broken(self, *args):
            raise Injected("injected fault")

        monkeypatch.setattr(scalar_copy.Collector, method, broken)
    run = new_run(settings=COPIES)
    _log_all(run, path)
    run.finish()
    logged = _logged(run.dir)
    assert all(logged[("loss", step)] == float(step) for step in range(STEPS))
    assert len(segment.list_segments(run.dir)) > 2  # closed segments: their copies were due
    # Reads take no copy of a segment missing an event: the JSON's values, every step.
    columns = history.scalar_columns(run.dir, ["loss"], 0.0)
    assert columns["loss"].tolist() == [float(step) for step in range(STEPS)]
    err = capfd.readouterr().err
    assert err.count("scalar copies are off") == 1, err
    assert "Injected: injected fault" in err
    assert "the writer thread failed" not in err


def test_a_failing_system_sampler_turns_system_metrics_off_not_the_run(new_run, capfd, monkeypatch):
    def broken(self):
        raise Injected("injected fault")

    monkeypatch.setattr(SystemSampler, "sample", broken)
    run = new_run(settings=waddle.Settings(console=False, system_metrics_interval=0.01))
    for step in range(STEPS):
        run.log({"loss": float(step)})
    run.flush()
    run.finish()
    assert len(_logged(run.dir)) == STEPS
    err = capfd.readouterr().err
    assert err.count("system metrics are off") == 1 and "Injected: injected fault" in err, err


class _AsksFail(Deferred):
    """A deferred value (as a tensor is) whose device cannot be asked whether it is ready."""

    def ready(self) -> bool:
        raise Injected("injected fault")

    def materialize(self, run_dir) -> float:
        return 1.0


def test_a_deferred_value_whose_readiness_cannot_be_asked_is_read_not_the_writer_lost(new_run):
    run = new_run()
    run.log({"loss": 0.0})
    run.log({"loss": 1.0, "device": _AsksFail()})
    for step in range(2, STEPS):
        run.log({"loss": float(step)})
    run.finish()
    logged = _logged(run.dir)
    assert logged[("device", 1)] == 1.0 and len(logged) == STEPS + 1


def test_an_event_that_fails_in_the_writer_is_counted_and_the_rest_are_written(
    new_run, capfd, monkeypatch
):
    """The rule's last line: whatever else fails while one queued item is turned into its
    line, that item is counted lost (``finish.lost_values``) and said, and the writer goes
    on. Shown with the console's encoding, which has no bookkeeping of its own."""
    original = writer.console_pieces

    def broken(text):
        if "poison" in text:
            raise Injected("injected fault")
        return original(text)

    monkeypatch.setattr(writer, "console_pieces", broken)
    run = new_run()
    run.log({"loss": 0.0})
    run._console_line("stdout", "poison\n")
    for step in range(1, STEPS):
        run.log({"loss": float(step)})
    run._console_line("stdout", "fine\n")
    run.finish()
    assert len(_logged(run.dir)) == STEPS
    events = events_of(run.dir)
    assert [event["text"] for event in events if event["type"] == "console"] == ["fine\n"]
    assert events[-1]["lost_values"] == 1
    err = capfd.readouterr().err
    assert "a console event could not be written" in err and "Injected: injected fault" in err


def test_a_finish_event_that_cannot_be_written_still_ends_the_run(new_run, capfd, monkeypatch):
    """The item that ends the writer fails: finish() still returns, every event logged before
    it is on disk, the failure is said, and readers take the run for one that never finished
    (crashed once its heartbeat is old), as after a kill."""
    original = writer.Writer._encode

    def encode(self, batch, t, kind, fields, *rest, **named):
        if kind == "finish":
            raise Injected("injected fault")
        return original(self, batch, t, kind, fields, *rest, **named)

    monkeypatch.setattr(writer.Writer, "_encode", encode)
    run = new_run()
    for step in range(STEPS):
        run.log({"loss": float(step)})
    ended = threading.Thread(target=run.finish)
    ended.start()
    ended.join(timeout=30)
    assert not ended.is_alive(), "finish() did not return"
    events = events_of(run.dir)
    assert [event["seq"] for event in events] == list(range(len(events)))
    assert [event["data"]["loss"] for event in events if event["type"] == "log"] == [
        float(step) for step in range(STEPS)
    ]
    assert events[-1]["type"] == "log"  # no finish: read as a run that never finished
    assert "a finish event could not be written" in capfd.readouterr().err
    read = waddle.Api(overrides={"dir": str(run.dir.parent.parent)}).run(f"p/{run.id}")
    assert read.state in ("running", "crashed")
    assert read.history(keys=["loss"], pandas=False, samples=0)[-1]["loss"] == STEPS - 1
