"""The on-disk format: the event codec, segment reading, torn and malformed lines, rotation, resume."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import waddle
from tests.conftest import PYTHON, QUIET, child_env, events_of
from waddle import event, segment

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def same(a, b) -> bool:
    """Equality where NaN equals NaN, recursively."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(st.text(min_size=1, max_size=10), json_values, max_size=6))
def test_any_json_value_with_nan_and_infinities_round_trips(data):
    original = {"v": 1, "seq": 3, "t": 1.5, "type": "config", "data": data}
    line = event.encode(original)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert same(event.decode(line), original)


def test_numpy_float32_nan_in_an_event_is_restored():
    line = event.encode(
        {"v": 1, "seq": 0, "t": 0.0, "type": "log", "step": 0, "data": {"x": np.float32("-inf")}}
    )
    assert event.decode(line)["data"]["x"] == -math.inf


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"seq":0,"t":1,"type":"log"}', "format version"),
        (b'{"v":99,"seq":0,"t":1,"type":"log"}', "newer than this reader"),
        (b'{"v":1,"seq":-1,"t":1,"type":"log"}', "invalid seq"),
        (b'{"v":1,"seq":0,"t":1,"type":"mystery"}', "unknown event type"),
        (b'{"v":1,"seq":0,"t":"x","type":"log"}', "wall time"),
        (
            b'{"v":1,"seq":0,"t":1,"type":"log","data":{},"nf":{"data":{"zz":{"q":"nan"}}}}',
            "nf names",
        ),
        (b"\xff\xfe garbage \x00", "not valid JSON"),
    ],
)
def test_malformed_lines_are_rejected_with_the_reason(line, reason):
    with pytest.raises(event.MalformedEvent, match=reason):
        event.decode(line)


def write_segment(run_dir, lines: bytes):
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / segment.segment_name(0)
    path.write_bytes(lines)
    return path


def good(seq: int) -> bytes:
    return event.encode({"v": 1, "seq": seq, "t": 1.0, "type": "heartbeat"})


def test_reader_reports_malformed_lines_with_file_and_offset_and_goes_on(tmp_path):
    path = write_segment(tmp_path / "run", good(0) + b"garbage\n" + good(1))
    rejects = []
    events = events_of(tmp_path / "run", rejects)
    assert [e["seq"] for e in events] == [0, 1]
    assert rejects == [(path, len(good(0)), rejects[0][2])]
    assert "not valid JSON" in rejects[0][2]


def test_a_torn_last_line_is_ignored_until_it_is_completed(tmp_path):
    whole = good(1)
    path = write_segment(tmp_path / "run", good(0) + whole[:10])
    block, offset = segment.read_complete_lines(path, 0)
    assert block == good(0) and offset == len(good(0))
    assert [e["seq"] for e in events_of(tmp_path / "run")] == [0]
    with open(path, "ab") as file:
        file.write(whole[10:])
    block, offset = segment.read_complete_lines(path, offset)
    assert block == whole
    assert [e["seq"] for e in events_of(tmp_path / "run")] == [0, 1]


def test_an_overlong_line_is_skipped_once_complete(tmp_path, monkeypatch):
    monkeypatch.setattr(segment, "MAX_LINE_BYTES", 100)
    path = write_segment(tmp_path / "run", b"x" * 250 + b"\n" + good(0))
    rejects = []
    assert [e["seq"] for e in events_of(tmp_path / "run", rejects)] == [0]
    assert rejects[0][:2] == (path, 0) and "longer than 100 bytes" in rejects[0][2]


def test_a_read_window_smaller_than_a_line_reads_on_to_its_end(tmp_path, monkeypatch):
    # The relay reads 1 MiB at a time; a valid line may be up to MAX_LINE_BYTES long.
    monkeypatch.setattr(segment, "MAX_LINE_BYTES", 1000)
    long = b'{"pad":"' + b"x" * 500 + b'"}\n'
    path = write_segment(tmp_path / "run", long + good(0) + b"y" * 1500 + b"\n" + good(1))
    block, offset = segment.read_complete_lines(path, 0, max_bytes=100)
    assert (block, offset) == (long, len(long))
    block, offset = segment.read_complete_lines(path, offset, max_bytes=100)
    assert block == good(0)
    rejects = []
    block, after = segment.read_complete_lines(
        path, offset, max_bytes=100, on_reject=lambda *reject: rejects.append(reject)
    )
    assert block == b"" and after == offset + 1501 and len(rejects) == 1
    assert segment.read_complete_lines(path, after, max_bytes=100)[0] == good(1)
    torn = write_segment(tmp_path / "torn", b"z" * 300)
    assert segment.read_complete_lines(torn, 0, max_bytes=100) == (b"", 0)


def test_segments_rotate_at_line_boundaries_and_read_back_in_order(tmp_path):
    run = waddle.init(
        project="p",
        dir=tmp_path,
        settings=waddle.Settings(console=False, system_metrics_interval=0, segment_bytes=4000),
    )
    for step in range(2000):
        run.log({"x": step, "y": step * 0.5})
        if step % 100 == 0:
            run.flush()
    run.finish()
    paths = segment.list_segments(run.dir)
    assert len(paths) > 5
    for path in paths:
        first = orjson.loads(path.read_bytes().split(b"\n", 1)[0])
        assert path.name == segment.segment_name(first["seq"])  # named by its first seq
        assert path.read_bytes().endswith(b"\n")
    events = events_of(run.dir)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert [e["step"] for e in events if e["type"] == "log"] == list(range(2000))


def test_resume_continues_seq_and_step(tmp_path):
    first = waddle.init(
        project="p", dir=tmp_path, id="exp-1", settings=QUIET, config={"lr": 1}, name="n1"
    )
    first.log({"x": 1})
    first.log({"x": 2})
    first.finish()
    again = waddle.init(project="p", dir=tmp_path, id="exp-1", resume="must", settings=QUIET)
    assert again.resumed and again.step == 2 and again.name == "n1" and again.config.lr == 1
    again.log({"x": 3})
    again.finish()
    events = events_of(again.dir)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events].count("run_start") == 2
    assert events[-1]["type"] == "finish"
    assert [(e["step"], e["data"]["x"]) for e in events if e["type"] == "log"] == [
        (0, 1),
        (1, 2),
        (2, 3),
    ]


def test_resume_after_a_kill_and_a_torn_tail_ends_the_torn_line_and_keeps_seq_gap_free(tmp_path):
    child = subprocess.Popen(
        [
            PYTHON,
            "-c",
            "import time, waddle\nrun = waddle.init(project='p', id='torn')\n"
            "run.log({'x': 1})\nrun.flush()\nprint('ready', flush=True)\ntime.sleep(60)",
        ],
        env=child_env(
            WADDLE_DIR=str(tmp_path), WADDLE_CONSOLE="0", WADDLE_SYSTEM_METRICS_INTERVAL="0"
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline() == "ready\n"
    child.kill()
    child.wait(timeout=30)
    path = segment.list_segments(tmp_path / "p" / "torn")[-1]
    with open(path, "ab") as file:
        file.write(b'{"v":1,"seq":2,"t":1.0,"ty')  # as if the writer died mid-line
    again = waddle.init(project="p", dir=tmp_path, id="torn", resume="allow", settings=QUIET)
    assert again.step == 1
    again.log({"x": 2})
    again.finish()
    rejects = []
    events = events_of(again.dir, rejects)
    assert len(rejects) == 1 and "not valid JSON" in rejects[0][2]
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert [(e["step"], e["data"]) for e in events if e["type"] == "log"] == [
        (0, {"x": 1}),
        (1, {"x": 2}),
    ]


def test_resume_choices_are_checked(tmp_path):
    run = waddle.init(project="p", dir=tmp_path, id="taken", settings=QUIET)
    run.finish()
    with pytest.raises(ValueError, match=r"already exists.*resume='allow'"):
        waddle.init(project="p", dir=tmp_path, id="taken", settings=QUIET)
    with pytest.raises(ValueError, match="no run 'nothere'"):
        waddle.init(project="p", dir=tmp_path, id="nothere", resume="must", settings=QUIET)
    with pytest.raises(ValueError, match="resume 'sometimes'"):
        waddle.init(project="p", dir=tmp_path, id="x", resume="sometimes", settings=QUIET)
    fresh = waddle.init(project="p", dir=tmp_path, id="fresh", resume="allow", settings=QUIET)
    assert not fresh.resumed
    fresh.finish()


def test_two_processes_cannot_write_one_run(tmp_path):
    run = waddle.init(project="p", dir=tmp_path, id="shared", settings=QUIET)
    run.log({"x": 1})
    run.flush()
    before = b"".join(path.read_bytes() for path in segment.list_segments(run.dir))
    child = subprocess.run(
        [PYTHON, "-c", "import waddle; waddle.init(project='p', id='shared', resume='allow')"],
        env=child_env(WADDLE_DIR=str(tmp_path), WADDLE_CONSOLE="0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 1
    assert f"already open in another process (pid {run._pid}" in child.stderr
    assert b"".join(path.read_bytes() for path in segment.list_segments(run.dir)) == before
    with pytest.raises(waddle.RunLockedError):
        waddle.init(
            project="p",
            dir=tmp_path,
            id="shared",
            resume="allow",
            settings=QUIET,
            reinit="create_new",
        )
    run.finish()
    events = events_of(run.dir)
    assert [e["seq"] for e in events] == list(range(len(events)))


def test_resume_ends_a_torn_line_even_when_it_starts_a_new_segment(tmp_path):
    run_dir = tmp_path / "p" / "big"
    run_dir.mkdir(parents=True)
    full = segment.segment_name(0)
    (run_dir / full).write_bytes(
        event.encode(
            {
                "v": 1,
                "seq": 0,
                "t": 1.0,
                "type": "run_start",
                "name": "n",
                "config": {},
                "context": {},
            }
        )
        + event.encode({"v": 1, "seq": 1, "t": 1.0, "type": "log", "step": 0, "data": {"x": 1}})
        + b'{"v":1,"seq":2,"t'
    )
    settings = waddle.Settings(console=False, system_metrics_interval=0, segment_bytes=10)
    run = waddle.init(project="p", dir=tmp_path, id="big", resume="must", settings=settings)
    run.log({"x": 2})
    run.finish()
    assert (run_dir / full).read_bytes().endswith(b'"t\n')
    assert [path.name for path in segment.list_segments(run_dir)][:2] == [
        full,
        segment.segment_name(2),
    ]
    rejects = []
    events = events_of(run_dir, rejects)
    assert len(rejects) == 1
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert [e["data"]["x"] for e in events if e["type"] == "log"] == [1, 2]


def test_a_segment_name_gives_back_its_first_seq(tmp_path):
    for seq in (0, 183742, 10**12 - 1, 10**13):
        assert segment.first_seq(tmp_path / segment.segment_name(seq)) == seq
    for name in ("events-.jsonl", "events-12a.jsonl", "events-000000000001.json", "x.jsonl"):
        assert segment.first_seq(tmp_path / name) is None
