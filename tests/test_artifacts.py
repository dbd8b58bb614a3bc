"""Artifacts: versions, aliases, files, references, download and lineage, as a script sees them."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

import waddle
from tests.conftest import PYTHON, QUIET, child_env, events_of, wait_until
from waddle import artifact_store, media
from waddle import event as event_format
from waddle.artifact import ArtifactFinalizedError, ArtifactNotLoggedError


def _dataset(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = folder / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def _artifact(folder: Path, name: str = "data", kind: str = "dataset") -> waddle.Artifact:
    artifact = waddle.Artifact(name, type=kind)
    artifact.add_dir(folder)
    return artifact


def _artifact_events(run) -> list[dict]:
    return [event for event in events_of(run.dir) if event["type"] == "artifact"]


def test_each_new_content_is_the_next_version_and_the_same_content_is_no_new_one(new_run, tmp_path):
    run = new_run()
    first = run.log_artifact(_artifact(_dataset(tmp_path / "a", x="1")))
    second = run.log_artifact(_artifact(_dataset(tmp_path / "b", x="2")))
    again = run.log_artifact(_artifact(_dataset(tmp_path / "c", x="1")), aliases=["best"])
    assert [first.version, second.version, again.version] == ["v0", "v1", "v0"]
    assert first.digest == again.digest != second.digest
    assert again.name == "data:v0" and again.aliases == ["best"]
    assert second.aliases == ["latest"]
    run.finish()
    events = _artifact_events(run)
    assert [(e["action"], e["version"], e["created"]) for e in events] == [
        ("log", 0, True),
        ("log", 1, True),
        ("log", 0, False),
    ]
    assert events[2]["aliases"] == ["best"] and events[0]["artifact_type"] == "dataset"
    versions = artifact_store.versions(run.dir.parent, "data")
    assert [(v.label, v.aliases) for v in versions] == [("v0", ["best"]), ("v1", ["latest"])]


def test_an_alias_moves_to_the_version_that_claims_it_last(new_run, tmp_path):
    run = new_run()
    run.log_artifact(_artifact(_dataset(tmp_path / "a", x="1")), aliases=["best", "prod"])
    run.log_artifact(_artifact(_dataset(tmp_path / "b", x="2")), aliases="best")
    assert run.flush()  # the artifacts are stored
    api = waddle.Api(overrides={"dir": str(tmp_path)})
    assert api.artifact("p/data:best").version == "v1"
    assert api.artifact("p/data:prod").version == "v0"
    run.log_artifact(_artifact(_dataset(tmp_path / "c", x="1")), aliases=["best"])
    run.finish()
    assert api.artifact("p/data:best").version == "v0"
    assert api.artifact("p/data:latest").version == "v1" == api.artifact("p/data").version
    assert api.artifact("local/p/data:v1").aliases == ["latest"]
    assert sorted(api.artifact("p/data:v0").aliases) == ["best", "prod"]


def test_add_dir_new_file_and_add_file_name_the_files_of_the_version(new_run, tmp_path):
    run = new_run()
    folder = _dataset(tmp_path / "raw", a="A", sub__b="BB")
    (tmp_path / "model.bin").write_bytes(b"\0\1\2")
    artifact = waddle.Artifact("bundle", type="dataset", description="toy", metadata={"n": 2})
    artifact.add_dir(folder, name="raw")
    artifact.add_file(tmp_path / "model.bin", name="weights/model.bin")
    with artifact.new_file("labels.txt") as file:
        file.write("cat\ndog\n")
    with pytest.raises(ValueError, match="already written"), artifact.new_file("labels.txt"):
        pass
    with pytest.raises(ValueError, match="already has 'raw/a'"):
        artifact.add_file(tmp_path / "model.bin", name="raw/a")
    assert sorted(artifact.manifest.entries) == [
        "labels.txt",
        "raw/a",
        "raw/sub/b",
        "weights/model.bin",
    ]
    run.log_artifact(artifact)
    stored = run.use_artifact("bundle:v0")
    assert stored.description == "toy" and stored.metadata == {"n": 2}
    assert stored.get_entry("raw/sub/b").size == 2 and stored.size == 1 + 2 + 3 + 8
    assert {entry.name for entry in stored.files()} == set(artifact.manifest.entries)
    root = Path(stored.download(tmp_path / "out"))
    assert (root / "raw/sub/b").read_text() == "BB"
    assert (root / "weights/model.bin").read_bytes() == b"\0\1\2"
    assert (root / "labels.txt").read_text() == "cat\ndog\n"


def test_a_logged_artifact_cannot_change_and_a_draft_has_no_version(new_run, tmp_path):
    run = new_run()
    artifact = _artifact(_dataset(tmp_path / "a", x="1"))
    with pytest.raises(ArtifactNotLoggedError, match="log the artifact first"):
        artifact.version  # noqa: B018
    run.log_artifact(artifact)
    with pytest.raises(ArtifactFinalizedError, match="new_draft"):
        artifact.add_file(tmp_path / "a" / "x")
    draft = artifact.new_draft()
    draft.add_file(tmp_path / "a" / "x", name="y")
    assert run.log_artifact(draft).version == "v1"
    assert sorted(run.use_artifact("data").manifest.entries) == ["x", "y"]


def test_references_are_recorded_and_never_fetched(new_run, tmp_path):
    run = new_run()
    local = tmp_path / "elsewhere.txt"
    local.write_text("not to be copied")
    artifact = waddle.Artifact("refs", type="dataset")
    artifact.add_reference("s3://bucket/images/train.tar", checksum=False)
    artifact.add_reference(local.as_uri(), name="local.txt")
    artifact.add_reference("https://example.invalid/data.csv", max_objects=10)
    artifact.add_reference("gs://bucket/images/val.tar")  # W&B would checksum it: its file name
    with pytest.raises(ValueError, match="pass name="):
        artifact.add_reference("ftp://host/file.bin")
    run.log_artifact(artifact)
    stored = run.use_artifact("refs:latest")
    assert stored.get_entry("images/train.tar").ref == "s3://bucket/images/train.tar"
    assert stored.get_entry("local.txt").ref == local.as_uri()
    assert stored.get_entry("data.csv").digest == "https://example.invalid/data.csv"
    assert stored.get_entry("val.tar").ref == "gs://bucket/images/val.tar"
    assert not any((tmp_path / "p" / ".artifacts" / "objects").glob("*"))
    assert list(Path(stored.download(tmp_path / "out")).glob("*")) == []


def test_download_goes_to_artifacts_name_version_and_restores_what_was_changed(
    new_run, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    run = new_run()
    run.log_artifact(_artifact(_dataset(tmp_path / "a", x="1")))
    stored = run.use_artifact("data:latest")
    root = Path(stored.download())
    assert root == tmp_path / "artifacts" / "data:v0"
    (root / "x").write_text("edited")  # a copy: the store is untouched
    assert Path(stored.download()) == root and (root / "x").read_text() == "1"
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(tmp_path / "wandb-place"))
    assert Path(stored.download()) == tmp_path / "wandb-place" / "data:v0"
    monkeypatch.setenv("WADDLE_ARTIFACT_DIR", str(tmp_path / "mine"))
    assert Path(stored.download()) == tmp_path / "mine" / "data:v0"
    assert Path(stored.get_entry("x").download(tmp_path / "one")) == tmp_path / "one" / "x"


def test_use_artifact_records_which_run_used_which_version(new_run, tmp_path):
    producer = new_run(name="producer")
    producer.log_artifact(_artifact(_dataset(tmp_path / "a", x="1")), aliases=["best"])
    producer.log_artifact(_artifact(_dataset(tmp_path / "b", x="2")))
    producer.finish()
    consumer = new_run(name="consumer")
    used = consumer.use_artifact("data:best", type="dataset")
    with pytest.raises(ValueError, match="of type 'dataset', not 'model'"):
        consumer.use_artifact("data:v1", type="model")
    with pytest.raises(ValueError, match="no version or alias 'nope'"):
        consumer.use_artifact("data:nope")
    consumer.finish()
    assert used.version == "v0" and used.logged_by().name == "producer"
    assert used.created_at.startswith(time.strftime("%Y-", time.gmtime()))
    (event,) = _artifact_events(consumer)
    assert (event["action"], event["name"], event["version"]) == ("use", "data", 0)
    api = waddle.Api(overrides={"dir": str(tmp_path)})
    assert [a.name for a in api.run(f"p/{producer.id}").logged_artifacts()] == [
        "data:v0",
        "data:v1",
    ]
    assert [a.name for a in api.run(f"p/{consumer.id}").used_artifacts()] == ["data:v0"]
    assert [run.name for run in used.used_by()] == ["consumer"]


def test_a_draft_given_to_use_artifact_is_stored_as_used(new_run, tmp_path):
    run = new_run()
    used = run.use_artifact(_artifact(_dataset(tmp_path / "a", x="1"), name="input"))
    assert used.version == "v0"
    run.finish()
    (event,) = _artifact_events(run)
    assert (event["action"], event["created"]) == ("use", True)


def test_a_copy_in_progress_holds_back_no_event_of_the_run(new_run, tmp_path, monkeypatch):
    release = threading.Event()
    copied_on = []
    real = media.store_file

    def slow(*args, **kwargs):  # a copy that takes as long as the test wants
        copied_on.append(threading.current_thread().name)
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(media, "store_file", slow)
    run = new_run()
    artifact = run.log_artifact(_artifact(_dataset(tmp_path / "a", x="1", y="2")))
    run.log({"loss": 0.5})
    wait_until(lambda: [e["type"] for e in events_of(run.dir)][1:] == ["log"])
    assert not run.flush(timeout=0.2)  # flush() waits for the artifact too
    release.set()
    assert artifact.wait().version == "v0"
    assert [e["type"] for e in events_of(run.dir)][1:] == ["log", "artifact"]
    assert copied_on == ["waddle-copier", "waddle-copier"]


def test_a_file_changed_before_it_was_copied_refuses_the_version(new_run, tmp_path, capfd):
    run = new_run()
    folder = _dataset(tmp_path / "a", x="1", y="2")
    artifact = _artifact(folder)
    with open(folder / "y", "a") as file:
        file.write(" and more")  # after add_dir() saw it
    run.log_artifact(artifact)
    with pytest.raises(RuntimeError, match=r"y changed \(or went away\) after add_file"):
        artifact.wait()
    run.finish()
    assert "changed (or went away) after add_file" in capfd.readouterr().err
    assert _artifact_events(run) == []
    assert artifact_store.versions(run.dir.parent, "data") == []
    assert events_of(run.dir)[-1]["lost_values"] == 1


def test_a_file_removed_before_it_was_copied_refuses_the_version(new_run, tmp_path):
    run = new_run()
    folder = _dataset(tmp_path / "a", x="1", y="2")
    artifact = _artifact(folder)
    (folder / "x").unlink()
    run.log_artifact(artifact)
    with pytest.raises(RuntimeError, match=r"x changed \(or went away\) after add_file"):
        artifact.wait()


def test_a_file_deleted_after_log_artifact_returned_is_still_stored(new_run, tmp_path, monkeypatch):
    # A checkpoint rotated away (Lightning's top k) while the copier is still busy.
    release = threading.Event()
    real = media.store_file

    def late(*args, **kwargs):
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(media, "store_file", late)
    run = new_run()
    checkpoint = tmp_path / "epoch=0.ckpt"
    checkpoint.write_bytes(b"weights of epoch 0")
    artifact = waddle.Artifact("model", "model")
    artifact.add_file(checkpoint, name="model.ckpt")
    run.log_artifact(artifact)
    checkpoint.unlink()
    release.set()
    folder = Path(artifact.wait().download(str(tmp_path / "back")))
    assert (folder / "model.ckpt").read_bytes() == b"weights of epoch 0"
    held = run.dir.parent / ".artifacts" / ".held"
    assert not any(held.iterdir())  # the hold is let go once the copy is done


def test_the_holds_of_a_process_killed_before_its_copy_are_let_go(new_run, tmp_path):
    run = new_run()
    held = run.dir.parent / ".artifacts" / ".held"
    dead = subprocess.run([PYTHON, "-c", "import os; print(os.getpid())"], capture_output=True)
    abandoned = held / f"{int(dead.stdout)}-x1"
    abandoned.mkdir(parents=True)
    (abandoned / "0").write_bytes(b"a file a killed process was logging")
    run.log_artifact(_artifact(_dataset(tmp_path / "a", x="1"))).wait()
    assert not abandoned.exists()


def test_a_version_left_without_its_log_line_or_with_a_torn_one_is_still_read(new_run, tmp_path):
    run = new_run()
    run.log_artifact(_artifact(_dataset(tmp_path / "a", x="1"))).wait()
    collection = run.dir.parent / ".artifacts" / "collections" / "data"
    # A writer killed after its manifest and before its log line, then one killed mid-line.
    manifest = artifact_store.read_manifest(run.dir.parent, "data", 0)
    orphan = {**manifest, "version": 1, "digest": "f" * 64, "created": 5.0, "run": "other"}
    (collection / "v1.json").write_bytes(event_format.encode(orphan))
    with open(collection / "log.jsonl", "ab") as file:
        file.write(b'{"t": 6.0, "version": 1, "dig')
    rejects = []
    versions = artifact_store.versions(run.dir.parent, "data", lambda *r: rejects.append(r))
    assert [(v.label, v.run, v.aliases) for v in versions] == [
        ("v0", run.id, []),
        ("v1", "other", ["latest"]),
    ]
    assert rejects == []  # a torn last line may still be being written
    again = run.log_artifact(_artifact(_dataset(tmp_path / "b", x="2")), aliases=["new"])
    assert again.version == "v2" and again.aliases == ["new", "latest"]
    artifact_store.versions(run.dir.parent, "data", lambda *r: rejects.append(r))
    assert len(rejects) == 1 and "not valid JSON" in rejects[0][2]


def test_another_type_under_a_name_is_refused_at_once(new_run, tmp_path):
    run = new_run()
    run.log_artifact(_artifact(_dataset(tmp_path / "a", x="1"))).wait()
    with pytest.raises(ValueError, match=r"of type 'dataset'.*not 'model'"):
        run.log_artifact(_artifact(tmp_path / "a", kind="model"))


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: waddle.Artifact("a/b", type="x"), "artifact name 'a/b' is not allowed"),
        (lambda: waddle.Artifact("ok", type="a:b"), "artifact type 'a:b' is not allowed"),
        (
            lambda: waddle.Artifact("ok", type="x").add_reference("s3://b/k", name="../up"),
            "'../up'",
        ),
        (lambda: waddle.Artifact("ok", type="x").add_file("/nonexistent/f"), "no such file"),
        (lambda: waddle.Artifact("ok", type="x").add_dir("/nonexistent"), "not a directory"),
    ],
)
def test_bad_names_and_paths_say_what_is_wrong(call, words):
    with pytest.raises((ValueError, FileNotFoundError), match=words):
        call()


@pytest.mark.parametrize("alias", ["a/b", "a:b", "v3", ""])
def test_bad_aliases_are_refused_before_anything_is_queued(new_run, tmp_path, alias):
    run = new_run()
    with pytest.raises(ValueError, match="alias"):
        run.log_artifact(_artifact(_dataset(tmp_path / "a", x="1")), aliases=[alias])
    run.finish()
    assert _artifact_events(run) == []


def test_metadata_keeps_nan_and_infinity(new_run, tmp_path):
    run = new_run()
    artifact = _artifact(_dataset(tmp_path / "a", x="1"))
    artifact.metadata = {
        "loss": float("nan"),
        "best": float("inf"),
        "nested": {"low": float("-inf")},
    }
    run.log_artifact(artifact)
    stored = run.use_artifact("data")
    assert (
        stored.metadata["best"] == float("inf")
        and stored.metadata["loss"] != stored.metadata["loss"]
    )
    assert stored.metadata["nested"] == {"low": float("-inf")}


def test_a_path_a_folder_or_a_uri_is_logged_as_an_artifact_as_wandb_names_it(new_run, tmp_path):
    run = new_run()
    (tmp_path / "model.pt").write_bytes(b"weights")
    run.log_artifact(tmp_path / "model.pt", type="model")
    run.log_artifact(str(_dataset(tmp_path / "set", x="1")), name="set")
    run.log_artifact("s3://bucket/key.bin", name="remote")
    run.log_model(tmp_path / "model.pt", name="model", aliases=["prod"])
    with pytest.raises(ValueError, match="no file, folder or reference"):
        run.log_artifact(tmp_path / "missing")
    run.finish()
    names = [(e["name"], e["artifact_type"]) for e in _artifact_events(run)]
    assert names == [
        (f"run-{run.id}-model.pt", "model"),
        ("set", "unspecified"),
        ("remote", "unspecified"),
        ("model", "model"),
    ]


def test_module_level_functions_act_on_the_current_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with waddle.init(project="p", dir=tmp_path, settings=QUIET):
        waddle.log_artifact(_artifact(_dataset(tmp_path / "a", x="1")))
        assert waddle.use_artifact("data:latest").version == "v0"
        assert Path(waddle.use_model("data")).name == "data:v0"


def test_a_disabled_run_logs_no_artifact(tmp_path):
    run = waddle.init(project="p", dir=tmp_path / "logs", mode="disabled")
    assert run.log_artifact(_artifact(_dataset(tmp_path / "a", x="1"))) is None
    assert run.use_artifact("data") is None
    assert not (tmp_path / "logs").exists()


def test_the_store_is_no_project_or_run_for_any_reader(new_run, tmp_path):
    run = new_run()
    run.log_artifact(_artifact(_dataset(tmp_path / "a", x="1"))).wait()
    run.finish()
    api = waddle.Api(overrides={"dir": str(tmp_path)})
    assert [r.id for r in api.runs("p")] == [run.id]
    listed = subprocess.run(
        [PYTHON, "-m", "waddle.cli", "ls", str(tmp_path)], capture_output=True, text=True
    )
    assert listed.returncode == 0 and ".artifacts" not in listed.stdout


CHILD = """
import sys, time
from pathlib import Path
import waddle
folder, worker, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
run = waddle.init(project="p", dir=folder / "logs", settings=waddle.Settings(console=False, system_metrics_interval=0))
(folder / f"ready-{worker}").touch()
while not (folder / "go").exists():
    time.sleep(0.001)
for index in range(count):
    art = waddle.Artifact("shared", type="dataset")
    with art.new_file("data.txt") as file:
        file.write(f"{worker}-{index}")
    run.log_artifact(art, aliases=[f"by-{worker}"])
    same = waddle.Artifact("shared", type="dataset")
    with same.new_file("data.txt") as file:
        file.write("the same for both")
    run.log_artifact(same)
run.finish()
"""


def test_two_processes_logging_one_name_at_once_never_collide(tmp_path):
    count = 15
    children = [
        subprocess.Popen(
            [PYTHON, "-c", CHILD, str(tmp_path), worker, str(count)],
            env=child_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in ("a", "b")
    ]
    wait_until(lambda: all((tmp_path / f"ready-{w}").exists() for w in "ab"), timeout=60)
    (tmp_path / "go").touch()
    for child in children:
        assert child.wait(timeout=120) == 0, child.stderr.read()
    project = tmp_path / "logs" / "p"
    versions = artifact_store.versions(project, "shared")
    assert [v.number for v in versions] == list(range(2 * count + 1))
    assert len({v.digest for v in versions}) == len(versions)
    events = [
        event
        for run_dir in project.iterdir()
        if not run_dir.name.startswith(".")
        for event in events_of(run_dir)
        if event["type"] == "artifact"
    ]
    assert len(events) == 4 * count and all(e["action"] == "log" for e in events)
    for event in events:  # each event names the version that holds its content
        manifest = artifact_store.read_manifest(project, "shared", event["version"])
        assert manifest["digest"] == event["digest"]
    same = {e["version"] for e in events if not e["aliases"]}
    assert len(same) == 1 and sum(e["created"] for e in events) == 2 * count + 1
    lines = (project / ".artifacts/collections/shared/log.jsonl").read_text().splitlines()
    assert len(lines) == 4 * count and all(json.loads(line) for line in lines)
