"""The browser dashboard: ``GET /`` and every deep link answer its page, ``/assets/*`` its
built files (``waddle.dashboard``'s ``dist/``, see setup.py).

It promises: a strict Content-Security-Policy on the page and its assets (scripts and styles
only from this origin, no inline script, ``connect-src 'self'``), so user text that reached the
page as markup still could not run; nothing outside ``dist/`` is served; and when the dashboard
was not built, ``/`` answers the one line that says so and how to build it (``waddle serve``
prints the same line at start).
"""

from __future__ import annotations

from pathlib import Path

import waddle.dashboard
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from waddle.server.errors import not_found
from waddle.server.routes.lookup import context

router = APIRouter(tags=["dashboard"], include_in_schema=False)

DIST = Path(waddle.dashboard.__file__).resolve().parent / "dist"
BUILD_COMMAND = "npm --prefix static ci && npm --prefix static run build"
NOT_BUILT = (
    f"the dashboard is not built (no {DIST / 'index.html'}): in a clone of waddle run "
    f"`{BUILD_COMMAND}` (then `pip install .` again unless the install is editable); "
    "the API works without it"
)
# Paths that belong to the API: an unknown one is a JSON 404, never the page.
API_PREFIXES = ("api/", "files/", "ws", "docs", "openapi.json", "redoc")

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        # Media and saved files come from /files (same origin); charts export through blob: URLs.
        "img-src 'self' blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        # A logged HTML page is shown in a sandboxed frame from /files (same origin).
        "frame-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def built() -> bool:
    return (DIST / "index.html").is_file()


# The page tells the script whether to ask for a token before its first API call (so none
# fails first): a meta tag, since the CSP allows no inline script.
TOKEN_META = '<meta name="waddle-token" content="none">'


def _page(request: Request) -> Response:
    if not built():
        return PlainTextResponse(f"waddle: {NOT_BUILT}\n", status_code=503, headers=HEADERS)
    page = (DIST / "index.html").read_text()
    if context(request).settings.token:
        page = page.replace(TOKEN_META, TOKEN_META.replace("none", "required"))
    return HTMLResponse(page, headers=HEADERS)


@router.get("/assets/{name}")
def asset(name: str) -> FileResponse:
    """A built file of the dashboard (scripts, styles, the icon)."""
    target = DIST / name
    if name.startswith(".") or "/" in name or not target.is_file() or name == "index.html":
        raise not_found(f"no dashboard file {name!r}")
    return FileResponse(target, headers=HEADERS)


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    return asset("favicon.svg")


@router.get("/")
def index(request: Request) -> Response:
    return _page(request)


@router.get("/{path:path}")
def deep_link(request: Request, path: str) -> Response:
    """A view's own address (``/p/demo/runs/ID``): the page, which reads its state from the URL."""
    if path.startswith(API_PREFIXES):
        raise not_found(f"no such endpoint: /{path}")
    return _page(request)
