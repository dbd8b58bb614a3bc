"""PyTorch Lightning's Trainer logging through waddle.integrations.lightning.WaddleLogger.

A real Trainer on CPU trains a tiny model built here. Lightning's own CSVLogger runs beside
ours as the reference: every call Lightning made to its loggers must be a row of the waddle run,
with the trainer's step as ``trainer/global_step``. Each test runs with each Lightning package
installed (``lightning.pytorch`` and ``pytorch_lightning``) and is skipped for one that is not.
"""

from __future__ import annotations

import csv
import importlib.util
import pickle
import subprocess
import time
from pathlib import Path

import pytest

import waddle
from tests.conftest import PYTHON, child_env
from waddle import media

pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[lightning]')")
lightning_logger = pytest.importorskip(
    "waddle.integrations.lightning",
    reason="no Lightning package is installed (pip install -e '.[lightning]')",
    exc_type=ImportError,
)
PACKAGES = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            importlib.util.find_spec(name.split(".")[0]) is None, reason=f"{name} is not installed"
        ),
    )
    for name in ("lightning.pytorch", "pytorch_lightning")
]
QUIET = {"console": False, "system_metrics_interval": 0}
# Lightning's own use of a torch API that torch deprecated; nothing of waddle's.
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec")


def tiny_model(pl, fail_at_step=None):
    """Linear(32, 2) on random data: 8 training batches and 2 validation batches an epoch."""
    import torch
    from torch.utils.data import DataLoader

    class Tiny(pl.LightningModule):
        def __init__(self, lr=0.1, layers=(32, 2)):
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(*layers)

        def training_step(self, batch, batch_idx):
            if self.global_step == fail_at_step:
                raise RuntimeError("the loss diverged")
            loss = self.layer(batch).pow(2).mean()
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            self.log("val_loss", self.layer(batch).pow(2).mean())

        def test_step(self, batch, batch_idx):
            self.log("test_loss", self.layer(batch).pow(2).mean())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

        def train_dataloader(self):
            return DataLoader(torch.randn(64, 32), batch_size=8)

        def val_dataloader(self):
            return DataLoader(torch.randn(16, 32), batch_size=8)

        def test_dataloader(self):
            return DataLoader(torch.randn(16, 32), batch_size=8)

    return Tiny()


def trainer(pl, tmp_path, logger, **kwargs):
    kwargs.setdefault("enable_checkpointing", False)
    return pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        log_every_n_steps=2,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        logger=[logger, pl.loggers.CSVLogger(tmp_path / "csv")],
        **kwargs,
    )


def waddle_logger(tmp_path, **kwargs):
    kwargs.setdefault("project", "lit")
    return lightning_logger.WaddleLogger(save_dir=tmp_path / "logs", settings=QUIET, **kwargs)


def the_run(tmp_path, project="lit"):
    (run,) = waddle.Api(overrides={"dir": str(tmp_path / "logs")}).runs(project)
    return run


def csv_rows(tmp_path):
    """What Lightning passed to its loggers, one row per log_metrics() call, as CSVLogger
    wrote it."""
    (path,) = (tmp_path / "csv").glob("**/metrics.csv")
    with open(path, newline="") as file:
        return [
            {key: value for key, value in row.items() if value != ""}
            for row in csv.DictReader(file)
        ]


def assert_rows_match(history, reference):
    """Each reference row (step and metrics) is the waddle row at the same place."""
    rows = [{k: v for k, v in row.items() if not k.startswith("_")} for row in history]
    assert len(rows) == len(reference)
    for ours, theirs in zip(rows, reference, strict=True):
        step = int(theirs.pop("step"))
        assert ours.pop("trainer/global_step") == step
        assert ours == {key: float(value) for key, value in theirs.items()}


@pytest.mark.parametrize("package", PACKAGES)
def test_what_the_trainer_logged_is_in_the_run_at_its_steps(tmp_path, package):
    pl = importlib.import_module(package)
    logger = waddle_logger(tmp_path, name="tiny")
    trainer(pl, tmp_path, logger).fit(tiny_model(pl))

    run = the_run(tmp_path)
    history = list(run.scan_history())
    assert_rows_match(history, csv_rows(tmp_path))
    # Validation is logged at the step of the epoch's last training row: both are kept.
    steps = {}
    for row in history:
        for key in ("train_loss", "val_loss"):
            if key in row:
                steps.setdefault(key, []).append(row["trainer/global_step"])
    assert steps["val_loss"] == [7, 15] and {7, 15} <= set(steps["train_loss"])
    assert (run.name, run.state, logger.name, logger.version) == ("tiny", "finished", "lit", run.id)
    assert run.config == {"lr": 0.1, "layers": [32, 2]}
    assert run.summary["val_loss"] == history[-1]["val_loss"]


@pytest.mark.parametrize("package", PACKAGES)
def test_testing_after_fitting_goes_on_in_the_same_run(tmp_path, package):
    pl = importlib.import_module(package)
    logger = waddle_logger(tmp_path)
    fitting = trainer(pl, tmp_path, logger)
    model = tiny_model(pl)
    fitting.fit(model)
    fitting.test(model)

    run = the_run(tmp_path)
    history = list(run.scan_history())
    assert_rows_match(history, csv_rows(tmp_path))
    assert "test_loss" in history[-1] and run.state == "finished"


@pytest.mark.parametrize("package", PACKAGES)
def test_a_failed_fit_finishes_the_run_as_crashed_with_its_exception(tmp_path, package):
    pl = importlib.import_module(package)
    with pytest.raises(RuntimeError, match="diverged"):
        trainer(pl, tmp_path, waddle_logger(tmp_path)).fit(tiny_model(pl, fail_at_step=5))

    run = the_run(tmp_path)
    assert run.state == "crashed"
    assert [row["trainer/global_step"] for row in run.scan_history()] == [1, 3]
    finish = [e for e in _events(run) if e["type"] == "finish"][-1]
    assert finish["reason"] == "RuntimeError" and "the loss diverged" in finish["traceback"]


@pytest.mark.parametrize("package", PACKAGES)
def test_checkpoints_are_versions_of_the_runs_model_artifact(tmp_path, package, monkeypatch):
    pl = importlib.import_module(package)
    # A busy machine: the copier copies a checkpoint only after the training thread has gone
    # on, and the callback deletes the first checkpoint as soon as the second beats it.
    store_file = media.store_file

    def late_store_file(*args, **kwargs):
        time.sleep(0.5)
        return store_file(*args, **kwargs)

    monkeypatch.setattr(media, "store_file", late_store_file)
    logger = waddle_logger(tmp_path, log_model="all")
    trainer(pl, tmp_path, logger, enable_checkpointing=True).fit(tiny_model(pl))

    run = the_run(tmp_path)
    versions = run.logged_artifacts()
    assert [(a.name, a.type) for a in versions] == [
        (f"model-{run.id}:v0", "model"),
        (f"model-{run.id}:v1", "model"),
    ]
    assert [a.metadata["original_filename"] for a in versions] == [
        "epoch=0-step=8.ckpt",
        "epoch=1-step=16.ckpt",
    ]
    assert "latest" in versions[-1].aliases and "latest" not in versions[0].aliases
    import torch

    folder = versions[-1].download(str(tmp_path / "back"))
    checkpoint = torch.load(Path(folder) / "model.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 16


def test_log_model_true_logs_the_best_and_last_at_the_end(tmp_path):
    pl = _any_lightning()
    logger = waddle_logger(tmp_path, log_model=True, checkpoint_name="tiny-model")
    checkpoints = pl.callbacks.ModelCheckpoint(monitor="val_loss", save_top_k=1, save_last=True)
    trainer(pl, tmp_path, logger, callbacks=[checkpoints], enable_checkpointing=True).fit(
        tiny_model(pl)
    )

    def content(artifact):
        return (
            Path(artifact.download(str(tmp_path / artifact.version))) / "model.ckpt"
        ).read_bytes()

    versions = {content(a): a for a in the_run(tmp_path).logged_artifacts()}
    best = versions[Path(checkpoints.best_model_path).read_bytes()]
    last = versions[Path(checkpoints.last_model_path).read_bytes()]
    assert (
        "best" in best.aliases and "latest" in last.aliases and best.name.startswith("tiny-model:")
    )
    assert best.metadata["score"] == pytest.approx(float(checkpoints.best_model_score))
    assert best.metadata["monitor"] == "val_loss"


def test_only_rank_zero_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(lightning_logger.rank_zero_only, "rank", 1)
    logger = waddle_logger(tmp_path)
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.experiment.log({"loss": 2.0})
    logger.finalize("success")
    assert not (tmp_path / "logs").exists()


def test_the_scripts_own_run_is_used_and_left_open(tmp_path):
    run = waddle.init(project="mine", dir=tmp_path / "logs", settings=QUIET)
    logger = waddle_logger(tmp_path)
    logger.log_metrics({"loss": 0.5}, step=3)
    logger.finalize("success")
    run.log({"after": 1.0})
    run.finish()

    (read,) = waddle.Api(overrides={"dir": str(tmp_path / "logs")}).runs("mine")
    assert [
        {k: v for k, v in row.items() if not k.startswith("_")} for row in read.scan_history()
    ] == [{"loss": 0.5, "trainer/global_step": 3}, {"after": 1.0}]
    assert logger.name == "mine" and logger.version == run.id


def test_a_pickled_logger_goes_on_with_the_run_in_another_process(tmp_path):
    """What Lightning's spawn launchers do: the logger is pickled to a new process."""
    logger = waddle_logger(tmp_path, prefix="fit")
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"loss": 1.0}, step=0)
    (tmp_path / "logger.pickle").write_bytes(pickle.dumps(logger))
    child = (
        "import pickle, sys\n"
        "logger = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "logger.log_metrics({'loss': 0.5}, step=1)\n"
        "logger.finalize('success')\n"
    )
    done = subprocess.run(
        [PYTHON, "-c", child, str(tmp_path / "logger.pickle")],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr

    run = the_run(tmp_path)
    assert [(row["trainer/global_step"], row["fit-loss"]) for row in run.scan_history()] == [
        (0, 1.0),
        (1, 0.5),
    ]
    assert run.config == {"lr": 0.1} and run.state == "finished" and run.id == logger.version


def _any_lightning():
    for name in ("lightning.pytorch", "pytorch_lightning"):
        if importlib.util.find_spec(name.split(".")[0]) is not None:
            return importlib.import_module(name)
    raise AssertionError("unreachable: the module was skipped")


def _events(run):
    from waddle import segment

    return list(segment.read_events(Path(run.dir)))
