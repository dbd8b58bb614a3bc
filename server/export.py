"""``waddle export``: a log folder's index as Hive-partitioned Parquet, written incrementally, so
DuckDB, Spark or Trino query a team's history where it lives (docs/api.md, "Export").

The rows are the index's: each run is read with the shared tailer into the ingester's
:class:`~waddle.server.ingester.Batch` (one code path with the server), and each table is
written under ``<to>/<table>/project=<p>/run=<id>/``. Every stream of a run is exported, rank
0's and each other rank's (waddle/ranks.py): each row says whose in a ``rank`` column, a rank's
parts are named ``rank-<N>-part-<seq>.parquet`` beside rank 0's, and the rows of the streams of
ranks other than 0 go to a ``ranks`` table as the index keeps them. It promises:

- **incremental**: per stream, the segment offsets and run state exported so far are kept in
  ``<to>/_waddle/runs/<p>/<id>.json`` (rank N's: ``<id>/ranks/<N>.json``); a later export reads only what was appended since, and
  leaves a run with nothing new alone;
- **no duplicate after a crash**: a part is named by the seq its read started after
  (``part-<seq>.parquet``), and the state is saved only after the parts; an export cut short
  writes the same part names again on the next run, replacing what it left;
- the ``runs`` and ``metrics`` tables hold one file per run (``run.parquet``,
  ``metrics.parquet``), ``ranks`` and ``metrics`` one per other rank (``rank-<N>.parquet``,
  ``metrics-rank-<N>.parquet``), replaced when the stream changes; NaN and ±Inf stay floats;
- ``--to`` is a folder or any URI pyarrow's file systems take (``s3://bucket/prefix``, with
  the usual ``AWS_*`` variables; ``gs://``, ``hdfs://``).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs
from waddle.server import tailer, wire
from waddle.server.ingester import Batch
from waddle.server.run_state import RunState, Stat, metrics_table

from waddle import names, ranks, segment
from waddle.run_folder import read_origin

# The tables of rows an export writes (the index's, less its own bookkeeping); each drops the
# index's integer `run`: the partition names the run.
ROW_TABLES = ("system", "media", "histograms", "tables", "text", "console", "alerts", "rejects")
STATE = "_waddle/runs"


def destination(to: str) -> tuple[fs.FileSystem, str]:
    """The file system and base path of ``--to``: a folder, or a URI pyarrow knows."""
    if "://" in to:
        try:
            return fs.FileSystem.from_uri(to)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as error:
            raise ValueError(f"cannot write to {to}: {error}") from None
    path = Path(to).expanduser().absolute()
    return fs.LocalFileSystem(), str(path)


class Export:
    def __init__(self, root: Path, to: str) -> None:
        self.root = Path(root)
        self.filesystem, self.base = destination(to)
        self.totals = {"runs": 0, "changed": 0, "events": 0, "points": 0, "rows": 0, "parts": 0}

    def run(self, project: str | None = None) -> dict[str, int]:
        """Export every run (of ``project``) that changed since the last export."""
        projects = [project] if project is not None else names.folders(self.root)
        for name in projects:
            for run_id in names.folders(self.root / name):
                run_dir = self.root / name / run_id
                if segment.list_segments(run_dir):
                    self.totals["runs"] += 1
                    changed = False
                    for rank, stream_dir in [(0, run_dir), *ranks.rank_streams(run_dir)]:
                        changed |= self._export_stream(name, run_id, rank, stream_dir)
                    self.totals["changed"] += changed
        return self.totals

    def _path(self, *parts: str) -> str:
        return "/".join([self.base.rstrip("/"), *parts])

    def _export_stream(self, project: str, run_id: str, rank: int, stream_dir: Path) -> bool:
        """Export what is new in one stream of a run; True when there was something."""
        state = self._load(project, run_id, rank)
        sizes = {p.name: p.stat().st_size for p in segment.list_segments(stream_dir)}
        if sizes == {name: state.offsets.get(name, -1) for name in sizes}:
            return False  # nothing appended since the last export
        partition = f"project={project}/run={run_id}"
        prefix = f"rank-{rank}-" if rank else ""
        stream = f"{ranks.RANKS_DIR}/{rank}/" if rank else ""
        changed = False
        while True:
            batch = Batch()
            first = state.next_seq
            unread = tailer.read_run(state, stream_dir, batch, stream=stream)
            if not batch.events and not batch.rows["rejects"]:
                break
            changed = True
            self._write_parts(batch, rank, partition, f"{prefix}part-{first:020d}.parquet")
            self.totals["events"] += batch.events
            if not unread:
                break
        if changed:
            # The partition names the project and run: columns of those names would clash.
            row = state.table.from_dicts([state.row()]).drop_columns(["project", "run_id"])
            if rank:
                self._write(row, "ranks", rank, partition, f"rank-{rank}.parquet")
            else:
                self._write(row, "runs", None, partition, "run.parquet")
            name = f"metrics-rank-{rank}.parquet" if rank else "metrics.parquet"
            self._write(metrics_table([state]), "metrics", rank, partition, name)
        self._save(state)
        return changed

    def _write_parts(self, batch: Batch, rank: int, partition: str, name: str) -> None:
        clustered, _blocks, live = batch.scalar_tables()
        scalars = pa.concat_tables([clustered, live])
        if scalars.num_rows:
            scalars = scalars.set_column(1, "key", scalars.column("key").cast(pa.string()))
            self._write(scalars, "scalars", rank, partition, name)
            self.totals["points"] += scalars.num_rows
        for table in ROW_TABLES:
            if batch.rows[table]:
                rows = batch.rows_table(table)
                self._write(rows, table, rank, partition, name)
                self.totals["rows"] += rows.num_rows

    def _write(
        self, table: pa.Table, kind: str, rank: int | None, partition: str, name: str
    ) -> None:
        """Write ``table`` as ``name`` of the run's partition of ``kind``, with the stream's
        ``rank`` as a column (None: the table has its own, or is the run's, rank 0's)."""
        if "run" in table.column_names:
            table = table.drop_columns(["run"])
        if rank is not None and "rank" not in table.column_names:
            table = table.append_column("rank", pa.array([rank] * table.num_rows, pa.int32()))
        folder = self._path(kind, partition)
        self.filesystem.create_dir(folder, recursive=True)
        pq.write_table(table, f"{folder}/{name}", filesystem=self.filesystem)
        self.totals["parts"] += 1

    # --- what was exported of a run ---

    def _state_path(self, project: str, run_id: str, rank: int) -> str:
        if rank:
            return self._path(STATE, project, run_id, ranks.RANKS_DIR, f"{rank}.json")
        return self._path(STATE, project, f"{run_id}.json")

    def _load(self, project: str, run_id: str, rank: int) -> RunState:
        try:
            with self.filesystem.open_input_stream(self._state_path(project, run_id, rank)) as file:
                saved = orjson.loads(file.read())
        except (FileNotFoundError, OSError, orjson.JSONDecodeError):
            saved = None
        if saved is None:
            state = RunState(0, project, run_id, rank=rank)
            origin = read_origin(self.root / project / run_id)
            if origin is not None:
                state.origin, state.origin_run_id = origin.origin, origin.run_id
            return state
        state = RunState.from_row(saved["run"])
        state.offsets = {str(k): int(v) for k, v in saved["offsets"].items()}
        for key, kind, stat in saved["stats"]:
            # Non-finite floats were saved as their wire tokens ("NaN", "Infinity").
            numbers = {k: float(v) if isinstance(v, str) else v for k, v in stat.items()}
            state.stats[(key, kind)] = Stat(**numbers)
        return state

    def _save(self, state: RunState) -> None:
        saved = {
            "run": state.row(),
            "offsets": state.offsets,
            "stats": [[key, kind, asdict(stat)] for (key, kind), stat in state.stats.items()],
        }
        path = self._state_path(state.project, state.run_id, state.rank)
        self.filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with self.filesystem.open_output_stream(path) as file:
            file.write(wire.dumps(saved))


def export_command(root: Path, to: str, project: str | None = None) -> str:
    """Export and say what was written (one line)."""
    totals = Export(root, to).run(project)
    return (
        f"exported {totals['changed']} of {totals['runs']} runs that changed to {to}: "
        f"{totals['events']:,} events, {totals['points']:,} scalar points, "
        f"{totals['rows']:,} other rows in {totals['parts']:,} files"
    )
