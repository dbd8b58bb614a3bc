"""Helpers for the server tests: a real uvicorn serving a log folder on a free loopback port."""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from waddle.server import serve, wire
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
    server = serve.server(app)
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


TOKENS = {wire.NAN: math.nan, wire.POS_INF: math.inf, wire.NEG_INF: -math.inf}


def _numbers(column) -> np.ndarray:
    return np.array([TOKENS.get(v, v) if isinstance(v, str) else v for v in column], dtype=float)


def check_m4(buckets: dict, steps: np.ndarray, values: np.ndarray, start, end, points: int):
    """Assert that ``buckets`` (as the API sends them) are an exact M4 of the points in range."""
    b = orjson.loads(wire.dumps(buckets))
    assert 0 < len(b["count"]) <= points
    inside = (steps >= start) & (steps <= end)
    steps, values = steps[inside], values[inside]
    assert sum(b["count"]) == len(steps)
    x_first, x_last = _numbers(b["x_first"]), _numbers(b["x_last"])
    assert np.all(x_first[1:] > x_last[:-1]), "buckets overlap or are out of order"
    for i, (low, high) in enumerate(zip(x_first, x_last, strict=True)):
        mine = (steps >= low) & (steps <= high)
        vals = values[mine]
        assert b["count"][i] == len(vals), f"bucket {i}: its count is not its points"
        assert steps[mine][0] == low and steps[mine][-1] == high
        assert _numbers([b["first"][i]])[0] == pytest.approx(vals[0], nan_ok=True)
        assert _numbers([b["last"][i]])[0] == pytest.approx(vals[-1], nan_ok=True)
        numbers = vals[~np.isnan(vals)]
        assert b["nan"][i] == len(vals) - len(numbers)
        if len(numbers) == 0:
            assert math.isnan(_numbers([b["min"][i]])[0])
            continue
        for name, expected in (("min", numbers.min()), ("max", numbers.max())):
            got = _numbers([b[name][i]])[0]
            assert got == expected, f"bucket {i}: {name} {got} != {expected}"
            at = _numbers([b[f"x_{name}"][i]])[0]
            assert values[np.searchsorted(steps, at)] == expected
