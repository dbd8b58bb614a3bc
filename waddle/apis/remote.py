"""``waddle.Api()``'s reader of a waddle server, through its HTTP API (docs/api.md), when
``WADDLE_SERVER`` or ``Api(overrides={"base_url": …})`` names one.

It gives what :mod:`waddle.apis.folder` gives for the same run: the server indexes the same
events by the same rules (one value per step, the client's summary). A run is addressed as the
server names it: a run relayed to a central server is ``<origin>.<run id>`` there. Requests go
through the relay's HTTP client (server/uplink.py, the standard library only), the token as a
bearer header; a failure raises one line naming the server and what failed: ConnectionError
(unreachable), PermissionError (401 or 403: a token is missing or refused) or ValueError
(an unknown project, run, key or artifact; a bad parameter).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from waddle import artifact_store, history
from waddle.artifact import Artifact, settled
from waddle.server.uplink import Uplink, UplinkError

# The wire's spellings of non-finite floats (docs/api.md, "Conventions").
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
RUNS_PAGE = 10_000  # the most runs one request of the runs list answers
FILES_PAGE = 10_000
MANIFEST_PAGE = 100_000


def decoded(value: Any) -> Any:
    """``value`` with the wire's non-finite strings made floats again (recursively)."""
    if isinstance(value, str):
        return NON_FINITE.get(value, value)
    if isinstance(value, dict):
        return {key: decoded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decoded(item) for item in value]
    return value


def _part(text: str) -> str:
    return quote(text, safe="")


class Server:
    """A waddle server at ``url``; ``token`` is sent with every request."""

    def __init__(self, url: str, token: str | None, timeout: float, reader: Any) -> None:
        self.url, self._reader = url, reader  # reader: the Api, which artifacts read back give
        self._uplink = Uplink(url, token, timeout)

    def where(self) -> str:
        return self.url

    def get(self, path: str, params: Any = None, raw: bool = False) -> Any:
        try:
            return self._uplink.get(path, params, raw)
        except UplinkError as error:
            raise _failure(error) from None

    def download(self, path: str, target: Path) -> None:
        """The file at ``path`` written to ``target`` (whole or not at all)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{os.getpid()}.download")
        try:
            with open(temp, "wb") as sink:
                self._uplink.download(path, sink)
            os.replace(temp, target)
        except UplinkError as error:
            raise _failure(error) from None
        finally:
            temp.unlink(missing_ok=True)

    def projects(self) -> list[str]:
        return sorted(project["name"] for project in self.get("/api/projects")["projects"])

    def runs(self, project: str | None) -> list[ServerRun]:
        found = []
        for name in [project] if project else self.projects():
            offset = 0
            while True:
                page = self.get(
                    f"/api/projects/{_part(name)}/runs",
                    {"limit": RUNS_PAGE, "offset": offset, "sort": "created"},
                )
                found += [ServerRun(self, name, run) for run in page["runs"]]
                offset += len(page["runs"])
                if not page["runs"] or offset >= page["total"]:
                    break
        return found

    def run(self, project: str, run_id: str) -> ServerRun:
        path = f"/api/projects/{_part(project)}/runs/{_part(run_id)}"
        return ServerRun(self, project, self.get(path))

    def artifact(self, project: str, name: str, ref: str) -> Artifact:
        path = f"/api/projects/{_part(project)}/artifacts/{_part(name)}/{_part(ref)}"
        found = self.get(path, {"limit": MANIFEST_PAGE})
        entries = found["manifest"]["entries"]
        while len(entries) < found["manifest"]["total"]:
            page = self.get(path, {"limit": MANIFEST_PAGE, "offset": len(entries)})
            entries += page["manifest"]["entries"]
        version = artifact_store.Version(
            name=name,
            number=int(found["version"][1:]),
            digest=found["digest"],
            type=found["type"],
            size=found["size"],
            files=found["files"],
            created=found["created"],
            run=(found.get("created_by") or {}).get("run"),
            aliases=list(found["aliases"]),
        )
        manifest = {
            "description": found.get("description"),
            "metadata": decoded(found.get("metadata") or {}),
            "tags": found.get("tags") or [],
            "entries": {
                entry["path"]: {"ref": entry["ref"]}
                if entry.get("ref") is not None
                else {"sha256": entry["sha256"], "size": entry["size"]}
                for entry in entries
            },
        }

        def fetch(entry: Any, target: Path) -> None:
            self.download(f"{path}/files/{quote(entry.path)}", target)

        return settled(Path(project), version, manifest, fetch, self._reader)

    def artifacts(self, project: str, name: str) -> list[Artifact]:
        found = self.get(f"/api/projects/{_part(project)}/artifacts/{_part(name)}")
        return [self.artifact(project, name, version["version"]) for version in found["versions"]]


class ServerRun:
    """One run as the server answers it (a runs list entry, or the run's own answer)."""

    def __init__(self, server: Server, project: str, answer: dict[str, Any]) -> None:
        self._server, self._answer = server, answer
        self._full = "context" in answer  # the run's own answer, not a list entry
        self._path = f"/api/projects/{_part(project)}/runs/{_part(answer['id'])}"
        self.fields = {
            "id": answer["id"],
            "project": project,
            "name": answer.get("name"),
            "tags": list(answer.get("tags") or []),
            "notes": answer.get("notes"),
            "group": answer.get("group"),
            "job_type": answer.get("job_type"),
            "state": answer.get("status"),
            "created_at": answer.get("created"),
            "last_step": answer.get("last_step"),
            "origin": answer.get("origin"),
            "dir": None,
        }

    def _whole(self) -> dict[str, Any]:
        if not self._full:
            self._answer, self._full = self._server.get(self._path), True
        return self._answer

    def details(self) -> dict[str, Any]:
        answer = self._answer
        return {
            "config": decoded(answer.get("config") or {}),
            # The run's own answer: a listed run's summary lacks text and rich values.
            "summary": decoded(self._whole().get("summary") or {}),
            "metadata": decoded(self._whole().get("context") or {}),
        }

    def ranks(self) -> list[int]:
        return [stream["rank"] for stream in self._whole().get("ranks") or [{"rank": 0}]]

    def _started(self, rank: int) -> float | None:
        """When rank ``rank``'s stream started (its rows' ``_runtime`` counts from there)."""
        if rank == 0:
            return self.fields["created_at"]
        streams = self._whole().get("ranks") or []
        return next((s["created"] for s in streams if s["rank"] == rank), None)

    def scalar_columns(self, keys: list[str], rank: int) -> dict[str, Any] | None:
        """The columns of waddle/history.py from each key's whole series (Arrow when pyarrow is
        installed), or None when a key holds anything but numbers."""
        kinds: dict[str, set[str]] = {}
        for metric in self._server.get(f"{self._path}/metrics", {"rank": rank})["metrics"]:
            kinds.setdefault(metric["key"], set()).add(metric["type"])
        if any(kinds.get(key, {"scalar"}) != {"scalar"} for key in keys):
            return None
        import numpy as np

        per_key = []
        for key in keys:
            if key not in kinds:  # never logged: no points
                per_key.append({"step": np.zeros(0, np.int64), "t": np.zeros(0), "v": np.zeros(0)})
                continue
            per_key.append(self._series(key, rank))
        return history.joined(keys, per_key, self._started(rank))

    def _series(self, key: str, rank: int) -> dict[str, Any]:
        import numpy as np

        params = {"key": key, "x": "step", "rank": rank}
        try:
            import pyarrow.ipc
        except ImportError:
            series = self._server.get(f"{self._path}/scalars", params)["series"]
            return {
                "step": np.asarray(series["step"], dtype=np.int64),
                "t": np.asarray(series["t"], dtype=np.float64),
                "v": np.asarray(decoded(series["value"]), dtype=np.float64),
            }
        body = self._server.get(f"{self._path}/scalars", {**params, "format": "arrow"}, raw=True)
        table = pyarrow.ipc.open_stream(body).read_all()
        return {
            "step": table["step"].to_numpy(),
            "t": table["t"].to_numpy(),
            "v": table["value"].to_numpy(),
        }

    def rows(
        self,
        keys: list[str] | None,
        min_step: int,
        max_step: int | None,
        page_size: int,
        rank: int,
    ) -> Iterator[dict[str, Any]]:
        """Every row of a step in [min_step, max_step), a window of ``page_size`` steps a
        request (``GET …/history``)."""
        started = self._started(rank)
        step: int | None = min_step
        while step is not None and (max_step is None or step < max_step):
            end = step + max(1, min(page_size, 100_000))
            params: dict[str, Any] = {"min_step": step, "max_step": end, "rank": rank}
            if max_step is not None:
                params["max_step"] = min(end, max_step)
            if keys:
                params["key"] = keys
            page = self._server.get(f"{self._path}/history", params)
            for row in page["rows"]:
                yield {
                    "_step": row["step"],
                    **decoded(row["scalars"]),
                    **row["values"],
                    "_timestamp": row["t"],
                    "_runtime": row["t"] - started if started is not None else None,
                }
            step = page["next"]

    def system_rows(self, rank: int) -> Iterator[dict[str, Any]]:
        params = {"limit": 1_000_000, "rank": rank}
        series = self._server.get(f"{self._path}/system", params)["series"]
        started = self._started(rank) or 0
        by_time: dict[float, dict[str, Any]] = {}
        for key, points in series.items():
            for t, value in zip(points["t"], decoded(points["value"]), strict=True):
                by_time.setdefault(t, {"_timestamp": t, "_runtime": t - started})[key] = value
        yield from (by_time[t] for t in sorted(by_time))

    def files(self) -> list[tuple[dict[str, Any], Any]]:
        """Each saved file's record (``name``, ``bytes``, ``sha256``, ``path``) and a function
        downloading it to a path."""
        found, after = [], -1
        while True:
            page = self._server.get(f"{self._path}/media", {"after": after, "limit": FILES_PAGE})
            found += [item["value"] for item in page["items"] if item["type"] == "file"]
            if len(page["items"]) < FILES_PAGE:
                break
            after = page["cursor"]
        project, run_id = (_part(self.fields[name]) for name in ("project", "id"))
        return [
            (
                record,
                lambda target, path=record["path"]: self._server.download(
                    f"/files/{project}/{run_id}/{quote(path)}", Path(target)
                ),
            )
            for record in found
        ]

    def artifacts(self, action: str) -> list[Artifact]:
        listed = self._whole().get("artifacts") or {}
        found: dict[tuple[str, str, str], Artifact] = {}
        for version in listed.get("logged" if action == "log" else "used", []):
            key = (version["project"], version["name"], version["version"])
            if key not in found:
                try:
                    found[key] = self._server.artifact(*key)
                except ValueError:
                    continue  # no longer in the store
        return list(found.values())


def _failure(error: UplinkError) -> Exception:
    """The exception of a failed request, its message naming the server and the cause."""
    message = f"waddle.Api: {error}"
    if error.status is None:
        return ConnectionError(message)
    if error.status in (401, 403):
        return PermissionError(
            f"{message} (give the token with WADDLE_TOKEN, WADDLE_TOKEN_FILE or Api(api_key=…))"
        )
    if error.status in (404, 422):
        return ValueError(message)
    return ConnectionError(message)
