"""The Hugging Face Trainer logging through waddle.integrations.transformers.WaddleCallback.

A real Trainer on CPU trains a tiny BERT with a random config and random weights (nothing is
downloaded: HF_HUB_OFFLINE=1). The Trainer's own ``state.log_history`` is the reference: every
entry must be a row of the waddle run, keys renamed as W&B's callback renames them, with the
trainer's step as ``train/global_step``.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import waddle

pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[transformers]')")
pytest.importorskip(
    "accelerate", reason="accelerate is not installed (pip install -e '.[transformers]')"
)
integration = pytest.importorskip(
    "waddle.integrations.transformers",
    reason="transformers is not installed (pip install -e '.[transformers]')",
    exc_type=ImportError,
)
transformers = pytest.importorskip("transformers")

QUIET = waddle.Settings(console=False, system_metrics_interval=0)
END_OF_TRAINING = set(integration.SUMMARY_KEYS)


class RandomTokens:
    """``count`` sequences of 8 random token ids with a random label, always the same."""

    def __init__(self, count):
        import torch

        generator = torch.Generator().manual_seed(count)
        self.ids = torch.randint(0, 50, (count, 8), generator=generator)
        self.labels = torch.randint(0, 2, (count,), generator=generator)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, index):
        return {"input_ids": self.ids[index], "labels": self.labels[index]}


def tiny_trainer(tmp_path, callbacks=(), **arguments):
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=2,
    )
    arguments = {
        "report_to": "none",
        "max_steps": 6,
        "logging_steps": 2,
        "eval_strategy": "steps",
        "eval_steps": 3,
        **arguments,
    }
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        **arguments,
    )
    return transformers.Trainer(
        model=transformers.BertForSequenceClassification(config),
        args=args,
        train_dataset=RandomTokens(24),
        eval_dataset=RandomTokens(8),
        callbacks=list(callbacks),
    )


def the_run(tmp_path, project="tiny"):
    (run,) = waddle.Api(overrides={"dir": str(tmp_path / "logs")}).runs(project)
    return run


def expected_rows(log_history):
    """The Trainer's log history as WandbCallback logs it: renamed keys, the step as
    train/global_step, the end-of-training figures left for the summary."""
    rows = []
    for entry in log_history:
        logs = {key: value for key, value in entry.items() if key not in END_OF_TRAINING}
        step = logs.pop("step")
        renamed = integration.rewrite_keys(logs)
        if renamed:
            rows.append({**renamed, "train/global_step": step})
    return rows


def logged_rows(run):
    return [{k: v for k, v in row.items() if not k.startswith("_")} for row in run.scan_history()]


def test_what_the_trainer_logged_is_in_the_run_at_its_steps(tmp_path):
    callback = integration.WaddleCallback(project="tiny", dir=tmp_path / "logs", settings=QUIET)
    trainer = tiny_trainer(tmp_path, [callback], run_name="tiny-bert")
    trainer.train()
    trained = len(trainer.state.log_history)
    trainer.evaluate()  # after training: the same run goes on
    predicted = trainer.predict(RandomTokens(4)).metrics
    waddle.finish()  # what the end of the script does

    run = the_run(tmp_path)
    rows = logged_rows(run)
    assert rows[:-1] == expected_rows(trainer.state.log_history)
    assert rows[-1] == {**integration.rewrite_keys(predicted), "train/global_step": 6}
    # An evaluation at a training step (3 and 6) is a row of its own; none is dropped.
    eval_steps = [row["train/global_step"] for row in rows if "eval/loss" in row]
    train_steps = [row["train/global_step"] for row in rows if "train/loss" in row]
    assert eval_steps == [3, 6, 6] and train_steps == [2, 4, 6]
    end = trainer.state.log_history[trained - 1]
    assert {key: run.summary[key] for key in END_OF_TRAINING} == {
        key: end[key] for key in END_OF_TRAINING
    }
    assert (run.name, run.state) == ("tiny-bert", "finished")
    assert run.config["hidden_size"] == 16 and run.config["learning_rate"] == 5e-05
    assert run.config["max_steps"] == 6 and run.config["model/num_parameters"] > 0
    assert run.config["train_batch_size"] == 4  # to_sanitized_dict() adds it


def test_report_to_waddle_adds_the_callback(tmp_path, monkeypatch):
    for name, value in {
        "WADDLE_DIR": str(tmp_path / "logs"),
        "WADDLE_CONSOLE": "off",
        "WADDLE_SYSTEM_METRICS_INTERVAL": "0",
        "WADDLE_PROJECT": "tiny",
    }.items():
        monkeypatch.setenv(name, value)
    trainer = tiny_trainer(tmp_path, report_to=["waddle"])
    assert [type(c) for c in trainer.callback_handler.callbacks].count(
        integration.WaddleCallback
    ) == 1
    trainer.train()

    assert logged_rows(the_run(tmp_path)) == expected_rows(trainer.state.log_history)


def test_the_scripts_run_is_used_and_left_open(tmp_path):
    run = waddle.init(project="mine", dir=tmp_path / "logs", settings=QUIET)
    trainer = tiny_trainer(
        tmp_path, [integration.WaddleCallback()], max_steps=2, eval_strategy="no"
    )
    trainer.train()
    run.log({"after": 1.0})
    run.finish()

    rows = logged_rows(the_run(tmp_path, "mine"))
    assert rows[-1] == {"after": 1.0} and rows[0]["train/global_step"] == 2
    assert the_run(tmp_path, "mine").config["max_steps"] == 2


def test_only_the_world_process_zero_writes(tmp_path):
    trainer = tiny_trainer(tmp_path)
    callback = integration.WaddleCallback(project="tiny", dir=tmp_path / "logs", settings=QUIET)
    state = transformers.TrainerState(is_world_process_zero=False)
    control = transformers.TrainerControl()
    callback.on_train_begin(trainer.args, state, control, model=trainer.model)
    callback.on_log(trainer.args, state, control, logs={"loss": 1.0})
    callback.on_train_end(trainer.args, state, control)
    assert not (tmp_path / "logs").exists()


def test_keys_are_renamed_as_wandb_renames_them():
    assert integration.rewrite_keys(
        {"eval_loss": 1, "test_acc": 2, "loss": 3, "learning_rate": 4}
    ) == {
        "eval/loss": 1,
        "test/acc": 2,
        "train/loss": 3,
        "train/learning_rate": 4,
    }
