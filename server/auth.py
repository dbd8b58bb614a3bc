"""Bearer-token access control for /api, /files and /ws.

With tokens set (server/tokens.py), every request under those paths must carry
``Authorization: Bearer <token>`` or ``?token=<token>`` of a full or a read-only token;
anything else gets 401 in the API's error shape (a WebSocket is closed with code 1008).
Ingesting (``/api/ingest``, what relays send) always takes a full token: a read-only one gets
403, and a server without tokens (loopback only) takes no relayed runs at all (401). Without
tokens every other request is answered. Comparison is constant-time; no token is ever echoed.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send
from waddle.server.errors import error_response
from waddle.server.tokens import FULL, Tokens

PROTECTED = ("/api", "/files", "/ws")
INGEST = "/api/ingest"


class TokenAuth:
    def __init__(self, app: ASGIApp, tokens: Tokens) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not scope["path"].startswith(PROTECTED):
            await self.app(scope, receive, send)
            return
        kind = self._kind(scope)
        refusal = None
        if scope["path"] == INGEST or scope["path"].startswith(INGEST + "/"):
            if kind is None:
                refusal = (
                    401,
                    "unauthorized",
                    "relaying to this server needs a full token: send 'Authorization: Bearer "
                    "<token>'"
                    if self.tokens
                    else "this server takes no relayed runs: start it with --token (or "
                    "--token-file) and give relays that token",
                )
            elif kind != FULL:
                refusal = (403, "forbidden", "this token may read, not ingest: use a full token")
        elif kind is None and self.tokens:
            refusal = (
                401,
                "unauthorized",
                "this server needs a token: send 'Authorization: Bearer <token>' or ?token=",
            )
        if refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            await error_response(*refusal)(scope, receive, send)

    def _kind(self, scope: Scope) -> str | None:
        """The kind of the token the request carries (server/tokens.py), or None."""
        found = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                found = self.tokens.kind(value[7:].strip()) or found
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        for value in query.get("token", ()):
            found = self.tokens.kind(value) or found
        return found
