"""Artifacts through the relay: a training machine's artifact store shows on the central server
as it does locally (versions, aliases, lineage, files), kept apart per origin, content sent by
hash once, a version never visible before its files, through a kill -9 of the relay
(server/relay_artifacts.py, server/artifact_intake.py; docs/api.md, "Relaying")."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess

import httpx
import orjson
import pytest

import waddle
from tests.conftest import PYTHON, QUIET, child_env, wait_until
from tests.relay_helpers import QUIET_ENV, TOKEN, Central, relay_process
from tests.server_helpers import serving
from waddle import artifact_store


@pytest.fixture
def central(tmp_path):
    server = Central(tmp_path / "central", tmp_path / "central.log").start()
    yield server
    server.kill()


def _sync(local, central: Central, origin: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [PYTHON, "-m", "waddle.cli", "sync", str(local), "--to", central.url, "--token", TOKEN,
         "--origin", origin],
        env=child_env(**QUIET_ENV),
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def _run(folder, project: str = "p", **kwargs):
    return waddle.init(project=project, dir=folder, settings=QUIET, reinit="create_new", **kwargs)


def _log_versions(local, files):
    """p: a producer logs data v0 (best) and v1; a consumer uses data:best; a run of project q
    uses p/data:v1. Returns the three run ids."""
    (files / "sub").mkdir(parents=True)
    (files / "model.bin").write_bytes(os.urandom(30_000))
    (files / "sub" / "x.txt").write_text("one")
    producer = _run(local, name="producer")
    first = waddle.Artifact("data", type="dataset", metadata={"loss": float("nan")})
    first.add_dir(files)
    first.add_reference("s3://bucket/raw.tar")
    producer.log_artifact(first, aliases=["best"])
    second = waddle.Artifact("data", type="dataset", description="more")
    with second.new_file("sub/x.txt") as file:
        file.write("two")
    producer.log_artifact(second, aliases=["candidate"])
    producer.finish()
    consumer = _run(local, name="consumer")
    consumer.use_artifact("data:best")
    consumer.finish()
    other = _run(local, project="q", name="other")
    other.use_artifact("p/data:v1")
    other.finish()
    return producer.id, consumer.id, other.id


def _artifact_view(client: httpx.Client, project: str, name: str, runs: dict) -> dict:
    """What a server shows of an artifact: its versions with aliases and lineage, each
    version's manifest and every file's bytes; run ids and the name as ``runs`` maps them."""

    def get(path: str):
        response = client.get(f"/api/projects/{project}/artifacts/{name}{path}")
        assert response.status_code == 200, (path, response.text)
        return response

    answer = get("").json()
    view = {"type": answer["type"], "versions": []}
    for version in answer["versions"]:
        for key in ("logged_by", "used_by"):
            for run in version[key]:
                run["run"] = runs.get(run["run"], run["run"])
        if version["created_by"] is not None:
            version["created_by"]["run"] = runs.get(*[version["created_by"]["run"]] * 2)
        one = get(f"/{version['version']}").json()
        for key in ("name", "origin", "origin_name", "created_by", "logged_by", "used_by"):
            one.pop(key)
        for entry in one["manifest"]["entries"]:
            if entry["sha256"] is not None:
                content = get(f"/{version['version']}/files/{entry['path']}").content
                entry["content"] = hashlib.sha256(content).hexdigest()
        view["versions"].append({**version, "one": one})
    return view


def test_artifacts_logged_and_used_on_a_training_machine_show_centrally_as_they_do_locally(
    tmp_path, central
):
    local = tmp_path / "local"
    producer, consumer, other = _log_versions(local, tmp_path / "files")
    first = _sync(local, central, "box")
    assert "2 artifact versions (3 files" in first.stdout, first.stdout
    runs = {f"box.{run_id}": run_id for run_id in (producer, consumer, other)}
    with serving(local) as served:
        wait_until(served.caught_up, timeout=60)
        local_view = _artifact_view(served.client, "p", "data", {})
        local_list = served.json("/api/projects/p/artifacts")["artifacts"]
        local_runs = {
            (p, r): served.json(f"/api/projects/{p}/runs/{r}")
            for p, r in (("p", producer), ("p", consumer), ("q", other))
        }

    def indexed() -> bool:  # the central index has every event of the runs
        return all(
            central.events_of(project, f"box.{run_id}") == run["events"]
            for (project, run_id), run in local_runs.items()
        )

    wait_until(indexed, timeout=60)
    (listed,) = central.json("/api/projects/p/artifacts")["artifacts"]
    assert (listed.pop("name"), listed.pop("origin"), listed.pop("origin_name")) == (
        "box.data",
        "box",
        "data",
    )
    (local_listed,) = local_list
    for key in ("name", "origin", "origin_name"):
        local_listed.pop(key)
    assert listed == local_listed
    assert listed["aliases"] == {"best": "v0", "candidate": "v1", "latest": "v1"}
    assert _artifact_view(central.client, "p", "box.data", runs) == local_view
    for (project, run_id), run in local_runs.items():
        artifacts = run["artifacts"]
        on_central = central.json(f"/api/projects/{project}/runs/box.{run_id}")["artifacts"]
        for kind in ("logged", "used"):
            assert [a.pop("name") for a in on_central[kind]] == [
                "box." + a.pop("name") for a in artifacts[kind]
            ]
        assert on_central == artifacts
    assert central.json("/api/projects/q/artifacts")["artifacts"] == []

    # Content goes by hash, once: a second sync sends nothing; a new version only its new file.
    again = _sync(local, central, "box")
    assert "artifact version" not in again.stdout, again.stdout
    later = _run(local, name="later")
    third = waddle.Artifact("data", type="dataset")
    third.add_file(tmp_path / "files" / "model.bin")  # held there already
    with third.new_file("new.txt") as file:
        file.write("new")
    later.log_artifact(third, aliases=["best"])
    later.finish()
    assert "1 artifact version (1 file, 3 bytes)" in _sync(local, central, "box").stdout
    versions = central.json("/api/projects/p/artifacts/box.data")["versions"]
    assert [(v["version"], v["aliases"]) for v in versions] == [
        ("v0", []),
        ("v1", ["candidate"]),
        ("v2", ["best", "latest"]),
    ]
    assert versions[2]["created_by"] == {"project": "p", "run": f"box.{later.id}"}


def test_two_machines_artifacts_of_the_same_name_stay_apart_and_share_content(tmp_path, central):
    content = os.urandom(10_000)
    for origin, extra in (("node-a", b"a"), ("node-b", b"bb")):
        folder = tmp_path / origin
        run = _run(folder, name=origin)
        for part in (b"", extra):
            artifact = waddle.Artifact("model", type="model")
            with artifact.new_file("weights.bin", mode="xb") as file:
                file.write(content + part)
            run.log_artifact(artifact)
        run.finish()
        _sync(folder, central, origin)
    listed = central.json("/api/projects/p/artifacts")["artifacts"]
    assert [(a["name"], a["origin"], a["versions"]) for a in listed] == [
        ("node-a.model", "node-a", 2),
        ("node-b.model", "node-b", 2),
    ]
    got = {
        name: central.client.get(f"/api/projects/p/artifacts/{name}/v1/files/weights.bin").content
        for name in ("node-a.model", "node-b.model")
    }
    assert got == {"node-a.model": content + b"a", "node-b.model": content + b"bb"}
    # v0 of both is the same content: one object.
    objects = sorted(p.name for p in (central.folder / "p" / ".artifacts" / "objects").iterdir())
    assert len(objects) == 3


def test_a_relay_killed_mid_upload_leaves_no_version_and_sends_it_whole_when_restarted(
    tmp_path, central
):
    local = tmp_path / "local"
    big = tmp_path / "big.bin"
    with open(big, "wb") as file:  # zeros: quick to make, as slow to upload as any bytes
        file.truncate(100 << 20)
    run = _run(local, name="maker")
    artifact = waddle.Artifact("ckpt", type="model")
    artifact.add_file(big)
    with artifact.new_file("small.txt") as file:
        file.write("small")
    run.log_artifact(artifact, aliases=["best"])
    run.finish()
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    incoming = central.folder / ".waddle" / "incoming"
    relay = relay_process(local, central, tmp_path / "relay.log", "gpu-1").start()

    def uploading() -> bool:
        return any(p.stat().st_size > 0 for p in incoming.glob("*")) if incoming.is_dir() else False

    wait_until(uploading, timeout=60, interval=0.001)
    os.kill(relay.child.pid, signal.SIGSTOP)  # hold it mid-upload, then kill it there
    assert uploading()
    version = central.client.get("/api/projects/p/artifacts/gpu-1.ckpt/v0")
    assert version.status_code == 404  # its files are not all there: no version yet
    relay.kill()
    wait_until(lambda: not list(incoming.glob("*")), timeout=30)  # the cut upload is dropped
    assert not (
        central.folder / "p" / ".artifacts" / "collections" / "gpu-1.ckpt" / "v0.json"
    ).exists()
    relay.start()
    try:
        version = wait_until(
            lambda: (
                (r := central.client.get("/api/projects/p/artifacts/gpu-1.ckpt/best")).status_code
                == 200
                and r.json()
            ),
            timeout=120,
        )
        assert version["version"] == "v0" and version["aliases"] == ["best", "latest"]
        with central.client.stream(
            "GET", "/api/projects/p/artifacts/gpu-1.ckpt/v0/files/big.bin"
        ) as response:
            assert response.status_code == 200
            hasher = hashlib.sha256()
            for piece in response.iter_bytes():
                hasher.update(piece)
        assert hasher.hexdigest() == digest
    finally:
        relay.stop()


def _manifest(files: dict[str, bytes]) -> str:
    entries = {
        path: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        for path, data in files.items()
    }
    digest = artifact_store.digest(entries)
    return orjson.dumps(
        {"format": 1, "name": "m", "type": "model", "digest": digest, "entries": entries}
    ).decode()


def _line(version: int, aliases: list[str]) -> str:
    line = {"t": 1.8e9 + version, "version": version, "digest": "d", "created": True}
    return orjson.dumps({**line, "aliases": aliases, "run": "r", "type": "model"}).decode()


def test_a_version_is_refused_before_its_files_and_log_lines_are_appended_once(tmp_path):
    token_file = tmp_path / "tokens"
    token_file.write_text(f"{TOKEN}\nread viewer-1\n")
    folder = tmp_path / "central"
    folder.mkdir()
    content = b"weights" * 100
    sha = hashlib.sha256(content).hexdigest()
    with serving(folder, token=TOKEN, token_file=str(token_file)) as central:
        auth = {"Authorization": f"Bearer {TOKEN}"}

        def send(**sent) -> httpx.Response:
            sent = {"origin": "box", "project": "p", "name": "m", **sent}
            return httpx.post(f"{central.url}/api/ingest/artifacts", json=sent, headers=auth)

        manifest = _manifest({"w.bin": content})
        early = send(manifests={"0": manifest}, after=0, lines=[_line(0, ["best"])])
        assert early.status_code == 422 and "upload them first" in early.json()["error"]["message"]
        lying = manifest.replace('"digest":"', '"digest":"0')
        climbing = _manifest({"../../w.bin": content})
        for refused in (
            send(manifests={"0": lying}),
            send(lines=["not json"]),
            send(lines=[_line(0, []) + "\n" + _line(1, [])]),
        ):
            assert refused.status_code == 422, refused.text
        assert not (folder / "p").exists()  # nothing written
        assert (
            httpx.post(
                f"{central.url}/api/ingest/artifacts",
                json={"origin": "box", "project": "p", "name": "m"},
                headers={"Authorization": "Bearer viewer-1"},
            ).status_code
            == 403
        )

        asked = httpx.post(
            f"{central.url}/api/ingest/artifacts/lacking",
            json={"project": "p", "objects": [sha]},
            headers=auth,
        )
        assert asked.json() == {"lacking": [sha]}
        put = f"{central.url}/api/ingest/artifacts/objects/p/{sha}"
        wrong = httpx.put(put, content=content + b"x", headers=auth)
        assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "hash_mismatch"
        assert httpx.put(put, content=content, headers=auth).status_code == 201
        assert httpx.put(put, content=content, headers=auth).status_code == 200

        climbed = send(manifests={"0": climbing})  # its file is held: only its path is wrong
        assert climbed.status_code == 422 and "relative paths" in climbed.json()["error"]["message"]
        held = send(manifests={"0": manifest}, after=0, lines=[_line(0, ["best"])])
        assert held.json() == {"id": "box.m", "versions": [0], "lines": 1}
        # Replayed lines are skipped, a gap is not filled, a changed manifest is refused.
        again = send(
            manifests={"0": manifest}, after=0, lines=[_line(0, ["best"]), _line(0, ["x"])]
        )
        assert again.json()["lines"] == 2
        assert send(after=5, lines=[_line(0, ["y"])]).json()["lines"] == 2
        other = _manifest({"w.bin": content, "again.bin": content})
        assert send(manifests={"0": other}).status_code == 422
        log = folder / "p" / ".artifacts" / "collections" / "box.m" / "log.jsonl"
        assert log.read_text() == _line(0, ["best"]) + "\n" + _line(0, ["x"]) + "\n"
        version = central.json("/api/projects/p/artifacts/box.m/x")
        assert (version["version"], version["origin"], version["origin_name"]) == ("v0", "box", "m")
        assert central.get("/api/projects/p/artifacts/box.m/v0/files/w.bin").content == content


def test_a_version_whose_file_this_machine_lost_is_held_back_and_said_and_runs_still_go(
    tmp_path, central
):
    local = tmp_path / "local"
    run = _run(local, name="maker")
    good = waddle.Artifact("data", type="dataset")
    with good.new_file("a.txt") as file:
        file.write("kept")
    run.log_artifact(good)
    lost = waddle.Artifact("data", type="dataset")
    with lost.new_file("b.txt") as file:
        file.write("lost")
    run.log_artifact(lost)
    run.finish()
    artifact_store.object_path(local / "p", hashlib.sha256(b"lost").hexdigest()).unlink()
    done = subprocess.run(
        [PYTHON, "-m", "waddle.cli", "sync", str(local), "--to", central.url, "--token", TOKEN,
         "--origin", "box"],
        env=child_env(**QUIET_ENV),
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "artifact p/data not sent" in done.stderr and "v1: its file" in done.stderr
    assert "sent 1 run" in done.stdout
    versions = central.json("/api/projects/p/artifacts/box.data")["versions"]
    assert [(v["version"], v["aliases"]) for v in versions] == [("v0", ["latest"])]
    # The central machine's own runs cannot log into a relayed artifact.
    manifest = artifact_store.read_manifest(local / "p", "data", 0)
    with pytest.raises(ValueError, match="another machine's artifact"):
        artifact_store.commit(central.folder / "p", {**manifest, "name": "box.data"}, [], 1.8e9)
