"""The index file: created whole or not at all, always rebuildable by `waddle reindex`, and a
server that cannot use it says so in one line with the fix."""

from __future__ import annotations

import os
import subprocess
import textwrap

import duckdb
import orjson
import pytest
from waddle.server.store import Store

from tests.conftest import PYTHON, child_env
from tests.test_cli import waddle

# Creates the index, with a kill -9 of itself at the line that writes the schema version: what a
# crash (power loss, OOM killer) between the tables and their version row leaves behind.
KILLED_WHILE_CREATING = textwrap.dedent(
    """
    import inspect, os, signal, sys
    from waddle.server import store

    source = inspect.getsourcelines(store.Store)
    line = next(start + i for i, text in enumerate(source[0], 0)
                for start in [source[1]] if "INSERT INTO meta" in text)

    def trace(frame, event, arg):
        if frame.f_code.co_filename == store.__file__:
            if event == "line" and frame.f_lineno == line:
                os.kill(os.getpid(), signal.SIGKILL)
            return trace
        return None

    sys.settrace(trace)
    store.Store(sys.argv[1])
    """
)


def _logs(tmp_path, index_maker=None):
    """A log folder holding one run, and its index made by ``index_maker(path)`` if given."""
    run_dir = tmp_path / "logs" / "p" / "r"
    run_dir.mkdir(parents=True)
    line = {"v": 1, "seq": 0, "t": 1.0e9, "type": "run_start", "name": "r"}
    (run_dir / "events-000000000000.jsonl").write_bytes(orjson.dumps(line) + b"\n")
    index = tmp_path / "logs" / ".waddle" / "index.duckdb"
    index.parent.mkdir()
    if index_maker is not None:
        index_maker(index)
    return tmp_path / "logs", index


def test_a_kill_while_the_index_is_created_leaves_nothing_half_made(tmp_path):
    index = tmp_path / "index.duckdb"
    killed = subprocess.run(
        [PYTHON, "-c", KILLED_WHILE_CREATING, str(index)], env=child_env(), timeout=120
    )
    assert killed.returncode == -9
    Store(index).close()  # it was refused: "made by another waddle version"


def _unreadable(index):
    index.write_bytes(b"this is not a DuckDB file\n" * 100)


def _foreign(index):
    with duckdb.connect(str(index)) as con:
        con.execute("CREATE TABLE notes (text VARCHAR)")


def _half_made(index):
    with duckdb.connect(str(index)) as con:
        con.execute("CREATE TABLE meta (key VARCHAR, value VARCHAR)")


def _old(index):
    with duckdb.connect(str(index)) as con:
        con.execute("CREATE TABLE meta (key VARCHAR, value VARCHAR)")
        con.execute("INSERT INTO meta VALUES ('schema', '1')")


BROKEN = {"unreadable": _unreadable, "foreign": _foreign, "half made": _half_made, "old": _old}


@pytest.mark.parametrize("case", list(BROKEN))
def test_reindex_always_rebuilds_and_says_what_it_moved_aside(tmp_path, case):
    logs, index = _logs(tmp_path, BROKEN[case])
    before = index.read_bytes()
    done = waddle("reindex", str(logs))
    assert done.returncode == 0, done.stderr
    assert "reindexed 1 runs" in done.stdout
    Store(index).close()  # a working index
    aside = [path for path in index.parent.iterdir() if ".broken-" in path.name]
    moved = [line for line in done.stderr.splitlines() if "moved" in line]
    if case == "old":  # a waddle index of another version: simply replaced, as always
        assert aside == [] and moved == []
    else:  # kept for a look, and said in one line
        assert [path.read_bytes() for path in aside] == [before]
        (said,) = moved
        assert str(aside[0]) in said


@pytest.mark.parametrize("case", list(BROKEN))
def test_serve_on_an_index_it_cannot_use_says_so_in_one_line_with_the_fix(tmp_path, case):
    logs, index = _logs(tmp_path, BROKEN[case])
    served = waddle("serve", str(logs), "--port", "0")
    assert served.returncode == 1
    (said,) = served.stderr.splitlines()
    assert said.startswith("waddle serve: ") and str(index) in said
    assert f"waddle reindex {logs}" in said
    assert "Traceback" not in served.stderr and served.stdout == ""


def test_reindex_leaves_an_index_in_use_alone(tmp_path):
    logs, index = _logs(tmp_path)
    holder = subprocess.Popen(
        [PYTHON, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); input()", str(index)],
        stdin=subprocess.PIPE,
        env=child_env(),
    )
    try:
        while not index.exists():
            os.sched_yield()
        done = waddle("reindex", str(logs))
    finally:
        holder.communicate(b"\n", timeout=60)
    assert done.returncode == 1
    assert "in use" in done.stderr and str(index) in done.stderr
    assert not [path for path in index.parent.iterdir() if ".broken-" in path.name]
