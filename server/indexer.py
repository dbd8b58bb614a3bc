"""The indexer: the one thread that writes the index, from catch-up to live tailing.

It owns the run states, the set of runs with news (marked by the watcher) and the writer side
of the store. It promises:

- at start it catches up on every run folder of the log folder, saying how far it is at most
  once a second and once when caught up (server/progress.py), then follows what the watcher
  marks; a periodic rescan finds run folders created or deleted behind the watcher's back;
- each transaction holds at least ``batch_events`` events, or whatever arrived within
  ``batch_interval`` seconds of its first read, whichever comes first, and at most about
  ``max_events``; the rows and the segment offsets they came from commit together, so a kill
  at any moment leaves the index at a transaction boundary, from which a restart goes on
  without a duplicate or a gap;
- one run can never stop the others: a run whose read fails is reported (server/notices.py),
  left out of the transaction and retried with backoff (1 s, doubling, at most a minute)
  while the rest goes on; after a commit fails, the runs of that transaction are retried one
  per transaction, so the one that fails is found and backed off alone; the thread itself
  outlives any failure;
- a run folder deleted on disk is deleted from the index;
- small interleaved scalar rows are compacted into per-series order once enough have
  gathered, or once ingest goes quiet;
- after each commit the listeners hear what changed (:class:`Commit`), on this thread, and the
  first rejects of each segment file are said in one line (the count so far, the first one);
- :meth:`Indexer.status` tells where ingest stands: alive, caught up, the runs failing, and
  the lag: news not yet indexed, in seconds, bytes and (estimated) events.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waddle.server import tailer
from waddle.server.ingester import Batch
from waddle.server.notices import Notices
from waddle.server.progress import CatchUp
from waddle.server.run_state import RunState, Stat, metrics_table, offsets_table, recount
from waddle.server.schema import METRICS, OFFSETS, RANKS, RUN_TABLES, RUNS
from waddle.server.store import Store, insert_arrow

from waddle import names, ranks, segment
from waddle.run_folder import read_origin

# Compact scalars_live once it holds this many rows, or once ingest has been quiet this long.
COMPACT_ROWS = 250_000
COMPACT_IDLE = 2.0
RESCAN_INTERVAL = 10.0
# A failing run is retried after 1 s, then twice as long each time, at most this long.
MAX_BACKOFF = 60.0
# Until the first event is read, the lag in events is estimated with this size of an event.
EVENT_BYTES_GUESS = 200
# The faults of the indexer (server/notices.py), for its last error.
FAULTS = ("read", "commit", "compaction", "indexer")

RunKey = tuple[str, str]


@dataclass
class Commit:
    """What one transaction changed, for live listeners."""

    runs: list[RunState]  # every stream changed: a run's rank 0 and its other ranks
    deleted: list[RunState]
    # (project, run_id, rank, key) -> (steps, times, values, seqs), lists in seq order
    series: dict[tuple[str, str, int, str], tuple[list, list, list, list]] = field(
        default_factory=dict
    )


@dataclass
class Failure:
    """A run whose read or commit failed, waiting for its retry."""

    error: str
    retries: int = 0
    retry_at: float = 0.0  # time.monotonic()


class RunFailed(Exception):
    """Reading one run failed; ``key`` names it and the cause is chained."""

    def __init__(self, key: RunKey) -> None:
        super().__init__(key)
        self.key = key


class Indexer:
    def __init__(
        self,
        store: Store,
        root: Path,
        batch_interval: float = 0.1,
        batch_events: int = 1000,
        max_events: int = 50_000,
        notices: Notices | None = None,
    ) -> None:
        self.store = store
        self.root = Path(root)
        self.batch_interval = batch_interval
        self.batch_events = batch_events
        self.max_events = max_events
        self.notices = notices or Notices()
        self.listeners: list[Callable[[Commit], None]] = []
        self.caught_up = threading.Event()
        self.totals = {
            "commits": 0,
            "events": 0,
            "points": 0,
            "bytes": 0,
            "compactions": 0,
            "retries": 0,
        }
        self.states: dict[RunKey, RunState] = {}  # rank 0's stream of each run folder
        self.rank_states: dict[RunKey, dict[int, RunState]] = {}  # the other ranks', by rank
        self._dirty: set[tuple[str, str | None]] = set()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._live_rows = 0
        self._compact_after = 0.0
        self._next_run = 1
        # Guarded by _cond: when news of a run was first noticed and not yet indexed (for the
        # runs of the batch being made: in _reading), the bytes a run was last seen to have
        # left unread, and the runs failing.
        self._waiting: dict[RunKey, float] = {}
        self._reading: dict[RunKey, float] = {}
        self._unread: dict[RunKey, int] = {}
        self._failing: dict[RunKey, Failure] = {}
        self._announced: set[str] = set()  # segment files said to have rejects
        # The catch-up under way: its progress, the runs not read to the end yet, the totals
        # when it began.
        self._progress: CatchUp | None = None
        self._pending: set[RunKey] = set()
        self._base: dict[str, int] = {}
        self._solo: list[RunKey] = []  # runs of a failed commit, to retry one per transaction
        self._alone: RunKey | None = None  # the run of a batch made of one run of _solo
        self._load()

    # --- state ---

    def _load(self) -> None:
        reader = self.store.reader()
        self.states, self.rank_states = {}, {}
        by_id: dict[int, RunState] = {}
        for table in (RUNS, RANKS):
            for values in reader.execute(table.select).fetchall():
                state = RunState.from_row(dict(zip(table.names, values, strict=True)))
                by_id[state.run] = state
                if state.rank:
                    streams = self.rank_states.setdefault((state.project, state.run_id), {})
                    streams[state.rank] = state
                else:
                    self.states[(state.project, state.run_id)] = state
        aggregates = METRICS.names[3:]  # after run, key and kind: the fields of a Stat
        for run, key, kind, *numbers in reader.execute(METRICS.select).fetchall():
            if run in by_id:
                by_id[run].stats[(key, kind)] = Stat(**dict(zip(aggregates, numbers, strict=True)))
        for run, name, offset in reader.execute(OFFSETS.select).fetchall():
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
            origin = read_origin(self.root / project / run_id)
            if origin is not None:
                state.origin, state.origin_run_id = origin.origin, origin.run_id
        return state

    def _rank_state(self, key: RunKey, rank: int) -> RunState:
        streams = self.rank_states.setdefault(key, {})
        state = streams.get(rank)
        if state is None:
            state = streams[rank] = RunState(self._next_run, *key, rank=rank)
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
            if run_id is not None:
                self._waiting.setdefault((project, run_id), time.monotonic())
            self._cond.notify()

    def _scan(self, measure: bool = False) -> set[RunKey]:
        """Mark run folders that appeared, and runs whose folder disappeared; with ``measure``,
        also note how many bytes of each run are not indexed yet (a stat per segment)."""
        on_disk: set[RunKey] = set()
        for project in names.folders(self.root):
            on_disk.update((project, run_id) for run_id in names.folders(self.root / project))
        news = {key for key in on_disk if key not in self.states}
        news.update(key for key in self.states if key not in on_disk)
        unread = {key: self._bytes_left(key) for key in on_disk} if measure else {}
        now = time.monotonic()
        with self._cond:
            self._dirty.update(news)
            for key in news:
                self._waiting.setdefault(key, now)
            self._unread.update((key, left) for key, left in unread.items() if left)
            self._cond.notify()
        return on_disk

    def _bytes_left(self, key: RunKey) -> int:
        state = self.states.get(key)
        offsets = state.offsets if state is not None else {}
        left = 0
        run_dir = self.root.joinpath(*key)
        streams = [(run_dir, offsets)]
        for rank, path in ranks.rank_streams(run_dir):
            state = self.rank_states.get(key, {}).get(rank)
            streams.append((path, state.offsets if state is not None else {}))
        for folder, read in streams:
            for path in segment.list_segments(folder):
                try:
                    left += max(0, path.stat().st_size - read.get(path.name, 0))
                except OSError:  # gone, or unreadable: the read says which
                    continue
        return left

    # --- the thread ---

    def start(self) -> None:
        self._begin_catch_up()
        self._thread = threading.Thread(target=self._loop, name="waddle-indexer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def catch_up(self) -> list[str]:
        """Index everything on disk now, on the calling thread (for ``waddle reindex``).

        Returns the runs that could not be read (each reported once): they are not retried.
        """
        self._begin_catch_up()
        while self._dirty or self._solo:
            self._step(deadline=0)
            self._report_progress()
        self._report_progress(done=True)
        self._compact()
        return [f"{project}/{run_id}" for project, run_id in self._failing]

    def _mark_all(self) -> set[RunKey]:
        """Mark every run on disk or in the index as news; returns them."""
        on_disk = self._scan(measure=True)
        now = time.monotonic()
        with self._cond:
            self._dirty.update(self.states)
            for key in self.states:
                self._waiting.setdefault(key, now)
        return on_disk | set(self.states)

    def _begin_catch_up(self) -> None:
        runs = self._mark_all()
        with self._cond:
            self._pending = runs
            unread = sum(self._unread.values())
        self._progress = CatchUp(self.notices, len(runs), unread)
        self._base = dict(self.totals)

    def _report_progress(self, done: bool = False) -> None:
        """A catch-up line when one is due (server/progress.py), the last one when ``done``."""
        if self._progress is None:
            return
        counts = {name: self.totals[name] - self._base[name] for name in self.totals}
        runs_done = self._progress.runs - len(self._pending)
        if done:
            self._progress.done(runs_done, counts["events"], counts["points"], len(self._failing))
            self._progress = None
        else:
            self._progress.update(runs_done, counts["events"], counts["points"], counts["bytes"])

    def _loop(self) -> None:
        last_scan = last_news = time.monotonic()
        pause = 0.0
        while True:
            with self._cond:
                if not self._dirty and not self._stopping:
                    self._cond.wait(timeout=self._until_retry())
                stopping = self._stopping
            try:
                if pause:  # after a failure of the index itself: reload from the last commit
                    self._reload()
                if self._step(deadline=time.monotonic() + self.batch_interval):
                    last_news = time.monotonic()
                pause = 0.0
                now = time.monotonic()
                if not self._dirty:
                    self.caught_up.set()
                self._report_progress(done=self.caught_up.is_set())
                if now - last_news > COMPACT_IDLE or self._live_rows >= COMPACT_ROWS:
                    self._compact_when_due(now)
                if now - last_scan > RESCAN_INTERVAL:
                    self._scan()
                    last_scan = now
            except Exception as error:  # the thread outlives anything; the index is reloaded
                pause = min(MAX_BACKOFF, max(1.0, pause * 2))
                self.notices.fault(
                    "indexer",
                    f"indexing failed: {error!r}",
                    f"retrying in {pause:g} s; if it goes on, stop the server and run "
                    "`waddle reindex`",
                )
                with self._cond:
                    self._cond.wait(timeout=pause)
            if stopping:
                return

    def _until_retry(self) -> float:
        """Seconds to wait for news before the next failing run is due again (at most 0.5)."""
        due = [failure.retry_at for failure in self._failing.values()]
        return max(0.0, min([0.5, *(at - time.monotonic() for at in due)]))

    def _step(self, deadline: float) -> bool:
        """Collect and commit one batch; False when there was nothing to commit. A run that
        fails is backed off and the index reloaded from the last commit, so nothing read in
        this batch is lost: it is read again."""
        self._requeue_due()
        batch = Batch()
        try:
            self._collect(batch, deadline)
            if not batch:
                self._settle()
                return False
            self._commit(batch)
        except RunFailed as failure:
            self._reload()
            self._fail(failure.key, "read", failure.__cause__)
            return False
        except Exception as error:  # the commit: find the run behind it, one per transaction
            keys = [key for key in self._reading if key[1] is not None]
            alone = self._alone
            self._reload()
            if alone is not None:
                self._fail(alone, "commit", error)
            else:
                self._solo.extend(key for key in keys if key not in self._solo)
                self.notices.fault(
                    "commit",
                    f"indexing {len(keys)} runs failed: {error!r}",
                    "retrying them one run per transaction to find the one behind it",
                )
            return False
        self._settle()
        return True

    def _requeue_due(self) -> None:
        now = time.monotonic()
        with self._cond:
            self._dirty.update(key for key, f in self._failing.items() if f.retry_at <= now)

    def _collect(self, batch: Batch, deadline: float) -> None:
        self._reading = {}
        self._alone = self._solo.pop() if self._solo else None
        if self._alone is not None:
            self._read(self._alone, batch)
            return
        while True:
            with self._cond:
                keys, self._dirty = list(self._dirty), set()
            for index, key in enumerate(keys):
                self._read(key, batch)
                if batch.events >= self.max_events:
                    with self._cond:
                        self._dirty.update(keys[index + 1 :])
                    return
            if batch.events >= self.batch_events:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with self._cond:
                if not self._dirty:
                    self._cond.wait(timeout=remaining)
                if not self._dirty:
                    return

    def _read(self, key: tuple[str, str | None], batch: Batch) -> None:
        project, run_id = key
        project_dir = self.root / project
        if run_id is None:
            runs = set(names.folders(project_dir) if names.is_folder(project_dir) else ())
            runs.update(run for (p, run) in self.states if p == project)
            with self._cond:
                self._dirty.update((project, run) for run in runs)
            return
        failure = self._failing.get(key)
        if failure is not None and failure.retry_at > time.monotonic():
            return  # not due yet: _requeue_due brings it back
        with self._cond:
            self._reading[key] = self._waiting.pop(key, None) or time.monotonic()
        run_dir = project_dir / run_id
        try:
            if not (names.is_folder(project_dir) and names.is_folder(run_dir)):
                state = self.states.pop(key, None)
                if state is not None:
                    batch.deleted.append(state)
                batch.deleted.extend(self.rank_states.pop(key, {}).values())
                unread = 0
            else:
                unread = 0
                if key in self.states or segment.list_segments(run_dir):
                    unread = tailer.read_run(self._state(project, run_id), run_dir, batch)
                unread += self._read_ranks(key, run_dir, batch)
        except Exception as error:
            raise RunFailed(key) from error
        with self._cond:
            if unread:
                self._dirty.add(key)
                self._unread[key] = unread
            else:
                self._unread.pop(key, None)

    def _read_ranks(self, key: RunKey, run_dir: Path, batch: Batch) -> int:
        """Read the streams of the run's ranks other than 0; returns the bytes left unread."""
        streams = dict(ranks.rank_streams(run_dir))
        known = self.rank_states.get(key, {})
        for rank in [rank for rank in known if rank not in streams]:
            batch.deleted.append(known.pop(rank))
        unread = 0
        for rank, path in streams.items():
            if rank in known or segment.list_segments(path):
                state = self._rank_state(key, rank)
                unread += tailer.read_run(state, path, batch, stream=f"{ranks.RANKS_DIR}/{rank}/")
        return unread

    def _settle(self) -> None:
        """After a commit: the runs read in it are indexed (or need another read: still news)."""
        with self._cond:
            for key, since in self._reading.items():
                self._failing.pop(key, None)
                if key in self._unread:
                    self._waiting[key] = min(since, self._waiting.get(key, since))
                else:
                    self._pending.discard(key)
            self._reading = {}
        if not (self._failing or self._solo):
            self.notices.resolve("read")
            self.notices.resolve("commit")
        self.notices.resolve("indexer")

    def _reload(self) -> None:
        """Back to the last commit: what the failed batch read is news again."""
        with self._cond:
            for key, since in self._reading.items():
                self._waiting[key] = min(since, self._waiting.get(key, since))
            self._reading = {}
        self._load()
        self._mark_all()

    def _fail(self, key: RunKey, kind: str, error: BaseException | None) -> None:
        with self._cond:
            failure = self._failing.setdefault(key, Failure(error=""))
            failure.retries += 1
            failure.error = str(error)
            delay = min(MAX_BACKOFF, 2.0 ** (failure.retries - 1))
            failure.retry_at = time.monotonic() + delay
            self._dirty.discard(key)
        self.totals["retries"] += 1
        project, run_id = key
        self.notices.fault(
            kind,
            f"cannot index run {project}/{run_id}: {error}",
            f"retrying it in {delay:g} s, then less often, while the other runs go on; "
            "check its files (permissions, disk)",
        )

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
            recount(con, {item for item in batch.recount if item[0] not in batch.deleted})
            if runs:
                ids = [state.run for state in runs]
                for table in ("runs", "ranks", "metrics", "offsets"):
                    con.execute(f"DELETE FROM {table} WHERE list_contains(?, run)", [ids])
                for table in (RUNS, RANKS):
                    rows = [state.row() for state in runs if state.table is table]
                    if rows:
                        insert_arrow(con, table.name, table.from_dicts(rows))
                insert_arrow(con, "metrics", metrics_table(runs))
                insert_arrow(con, "offsets", offsets_table(runs))
        self._live_rows += live.num_rows
        self._announce_rejects(batch.rows["rejects"])
        self.totals["commits"] += 1
        self.totals["events"] += batch.events
        self.totals["points"] += batch.points
        self.totals["bytes"] += batch.bytes
        if self.listeners:
            commit = Commit(
                runs=runs,
                deleted=batch.deleted,
                series={
                    (state.project, state.run_id, state.rank, key): columns
                    for (state, key), columns in batch.series.items()
                },
            )
            for listener in self.listeners:
                try:
                    listener(commit)
                except Exception as error:  # committed already: only the live view misses it
                    self.notices.fault(
                        "live",
                        f"live updates failed: {error!r}",
                        "open subscribers may miss this change; reload to see it",
                        active=False,
                    )

    def _announce_rejects(self, rejects: list[tuple]) -> None:
        """Say once per segment file that something there was rejected, with the count in the
        transaction that found the first (the API lists them all; a line each would flood)."""
        found: dict[str, list] = {}
        for _run, file, offset, kind, reason, _t in rejects:
            if file not in self._announced:
                found.setdefault(file, [0, offset, kind, reason])[0] += 1
        for file, (count, offset, kind, reason) in found.items():
            self._announced.add(file)
            project, run_id = file.split("/")[:2]
            self.notices.say(
                f"{file}: {count} reject{'s' if count > 1 else ''} so far, the first at byte "
                f"{offset} ({kind}: {reason}); the rest is indexed, and "
                f"/api/projects/{project}/runs/{run_id}/rejects lists every one"
            )

    def _compact_when_due(self, now: float) -> None:
        if not self._live_rows or now < self._compact_after:
            return
        try:
            self._compact()
        except Exception as error:  # the rows stay in scalars_live, where queries read them too
            self._compact_after = now + MAX_BACKOFF
            self.notices.fault(
                "compaction",
                f"compacting the index failed: {error!r}",
                f"queries still see every point; retrying in {MAX_BACKOFF:g} s",
            )
        else:
            self.notices.resolve("compaction")

    def _compact(self) -> None:
        self.store.compact()
        self._live_rows = 0
        self.totals["compactions"] += 1

    def status(self) -> dict[str, Any]:
        """Where ingest stands (docs/api.md, ``/api/health``)."""
        now = time.monotonic()
        with self._cond:
            noticed = [*self._waiting.values(), *self._reading.values()]
            lag_bytes = sum(self._unread.values())
            failing = [
                {
                    "run": f"{project}/{run_id}",
                    "error": failure.error,
                    "retries": failure.retries,
                    "retry_in": round(max(0.0, failure.retry_at - now), 3),
                }
                for (project, run_id), failure in self._failing.items()
            ]
            caught_up = self.caught_up.is_set() and not self._dirty
        totals = dict(self.totals)
        per_event = totals["bytes"] / totals["events"] if totals["events"] else EVENT_BYTES_GUESS
        return {
            "alive": self._thread is not None and self._thread.is_alive(),
            "caught_up": caught_up,
            "runs": len(self.states),
            **totals,
            "lag_events": math.ceil(lag_bytes / per_event),
            "lag_bytes": lag_bytes,
            "lag_seconds": round(max((now - t for t in noticed), default=0.0), 3),
            "failing": failing,
            "last_error": self.notices.last(FAULTS),
        }
