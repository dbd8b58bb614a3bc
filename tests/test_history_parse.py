"""DuckDB's reading of segments for ``history(keys=...)`` (waddle/history.py): whether it reads
``data`` typed (a struct of the asked keys, for segments without a null) or as JSON, from
the segments or from the reader's cache, it gives the Python reader's rows, or hands a key
that holds anything but numbers to the Python reader."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import waddle
from waddle import history, segment

TINY = waddle.Settings(console=False, system_metrics_interval=0, segment_bytes=400)
# Names a struct field and a SQL literal must both survive; two differ only in case.
KEYS = ("loss", "Loss", "it's", 'say "hi"', "back\\slash", "train/acc.top-1", "ünï 名")


def _python_rows(run_dir, keys):
    """The Python reader's rows holding any of ``keys``, as the columns would give them."""
    rows = [row for row in history.scan(run_dir, 0.0) if any(key in row for key in keys)]
    return {
        "_step": [repr(row["_step"]) for row in rows],
        **{key: [repr(float(row.get(key, math.nan))) for row in rows] for key in keys},
    }


def _as_rows(columns, keys):
    return {
        "_step": [repr(step) for step in columns["_step"].tolist()],
        **{key: [repr(value) for value in columns[key].tolist()] for key in keys},
    }


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**53), max_value=2**53),
)
payloads = st.dictionaries(st.sampled_from(KEYS), numbers, min_size=1, max_size=4)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    calls=st.lists(st.tuples(payloads, st.booleans()), min_size=1, max_size=60),
    asked=st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True),
    a_none=st.sampled_from([None, "early", "late"]),
)
def test_duckdbs_reading_gives_the_python_readers_rows(tmp_path_factory, calls, asked, a_none):
    """Odd key names, keys alike but for case, NaN, ±Inf, ints, commit=False, segments with a
    logged None (read as JSON) and without (read typed): the rows are the Python reader's, a
    second read (from the cache) gives them again, and a key with a None is the Python
    reader's to read."""
    pytest.importorskip("duckdb")
    tmp_path = tmp_path_factory.mktemp("run")
    with waddle.init(project="p", dir=tmp_path, settings=TINY) as run:
        for index, (data, commit) in enumerate(calls):
            if (a_none == "early" and index == 0) or (a_none == "late" and index == len(calls) - 1):
                data = {**data, asked[0]: None}
            run.log(data, commit=commit)
            if index % 7 == 6:
                run.flush()  # segments are cut between the writer's batches
    cache = tmp_path / "cache"
    read = history.scalar_columns(run.dir, asked, 0.0, cache)
    if a_none is not None:
        assert read is None  # a None is a value the Python reader keeps
        return
    assert _as_rows(read, asked) == _python_rows(run.dir, asked)
    again = history.scalar_columns(run.dir, asked, 0.0, cache)
    assert _as_rows(again, asked) == _as_rows(read, asked)


def test_a_segment_is_read_typed_only_when_it_holds_no_null(tmp_path, monkeypatch):
    """The run_start's nulls (notes, group) do not count; a logged None, or a string "null"
    (the bytes decide), sends that segment, and that one only, to the JSON form."""
    pytest.importorskip("duckdb")
    with waddle.init(project="p", dir=tmp_path, settings=TINY) as run:
        for step in range(30):
            run.log({"loss": step / 2, "note": "null" if step == 25 else "text"})
            run.flush()  # segments are cut between the writer's batches
    segments = segment.list_segments(run.dir)
    assert len(segments) > 3
    typed_by_segment = {}
    read_json = history._read_json

    def reading(con, paths, keys, typed):
        typed_by_segment.update(dict.fromkeys(paths, typed))  # the last read of each counts
        return read_json(con, paths, keys, typed)

    monkeypatch.setattr(history, "_read_json", reading)
    read = history.scalar_columns(run.dir, ["loss"], 0.0)
    assert read["loss"].tolist() == [step / 2 for step in range(30)]
    assert b'"notes":null' in segments[0].read_bytes()  # the run_start's
    with_null = [path for path in segments if b'"note":"null"' in path.read_bytes()]
    assert len(with_null) == 1
    assert typed_by_segment == {path: path not in with_null for path in segments}


def test_keys_alike_but_for_case_are_read_apart(tmp_path):
    """DuckDB names struct fields without regard to case: such keys asked together are read
    as JSON, each its own, not handed to the slow Python reader."""
    pytest.importorskip("duckdb")
    with waddle.init(project="p", dir=tmp_path, settings=TINY) as run:
        run.log({"loss": 1.0, "Loss": 2.0})
        run.log({"Loss": 3.0})
    read = history.scalar_columns(run.dir, ["loss", "Loss"], 0.0)
    assert _as_rows(read, ["loss", "Loss"]) == _python_rows(run.dir, ["loss", "Loss"])


@pytest.mark.parametrize(
    "torn",
    [b'{"v":1,"seq":99,"t":1.0,"type":"log","step":9,"data":{"loss":', '{"note":"é'.encode()[:-1]],
)
def test_a_line_cut_short_is_left_out_as_the_python_reader_leaves_it(tmp_path, torn):
    """A writer killed in the middle of a line (or one at work) leaves a last line that is not
    whole, here cut inside a number or inside a character: DuckDB reads the whole lines before
    it (the fast path, not the Python reader), and the segment itself is left as it is."""
    pytest.importorskip("duckdb")
    with waddle.init(project="p", dir=tmp_path, settings=TINY) as run:
        for step in range(20):
            run.log({"loss": step / 4})
    last = segment.list_segments(run.dir)[-1]
    with open(last, "ab") as file:
        file.write(torn)
    size = last.stat().st_size
    read = history.scalar_columns(run.dir, ["loss"], 0.0)
    assert read is not None and read["loss"].tolist() == [step / 4 for step in range(20)]
    assert _as_rows(read, ["loss"]) == _python_rows(run.dir, ["loss"])
    assert last.stat().st_size == size


def test_a_read_right_after_a_parse_takes_the_cache_it_left(tmp_path, monkeypatch):
    """What a parse keeps is written beside the answer; a read that comes before it is done
    waits for it rather than parse the same segments again."""
    pytest.importorskip("duckdb")
    with waddle.init(project="p", dir=tmp_path, settings=TINY) as run:
        for step in range(40):
            run.log({"loss": step / 8})
            if step % 10 == 9:
                run.flush()
    reads = []
    read_json = history._read_json
    monkeypatch.setattr(
        history, "_read_json", lambda *args, **kw: reads.append(args[1]) or read_json(*args, **kw)
    )
    cache = tmp_path / "cache"
    first = history.scalar_columns(run.dir, ["loss"], 0.0, cache)
    again = history.scalar_columns(run.dir, ["loss"], 0.0, cache)
    assert len(reads) == 1 and len(reads[0]) == len(segment.list_segments(run.dir)) > 1
    assert _as_rows(again, ["loss"]) == _as_rows(first, ["loss"])
