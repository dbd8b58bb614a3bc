"""Real W&B scripts (tests/wandb_scripts/) run unchanged with waddle as `wandb`, in subprocesses.

Each script is run with a `wandb` module that is waddle (a sys.modules alias, what `import
waddle as wandb` does) and its run is read back with waddle.Api. Where the real `wandb` package
is installed, the same script also runs against it offline, its run file is read
(waddle/wandb_log.py), and both must have recorded the same history (rows per step, values per
key), summary and config: "the same meaning", checked. README ("Coming from W&B") lists where
waddle differs on purpose; those parts are normalised below, each with its reason.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import pytest

import waddle
from tests.conftest import PYTHON, child_env, events_of
from waddle import artifact_store, wandb_log

SCRIPTS = Path(__file__).resolve().parent / "wandb_scripts"
AS_WANDB = """
import runpy, sys
import waddle, waddle.apis, waddle.apis.public, waddle.plot, waddle.util
sys.modules["wandb"] = waddle
for name in ("apis", "apis.public", "plot", "util"):
    sys.modules["wandb." + name] = sys.modules["waddle." + name]
runpy.run_path(sys.argv[1], run_name="__main__")
"""
QUIET = {"WANDB_SILENT": "true", "WANDB_CONSOLE": "off", "WADDLE_SYSTEM_METRICS_INTERVAL": "0"}


def with_waddle(
    script: str, folder: Path, cwd: Path | None = None, **env: str
) -> list[waddle.apis.public.Run]:
    done = subprocess.run(
        [PYTHON, "-c", AS_WANDB, str(SCRIPTS / script)],
        env=child_env(WADDLE_DIR=str(folder), **QUIET, **env),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr
    api = waddle.Api(overrides={"dir": str(folder)})
    projects = [path.name for path in folder.iterdir() if not path.name.startswith(".")]
    return [run for project in sorted(projects) for run in api.runs(project)]


def with_wandb(script: str, folder: Path, **env: str) -> list[dict[str, Any]]:
    pytest.importorskip("wandb", reason="the real wandb package is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [PYTHON, str(SCRIPTS / script)],
        env=child_env(**{**QUIET, "WANDB_MODE": "offline", "WANDB_DIR": str(folder), **env}),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder,
    )
    assert done.returncode == 0, done.stderr
    return [_read_wandb(path) for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb"))]


def _read_wandb(path: Path) -> dict[str, Any]:
    """History rows, summary and config of a W&B offline run file."""
    rows, summary, config, artifacts = [], {}, {}, []
    for record in wandb_log.records(path):
        kind = record.WhichOneof("record_type")
        if kind == "artifact":
            artifacts.append(_wandb_artifact(record.artifact))
        elif kind == "history":
            rows.append(_row(record.history.item))
        elif kind == "summary":
            for item in record.summary.update:
                summary[_name(item)] = item
            for item in record.summary.remove:
                summary.pop(_name(item), None)
        elif kind in ("run", "config"):
            items = record.run.config.update if kind == "run" else record.config.update
            config.update({_name(item): json.loads(item.value_json) for item in items})
    return {
        "rows": rows,
        "summary": _row(summary.values()),
        "config": config,
        "artifacts": artifacts,
    }


def _wandb_artifact(record: Any) -> dict[str, Any]:
    """What a log_artifact() call asked for, as W&B's run file records it: each file's size, or
    a reference's URI (W&B hashes with MD5 and waddle with sha256: digests are not compared)."""
    return {
        "name": record.name,
        "type": record.type,
        "aliases": sorted(alias for alias in record.aliases if alias != "latest"),
        "description": record.description or None,
        "metadata": json.loads(record.metadata or "{}"),
        "entries": {e.path: e.ref if e.ref else e.size for e in record.manifest.contents},
    }


def _waddle_artifacts(run: waddle.apis.public.Run) -> list[dict[str, Any]]:
    """The same of waddle's log_artifact() calls: their events, and the manifests they name
    (the description and metadata of a version logged again are those it was made with)."""
    found = []
    for event in events_of(run.dir):
        if event["type"] != "artifact":
            continue
        manifest = artifact_store.read_manifest(run.dir.parent, event["name"], event["version"])
        entries = manifest["entries"]
        found.append(
            {
                "name": event["name"],
                "type": event["artifact_type"],
                "aliases": sorted(event["aliases"]),
                "description": manifest["description"] if event["created"] else None,
                "metadata": manifest["metadata"] if event["created"] else {},
                "entries": {path: e.get("ref", e.get("size")) for path, e in entries.items()},
            }
        )
    return found


def _row(items: Any) -> dict[str, Any]:
    """A W&B history row. W&B writes a rich value's fields as nested keys ("hist", "_type"):
    they are put back together into one value, as waddle stores it; a logged dict's keys stay
    flat ("nested/a"), as waddle flattens them."""
    row: dict[str, Any] = {}
    rich: dict[str, dict[str, Any]] = {}
    for item in items:
        value = json.loads(item.value_json)
        if len(item.nested_key) > 1:
            rich.setdefault(item.nested_key[0], {})["/".join(item.nested_key[1:])] = value
        row[_name(item)] = value
    for parent, fields in rich.items():
        if "_type" in fields:
            for name in fields:
                del row[f"{parent}/{name}"]
            row[parent] = fields
    return row


def _name(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def _waddle_view(run: waddle.apis.public.Run) -> dict[str, Any]:
    return {"rows": list(run.scan_history()), "summary": dict(run.summary), "config": run.config}


def _plain(value: Any) -> Any:
    """A value as both sides can hold it: rich values by their kind only (each side stores
    media its own way), NaN as a string (W&B writes it as null in JSON history)."""
    if isinstance(value, dict):
        kind = value.get("_type")
        if kind:  # W&B names the kinds of stored files "<kind>-file"
            return f"<{kind.removesuffix('-file')}>"
        return {k: _plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, float):
        return "nan" if math.isnan(value) else round(value, 9)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _series(rows: list[dict], key: str) -> list[tuple[int, Any]]:
    return [(row["_step"], _plain(row[key])) for row in rows if key in row]


def assert_same_meaning(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    keys = {key for row in theirs["rows"] for key in row if not key.startswith("_")}
    # W&B nests a logged dict's keys under their parent ("nested/a" for {"nested": {"a": 1}}
    # once flattened here), waddle flattens them with "/" too: the names agree.
    for key in sorted(keys):
        assert _series(ours["rows"], key) == _series(theirs["rows"], key), f"history of {key!r}"
    ours_keys = {key for row in ours["rows"] for key in row if not key.startswith("_")}
    assert ours_keys == keys, "the same keys were logged"
    summary = {k: _plain(v) for k, v in theirs["summary"].items() if not k.startswith("_")}
    assert {k: _plain(v) for k, v in ours["summary"].items()} == summary, "summary"
    config = {k: v for k, v in theirs["config"].items() if not k.startswith("_")}
    assert ours["config"] == config, "config"


@pytest.mark.parametrize("script", ["quickstart.py", "metrics.py", "values.py", "watch.py"])
def test_a_wandb_script_records_the_same_with_both(tmp_path, script):
    if script == "watch.py":
        pytest.importorskip("torch")
    (ours,) = with_waddle(script, tmp_path / "waddle")
    (theirs,) = with_wandb(script, tmp_path / "wandb")
    assert_same_meaning(_waddle_view(ours), theirs)


def test_what_the_quickstart_recorded(tmp_path):
    (run,) = with_waddle("quickstart.py", tmp_path)
    assert (run.project, run.state) == ("quickstart", "finished")
    assert run.config == {
        "learning_rate": 0.02,
        "architecture": "CNN",
        "dataset": "CIFAR-100",
        "epochs": 10,
    }
    rows = list(run.scan_history())
    assert [row["_step"] for row in rows] == list(range(8)) and all("acc" in row for row in rows)
    assert run.summary["best"] == "epoch 9" and run.summary["loss"] == rows[-1]["loss"]


def test_what_the_metrics_script_recorded(tmp_path):
    (run,) = with_waddle("metrics.py", tmp_path)
    assert run.config == {"lr": 0.1, "layers": [64, 32], "batch_size": 32, "optimizer": "adam"}
    rows = {row["_step"]: row for row in run.scan_history()}
    assert rows[3]["train/loss"] == 0.25 and rows[3]["quiet"] == 3  # commit=False merged
    assert rows[4]["val/acc"] == 0.25 and rows[4]["epoch"] == 0  # step=run.step: the next one
    assert rows[3]["nested/b/c"] == 6
    assert rows[20] == {**rows[20], "late": 1.5, "later": 2.5}
    assert run.summary["val/acc"] == {"max": 11 / 12} and "quiet" not in run.summary
    assert run.summary["train/loss"] == {"min": 1 / 12} and run.summary["score"] == 0.75


def test_what_the_media_script_recorded(tmp_path):
    pytest.importorskip("matplotlib")
    (run,) = with_waddle("media.py", tmp_path)
    rows = list(run.scan_history())
    first = rows[0]
    assert first["image"]["caption"] == "a gradient" and first["image"]["width"] == 48
    assert first["figure"]["mime"] == "image/png" and first["page"]["_type"] == "html"
    assert first["histogram"]["count"] == 100
    assert [item["_type"] for item in first["examples"]["items"]] == ["image", "image"]
    assert rows[1]["curve"]["_type"] == "chart" and rows[1]["curve"]["title"] == "squares"
    with_wandb("media.py", tmp_path / "wandb")  # and it runs unchanged under W&B


def test_a_run_resumed_from_the_environment_as_wandbs_shell_examples_do(tmp_path):
    env = {"WANDB_RUN_ID": "job-42", "WANDB_RESUME": "allow", "WANDB_PROJECT": "shell"}
    with_waddle("quickstart.py", tmp_path, **env)
    (run,) = with_waddle("quickstart.py", tmp_path, **env)
    assert run.id == "job-42" and run.project == "quickstart"  # init(project=...) wins
    assert [row["_step"] for row in run.scan_history()] == list(range(16))


def test_wandb_mode_disabled_in_the_environment_records_nothing(tmp_path):
    done = subprocess.run(
        [PYTHON, "-c", AS_WANDB, str(SCRIPTS / "quickstart.py")],
        env=child_env(WADDLE_DIR=str(tmp_path), WANDB_MODE="disabled", **QUIET),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_artifacts_are_logged_as_wandb_logs_them(tmp_path):
    (tmp_path / "work").mkdir()
    (ours,) = with_waddle("artifacts.py", tmp_path / "waddle", cwd=tmp_path / "work")
    (theirs,) = with_wandb("artifacts.py", tmp_path / "wandb")
    assert_same_meaning(_waddle_view(ours), theirs)
    assert _waddle_artifacts(ours) == theirs["artifacts"]
    assert len(theirs["artifacts"]) == 3


def test_artifacts_are_versioned_used_downloaded_and_read_back(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (producer,) = with_waddle("artifacts.py", tmp_path / "logs", cwd=work)
    runs = with_waddle("artifacts_use.py", tmp_path / "logs", cwd=work)
    (trainer,) = [run for run in runs if run.job_type == "train"]
    versions = artifact_store.versions(tmp_path / "logs" / "artifacts", "mnist")
    assert [(v.label, v.aliases) for v in versions] == [("v0", ["raw", "clean", "latest"])]
    row = next(trainer.scan_history())
    assert (row["images"], row["labels"]) == (3, 3)
    assert trainer.summary["model_bytes"] == 64
    assert (work / "artifacts" / "mnist:v0" / "images" / "2.txt").read_text() == "pixel " * 3
    assert [a.name for a in trainer.used_artifacts()] == ["mnist:v0", "classifier:v0"]
    assert [a.name for a in trainer.logged_artifacts()] == ["classifier:v0"]  # the same file
    api = waddle.Api(overrides={"dir": str(tmp_path / "logs")})
    best = api.artifact("artifacts/classifier:best")
    assert sorted(best.aliases) == ["best", "candidate", "latest"]
    assert best.logged_by().id == producer.id
    assert [run.id for run in best.used_by()] == [trainer.id]
