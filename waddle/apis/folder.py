"""``waddle.Api()``'s reader of a local log folder: runs, their events and artifacts, with no
server (docs/format.md).

Runs are found as ``waddle ls`` finds them. A run's config, summary, files and artifact events
come from one pass over its events, read once per :class:`FolderRun`; the summary follows the
client's rules (waddle/summary.py: last value, or what ``define_metric`` asked for, then
explicit values). History comes from :mod:`waddle.history`, whose columnar copies are kept
under ``<log dir>/.waddle/history/``. Artifacts are read from each project's artifact store
(waddle/artifact_store.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from waddle import artifact_store, history, names, segment
from waddle.artifact import Artifact, load
from waddle.catalog import list_runs
from waddle.ranks import inspect_ranks
from waddle.run_folder import RunRecord, inspect_run
from waddle.summary import Logged


class Folder:
    """A log folder read directly; ``timeout``: seconds of silence after which a run that did
    not finish counts as crashed."""

    def __init__(self, folder: Path, timeout: float) -> None:
        self.dir, self._timeout = folder, timeout

    def where(self) -> str:
        return str(self.dir)

    def projects(self) -> list[str]:
        return sorted({record.project for record in list_runs(self.dir, self._timeout)})

    def runs(self, project: str | None) -> list[FolderRun]:
        return [
            FolderRun(self, record)
            for record in list_runs(self.dir, self._timeout, project=project)
        ]

    def run(self, project: str, run_id: str) -> FolderRun:
        record = inspect_run(self.dir / project / run_id, self._timeout)
        if record is None:
            raise ValueError(f"no run {run_id!r} in project {project!r} of {self.dir}")
        inspect_ranks(record, self._timeout)
        return FolderRun(self, record)

    def artifact(self, project: str, name: str, ref: str) -> Artifact:
        try:
            version = artifact_store.resolve(self.dir / project, name, ref)
        except LookupError as error:
            raise ValueError(str(error)) from None
        return load(self.dir / project, version)

    def artifacts(self, project: str, name: str) -> list[Artifact]:
        return [
            load(self.dir / project, version)
            for version in artifact_store.versions(self.dir / project, name)
        ]


class FolderRun:
    """One run folder: its identity from the folder's record (rank 0's, with the run's status
    over its ranks: waddle/ranks.py), the rest from its events; history from the stream of the
    rank asked for."""

    def __init__(self, folder: Folder, record: RunRecord) -> None:
        self._folder, self._record = folder, record
        start = record.start or {}
        self.fields = {
            "id": record.run_id,
            "project": record.project,
            "name": record.name,
            "tags": list(start.get("tags") or []),
            "notes": start.get("notes"),
            "group": start.get("group"),
            "job_type": start.get("job_type"),
            "state": record.status,
            "created_at": record.started,
            "last_step": record.last_step,
            "dir": record.path,
        }
        self._events: dict[str, Any] | None = None

    def details(self) -> dict[str, Any]:
        """``config``, ``summary`` and ``metadata`` (the run's context)."""
        read = self._read()
        context = (self._record.start or {}).get("context", {})
        return {"config": read["config"], "summary": read["summary"], "metadata": context}

    def ranks(self) -> list[int]:
        return [0, *sorted(self._record.ranks)]

    def _stream(self, rank: int) -> RunRecord:
        return self._record if rank == 0 else self._record.ranks[rank]

    def scalar_columns(self, keys: list[str], rank: int) -> dict[str, Any] | None:
        stream = self._stream(rank)
        cache = self._folder.dir / ".waddle" / "history" / stream.path.relative_to(self._folder.dir)
        return history.scalar_columns(stream.path, keys, stream.started, cache)

    def rows(
        self,
        keys: list[str] | None,
        min_step: int,
        max_step: int | None,
        page_size: int,
        rank: int,
    ) -> Iterator[dict[str, Any]]:
        """Every row of a step in [min_step, max_step), streamed from the events."""
        stream = self._stream(rank)
        for row in history.scan(stream.path, stream.started):
            if row["_step"] < min_step or (max_step is not None and row["_step"] >= max_step):
                continue  # keyed steps (docs/format.md) may come in any order: read on
            if keys is None or all(key in row for key in keys):
                yield row

    def system_rows(self, rank: int) -> Iterator[dict[str, Any]]:
        stream = self._stream(rank)
        for event in segment.read_events(stream.path):
            if event["type"] == "system":
                yield {
                    "_timestamp": event["t"],
                    "_runtime": event["t"] - (stream.started or 0),
                    **event["data"],
                }

    def files(self) -> list[tuple[dict[str, Any], Any]]:
        """Each saved file's record (``name``, ``bytes``, ``sha256``, ``path``) and a function
        copying it to a path."""
        import shutil

        run_dir = self._record.path
        return [
            (event, lambda target, path=run_dir / event["path"]: shutil.copyfile(path, target))
            for event in self._read()["files"]
        ]

    def artifacts(self, action: str) -> list[Artifact]:
        """The artifact versions this run logged (``log``) or used (``use``), in order."""
        found: dict[tuple[str, str, int], Artifact] = {}
        for event in self._read()["artifacts"]:
            key = (event.get("project"), event.get("name"), event.get("version"))
            if event.get("action") != action or key in found:
                continue
            try:
                project_dir = self._folder.dir / names.check("project", key[0])
                version = artifact_store.resolve(project_dir, key[1], f"v{key[2]}")
            except (LookupError, ValueError):
                continue  # no longer in the store
            found[key] = load(project_dir, version)
        return list(found.values())

    def _read(self) -> dict[str, Any]:
        """Config, summary, files and artifact events from one pass over the events (cached)."""
        if self._events is None:
            config: dict[str, Any] = {}
            explicit: dict[str, Any] = {}
            files: list[dict[str, Any]] = []
            artifacts: list[dict[str, Any]] = []
            logged = Logged()
            for event in segment.read_events(self._record.path):
                kind = event["type"]
                if kind == "log":
                    logged.update(event["data"])
                elif kind == "run_start":
                    config.update(event.get("config") or {})
                elif kind == "config":
                    config.update(event.get("data") or {})
                elif kind == "summary":
                    explicit.update(event.get("data") or {})
                elif kind == "define_metric":
                    logged.define(event["name"], event.get("summary"))
                elif kind == "file":
                    files.append(event)
                elif kind == "artifact":
                    artifacts.append(event)
            summary = {key: logged[key] for key in logged}
            summary.update(explicit)
            self._events = {
                "config": config,
                "summary": summary,
                "files": files,
                "artifacts": artifacts,
            }
        return self._events
