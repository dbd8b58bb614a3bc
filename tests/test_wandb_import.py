"""`waddle import wandb`: W&B offline runs made by the real wandb package, imported.

The W&B scripts of tests/wandb_scripts/ run offline with wandb; their runs are imported and
must mean what the same script records when waddle runs it (history per key and step, summary,
config), and what W&B's own file holds. Skipped without the wandb package (the `wandb` extra).
Files a W&B writer could not have made (a torn last record, a path out of the run folder) are
written here with W&B's record framing and its protobuf classes.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import waddle
from tests.conftest import PYTHON, child_env, events_of
from tests.test_wandb_scripts import (
    _plain,
    _waddle_view,
    assert_same_meaning,
    with_waddle,
    with_wandb,
)
from waddle.cli import main
from waddle.table import read_table

wandb_pb2 = pytest.importorskip(
    "wandb.proto.wandb_internal_pb2", reason="the wandb package is not installed (the wandb extra)"
)


def import_wandb(capsys, *arguments: str) -> list[str]:
    """Run `waddle import wandb ARGUMENTS...`; its output lines, then its error lines."""
    assert main(["import", "wandb", *arguments]) == 0
    printed = capsys.readouterr()
    return printed.out.splitlines() + printed.err.splitlines()


def runs_in(folder: Path) -> list[waddle.apis.public.Run]:
    api = waddle.Api(overrides={"dir": str(folder)})
    projects = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    return [run for project in projects for run in api.runs(project)]


def meaning(run: waddle.apis.public.Run) -> dict:
    """What a reader sees, with what differs by nature left out: wall times, and how media
    are stored (by their kind only, as tests/test_wandb_scripts.py compares them)."""
    view = _waddle_view(run)
    rows = [
        {key: _plain(value) for key, value in row.items() if key not in ("_timestamp", "_runtime")}
        for row in view["rows"]
    ]
    summary = {key: _plain(value) for key, value in view["summary"].items()}
    return {"rows": rows, "summary": summary, "config": view["config"]}


@pytest.mark.parametrize("script", ["quickstart.py", "metrics.py", "values.py", "media.py"])
def test_an_imported_run_means_what_waddle_records_itself(tmp_path, capsys, script):
    if script == "media.py":
        pytest.importorskip("matplotlib")
    (theirs,) = with_wandb(script, tmp_path / "wandb")
    import_wandb(capsys, str(tmp_path / "wandb" / "wandb"), "--dir", str(tmp_path / "imported"))
    (imported,) = runs_in(tmp_path / "imported")
    (ours,) = with_waddle(script, tmp_path / "waddle")

    assert meaning(imported) == meaning(ours)
    assert (imported.project, imported.state) == (ours.project, "finished")
    assert imported.id.endswith("-wb-" + imported.name)  # unnamed offline: named by its W&B id
    if script != "media.py":  # W&B names its stored media its own way ("image-file")
        assert_same_meaning(_waddle_view(imported), theirs)


def test_every_kind_of_value_a_wandb_run_keeps(tmp_path, capsys):
    with_wandb("rich.py", tmp_path / "wandb", WANDB_CONSOLE="wrap")
    (source,) = (tmp_path / "wandb" / "wandb").glob("offline-run-*")
    (line,) = import_wandb(capsys, str(source), "--dir", str(tmp_path / "logs"))[:1]
    (run,) = runs_in(tmp_path / "logs")
    assert line.startswith(f"{source} -> rich/{run.id}: imported: ")
    assert run.id.endswith("-wb-" + source.name.rsplit("-", 1)[1]) and run.state == "finished"
    assert (run.name, run.tags, run.notes, run.group, run.job_type) == (
        "rich-run",
        ["a", "b"],
        "some notes",
        "g",
        "train",
    )
    assert run.config == {"lr": 0.1} and run.metadata["argv"][0].endswith("rich.py")

    first, charts, *accuracy = run.scan_history()
    assert math.isnan(first["nan"]) and (first["inf"], first["ninf"]) == (math.inf, -math.inf)
    assert (first["audio"]["sample_rate"], first["audio"]["duration"]) == (8000, 1.0)
    assert (first["audio"]["caption"], first["video"]["caption"]) == ("tone", "clip")
    assert first["video"]["mime"] == "image/gif"
    (box,) = first["boxed"]["boxes"]
    assert box == {
        "group": "predictions",
        "x_min": 1.0,
        "y_min": 2.0,
        "x_max": 8.0,
        "y_max": 9.0,
        "class_id": 1,
        "label": "cat",
        "caption": "cat",
        "scores": {"conf": 0.9},
    }
    table = read_table(Path(run.dir), first["table"])
    assert table["columns"] == ["id", "score"] and table["data"][0] == [1, 0.5]
    assert math.isnan(table["data"][1][1])
    assert (first["cloud"]["points"], first["cloud"]["columns"]) == (10, 3)
    assert (first["hist"]["bins"], first["hist"]["counts"]) == ([0, 1, 2, 3], [1, 2, 3])
    for value in first.values():
        if isinstance(value, dict) and "path" in value:  # each media file is whole
            data = (Path(run.dir) / value["path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == value["sha256"]

    kinds = {
        key: (value["chart"], value["title"]) for key, value in charts.items() if key[0] != "_"
    }
    assert kinds == {
        "line": ("line", "line"),
        "scatter": ("scatter", "scatter"),
        "bar": ("bar", "bar"),
        "histo": ("histogram", "histo"),
        "series": ("line_series", "series"),
        "cm": ("confusion_matrix", "Confusion Matrix Curve"),
    }
    assert charts["series"]["fields"] == {
        "x": "step",
        "y": "lineVal",
        "stroke": "lineKey",
        "xname": "t",
    }
    assert charts["bar"]["fields"] == {"label": "c", "value": "y"}
    assert read_table(Path(run.dir), charts["cm"]["table"])["columns"] == [
        "Actual",
        "Predicted",
        "nPredictions",
    ]
    assert [(row["_step"], row["acc"]) for row in accuracy] == [(5, 0), (6, 0.1), (7, 0.2)]
    assert run.summary["acc"] == {"max": 0.2} and run.summary["best"] == "x"

    saved = run.file("notes.txt").download(tmp_path / "back")
    assert Path(saved).read_text() == "saved file\n"
    events = events_of(run.dir)
    assert "hello from stdout\n" in "".join(e["text"] for e in events if e["type"] == "console")
    assert [(e["title"], e["text"]) for e in events if e["type"] == "alert"] == [
        ("done", "all logged")
    ]


def test_importing_again_imports_nothing_twice_and_a_run_that_grew_replaces_its_import(
    tmp_path, capsys
):
    with_wandb("quickstart.py", tmp_path / "wandb")
    (source,) = (tmp_path / "wandb" / "wandb").glob("offline-run-*/run-*.wandb")
    whole = source.read_bytes()
    logs = str(tmp_path / "logs")

    # A run still being written (or whose writer died): its file ends in the middle of a record.
    source.write_bytes(whole[: len(whole) * 2 // 3])
    assert ": imported: " in import_wandb(capsys, str(source.parent), "--dir", logs)[0]
    (torn,) = runs_in(tmp_path / "logs")
    finish = events_of(torn.dir)[-1]
    assert torn.state == "crashed" and "torn record" in finish["reason"]
    first_rows = list(torn.scan_history())

    source.write_bytes(whole)
    assert ": replaced: " in import_wandb(capsys, str(source.parent), "--dir", logs)[0]
    assert ": unchanged, skipped" in import_wandb(capsys, str(source.parent), "--dir", logs)[0]
    (run,) = runs_in(tmp_path / "logs")
    rows = list(run.scan_history())
    assert run.state == "finished" and run.id == torn.id
    assert len(rows) == 8 and rows[: len(first_rows)] == first_rows
    assert [e["seq"] for e in events_of(run.dir)] == list(range(len(events_of(run.dir))))
    assert sorted(p.name for p in (tmp_path / "logs" / "quickstart").iterdir()) == [run.id]


def wandb_file(path: Path, *records) -> Path:
    """A W&B run file of ``records``: W&B's 7-byte header, then each record in one piece of
    LevelDB's framing (a CRC, which waddle does not check, a length and the type "full")."""
    data = bytearray(b":W&B\xbe\xef\x00")
    for record in records:
        payload = record.SerializeToString()
        data += struct.pack("<IHB", 0, len(payload), 1) + payload
    assert len(data) < 32 * 1024  # one block: no padding to write
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def history(step: int, **values: str) -> object:
    record = wandb_pb2.Record()
    for key, value_json in {"_step": str(step), "_timestamp": "1795000000.5", **values}.items():
        item = record.history.item.add()
        item.nested_key.extend(key.split("."))
        item.value_json = value_json
    return record


def test_a_path_out_of_the_run_folder_is_refused_and_the_rest_imported(tmp_path, capsys):
    (tmp_path / "secret.png").write_bytes(b"\x89PNG not yours")
    run = wandb_pb2.Record()
    run.run.run_id, run.run.project, run.run.start_time.seconds = "abc123", "crafted", 1795000000
    end = wandb_pb2.Record()
    end.exit.exit_code = 0
    source = tmp_path / "wandb" / "offline-run-1-abc123" / "run-abc123.wandb"
    bad = {"img._type": '"image-file"', "img.path": '"../../../secret.png"'}
    wandb_file(source, run, history(0, ok="1.5", **bad), history(1, ok="2.5"), end)
    (source.parent / "files").mkdir()

    printed = import_wandb(capsys, str(source.parent), "--dir", str(tmp_path / "logs"))
    assert any("'img' at step 0 left out" in line for line in printed)
    (imported,) = runs_in(tmp_path / "logs")
    assert [(row["_step"], row["ok"]) for row in imported.scan_history()] == [(0, 1.5), (1, 2.5)]
    assert events_of(imported.dir)[-1]["lost_values"] == 1
    assert not list(Path(imported.dir).rglob("*.png"))


def test_a_kind_waddle_has_no_type_for_is_kept_as_a_file_and_no_exit_is_a_crash(tmp_path, capsys):
    run = wandb_pb2.Record()
    run.run.run_id, run.run.project, run.run.start_time.seconds = "abc123", "crafted", 1795000000
    source = tmp_path / "wandb" / "offline-run-1-abc123" / "run-abc123.wandb"
    plotly = {"fig._type": '"plotly-file"', "fig.path": '"media/plotly/fig.plotly.json"'}
    wandb_file(source, run, history(0, ok="1.5", **plotly))
    (source.parent / "files" / "media" / "plotly").mkdir(parents=True)
    (source.parent / "files" / "media" / "plotly" / "fig.plotly.json").write_text('{"data": []}')

    import_wandb(capsys, str(source.parent), "--dir", str(tmp_path / "logs"))
    (imported,) = runs_in(tmp_path / "logs")
    assert [row["ok"] for row in imported.scan_history()] == [1.5]
    (saved,) = imported.files()
    assert (saved.name, events_of(imported.dir)[-2]["step"]) == ("media/plotly/fig.plotly.json", 0)
    assert Path(saved.download(tmp_path / "back")).read_text() == '{"data": []}'
    finish = events_of(imported.dir)[-1]
    assert imported.state == "crashed" and "recorded no exit" in finish["reason"]


def test_what_is_not_a_wandb_run_is_one_line_of_error(tmp_path, capsys):
    (tmp_path / "offline-run-1-x").mkdir()
    (tmp_path / "offline-run-1-x" / "run-x.wandb").write_bytes(b"not W&B")
    assert main(["import", "wandb", str(tmp_path / "offline-run-1-x")]) == 1
    assert main(["import", "wandb", str(tmp_path / "nothing here")]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and "is not a W&B run file" in errors[0]
    assert "no W&B run (run-<id>.wandb) in" in errors[1]


def test_without_the_wandb_package_the_command_names_the_extra(tmp_path):
    blocked = (
        "import sys; sys.modules['wandb'] = None\n"
        "from waddle.cli import main\n"
        "sys.exit(main(['import', 'wandb', sys.argv[1]]))\n"
    )
    done = subprocess.run(
        [PYTHON, "-c", blocked, str(tmp_path)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "waddle import: W&B's files are read with the wandb package, which is not installed: "
        "pip install -e '.[wandb]' in a clone of waddle"
    ]


def test_a_run_folder_copied_elsewhere_imports_the_same(tmp_path, capsys):
    """The id comes from W&B's run, not from where its folder lies."""
    with_wandb("quickstart.py", tmp_path / "wandb")
    (source,) = (tmp_path / "wandb" / "wandb").glob("offline-run-*")
    shutil.copytree(source, tmp_path / "elsewhere" / source.name, symlinks=True)
    logs = str(tmp_path / "logs")
    import_wandb(capsys, str(source), "--dir", logs)
    import_wandb(capsys, str(tmp_path / "elsewhere" / source.name), "--dir", logs)
    assert len(runs_in(tmp_path / "logs")) == 1
