"""The index schema: every table of the index, each column named and typed once.

Everything that spells a column comes from the :class:`Table` definitions here: the DuckDB DDL
(server/store.py), the Arrow schemas rows are built with before they are inserted (the
ingester, the run states, the blocks), a run's row builder and the SELECTs that read rows back
after a restart. So a column cannot be added, renamed or retyped in one place and forgotten
in another. ``SCHEMA_VERSION`` changes with any change here: an index file of another version
is refused with a message to run ``waddle reindex``.

``run`` is the integer id the index gives each stream of a run folder (rank 0's, the folder's
own, in ``runs``; each other rank's in ``ranks``); every table holding rows of a run has it
(see :data:`RUN_TABLES`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import pyarrow as pa

SCHEMA_VERSION = "9"

# A column's type: its DuckDB type and the Arrow type its rows are built with.
TYPES = {
    "int32": ("INTEGER", pa.int32()),
    "int64": ("BIGINT", pa.int64()),
    "double": ("DOUBLE", pa.float64()),
    "text": ("VARCHAR", pa.string()),
    "texts": ("VARCHAR[]", pa.list_(pa.string())),
    "json": ("JSON", pa.string()),  # JSON text, written by server/wire.py
    # A text column built as Arrow dictionary indices: one string per distinct key of a batch,
    # not one per point (scalars).
    "key": ("VARCHAR", pa.dictionary(pa.int32(), pa.string())),
}


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, type in TYPES), in table order

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def ddl(self) -> str:
        columns = ", ".join(f'"{name}" {TYPES[kind][0]}' for name, kind in self.columns)
        return f"CREATE TABLE {self.name} ({columns});"

    @cached_property
    def arrow(self) -> pa.Schema:
        return pa.schema([(name, TYPES[kind][1]) for name, kind in self.columns])

    @property
    def select(self) -> str:
        """``SELECT`` of every column in table order (rows read back as the Arrow schema's)."""
        quoted = ", ".join(f'"{name}"' for name in self.names)
        return f"SELECT {quoted} FROM {self.name}"

    def from_rows(self, rows: list[tuple]) -> pa.Table:
        """An Arrow table of ``rows`` (tuples in column order) with this table's types."""
        return pa.table(list(zip(*rows, strict=True)), schema=self.arrow)

    def from_dicts(self, rows: list[dict]) -> pa.Table:
        """An Arrow table of ``rows`` (dicts by column name) with this table's types."""
        return pa.Table.from_pylist(rows, self.arrow)


_SERIES = (("run", "int32"), ("key", "text"), ("step", "int64"), ("t", "double"), ("seq", "int64"))
_SCALARS = (*_SERIES[:1], ("key", "key"), *_SERIES[2:], ("value", "double"))
_RICH = (*_SERIES, ("type", "text"), ("value", "json"))

META = Table("meta", (("key", "text"), ("value", "text")))
RUNS = Table(
    "runs",
    (
        ("run", "int32"),
        ("project", "text"),
        ("run_id", "text"),
        # A relayed run (waddle/run_folder.py, origin.json): its machine and its id there.
        ("origin", "text"),
        ("origin_run_id", "text"),
        ("name", "text"),
        ("group", "text"),
        ("job_type", "text"),
        ("tags", "texts"),
        ("notes", "text"),
        ("config", "json"),
        ("summary", "json"),
        ("context", "json"),
        ("status", "text"),
        ("created", "double"),
        ("updated", "double"),
        ("heartbeat", "double"),
        ("last_step", "int64"),
        ("next_seq", "int64"),
        ("events", "int64"),
        ("rejected", "int64"),
        ("gaps", "int64"),
        ("dropped_steps", "int64"),
        ("dropped_values", "int64"),
        ("lost_events", "int64"),
        ("exit_code", "int64"),
        ("finish", "json"),
        ("defines", "json"),
        ("explicit_summary", "json"),
        ("missing", "json"),
    ),
)
# The streams of ranks other than 0 (docs/format.md, "Ranks"): a row as a run's, with its rank.
# Each stream has its own integer ``run``, so every row of every table names its rank too;
# ``runs`` holds the run folders' own streams (rank 0), the runs as a reader without ranks
# sees them.
RANKS = Table("ranks", (RUNS.columns[0], ("rank", "int32"), *RUNS.columns[1:]))
# Per segment file, the byte offset up to which its lines are in the index.
OFFSETS = Table("offsets", (("run", "int32"), ("segment", "text"), ("offset", "int64")))
# Numeric values: `scalars` clustered per series (run, key, step) for fast M4 queries;
# `scalars_live` recent small batches in arrival order, moved into `scalars` by compaction.
SCALARS = Table("scalars", _SCALARS)
SCALARS_LIVE = Table("scalars_live", _SCALARS)
# M4 of the rows of `scalars` per (run, key, block of steps) (server/blocks.py); the min and
# max columns are NULL for a block of only NaN points.
SCALAR_BLOCKS = Table(
    "scalar_blocks",
    (
        ("run", "int32"),
        ("key", "text"),
        ("block", "int64"),
        ("count", "int64"),
        ("x_first", "int64"),
        ("first", "double"),
        ("x_last", "int64"),
        ("last", "double"),
        ("x_min", "int64"),
        ("min", "double"),
        ("x_max", "int64"),
        ("max", "double"),
        ("nan", "int64"),
    ),
)
# Per (run, key, kind): count, first and last step, min, max, sum, finite count, first, last (a
# scalar step logged twice counts once, with its newest value), the min and max before the last
# step, and rows, the points stored (rows > count: a step was logged twice). The columns after
# run, key and kind are the fields of server/run_state.py's Stat.
METRICS = Table(
    "metrics",
    (
        ("run", "int32"),
        ("key", "text"),
        ("kind", "text"),
        ("count", "int64"),
        ("first_step", "int64"),
        ("last_step", "int64"),
        ("min", "double"),
        ("max", "double"),
        ("sum", "double"),
        ("finite", "int64"),
        ("first", "double"),
        ("last", "double"),
        ("before_min", "double"),
        ("before_max", "double"),
        ("rows", "int64"),
    ),
)
# Lines or values the indexer could not take, with where they are and why.
REJECTS = Table(
    "rejects",
    (
        ("run", "int32"),
        ("file", "text"),
        ("offset", "int64"),
        ("kind", "text"),  # one of server/ingester.py's REJECT_KINDS
        ("reason", "text"),
        ("t", "double"),
    ),
)
# Lineage: every `artifact` event, a run logging (`action` log) or using (use) a version of
# the artifact `name` of `project` (docs/format.md); the versions themselves and their
# aliases are read from the project's artifact store (waddle/artifact_store.py).
ARTIFACTS = Table(
    "artifacts",
    (
        ("run", "int32"),
        ("seq", "int64"),
        ("t", "double"),
        ("action", "text"),
        ("project", "text"),
        ("name", "text"),
        ("version", "int64"),
        ("type", "text"),
        ("digest", "text"),
        ("aliases", "texts"),
    ),
)

TABLES = {
    table.name: table
    for table in (
        META,
        RUNS,
        RANKS,
        OFFSETS,
        SCALARS,
        SCALARS_LIVE,
        SCALAR_BLOCKS,
        METRICS,
        Table(
            "system",
            (
                ("run", "int32"),
                ("key", "text"),
                ("t", "double"),
                ("seq", "int64"),
                ("value", "double"),
            ),
        ),
        # Rich values ({"_type": ...}): histograms and tables apart, every other type in media.
        Table("media", _RICH),
        Table("histograms", _RICH),
        Table("tables", _RICH),
        Table("text", (*_SERIES, ("value", "text"))),  # string values
        Table(
            "console",
            (
                ("run", "int32"),
                ("seq", "int64"),
                ("t", "double"),
                ("stream", "text"),
                ("text", "text"),
            ),
        ),
        Table(
            "alerts",
            (
                ("run", "int32"),
                ("seq", "int64"),
                ("t", "double"),
                ("title", "text"),
                ("text", "text"),
                ("level", "text"),
            ),
        ),
        REJECTS,
        ARTIFACTS,
    )
}
# Every table holding rows of a run, for deleting a run from the index.
RUN_TABLES = tuple(name for name, table in TABLES.items() if "run" in table.names)
DDL = "\n".join(table.ddl for table in TABLES.values())
