"""Relaying, the central side: ``POST /api/ingest`` (events), ``POST /api/ingest/lacking`` and
``PUT /api/ingest/files/…`` (media and saved files by content hash). docs/api.md, "Relaying".

Every route here needs a full token (server/auth.py). A body over its limit, a malformed batch
or a file whose content does not match its hash is refused whole, in the API's error shape,
and nothing of it is written.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from waddle.server import ingest_body
from waddle.server.errors import ApiError
from waddle.server.routes.lookup import context

from waddle import names

router = APIRouter(prefix="/api/ingest", tags=["relaying"])

# A lacking question names at most this many files.
MAX_PATHS = 10_000


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
