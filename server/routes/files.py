"""``GET /files/{project}/{run_id}/{path}``: a file of a run folder (media, saved files).

It promises never to serve anything outside that run folder: the path is resolved (symlinks
followed) and must stay inside the resolved run folder, else 404; segment files and hidden
files are not served either. What it serves is sandboxed: a saved HTML or SVG file opened in
the browser cannot run script as the dashboard.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from waddle.server.errors import not_found
from waddle.server.routes.lookup import context

from waddle import names

router = APIRouter(tags=["files"])

# A run's files are whatever the training script saved: an .html or .svg opened from here must
# not run script with the dashboard's origin, and no type is guessed past the one declared.
UNTRUSTED_CONTENT_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}


@router.get("/files/{project}/{run_id}/{path:path}")
def run_file(request: Request, project: str, run_id: str, path: str) -> FileResponse:
    """A file of the run folder, with the content type its name implies."""
    if not (names.is_valid(project) and names.is_valid(run_id)):
        raise not_found(f"no run {run_id!r} in project {project!r}")
    root = context(request).root.resolve()
    run_dir = (root / project / run_id).resolve()
    if not run_dir.is_dir() or run_dir.parent.parent != root:
        raise not_found(f"no run {run_id!r} in project {project!r}")
    parts = Path(path).parts
    target = (run_dir / path).resolve()
    if (
        not path
        or Path(path).is_absolute()
        or any(part.startswith(".") for part in parts)
        or not target.is_relative_to(run_dir)
        or not target.is_file()
        or (target.parent == run_dir and target.suffix == ".jsonl")
    ):
        raise not_found(f"no file {path!r} in run {run_id!r}")
    media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return FileResponse(target, media_type=media_type, headers=UNTRUSTED_CONTENT_HEADERS)
