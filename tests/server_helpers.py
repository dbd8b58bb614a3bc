"""Helpers for the server tests: a real uvicorn serving a log folder on a free loopback port."""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn
from waddle.server.app import create_app
from waddle.server.serve import bind
from waddle.server.settings import ServerSettings

from tests.conftest import wait_until


class Served:
    def __init__(self, url: str, app, client: httpx.Client) -> None:
        self.url, self.app, self.client = url, app, client

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def json(self, path: str, **kwargs):
        response = self.client.get(path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    def caught_up(self) -> bool:
        return self.app.state.waddle.indexer.status()["caught_up"]


@contextlib.contextmanager
def serving(log_dir: Path, token: str | None = None, **settings) -> Iterator[Served]:
    """A real server on 127.0.0.1 (any free port) in a thread, stopped on exit."""
    resolved = ServerSettings(
        dir=str(log_dir), host="127.0.0.1", port=0, token=token, **settings
    ).resolve()
    app = create_app(resolved)
    sock = bind(resolved)
    port = sock.getsockname()[1]
    warnings.filterwarnings("ignore", message="The `websockets` implementation is deprecated")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="websockets"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=20)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        try:
            yield Served(url, app, client)
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            sock.close()
