"""Who may talk to the server: a page of another site, or a name rebound to 127.0.0.1, gets
nothing; a token keeps out everyone without it."""

from __future__ import annotations

import httpx
import orjson
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import wait_until
from tests.server_helpers import serving

ATTACKER = "http://attacker.example"


def _runs(new_run):
    run = new_run(name="private")
    run.log({"loss": 1.0})
    run.finish()
    return run


def _refused(response: httpx.Response, words: str) -> None:
    assert response.status_code == 403, response.text
    assert b"private" not in response.content
    error = response.json()["error"]
    assert error["code"] == "forbidden" and words in error["message"]


def test_without_a_token_only_loopback_host_names_are_answered(tmp_path, new_run):
    """DNS rebinding: attacker.example resolves to 127.0.0.1, so the browser sends its name."""
    _runs(new_run)
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        port = s.url.rsplit(":", 1)[1]
        for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.1.attacker.example"):
            for path in ("/api/projects/p/runs", "/api/health", "/docs", "/files/p/x/y"):
                _refused(httpx.get(s.url + path, headers={"Host": host}), "Host")
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost"):
            response = httpx.get(s.url + "/api/projects/p/runs", headers={"Host": host})
            assert response.status_code == 200 and response.json()["runs"], host


def test_a_page_of_another_origin_can_neither_read_nor_write(tmp_path, new_run):
    run = _runs(new_run)
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        body = {"series": [{"run": run.id, "key": "loss"}]}
        for origin in (ATTACKER, "null", "http://127.0.0.1:1", "https://localhost"):
            headers = {"Origin": origin}
            _refused(httpx.get(s.url + "/api/projects/p/runs", headers=headers), "Origin")
            _refused(
                httpx.post(s.url + "/api/projects/p/scalars", json=body, headers=headers),
                "Origin",
            )
        own = {"Origin": s.url}
        assert httpx.get(s.url + "/api/projects/p/runs", headers=own).status_code == 200
        assert (
            httpx.post(s.url + "/api/projects/p/scalars", json=body, headers=own).status_code == 200
        )


@pytest.mark.parametrize("token", [None, "s3cret"])
def test_a_websocket_from_another_origin_is_refused(tmp_path, new_run, token):
    _runs(new_run)
    with serving(tmp_path, token=token) as s:
        url = s.ws_url + (f"?token={token}" if token else "")
        with pytest.raises(InvalidStatus) as refused, connect(url, origin=ATTACKER):
            pass
        assert refused.value.response.status_code == 403
        with connect(url, origin=s.url) as ws:  # the dashboard's own origin
            ws.send(orjson.dumps({"op": "subscribe", "id": "r", "project": "p"}).decode())
            assert orjson.loads(ws.recv(timeout=10))["type"] == "subscribed"
        with connect(url) as ws:  # not a browser: no Origin
            ws.send(orjson.dumps({"op": "subscribe", "id": "r", "project": "p"}).decode())
            assert orjson.loads(ws.recv(timeout=10))["type"] == "subscribed"


def test_with_a_token_any_host_name_is_answered_but_only_with_the_token(tmp_path, new_run):
    """Behind a token the server may be reached by any name (0.0.0.0, a proxy); the token,
    which no browser sends by itself, is what keeps other sites out."""
    _runs(new_run)
    with serving(tmp_path, token="s3cret") as s:
        wait_until(s.caught_up)
        host = {"Host": "tracker.example:443"}
        assert s.get("/api/projects/p/runs", headers=host).status_code == 200
        bare = httpx.get(s.url + "/api/projects/p/runs", headers=host)
        assert bare.status_code == 401 and b"private" not in bare.content
        foreign = s.get("/api/projects/p/runs", headers=host | {"Origin": ATTACKER})
        _refused(foreign, "Origin")
        own = s.get("/api/projects/p/runs", headers=host | {"Origin": "https://tracker.example"})
        assert own.status_code == 200


@pytest.mark.parametrize("kind", ["token", "read_token", "token_file"])
def test_the_page_asks_for_a_token_whenever_the_server_has_one(tmp_path, kind):
    # A server with only a token file (as a central server is run) or read-only tokens served
    # a page that did not ask: its every request was refused, then "that token was refused".
    logs = tmp_path / "logs"
    logs.mkdir()
    setting = {"token": "s3cret", "read_token": "s3cret"}.get(kind)
    if kind == "token_file":
        (tmp_path / "tokens").write_text("s3cret\n")
        setting = str(tmp_path / "tokens")
    with serving(logs, **{kind: setting}) as s:
        page = httpx.get(s.url + "/p/anything").text
        assert '<meta name="waddle-token" content="required">' in page
    with serving(logs) as s:
        page = httpx.get(s.url + "/").text
        assert '<meta name="waddle-token" content="none">' in page
