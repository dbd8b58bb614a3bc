"""``GET /files/{project}/{run_id}/{path}``: a file the run recorded (media, tables, saved files);
``ranks/<rank>/{path}`` for one that rank recorded.

It promises to serve only a file one of the run's events recorded, and only while it holds
the recorded bytes (:mod:`waddle.server.recorded` says why that rule); anything else is a 404,
whatever the path (``..``, NUL, absolute, hidden, a link). What it serves is sandboxed: a saved
HTML or SVG file opened in the browser cannot run script as the dashboard. The content type
is the one the run recorded for a media value, else the one Python's own table gives for the
name (not the machine's, which differ), else ``application/octet-stream``; a file saved with
``run.save()`` carries its original name in ``Content-Disposition``. One byte range may be
asked for (``Range``), which audio and video players use to seek.
"""

from __future__ import annotations

import mimetypes
import os
import re
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from waddle.server.errors import not_found
from waddle.server.recorded import Changed, NotRecorded, Record, is_file_path
from waddle.server.routes.lookup import context, stream_number

from waddle import names, ranks

router = APIRouter(tags=["files"])

# A run's files are whatever the training script saved: an .html or .svg opened from here must
# not run script with the dashboard's origin, and no type is guessed past the one declared.
UNTRUSTED_CONTENT_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}

# Python's built-in table only: mimetypes.guess_type() also reads /etc/mime.types, which made
# a checkpoint "x.pt" an "application/vnd.snesdev-page-table" on some machines.
_TYPES = mimetypes.MimeTypes(filenames=())


@router.get("/files/{project}/{run_id}/{path:path}")
def run_file(request: Request, project: str, run_id: str, path: str) -> Response:
    """A file the run recorded, with its content type."""
    if not (names.is_valid(project) and names.is_valid(run_id)):
        raise not_found(f"no run {run_id!r} in project {project!r}")
    if not is_file_path(path):
        raise not_found(f"no file {path!r} in run {run_id!r}")
    ctx = context(request)
    # A rank's file lies in its stream's folder, ranks/<rank>/ (docs/format.md, "Ranks").
    rank, path = ranks.split_path(path)
    run = stream_number(request, project, run_id, rank)
    run_dir = ranks.stream_dir((ctx.root / project / run_id).resolve(), rank)
    try:
        fd, stat, record = ctx.files.open(ctx.store.reader(), run, run_dir, path)
    except NotRecorded:
        raise not_found(f"no file {path!r} recorded in run {run_id!r}") from None
    except Changed:
        raise not_found(
            f"file {path!r} of run {run_id!r} is not what the run recorded: it was changed, "
            "replaced or removed after it was logged"
        ) from None
    try:
        headers = dict(UNTRUSTED_CONTENT_HEADERS)
        if record.name is not None:
            headers["Content-Disposition"] = content_disposition(record.name)
        return OpenFile(fd, stat.st_size, media_type(record), headers, request)
    except BaseException:
        os.close(fd)
        raise


def media_type(record: Record) -> str:
    """The content type of a recorded file (also for artifacts' files)."""
    if record.mime is not None:
        return record.mime
    return _TYPES.guess_type(record.name or record.path)[0] or "application/octet-stream"


def content_disposition(name: str) -> str:
    """``inline`` with a file's original name, quoted per RFC 6266: in ``filename`` an ASCII
    fallback (anything that would need quoting becomes ``_``), in ``filename*`` the exact name
    as UTF-8, percent-encoded (RFC 5987). A browser downloads a type it cannot show under that
    name, and shows the others (sandboxed)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1] or "file"
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in base)
    exact = quote(base, safe="!#$&+-.^_`|~")  # RFC 5987 attr-char, with letters and digits
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{exact}"


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class Unsatisfiable(ValueError):
    pass


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``Range: bytes=…`` within ``size``, or None for the whole
    file (no header, several ranges, or one that cannot be read: RFC 9110 lets a server
    ignore those). Raises :class:`Unsatisfiable` for a range past the end."""
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or size == 0 or match.group(0) == "bytes=-":
        return None
    first_text, last_text = match.groups()
    if not first_text:  # the last N bytes
        if int(last_text) == 0:
            raise Unsatisfiable
        return max(0, size - int(last_text)), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # not a valid range: ignored
    if first >= size:
        raise Unsatisfiable
    return first, min(int(last_text), size - 1) if last_text else size - 1


class OpenFile(Response):
    """A file already open and checked, sent from its descriptor (never reopened by name),
    whole or one byte range; the descriptor is closed when the response ends."""

    chunk_size = 256 * 1024

    def __init__(
        self, fd: int, size: int, media_type: str, headers: dict, request: Request
    ) -> None:
        self.fd, self.first, self.last, self.status_code = fd, 0, size - 1, 200
        try:
            span = byte_range(request.headers.get("range"), size)
        except Unsatisfiable:
            span, self.status_code = None, 416
            headers["Content-Range"] = f"bytes */{size}"
        if request.headers.get("if-range") is not None:
            span = None  # no validator is compared: the whole file is always right
        if span is not None:
            self.first, self.last, self.status_code = *span, 206
            headers["Content-Range"] = f"bytes {self.first}-{self.last}/{size}"
        headers["Accept-Ranges"] = "bytes"
        length = 0 if self.status_code == 416 else self.last - self.first + 1
        headers["Content-Length"] = str(length)
        self.media_type, self.background = media_type, None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            if self.status_code == 416:
                await send({"type": "http.response.body", "body": b""})
                return
            async with anyio.create_task_group() as group:

                async def stop_on_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(stop_on_disconnect)
                offset, end = self.first, self.last + 1
                while offset < end:
                    want = min(self.chunk_size, end - offset)
                    chunk = await anyio.to_thread.run_sync(os.pread, self.fd, want, offset)
                    if not chunk:
                        break  # truncated since it was checked: send no more than there is
                    offset += len(chunk)
                    more = offset < end
                    await send({"type": "http.response.body", "body": chunk, "more_body": more})
                if offset < end:
                    await send({"type": "http.response.body", "body": b""})
                group.cancel_scope.cancel()
        finally:
            os.close(self.fd)
