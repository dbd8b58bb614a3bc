"""The index: one DuckDB file, its schema, and the single connection that writes it.

The store owns the DuckDB file of one server process. It promises:

- exactly one writer: the connection made here, used only by the indexer thread through
  :meth:`Store.transaction`; readers (API requests) get cursors of the same database with
  :meth:`Store.reader`, and see only committed transactions;
- the schema of server/schema.py, created on open; a file from another schema version is refused with a
  message saying to delete it or run ``waddle reindex`` (the index is rebuilt from the logs);
- rows of a transaction, registered as Arrow tables, reach the table with one
  ``INSERT … SELECT`` each, never row by row.

The tables and their columns are defined in server/schema.py.
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
from waddle.server.schema import DDL, SCHEMA_VERSION


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
        self._con.execute(DDL)

    def _check_version(self) -> None:
        tables = {row[0] for row in self._con.execute("SHOW TABLES").fetchall()}
        if "meta" not in tables:
            self._con.execute(DDL)
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
