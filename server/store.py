"""The index: one DuckDB file, its schema, and the single connection that writes it.

The store owns the DuckDB file of one server process. It promises:

- exactly one writer: the connection made here, used only by the indexer thread through
  :meth:`Store.transaction`; readers (API requests) get cursors of the same database with
  :meth:`Store.reader`, and see only committed transactions;
- the schema below, created on open; a file from another schema version is refused with a
  message saying to delete it or run ``waddle reindex`` (the index is rebuilt from the logs);
- rows of a transaction, registered as Arrow tables, reach the table with one
  ``INSERT … SELECT`` each, never row by row.

Tables (``run`` is the integer id the index gives each run folder):

- ``runs``: one row per run folder: identity, metadata, summary, status and counters;
- ``offsets``: per segment file, the byte offset up to which its lines are in the index;
- ``scalars``: numeric values, clustered per series (run, key, step) for fast M4 queries;
  ``scalars_live``: recent small batches in arrival order, moved into ``scalars`` sorted by
  :meth:`Store.compact`; queries read both;
- ``scalar_blocks``: M4 of the rows of ``scalars`` per (run, key, block of steps), written in
  the same transaction as those rows (server/blocks.py); M4 over a wide range reads these
  instead of the points (server/series.py);
- ``metrics``: per (run, key, kind): count, first and last step, min, max, sum, first, last
  (a scalar step logged twice counts once, with its newest value), the min and max before
  the last step, and ``rows``: the points stored, so ``rows > count`` tells a series has a step
  logged twice;
- ``system``, ``media``, ``histograms``, ``tables``, ``text``, ``console``, ``alerts``;
- ``rejects``: lines or values the indexer could not take, with file, byte offset and reason.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from waddle.server.blocks import BLOCKS_SQL

SCHEMA_VERSION = "5"

_SERIES = "run INTEGER, key VARCHAR, step BIGINT, t DOUBLE, seq BIGINT"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key VARCHAR, value VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    run INTEGER, project VARCHAR, run_id VARCHAR, name VARCHAR, "group" VARCHAR,
    job_type VARCHAR, tags VARCHAR[], notes VARCHAR, config JSON, summary JSON, context JSON,
    status VARCHAR, created DOUBLE, updated DOUBLE, heartbeat DOUBLE, last_step BIGINT,
    next_seq BIGINT, events BIGINT, rejected BIGINT, dropped_steps BIGINT,
    dropped_values BIGINT, lost_events BIGINT, exit_code BIGINT, finish JSON,
    defines JSON, explicit_summary JSON
);
CREATE TABLE IF NOT EXISTS offsets (run INTEGER, segment VARCHAR, "offset" BIGINT);
CREATE TABLE IF NOT EXISTS scalars ({_SERIES}, value DOUBLE);
CREATE TABLE IF NOT EXISTS scalars_live ({_SERIES}, value DOUBLE);
CREATE TABLE IF NOT EXISTS scalar_blocks (
    run INTEGER, key VARCHAR, block BIGINT, count BIGINT, x_first BIGINT, first DOUBLE,
    x_last BIGINT, last DOUBLE, x_min BIGINT, min DOUBLE, x_max BIGINT, max DOUBLE, nan BIGINT
);
CREATE TABLE IF NOT EXISTS metrics (
    run INTEGER, key VARCHAR, kind VARCHAR, count BIGINT, first_step BIGINT, last_step BIGINT,
    min DOUBLE, max DOUBLE, sum DOUBLE, finite BIGINT, first DOUBLE, last DOUBLE,
    before_min DOUBLE, before_max DOUBLE, rows BIGINT
);
CREATE TABLE IF NOT EXISTS system (run INTEGER, key VARCHAR, t DOUBLE, seq BIGINT, value DOUBLE);
CREATE TABLE IF NOT EXISTS media ({_SERIES}, type VARCHAR, value JSON);
CREATE TABLE IF NOT EXISTS histograms ({_SERIES}, type VARCHAR, value JSON);
CREATE TABLE IF NOT EXISTS tables ({_SERIES}, type VARCHAR, value JSON);
CREATE TABLE IF NOT EXISTS text ({_SERIES}, value VARCHAR);
CREATE TABLE IF NOT EXISTS console (run INTEGER, seq BIGINT, t DOUBLE, stream VARCHAR, text VARCHAR);
CREATE TABLE IF NOT EXISTS alerts (
    run INTEGER, seq BIGINT, t DOUBLE, title VARCHAR, text VARCHAR, level VARCHAR
);
CREATE TABLE IF NOT EXISTS rejects (
    run INTEGER, file VARCHAR, "offset" BIGINT, reason VARCHAR, t DOUBLE
);
"""

# Every table holding rows of a run, for deleting a run from the index.
RUN_TABLES = (
    "runs",
    "offsets",
    "scalars",
    "scalars_live",
    "scalar_blocks",
    "metrics",
    "system",
    "media",
    "histograms",
    "tables",
    "text",
    "console",
    "alerts",
    "rejects",
)


class StoreError(RuntimeError):
    """The index file cannot be used; the message says why and what to do."""


class Store:
    """The DuckDB index file: the writer connection and read cursors."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(self.path))
        except duckdb.IOException as error:
            raise StoreError(
                f"cannot open the index {self.path}: {error}. Is another `waddle serve` "
                "or `waddle reindex` using it?"
            ) from None
        self._local = threading.local()
        self._check_version()
        self._con.execute(SCHEMA)

    def _check_version(self) -> None:
        tables = {row[0] for row in self._con.execute("SHOW TABLES").fetchall()}
        if "meta" not in tables:
            self._con.execute(SCHEMA)
            self._con.execute("INSERT INTO meta VALUES ('schema', ?)", [SCHEMA_VERSION])
            return
        row = self._con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None or row[0] != SCHEMA_VERSION:
            raise StoreError(
                f"the index {self.path} was made by another waddle version; delete it or run "
                "`waddle reindex` to rebuild it from the logs"
            )

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The writer connection inside BEGIN … COMMIT (ROLLBACK on error). Indexer thread only."""
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def reader(self) -> duckdb.DuckDBPyConnection:
        """A read cursor for the calling thread (one per thread, reused)."""
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._con.cursor()
            self._local.cursor = cursor
        return cursor

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        return self.reader().execute(sql, params or []).fetchall()

    def compact(self) -> int:
        """Move ``scalars_live`` into ``scalars`` sorted per series; returns the rows moved."""
        with self.transaction() as con:
            (rows,) = con.execute("SELECT count(*) FROM scalars_live").fetchone()
            if rows:
                con.execute(
                    "INSERT INTO scalars SELECT * FROM scalars_live ORDER BY run, key, step, seq"
                )
                con.execute(BLOCKS_SQL.format(rows="scalars_live"))
                con.execute("DELETE FROM scalars_live")
        return rows

    def close(self) -> None:
        self._con.close()


def insert_arrow(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
    """Append an Arrow table's rows to ``table`` in one INSERT … SELECT (columns in order)."""
    if rows.num_rows == 0:
        return
    con.register("_batch", rows)
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM _batch")
    finally:
        con.unregister("_batch")
