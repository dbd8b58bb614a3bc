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
- **Token**: with one set, every ``/api``, ``/files`` and ``/ws`` request must carry
  ``Authorization: Bearer <token>`` or ``?token=<token>``, compared in constant time; else 401.

Refusals use the API's error shape, on ``/ws`` too (as the handshake's HTTP answer).
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import parse_qs, urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send
from waddle.server.errors import ApiError, forbidden, unauthorized

PROTECTED = ("/api", "/files", "/ws")
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
    """The middleware; ``token`` None means a loopback-only server."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        refusal = self._refusal(headers)
        if refusal is None and not self._has_token(scope, headers):
            refusal = unauthorized(
                "this server needs a token: send 'Authorization: Bearer <token>' or ?token="
            )
        if refusal is not None:
            await _refuse(scope, receive, send, refusal)
            return
        await self.app(scope, receive, send)

    def _refusal(self, headers: dict[bytes, bytes]) -> ApiError | None:
        """Why the Host or Origin of a request is refused, or None."""
        host = headers.get(b"host", b"").decode("latin-1").strip().lower()
        name, port = _split(host)
        if self.token is None and (name is None or not is_loopback(name)):
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

    def _has_token(self, scope: Scope, headers: dict[bytes, bytes]) -> bool:
        """True if no token is needed for this path, or the request carries it."""
        if self.token is None or not scope["path"].startswith(PROTECTED):
            return True
        value = headers.get(b"authorization", b"")
        if value[:7].lower() == b"bearer " and hmac.compare_digest(value[7:].strip(), self.token):
            return True
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return any(hmac.compare_digest(v.encode(), self.token) for v in query.get("token", ()))


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
