"""Who may talk to this server: one ASGI middleware checks every request's Host, Origin and
token before any route sees it.

- **Host** (DNS rebinding): a page of attacker.example can make its own name resolve to
  127.0.0.1, and the browser then treats this server as that site. Without a token the
  server is on loopback only, so a request must name it by a loopback address or name
  (``127.0.0.1``, ``localhost``, ``[::1]``, any port); another Host gets 403. With a token,
  any Host is answered: the token, which a browser never adds by itself, keeps other sites
  out, and the server may be reached by any name (0.0.0.0, a reverse proxy).
- **Origin** (cross-site requests and WebSockets): a browser names the page that makes a
  request in ``Origin``. When present it must be this server's own origin (the scheme's
  default port or the same port, on the host named in Host); another one, ``null`` included
  (a sandboxed page such as a saved HTML file), gets 403, on every path and on ``/ws``, which
  no same-origin policy protects. Clients that are not browsers send no Origin.
- **Token** (server/tokens.py): with any set, every ``/api``, ``/files`` and ``/ws`` request
  must carry ``Authorization: Bearer <token>`` or ``?token=<token>`` of a full or read-only
  token, compared in constant time; else 401. No token is ever part of an answer.
- **Ingest** (``/api/ingest…``, what relays send): always a full token. A read-only one gets
  403; a server without tokens takes no relayed runs (401), so no page or process that can
  only reach loopback can write runs into its folder.

Refusals use the API's error shape, on ``/ws`` too (as the handshake's HTTP answer).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qs, urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send
from waddle.server.errors import ApiError, forbidden, unauthorized
from waddle.server.tokens import FULL, Tokens

PROTECTED = ("/api", "/files", "/ws")
INGEST = "/api/ingest"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def is_loopback(host: str) -> bool:
    """True if ``host`` (a name or an address, without port) is this machine's loopback."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Access:
    """The middleware; no ``tokens`` means a loopback-only server."""

    def __init__(self, app: ASGIApp, tokens: Tokens) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        refusal = self._refusal(headers) or self._token_refusal(scope, headers)
        if refusal is not None:
            await _refuse(scope, receive, send, refusal)
            return
        await self.app(scope, receive, send)

    def _refusal(self, headers: dict[bytes, bytes]) -> ApiError | None:
        """Why the Host or Origin of a request is refused, or None."""
        host = headers.get(b"host", b"").decode("latin-1").strip().lower()
        name, port = _split(host)
        if not self.tokens and (name is None or not is_loopback(name)):
            return forbidden(
                f"Host {host!r} is not this server: without a token it answers only to "
                "127.0.0.1, localhost or [::1]; a server reached by another name needs a token"
            )
        origin = headers.get(b"origin")
        if origin is not None:
            text = origin.decode("latin-1").strip().lower()
            if not _same_origin(text, name, port):
                return forbidden(
                    f"Origin {text!r} is not this server's: pages of other sites may not "
                    "read from or write to it"
                )
        return None

    def _token_refusal(self, scope: Scope, headers: dict[bytes, bytes]) -> ApiError | None:
        """Why the request's token (or its lack) is refused for its path, or None."""
        path = scope["path"]
        if not path.startswith(PROTECTED):
            return None
        kind = self._kind(scope, headers)
        if path == INGEST or path.startswith(INGEST + "/"):
            if kind == FULL:
                return None
            if kind is not None:
                return forbidden("this token may read, not ingest: relays need a full token")
            if not self.tokens:
                return unauthorized(
                    "this server takes no relayed runs: start it with --token (or "
                    "--token-file) and give relays that token"
                )
            return unauthorized("relaying needs a full token: send 'Authorization: Bearer <token>'")
        if kind is None and self.tokens:
            return unauthorized(
                "this server needs a token: send 'Authorization: Bearer <token>' or ?token="
            )
        return None

    def _kind(self, scope: Scope, headers: dict[bytes, bytes]) -> str | None:
        """The kind of the token the request carries (server/tokens.py), or None."""
        kind = None
        value = headers.get(b"authorization", b"")
        if value[:7].lower() == b"bearer ":
            kind = self.tokens.kind(value[7:].strip())
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        for given in query.get("token", ()):
            kind = kind or self.tokens.kind(given)
        return kind


def _split(netloc: str) -> tuple[str | None, int | None]:
    """(host name, port) of a Host value; (None, None) if it is anything more or unreadable."""
    if "@" in netloc or "/" in netloc or "\\" in netloc:
        return None, None
    try:
        parts = urlsplit("//" + netloc)
        return parts.hostname, parts.port
    except ValueError:
        return None, None


def _same_origin(origin: str, host: str | None, port: int | None) -> bool:
    """True if ``origin`` names the host and port the request was sent to. A side without a
    port means its scheme's default (the request's scheme is unknown behind a proxy)."""
    try:
        parts = urlsplit(origin)
        default = DEFAULT_PORTS.get(parts.scheme)
        if default is None or parts.path not in ("", "/") or parts.hostname is None:
            return False
        origin_port = parts.port or default
    except ValueError:
        return False
    return parts.hostname == host and (port or default) == origin_port


async def _refuse(scope: Scope, receive: Receive, send: Send, error: ApiError) -> None:
    """Answer with the error; a WebSocket handshake gets it as its HTTP answer where the
    server can send one, else it is closed with code 1008 (policy violation)."""
    if scope["type"] == "websocket" and "websocket.http.response" not in scope.get(
        "extensions", {}
    ):
        await send({"type": "websocket.close", "code": 1008})
        return
    await error.response()(scope, receive, send)
