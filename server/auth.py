"""Bearer-token access control for /api, /files and /ws.

With a token set, every request under those paths must carry ``Authorization: Bearer <token>``
or ``?token=<token>``; anything else gets 401 in the API's error shape (a WebSocket is closed
with code 1008). Comparison is constant-time. Without a token (loopback only) nothing is checked.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send
from waddle.server.errors import error_response

PROTECTED = ("/api", "/files", "/ws")


class TokenAuth:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] in ("http", "websocket")
            and scope["path"].startswith(PROTECTED)
            and not self._allowed(scope)
        ):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            response = error_response(
                401,
                "unauthorized",
                "this server needs a token: send 'Authorization: Bearer <token>' or ?token=",
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if (
                name == b"authorization"
                and value[:7].lower() == b"bearer "
                and hmac.compare_digest(value[7:].strip(), self.token)
            ):
                return True
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return any(hmac.compare_digest(v.encode(), self.token) for v in query.get("token", ()))
