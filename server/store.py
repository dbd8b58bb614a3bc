"""The index: one DuckDB file, its schema, and the single connection that writes it.

The store owns the DuckDB file of one server process. It promises:

- exactly one writer: the connection made here, used only by the indexer thread through
  :meth:`Store.transaction`; readers (API requests) get cursors of the same database with
  :meth:`Store.reader`, and see only committed transactions;
- the schema of server/schema.py, created with its version row in one transaction when the
  file is new (a kill leaves all or nothing); a file of another schema version, or one that
  is no waddle index, is refused with a :class:`StoreError` saying to run ``waddle reindex``
  (the index is rebuilt from the logs);
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
    """The index file cannot be used; the message says why and what to do.

    ``in_use``: another process holds it (nothing to rebuild); ``other_version``: a waddle index
    of another schema version, which ``waddle reindex`` replaces; otherwise the file is not an
    index this waddle can read (unreadable, not a DuckDB file, another program's file, or
    left half made), which ``waddle reindex`` moves aside before it rebuilds.
    """

    def __init__(
        self, message: str, why: str = "", in_use: bool = False, other_version: bool = False
    ) -> None:
        super().__init__(message)
        self.why, self.in_use, self.other_version = why, in_use, other_version


class Store:
    """The DuckDB index file: the writer connection and read cursors."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(self.path))
        except duckdb.Error as error:
            if "lock" in str(error).lower():
                raise StoreError(
                    f"the index {self.path} is in use by another process: is another "
                    "`waddle serve` or `waddle reindex` running on it?",
                    in_use=True,
                ) from None
            raise self._unusable(f"cannot be read ({_first_line(error)})") from None
        self._local = threading.local()
        try:
            self._check_version()
        except BaseException:
            self._con.close()
            raise

    def _check_version(self) -> None:
        try:
            tables = {row[0] for row in self._con.execute("SHOW TABLES").fetchall()}
            if not tables:
                self._create()
                return
            row = None
            if "meta" in tables:
                row = self._con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except duckdb.Error as error:
            raise self._unusable(f"cannot be read ({_first_line(error)})") from None
        if row is None:
            raise self._unusable("is not a waddle index (or was left half made)")
        if row[0] != SCHEMA_VERSION:
            raise StoreError(
                f"the index {self.path} was made by another waddle version (schema {row[0]}, "
                f"this one reads {SCHEMA_VERSION}); {self._fix()}",
                other_version=True,
            )

    def _create(self) -> None:
        """The schema and its version row, in one transaction: a kill leaves all or nothing."""
        with self.transaction() as con:
            con.execute(DDL)
            con.execute("INSERT INTO meta VALUES ('schema', ?)", [SCHEMA_VERSION])

    def _unusable(self, why: str) -> StoreError:
        return StoreError(f"the index {self.path} {why}; {self._fix()}", why=why)

    def _fix(self) -> str:
        # The default index lives in the log folder's .waddle/: the command can name the folder.
        if self.path.parent.name == ".waddle":
            command = f"waddle reindex {self.path.parent.parent}"
        else:
            command = f"waddle reindex DIR --db {self.path}"
        return f"run `{command}` to rebuild it from the logs"

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


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]
