"""``waddle import tensorboard``: TensorBoard folders read without TensorFlow, as waddle runs.

What a user would notice: every value with its tag, step and wall time; the same data whether
written through torch's writer and imported or written through waddle's writer; a second import
adding nothing; a crashed writer's torn file read up to the tear; a corrupt record skipped and
reported; the same values with and without the ``tensorboard`` package.
"""

from __future__ import annotations

import io
import math
import os
import subprocess

import pytest

from tests.conftest import PYTHON, QUIET, child_env, events_of
from waddle import tfevents
from waddle.tensorboard import SummaryWriter
from waddle.tensorboard_import import import_logdir


def _import(logdir, log_dir, project="tb", **kwargs):
    reports: list[str] = []
    outcomes = import_logdir(logdir, log_dir, project, reports.append, **kwargs)
    return outcomes, reports


def _run_dirs(log_dir, project="tb"):
    return sorted(path for path in (log_dir / project).iterdir() if not path.name.startswith("."))


def _contents(run_dir) -> tuple[dict, dict, dict]:
    """(series per key as {step: value}, config, summary), as every reader keeps them."""
    values: dict[str, dict] = {}
    config: dict = {}
    summary: dict = {}
    for event in events_of(run_dir):
        if event["type"] == "log":
            for key, value in event["data"].items():
                values.setdefault(key, {})[event["step"]] = value
        elif event["type"] == "config":
            config.update(event["data"])
        elif event["type"] == "summary":
            summary.update(event["data"])
    return values, config, summary


def _scalar_file(path, points, wall_time=1.7e9):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as file:
        for index, (step, tag, value) in enumerate(points):
            file.write(tfevents.scalar_record(step, wall_time + index, tag, value))


def test_scalars_keep_their_tags_steps_and_wall_times(tmp_path):
    logdir = tmp_path / "runs"
    points = [(0, "loss", 1.0), (1, "loss", 0.5), (1, "acc", 0.25), (0, "loss", 2.0)]
    _scalar_file(logdir / "a" / "events.out.tfevents.1700000000.host.1.0", points)
    _scalar_file(logdir / "b" / "events.out.tfevents.1700000001.host.1.0", [(5, "x", math.inf)])
    outcomes, reports = _import(logdir, tmp_path / "logs")
    assert [(o.source, o.status, o.values) for o in outcomes] == [
        ("a", "imported", 4),
        ("b", "imported", 1),
    ]
    assert reports == []
    a, b = _run_dirs(tmp_path / "logs")
    values, _, _ = _contents(a if events_of(a)[0]["name"] == "a" else b)
    assert values == {"loss": {0: 2.0, 1: 0.5}, "acc": {1: 0.25}}  # the later step 0 wins
    logs = [e for e in events_of(a) if e["type"] == "log"]
    assert [e["t"] for e in logs] == [1.7e9, 1.7e9 + 1, 1.7e9 + 2, 1.7e9 + 3]
    assert all(e["keyed"] for e in logs)
    values, _, _ = _contents(b)
    assert values == {"x": {5: math.inf}}


def test_importing_again_adds_nothing_and_a_grown_file_replaces_its_run(tmp_path):
    logdir = tmp_path / "runs"
    path = logdir / "events.out.tfevents.1700000000.host.1.0"
    _scalar_file(path, [(step, "loss", float(step)) for step in range(10)])
    first, _ = _import(logdir, tmp_path / "logs")
    again, _ = _import(logdir, tmp_path / "logs")
    assert [o.status for o in first] == ["imported"] and [o.status for o in again] == ["unchanged"]
    from_above, _ = _import(tmp_path, tmp_path / "logs")  # the same files, from a folder above
    assert [(o.source, o.status) for o in from_above] == [("runs", "unchanged")]
    (run_dir,) = _run_dirs(tmp_path / "logs")
    before = events_of(run_dir)
    _scalar_file(path, [(10, "loss", 10.0)], wall_time=1.8e9)  # the writer went on
    grown, _ = _import(logdir, tmp_path / "logs")
    assert [o.status for o in grown] == ["replaced"]
    (same_dir,) = _run_dirs(tmp_path / "logs")
    assert same_dir == run_dir and len(events_of(run_dir)) == len(before) + 1
    values, _, _ = _contents(run_dir)
    assert values == {"loss": {step: float(step) for step in range(11)}}
    assert not [p for p in (tmp_path / "logs" / "tb").iterdir() if p.name.startswith(".")]


def test_a_torn_last_record_is_read_up_to_the_tear_and_reported(tmp_path):
    logdir = tmp_path / "runs"
    path = logdir / "events.out.tfevents.1700000000.host.1.0"
    _scalar_file(path, [(step, "loss", float(step)) for step in range(5)])
    whole = path.stat().st_size
    os.truncate(path, whole - 7)  # the writer died inside its last record
    outcomes, reports = _import(logdir, tmp_path / "logs")
    assert outcomes[0].values == 4
    assert len(reports) == 1 and "torn record" in reports[0] and str(whole - 42) in reports[0]
    (run_dir,) = _run_dirs(tmp_path / "logs")
    values, _, _ = _contents(run_dir)
    assert values == {"loss": {step: float(step) for step in range(4)}}
    finish = events_of(run_dir)[-1]
    assert finish["status"] == "crashed" and "torn record" in finish["reason"]


def test_a_corrupt_record_is_skipped_and_reported(tmp_path):
    logdir = tmp_path / "runs"
    path = logdir / "events.out.tfevents.1700000000.host.1.0"
    _scalar_file(path, [(step, "loss", float(step)) for step in range(3)])
    data = bytearray(path.read_bytes())
    data[42 + 30] ^= 0xFF  # a byte of the second record's event
    path.write_bytes(bytes(data))
    outcomes, reports = _import(logdir, tmp_path / "logs")
    assert outcomes[0].values == 2
    assert len(reports) == 1 and "byte 42" in reports[0] and "CRC" in reports[0]


def test_the_minimal_decoder_reads_what_the_protobuf_classes_read(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard package is not installed")
    logdir = _torch_written(tmp_path)
    records = [
        record
        for path in sorted(logdir.rglob("*tfevents*"))
        for _, record in tfevents.records(path, pytest.fail)
    ]
    by_hand, with_classes = (
        tfevents.Decoder(use_protobuf=False),
        tfevents.Decoder(use_protobuf=True),
    )
    assert by_hand.protobuf is False and with_classes.protobuf is True
    decoded = [(by_hand(record), with_classes(record)) for record in records]
    assert len([pair for pair in decoded if pair[0] is not None]) > 8
    for mine, theirs in decoded:
        assert mine == theirs
    assert by_hand.skipped == with_classes.skipped


def _torch_written(tmp_path):
    """A log folder written by torch's own writer, in a child process (torch's import is
    slow, and a child keeps its writer threads out of this process)."""
    pytest.importorskip("torch", reason="torch is not installed")
    pytest.importorskip("tensorboard", reason="the tensorboard package is not installed")
    logdir = tmp_path / "runs"
    subprocess.run(
        [PYTHON, "-c", WRITE, str(logdir / "exp"), "torch"],
        env=child_env(),
        check=True,
        timeout=120,
    )
    return logdir


# The same calls, through torch's writer or waddle's (argv: log folder, which writer).
WRITE = """
import sys
import numpy as np
if sys.argv[2] == "torch":
    from torch.utils.tensorboard import SummaryWriter
else:
    import waddle
    from waddle.tensorboard import SummaryWriter
    waddle.init(project="tb", dir=sys.argv[3], name="exp",
                settings=waddle.Settings(console=False, system_metrics_interval=0))
writer = SummaryWriter(sys.argv[1])
for step in range(6):
    writer.add_scalar("loss", 1.0 / 2 ** step, step, walltime=1.7e9 + step)
writer.add_scalar("loss", 0.75, 2, walltime=1.7e9 + 10)
writer.add_scalars("lr", {"a": 0.5, "b": 0.25}, 3, walltime=1.7e9 + 11)
writer.add_text("notes", "# title *x*", 1, walltime=1.7e9 + 12)
values = np.linspace(-1.0, 3.0, 101)
writer.add_histogram("weights", values, 4, walltime=1.7e9 + 13)
image = np.zeros((3, 4, 6), dtype=np.uint8)
image[0, 1, 2] = 255
writer.add_image("picture", image, 5, walltime=1.7e9 + 14)
writer.add_hparams({"lr": 0.125, "optimizer": "adam"}, {"hparam/accuracy": 0.875})
writer.close()
if sys.argv[2] != "torch":
    waddle.finish()
"""


def test_torch_written_and_imported_equals_written_through_waddle(tmp_path):
    logdir = _torch_written(tmp_path)
    _import(logdir, tmp_path / "imported")
    (imported,) = _run_dirs(tmp_path / "imported")
    subprocess.run(
        [PYTHON, "-c", WRITE, str(tmp_path / "ignored"), "waddle", str(tmp_path / "direct")],
        env=child_env(),
        check=True,
        timeout=120,
    )
    (direct,) = _run_dirs(tmp_path / "direct")
    got, want = _contents(imported), _contents(direct)
    values, config, summary = got
    assert config == want[1] == {"lr": 0.125, "optimizer": "adam"}
    assert summary == want[2] == {"hparam/accuracy": 0.875}
    assert set(values) == set(want[0]) == {"loss", "lr/a", "lr/b", "notes", "weights", "picture"}
    for key in ("loss", "lr/a", "lr/b", "notes"):
        assert values[key] == want[0][key], key
    assert values["loss"] == {0: 1.0, 1: 0.5, 2: 0.75, 3: 0.125, 4: 0.0625, 5: 0.03125}
    mine, theirs = values["weights"][4], want[0]["weights"][4]
    for name in ("count", "min", "max", "mean", "std"):
        assert mine[name] == pytest.approx(theirs[name]), name
    assert _pixels(imported, values["picture"][5]) == _pixels(direct, want[0]["picture"][5])
    wall_times = {
        event["step"]: event["t"]
        for run_dir in (imported, direct)
        for event in events_of(run_dir)
        if event["type"] == "log" and "loss" in event["data"] and event["step"] < 2
    }
    assert wall_times == {0: 1.7e9, 1: 1.7e9 + 1}


def _pixels(run_dir, value):
    from PIL import Image

    with Image.open(io.BytesIO((run_dir / value["path"]).read_bytes())) as image:
        return image.convert("RGB").tobytes(), image.size


def test_the_command_imports_and_says_what_it_did(tmp_path):
    logdir = tmp_path / "runs"
    _scalar_file(logdir / "exp" / "events.out.tfevents.1700000000.host.1.0", [(0, "loss", 1.0)])
    command = [PYTHON, "-m", "waddle.cli", "import", "tensorboard", str(logdir), "--project", "old"]
    env = child_env(WADDLE_DIR=str(tmp_path / "logs"))
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "exp -> old/" in first.stdout and "imported: 1 values" in first.stdout
    assert "unchanged, skipped" in second.stdout
    missing = subprocess.run(
        [*command[:5], str(tmp_path / "nope")], env=env, capture_output=True, text=True
    )
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert "no TensorBoard log folder" in missing.stderr


def test_writer_values_read_back_by_the_importer_mapping(tmp_path):
    """A waddle-written run and an imported one are the same kind of run to waddle's readers
    (keyed events); a run with no value at all still imports, empty."""
    logdir = tmp_path / "runs"
    logdir.mkdir()
    (logdir / "events.out.tfevents.1700000000.host.1.0").write_bytes(b"")
    outcomes, _ = _import(logdir, tmp_path / "logs")
    assert outcomes[0].values == 0
    (run_dir,) = _run_dirs(tmp_path / "logs")
    assert [e["type"] for e in events_of(run_dir)] == ["run_start", "finish"]
    import waddle

    run = waddle.init(project="p", dir=tmp_path / "w", settings=QUIET)
    SummaryWriter(run=run).add_scalar("a", 1.0, 3)
    run.finish()
    assert _contents(run.dir)[0] == {"a": {3: 1.0}}
