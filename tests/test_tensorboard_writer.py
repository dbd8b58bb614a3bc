"""waddle.tensorboard.SummaryWriter: TensorBoard's writer API writing keyed log events.

What a TensorBoard user would notice: each tag keeps its own steps (repeated or going back),
the wall times given, every kind of value, one run per log folder, nothing lost when the
script dies; and the run's own step is left alone.
"""

from __future__ import annotations

import math
import subprocess
import textwrap

import numpy as np
import pytest

import waddle
from tests.conftest import PYTHON, QUIET, child_env, events_of
from waddle import run_folder
from waddle.tensorboard import SummaryWriter


def keyed(run) -> list[dict]:
    return [event for event in events_of(run.dir) if event["type"] == "log" and event.get("keyed")]


def series(run, key: str) -> dict[int, object]:
    """The key's value per step as every reader keeps it: the highest seq wins."""
    out = {}
    for event in sorted(keyed(run), key=lambda event: event["seq"]):
        if key in event["data"]:
            out[event["step"]] = event["data"][key]
    return out


def test_steps_are_the_tags_own_may_go_back_and_leave_the_run_step_alone(new_run):
    run = new_run()
    writer = SummaryWriter(run=run)
    run.log({"epoch": 1.0})  # the run's own step 0
    for step in (0, 1, 2, 3):
        writer.add_scalar("loss", float(step), step)
    for step in (2, 3):  # restarted from a checkpoint at step 2
        writer.add_scalar("loss", 10.0 + step, step)
    writer.add_scalar("acc", 0.5, 1)
    run.log({"epoch": 2.0})  # still the run's step 1: keyed steps did not move it
    assert run.step == 2
    run.finish()
    assert series(run, "loss") == {0: 0.0, 1: 1.0, 2: 12.0, 3: 13.0}
    assert series(run, "acc") == {1: 0.5}
    finish = events_of(run.dir)[-1]
    assert finish["type"] == "finish" and finish["last_step"] == 1
    # A resume continues from the run's own step, not from the tags' steps.
    assert run_folder.inspect_run(run.dir, math.inf).last_step == 1


def test_wall_times_given_are_kept_exactly_and_nan_and_inf_survive(new_run):
    run = new_run()
    writer = SummaryWriter(run=run)
    writer.add_scalar("a", math.nan, 5, walltime=1_700_000_000.123456)
    writer.add_scalar("a", math.inf, 6, walltime=1_600_000_000.5)
    writer.add_scalar("b", -math.inf, 6, walltime=1_600_000_000.5)
    run.finish()
    events = keyed(run)
    assert [(event["t"], event["step"]) for event in events] == [
        (1_700_000_000.123456, 5),
        (1_600_000_000.5, 6),
        (1_600_000_000.5, 6),
    ]
    assert math.isnan(events[0]["data"]["a"])
    assert [events[1]["data"], events[2]["data"]] == [{"a": math.inf}, {"b": -math.inf}]


def test_calls_of_one_step_in_a_row_share_an_event_without_losing_a_value(new_run):
    run = new_run()
    writer = SummaryWriter(run=run)
    for step in range(300):
        for tag in ("loss", "acc", "lr", "grad"):
            writer.add_scalar(tag, step + 0.5, step)
    run.finish()
    events = keyed(run)
    assert len(events) < 1200  # merged (how many depends on when the writer drains)
    for tag in ("loss", "acc", "lr", "grad"):
        assert series(run, tag) == {step: step + 0.5 for step in range(300)}


def test_bad_steps_and_wall_times_raise_naming_them(new_run):
    writer = SummaryWriter(run=new_run())
    with pytest.raises(ValueError, match="step"):
        writer.add_scalar("a", 1.0, -1)
    with pytest.raises(TypeError, match="step"):
        writer.add_scalar("a", 1.0, 1.5)
    with pytest.raises(ValueError, match="walltime"):
        writer.add_scalar("a", 1.0, 1, walltime=math.nan)
    with pytest.raises(ValueError, match="walltime"):
        writer.add_scalar("a", 1.0, 1, walltime=1e12)
    with pytest.raises(TypeError, match="walltime"):
        writer.add_scalar("a", 1.0, 1, walltime="now")


def test_a_writer_without_a_run_makes_one_per_log_folder_and_close_finishes_it(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("WADDLE_DIR", str(tmp_path))
    monkeypatch.setenv("WADDLE_CONSOLE", "off")
    monkeypatch.setenv("WADDLE_SYSTEM_METRICS_INTERVAL", "0")
    with SummaryWriter("runs/exp1/train") as train, SummaryWriter(logdir="runs/exp1/val") as val:
        train.add_scalar("loss", 1.0, 0)
        val.add_scalar("loss", 2.0, 0)
        assert train.run is not val.run
        assert (train.run.name, val.run.name) == ("train", "val")
    for writer, value in ((train, 1.0), (val, 2.0)):
        assert series(writer.run, "loss") == {0: value}
        assert events_of(writer.run.dir)[-1]["status"] == "finished"


def test_a_writer_logs_into_the_current_run_and_leaves_it_open(new_run):
    run = waddle.init(
        project="p", dir=new_run().dir.parent.parent, settings=QUIET, reinit="finish_previous"
    )
    writer = SummaryWriter("ignored")
    assert writer.run is run
    writer.add_scalar("x", 1.0, 3)
    writer.close()
    assert not run._closed
    run.finish()
    assert series(run, "x") == {3: 1.0}


def test_every_kind_of_value(new_run):
    run = new_run()
    writer = SummaryWriter(run=run)
    writer.add_scalars("loss", {"train": 1.0, "val": 2.0}, 4)
    writer.add_text("notes", "# hello *world*", 1)
    writer.add_histogram("weights", np.arange(1000, dtype=np.float32), 2, bins=10)
    writer.add_histogram_raw("raw", 0.0, 3.0, 6, 9.0, 17.0, [1.0, 2.0, 3.0], [1, 2, 3], 2)
    writer.add_image("chw", np.zeros((3, 8, 16), dtype=np.uint8), 3)
    writer.add_image("hwc", np.ones((8, 16, 3), dtype=np.float32), 3, dataformats="HWC")
    writer.add_images("batch", np.zeros((2, 1, 4, 5), dtype=np.uint8), 3)
    writer.add_audio("sound", np.zeros((1, 800), dtype=np.float32), 3, sample_rate=8000)
    writer.add_video("clip", np.zeros((1, 3, 3, 8, 8), dtype=np.uint8), 3, fps=2)
    writer.add_mesh("cloud", np.zeros((1, 5, 3)), colors=np.full((1, 5, 3), 255), global_step=3)
    writer.add_pr_curve("pr", np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.6, 0.4]), 3)
    writer.add_hparams({"lr": 0.1, "layers": 2}, {"hparam/accuracy": 0.75})
    writer.add_custom_scalars({"Losses": {"both": ["Multiline", ["loss/train", "loss/val"]]}})
    run.finish()
    data = {}
    for event in keyed(run):
        data.update(event["data"])
    assert data["loss/train"] == 1.0 and data["loss/val"] == 2.0
    assert data["notes"] == {"_type": "markdown", "text": "# hello *world*"}
    histogram = data["weights"]
    assert histogram["_type"] == "histogram" and histogram["count"] == 1000
    assert len(histogram["counts"]) == 10 and histogram["max"] == 999.0
    assert data["raw"]["bins"] == [0.0, 1.0, 2.0, 3.0] and data["raw"]["counts"] == [1, 2, 3]
    assert (data["chw"]["width"], data["chw"]["height"]) == (16, 8)
    assert (data["hwc"]["width"], data["hwc"]["height"]) == (16, 8)
    assert [item["width"] for item in data["batch"]["items"]] == [5, 5]
    assert data["sound"]["sample_rate"] == 8000 and data["sound"]["duration"] == 0.1
    assert data["clip"]["_type"] == "video" and data["clip"]["frames"] == 3
    assert data["cloud"]["points"] == 5 and data["cloud"]["columns"] == 6
    assert data["pr"]["chart"] == "pr_curve"
    start = events_of(run.dir)
    config = {}
    summary = {}
    for event in start:
        if event["type"] == "config":
            config.update(event["data"])
        if event["type"] == "summary":
            summary.update(event["data"])
    assert config == {"lr": 0.1, "layers": 2}
    assert summary["hparam/accuracy"] == 0.75
    assert summary["tensorboard/custom_scalars"]["Losses"]["both"][0] == "Multiline"


def test_a_figure_is_rendered_and_closed(new_run):
    plt = pytest.importorskip("matplotlib.pyplot", reason="matplotlib is not installed")
    run = new_run()
    figure = plt.figure(figsize=(2, 1), dpi=50)
    SummaryWriter(run=run).add_figure("plot", figure, 7)
    assert not plt.fignum_exists(figure.number)
    run.finish()
    (event,) = keyed(run)
    assert event["step"] == 7 and event["data"]["plot"]["width"] == 100


def test_tensors_are_read_by_the_writer_thread(new_run):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    run = new_run()
    writer = SummaryWriter(run=run)
    value = torch.tensor(2.5)
    writer.add_scalar("t", value, torch.tensor(4))
    value.add_(1)  # changed after the call: what was logged stays
    writer.add_image("img", torch.zeros(3, 4, 6), 4)
    writer.add_histogram("h", torch.arange(100.0), 4)
    writer.add_graph(torch.nn.Linear(2, 1))
    writer.add_mesh("mesh", torch.zeros(1, 4, 3), colors=torch.full((1, 4, 3), 9), global_step=4)
    writer.add_pr_curve("pr", torch.tensor([0, 1, 1]), torch.tensor([0.2, 0.8, 0.4]), 4)
    run.finish()
    data = {}
    for event in keyed(run):
        data.update(event["data"])
    assert series(run, "t") == {4: 2.5}
    assert data["img"]["width"] == 6 and data["h"]["count"] == 100
    assert "Linear" in data["graph"]["text"]
    assert (data["mesh"]["points"], data["mesh"]["columns"]) == (4, 6)
    assert data["pr"]["chart"] == "pr_curve"


def test_nothing_is_lost_when_the_script_dies_of_an_exception(tmp_path):
    script = textwrap.dedent(
        """
        from waddle.tensorboard import SummaryWriter
        writer = SummaryWriter("runs/crash")
        for step in range(20000):
            writer.add_scalar("loss", step * 0.5, step)
            writer.add_scalar("acc", step * 0.25, step)
        raise RuntimeError("boom")
        """
    )
    result = subprocess.run(
        [PYTHON, "-c", script],
        cwd=tmp_path,
        env=child_env(WADDLE_DIR=str(tmp_path / "logs"), WADDLE_CONSOLE="off"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "boom" in result.stderr
    (run_dir,) = (tmp_path / "logs").glob("*/*")
    events = events_of(run_dir)
    loss = {}
    for event in events:
        if event["type"] == "log" and "loss" in event["data"]:
            loss[event["step"]] = event["data"]["loss"]
    assert loss == {step: step * 0.5 for step in range(20000)}
    assert events[-1]["status"] == "crashed"


@pytest.mark.parametrize("module", ["torch.utils.tensorboard", "tensorboardX"])
def test_sync_tensorboard_mirrors_their_own_writers(tmp_path, module):
    library = pytest.importorskip(module, reason=f"{module} is not installed")
    from waddle import tensorboard

    run = waddle.init(project="p", dir=tmp_path / "logs", settings=QUIET, sync_tensorboard=True)
    try:
        root = library.SummaryWriter(str(tmp_path / "runs" / "exp"))
        val = library.SummaryWriter(str(tmp_path / "runs" / "exp" / "val"))
        root.add_scalar("loss", 1.5, 3, walltime=1_700_000_000.25)
        root.add_scalar("loss", 0.5, 2)  # back a step
        root.add_scalars("lr", {"a": 0.1, "b": 0.2}, 3)
        root.add_text("notes", "*hi*", 0)
        root.add_hparams({"lr": 0.1}, {"hparam/acc": 0.9})
        val.add_scalar("loss", 2.5, 3)
        root.close()
        val.close()
        run.finish()
    finally:
        tensorboard.unpatch()
    assert series(run, "loss") == {3: 1.5, 2: 0.5}
    assert series(run, "val/loss") == {3: 2.5}
    assert series(run, "lr/a") == {3: 0.1} and series(run, "lr/b") == {3: 0.2}
    assert series(run, "notes") == {0: {"_type": "markdown", "text": "*hi*"}}
    assert [e["t"] for e in keyed(run) if e["data"].get("loss") == 1.5] == [1_700_000_000.25]
    assert not any("hparam/acc" in event["data"] for event in keyed(run))  # only in summary
    summary = [e["data"] for e in events_of(run.dir) if e["type"] == "summary"]
    assert {"hparam/acc": 0.9} in summary
    # Their own files are written as before.
    assert list((tmp_path / "runs" / "exp").glob("events.out.tfevents.*"))


# The very step object of the open event (the hot path), and another int of the same value.
@pytest.mark.parametrize("step", ["same", "equal"])
def test_a_value_joining_an_event_as_the_writer_takes_it_is_sent_again(new_run, step):
    from waddle.values import PLAIN
    from waddle.writer import KEYED

    run = new_run()
    writer = SummaryWriter(run=run)
    writer.add_scalar("b", 0.0, 4)  # a known key from now on
    opened = 10**6
    written = []

    class TakenMeanwhile(dict):
        """The writer takes the event between the caller's check and its update."""

        def _taken(self):
            run._queue.remove(item)
            item[5] = True
            written.append(dict(self))

        def update(self, values):
            self._taken()
            super().update(values)

        def __setitem__(self, key, value):
            self._taken()
            super().__setitem__(key, value)

    item = [KEYED, 1.7e9, opened, TakenMeanwhile({"a": 1.0}), PLAIN, False]
    run._queue.append(item)
    run._keyed_open = item
    writer.add_scalar("b", 2.0, opened if step == "same" else int(str(opened)))
    run.finish()
    assert written == [{"a": 1.0}]  # the event as written: without b
    assert series(run, "b") == {4: 0.0, opened: 2.0}  # b came again, in an event of its own


def test_waddle_tensorboard_is_there_as_wandb_tensorboard_is():
    result = subprocess.run(
        [PYTHON, "-c", "import waddle; print(waddle.tensorboard.patch.__name__)"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "patch", result.stderr


def test_add_scalar_takes_torchs_keywords_and_a_subclass_keeps_its_own(new_run):
    class Counting(SummaryWriter):
        calls = 0

        def add_scalar(self, *args, **kwargs):
            Counting.calls += 1
            super().add_scalar(*args, **kwargs)

    run = new_run()
    writer, counting = SummaryWriter(run=run), Counting(run=run, prefix="sub/")
    writer.add_scalar(tag="loss", scalar_value=1.0, global_step=3, new_style=True)
    writer.add_scalar("loss", 2.0, global_step=4, double_precision=True)
    counting.add_scalar("loss", 5.0, 3)
    counting.add_scalar(tag="loss", scalar_value=6.0, global_step=3, walltime=1.7e9)
    run.finish()
    assert series(run, "loss") == {3: 1.0, 4: 2.0}
    assert series(run, "sub/loss") == {3: 6.0} and Counting.calls == 2
