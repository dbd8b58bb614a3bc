"""Server settings, each resolved as argument, then ``WADDLE_*`` environment variable, then default.

``resolve()`` is called when a command starts, never at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from waddle.server.tokens import Tokens, gather

from waddle.settings import SETTINGS as CLIENT_SETTINGS
from waddle.settings import Setting, choice, number, parse_tokens, parse_url, parsed, resolve_fields

# name -> (environment variable, default, parser, meaning)
SETTINGS = {
    "dir": CLIENT_SETTINGS["dir"],
    "host": ("WADDLE_HOST", "127.0.0.1", str, "address to bind; non-loopback needs a token"),
    "port": ("WADDLE_PORT", 8080, number(int, 0, maximum=65535), "port to bind (0: any free port)"),
    "db": ("WADDLE_DB", None, str, "index file (default DIR/.waddle/index.duckdb)"),
    "token": CLIENT_SETTINGS["token"],
    "read_token": (
        "WADDLE_READ_TOKEN",
        None,
        parse_tokens,
        "read-only token(s): may read the API, files and live updates, not ingest",
    ),
    "token_file": CLIENT_SETTINGS["token_file"],
    "heartbeat_timeout": CLIENT_SETTINGS["heartbeat_timeout"],
    "origin": CLIENT_SETTINGS["origin"],
    "watcher": (
        "WADDLE_WATCHER",
        "auto",
        choice("auto", "inotify", "poll"),
        "auto (inotify, else polling), inotify or poll",
    ),
}

RELAY_TO = Setting(None, None, parse_url, "the central server `waddle serve --relay-to` relays to")


@dataclass(frozen=True)
class ServerSettings:
    dir: str | None = None
    host: str | None = None
    port: int | None = None
    db: str | None = None
    token: tuple[str, ...] | str | None = None
    read_token: tuple[str, ...] | str | None = None
    token_file: str | None = None
    heartbeat_timeout: float | None = None
    origin: str | None = None
    watcher: str | None = None
    # The central server to relay this folder to (`--relay-to`): an argument only, so that a
    # WADDLE_SERVER set for online runs never makes a plain `waddle serve` relay.
    relay_to: str | None = None

    def resolve(self, environ: dict[str, str] | None = None) -> ServerSettings:
        resolved = resolve_fields(self, SETTINGS, environ)
        if resolved.relay_to is not None:
            resolved = replace(resolved, relay_to=parsed(RELAY_TO, resolved.relay_to, "--relay-to"))
        if resolved.db is None:
            resolved = replace(resolved, db=str(Path(resolved.dir) / ".waddle" / "index.duckdb"))
        return resolved

    def tokens(self) -> Tokens:
        """Every token the server accepts (of resolved settings): given, and from the file."""
        return gather(self.token or (), self.read_token or (), self.token_file)

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
