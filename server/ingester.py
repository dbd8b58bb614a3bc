"""Turning events into rows: one transaction's rows, and the run states they update.

A :class:`Batch` collects the rows that decoded events of many runs produce, plus the segment
offsets they were read up to; the indexer writes all of it in one transaction. It promises:

- each event is applied once, in seq order (waddle/sequence.py): seqs skipped are a gap,
  counted and reported; an event whose ``seq`` is below the run's next seq is rejected, as a
  duplicate (a replay of bytes already indexed) or as out of order (inside a gap), never
  indexed twice or out of order;
- a malformed event, or a value of a shape the index does not know, becomes a reject row
  (file, byte offset, kind, reason); the rest of the event and of the batch is kept;
- each run's state (server/run_state.py: status, counters, per-key summary) is updated as its
  events are added, so listing runs never scans their points; a key whose steps went back
  (keyed steps, docs/format.md) is put in ``recount``, counted from the index at commit;
- scalar rows leave grouped per (run, key): a large group is already clustered per series and
  can go straight into ``scalars``; small ones go to ``scalars_live`` for later compaction.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from waddle.server import wire
from waddle.server.blocks import block_table
from waddle.server.run_state import RunState
from waddle.server.schema import SCALARS, TABLES

from waddle import event as event_format
from waddle import names, segment, sequence

# A (run, key) group with at least this many points in one batch is clustered enough to go
# straight into `scalars`; smaller groups are interleaved and go to `scalars_live`.
CLUSTERED_GROUP = 1000

NUMERIC = frozenset({float, int, bool})

RICH_TABLES = {"histogram": "histograms", "table": "tables"}
# Every table holding values of log events that are no numbers: strings in `text`, rich
# values and lists in `media` or their own table (RICH_TABLES).
VALUE_TABLES = ("text", "media", *RICH_TABLES.values())
# The kind of a plain list value in `media` and `metrics` (a `_type` never takes this name).
ARRAY = "array"

# What a reject row can be (its `kind`; docs/api.md lists them for clients).
REJECT_KINDS = (
    "line",  # a line that is no event: not JSON, fields missing or out of bounds, too long
    "gap",  # seqs missing before this line (its reason names them); the line itself is taken
    "out_of_order",  # a seq inside a gap reported before: too late to take in order
    "duplicate",  # a seq already indexed
    "value",  # part of an event left out (a field or value of a shape the index cannot hold)
    "truncated",  # a segment shrank below what was indexed of it
)


class Batch:
    """The rows of one transaction."""

    def __init__(self) -> None:
        # (run, keys of a log event) -> steps, times, seqs, and the values event after event
        self.groups: dict[tuple[RunState, tuple[str, ...]], tuple[list, list, list, list]] = {}
        # (run, key) -> steps, times, values, seqs as arrays in seq order; set by scalar_tables()
        self.series: dict[tuple[RunState, str], tuple[np.ndarray, ...]] = {}
        self.rows: dict[str, list[tuple]] = {
            "system": [],
            "media": [],
            "histograms": [],
            "tables": [],
            "text": [],
            "console": [],
            "alerts": [],
            "artifacts": [],
            "rejects": [],
        }
        self.runs: dict[int, RunState] = {}
        # (run, key, kind) whose steps went back: counted again from the index at commit
        self.recount: set[tuple[RunState, str, str]] = set()
        self.offsets: dict[tuple[int, str], int] = {}
        self.deleted: list[RunState] = []
        self.events = 0
        self.points = 0
        self.bytes = 0  # of segments read into this batch

    def __bool__(self) -> bool:
        return bool(self.runs or self.deleted)

    def touch(self, state: RunState) -> None:
        self.runs[state.run] = state

    def set_offset(self, state: RunState, segment: str, offset: int) -> None:
        state.offsets[segment] = offset
        self.offsets[(state.run, segment)] = offset
        self.runs[state.run] = state

    def reject(
        self, state: RunState, file: str, offset: int, kind: str, reason: str, t: float
    ) -> None:
        """Note what the index could not take, of a kind in REJECT_KINDS: a ``gap`` is counted
        in the run's ``gaps`` (by :func:`waddle.sequence.take`), every other in ``rejected``."""
        self.rows["rejects"].append((state.run, file, offset, kind, reason, t))
        if kind != "gap":
            state.rejected += 1
        self.runs[state.run] = state

    def take(self, state: RunState, line: bytes, file: str, offset: int) -> None:
        """Apply one line of ``state``'s run, read at ``offset`` of ``file``, the general way:
        decoded in full (bounds checked), then added; a line that is no event is a reject."""
        if len(line) > segment.MAX_LINE_BYTES:
            reason = f"line longer than {segment.MAX_LINE_BYTES} bytes"
            self.reject(state, file, offset, "line", reason, time.time())
            return
        try:
            event = event_format.decode(line)
        except event_format.MalformedEvent as error:
            self.reject(state, file, offset, "line", str(error), time.time())
            return
        self.add(state, event, file, offset)

    def add(self, state: RunState, event: dict[str, Any], file: str, offset: int) -> None:
        """Apply one decoded event of ``state``'s run, read at ``offset`` of ``file``."""
        self.runs[state.run] = state
        seq, t = event["seq"], event["t"]
        last = state.next_seq - 1
        taken = sequence.take(state, seq)
        if taken == "duplicate":
            self.reject(state, file, offset, taken, f"duplicate seq {seq} (already indexed)", t)
            return
        if taken == "out_of_order":
            gap = sequence.describe(*sequence.missing_range(state, seq))
            reason = f"seq {seq} out of order: it came after seq {last}, in the gap of {gap}"
            self.reject(state, file, offset, taken, reason + " reported before; not indexed", t)
            return
        if taken == "gap":
            first, missing = state.missing[-1]
            reason = f"gap: {sequence.describe(first, missing)} missing before seq {seq}"
            self.reject(state, file, offset, taken, f"{reason} ({missing - first + 1} events)", t)
        problem = _HANDLERS[event["type"]](self, state, event)
        if problem:
            self.reject(state, file, offset, "value", problem, t)
        self._applied(state, t)

    def add_line(self, state: RunState, line: bytes) -> bool:
        """Apply ``line`` if it is a plain log event: numbers only, no ``nf``, the next seq.

        The common case, taken without the general decoding and dispatch, with the same result
        as :meth:`take` of the line (tests/test_ingest_bounds.py proves it): its bounds are
        checked by the same function. False for any other line (malformed ones included),
        which the caller hands to :meth:`take`.
        """
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            return False
        if type(event) is not dict or event.get("type") != "log" or "nf" in event:
            return False
        seq, t, step, data = event.get("seq"), event.get("t"), event.get("step"), event.get("data")
        if not (
            event.get("v") == event_format.FORMAT_VERSION
            and seq == state.next_seq
            and event_format.in_bounds(seq, t, step)
            and type(data) is dict
            and NUMERIC.issuperset(map(type, data.values()))
        ):
            return False
        self.runs[state.run] = state
        state.next_seq = seq + 1
        self._numbers(state, step, t, seq, data)
        self._applied(state, t)
        return True

    def _applied(self, state: RunState, t: float) -> None:
        state.events += 1
        self.events += 1
        if state.updated is None or t > state.updated:
            state.updated = t
        if state.created is None:
            state.created = t

    def _numbers(self, state: RunState, step: int, t: float, seq: int, data: dict) -> None:
        """A log event whose values are all numbers: one append per event, not per value."""
        if state.last_step is None or step > state.last_step:
            state.last_step = step
        keys = tuple(data)
        group = self.groups.get((state, keys))
        if group is None:
            group = self.groups[(state, keys)] = ([], [], [], [])
        group[0].append(step)
        group[1].append(t)
        group[2].append(seq)
        group[3].extend(data.values())

    # --- event types; each returns None, or the reason part of the event was rejected ---

    def _log(self, state: RunState, event: dict[str, Any]) -> str | None:
        step, data = event.get("step"), event.get("data")
        t, seq = event["t"], event["seq"]
        if not event_format.in_bounds(seq, t, step):  # seq and t were checked at decode
            return f"log event with an invalid step: {step!r} (an integer, 0 to 2**63 - 2)"
        if type(data) is not dict:
            return "log event whose data is not an object"
        if NUMERIC.issuperset(map(type, data.values())):
            self._numbers(state, step, t, seq, data)
            return None
        if state.last_step is None or step > state.last_step:
            state.last_step = step
        bad = []
        for key, value in data.items():
            kind = type(value)
            if kind in NUMERIC:
                group = self.groups.get((state, (key,)))
                if group is None:
                    group = self.groups[(state, (key,))] = ([], [], [], [])
                group[0].append(step)
                group[1].append(t)
                group[2].append(seq)
                group[3].append(value)
            elif kind is str:
                self.rows["text"].append((state.run, key, step, t, seq, value))
                if not state.stat(key, "text").note_step(step):
                    self.recount.add((state, key, "text"))
            elif value is None:
                continue  # W&B's None: no value for this key at this step (docs/format.md)
            elif kind is dict and type(value.get("_type")) is str:
                rich = value["_type"]
                table = RICH_TABLES.get(rich, "media")
                self.rows[table].append(
                    (state.run, key, step, t, seq, rich, wire.dumps(value).decode())
                )
                if not state.stat(key, rich).note_step(step):
                    self.recount.add((state, key, rich))
            elif kind is list:  # a plain list (W&B keeps short arrays as lists): a record
                self.rows["media"].append(
                    (state.run, key, step, t, seq, ARRAY, wire.dumps(value).decode())
                )
                if not state.stat(key, ARRAY).note_step(step):
                    self.recount.add((state, key, ARRAY))
            else:
                bad.append(f"{key!r} ({'null' if value is None else kind.__name__})")
        if bad:
            return "values of an unsupported shape skipped: " + ", ".join(bad)
        return None

    def _run_start(self, state: RunState, event: dict[str, Any]) -> str | None:
        problems = []
        for name in ("name", "group", "job_type", "notes"):
            value = event.get(name)
            if value is None or type(value) is str:
                if value is not None or not event.get("resumed"):
                    setattr(state, name, value)
            else:
                problems.append(name)
        for name, kind in (("config", dict), ("context", dict), ("tags", list)):
            value = event.get(name)
            if type(value) is kind and (kind is not list or all(type(v) is str for v in value)):
                setattr(state, name, value)
            elif value is not None:
                problems.append(name)
        state.status, state.finish, state.exit_code = "running", None, None
        state.heartbeat = event["t"]
        return f"run_start fields of the wrong type: {', '.join(problems)}" if problems else None

    def _config(self, state: RunState, event: dict[str, Any]) -> str | None:
        data = event.get("data")
        if type(data) is not dict:
            return "config event whose data is not an object"
        state.config.update(data)
        return None

    def _summary(self, state: RunState, event: dict[str, Any]) -> str | None:
        data = event.get("data")
        if type(data) is not dict:
            return "summary event whose data is not an object"
        state.explicit_summary.update(data)
        return None

    def _define_metric(self, state: RunState, event: dict[str, Any]) -> str | None:
        name = event.get("name")
        if type(name) is not str or not name:
            return "define_metric without a name"
        summary = event.get("summary")
        if summary is not None and type(summary) is not str:
            return "define_metric summary is not a string"
        state.defines.append(
            {key: event.get(key) for key in ("name", "step_metric", "summary", "hidden")}
        )
        return None

    def _console(self, state: RunState, event: dict[str, Any]) -> str | None:
        stream, text = event.get("stream"), event.get("text")
        if type(stream) is not str or type(text) is not str:
            return "console event without a stream and text"
        self.rows["console"].append((state.run, event["seq"], event["t"], stream, text))
        return None

    def _system(self, state: RunState, event: dict[str, Any]) -> str | None:
        data = event.get("data")
        if type(data) is not dict:
            return "system event whose data is not an object"
        bad = []
        for key, value in data.items():
            if type(value) in (int, float):
                # As the nearest double, as scalars are (an int beyond 2**53 is not exact).
                self.rows["system"].append((state.run, key, event["t"], event["seq"], float(value)))
            else:
                bad.append(key)
        return f"system values that are not numbers: {', '.join(bad)}" if bad else None

    def _heartbeat(self, state: RunState, event: dict[str, Any]) -> str | None:
        state.heartbeat = event["t"]
        return None

    def _alert(self, state: RunState, event: dict[str, Any]) -> str | None:
        title, text, level = event.get("title"), event.get("text", ""), event.get("level", "INFO")
        if not all(type(value) is str for value in (title, text, level)):
            return "alert event without a string title, text and level"
        self.rows["alerts"].append((state.run, event["seq"], event["t"], title, text, level))
        return None

    def _file(self, state: RunState, event: dict[str, Any]) -> str | None:
        """A file saved with run.save(): listed with the run's media under ``files/<name>``."""
        name, path, step = event.get("name"), event.get("path"), event.get("step")
        if type(name) is not str or type(path) is not str or not path.startswith("files/"):
            return "file event without a name and a path under files/"
        problem = None
        if step is not None and not event_format.in_bounds(event["seq"], event["t"], step):
            problem, step = f"file event with an invalid step, left out: {step!r}", None
        value = {"_type": "file", **{k: event.get(k) for k in ("name", "path", "sha256", "bytes")}}
        key = "files/" + name
        self.rows["media"].append(
            (state.run, key, step, event["t"], event["seq"], "file", wire.dumps(value).decode())
        )
        return problem

    def _artifact(self, state: RunState, event: dict[str, Any]) -> str | None:
        """A version of an artifact logged or used by the run: a lineage row."""
        fields = [event.get(name) for name in ("action", "project", "name", "version")]
        kind, digest, aliases = (event.get(n) for n in ("artifact_type", "digest", "aliases"))
        if not (
            fields[0] in ("log", "use")
            and names.is_valid(fields[1])
            and names.is_valid(fields[2])
            and event_format.is_int64(fields[3], low=0)
            and type(kind) is str
            and type(digest) is str
            and type(aliases) is list
            and all(type(alias) is str for alias in aliases)
        ):
            return "artifact event without a valid action, project, name, version, type, digest and aliases"
        if state.origin is not None:  # a relayed run: its origin's artifact, kept apart here
            fields[2] = names.relayed_folder(state.origin, fields[2])
        self.rows["artifacts"].append(
            (state.run, event["seq"], event["t"], *fields, kind, digest, aliases)
        )
        return None

    def _finish(self, state: RunState, event: dict[str, Any]) -> str | None:
        status = event.get("status")
        if status not in ("finished", "crashed"):
            return f"finish event with an invalid status: {status!r}"
        state.status = status
        state.finish = {key: value for key, value in event.items() if key not in ("v", "type")}
        bad: list[str] = []
        exit_code = event.get("exit_code")
        state.exit_code = exit_code if event_format.is_int64(exit_code) else None
        if exit_code is not None and state.exit_code is None:
            bad.append("exit_code")
        dropped = event.get("dropped")
        if type(dropped) is dict:
            state.dropped_steps = _count(dropped.get("steps"), "dropped.steps", bad)
            state.dropped_values = _count(dropped.get("values"), "dropped.values", bad)
        elif dropped is not None:
            bad.append("dropped")
        state.lost_events = _count(event.get("lost_events"), "lost_events", bad)
        return (
            f"finish fields of the wrong type or out of bounds: {', '.join(bad)}" if bad else None
        )

    # --- the batch as Arrow tables ---

    def scalar_tables(self) -> tuple[pa.Table, pa.Table, pa.Table]:
        """(clustered, their blocks, live) scalar rows; updates each run's stats from them."""
        parts: dict[tuple[RunState, str], list] = {}
        for (state, keys), (steps, ts, seqs, values) in self.groups.items():
            step_array = np.array(steps, dtype=np.int64)
            t_array = np.array(ts, dtype=np.float64)
            seq_array = np.array(seqs, dtype=np.int64)
            matrix = np.array(values, dtype=np.float64).reshape(len(steps), len(keys))
            for column, key in enumerate(keys):
                part = (step_array, t_array, matrix[:, column], seq_array)
                parts.setdefault((state, key), []).append(part)
        tables: dict[bool, list] = {True: [], False: []}
        for (state, key), pieces in parts.items():
            if len(pieces) == 1:
                steps, ts, values, seqs = pieces[0]
                values = np.ascontiguousarray(values)
            else:
                steps, ts, values, seqs = (np.concatenate(c) for c in zip(*pieces, strict=True))
                order = np.argsort(seqs, kind="stable")
                steps, ts, values, seqs = steps[order], ts[order], values[order], seqs[order]
            self.series[(state, key)] = (steps, ts, values, seqs)
            if not state.stat(key, "scalar").merge(steps, values):
                self.recount.add((state, key, "scalar"))
            tables[len(steps) >= CLUSTERED_GROUP].append((state.run, key, steps, ts, seqs, values))
            self.points += len(steps)
        clustered = tables[True]
        blocks = block_table(
            [(run, key, steps, values) for run, key, steps, _, _, values in clustered]
        )
        return _scalar_table(clustered), blocks, _scalar_table(tables[False])

    def rows_table(self, table: str) -> pa.Table:
        return TABLES[table].from_rows(self.rows[table])


def _scalar_table(groups: list) -> pa.Table:
    if not groups:
        return SCALARS.arrow.empty_table()
    lengths = [len(group[2]) for group in groups]
    runs = np.repeat(np.array([group[0] for group in groups], dtype=np.int32), lengths)
    # The key column as indices into the distinct keys: no Python string per point.
    names: dict[str, int] = {}
    codes = [names.setdefault(group[1], len(names)) for group in groups]
    keys = pa.DictionaryArray.from_arrays(
        np.repeat(np.array(codes, dtype=np.int32), lengths), pa.array(list(names), pa.string())
    )
    steps = np.concatenate([group[2] for group in groups])
    ts = np.concatenate([group[3] for group in groups])
    seqs = np.concatenate([group[4] for group in groups])
    values = np.concatenate([group[5] for group in groups])
    return pa.table([runs, keys, steps, ts, seqs, values], SCALARS.arrow)


def _count(value: Any, name: str, bad: list[str]) -> int:
    """A count of a finish event: an int from 0 to INT64_MAX; else 0, and ``name`` in ``bad``."""
    if event_format.is_int64(value, low=0):
        return value
    if value is not None:
        bad.append(name)
    return 0


_HANDLERS = {
    "log": Batch._log,
    "run_start": Batch._run_start,
    "config": Batch._config,
    "summary": Batch._summary,
    "define_metric": Batch._define_metric,
    "console": Batch._console,
    "system": Batch._system,
    "heartbeat": Batch._heartbeat,
    "alert": Batch._alert,
    "file": Batch._file,
    "artifact": Batch._artifact,
    "finish": Batch._finish,
}
