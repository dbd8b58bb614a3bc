"""add_scalar's fast paths give what the general path gives, and lose nothing on Ctrl-C.

``Run._log_scalar`` (a value joins its step's open item in a few steps) and the writer's loop
over add_scalar's items (``Writer._encode_keyed_plain``: one encoding call per item, run.summary
brought up to date once per run of items) are checked against the general path they stand for:
``Run._log_keyed`` and ``Writer._encode_keyed``, item by item. The same random program of
add_scalar, add_scalars, run.log, define_metric and flush calls (steps repeated and going
back, NaN and ±Inf, ints, wall times given) runs once each way; the events read back, the run's
summary and every (key, step)'s value as readers keep it must be the same.
"""

from __future__ import annotations

import contextlib
import math

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import waddle
from tests.conftest import events_of
from tests.interrupt_helpers import busy_cpu, interrupted_script, run_interrupted
from waddle.run import Run
from waddle.tensorboard import SummaryWriter
from waddle.writer import Writer

# Only flush() and finish() cut a step's event short: the writer drains on nothing else while a
# program runs, so both ways group values into the same events.
SETTINGS = waddle.Settings(console=False, system_metrics_interval=0, flush_interval=600)
TAGS = ["loss", "acc"]
# Finite floats up to 1e18: the general path takes larger ones as values to check (values.py,
# _SAFE_SUM), not to join their step's event, and would group them otherwise.
VALUES = st.one_of(
    st.floats(-1e18, 1e18),
    st.sampled_from([0.0, -0.0, 1.5, math.nan, math.inf, -math.inf]),
    st.integers(-(2**53), 2**53),
)
# Steps below 257 are one object per value in CPython, others a new object per call unless
# the program passes the one it used before ("same"): both of _log_scalar's ways to join.
STEPS = st.one_of(st.integers(0, 2), st.integers(1000, 1001), st.sampled_from([2**62]))
SCALAR = st.tuples(st.just("scalar"), st.sampled_from(TAGS), VALUES, STEPS, st.booleans())
OPERATIONS = st.lists(
    st.one_of(
        SCALAR,  # the call measured: three times as often as each other
        SCALAR,
        SCALAR,
        st.tuples(
            st.just("scalars"),
            st.sampled_from(["lr", "loss"]),
            st.dictionaries(st.sampled_from(["a", "b"]), VALUES, min_size=1),
            STEPS,
        ),
        st.tuples(st.just("walltime"), st.sampled_from(TAGS), VALUES, STEPS, st.floats(0, 2e9)),
        st.tuples(st.just("log"), st.sampled_from(TAGS), VALUES),
        st.tuples(st.just("define"), st.sampled_from(TAGS), st.sampled_from(["max", "min,last"])),
        st.tuples(st.just("flush")),
    ),
    min_size=1,
    max_size=60,
)


def _play(run, operations: list[tuple]) -> None:
    writer = SummaryWriter(run=run)
    last_step = {}
    for operation in operations:
        kind = operation[0]
        if kind == "scalar":
            _, tag, value, step, same = operation
            # The step object of the call before when it has the same value, else a new one.
            step = last_step.setdefault(step, step) if same else int(str(step))
            writer.add_scalar(tag, value, step)
        elif kind == "scalars":
            writer.add_scalars(operation[1], operation[2], operation[3])
        elif kind == "walltime":
            _, tag, value, step, walltime = operation
            writer.add_scalar(tag, value, step, walltime=walltime)
        elif kind == "log":
            run.log({operation[1]: operation[2]})
        elif kind == "define":
            run.define_metric(operation[1], summary=operation[2])
        else:
            run.flush()


@contextlib.contextmanager
def _general_paths():
    """Within: every add_scalar value takes the general path on both sides of the queue."""
    originals = Run._log_scalar, Writer._encode_keyed_plain
    Run._log_scalar, Writer._encode_keyed_plain = _general_log_scalar, _general_encode_keyed_plain
    try:
        yield
    finally:
        Run._log_scalar, Writer._encode_keyed_plain = originals


def _general_log_scalar(self, key, value, step):
    self._log_keyed({key: value}, step)


def _general_encode_keyed_plain(self, batch, item, limit):
    if item[5] is False:
        item[5] = True
    self._encode_keyed(batch, item)
    return 0


def _canonical(value):
    """A value as compared: NaN equal to NaN, and an int apart from the float it equals."""
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else value)
    return (type(value).__name__, value)


def _outcome(run, operations):
    run.flush()  # the writer's first drain is done: from now on it drains on flush() only
    _play(run, operations)
    run.flush()
    summary = {key: run.summary[key] for key in run.summary}
    run.finish()
    events = [e for e in events_of(run.dir) if e["type"] == "log"]
    shape = [
        (
            e["step"],
            e.get("keyed", False),
            {key: _canonical(value) for key, value in e["data"].items()},
        )
        for e in events
    ]
    summary = {
        key: (
            {name: _canonical(part) for name, part in value.items()}
            if isinstance(value, dict)
            else _canonical(value)
        )
        for key, value in summary.items()
    }
    walltimes = [e["t"] for e in events if e.get("keyed")]
    return shape, summary, walltimes


def _newest(operations) -> dict[tuple[str, bool, int], object]:
    """Per (key, keyed, step), the value logged last: what a reader keeps (highest seq)."""
    newest, run_step = {}, 0
    for operation in operations:
        kind = operation[0]
        if kind in ("scalar", "walltime"):
            newest[(operation[1], True, operation[3])] = _canonical(operation[2])
        elif kind == "scalars":
            for key, value in operation[2].items():
                newest[(f"{operation[1]}/{key}", True, operation[3])] = _canonical(value)
        elif kind == "log":
            newest[(operation[1], False, run_step)] = _canonical(operation[2])
            run_step += 1
    return newest


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=OPERATIONS)
@example(  # a step gone back within the writer's run of items: the summary keeps step 5's
    operations=[
        ("scalar", "loss", 0.5, 0, True),
        ("scalar", "loss", 1.0, 5, True),
        ("scalar", "loss", 2.0, 3, True),
    ]
)
@example(  # acc's highest step is 1, not loss's 3: its value at step 2 is the summary's
    operations=[
        ("scalar", "loss", 0.5, 0, True),
        ("scalar", "acc", 0.5, 0, True),
        ("scalar", "loss", 1.0, 1, True),
        ("scalar", "acc", 1.0, 1, True),
        ("scalar", "loss", 3.0, 3, True),
        ("scalar", "acc", 2.0, 2, True),
    ]
)
@example(  # ±Inf at the step of the open event of known keys: its own event, kept as Inf
    operations=[
        ("scalar", "loss", 0.5, 0, True),
        ("scalar", "loss", 1.0, 1, True),
        ("scalar", "loss", math.inf, 1, True),
    ]
)
def test_the_fast_paths_write_what_the_general_path_writes(tmp_path_factory, operations):
    folder = tmp_path_factory.mktemp("fast")
    fast = waddle.init(project="fast", dir=folder, settings=SETTINGS, reinit="create_new")
    got = _outcome(fast, operations)
    with _general_paths():
        general = waddle.init(project="general", dir=folder, settings=SETTINGS, reinit="create_new")
        want = _outcome(general, operations)
    assert got[0] == want[0]  # the same events, values grouped alike
    assert got[1] == want[1]  # the same summary
    walltimes = [op[4] for op in operations if op[0] == "walltime"]
    assert [t for t in got[2] if t in walltimes] == walltimes  # wall times given, kept exactly
    kept = {}
    for step, keyed, data in got[0]:  # in seq order: the last one of a (key, step) is kept
        for key, value in data.items():
            kept[(key, keyed, step)] = value
    assert kept == _newest(operations)


INTERRUPTED_SCALARS = interrupted_script(
    setup="""
        from waddle.tensorboard import SummaryWriter
        writer = SummaryWriter(run=run)
        tags = ["a", "b", "c", "d"]
        steps = list(range(1_000_000))  # one object per step, as a training loop passes it
    """,
    body="""
        writer.add_scalar(tags[calls % 4], float(calls // 4), steps[calls // 4])
        calls += 1
    """,
)


def test_ctrl_c_anywhere_in_add_scalar_loses_no_value_that_was_logged(tmp_path):
    """Each SIGINT lands anywhere in add_scalar or the writer's hand-off, on one busy CPU: a
    call that returned is on disk; a value is there once, or at worst twice at its step."""
    total = 0
    with busy_cpu():
        for index in range(3):
            calls = run_interrupted(INTERRUPTED_SCALARS, f"r{index}", 20, tmp_path)
            events = events_of(tmp_path / "p" / f"r{index}")
            assert [event["seq"] for event in events] == list(range(len(events)))
            seen: dict[tuple[str, int], list[float]] = {}
            for event in events:
                if event["type"] == "log":
                    assert event["keyed"]
                    for key, value in event["data"].items():
                        seen.setdefault((key, event["step"]), []).append(value)
            for call in range(calls):
                values = seen.get(("abcd"[call % 4], call // 4))
                assert values and set(values) == {float(call // 4)}, f"call {call}: {values}"
            assert max(len(values) for values in seen.values()) <= 2
            total += calls
    assert total > 0  # the interrupts landed in a logging loop, not only before it
