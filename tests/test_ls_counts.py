"""`waddle ls` shows each run's rejected lines and gaps, counted by the rules every reader
applies (the same counts as the server's index), reading each byte of the logs once."""

from __future__ import annotations

import os

import orjson
from waddle.server.indexer import Indexer
from waddle.server.store import Store

from tests.test_cli import waddle


def _line(seq, kind="log", **fields):
    event = {"v": 1, "seq": seq, "t": 1.0e9 + seq, "type": kind, **fields}
    return orjson.dumps(event) + b"\n"


def _run(root, run_id, *lines):
    run_dir = root / "p" / run_id
    run_dir.mkdir(parents=True)
    path = run_dir / "events-000000000000.jsonl"
    path.write_bytes(_line(0, "run_start", name=run_id) + b"".join(lines))
    return path


def _ls(root) -> dict[str, dict[str, str]]:
    done = waddle("ls", str(root))
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    names = header.split()
    return {row.split()[1]: dict(zip(names, row.split(), strict=False)) for row in rows}


def _counts(root) -> dict[str, tuple[str, str]]:
    return {run: (row["REJECTED"], row["GAPS"]) for run, row in _ls(root).items()}


def test_ls_shows_rejected_lines_and_gaps_as_the_server_counts_them(tmp_path):
    _run(tmp_path, "clean", _line(1, step=0, data={"x": 1.0}))
    _run(
        tmp_path,
        "bad",
        _line(1, step=0, data={"x": 1.0}),
        b"{torn by a crash\n",
        _line(5, step=1, data={"x": 5.0}),  # seqs 2 to 4 are missing
        _line(3, step=2, data={"x": 3.0}),  # too late: out of order
        _line(5, step=2, data={"x": 5.0}),  # a duplicate
        _line(6, step=2, t=1e308, data={"x": 6.0}),  # out of bounds
        _line(7, step=2, data={"x": 7.0}),
    )
    assert _counts(tmp_path) == {"clean": ("0", "0"), "bad": ("4", "4")}  # gaps: 2-4 and 6
    store = Store(tmp_path / "index.duckdb")
    Indexer(store, tmp_path).catch_up()
    indexed = store.query("SELECT run_id, rejected, gaps FROM runs")
    assert {run: (str(rejected), str(gaps)) for run, rejected, gaps in indexed} == {
        "clean": ("0", "0"),
        "bad": ("4", "4"),
    }


def test_ls_counts_each_byte_once_and_follows_what_is_appended(tmp_path):
    path = _run(tmp_path, "r", _line(1, step=0, data={"x": 1.0}), b"not json\n")
    assert _counts(tmp_path) == {"r": ("1", "0")}
    assert (tmp_path / ".waddle" / "ls-cache.json").exists()
    # The counted bytes are not read again: garbage of the same size and time goes unseen.
    info = path.stat()
    path.write_bytes(b"x\n" * (info.st_size // 2) + b"\n" * (info.st_size % 2))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert _counts(tmp_path) == {"r": ("1", "0")}
    # What is appended is counted, from where the count stopped.
    with path.open("ab") as file:
        file.write(_line(2, step=1, data={"x": 2.0}) + _line(9, step=2, data={"x": 9.0}))
    assert _counts(tmp_path) == {"r": ("1", "6")}
    # A segment rewritten in place is counted again from its start.
    path.write_bytes(_line(0, "run_start", name="r") + _line(1, step=0, data={"x": 1.0}))
    assert _counts(tmp_path) == {"r": ("0", "0")}


def test_ls_continues_the_seq_across_segments(tmp_path):
    first = _run(tmp_path, "r", _line(1, step=0, data={"x": 1.0}))
    second = first.with_name("events-000000000002.jsonl")
    second.write_bytes(_line(2, step=1, data={"x": 2.0}) + _line(4, step=2, data={"x": 4.0}))
    assert _counts(tmp_path) == {"r": ("0", "1")}
    first.write_bytes(first.read_bytes() + _line(2, step=1, data={"x": 2.0}))  # seq 2 twice
    assert _counts(tmp_path) == {"r": ("1", "1")}


def test_ls_recounts_when_its_cache_is_damaged(tmp_path):
    _run(tmp_path, "r", _line(1, step=0, data={"x": 1.0}), b"not json\n")
    assert _counts(tmp_path) == {"r": ("1", "0")}
    cache = tmp_path / ".waddle" / "ls-cache.json"
    entries = orjson.loads(cache.read_bytes())["segments"]
    for entry in entries.values():
        entry["offset"] = "far"
    cache.write_bytes(orjson.dumps({"version": 1, "segments": entries}))
    assert _counts(tmp_path) == {"r": ("1", "0")}
    cache.write_bytes(b"{torn")
    assert _counts(tmp_path) == {"r": ("1", "0")}
