"""The artifact endpoints against a real server: versions, aliases, lineage, manifests, files."""

from __future__ import annotations

import os

import httpx

import waddle
from tests.conftest import QUIET, wait_until
from tests.server_helpers import serving
from waddle import artifact_store


def _log_versions(new_run, tmp_path):
    """p: a producer logs data v0 (best) and v1; a consumer uses data:best; a run of project q
    uses p/data:v1."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "page.html").write_text("<script>fetch('/api/projects')</script>")
    (tmp_path / "src" / "sub").mkdir()
    (tmp_path / "src" / "sub" / "x.txt").write_text("one")
    producer = new_run(name="producer")
    first = waddle.Artifact("data", type="dataset", metadata={"loss": float("nan")})
    first.add_dir(tmp_path / "src")
    first.add_reference("s3://bucket/raw.tar")
    producer.log_artifact(first, aliases=["best"])
    second = waddle.Artifact("data", type="dataset", description="more")
    with second.new_file("sub/x.txt") as file:
        file.write("two")
    producer.log_artifact(second)
    producer.finish()
    consumer = new_run(name="consumer")
    consumer.use_artifact("data:best")
    consumer.finish()
    with waddle.init(project="q", dir=tmp_path, settings=QUIET, reinit="create_new") as other:
        other.use_artifact("p/data:v1")
    return producer, consumer, other


def test_a_projects_artifacts_their_versions_aliases_and_lineage(tmp_path, new_run):
    producer, consumer, other = _log_versions(new_run, tmp_path)
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        (listed,) = s.json("/api/projects/p/artifacts")["artifacts"]
        assert listed["name"] == "data" and listed["type"] == "dataset"
        assert (listed["versions"], listed["latest"]) == (2, "v1")
        assert listed["aliases"] == {"best": "v0", "latest": "v1"}
        assert s.json("/api/projects/q/artifacts")["artifacts"] == []

        answer = s.json("/api/projects/p/artifacts/data")
        v0, v1 = answer["versions"]
        assert (v0["version"], v0["aliases"], v0["files"]) == ("v0", ["best"], 3)
        assert v0["size"] == len("<script>fetch('/api/projects')</script>") + 3
        assert v0["created_by"] == {"project": "p", "run": producer.id}
        assert v0["created"] == v0["logged_by"][0]["t"] < v1["created"]
        assert [r["run"] for r in v0["logged_by"]] == [producer.id]
        assert [(r["project"], r["run"], r["name"]) for r in v0["used_by"]] == [
            ("p", consumer.id, "consumer")
        ]
        assert [(r["project"], r["run"]) for r in v1["used_by"]] == [("q", other.id)]

        run = s.json(f"/api/projects/p/runs/{producer.id}")["artifacts"]
        assert [(a["name"], a["version"], a["aliases"]) for a in run["logged"]] == [
            ("data", "v0", ["best"]),
            ("data", "v1", []),
        ]
        assert run["used"] == []
        used = s.json(f"/api/projects/q/runs/{other.id}")["artifacts"]["used"]
        assert [(a["project"], a["name"], a["version"]) for a in used] == [("p", "data", "v1")]


def test_one_version_with_its_manifest_and_files(tmp_path, new_run):
    _log_versions(new_run, tmp_path)
    with serving(tmp_path) as s:
        version = s.json("/api/projects/p/artifacts/data/best")
        assert version["version"] == "v0" and version["metadata"] == {"loss": "NaN"}
        entries = version["manifest"]["entries"]
        assert [e["path"] for e in entries] == ["page.html", "raw.tar", "sub/x.txt"]
        assert entries[1] == {
            "path": "raw.tar",
            "sha256": None,
            "size": None,
            "ref": "s3://bucket/raw.tar",
        }
        page = s.json("/api/projects/p/artifacts/data/v0", params={"offset": 2, "limit": 1})
        assert page["manifest"]["total"] == 3 and [
            e["path"] for e in page["manifest"]["entries"]
        ] == ["sub/x.txt"]
        assert s.get("/api/projects/p/artifacts/data/v0/files/sub/x.txt").text == "one"
        assert s.get("/api/projects/p/artifacts/data/latest/files/sub/x.txt").text == "two"
        html = s.get("/api/projects/p/artifacts/data/v0/files/page.html")
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert html.headers["content-security-policy"].startswith("sandbox")
        assert html.headers["x-content-type-options"] == "nosniff"


def test_unknown_artifacts_versions_and_files_are_404(tmp_path, new_run):
    _log_versions(new_run, tmp_path)
    (tmp_path / "secret.txt").write_text("TOPSECRET")
    with serving(tmp_path) as s:
        for path, words in [
            ("/api/projects/nope/artifacts", "no project 'nope'"),
            ("/api/projects/p/artifacts/nope", "no artifact 'nope'"),
            ("/api/projects/p/artifacts/data/v7", "no version or alias 'v7'"),
            ("/api/projects/p/artifacts/data/v0/files/raw.tar", "has no file 'raw.tar'"),
            ("/api/projects/p/artifacts/data/v0/files/nothing.txt", "has no file"),
            ("/api/projects/p/artifacts/data/v0/files/%2e%2e/%2e%2e/%2e%2e/secret.txt", "no file"),
            ("/api/projects/.artifacts/artifacts", "no project"),
        ]:
            response = s.get(path)
            assert response.status_code == 404, path
            assert words in response.json()["error"]["message"], path
            assert b"TOPSECRET" not in response.content
        raw = s.client.send(
            httpx.Request("GET", s.url + "/api/projects/p/artifacts/../../secret.txt")
        )
        assert raw.status_code == 404 and b"TOPSECRET" not in raw.content


def test_a_malformed_line_of_a_version_log_is_skipped_and_reported(tmp_path, new_run):
    _log_versions(new_run, tmp_path)
    log = tmp_path / "p" / ".artifacts" / "collections" / "data" / "log.jsonl"
    with open(log, "a") as file:
        file.write('{"version": "zero"}\nnot json\n')
    with serving(tmp_path) as s:
        assert s.json("/api/projects/p/artifacts")["artifacts"][0]["versions"] == 2
        (fault,) = [f for f in s.json("/api/health")["faults"] if f["kind"] == "artifacts"]
        assert "log.jsonl" in fault["message"]


def test_an_object_that_is_not_what_its_manifest_recorded_is_not_served(tmp_path, new_run):
    _log_versions(new_run, tmp_path)
    (tmp_path / "secret.txt").write_text("TOPSECRET")
    manifest = artifact_store.read_manifest(tmp_path / "p", "data", 0)
    sha256 = manifest["entries"]["sub/x.txt"]["sha256"]
    stored = artifact_store.object_path(tmp_path / "p", sha256)
    with serving(tmp_path) as s:
        whole = s.get("/api/projects/p/artifacts/data/v0/files/sub/x.txt")
        assert (
            whole.headers["content-disposition"]
            == "inline; filename=\"x.txt\"; filename*=UTF-8''x.txt"
        )
        part = s.get(
            "/api/projects/p/artifacts/data/v0/files/sub/x.txt", headers={"Range": "bytes=1-"}
        )
        assert (part.status_code, part.text) == (206, "ne")
        stored.unlink()
        os.link(tmp_path / "secret.txt", stored)  # a hard link named like the object
        response = s.get("/api/projects/p/artifacts/data/v0/files/sub/x.txt")
        assert response.status_code == 404 and b"TOPSECRET" not in response.content
        assert "not in the store as its manifest recorded it" in response.json()["error"]["message"]
