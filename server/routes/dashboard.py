"""The browser dashboard: ``GET /`` and every deep link answer its page, ``/assets/*`` its
built files (``waddle.dashboard``'s ``dist/``, see setup.py).

It promises: a strict Content-Security-Policy on the page and its assets (scripts and styles
only from this origin, no inline script, ``connect-src 'self'``), so user text that reached the
page as markup still could not run; nothing outside ``dist/`` is served; and when the dashboard
was not built, ``/`` answers the one line that says so and how to build it (``waddle serve``
prints the same line at start). A run or compare view's page preloads the API requests its
script makes first, so they are on their way while the script loads; a run view's page also
its first chart's data (the script takes it when it is that chart's, see
FIRST_CHART_POINTS). Built files are answered from memory, on the event loop: read once while
they stay the same file (a new build replaces them), since the first page load
waits for them (a file streamed through the thread pool took 50-200 ms on a busy machine).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from stat import S_ISREG
from urllib.parse import quote

import waddle.dashboard
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from starlette.convertors import PathConvertor, register_url_convertor
from waddle.server.errors import not_found
from waddle.server.routes.lookup import STREAMS, context

from waddle import names

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


class _PagePath(PathConvertor):
    """A deep link's path: any path outside the API's. The page's route never takes an API
    path, so an unknown one is a 404 by any method (a route taking it by GET alone made any
    other method a 405) and a known endpoint asked by another method stays a 405."""

    regex = f"(?!{'|'.join(map(re.escape, API_PREFIXES))}).*"


register_url_convertor("waddle_page", _PagePath())

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


# What the build writes: module scripts must come with a JavaScript type.
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
_read: dict[Path, tuple[tuple[int, int, int], bytes]] = {}  # path -> (inode, mtime, size), bytes


def _built_file(path: Path) -> bytes | None:
    """The bytes of a regular file of the build, or None."""
    try:
        stat = path.stat()
    except OSError:
        return None
    if not S_ISREG(stat.st_mode):
        return None
    stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    found = _read.get(path)
    if found is None or found[0] != stamp:
        found = _read[path] = (stamp, path.read_bytes())
    return found[1]


# A run view's first chart, preloaded with its page: M4 buckets (docs/api.md) of its first
# scalar key, at a width the page cannot know yet. The chart grid (static/src/style.css) makes
# charts 420 to 852 px wide: 800 buckets are about a bucket a pixel, and never too few to show
# a spike (M4 keeps it at any width). The script takes this answer only for that chart, drawn
# as it would have asked (static/src/chart_grid.js, preloadedFirst).
FIRST_CHART_POINTS = 800


async def _page(request: Request, path: str = "") -> Response:
    body = _built_file(DIST / "index.html")
    if body is None:
        return PlainTextResponse(f"waddle: {NOT_BUILT}\n", status_code=503, headers=HEADERS)
    page = body.decode()
    if context(request).tokens:  # any: full or read-only, given or from a token file
        page = page.replace(TOKEN_META, TOKEN_META.replace("none", "required"))
    else:
        links = "".join(
            f'<link rel="preload" href="{html.escape(url)}" as="fetch" crossorigin="anonymous">\n'
            for url in _first_requests(path, request.query_params.get("runs", ""))
        )
        # On the event loop: one small indexed query, where a hop through the thread pool
        # made the page itself, which everything else waits for, 50-100 ms later on a busy
        # machine.
        chart = _first_chart(request, path)
        if chart:
            links += (
                f'<link rel="preload" href="{html.escape(chart)}" as="fetch"'
                ' crossorigin="anonymous" data-first-chart>\n'
            )
        page = page.replace("</head>", links + "</head>", 1)
    return HTMLResponse(page, headers=HEADERS)


def _first_chart(request: Request, path: str) -> str | None:
    """The first chart's request of a run view opened as it starts (no query: no search,
    smoothing, axis, zoom, rank or other tab): its first scalar key in the order of the run's
    `metrics` (by key), at FIRST_CHART_POINTS buckets; None for anything else."""
    run = _run_view(path)
    if request.url.query or run is None:
        return None
    project, run_id = run
    rows = context(request).store.query(
        f"SELECT min(key) FROM metrics JOIN ({STREAMS}) s USING (run) WHERE kind = 'scalar'",
        {"project": project, "run_id": run_id},
    )
    if not rows or rows[0][0] is None:
        return None
    key = quote(rows[0][0], safe="")
    return f"/api/projects/{project}/runs/{run_id}/scalars?key={key}&points={FIRST_CHART_POINTS}"


def _first_requests(path: str, runs: str) -> list[str]:
    """The API requests a view's script makes first, each exactly as the script asks for it
    (static/src/views: a run view asks for the run and its keys; a compare view for its runs
    with their scalar keys, in one request), for the page to ask for beside the script rather
    than after it has loaded and run. Used only where the script sends no header (no token),
    so that its requests are the preloaded ones; only for valid names, which need no escaping
    in a URL or in HTML."""
    run = _run_view(path)
    if run is not None:
        project, run_id = run
        return [
            f"/api/projects/{project}/runs/{run_id}",
            f"/api/projects/{project}/runs/{run_id}/metrics",
        ]
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "p" or not names.is_valid(parts[1]):
        return []
    runs_path = f"/api/projects/{parts[1]}/runs"
    ids = [run for run in runs.split(",") if run]
    if len(parts) == 3 and parts[2] == "compare" and ids and all(map(names.is_valid, ids)):
        return [
            f"{runs_path}?{''.join(f'id={run}&' for run in ids)}scalar_keys=true&limit={len(ids)}"
        ]
    return []


def _run_view(path: str) -> tuple[str, str] | None:
    """The project and run of a run view's page path (``p/<project>/r/<run>``, valid names,
    which need no escaping in a URL or in HTML); None for any other path."""
    parts = path.split("/")
    shaped = len(parts) == 4 and parts[0] == "p" and parts[2] == "r"
    if shaped and names.is_valid(parts[1]) and names.is_valid(parts[3]):
        return parts[1], parts[3]
    return None


@router.get("/assets/{name}")
async def asset(name: str) -> Response:
    """A built file of the dashboard (scripts, styles, the icon)."""
    body = None
    if not (name.startswith(".") or "/" in name or name == "index.html"):
        body = _built_file(DIST / name)
    if body is None:
        raise not_found(f"no dashboard file {name!r}")
    media_type = TYPES.get(Path(name).suffix, "application/octet-stream")
    return Response(body, media_type=media_type, headers=HEADERS)


@router.get("/favicon.ico")
async def favicon() -> Response:
    return await asset("favicon.svg")


@router.get("/")
async def index(request: Request) -> Response:
    return await _page(request)


@router.get("/{path:waddle_page}")
async def deep_link(request: Request, path: str) -> Response:
    """A view's own address (``/p/demo/runs/ID``): the page, which reads its state from the URL."""
    return await _page(request, path)
