"""The client's scalar copies of closed segments (waddle/scalar_copy.py, docs/format.md): a
history read from them gives the rows the JSON gives, and a missing, stale, torn or corrupt
copy is only slower, never wrong."""

from __future__ import annotations

import math
import os
import shutil
import signal

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import waddle
from tests.conftest import start_training
from waddle import history, scalar_copy, segment


# Small segments, so that a few hundred events make several, each with its copy.
@pytest.fixture(autouse=True)
def copies_on(monkeypatch):
    """Scalar copies are written only when asked for (a setting): these tests ask, their
    training children too (they inherit the variable)."""
    monkeypatch.setenv("WADDLE_SCALAR_COPIES", "1")


SMALL = waddle.Settings(console=False, system_metrics_interval=0, segment_bytes=2000)
# Tiny ones for random runs: most writes start a segment, and most segments get a copy.
TINY = waddle.Settings(console=False, system_metrics_interval=0, segment_bytes=300)
KEYS = ("a", "b", "c/d")


def _copies(run_dir):
    return sorted((run_dir / scalar_copy.COPY_DIR).glob("*" + scalar_copy.COPY_SUFFIX))


def _as_text(columns, keys):
    """The columns as comparable text (NaN equals NaN), per name."""
    names = ("_step", "_timestamp", *keys, *(history.HAS + key for key in keys))
    return {name: [repr(value) for value in columns[name].tolist()] for name in names}


def _from_json(run_dir, keys, tmp_path):
    """What the JSON says, the copies set aside: DuckDB's reading of every segment."""
    aside = tmp_path / "aside"
    shutil.move(run_dir / scalar_copy.COPY_DIR, aside)
    try:
        return history.scalar_columns(run_dir, list(keys), 0.0)
    finally:
        shutil.move(aside, run_dir / scalar_copy.COPY_DIR)


def _rows_of(run_dir, keys):
    """The Python reader's rows holding any of ``keys``, as the columns would give them."""
    rows = [row for row in history.scan(run_dir, 0.0) if any(key in row for key in keys)]
    return {
        "_step": [repr(row["_step"]) for row in rows],
        **{key: [repr(float(row.get(key, math.nan))) for row in rows] for key in keys},
    }


def _all_copies_valid(run_dir):
    """Every copy the writer wrote is taken by the reader (a wrong one could only be refused
    by chance: the reader's checks are for damage, not for the writer's mistakes)."""
    for path in segment.list_segments(run_dir):
        if scalar_copy.copy_path(path).exists():
            assert all(scalar_copy.read(path, key) is not None for key in KEYS), path.name


def _checked_against_json(run_dir, tmp_path):
    """The columns of KEYS, read from the copies, once checked that every copy is taken and
    that they are what the JSON gives (None: a key the Python reader must read)."""
    _all_copies_valid(run_dir)
    read = history.scalar_columns(run_dir, list(KEYS), 0.0)
    expected = _from_json(run_dir, KEYS, tmp_path)
    assert (read is None) == (expected is None)
    if read is not None:
        assert _as_text(read, KEYS) == _as_text(expected, KEYS)
    return read


values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.5]),
)
# Keys that come and go, in one order or another; the same ones often, as real runs log them.
payloads = st.sampled_from([("a",), ("a", "b"), ("b", "a"), ("c/d",), ("a", "b", "c/d")]).flatmap(
    lambda keys: st.fixed_dictionaries({key: values for key in keys})
)
calls = st.lists(
    st.tuples(
        payloads,
        st.sampled_from(["commit", "no-commit", "same-step", "flush"]),
    ),
    min_size=1,
    max_size=120,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(calls=calls)
def test_copies_and_json_give_the_same_rows(tmp_path_factory, calls):
    """Keys that come and go, NaN and ±Inf, ints, commit=False, a step logged again, flushes
    that cut segments anywhere: the copies' rows are the JSON's, and the Python reader's."""
    pytest.importorskip("duckdb")
    tmp_path = tmp_path_factory.mktemp("run")
    with waddle.init(project="p", dir=tmp_path, settings=TINY) as run:
        for data, how in calls:
            if how == "same-step":
                run.log(data, step=run.step)
            else:
                run.log(data, commit=how != "no-commit")
            if how == "flush":
                run.flush()
    read = _checked_against_json(run.dir, tmp_path)
    if read is not None:
        rows = _rows_of(run.dir, KEYS)
        assert [repr(step) for step in read["_step"].tolist()] == rows["_step"]
        for key in KEYS:
            assert [repr(value) for value in read[key].tolist()] == rows[key]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    calls=st.lists(
        st.tuples(
            payloads,
            st.integers(min_value=0, max_value=30),
            st.booleans(),
        ),
        min_size=1,
        max_size=120,
    )
)
def test_keyed_steps_read_the_same_from_copies_and_json(tmp_path_factory, calls):
    """TensorBoard's keyed steps (any order, repeated, one key a call on its hot path): the
    copies merge them per step as the JSON does, the newest value winning."""
    pytest.importorskip("duckdb")
    tmp_path = tmp_path_factory.mktemp("run")
    with waddle.init(project="p", dir=tmp_path, settings=TINY) as run:
        for data, step, flush in calls:
            if len(data) == 1:
                run._log_scalar(*next(iter(data.items())), step)
            else:
                run._log_keyed(data, step)
            if flush:
                run.flush()
    _checked_against_json(run.dir, tmp_path)


def _logged(tmp_path, steps=400, **kwargs):
    with waddle.init(project="p", dir=tmp_path, settings=SMALL, **kwargs) as run:
        for step in range(steps):
            run.log({"loss": 1 / (step + 1), "acc": math.nan if step % 9 == 0 else step})
            if step % 50 == 49:
                run.flush()
    return run


def test_no_copy_is_written_unless_asked_for(tmp_path, monkeypatch):
    """The copies cost the training process (README, "Settings"): off by default, and the
    history is the same without them."""
    monkeypatch.delenv("WADDLE_SCALAR_COPIES")
    run = _logged(tmp_path)
    assert len(segment.list_segments(run.dir)) > 2 and not _copies(run.dir)
    rows = waddle.Api(overrides={"dir": str(tmp_path)}).run(f"p/{run.id}")
    read = rows.history(keys=["loss"], samples=0, pandas=False)
    assert [row["loss"] for row in read] == [1 / (step + 1) for step in range(400)]


def test_closed_segments_get_a_copy_read_instead_of_the_json(tmp_path, monkeypatch):
    run = _logged(tmp_path)
    closed = [path for path in segment.list_segments(run.dir) if path.stat().st_size >= 2000]
    assert len(closed) > 2 and _copies(run.dir) == [scalar_copy.copy_path(p) for p in closed]
    expected = _from_json(run.dir, ["loss", "acc"], tmp_path)

    parsed = []
    parse = history._parse
    monkeypatch.setattr(
        history,
        "_parse",
        lambda wanted, *rest: parsed.extend(path for path, _ in wanted) or parse(wanted, *rest),
    )
    read = history.scalar_columns(run.dir, ["loss", "acc"], 0.0)
    assert parsed == [segment.list_segments(run.dir)[-1]]  # the short last one only
    assert _as_text(read, ["loss", "acc"]) == _as_text(expected, ["loss", "acc"])
    frame = (
        waddle.Api(overrides={"dir": str(tmp_path)})
        .run(f"p/{run.id}")
        .history(keys=["acc"], samples=0)
    )
    assert len(frame) == 400 and math.isnan(frame["acc"][0]) and frame["acc"][1] == 1.0


def test_a_key_holding_other_values_is_read_from_the_json(tmp_path):
    with waddle.init(project="p", dir=tmp_path, settings=SMALL) as run:
        for step in range(200):
            run.log({"x": float(step), "flag": step % 2 == 0, "note": None if step else "a"})
            if step % 40 == 39:
                run.flush()
    assert _copies(run.dir)
    assert history.scalar_columns(run.dir, ["flag"], 0.0) is None  # bools: the Python reader's
    assert history.scalar_columns(run.dir, ["note"], 0.0) is None
    rows = (
        waddle.Api(overrides={"dir": str(tmp_path)})
        .run(f"p/{run.id}")
        .history(keys=["flag", "x"], pandas=False, samples=0)
    )
    assert rows[0]["flag"] is True and rows[1]["flag"] is False and rows[199]["x"] == 199.0
    assert list(history.scalar_columns(run.dir, ["x"], 0.0)["x"]) == [float(s) for s in range(200)]


def _spoilt(run_dir, how):
    """Damage a segment's copy, or the segment under it, as ``how`` says; that segment."""
    first, second = segment.list_segments(run_dir)[1:3]
    copy = scalar_copy.copy_path(first)
    data = bytearray(copy.read_bytes())
    if how == "torn":
        copy.write_bytes(data[: len(data) - 5])
    elif how == "corrupt":
        data[-3] ^= 0x40  # a bit of the last column's values
        copy.write_bytes(data)
    elif how == "garbage":
        copy.write_bytes(b"\x00\xffnot a header\n" + data)
    elif how == "other-segment":
        shutil.copyfile(scalar_copy.copy_path(second), copy)
    elif how == "grown":  # a line more (its last step again), and a torn one
        step = orjson.loads(first.read_bytes().splitlines()[-1])["step"]
        with open(first, "ab") as file:
            file.write(b'{"v":1,"seq":99999,"t":1.0,"type":"log","step":%d,' % step)
            file.write(b'"data":{"loss":7,"acc":8}}\n{"v":1,"seq":100000,"t":1.0,"type":"log"')
    elif how == "rewritten":  # the same size, other bytes at its start
        text = first.read_bytes()
        first.write_bytes(text.replace(b'"t":1', b'"t":2', 1))
    return first


@pytest.mark.parametrize(
    "how", ["torn", "corrupt", "garbage", "other-segment", "grown", "rewritten"]
)
def test_a_stale_or_damaged_copy_is_never_taken(tmp_path, how):
    pytest.importorskip("duckdb")
    run = _logged(tmp_path)
    damaged = _spoilt(run.dir, how)
    assert scalar_copy.read(damaged, "acc") is None  # the key of the last columns
    rows = _rows_of(run.dir, ["loss", "acc"])
    read = history.scalar_columns(run.dir, ["loss", "acc"], 0.0)
    if read is not None:  # else the Python reader answers (DuckDB stops at a torn line)
        assert _as_text(read, ["loss", "acc"]) == _as_text(
            _from_json(run.dir, ["loss", "acc"], tmp_path), ["loss", "acc"]
        )
    api_rows = (
        waddle.Api(overrides={"dir": str(tmp_path)})
        .run(f"p/{run.id}")
        .history(keys=["loss", "acc"], samples=0, pandas=False)
    )
    assert [repr(row["_step"]) for row in api_rows] == rows["_step"]
    for key in ("loss", "acc"):
        assert [repr(float(row[key])) for row in api_rows] == rows[key]


def test_a_resumed_run_drops_the_copy_of_the_segment_it_continues(tmp_path):
    pytest.importorskip("duckdb")
    settings = waddle.Settings(console=False, system_metrics_interval=0, segment_bytes=10**6)
    with waddle.init(project="p", dir=tmp_path, settings=settings, id="r") as run:
        run.log({"loss": 1.0})
    # Force a copy of the short segment, as a larger one would get.
    collector = scalar_copy.Collector(0)
    events = [event for event in segment.read_events(run.dir) if event["type"] == "log"]
    for event in events:
        collector.add(event["seq"], event["t"], event["step"], event["data"])
    only = segment.list_segments(run.dir)[0]
    collector.write(only, 10**6, only.stat().st_size)
    assert scalar_copy.read(only, "loss")["v"].tolist() == [1.0]
    with waddle.init(project="p", dir=tmp_path, settings=settings, id="r", resume="allow") as run:
        run.log({"loss": 2.0})
    assert not scalar_copy.copy_path(only).exists()
    assert history.scalar_columns(run.dir, ["loss"], 0.0)["loss"].tolist() == [1.0, 2.0]


KILLED_MID_COPY = """
    import os, signal, waddle
    from waddle import scalar_copy

    renames = []
    def replace(*args):  # the second copy (of the steps' segment) dies before its rename
        renames.append(args)
        if len(renames) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        os.rename(*args)

    scalar_copy.os.replace = replace
    run = waddle.init(project="p", id="k", settings=waddle.Settings(segment_bytes=2000))
    for step in range(300):
        run.log({"loss": step / 3})
        if step in (150, 299):
            run.flush()
"""


def test_a_writer_killed_mid_copy_leaves_a_readable_run_and_the_right_answer(tmp_path):
    pytest.importorskip("duckdb")
    child = start_training(KILLED_MID_COPY, tmp_path)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    run_dir = tmp_path / "p" / "k"
    assert list((run_dir / scalar_copy.COPY_DIR).glob("*.tmp"))  # it died mid-copy
    steps = segment.list_segments(run_dir)[1]
    assert not scalar_copy.copy_path(steps).exists()
    written = [row["loss"] for row in history.scan(run_dir, 0.0)]  # what the JSON holds
    assert written[:151] == [step / 3 for step in range(151)]  # at least what was flushed
    assert history.scalar_columns(run_dir, ["loss"], 0.0)["loss"].tolist() == written
    frame = (
        waddle.Api(overrides={"dir": str(tmp_path)})
        .run("p/k")
        .history(keys=["loss"], samples=0, pandas=False)
    )
    assert [row["loss"] for row in frame] == written
    with waddle.init(project="p", dir=tmp_path, settings=SMALL, id="k", resume="allow") as run:
        run.log({"loss": 1.0})
    assert not list((run_dir / scalar_copy.COPY_DIR).glob("*.tmp"))  # the next writer's cleanup


def test_a_collector_is_bounded_in_memory(monkeypatch, tmp_path):
    """Past its bound the writer gives up the copy of the segment being written; the next
    segments get theirs again."""
    monkeypatch.setattr(scalar_copy, "MAX_BYTES", 3000)
    run = _logged(tmp_path, steps=300)
    assert 0 < len(_copies(run.dir)) < len(segment.list_segments(run.dir))
    read = history.scalar_columns(run.dir, ["loss"], 0.0)
    assert read["loss"].tolist() == [1 / (step + 1) for step in range(300)]
    assert os.path.getsize(_copies(run.dir)[0]) > 0


RANKED = """
    import os, waddle
    rank = int(os.environ["RANK"])
    with waddle.init(project="ddp", id="job", settings=waddle.Settings(segment_bytes=2000)) as run:
        for step in range(200):
            run.log({"loss": 10.0 * rank + step})
            if step % 50 == 49:
                run.flush()
"""


def test_a_ranks_stream_has_its_own_copies(tmp_path):
    children = [start_training(RANKED, tmp_path, RANK=str(rank), WORLD_SIZE="2") for rank in (0, 1)]
    for child in children:
        child.communicate(timeout=60)
        assert child.returncode == 0
    stream = tmp_path / "ddp" / "job" / "ranks" / "1"
    assert _copies(stream) and scalar_copy.read(segment.list_segments(stream)[1], "loss")
    run = waddle.Api(overrides={"dir": str(tmp_path)}).run("ddp/job")
    for rank in (0, 1):
        rows = run.history(keys=["loss"], samples=0, pandas=False, rank=rank)
        assert [row["loss"] for row in rows] == [10.0 * rank + step for step in range(200)]
