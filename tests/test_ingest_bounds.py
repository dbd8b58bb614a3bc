"""Bounds at decode: every integer and float an event brings is checked before it reaches the
index, so a number the index cannot hold is a reject with a reason, never a halt."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from waddle.server import tailer
from waddle.server.indexer import Indexer
from waddle.server.ingester import Batch
from waddle.server.run_state import RunState
from waddle.server.store import Store

from waddle import event as event_format

BIG = 2**63  # the first integer beyond int64


def _raw(seq, kind="log", t=1.0e9, **fields) -> bytes:
    # json, not orjson: it writes integers of any size, as a hand-made or foreign line may.
    event = {"v": 1, "seq": seq, "t": t, "type": kind, **fields}
    return json.dumps(event).encode() + b"\n"


def _index(tmp_path, *lines):
    """Index a run holding a run_start, x=1 at seq 1, ``lines``, then x=2 at the next seq."""
    run_dir = tmp_path / "logs" / "p" / "r"
    run_dir.mkdir(parents=True)
    after = 2 + len(lines)
    body = _raw(0, "run_start", name="r") + _raw(1, step=0, data={"x": 1.0})
    body += b"".join(lines) + _raw(after, step=1, data={"x": 2.0})
    (run_dir / "events-000000000000.jsonl").write_bytes(body)
    store = Store(tmp_path / "index.duckdb")
    Indexer(store, tmp_path / "logs").catch_up()
    return store


def _x(store, key="x"):
    rows = store.query(
        "SELECT value FROM (SELECT * FROM scalars UNION ALL SELECT * FROM scalars_live)"
        " WHERE key = ? ORDER BY seq",
        [key],
    )
    return [value for (value,) in rows]


def _reasons(store):
    return " | ".join(reason for (reason,) in store.query("SELECT reason FROM rejects"))


LINES = {
    "seq at the int64 limit": (_raw(2**63 - 1, step=1, data={"x": 9.0}), "seq"),
    "seq beyond int64": (_raw(BIG, step=1, data={"x": 9.0}), "seq"),
    "seq made NaN by nf": (
        b'{"v":1,"seq":2,"t":1e9,"type":"log","step":1,"data":{"x":9.0},"nf":{"seq":"nan"}}\n',
        "seq",
    ),
    "t far in the future": (_raw(2, t=1e308, step=1, data={"x": 9.0}), "wall time t"),
    "t before the epoch": (_raw(2, t=-5.0, step=1, data={"x": 9.0}), "wall time t"),
    "t made infinite by nf": (
        b'{"v":1,"seq":2,"t":1e9,"type":"log","step":1,"data":{"x":9.0},"nf":{"t":"inf"}}\n',
        "wall time t",
    ),
    "step at the int64 limit": (_raw(2, step=2**63 - 1, data={"x": 9.0}), "step"),
    "step beyond int64": (_raw(2, step=BIG, data={"x": 9.0}), "step"),
}


@pytest.mark.parametrize("case", list(LINES))
def test_a_line_out_of_bounds_is_rejected_and_ingest_goes_on(tmp_path, case):
    line, field = LINES[case]
    store = _index(tmp_path, line)
    assert _x(store) == [1.0, 2.0]
    assert field in _reasons(store)


FIELDS = {
    "exit_code beyond int64": (
        _raw(2, "finish", status="finished", exit_code=BIG, lost_events=0),
        "exit_code",
    ),
    "lost_events beyond int64": (
        _raw(2, "finish", status="finished", exit_code=0, lost_events=2**64 - 1),
        "lost_events",
    ),
    "dropped steps beyond int64": (
        _raw(2, "finish", status="finished", exit_code=0, dropped={"steps": BIG, "values": 0}),
        "dropped",
    ),
    "a saved file's step beyond int64": (
        _raw(2, "file", name="a.pt", path="files/ab.pt", sha256="ab", bytes=3, step=BIG),
        "step",
    ),
}


@pytest.mark.parametrize("case", list(FIELDS))
def test_a_field_out_of_bounds_is_rejected_and_the_event_kept(tmp_path, case):
    line, field = FIELDS[case]
    store = _index(tmp_path, line)
    assert _x(store) == [1.0, 2.0]
    assert field in _reasons(store)
    ((events,),) = store.query("SELECT events FROM runs")
    assert events == 4  # run_start, both logs and the event with the bad field


def test_integers_beyond_doubles_precision_are_kept_as_the_nearest_double(tmp_path):
    # A value column is DOUBLE: an int too big to be exact there is rounded as every JSON
    # reader (and JavaScript) rounds it, never refused, whatever it shares a batch with.
    store = _index(
        tmp_path,
        _raw(2, "system", data={"a": 1.5, "b": 2**60 + 1, "c": 2**64 - 1}),
        _raw(3, step=1, data={"x": 3.0, "y": BIG + 1}),
    )
    assert _x(store) == [1.0, 3.0, 2.0]
    system = dict(store.query("SELECT key, value FROM system"))
    assert system == {"a": 1.5, "b": float(2**60), "c": float(2**64)}
    assert _x(store, "y") == [float(BIG)]
    assert _reasons(store) == ""


# --- the fast path and the general path take the same lines the same way ---

EDGE_INTS = [0, 1, 2**53 + 1, 2**63 - 2, 2**63 - 1, 2**63, 2**64 - 1, -1, -(2**63)]
ODD = st.sampled_from([None, True, "3", 1.5, [], {}])
INTS = st.one_of(st.integers(0, 50), st.sampled_from(EDGE_INTS))
TIMES = st.one_of(
    st.floats(0, 1e10, allow_nan=False),
    st.sampled_from([0, -0.0, 1e10, 1e10 + 1, 1e308, -1.0, 2**63]),
)
VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    INTS,
    st.booleans(),
    st.text(max_size=3),
    st.none(),
    st.just([1, 2]),
    st.just({"_type": "histogram", "bins": [0, 1], "counts": [2]}),
)
KEYS = st.sampled_from(["x", "y", "a/b"])
MARKS = st.sampled_from(
    [None, {"data": {"x": "nan"}}, {"data": {"y": "-inf"}}, {"seq": "nan"}, {"t": "inf"},
     {"step": "inf"}, {"data": {"zz": "nan"}}, "nan"]
)  # fmt: skip


@st.composite
def lines(draw) -> list[bytes]:
    out, seq = [], 0
    for _ in range(draw(st.integers(1, 25))):
        shape = draw(st.sampled_from(["log"] * 6 + ["other", "garbage", "odd"]))
        if shape == "garbage":
            out.append(draw(st.sampled_from([b"{not json", b"", b"  ", b"[]", b'"x"', b"\xff"])))
            continue
        seq = draw(st.sampled_from([seq + 1, seq + 1, seq + 1, seq, seq + 3, max(seq - 2, 0)]))
        event = {
            "v": draw(st.sampled_from([1] * 8 + [2, None])),
            "seq": seq if draw(st.integers(0, 9)) else draw(st.one_of(INTS, ODD)),
            "t": draw(TIMES) if draw(st.integers(0, 9)) else draw(ODD),
            "type": "log",
            "step": draw(st.one_of(INTS, ODD) if shape == "odd" else st.integers(0, 20)),
            "data": draw(st.dictionaries(KEYS, VALUES, max_size=3)),
        }
        if shape == "other":
            event["type"] = draw(st.sampled_from(["system", "finish", "heartbeat", "teleport"]))
            event.update(status="finished", exit_code=draw(INTS), lost_events=draw(INTS))
        if shape == "odd":
            event["type"] = draw(st.sampled_from(["log", [], None]))
            event.pop(draw(st.sampled_from(["v", "seq", "t", "step", "data", "none"])), None)
        marks = draw(MARKS)
        if marks is not None:
            event["nf"] = marks
        out.append(json.dumps(event).encode())
    return out


def _ingest(lines_: list[bytes], fast: bool) -> tuple:
    state, batch = RunState(1, "p", "r"), Batch()
    if fast:
        tailer._take_block(state, batch, "f", b"".join(line + b"\n" for line in lines_), 0)
    else:
        offset = 0
        for line in lines_:
            if line.strip():
                batch.take(state, line, "f", offset)
            offset += len(line) + 1
    tables = [table.to_pylist() for table in batch.scalar_tables()]
    rows = {name: rows for name, rows in batch.rows.items() if name != "rejects"}
    # A reject of a line that is no event is stamped with the time it was read.
    rejects = [row[:4] for row in batch.rows["rejects"]]
    return repr((tables, rows, rejects, vars(state), batch.events, batch.points))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines())
def test_the_fast_path_takes_every_line_as_the_general_path_does(lines_):
    assert _ingest(lines_, fast=True) == _ingest(lines_, fast=False)


def test_a_logged_null_is_no_value_and_no_reject(tmp_path):
    # The format lets log() write W&B's None as null: the key has no value at that step.
    store = _index(tmp_path, _raw(2, step=1, data={"x": None, "y": 1.0}))
    assert _x(store) == [1.0, 2.0] and _x(store, "y") == [1.0]
    assert _reasons(store) == ""


def _relayed(lines_: list[bytes], fast: bool) -> tuple:
    """What the relay sends of ``lines_`` (server/relay.py), by its fast path or not."""
    from waddle.server.relay_batch import Outgoing
    from waddle.server.relay_track import Track

    track, outgoing = Track("p", "r", None), Outgoing()
    track.acked = -1
    if fast:
        tailer._take_block(track, outgoing, "f", b"".join(line + b"\n" for line in lines_), 0)
    else:
        for line in lines_:
            if line.strip():
                outgoing.take(track, line, "f", 0)
    chunk = outgoing.chunks.get(track)
    sent = None if chunk is None else (bytes(chunk.lines), chunk.seqs, chunk.after)
    return sent, track.skipped, track.last, track.next_seq, track.gaps, track.missing


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines())
def test_peek_reads_lines_as_decode_does_and_the_relay_sends_the_same_lines_either_way(lines_):
    for line in lines_:
        head = event_format.peek(line)
        if head is not None:
            seq, kind, event = head
            assert event_format.decode(line) == event and (seq, kind) == (
                event["seq"],
                event["type"],
            )
    assert _relayed(lines_, fast=True) == _relayed(lines_, fast=False)
