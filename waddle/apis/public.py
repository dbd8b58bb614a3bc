"""``waddle.Api()``: W&B's public API, reading runs straight from a local log folder.

    api = waddle.Api()                       # the folder of $WADDLE_DIR, default ./logs
    for run in api.runs("mnist", filters={"config.lr": {"$lt": 0.01}}, order="-summary_metrics.acc"):
        print(run.name, run.state, run.summary["acc"])
    frame = api.run("mnist/20261128-094418-136-ri3fsw").history(keys=["loss"])

No server is needed: runs are found as ``waddle ls`` finds them, and a run's config, summary
and history are read from its events (:mod:`waddle.history`), once per ``Run`` object. The
summary follows the client's rules (waddle/summary.py: last value, or what ``define_metric``
asked for, then explicit values). Paths are ``project/run_id``; W&B's ``entity/project/run_id``
is accepted and its entity ignored. Artifacts (``api.artifact("project/name:alias")``, a run's
``logged_artifacts()`` and ``used_artifacts()``) are read from the project's artifact store
(waddle/artifact_store.py).
"""

from __future__ import annotations

import fnmatch
import math
import operator
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from waddle import artifact_store, history, names, segment
from waddle.artifact import Artifact, load
from waddle.catalog import list_runs
from waddle.ranks import inspect_ranks
from waddle.run_folder import RunRecord, inspect_run
from waddle.settings import resolve_one
from waddle.summary import Logged


class Api:
    def __init__(
        self,
        overrides: dict[str, Any] | None = None,
        timeout: int | None = None,
        api_key: str | None = None,
    ) -> None:
        overrides = overrides or {}
        self.dir = Path(resolve_one("dir", overrides.get("dir") or overrides.get("base_url_dir")))
        self.default_project = overrides.get("project")
        self._timeout = resolve_one("heartbeat_timeout")

    def runs(
        self,
        path: str | None = None,
        filters: dict[str, Any] | None = None,
        order: str = "+created_at",
        per_page: int = 50,
        include_sweeps: bool = False,
        lazy: bool = True,
    ) -> Runs:
        """The runs of a project (``path``: ``project`` or ``entity/project``), those matching
        ``filters`` (W&B's MongoDB-like filters), sorted by ``order``."""
        project = self._project(path)
        found = [
            Run(self, record) for record in list_runs(self.dir, self._timeout, project=project)
        ]
        if filters:
            found = [run for run in found if _matches(run, filters)]
        return Runs(_sorted(found, order))

    def run(self, path: str = "") -> Run:
        """One run: ``project/run_id`` (or ``entity/project/run_id``)."""
        parts = [part for part in path.split("/") if part]
        if len(parts) == 1 and self.default_project:
            parts = [self.default_project, *parts]
        if len(parts) not in (2, 3):
            raise ValueError(f"Api.run({path!r}): give project/run_id")
        project, run_id = parts[-2], parts[-1]
        names.check("project", project)
        names.check("run id", run_id)
        record = inspect_run(self.dir / project / run_id, self._timeout)
        if record is None:
            raise ValueError(f"no run {run_id!r} in project {project!r} of {self.dir}")
        inspect_ranks(record, self._timeout)
        return Run(self, record)

    def artifact(self, name: str, type: str | None = None) -> Artifact:
        """A version of an artifact: ``project/name:alias`` (or ``entity/project/name:vN``;
        ``name:alias`` in the default project); ``latest`` when no alias is given."""
        project, artifact_name, ref = artifact_store.parse_reference(name)
        project = project or self.default_project
        if project is None:
            raise ValueError(f"Api.artifact({name!r}): give project/name:alias")
        try:
            version = artifact_store.resolve(self.dir / project, artifact_name, ref)
        except LookupError as error:
            raise ValueError(f"Api.artifact({name!r}): {error}") from None
        found = load(self.dir / project, version)
        if type is not None and found.type != type:
            raise ValueError(f"Api.artifact({name!r}) is of type {found.type!r}, not {type!r}")
        return found

    def artifact_exists(self, name: str, type: str | None = None) -> bool:
        try:
            self.artifact(name, type)
        except ValueError:
            return False
        return True

    def artifacts(self, type_name: str, name: str, per_page: int = 50) -> list[Artifact]:
        """Every version of the artifact ``project/name`` of type ``type_name``, oldest first."""
        project, artifact_name, _ = artifact_store.parse_reference(name)
        project = project or self.default_project
        if project is None:
            raise ValueError(f"Api.artifacts(..., {name!r}): give project/name")
        return [
            load(self.dir / project, version)
            for version in artifact_store.versions(self.dir / project, artifact_name)
            if version.type == type_name
        ]

    def _project(self, path: str | None) -> str | None:
        if not path:
            return self.default_project
        return names.check("project", path.split("/")[-1])


class Runs(Sequence):
    """A list of runs (W&B's paginated ``Runs``; here all are read at once)."""

    def __init__(self, runs: list[Run]) -> None:
        self._runs = runs

    def __getitem__(self, index: Any) -> Any:
        return self._runs[index]

    def __len__(self) -> int:
        return len(self._runs)

    def __repr__(self) -> str:
        return f"<Runs {len(self._runs)}>"


class Run:
    """One run read back: identity, state, config, summary, history, files.

    A run of several ranks (waddle/ranks.py) reads as one: its state is the run's (crashed
    when a rank died), its config and summary rank 0's; ``ranks`` lists its ranks, and
    ``history()``, ``scan_history()`` take ``rank=`` (default 0) for another rank's stream.
    """

    def __init__(self, api: Api, record: RunRecord) -> None:
        self._api = api
        self._record = record
        self._events: dict[str, Any] | None = None
        start = record.start or {}
        self.id = record.run_id
        self.project = record.project
        self.entity = "local"
        self.path = [self.entity, self.project, self.id]
        self.name = self.display_name = record.name
        self.tags = list(start.get("tags") or [])
        self.notes = start.get("notes")
        self.group = start.get("group")
        self.job_type = start.get("job_type")
        self.state = record.status
        self.created_at = record.started
        self.url = None
        self.lastHistoryStep = record.last_step if record.last_step is not None else -1
        self.dir = record.path
        self.ranks = [0, *sorted(record.ranks)]

    @property
    def config(self) -> dict[str, Any]:
        return self._read()["config"]

    @property
    def summary(self) -> dict[str, Any]:
        return self._read()["summary"]

    summary_metrics = summary

    @property
    def metadata(self) -> dict[str, Any]:
        """The run's context: host, command line, git, GPUs (docs/format.md)."""
        return (self._record.start or {}).get("context", {})

    def history(
        self,
        samples: int = 500,
        keys: list[str] | None = None,
        x_axis: str = "_step",
        pandas: bool = True,
        stream: str = "default",
        rank: int = 0,
    ) -> Any:
        """At most ``samples`` rows, evenly spread over the run (first and last kept); with
        ``keys``, only steps that have every one of them. ``stream="system"``: the system
        metrics over time. ``rank``: that rank's stream. A DataFrame with ``pandas=True``
        (needs pandas), else dicts."""
        path, started = self._stream(rank)
        if stream != "system" and keys:
            columns = history.scalar_columns(path, keys, started)
            if columns is not None:  # numbers only: straight from columns, no row objects
                every = columns[history.HAS + keys[0]].copy()
                for key in keys[1:]:
                    every &= columns[history.HAS + key]
                chosen = _spread(every.nonzero()[0], samples)
                shown = {
                    name: columns[name][chosen]
                    for name in ("_step", "_timestamp", "_runtime", *keys)
                }
                if pandas:
                    import pandas as pd

                    return pd.DataFrame(shown)
                return [
                    dict(zip(shown, values, strict=True))
                    for values in zip(*(c.tolist() for c in shown.values()), strict=True)
                ]
        rows = (
            list(self._system_rows(rank))
            if stream == "system"
            else list(self.scan_history(keys=keys, rank=rank))
        )
        rows = _spread(rows, samples)
        if not pandas:
            return rows
        import pandas as pd

        return pd.DataFrame(rows)

    def scan_history(
        self,
        keys: list[str] | None = None,
        page_size: int = 1000,
        min_step: int = 0,
        max_step: int | None = None,
        use_cache: bool = True,
        rank: int = 0,
    ) -> Iterator[dict[str, Any]]:
        """Every row (all steps, no sampling), with ``keys`` only steps that have them all;
        ``rank``: of that rank's stream (an unknown rank is refused at once)."""
        return _scan(*self._stream(rank), keys, min_step, max_step)

    def files(
        self, names: list[str] | None = None, pattern: str | None = None, per_page: int = 50
    ) -> list[File]:
        """Files saved with ``run.save()``: name, size, and a local path."""
        found = [
            File(self._record.path, event)
            for event in self._read()["files"]
            if (names is None or event["name"] in names)
            and (pattern is None or fnmatch.fnmatchcase(event["name"], pattern))
        ]
        return found

    def file(self, name: str) -> File:
        found = self.files(names=[name])
        if not found:
            raise ValueError(f"run {self.id} saved no file named {name!r}")
        return found[-1]

    def logged_artifacts(self, per_page: int = 100) -> list[Artifact]:
        """The artifact versions this run logged (made, or logged again), in order."""
        return self._artifacts("log")

    def used_artifacts(self, per_page: int = 100) -> list[Artifact]:
        """The artifact versions this run used, in order."""
        return self._artifacts("use")

    def _artifacts(self, action: str) -> list[Artifact]:
        found: dict[tuple[str, str, int], Artifact] = {}
        for event in self._read()["artifacts"]:
            key = (event.get("project"), event.get("name"), event.get("version"))
            if event.get("action") != action or key in found:
                continue
            try:
                project_dir = self._api.dir / names.check("project", key[0])
                version = artifact_store.resolve(project_dir, key[1], f"v{key[2]}")
            except (LookupError, ValueError):
                continue  # no longer in the store
            found[key] = load(project_dir, version)
        return list(found.values())

    def _stream(self, rank: int) -> tuple[Path, float | None]:
        """The folder and start time of ``rank``'s stream."""
        if rank == 0:
            return self._record.path, self._record.started
        stream = self._record.ranks.get(rank)
        if stream is None:
            raise ValueError(f"run {self.id} has no rank {rank!r}; its ranks: {self.ranks}")
        return stream.path, stream.started

    def _system_rows(self, rank: int = 0) -> Iterator[dict[str, Any]]:
        path, started = self._stream(rank)
        for event in segment.read_events(path):
            if event["type"] == "system":
                yield {
                    "_timestamp": event["t"],
                    "_runtime": event["t"] - (started or 0),
                    **event["data"],
                }

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

    def __repr__(self) -> str:
        return f"<Run {self.project}/{self.id} ({self.state})>"


class File:
    """A saved file: its name, size, and where it lies in the run folder."""

    def __init__(self, run_dir: Path, event: dict[str, Any]) -> None:
        self.name = event["name"]
        self.size = event.get("bytes")
        self.sha256 = event.get("sha256")
        self.path = run_dir / event["path"]

    def download(self, root: str = ".", replace: bool = False, exist_ok: bool = False) -> Path:
        """Copy the file to ``root/<name>``; the path written."""
        import shutil

        target = Path(root) / self.name
        if target.exists() and not (replace or exist_ok):
            raise ValueError(f"{target} exists; pass replace=True to overwrite it")
        if not target.exists() or replace:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.path, target)
        return target

    def __repr__(self) -> str:
        return f"<File {self.name} ({self.size} bytes)>"


def _scan(
    path: Path, started: float | None, keys: list[str] | None, min_step: int, max_step: int | None
) -> Iterator[dict[str, Any]]:
    """:meth:`Run.scan_history` of the stream in ``path``."""
    for row in history.scan(path, started):
        if row["_step"] < min_step or (max_step is not None and row["_step"] >= max_step):
            continue
        if keys is None:
            yield row
        elif all(key in row for key in keys):
            yield {name: row[name] for name in ("_step", "_timestamp", "_runtime", *keys)}


def _spread(rows: Any, samples: int) -> Any:
    """At most ``samples`` of ``rows`` (a list or an array), evenly spread, first and last
    kept; all of them when ``samples`` is 0 or more than there are."""
    if samples <= 0 or len(rows) <= samples:
        return rows
    if samples == 1:
        return rows[-1:]
    last = len(rows) - 1
    picked = [round(index * last / (samples - 1)) for index in range(samples)]
    return rows[picked] if hasattr(rows, "dtype") else [rows[index] for index in picked]


# --- W&B's filters and orders ------------------------------------------------------------

_OPERATORS = {
    "$eq": operator.eq,
    "$ne": operator.ne,
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
    "$in": lambda value, options: value in options,
    "$nin": lambda value, options: value not in options,
    "$regex": lambda value, pattern: (
        isinstance(value, str) and re.search(pattern, value) is not None
    ),
    "$exists": lambda value, wanted: (value is not _MISSING) == bool(wanted),
}
_MISSING = object()


def _field(run: Run, name: str) -> Any:
    """A run's value for a filter or order field, as W&B names them."""
    head, _, rest = name.partition(".")
    if head == "config":
        return run.config.get(rest, _MISSING)
    if head in ("summary_metrics", "summary"):
        return run.summary.get(rest, _MISSING)
    plain = {
        "state": run.state,
        "display_name": run.name,
        "name": run.id,
        "createdAt": run.created_at,
        "created_at": run.created_at,
        "tags": run.tags,
        "group": run.group,
        "jobType": run.job_type,
        "job_type": run.job_type,
        "notes": run.notes,
    }
    return plain.get(name, _MISSING)


def _matches(run: Run, filters: dict[str, Any]) -> bool:
    for name, condition in filters.items():
        if name == "$and":
            if not all(_matches(run, part) for part in condition):
                return False
            continue
        if name == "$or":
            if not any(_matches(run, part) for part in condition):
                return False
            continue
        value = _field(run, name)
        conditions = (
            condition
            if isinstance(condition, dict) and any(k.startswith("$") for k in condition)
            else {"$eq": condition}
        )
        for op, operand in conditions.items():
            if op not in _OPERATORS:
                raise ValueError(f"filter operator {op!r} is not one of {', '.join(_OPERATORS)}")
            if name == "tags" and op in ("$in", "$nin"):
                hit = any(tag in operand for tag in (value if value is not _MISSING else []))
                if hit != (op == "$in"):
                    return False
                continue
            if value is _MISSING and op != "$exists":
                return False
            try:
                if not _OPERATORS[op](value, operand):
                    return False
            except TypeError:  # a comparison of different kinds never matches
                return False
    return True


def _sorted(runs: list[Run], order: str) -> list[Run]:
    descending = order.startswith("-")
    name = order.lstrip("+-")

    def key(run: Run) -> tuple:
        value = _field(run, name)
        if value is _MISSING or value is None or (isinstance(value, float) and math.isnan(value)):
            return (1, 0, "")
        if isinstance(value, (int, float)):
            return (0, 0, value)
        return (0, 1, str(value))

    present = [run for run in runs if key(run)[0] == 0]
    absent = [run for run in runs if key(run)[0] == 1]
    return sorted(present, key=key, reverse=descending) + absent
