"""The indexer: the one thread that writes the index, from catch-up to live tailing.

It owns the run states, the set of runs with news (marked by the watcher) and the writer side
of the store. It promises:

- at start it catches up on every run folder of the log folder, then follows what the watcher
  marks; a periodic rescan finds run folders created or deleted behind the watcher's back;
- each transaction holds at least ``batch_events`` events, or whatever arrived within
  ``batch_interval`` seconds of its first read, whichever comes first, and at most about
  ``max_events``; the rows and the segment offsets they came from commit together, so a kill
  at any moment leaves the index at a transaction boundary, from which a restart goes on
  without a duplicate or a gap;
- a run folder deleted on disk is deleted from the index;
- small interleaved scalar rows are compacted into per-series order once enough have
  gathered, or once ingest goes quiet;
- after each commit the listeners hear what changed (:class:`Commit`), on this thread.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from waddle.server import tailer
from waddle.server.ingester import Batch
from waddle.server.run_state import RUN_SCHEMA, RunState, Stat, metrics_table, offsets_table
from waddle.server.store import RUN_TABLES, Store, insert_arrow

from waddle import names, segment

# Compact scalars_live once it holds this many rows, or once ingest has been quiet this long.
COMPACT_ROWS = 250_000
COMPACT_IDLE = 2.0
RESCAN_INTERVAL = 10.0

RunKey = tuple[str, str]


@dataclass
class Commit:
    """What one transaction changed, for live listeners."""

    runs: list[RunState]
    deleted: list[RunState]
    # (project, run_id, key) -> (steps, times, values, seqs), lists in seq order
    series: dict[tuple[str, str, str], tuple[list, list, list, list]] = field(default_factory=dict)


class Indexer:
    def __init__(
        self,
        store: Store,
        root: Path,
        batch_interval: float = 0.1,
        batch_events: int = 1000,
        max_events: int = 50_000,
    ) -> None:
        self.store = store
        self.root = Path(root)
        self.batch_interval = batch_interval
        self.batch_events = batch_events
        self.max_events = max_events
        self.listeners: list[Callable[[Commit], None]] = []
        self.caught_up = threading.Event()
        self.totals = {"commits": 0, "events": 0, "points": 0, "compactions": 0}
        self.states: dict[RunKey, RunState] = {}
        self._dirty: set[tuple[str, str | None]] = set()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._live_rows = 0
        self._next_run = 1
        self._load()

    # --- state ---

    def _load(self) -> None:
        reader = self.store.reader()
        self.states = {}
        columns = list(RUN_SCHEMA.names)
        quoted = ", ".join(f'"{name}"' for name in columns)
        by_id: dict[int, RunState] = {}
        for values in reader.execute(f"SELECT {quoted} FROM runs").fetchall():
            state = RunState.from_row(dict(zip(columns, values, strict=True)))
            by_id[state.run] = state
            self.states[(state.project, state.run_id)] = state
        for run, key, kind, *numbers in reader.execute(
            "SELECT run, key, kind, count, first_step, last_step, min, max, sum, finite, first,"
            " last, before_min, before_max, rows FROM metrics"
        ).fetchall():
            if run in by_id:
                by_id[run].stats[(key, kind)] = Stat(*numbers)
        for run, name, offset in reader.execute("SELECT * FROM offsets").fetchall():
            if run in by_id:
                by_id[run].offsets[name] = offset
        self._next_run = max(by_id, default=0) + 1
        (self._live_rows,) = reader.execute("SELECT count(*) FROM scalars_live").fetchone()

    def _state(self, project: str, run_id: str) -> RunState:
        key = (project, run_id)
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = RunState(self._next_run, project, run_id)
            self._next_run += 1
        return state

    # --- marking work (any thread) ---

    def mark(self, project: str, run_id: str | None = None) -> None:
        """Note news in a run folder (or in a project folder when ``run_id`` is None).

        A folder not named by the rule (waddle/names.py) is not a project or a run: ignored.
        """
        if not names.is_valid(project) or not (run_id is None or names.is_valid(run_id)):
            return
        with self._cond:
            self._dirty.add((project, run_id))
            self._cond.notify()

    def _scan(self) -> None:
        """Mark run folders that appeared, and runs whose folder disappeared."""
        on_disk: set[RunKey] = set()
        for project in names.folders(self.root):
            on_disk.update((project, run_id) for run_id in names.folders(self.root / project))
        with self._cond:
            self._dirty.update(key for key in on_disk if key not in self.states)
            self._dirty.update(key for key in self.states if key not in on_disk)
            self._cond.notify()

    # --- the thread ---

    def start(self) -> None:
        self._scan()
        with self._cond:
            self._dirty.update(self.states)
        self._thread = threading.Thread(target=self._loop, name="waddle-indexer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def catch_up(self) -> None:
        """Index everything on disk now, on the calling thread (for ``waddle reindex``)."""
        self._scan()
        with self._cond:
            self._dirty.update(self.states)
        while self._dirty:
            self._commit(self._collect(deadline=0))
        self._compact()

    def _loop(self) -> None:
        last_scan = last_news = time.monotonic()
        while True:
            with self._cond:
                if not self._dirty and not self._stopping:
                    self._cond.wait(timeout=0.5)
                stopping = self._stopping
            batch = self._collect(deadline=time.monotonic() + self.batch_interval)
            if batch:
                try:
                    self._commit(batch)
                except Exception as error:  # the index must outlive one bad transaction
                    print(f"waddle serve: indexing failed, retrying: {error!r}", file=sys.stderr)
                    self._load()
                    self._scan()
                    with self._cond:
                        self._dirty.update(self.states)
                    time.sleep(0.5)
                    continue
                last_news = time.monotonic()
            now = time.monotonic()
            if not self._dirty:
                self.caught_up.set()
            if self._live_rows >= COMPACT_ROWS or (
                self._live_rows and now - last_news > COMPACT_IDLE
            ):
                self._compact()
            if stopping:
                return
            if now - last_scan > RESCAN_INTERVAL:
                self._scan()
                last_scan = now

    def _collect(self, deadline: float) -> Batch:
        batch = Batch()
        while True:
            with self._cond:
                keys, self._dirty = list(self._dirty), set()
            for index, key in enumerate(keys):
                self._read(key, batch)
                if batch.events >= self.max_events:
                    with self._cond:
                        self._dirty.update(keys[index + 1 :])
                    return batch
            if batch.events >= self.batch_events:
                return batch
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return batch
            with self._cond:
                if not self._dirty:
                    self._cond.wait(timeout=remaining)
                if not self._dirty:
                    return batch

    def _read(self, key: tuple[str, str | None], batch: Batch) -> None:
        project, run_id = key
        project_dir = self.root / project
        if run_id is None:
            runs = set(names.folders(project_dir) if names.is_folder(project_dir) else ())
            runs.update(run for (p, run) in self.states if p == project)
            with self._cond:
                self._dirty.update((project, run) for run in runs)
            return
        run_dir = project_dir / run_id
        if not (names.is_folder(project_dir) and names.is_folder(run_dir)):
            state = self.states.pop((project, run_id), None)
            if state is not None:
                batch.deleted.append(state)
            return
        if (project, run_id) not in self.states and not segment.list_segments(run_dir):
            return
        state = self._state(project, run_id)
        if tailer.read_run(state, run_dir, batch):
            with self._cond:
                self._dirty.add((project, run_id))

    # --- writing ---

    def _commit(self, batch: Batch) -> None:
        clustered, blocks, live = batch.scalar_tables()
        runs = [state for state in batch.runs.values() if state not in batch.deleted]
        with self.store.transaction() as con:
            for state in batch.deleted:
                for table in RUN_TABLES:
                    con.execute(f"DELETE FROM {table} WHERE run = ?", [state.run])
            insert_arrow(con, "scalars", clustered)
            insert_arrow(con, "scalar_blocks", blocks)
            insert_arrow(con, "scalars_live", live)
            for table, rows in batch.rows.items():
                if rows:
                    insert_arrow(con, table, batch.rows_table(table))
            if runs:
                ids = [state.run for state in runs]
                for table in ("runs", "metrics", "offsets"):
                    con.execute(f"DELETE FROM {table} WHERE list_contains(?, run)", [ids])
                insert_arrow(con, "runs", pa.Table.from_pylist([s.row() for s in runs], RUN_SCHEMA))
                insert_arrow(con, "metrics", metrics_table(runs))
                insert_arrow(con, "offsets", offsets_table(runs))
        self._live_rows += live.num_rows
        self.totals["commits"] += 1
        self.totals["events"] += batch.events
        self.totals["points"] += batch.points
        if self.listeners:
            commit = Commit(
                runs=runs,
                deleted=batch.deleted,
                series={
                    (state.project, state.run_id, key): columns
                    for (state, key), columns in batch.series.items()
                },
            )
            for listener in self.listeners:
                listener(commit)

    def _compact(self) -> None:
        self.store.compact()
        self._live_rows = 0
        self.totals["compactions"] += 1

    def status(self) -> dict[str, Any]:
        return {
            "caught_up": self.caught_up.is_set() and not self._dirty,
            "runs": len(self.states),
            **self.totals,
        }
