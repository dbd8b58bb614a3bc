"""``waddle.Api()``: W&B's public API, reading runs from a local log folder or a waddle server.

    api = waddle.Api()                       # the folder of $WADDLE_DIR (default ./logs), or
                                             # the server of $WADDLE_SERVER when it is set
    api = waddle.Api(overrides={"base_url": "http://127.0.0.1:8080"}, api_key=token)
    for run in api.runs("mnist", filters={"config.lr": {"$lt": 0.01}}, order="-summary_metrics.acc"):
        print(run.name, run.state, run.summary["acc"])
    frame = api.run("mnist/20261128-094418-136-ri3fsw").history(keys=["loss"])

One :class:`Run` with W&B's surface reads from one of two sources behind the same small
interface: :mod:`waddle.apis.folder` (the log files, no server needed) and
:mod:`waddle.apis.remote` (the server's HTTP API, docs/api.md); both give the same answers
for the same run. Filters, orders and sampling are applied here, the same way for both. Paths
are ``project/run_id``; W&B's ``entity/project/run_id`` is accepted and its entity ignored. A
run relayed to a central server is ``project/<origin>.<run id>`` there, as the server names it.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from waddle import artifact_store, history, names
from waddle.apis.folder import Folder
from waddle.artifact import Artifact
from waddle.settings import SETTINGS, parsed, resolve_one

ROW_KEYS = ("_step", "_timestamp", "_runtime")  # what every history row holds besides its keys


class Api:
    """W&B's ``wandb.Api``. ``overrides``: ``base_url`` (a waddle server; default
    ``WADDLE_SERVER``), else ``dir`` (a log folder; default ``WADDLE_DIR``), and ``project``
    (the default project). ``api_key``: the server's token (default ``WADDLE_TOKEN``, then
    ``WADDLE_TOKEN_FILE``). ``timeout``: seconds a request to a server may take."""

    def __init__(
        self,
        overrides: dict[str, Any] | None = None,
        timeout: int | None = None,
        api_key: str | None = None,
    ) -> None:
        overrides = overrides or {}
        self.default_project = overrides.get("project")
        base_url = overrides.get("base_url")
        if base_url is None and not overrides.get("dir"):
            base_url = resolve_one("server")
        self.dir: Path | None = None
        if base_url:
            from waddle.apis.remote import Server
            from waddle.server import tokens, uplink

            url = parsed(SETTINGS["server"], base_url, f"Api base_url={base_url!r}")
            token = (
                api_key
                or tokens.gather(resolve_one("token") or (), (), resolve_one("token_file")).first()
            )
            self._source: Any = Server(url, token, timeout or uplink.TIMEOUT, self)
        else:
            self.dir = Path(resolve_one("dir", overrides.get("dir")))
            self._source = Folder(self.dir, resolve_one("heartbeat_timeout"))

    def __repr__(self) -> str:
        return f"<Api {self._source.where()}>"

    def projects(self, entity: str | None = None, per_page: int = 200) -> list[Project]:
        """Every project that has runs."""
        return [Project(name) for name in self._source.projects()]

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
        found = [Run(self, source) for source in self._source.runs(self._project(path))]
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
        return Run(self, self._source.run(project, run_id))

    def artifact(self, name: str, type: str | None = None) -> Artifact:
        """A version of an artifact: ``project/name:alias`` (or ``entity/project/name:vN``;
        ``name:alias`` in the default project); ``latest`` when no alias is given."""
        project, artifact_name, ref = artifact_store.parse_reference(name)
        project = project or self.default_project
        if project is None:
            raise ValueError(f"Api.artifact({name!r}): give project/name:alias")
        try:
            found = self._source.artifact(project, artifact_name, ref)
        except ValueError as error:
            raise ValueError(f"Api.artifact({name!r}): {error}") from None
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
        try:
            found = self._source.artifacts(project, artifact_name)
        except ValueError:
            return []  # no such artifact: no versions
        return [artifact for artifact in found if artifact.type == type_name]

    def _project(self, path: str | None) -> str | None:
        if not path:
            return self.default_project
        return names.check("project", path.split("/")[-1])


class Project:
    """A project (W&B's ``Project``): its ``name``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.entity = "local"
        self.path = [self.entity, name]

    def __repr__(self) -> str:
        return f"<Project {self.name}>"


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
    """One run read back: identity, state, config, summary, history, files, artifacts.

    A run of several ranks (waddle/ranks.py) reads as one: its state is the run's (crashed
    when a rank died), its config and summary rank 0's; ``ranks`` lists its ranks, and
    ``history()``, ``scan_history()`` take ``rank=`` (default 0) for another rank's stream.
    """

    def __init__(self, api: Api, source: Any) -> None:
        self._api, self._source = api, source
        fields = source.fields
        self.id = fields["id"]
        self.project = fields["project"]
        self.entity = "local"
        self.path = [self.entity, self.project, self.id]
        self.name = self.display_name = fields["name"]
        self.tags = fields["tags"]
        self.notes = fields["notes"]
        self.group = fields["group"]
        self.job_type = fields["job_type"]
        self.state = fields["state"]
        self.created_at = fields["created_at"]
        self.origin = fields.get("origin")  # the machine a relayed run came from, on a server
        self.url = None
        last_step = fields["last_step"]
        self.lastHistoryStep = last_step if last_step is not None else -1
        self.dir = fields["dir"]  # the run folder, when read from one
        self._details: dict[str, Any] | None = None

    def _detail(self, name: str) -> Any:
        if self._details is None:
            self._details = self._source.details()
        return self._details[name]

    @property
    def config(self) -> dict[str, Any]:
        return self._detail("config")

    @property
    def summary(self) -> dict[str, Any]:
        return self._detail("summary")

    summary_metrics = summary

    @property
    def ranks(self) -> list[int]:
        """The ranks whose streams the run holds (``[0]`` for a run of one process)."""
        return self._source.ranks()

    @property
    def metadata(self) -> dict[str, Any]:
        """The run's context: host, command line, git, GPUs (docs/format.md)."""
        return self._detail("metadata")

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
        ``keys``, only steps that have every one of them (and ``x_axis``, when it is a key).
        ``stream="system"``: the system metrics over time. ``rank``: that rank's stream. A
        DataFrame with ``pandas=True`` (needs pandas), else dicts."""
        self._check_rank(rank)
        if keys and x_axis not in (*ROW_KEYS, *keys):
            keys = [*keys, x_axis]
        if stream != "system" and keys:
            columns = self._source.scalar_columns(keys, rank)
            if columns is not None:  # numbers only: straight from columns, no row objects
                every = columns[history.HAS + keys[0]].copy()
                for key in keys[1:]:
                    every &= columns[history.HAS + key]
                names = (*ROW_KEYS, *keys)
                if every.all() and (samples <= 0 or len(every) <= samples):
                    shown = {name: columns[name] for name in names}  # every row, as read
                else:
                    chosen = _spread(every.nonzero()[0], samples)
                    shown = {name: columns[name][chosen] for name in names}
                if pandas:
                    import pandas as pd

                    # The columns are this call's own: the frame takes them as they are.
                    return pd.DataFrame(shown, copy=False)
                return [
                    dict(zip(shown, values, strict=True))
                    for values in zip(*(c.tolist() for c in shown.values()), strict=True)
                ]
        rows = (
            list(self._source.system_rows(rank))
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
        """Every row of a step in [min_step, max_step) (no sampling), streamed (read
        ``page_size`` steps at a time from a server); with ``keys`` only steps that have
        them all, and only those keys; ``rank``: of that rank's stream (an unknown rank is
        refused at once)."""
        self._check_rank(rank)
        rows = self._source.rows(keys, min_step, max_step, page_size, rank)
        if keys is None:
            return rows
        return ({name: row[name] for name in (*ROW_KEYS, *keys)} for row in rows)

    def _check_rank(self, rank: int) -> None:
        if rank != 0 and rank not in self.ranks:
            raise ValueError(f"run {self.id} has no rank {rank!r}; its ranks: {self.ranks}")

    def files(
        self, names: list[str] | None = None, pattern: str | None = None, per_page: int = 50
    ) -> list[File]:
        """Files saved with ``run.save()``: name, size, and ``download()``."""
        import fnmatch

        return [
            File(record, copy, self.dir)
            for record, copy in self._source.files()
            if (names is None or record["name"] in names)
            and (pattern is None or fnmatch.fnmatchcase(record["name"], pattern))
        ]

    def file(self, name: str) -> File:
        found = self.files(names=[name])
        if not found:
            raise ValueError(f"run {self.id} saved no file named {name!r}")
        return found[-1]

    def logged_artifacts(self, per_page: int = 100) -> list[Artifact]:
        """The artifact versions this run logged (made, or logged again), in order."""
        return self._source.artifacts("log")

    def used_artifacts(self, per_page: int = 100) -> list[Artifact]:
        """The artifact versions this run used, in order."""
        return self._source.artifacts("use")

    def __repr__(self) -> str:
        return f"<Run {self.project}/{self.id} ({self.state})>"


class File:
    """A saved file: its name, size and sha256, and where it lies when read from a folder."""

    def __init__(self, record: dict[str, Any], copy: Any, run_dir: Path | None) -> None:
        self.name = record["name"]
        self.size = record.get("bytes")
        self.sha256 = record.get("sha256")
        self.path = None if run_dir is None else run_dir / record["path"]
        self._copy = copy

    def download(self, root: str = ".", replace: bool = False, exist_ok: bool = False) -> Path:
        """Copy the file to ``root/<name>``; the path written."""
        target = Path(root) / self.name
        if target.exists() and not (replace or exist_ok):
            raise ValueError(f"{target} exists; pass replace=True to overwrite it")
        if not target.exists() or replace:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._copy(target)
        return target

    def __repr__(self) -> str:
        return f"<File {self.name} ({self.size} bytes)>"


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
