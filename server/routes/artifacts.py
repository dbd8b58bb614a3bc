"""Artifacts of a project: the names, each name's versions with their aliases and lineage, one
version with its manifest, and the files a manifest records.

Versions, aliases and manifests are read from the project's artifact store
(waddle/artifact_store.py), which is the truth for them; which runs logged and used each
version comes from the index (the ``artifacts`` table, from the runs' ``artifact`` events). A
file is served only when the version's manifest records it, from the store's objects by its
sha256, never from a path the request names; it is sandboxed as every file of a run is.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from waddle.server.errors import not_found
from waddle.server.recorded import Changed, Record
from waddle.server.routes.files import (
    UNTRUSTED_CONTENT_HEADERS,
    OpenFile,
    content_disposition,
    media_type,
)
from waddle.server.routes.lookup import context

from waddle import artifact_store, names
from waddle.artifact_store import Version
from waddle.event import MalformedEvent

router = APIRouter(prefix="/api/projects/{project}/artifacts", tags=["artifacts"])

LINEAGE_SQL = (
    "SELECT a.version, a.action, r.project, r.run_id, r.name, a.t, a.aliases FROM artifacts a"
    " JOIN runs r USING (run) WHERE a.project = ? AND a.name = ? ORDER BY a.t, a.seq"
)


@router.get("")
def list_artifacts(request: Request, project: str):
    """Every artifact name of the project: its type, versions, latest version and aliases."""
    project_dir = _project_dir(request, project)
    out = []
    for name in artifact_store.collection_names(project_dir):
        versions = _read_versions(request, project_dir, name)
        if not versions:
            continue
        latest = versions[-1]
        out.append(
            {
                "name": name,
                "type": versions[0].type,
                "versions": len(versions),
                "latest": latest.label,
                "aliases": {alias: v.label for v in versions for alias in v.aliases},
                "size": latest.size,
                "created": versions[0].created,
                "updated": latest.created,
            }
        )
    return {"artifacts": out}


@router.get("/{name}")
def artifact_versions(request: Request, project: str, name: str):
    """One artifact's versions, oldest first, each with the runs that logged and used it."""
    versions = _versions(request, project, name)
    lineage = _lineage(request, project, name)
    return {
        "name": name,
        "type": versions[0].type,
        "versions": [_version(project, v, lineage.get(v.number, {})) for v in versions],
    }


@router.get("/{name}/{version}")
def artifact_version(
    request: Request,
    project: str,
    name: str,
    version: str,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
):
    """One version (``vN`` or an alias) with its description, metadata and manifest entries."""
    project_dir = _project_dir(request, project)
    found = _one(request, project, name, version)
    manifest = _manifest(project_dir, name, found)
    lineage = _lineage(request, project, name).get(found.number, {})
    entries = manifest.get("entries") or {}
    paths = sorted(entries)
    return {
        **_version(project, found, lineage),
        "name": name,
        "type": found.type,
        "description": manifest.get("description"),
        "metadata": manifest.get("metadata") or {},
        "tags": manifest.get("tags") or [],
        "manifest": {
            "total": len(paths),
            "offset": offset,
            "limit": limit,
            "entries": [
                {
                    "path": path,
                    "sha256": entries[path].get("sha256"),
                    "size": entries[path].get("size"),
                    "ref": entries[path].get("ref"),
                }
                for path in paths[offset : offset + limit]
            ],
        },
    }


@router.get("/{name}/{version}/files/{path:path}")
def artifact_file(request: Request, project: str, name: str, version: str, path: str):
    """A file the version's manifest records, served as ``/files`` serves a run's: only while
    the store's object holds the recorded size and sha256 (checked on the descriptor sent)."""
    project_dir = _project_dir(request, project)
    found = _one(request, project, name, version)
    entry = (_manifest(project_dir, name, found).get("entries") or {}).get(path)
    sha256, size = (entry.get("sha256"), entry.get("size")) if isinstance(entry, dict) else (0, 0)
    if type(sha256) is not str or type(size) is not int:
        raise not_found(f"{name}:{found.label} has no file {path!r}")
    record = Record(
        f"{artifact_store.OBJECTS}/{sha256}", sha256, size, None, PurePosixPath(path).name
    )
    try:
        fd, stat = context(request).files.open_record(
            (project_dir / artifact_store.STORE).resolve(), record
        )
    except Changed:
        raise not_found(
            f"the file {path!r} of {name}:{found.label} is not in the store as its manifest "
            "recorded it (changed, replaced or removed)"
        ) from None
    try:
        headers = dict(UNTRUSTED_CONTENT_HEADERS)
        headers["Content-Disposition"] = content_disposition(record.name)
        return OpenFile(fd, stat.st_size, media_type(record), headers, request)
    except BaseException:
        os.close(fd)
        raise


def run_artifacts(request: Request, run: int) -> dict[str, list[dict[str, Any]]]:
    """The versions a run logged and used, in order (for the run's answer)."""
    rows = (
        context(request)
        .store.reader()
        .execute(
            "SELECT action, project, name, version, type, digest, aliases, t FROM artifacts"
            " WHERE run = ? ORDER BY seq",
            [run],
        )
        .fetchall()
    )
    out: dict[str, list[dict[str, Any]]] = {"logged": [], "used": []}
    for action, project, name, number, kind, digest, aliases, t in rows:
        out["logged" if action == "log" else "used"].append(
            {
                "project": project,
                "name": name,
                "version": f"v{number}",
                "type": kind,
                "digest": digest,
                "aliases": aliases,
                "t": t,
            }
        )
    return out


def _manifest(project_dir: Path, name: str, version: Version) -> dict[str, Any]:
    try:
        return artifact_store.read_manifest(project_dir, name, version.number)
    except (OSError, LookupError, MalformedEvent) as error:
        raise not_found(f"the manifest of {name}:{version.label} cannot be read: {error}") from None


def _project_dir(request: Request, project: str) -> Path:
    folder = context(request).root / project
    if not (names.is_valid(project) and names.is_folder(folder)):
        raise not_found(f"no project {project!r}")
    return folder


def _read_versions(request: Request, project_dir: Path, name: str) -> list[Version]:
    def reject(path: Path, offset: int, reason: str) -> None:
        context(request).notices.fault(
            "artifacts",
            f"{path}: line at byte {offset} skipped: {reason}",
            "the other lines are read; a version log is only appended to, so check what "
            "wrote into it",
            active=False,
        )

    return artifact_store.versions(project_dir, name, on_reject=reject)


def _versions(request: Request, project: str, name: str) -> list[Version]:
    project_dir = _project_dir(request, project)
    found = _read_versions(request, project_dir, name) if names.is_valid(name) else []
    if not found:
        raise not_found(f"no artifact {name!r} in project {project!r}")
    return found


def _one(request: Request, project: str, name: str, ref: str) -> Version:
    found = artifact_store.pick(_versions(request, project, name), ref)
    if found is None:
        raise not_found(f"artifact {name!r} has no version or alias {ref!r}")
    return found


def _lineage(request: Request, project: str, name: str) -> dict[int, dict[str, list]]:
    lineage: dict[int, dict[str, list]] = {}
    for number, action, run_project, run_id, run_name, t, aliases in context(request).store.query(
        LINEAGE_SQL, [project, name]
    ):
        runs = lineage.setdefault(number, {"logged_by": [], "used_by": []})
        runs["logged_by" if action == "log" else "used_by"].append(
            {"project": run_project, "run": run_id, "name": run_name, "t": t, "aliases": aliases}
        )
    return lineage


def _version(project: str, version: Version, lineage: dict[str, list]) -> dict[str, Any]:
    return {
        "version": version.label,
        "digest": version.digest,
        "aliases": version.aliases,
        "size": version.size,
        "files": version.files,
        "created": version.created,
        "created_by": None if version.run is None else {"project": project, "run": version.run},
        "logged_by": lineage.get("logged_by", []),
        "used_by": lineage.get("used_by", []),
    }
