"""``WS /ws``: live updates. The protocol (JSON text messages) is in docs/api.md.

Client → server: ``{"op": "subscribe", "id": ..., "project": ...}`` (run list changes),
``{"op": "subscribe", "id": ..., "project": ..., "run": ..., "key": ..., "cursor": seq}``
(a series: the points after ``cursor``, -1 for all of them; without it only new points;
``"rank"``: of that rank, else the default rank of the series endpoint),
``{"op": "unsubscribe", "id": ...}``.
Server → client: ``subscribed``, ``runs``, ``points``, ``resync`` and ``error`` messages; an
error carries the ``code`` an HTTP error of the same cause has (server/errors.py).
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from waddle.server import wire
from waddle.server.errors import ApiError, invalid
from waddle.server.hub import Connection, Subscription
from waddle.server.routes.lookup import series_stream

from waddle.event import SEQ_MAX
from waddle.ranks import RANK_MAX

router = APIRouter(tags=["live"])


@router.websocket("/ws")
async def live(websocket: WebSocket) -> None:
    await websocket.accept()
    hub = websocket.app.state.waddle.hub
    connection = Connection(websocket)
    sender = asyncio.create_task(hub.serve(connection))
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            raw = message.get("text")
            if raw is None:
                reply = _error(None, invalid("send JSON in text frames, not binary ones"))
            else:
                reply = await _handle(hub, connection, websocket, raw)
            if reply is not None:
                await websocket.send_text(wire.dumps(reply).decode())
    except WebSocketDisconnect:
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender


def _error(sub_id: str | None, error: ApiError) -> dict:
    """An error message, with the same ``code`` as the HTTP error of the same cause."""
    return {"type": "error", "id": sub_id, "code": error.code, "message": error.message}


async def _handle(hub, connection: Connection, websocket: WebSocket, raw: str) -> dict | None:
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _error(None, invalid("a message is a JSON object; this is not JSON"))
    if not isinstance(message, dict):
        return _error(None, invalid("a message is a JSON object"))
    sub_id, op = message.get("id"), message.get("op")
    if not isinstance(sub_id, str) or not sub_id:
        return _error(None, invalid("every message needs a string id"))
    if op == "unsubscribe":
        hub.unsubscribe(connection, sub_id)
        return {"type": "unsubscribed", "id": sub_id}
    if op != "subscribe":
        return _error(sub_id, invalid("op must be subscribe or unsubscribe"))
    project, run_id, key = message.get("project"), message.get("run"), message.get("key")
    cursor, rank = message.get("cursor"), message.get("rank")
    if (
        not isinstance(project, str)
        or (run_id is None) != (key is None)
        or not (run_id is None or (isinstance(run_id, str) and isinstance(key, str)))
    ):
        return _error(
            sub_id, invalid("subscribe needs a project, and for a series both run and key")
        )
    if cursor is not None and (type(cursor) is not int or not -1 <= cursor <= SEQ_MAX):
        return _error(sub_id, invalid("cursor must be a seq (-1 for all points)"))
    if rank is not None and (key is None or type(rank) is not int or not 0 <= rank <= RANK_MAX):
        return _error(sub_id, invalid("rank is a rank of the run (an integer from 0) of a series"))
    run = None
    if key is not None:
        try:
            rank, run = series_stream(websocket, project, run_id, rank, key)
        except ApiError as error:
            return _error(sub_id, error)
    hub.unsubscribe(connection, sub_id)
    sub = Subscription(
        id=sub_id, project=project, run_id=run_id, key=key, cursor=cursor, rank=rank or 0
    )
    hub.register(connection, sub)
    subscribed = {"type": "subscribed", "id": sub_id}
    if key is not None:
        subscribed["rank"] = rank  # whose series it is: the one asked for, or the default
    await websocket.send_text(wire.dumps(subscribed).decode())
    await hub.load(connection, sub, run)
    return None
