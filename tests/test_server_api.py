"""The HTTP API and live updates against a real server: answers a user would see."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys

import httpx
import numpy as np
import orjson
import pyarrow.ipc
import pytest
from waddle.server.series import ema
from waddle.server.serve import bind
from waddle.server.settings import ServerSettings
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

import waddle
from tests.conftest import wait_until
from tests.server_helpers import check_m4, serving


def _logged(new_run, steps, **init):
    run = new_run(**init)
    for step in steps:
        run.log(step)
    run.finish()
    return run


def test_runs_list_summary_sort_and_errors(tmp_path, new_run):
    a = _logged(new_run, [{"loss": 3.0}, {"loss": 1.0}], name="a", config={"lr": 0.1}, tags=["x"])
    b = _logged(new_run, [{"loss": 2.0}, {"loss": 0.5}], name="b", config={"lr": 0.01})
    with serving(tmp_path) as s:
        wait_until(lambda: s.caught_up() and s.json("/api/projects")["projects"])
        runs = s.json("/api/projects/p/runs", params={"sort": "summary.loss"})["runs"]
        assert [r["name"] for r in runs] == ["b", "a"]
        assert runs[0]["summary"]["loss"] == 0.5 and runs[0]["status"] == "finished"
        runs = s.json("/api/projects/p/runs", params={"sort": "-config.lr"})["runs"]
        assert [r["id"] for r in runs] == [a.id, b.id]
        assert [r["id"] for r in s.json("/api/projects/p/runs", params={"tag": "x"})["runs"]] == [
            a.id
        ]
        page = s.json("/api/projects/p/runs", params={"limit": 1, "offset": 1, "sort": "name"})
        assert page["total"] == 2 and [r["name"] for r in page["runs"]] == ["b"]
        assert s.json("/api/projects")["projects"][0]["runs"] == 2

        for path, status, words in [
            ("/api/projects/nope/runs", 404, "no project 'nope'"),
            (f"/api/projects/p/runs/{a.id}x", 404, f"no run '{a.id}x' in project 'p'"),
            (f"/api/projects/p/runs/{a.id}/scalars?key=acc", 404, "no scalar key 'acc'"),
            (f"/api/projects/p/runs/{a.id}/scalars?key=loss&points=0", 422, "points"),
            (f"/api/projects/p/runs/{a.id}/scalars?key=loss&smooth=1.5", 422, "smooth"),
            ("/api/projects/p/runs?sort=bogus", 422, "sort='bogus'"),
            ("/api/nothing", 404, "no such endpoint"),
        ]:
            response = s.get(path)
            assert response.status_code == status, path
            error = response.json()["error"]
            assert words in error["message"] and error["code"], path


def test_a_runs_summary_holds_its_rich_keys_newest_value_as_the_clients(tmp_path, new_run):
    """A key logged only as text or rich values has its newest value in the run's summary,
    as in the client's; define_metric(summary="none") hides it, and a value set explicitly
    wins. The runs list leaves such values out."""
    run = new_run()
    run.define_metric("hidden", summary="none")
    for step in range(3):
        run.log({"loss": 1.0 / (step + 1), "note": f"n{step}", "hidden": "h", "set": "logged"})
    run.log({"hist": waddle.Histogram([1.0, 2.0])})
    run.summary["set"] = 7
    client = dict(run.summary.items())
    run.finish()
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        summary = s.json(f"/api/projects/p/runs/{run.id}")["summary"]
        listed = s.json("/api/projects/p/runs")["runs"][0]["summary"]
    assert summary["note"] == client["note"] == "n2" and summary["set"] == client["set"] == 7
    assert summary["hist"]["_type"] == client["hist"]["_type"] == "histogram"
    assert "hidden" not in summary and "hidden" not in client
    assert list(summary)[:1] == ["loss"]  # the numbers first
    assert "note" not in listed and listed["loss"] == pytest.approx(1 / 3)


def test_an_unknown_endpoint_is_404_whatever_the_method_and_a_known_one_405(tmp_path):
    # The dashboard's deep links take any other GET path; they never make an unknown API path
    # "method not allowed" (a PUT to a path no endpoint takes was a 405, as if GET would do).
    with serving(tmp_path) as s:
        for method, path, status in [
            ("PUT", "/api/projects/p/evil.png", 404),
            ("POST", "/api/nothing", 404),
            ("DELETE", "/files/x", 404),
            ("DELETE", "/files/p/r/x.png", 405),  # a file: GET only
            ("PUT", "/api/projects", 405),
            ("POST", "/p/demo", 405),
        ]:
            response = s.client.request(method, path)
            assert response.status_code == status, (method, path)
            assert response.json()["error"]["code"] == (
                "not_found" if status == 404 else "http_error"
            )


def test_m4_keeps_a_spike_and_nonfinite_values_round_trip(tmp_path, new_run):
    values = [{"loss": 1.0 + (step % 7) / 100} for step in range(20_000)]
    values[12_345] = {"loss": 1000.0}
    values[17] = {"loss": math.nan}
    values[18] = {"loss": math.inf}
    values[19] = {"loss": -math.inf}
    run = _logged(new_run, values)
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        url = f"/api/projects/p/runs/{run.id}/scalars"
        buckets = s.json(url, params={"key": "loss", "points": 100})["buckets"]
        check_m4(buckets, np.arange(20_000), np.array([v["loss"] for v in values]), 0, 19_999, 100)
        assert 1000.0 in buckets["max"]
        assert buckets["x_max"][buckets["max"].index(1000.0)] == 12_345
        assert buckets["nan"][0] == 1 and buckets["max"][0] == "Infinity"
        assert buckets["min"][0] == "-Infinity"
        assert sum(buckets["count"]) == 20_000

        (metric,) = s.json(f"/api/projects/p/runs/{run.id}/metrics")["metrics"]
        assert (metric["min"], metric["max"]) == ("-Infinity", "Infinity")
        full = s.json(url, params={"key": "loss"})["series"]
        assert len(full["value"]) == 20_000
        assert full["value"][17:20] == ["NaN", "Infinity", "-Infinity"]
        zoom = s.json(url, params={"key": "loss", "points": 10, "start": 12_300, "end": 12_399})
        assert zoom["buckets"]["x_first"][0] == 12_300 and 1000.0 in zoom["buckets"]["max"]

        csv = s.get(f"/api/projects/p/runs/{run.id}/export", params={"format": "csv"})
        assert csv.headers["content-type"].startswith("text/csv")
        assert len(csv.text.splitlines()) == 20_001
        parquet = s.get(f"/api/projects/p/runs/{run.id}/export", params={"format": "parquet"})
        assert parquet.content[:4] == b"PAR1"


def test_ema_is_debiased_and_matches_tensorboard():
    import numpy as np

    assert np.allclose(ema(np.full(1000, 3.0), 0.99), 3.0)  # no bias toward 0 at the start
    values = np.random.default_rng(1).normal(size=5000)
    values[10] = np.nan
    last, count, expected = 0.0, 0, []
    for value in values:  # TensorBoard's loop
        if not np.isfinite(value):
            expected.append(value)
            continue
        last = last * 0.6 + (1 - 0.6) * value
        count += 1
        expected.append(last / (1 - 0.6**count))
    assert np.allclose(ema(values, 0.6), expected, equal_nan=True)


def test_smoothing_through_the_api(tmp_path, new_run):
    run = _logged(new_run, [{"x": float(i % 2)} for i in range(100)])
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        url = f"/api/projects/p/runs/{run.id}/scalars"
        smooth = s.json(url, params={"key": "x", "smooth": 0.9})["series"]["value"]
        assert smooth[0] == 0.0 and 0.4 < smooth[-1] < 0.6
        batch = s.client.post(
            "/api/projects/p/scalars",
            json={
                "series": [{"run": run.id, "key": "x"}, {"run": run.id, "key": "nope"}],
                "points": 10,
                "smooth": 0.9,
            },
        ).json()["results"]
        assert len(batch[0]["buckets"]["max"]) == 10
        assert batch[1]["error"]["code"] == "not_found"


def test_files_never_leave_the_run_folder(tmp_path, new_run):
    run = _logged(new_run, [{"pic": waddle.Image(np.zeros((2, 2), dtype=np.uint8))}])
    (tmp_path / "secret.txt").write_text("TOPSECRET")
    os.symlink(tmp_path / "secret.txt", run.dir / "media" / "link.txt")
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        (item,) = s.json(f"/api/projects/p/runs/{run.id}/media")["items"]
        ok = s.get(f"/files/p/{run.id}/{item['value']['path']}")
        assert ok.status_code == 200 and ok.headers["content-type"] == "image/png"
        for path in [
            f"/files/p/{run.id}/../../secret.txt",
            f"/files/p/{run.id}/%2e%2e/%2e%2e/secret.txt",
            f"/files/p/{run.id}/media/link.txt",
            f"/files/p/{run.id}//etc/passwd",
            f"/files/p/{run.id}/%2Fetc%2Fpasswd",
            "/files/p/../secret.txt",
            f"/files/p/{run.id}/.lock",
        ]:
            response = (
                httpx.get(s.url + path)
                if ".." not in path
                else s.client.send(httpx.Request("GET", s.url + path))
            )
            assert response.status_code == 404, path
            assert b"TOPSECRET" not in response.content


def test_a_saved_html_file_is_served_sandboxed(tmp_path, new_run):
    page = tmp_path / "report.html"
    page.write_text("<script>fetch('/api/projects')</script>")
    run = new_run()
    run.save(page)
    run.finish()
    saved = next(path for path in (run.dir / "files").iterdir() if path.suffix == ".html")
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        response = s.get(f"/files/p/{run.id}/files/{saved.name}")
        items = s.get(f"/api/projects/p/runs/{run.id}/media").json()["items"]
        assert s.get(f"/api/projects/p/runs/{run.id}").json()["rejected"] == 0
    assert [(item["key"], item["type"]) for item in items] == [("files/report.html", "file")]
    assert items[0]["value"]["path"] == f"files/{saved.name}"
    assert response.status_code == 200
    assert response.headers["content-security-policy"].startswith("sandbox")
    assert response.headers["x-content-type-options"] == "nosniff"


def test_token_required_when_set(tmp_path, new_run):
    run = _logged(new_run, [{"a": 1}])
    with serving(tmp_path, token="s3cret") as s:
        bare = httpx.get(s.url + "/api/health")
        assert bare.status_code == 401 and "token" in bare.json()["error"]["message"]
        assert httpx.get(s.url + "/api/health?token=s3cret").status_code == 200
        assert s.get("/api/health").status_code == 200  # the client sends the header
        assert httpx.get(s.url + f"/files/p/{run.id}/x").status_code == 401
        with pytest.raises(InvalidStatus), connect(s.ws_url) as ws:
            ws.send(orjson.dumps({"op": "subscribe", "id": "a", "project": "p"}).decode())
            ws.recv(timeout=5)


def test_answers_are_not_held_back_by_nagle(tmp_path):
    # Without TCP_NODELAY, a small answer on a keep-alive connection (what a browser uses)
    # waited ~40 ms for the client's delayed ACK. Accepted sockets inherit it from this one.
    sock = bind(ServerSettings(dir=str(tmp_path), port=0).resolve())
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()


def test_non_loopback_bind_needs_a_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "WADDLE_TOKEN"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "waddle.cli",
            "serve",
            str(tmp_path),
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "token" in done.stderr


def test_websocket_pushes_new_points(tmp_path, new_run):
    run = new_run()
    run.log({"loss": 5.0})
    run.flush()
    with serving(tmp_path) as s:
        wait_until(lambda: s.get(f"/api/projects/p/runs/{run.id}").status_code == 200)
        with connect(s.ws_url) as ws:
            ws.send(orjson.dumps({"op": "subscribe", "id": "r", "project": "p"}).decode())
            ws.send(
                orjson.dumps(
                    {
                        "op": "subscribe",
                        "id": "s",
                        "project": "p",
                        "run": run.id,
                        "key": "loss",
                        "cursor": 0,
                    }
                ).decode()
            )
            seen, runs = [], []

            def receive():
                message = orjson.loads(ws.recv(timeout=10))
                if message["type"] == "points":
                    seen.extend(zip(message["step"], message["value"], strict=True))
                elif message["type"] == "runs":
                    runs.extend(message["runs"])
                return message

            wait_until(lambda: receive() and (0, 5.0) in seen)  # the backlog after cursor 0
            run.log({"loss": math.nan})
            run.log({"loss": 7.0})
            wait_until(lambda: receive() and (2, 7.0) in seen)
            assert seen == [(0, 5.0), (1, "NaN"), (2, 7.0)]
            assert any(r["id"] == run.id for r in runs)


def test_a_step_logged_twice_is_pushed_once_with_its_newest_value(tmp_path, new_run):
    run = new_run()
    run.log({"loss": 1.0}, commit=False)
    run.log({"loss": 2.0})  # the same step 0, a higher seq
    run.log({"loss": 3.0})
    run.flush()
    with serving(tmp_path) as s:
        wait_until(lambda: s.get(f"/api/projects/p/runs/{run.id}").status_code == 200)
        with connect(s.ws_url) as ws:
            subscribe = {"op": "subscribe", "id": "s", "project": "p", "run": run.id}
            ws.send(orjson.dumps(subscribe | {"key": "loss", "cursor": 0}).decode())
            message = {"type": None}
            while message["type"] != "points":
                message = orjson.loads(ws.recv(timeout=10))
        assert list(zip(message["step"], message["value"], strict=True)) == [(0, 2.0), (1, 3.0)]
        assert message["cursor"] == message["seq"][-1]


def test_custom_x_axis_from_define_metric(tmp_path, new_run):
    run = new_run()
    run.define_metric("val/*", step_metric="epoch")
    run.define_metric("val/special", step_metric="lr")  # the exact name beats the glob
    for step in range(12):
        values = {"train/loss": 10.0 - step, "lr": 0.5 / (step + 1)}
        if step % 4 == 3:  # epochs 1, 2, 3 end at steps 3, 7, 11
            values.update({"epoch": (step + 1) // 4, "val/acc": step / 100, "val/special": 1.0})
        run.log(values)
    run.log({"val/acc": 0.99})  # step 12 has no epoch: left out on the epoch axis
    run.finish()
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        url = f"/api/projects/p/runs/{run.id}/scalars"
        acc = s.json(url, params={"key": "val/acc"})
        assert acc["x"] == "epoch"
        assert acc["series"] == {
            "step": [3, 7, 11],
            "t": acc["series"]["t"],
            "x": [1.0, 2.0, 3.0],
            "value": [0.03, 0.07, 0.11],
        }
        assert s.json(url, params={"key": "val/special"})["x"] == "lr"
        by_step = s.json(url, params={"key": "val/acc", "x": "step"})
        assert by_step["x"] == "step" and by_step["series"]["step"] == [3, 7, 11, 12]
        loss = s.json(url, params={"key": "train/loss"})
        assert loss["x"] == "step" and len(loss["series"]["step"]) == 12
        loss_by_epoch = s.json(url, params={"key": "train/loss", "x": "epoch", "start": 2})
        assert loss_by_epoch["series"]["x"] == [2.0, 3.0]
        assert loss_by_epoch["series"]["value"] == [3.0, -1.0]
        buckets = s.json(url, params={"key": "val/acc", "points": 2, "start": 1, "end": 3})
        assert buckets["x"] == "epoch"
        assert buckets["buckets"]["x_first"] == [1.0, 2.0] and buckets["buckets"]["count"] == [1, 2]
        assert buckets["buckets"]["max"] == [0.03, 0.11]
        smoothed = s.json(url, params={"key": "val/acc", "points": 1, "smooth": 0.5})
        assert smoothed["x"] == "epoch" and smoothed["buckets"]["count"] == [3]
        batch = s.client.post(
            "/api/projects/p/scalars",
            json={"series": [{"run": run.id, "key": "val/acc"}, {"run": run.id, "key": "lr"}]},
        ).json()["results"]
        assert [r["x"] for r in batch] == ["epoch", "step"]
        assert batch[0]["series"]["x"] == [1.0, 2.0, 3.0]
        missing = s.get(url, params={"key": "val/acc", "x": "nope"})
        assert (
            missing.status_code == 404
            and "'nope' to use as x" in missing.json()["error"]["message"]
        )


def test_a_step_logged_twice_keeps_the_newest_value_everywhere(tmp_path, new_run):
    run = new_run()
    run.log({"loss": 1.0})
    run.log({"loss": 100.0}, commit=False)
    run.log({"loss": 2.0})  # step 1: 100 is replaced by 2
    run.log({"loss": 3.0})
    run.log({"loss": 50.0}, step=3)
    run.flush()
    with serving(tmp_path) as s:
        base = f"/api/projects/p/runs/{run.id}"

        def indexed(count):
            metrics = s.get(f"{base}/metrics")
            return metrics.status_code == 200 and metrics.json()["metrics"][0]["count"] == count

        wait_until(lambda: indexed(4))
        run.log({"loss": -7.0}, step=3)  # indexed in a later batch than the 50 it replaces
        run.finish()
        wait_until(lambda: s.json(f"{base}")["status"] == "finished")
        steps, values = [0, 1, 2, 3], [1.0, 2.0, 3.0, -7.0]
        full = s.json(f"{base}/scalars", params={"key": "loss"})["series"]
        assert (full["step"], full["value"]) == (steps, values)
        m4 = s.json(f"{base}/scalars", params={"key": "loss", "points": 1})["buckets"]
        assert (m4["count"], m4["min"], m4["max"], m4["last"]) == ([4], [-7.0], [3.0], [-7.0])
        smooth = s.json(f"{base}/scalars", params={"key": "loss", "smooth": 0.5})["series"]
        assert smooth["value"] == pytest.approx(ema(np.array(values), 0.5).tolist())
        batch = s.client.post(
            "/api/projects/p/scalars", json={"series": [{"run": run.id, "key": "loss"}]}
        ).json()["results"][0]["series"]
        assert batch["value"] == values
        csv = s.get(f"{base}/export", params={"format": "csv"}).text.splitlines()
        assert [float(line.split(",")[-1]) for line in csv[1:]] == values
        (metric,) = s.json(f"{base}/metrics")["metrics"]
        assert (metric["count"], metric["min"], metric["max"], metric["last"]) == (4, -7, 3, -7)
        assert metric["mean"] == pytest.approx(sum(values) / 4)
        assert s.json(f"{base}")["summary"]["loss"] == -7.0


def test_text_and_rich_values_logged_twice_at_one_step_count_once(tmp_path, new_run):
    run = new_run()
    run.log({"note": "a", "h": waddle.Histogram([1.0, 2.0])}, commit=False)
    run.log({"note": "b", "h": waddle.Histogram([3.0])})  # the same step 0
    run.log({"note": "c"})
    run.finish()
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        base = f"/api/projects/p/runs/{run.id}"
        metrics = {m["key"]: m for m in s.json(f"{base}/metrics")["metrics"]}
        assert (metrics["note"]["count"], metrics["note"]["last_step"]) == (2, 1)
        assert (metrics["h"]["type"], metrics["h"]["count"]) == ("histogram", 1)
        notes = s.json(f"{base}/text")["items"]  # the record keeps every value, in seq order
        assert [(n["step"], n["value"]) for n in notes] == [(0, "a"), (0, "b"), (1, "c")]


def test_full_series_as_arrow_keeps_nonfinite_floats(tmp_path, new_run):
    values = [0.5, math.nan, math.inf, -math.inf, 2.5]
    run = _logged(new_run, [{"loss": value} for value in values])
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        url = f"/api/projects/p/runs/{run.id}/scalars"
        response = s.get(url, params={"key": "loss", "format": "arrow"})
        assert response.headers["content-type"] == "application/vnd.apache.arrow.stream"
        table = pyarrow.ipc.open_stream(response.content).read_all()
        assert table.column_names == ["step", "t", "value"]
        assert table["step"].to_pylist() == [0, 1, 2, 3, 4]
        got = table["value"].to_numpy()
        assert math.isnan(got[1]) and got[2] == math.inf and got[3] == -math.inf
        assert got[[0, 4]].tolist() == [0.5, 2.5]
        assert table.schema.metadata[b"waddle.x"] == b"step"
        bad = s.get(url, params={"key": "loss", "format": "arrow", "points": 10})
        assert bad.status_code == 422 and "format=arrow" in bad.json()["error"]["message"]


def test_every_endpoint_answers_errors_in_one_shape(tmp_path, new_run):
    run = _logged(new_run, [{"loss": 1.0}])
    records = ("metrics", "export", "media", "histograms", "tables", "text", "console", "system")
    records += ("alerts", "rejects")
    paths = ["/runs", "/runs/{run}"] + [f"/runs/{{run}}/{name}" for name in records]
    paths.append("/runs/{run}/scalars?key=loss")
    cases = []  # (method, url, body, status, code)
    for path in paths:
        for project, run_id in (("nope", run.id), ("p", "nope")):
            if path == "/runs" and project == "p":
                continue
            url = f"/api/projects/{project}" + path.format(run=run_id)
            cases.append(("GET", url, None, 404, "not_found"))
    cases.append(
        (
            "POST",
            "/api/projects/nope/scalars",
            {"series": [{"run": "a", "key": "b"}]},
            404,
            "not_found",
        )
    )
    base = f"/api/projects/p/runs/{run.id}"
    for url in [
        f"{base}/scalars?key=nope",
        f"{base}/scalars?key=loss&x=nope",
        f"/files/p/{run.id}/media/nope.png",
        "/api/nothing",
    ]:
        cases.append(("GET", url, None, 404, "not_found"))
    for url in [
        "/api/projects/p/runs?status=bogus",
        "/api/projects/p/runs?limit=0",
        "/api/projects/p/runs?sort=bogus",
        f"{base}/scalars?key=loss&points=0",
        f"{base}/scalars?key=loss&smooth=2",
        f"{base}/scalars?key=loss&format=xml",
        f"{base}/scalars?key=loss&format=arrow&points=5",
        f"{base}/scalars",
        f"{base}/export?format=xml",
        f"{base}/media?limit=0",
        f"{base}/console?after=x",
        f"{base}/system?limit=0",
        f"{base}/rejects?limit=0",
    ]:
        cases.append(("GET", url, None, 422, "invalid_parameter"))
    cases.append(("POST", "/api/projects/p/scalars", {"series": []}, 422, "invalid_parameter"))
    cases.append(
        ("POST", "/api/projects/p/scalars", {"series": [{"run": 1}]}, 422, "invalid_parameter")
    )
    with serving(tmp_path, token="s3cret") as s:
        wait_until(s.caught_up)
        for method, url, body, status, code in cases:
            for client, expected in ((s.client, (status, code)), (httpx, (401, "unauthorized"))):
                response = client.request(method, s.url + url, json=body)
                assert response.status_code == expected[0], (method, url, response.text)
                assert response.headers["content-type"] == "application/json", url
                error = response.json()
                assert list(error) == ["error"] and error["error"]["code"] == expected[1], url
                assert isinstance(error["error"]["message"], str) and error["error"]["message"]


def test_websocket_messages_are_text_frames_holding_json(tmp_path, new_run):
    """A browser's WebSocket hands binary frames over as a Blob, which JSON.parse cannot read."""
    run = new_run()
    run.log({"loss": 1.0})
    run.flush()
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        with connect(s.ws_url) as ws:
            ws.send(orjson.dumps({"op": "subscribe", "id": "r", "project": "p"}).decode())
            ws.send(
                orjson.dumps(
                    {"op": "subscribe", "id": "s", "project": "p", "run": run.id, "key": "loss"}
                    | {"cursor": -1}
                ).decode()
            )
            ws.send("not json")
            frames = []
            while not any('"points"' in frame for frame in frames if isinstance(frame, str)):
                frames.append(ws.recv(timeout=10))
                assert isinstance(frames[-1], str), f"a binary frame: {frames[-1]!r}"
            kinds = {orjson.loads(frame)["type"] for frame in frames}
            assert {"subscribed", "error", "points"} <= kinds


def test_a_series_answer_carries_the_cursor_to_subscribe_with(tmp_path, new_run):
    """Reload over HTTP, subscribe with the answer's cursor: every point exactly once."""
    run = new_run()
    for step in range(5):
        run.log({"loss": float(step), "other": 1.0})
    run.flush()
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        url = f"/api/projects/p/runs/{run.id}/scalars"
        whole = s.json(url, params={"key": "loss"})
        assert whole["cursor"] == 5  # the run's newest seq: run_start is 0, then a log a step
        assert s.json(url, params={"key": "loss", "points": 10})["cursor"] == whole["cursor"]
        batch = s.client.post(
            "/api/projects/p/scalars",
            json={"series": [{"run": run.id, "key": "loss"}], "points": 5},
        ).json()
        assert batch["results"][0]["cursor"] == whole["cursor"]
        for step in range(5, 8):
            run.log({"loss": float(step)})
        run.flush()
        with connect(s.ws_url) as ws:
            subscribe = {"op": "subscribe", "id": "s", "project": "p", "run": run.id, "key": "loss"}
            ws.send(orjson.dumps(subscribe | {"cursor": whole["cursor"]}).decode())
            got = []
            while len(got) < 3:
                message = orjson.loads(ws.recv(timeout=10))
                if message["type"] == "points":
                    got.extend(message["step"])
        assert whole["series"]["step"] + got == list(range(8))


def test_a_subscription_with_cursor_minus_one_gets_every_point(tmp_path, new_run):
    run = new_run()
    for step in range(3):
        run.log({"loss": float(step)})
    run.flush()
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        with connect(s.ws_url) as ws:
            subscribe = {"op": "subscribe", "id": "s", "project": "p", "run": run.id, "key": "loss"}
            ws.send(orjson.dumps(subscribe | {"cursor": -1}).decode())
            message = {"type": None}
            while message["type"] != "points":
                message = orjson.loads(ws.recv(timeout=10))
        assert message["step"] == [0, 1, 2]


def test_summaries_are_the_clients_and_sort_by_an_aggregate(tmp_path, new_run):
    """define_metric(summary=...) gives {"max": ...} on the server as in the client and W&B;
    the runs list sorts by summary.KEY.AGGREGATE."""
    runs = []
    for peak in (0.3, 0.9, 0.6):
        run = new_run()
        run.define_metric("val/acc", summary="max,min")
        run.define_metric("hidden", summary="none")
        for value in (0.1, peak, 0.2):
            run.log({"val/acc": value, "hidden": value, "loss": value})
        run.finish()
        runs.append(run)
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        first = s.json(f"/api/projects/p/runs/{runs[0].id}")["summary"]
        assert (
            first == runs[0].summary.as_dict() == {"val/acc": {"max": 0.3, "min": 0.1}, "loss": 0.2}
        )
        best = s.json("/api/projects/p/runs", params={"sort": "-summary.val/acc.max"})["runs"]
        assert [run["id"] for run in best] == [runs[1].id, runs[2].id, runs[0].id]


class CountingCursor:
    """A read cursor that counts the queries sent through it."""

    def __init__(self, cursor, counts: list[int]) -> None:
        self._cursor, self._counts = cursor, counts

    def execute(self, *args, **kwargs):
        self._counts[0] += 1
        return self._cursor.execute(*args, **kwargs)

    def sql(self, *args, **kwargs):
        self._counts[0] += 1
        return self._cursor.sql(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


def test_a_batch_asks_the_index_the_same_few_queries_however_many_series(tmp_path, new_run):
    """Under load each query waits its turn for the GIL and the CPU: a batch that asked a few
    queries per series and per run took seconds and timed out (benchmarks/load.py)."""
    ids = []
    for _ in range(8):
        run = _logged(new_run, [{"a": float(step), "b": -float(step)} for step in range(50)])
        ids.append(run.id)
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        store = s.app.state.waddle.store
        reader, counts = store.reader, [0]
        store.reader = lambda: CountingCursor(reader(), counts)

        def queries(series: list[dict], **extra) -> int:
            counts[0] = 0
            body = {"series": series, "points": 10} | extra
            results = s.client.post("/api/projects/p/scalars", json=body).json()["results"]
            assert all("buckets" in result for result in results), results
            return counts[0]

        one = queries([{"run": ids[0], "key": "a"}])
        many = queries([{"run": run, "key": key} for run in ids for key in ("a", "b")])
        one_custom = queries([{"run": ids[0], "key": "a"}], x="b")
        many_custom = queries([{"run": run, "key": "a"} for run in ids], x="b")
    assert (one, one_custom) == (many, many_custom)
