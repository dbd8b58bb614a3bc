"""Server settings, each resolved as argument, then ``WADDLE_*`` environment variable, then default.

``resolve()`` is called when a command starts, never at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from waddle.settings import SETTINGS as CLIENT_SETTINGS
from waddle.settings import choice, number, resolve_fields

# name -> (environment variable, default, parser, meaning)
SETTINGS = {
    "dir": CLIENT_SETTINGS["dir"],
    "host": ("WADDLE_HOST", "127.0.0.1", str, "address to bind; non-loopback needs a token"),
    "port": ("WADDLE_PORT", 8080, number(int, 0, maximum=65535), "port to bind (0: any free port)"),
    "db": ("WADDLE_DB", None, str, "index file (default DIR/.waddle/index.duckdb)"),
    "token": ("WADDLE_TOKEN", None, str, "bearer token required on /api, /files and /ws"),
    "heartbeat_timeout": CLIENT_SETTINGS["heartbeat_timeout"],
    "watcher": (
        "WADDLE_WATCHER",
        "auto",
        choice("auto", "inotify", "poll"),
        "auto (inotify, else polling), inotify or poll",
    ),
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

    def log_folder(self) -> Path:
        """The log folder, which must exist: a server is pointed at the folder runs log to and
        never creates one (only the client, which writes there, does)."""
        path = Path(self.dir)
        if not path.is_dir():
            raise ValueError(
                f"no log folder at {path}: point waddle at the folder your runs log to "
                "(waddle.init's dir, $WADDLE_DIR, default ./logs)"
            )
        return path
