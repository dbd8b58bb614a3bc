"""Relaying, the central side: ``POST /api/ingest`` (events), ``POST /api/ingest/lacking`` and
``PUT /api/ingest/files/…`` (media and saved files by content hash), and a project's artifacts:
``POST /api/ingest/artifacts`` (versions), ``POST /api/ingest/artifacts/lacking`` and
``PUT /api/ingest/artifacts/objects/…`` (content files by hash). docs/api.md, "Relaying".

Every route here needs a full token (server/auth.py). A body over its limit, a malformed batch
or a file whose content does not match its hash is refused whole, in the API's error shape,
and nothing of it is written.
"""

from __future__ import annotations

from typing import Annotated

import anyio
import orjson
from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from waddle.server import ingest_body
from waddle.server.errors import ApiError
from waddle.server.routes.lookup import context

from waddle import artifact_store, names

router = APIRouter(prefix="/api/ingest", tags=["relaying"])

# A lacking question names at most this many files.
MAX_PATHS = 10_000
# The versions of an artifact sent at once: manifests and version log lines, as JSON.
MAX_ARTIFACT_BYTES = 64 << 20


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError("too_large", f"a request body may hold {limit} bytes")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise ApiError("too_large", f"a request body may hold {limit} bytes")
    return bytes(body)


@router.post("")
async def ingest(request: Request):
    """Append the events of a batch (server/ingest_body.py); per run, the seq acknowledged."""
    if request.headers.get("content-encoding", "").lower() != "gzip":
        raise ApiError(
            "unsupported_encoding", "send the batch gzip-compressed, with Content-Encoding: gzip"
        )
    body = await _body(request, ingest_body.MAX_BODY_BYTES)
    intake = context(request).intake

    def work() -> list[dict]:
        try:
            origin, chunks = ingest_body.decode(ingest_body.decompress(body))
        except ingest_body.BadBody as error:
            raise ApiError("invalid_batch", str(error)) from None
        return intake.ingest(origin, chunks)

    runs = await anyio.to_thread.run_sync(work)
    return {"runs": runs}


@router.post("/lacking")
def lacking(
    request: Request,
    origin: Annotated[str, Body()],
    project: Annotated[str, Body()],
    run: Annotated[str, Body()],
    paths: Annotated[list[str], Body(max_length=MAX_PATHS)],
):
    """Which of a run's stored files (``media/…``, ``files/…``) this server does not hold."""
    _check_run(origin, project, run)
    return {"lacking": context(request).intake.lacking(origin, project, run, paths)}


@router.put("/files/{origin}/{project}/{run}/{path:path}")
async def store_file(request: Request, origin: str, project: str, run: str, path: str):
    """Keep one stored file of a run, if its content has the sha256 its name says."""
    _check_run(origin, project, run)
    stored = await context(request).intake.store_file(origin, project, run, path, request.stream())
    return JSONResponse({"stored": stored}, status_code=201 if stored else 200)


def _check_run(origin: str, project: str, run: str) -> None:
    try:
        names.check_origin(origin)
        names.check("project", project)
        names.check("run id", run)
    except ValueError as error:
        raise ApiError("invalid_parameter", str(error)) from None


@router.post("/artifacts")
async def artifact_versions(request: Request):
    """Versions of an origin's artifact: manifests, then version log lines; what is held."""
    body = await _body(request, MAX_ARTIFACT_BYTES)
    try:
        sent = orjson.loads(body)
        origin, project, name = (sent[k] for k in ("origin", "project", "name"))
        _check_names(origin, project, name)
        manifests, after, lines = (
            sent.get(k, d) for k, d in (("manifests", {}), ("after", 0), ("lines", []))
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise ApiError(
            "invalid_batch",
            "send a JSON object with origin, project, name, manifests, after, lines",
        ) from None
    artifacts = context(request).artifact_intake
    return await anyio.to_thread.run_sync(
        artifacts.update, origin, project, name, manifests, after, lines
    )


@router.post("/artifacts/lacking")
def artifact_objects_lacking(
    request: Request,
    project: Annotated[str, Body()],
    objects: Annotated[list[str], Body(max_length=MAX_PATHS)],
):
    """Which content files (by sha256) the project's artifact store does not hold."""
    _check_names(None, project, None)
    return {"lacking": context(request).artifact_intake.lacking(project, objects)}


@router.put("/artifacts/objects/{project}/{sha256}")
async def store_artifact_object(request: Request, project: str, sha256: str):
    """Keep one content file of the project's artifact store, if its sha256 is its name."""
    _check_names(None, project, None)
    artifacts = context(request).artifact_intake
    stored = await artifacts.store_object(project, sha256, request.stream())
    return JSONResponse({"stored": stored}, status_code=201 if stored else 200)


def _check_names(origin: str | None, project: str, name: str | None) -> None:
    """The origin, project and artifact name of an artifact request are valid."""
    try:
        if origin is not None:
            names.check_origin(origin)
        names.check("project", project)
        if name is not None:
            artifact_store.check_name(name)
    except ValueError as error:
        raise ApiError("invalid_parameter", str(error)) from None
