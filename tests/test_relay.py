"""Relaying: training machines forward their runs to a central server, exactly once, through
kills and outages of either side (server/relay.py, server/intake.py; docs/api.md, "Relaying").

Every test runs the real thing: a central `waddle serve` and `waddle relay` as processes on
loopback (killed with -9 and started again), training processes logging scalars and media, and
at the end the central index is compared, event for event, with an index of the local folder.
"""

from __future__ import annotations

import math
import subprocess

import pytest

from tests.conftest import PYTHON, child_env, events_of, wait_until
from tests.relay_helpers import (
    QUIET_ENV,
    TOKEN,
    Central,
    finished_id,
    index_view,
    local_index_view,
    relay_process,
    train,
)
from waddle import segment


def _local_events(log_dir, run_id: str) -> int:
    return len(events_of(log_dir / "p" / run_id))


def _same_run(local_dir, central: Central, origin: str, run_id: str) -> None:
    """The central index holds the run exactly as an index of the local folder does, and its
    log holds the very same lines."""
    central_id = f"{origin}.{run_id}"
    expected = _local_events(local_dir, run_id)
    wait_until(lambda: central.events_of("p", central_id) == expected, timeout=60)
    local = local_index_view(local_dir, "p", run_id)
    for metric in local["metrics"]:  # a sum depends on how points were batched: the last bit
        if metric["mean"] is not None:
            metric["mean"] = pytest.approx(metric["mean"], rel=1e-12)
    assert index_view(central.client, "p", central_id) == local
    run = central.json(f"/api/projects/p/runs/{central_id}")
    assert (run["origin"], run["origin_run_id"]) == (origin, run_id)
    assert run["gaps"] == 0 and run["rejected"] == 0
    central_lines = b"".join(
        path.read_bytes() for path in segment.list_segments(central.folder / "p" / central_id)
    )
    local_lines = b"".join(
        path.read_bytes() for path in segment.list_segments(local_dir / "p" / run_id)
    )
    assert central_lines == local_lines
    for folder in ("media", "files"):
        local_files = sorted(p.name for p in (local_dir / "p" / run_id / folder).iterdir())
        central_files = sorted(
            p.name for p in (central.folder / "p" / central_id / folder).iterdir()
        )
        assert central_files == local_files


@pytest.fixture
def central(tmp_path):
    server = Central(tmp_path / "central", tmp_path / "central.log").start()
    yield server
    server.kill()


def test_kill_9_of_the_central_server_and_of_the_relay_mid_stream_loses_and_repeats_nothing(
    tmp_path, central
):
    local = tmp_path / "local"
    local.mkdir()
    relay = relay_process(local, central, tmp_path / "relay.log", "gpu-1").start()
    child = train(local, steps=3000, pause=0.001)
    assert child.stdout.readline().strip() == "0"
    assert child.stdout.readline().strip() == "500"
    central.kill()  # mid-stream: the relay keeps retrying, the run keeps logging
    assert child.stdout.readline().strip() == "1000"
    central.start()
    assert child.stdout.readline().strip() == "1500"
    relay.kill()  # mid-stream again, on the relay's side
    relay.start()
    run_id = finished_id(child)
    _same_run(local, central, "gpu-1", run_id)
    relay.stop()


def test_a_run_that_starts_and_ends_while_the_central_server_is_down_arrives_when_it_returns(
    tmp_path, central
):
    local = tmp_path / "local"
    local.mkdir()
    relay = relay_process(local, central, tmp_path / "relay.log", "gpu-1").start()
    first = finished_id(train(local, steps=300, RUN_ID="before"))
    wait_until(lambda: central.events_of("p", "gpu-1.before") == _local_events(local, first))
    central.kill()
    during = finished_id(train(local, steps=800, RUN_ID="during"))
    # The relay meets the outage before the server is back (on a calm machine the run was
    # over, and the server up again, before the relay had tried to send it).
    wait_until(lambda: "cannot reach" in relay.output(), timeout=30)
    central.start()
    _same_run(local, central, "gpu-1", during)
    _same_run(local, central, "gpu-1", first)
    relay.stop()


def test_three_machines_with_the_same_project_and_run_id_stay_three_runs(tmp_path, central):
    machines = ["node-a", "node-b", "node-c"]
    folders = {origin: tmp_path / origin for origin in machines}
    relays = []
    for origin, folder in folders.items():
        folder.mkdir()
        relays.append(relay_process(folder, central, tmp_path / f"{origin}.log", origin).start())
    children = [train(folder, steps=400, RUN_ID="exp-1") for folder in folders.values()]
    for child in children:
        assert finished_id(child) == "exp-1"
    for origin, folder in folders.items():
        _same_run(folder, central, origin, "exp-1")
    runs = central.json("/api/projects/p/runs")["runs"]
    assert sorted((run["id"], run["origin"]) for run in runs) == [
        (f"{origin}.exp-1", origin) for origin in machines
    ]
    for relay in relays:
        relay.stop()


def _waddle(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "waddle.cli", *args],
        env=child_env(**QUIET_ENV),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sync_sends_a_folder_of_finished_runs_once_and_says_what_it_sent(tmp_path, central):
    local = tmp_path / "local"
    local.mkdir()
    ids = [finished_id(train(local, steps=200, RUN_ID=f"r{n}")) for n in range(3)]
    first = _waddle("sync", str(local), "--to", central.url, "--token", TOKEN, "--origin", "box")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"waddle sync: sent 3 runs to {central.url}: ")
    # Per run: its image and its saved file.
    assert "6 files" in first.stdout and "there already" not in first.stdout
    for run_id in ids:
        _same_run(local, central, "box", run_id)
    again = _waddle(
        "sync", str(local / "p" / "r1"), "--to", central.url, "--token", TOKEN, "--origin", "box"
    )
    assert again.returncode == 0, again.stderr
    assert "sent 0 runs" in again.stdout and "1 run was there already" in again.stdout
    assert central.json("/api/health")["intake"]["events"] == sum(
        _local_events(local, run_id) for run_id in ids
    )


def test_a_central_server_that_lost_a_run_gets_it_again_from_the_start(tmp_path, central):
    local = tmp_path / "local"
    local.mkdir()
    run_id = finished_id(train(local, steps=300, RUN_ID="lost"))
    sync = ["sync", str(local), "--to", central.url, "--token", TOKEN, "--origin", "box"]
    assert _waddle(*sync).returncode == 0
    central.kill()
    for path in (central.folder / "p").iterdir():  # restored from an old backup, say
        for file in sorted(path.rglob("*"), reverse=True):
            file.rmdir() if file.is_dir() else file.unlink()
        path.rmdir()
    central.start()
    again = _waddle(*sync)
    assert again.returncode == 0, again.stderr
    assert "sent 1 run" in again.stdout
    _same_run(local, central, "box", run_id)


def test_an_online_run_is_forwarded_in_the_background_and_its_forwarder_ends_with_it(
    tmp_path, central
):
    local = tmp_path / "local"
    child = train(
        local,
        steps=500,
        WADDLE_MODE="online",
        WADDLE_SERVER=central.url,
        WADDLE_TOKEN=TOKEN,
        WADDLE_ORIGIN="laptop",
    )
    run_id = finished_id(child)
    _same_run(local, central, "laptop", run_id)
    # The forwarder saw the finish acknowledged and left: nothing of it is running.
    wait_until(lambda: not _forwarders_of(local), timeout=30)


def _forwarders_of(folder) -> list[str]:
    found = subprocess.run(
        ["pgrep", "-f", f"waddle.server.forward {folder}"], capture_output=True, text=True
    )
    return found.stdout.split()


def test_an_online_run_while_the_central_server_is_down_is_sent_by_sync_later(tmp_path):
    local = tmp_path / "local"
    central = Central(tmp_path / "central", tmp_path / "central.log")  # not started
    child = train(
        local,
        steps=100,
        WADDLE_MODE="online",
        WADDLE_SERVER=central.url,
        WADDLE_TOKEN=TOKEN,
        WADDLE_ORIGIN="laptop",
    )
    run_id = finished_id(child)  # the training script never waited for the network
    central.start()
    try:
        done = _waddle(
            "sync", str(local), "--to", central.url, "--token", TOKEN, "--origin", "laptop"
        )
        assert done.returncode == 0, done.stderr
        _same_run(local, central, "laptop", run_id)
    finally:
        for pid in _forwarders_of(local):
            subprocess.run(["kill", pid])
        central.kill()


def test_serve_relay_to_relays_its_folder_and_its_health_says_how_far_behind_it_is(tmp_path):
    from tests.server_helpers import serving

    local = tmp_path / "local"
    local.mkdir()
    central = Central(tmp_path / "central", tmp_path / "central.log")  # down at first
    run_id = finished_id(train(local, steps=400))
    with serving(local, token=TOKEN, relay_to=central.url, origin="ws-1") as served:

        def relay_state():
            return served.json("/api/health")["relay"]

        down = wait_until(lambda: (state := relay_state())["state"] == "retrying" and state)
        assert down["to"] == central.url and down["origin"] == "ws-1"
        assert down["behind_events"] > 0 and down["behind_bytes"] > 0
        assert "cannot reach" in down["last_error"]["message"]
        assert served.json("/api/health")["status"] == "degraded"
        central.start()
        try:
            caught_up = wait_until(lambda: (s := relay_state())["state"] == "ok" and s, timeout=60)
            assert caught_up["behind_events"] == caught_up["behind_bytes"] == 0
            assert caught_up["sent_events"] == _local_events(local, run_id)
            wait_until(lambda: served.json("/api/health")["status"] == "ok")
            _same_run(local, central, "ws-1", run_id)
        finally:
            central.kill()


@pytest.fixture
def tls_server(tmp_path):
    """A TLS server on loopback with a self-signed certificate for 127.0.0.1, answering every
    POST as a central server would, and counting the requests that reached it."""
    import http.server
    import ssl
    import threading

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        capture_output=True,
    )  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"openssl cannot make a certificate here: {made.stderr[-200:]!r}")
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            body = b'{"runs":[{"project":"p","run":"r","id":"box.r","acked":-1}]}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert, received
    server.shutdown()


def test_an_https_server_is_only_trusted_with_a_valid_certificate(tls_server, monkeypatch):
    from waddle.server.ingest_body import Chunk
    from waddle.server.uplink import Uplink, UplinkError

    url, cert, received = tls_server
    question = [Chunk("p", "r", -1)]
    with pytest.raises(UplinkError, match="not trusted") as refused:
        Uplink(url, TOKEN).ingest("box", question)
    assert not refused.value.transient and received == []  # nothing, the token included, sent
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the authority that signed it
    assert Uplink(url, TOKEN).ingest("box", question)[0]["acked"] == -1
    assert len(received) == 1


def test_runs_found_while_the_central_server_is_down_all_arrive_once_it_is_up(tmp_path):
    # The relay reads the next batch while one is in flight; when the one in flight fails,
    # what was read on top of it (questions about runs found meanwhile included) is read
    # again later, never left waiting for an answer that will not come.
    from waddle.server.relay import Relay, Scope
    from waddle.server.uplink import Uplink

    local = tmp_path / "local"
    central = Central(tmp_path / "central", tmp_path / "central.log")  # down
    relay = Relay(Scope(local), Uplink(central.url, TOKEN), "gpu-1")
    finished_id(train(local, steps=50, RUN_ID="r0"))
    relay.step()  # asks about r0: in flight, to fail
    finished_id(train(local, steps=50, RUN_ID="r1"))
    relay._scanned_at = -math.inf  # the next look at the folder is due: it finds r1
    relay.step()
    central.start()
    try:
        relay._retry_at = 0.0  # no need to wait out the backoff
        assert relay.sync()
        for run_id in ("r0", "r1"):
            _same_run(local, central, "gpu-1", run_id)
    finally:
        relay.close()
        central.kill()


def test_a_relay_backs_off_while_the_central_server_cannot_be_reached(tmp_path):
    from waddle.server.relay import Relay, Scope
    from waddle.server.uplink import Uplink

    from tests.relay_helpers import free_port

    local = tmp_path / "local"
    finished_id(train(local, steps=20))
    relay = Relay(Scope(local), Uplink(f"http://127.0.0.1:{free_port()}", TOKEN), "gpu-1")
    relay.start()
    try:
        # 0.25 s, then twice as long each time: the wait reaches 1 s after the third failure.
        status = wait_until(lambda: (s := relay.status())["retry_in"] >= 0.9 and s, timeout=30)
    finally:
        relay.stop()
    assert status["last_error"]["count"] <= 4, status["last_error"]  # not one try per loop
    assert status["state"] == "retrying" and status["behind_events"] > 0
