"""Server settings, each resolved as argument, then ``WADDLE_*`` environment variable, then default.

``resolve()`` is called when a command starts, never at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from waddle.settings import resolve_fields

# name -> (environment variable, default, parser, meaning)
SETTINGS = {
    "dir": ("WADDLE_DIR", "./logs", str, "log folder to serve"),
    "host": ("WADDLE_HOST", "127.0.0.1", str, "address to bind; non-loopback needs a token"),
    "port": ("WADDLE_PORT", 8080, int, "port to bind (0: any free port)"),
    "db": ("WADDLE_DB", None, str, "index file (default DIR/.waddle/index.duckdb)"),
    "token": ("WADDLE_TOKEN", None, str, "bearer token required on /api, /files and /ws"),
    "heartbeat_timeout": (
        "WADDLE_HEARTBEAT_TIMEOUT",
        120.0,
        float,
        "seconds without an event after which an unfinished run counts as crashed",
    ),
    "watcher": ("WADDLE_WATCHER", "auto", str, "auto (inotify, else polling), inotify or poll"),
}


@dataclass(frozen=True)
class ServerSettings:
    dir: str | None = None
    host: str | None = None
    port: int | None = None
    db: str | None = None
    token: str | None = None
    heartbeat_timeout: float | None = None
    watcher: str | None = None

    def resolve(self, environ: dict[str, str] | None = None) -> ServerSettings:
        resolved = resolve_fields(self, SETTINGS, environ)
        if resolved.db is None:
            resolved = replace(resolved, db=str(Path(resolved.dir) / ".waddle" / "index.duckdb"))
        return resolved
