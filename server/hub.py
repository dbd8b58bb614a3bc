"""The live hub: WebSocket subscriptions and what each subscriber has not seen yet.

The hub owns every live connection's subscriptions and their pending updates. It promises:

- a subscriber to a project hears about runs of that project that changed or disappeared,
  including a run that now counts as crashed because nothing came from it for the heartbeat
  timeout (no event marks that moment, so the hub watches the clock for it); a
  subscriber to a (run, key) series gets the points newer than its cursor (a run's seq),
  first from the index, then as the indexer commits them, each point once and in seq order;
- updates are coalesced: at most one message per subscription every ``FLUSH_INTERVAL`` s;
- memory per subscription is bounded: a subscriber that falls more than ``MAX_PENDING``
  points behind (a slow client) gets ``{"type": "resync"}`` instead of the points, and
  should reload over HTTP and subscribe again with its new cursor.

``on_commit`` runs on the indexer thread and only hands data to the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect
from waddle.server import wire
from waddle.server.indexer import Commit
from waddle.server.notices import Notices
from waddle.server.routes.lookup import RUNS_WITH_STATUS, status_params
from waddle.server.store import Store

FLUSH_INTERVAL = 0.2
MAX_PENDING = 100_000


@dataclass
class Subscription:
    id: str
    project: str
    run_id: str | None = None
    key: str | None = None
    rank: int = 0  # whose stream the series is (waddle/ranks.py)
    cursor: int | None = None  # None: only points committed from now on
    ready: bool = False
    points: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    pending_points: int = 0
    changed_runs: set[str] = field(default_factory=set)
    removed_runs: set[str] = field(default_factory=set)
    overflow: bool = False

    @property
    def series(self) -> tuple[str, str, int, str] | None:
        return (self.project, self.run_id, self.rank, self.key) if self.key is not None else None


class Connection:
    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.subscriptions: dict[str, Subscription] = {}
        self.wake = asyncio.Event()


class Hub:
    def __init__(self, store: Store, heartbeat_timeout: float, notices: Notices) -> None:
        self.store = store
        self.heartbeat_timeout = heartbeat_timeout
        self.notices = notices
        self.loop: asyncio.AbstractEventLoop | None = None
        self._watcher: asyncio.Task | None = None
        self.connections: set[Connection] = set()
        # Read by the indexer thread: what anyone listens to.
        self._series: Counter = Counter()
        self._projects: Counter = Counter()

    def bind_loop(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._watcher = self.loop.create_task(self._watch_silence())

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()

    async def _watch_silence(self) -> None:
        """Announce runs whose newest event just became older than the heartbeat timeout."""
        interval = min(1.0, self.heartbeat_timeout / 10)
        since = time.time() - self.heartbeat_timeout
        while True:
            await asyncio.sleep(interval)
            until = time.time() - self.heartbeat_timeout
            if self._projects:
                projects = list(self._projects)
                try:
                    silent = await run_in_threadpool(self._went_silent, projects, since, until)
                except Exception as error:  # the next round looks again from the same moment
                    self.notices.fault(
                        "live",
                        f"looking for runs gone silent failed: {error!r}",
                        "retrying every second; crashed runs may show late",
                    )
                    continue
                self.notices.resolve("live")
                if silent:
                    self._dispatch({}, silent, [])
            since = until

    def _went_silent(self, projects: list[str], since: float, until: float) -> list[tuple]:
        return (
            self.store.reader()
            .execute(
                # A rank going silent may crash its run: its stream's row is in ranks.
                "SELECT DISTINCT project, run_id FROM (SELECT project, run_id, status, updated"
                " FROM runs UNION ALL SELECT project, run_id, status, updated FROM ranks)"
                " WHERE status = 'running' AND updated >= ? AND updated < ?"
                " AND list_contains(?, project)",
                [since, until, projects],
            )
            .fetchall()
        )

    # --- indexer thread ---

    def on_commit(self, commit: Commit) -> None:
        if self.loop is None or not (self._series or self._projects):
            return
        series = {name: columns for name, columns in commit.series.items() if name in self._series}
        runs = [(s.project, s.run_id) for s in commit.runs if s.project in self._projects]
        gone = [(s.project, s.run_id) for s in commit.deleted if s.project in self._projects]
        if series or runs or gone:
            self.loop.call_soon_threadsafe(self._dispatch, series, runs, gone)

    # --- event loop ---

    def _dispatch(self, series: dict, runs: list, gone: list) -> None:
        for connection in self.connections:
            woke = False
            for sub in connection.subscriptions.values():
                if sub.key is None:
                    for project, run_id in runs:
                        if project == sub.project:
                            sub.changed_runs.add(run_id)
                            woke = True
                    for project, run_id in gone:
                        if project == sub.project:
                            sub.removed_runs.add(run_id)
                            woke = True
                elif sub.series in series:
                    self._add_points(sub, series[sub.series])
                    woke = True
            if woke:
                connection.wake.set()

    @staticmethod
    def _add_points(sub: Subscription, columns: tuple[np.ndarray, ...]) -> None:
        if sub.overflow:
            return
        sub.points.append(columns)
        sub.pending_points += len(columns[0])
        if sub.pending_points > MAX_PENDING:
            sub.points.clear()
            sub.pending_points = 0
            sub.overflow = True

    def register(self, connection: Connection, sub: Subscription) -> None:
        """Listen for ``sub`` from now on; call before the client hears ``subscribed``."""
        connection.subscriptions[sub.id] = sub
        if sub.key is None:
            self._projects[sub.project] += 1
        else:
            self._series[sub.series] += 1

    async def load(self, connection: Connection, sub: Subscription, run: int | None) -> None:
        """Load what the index holds past ``sub``'s cursor, then let its updates go out."""
        if sub.key is not None and sub.cursor is not None:
            backlog = await run_in_threadpool(self._backlog, run, sub.key, sub.cursor)
            if len(backlog[0]) > MAX_PENDING:
                sub.overflow = True
            else:
                sub.points.insert(0, backlog)
                sub.pending_points += len(backlog[0])
        sub.ready = True
        connection.wake.set()

    def unsubscribe(self, connection: Connection, sub_id: str) -> None:
        sub = connection.subscriptions.pop(sub_id, None)
        if sub is None:
            return
        counter, name = (
            (self._projects, sub.project) if sub.key is None else (self._series, sub.series)
        )
        counter[name] -= 1
        if counter[name] <= 0:
            del counter[name]

    def _backlog(self, run: int, key: str, cursor: int) -> tuple[np.ndarray, ...]:
        result = (
            self.store.reader()
            .execute(
                "SELECT step, t, value, seq FROM (SELECT step, t, value, seq FROM scalars WHERE"
                " run = $run AND key = $key AND seq > $cursor UNION ALL SELECT step, t, value, seq"
                " FROM scalars_live WHERE run = $run AND key = $key AND seq > $cursor) ORDER BY seq"
                f" LIMIT {MAX_PENDING + 1}",
                {"run": run, "key": key, "cursor": cursor},
            )
            .fetchnumpy()
        )
        return tuple(np.asarray(result[name]) for name in ("step", "t", "value", "seq"))

    async def serve(self, connection: Connection) -> None:
        """Send coalesced updates to one connection until it closes."""
        self.connections.add(connection)
        try:
            while True:
                await connection.wake.wait()
                connection.wake.clear()
                await asyncio.sleep(FLUSH_INTERVAL)
                await self._flush(connection)
        except WebSocketDisconnect:
            pass  # the client left while a message was on its way
        finally:
            self.connections.discard(connection)
            for sub_id in list(connection.subscriptions):
                self.unsubscribe(connection, sub_id)

    async def _flush(self, connection: Connection) -> None:
        # Its own frame, so that nothing of a message outlives its sending: each idle
        # connection kept its last points message alive, as Python lists of every value.
        for sub in list(connection.subscriptions.values()):
            message = await self._message(sub)
            if message is not None:
                await connection.websocket.send_text(wire.dumps(message).decode())

    async def _message(self, sub: Subscription) -> dict[str, Any] | None:
        if not sub.ready:
            return None
        if sub.overflow:
            sub.overflow = False
            return {"type": "resync", "id": sub.id, "cursor": sub.cursor}
        if sub.key is None:
            if not (sub.changed_runs or sub.removed_runs):
                return None
            changed, removed = sorted(sub.changed_runs), sorted(sub.removed_runs)
            sub.changed_runs, sub.removed_runs = set(), set()
            runs = await run_in_threadpool(self._runs, sub.project, changed)
            return {
                "type": "runs",
                "id": sub.id,
                "project": sub.project,
                "runs": runs,
                "removed": removed,
            }
        if not sub.points:
            return None
        steps, ts, values, seqs = (np.concatenate(c) for c in zip(*sub.points, strict=True))
        sub.points, sub.pending_points = [], 0
        _, unique = np.unique(seqs, return_index=True)  # sorted by seq, each point once
        keep = unique[seqs[unique] > (-1 if sub.cursor is None else sub.cursor)]
        if not len(keep):
            return None
        steps, ts, values, seqs = steps[keep], ts[keep], values[keep], seqs[keep]
        sub.cursor = int(seqs[-1])
        # A step logged twice: send only its newest point, in seq order. One from an earlier
        # message is the client's to replace.
        newest = _newest_per_step(steps)
        if newest is not None:
            steps, ts, values, seqs = steps[newest], ts[newest], values[newest], seqs[newest]
        return {
            "type": "points",
            "id": sub.id,
            "run": sub.run_id,
            "key": sub.key,
            "seq": seqs.astype(np.int64),
            "step": steps.astype(np.int64),
            "t": wire.floats(ts.astype(np.float64)),
            "value": wire.floats(values.astype(np.float64)),
            "cursor": sub.cursor,
        }

    def _runs(self, project: str, run_ids: list[str]) -> list[dict[str, Any]]:
        rows = (
            self.store.reader()
            .execute(
                "SELECT run_id, origin, name, run_status, tags, summary, last_step, created,"
                f" updated FROM {RUNS_WITH_STATUS}"
                " WHERE project = $project AND list_contains($ids, run_id)",
                {"project": project, "ids": run_ids, **status_params(self.heartbeat_timeout)},
            )
            .fetchall()
        )
        return [
            {
                "id": run_id,
                "origin": origin,
                "name": name,
                "status": status,
                "tags": tags,
                "summary": wire.loads_json_column(summary),
                "last_step": last_step,
                "created": created,
                "updated": updated,
            }
            for run_id, origin, name, status, tags, summary, last_step, created, updated in rows
        ]


def _newest_per_step(steps: np.ndarray):
    """Indices (ascending) of the last point of each step among ``steps`` (in seq order), or
    None when every point is the last of its step. While steps never go back, repeats are
    neighbours and one comparison finds them; keyed steps (docs/format.md) may go back."""
    if len(steps) < 2 or bool(np.all(steps[1:] > steps[:-1])):
        return None
    if bool(np.all(steps[1:] >= steps[:-1])):
        return np.flatnonzero(np.r_[steps[1:] != steps[:-1], True])
    _, last_from_end = np.unique(steps[::-1], return_index=True)
    return np.sort(len(steps) - 1 - last_from_end)
