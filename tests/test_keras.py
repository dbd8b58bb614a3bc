"""Keras 3 (torch backend, CPU) logging through waddle.integrations.keras.WaddleCallback.

A tiny model built here is fitted with a recording callback beside ours: what Keras handed to
callbacks (each batch's and each epoch's logs) must be the run's rows, batch rows numbered
over the whole training although Keras numbers batches from 0 in each epoch.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # read when keras is first imported

import waddle

pytest.importorskip("torch", reason="torch is not installed (Keras runs on its torch backend)")
keras = pytest.importorskip("keras", reason="keras is not installed (pip install -e '.[keras]')")
integration = pytest.importorskip("waddle.integrations.keras", exc_type=ImportError)

QUIET = waddle.Settings(console=False, system_metrics_interval=0)
# Keras's torch backend hands numpy 2 tensors whose __array__ takes no copy keyword; not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
BATCHES = 5  # per epoch: 40 samples in batches of 8
EPOCHS = 3


class Recorder(keras.callbacks.Callback):
    """What Keras passes to callbacks: ("batch", batch, logs) and ("epoch", epoch, logs)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("batch", batch, dict(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch", epoch, dict(logs)))


def fit(callback, **kwargs):
    import numpy as np

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)), rng.normal(size=(40, 2))
    recorder = Recorder()
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=EPOCHS,
        validation_data=(x[:8], y[:8]),
        callbacks=[callback, recorder],
        verbose=0,
        **kwargs,
    )
    return recorder.calls


def logged_rows(run):
    waddle.finish()
    (read,) = waddle.Api(overrides={"dir": str(run.dir.parent.parent)}).runs(run.project)
    return [{k: v for k, v in row.items() if not k.startswith("_")} for row in read.scan_history()]


def expected_rows(calls, every=1, first_batch=0):
    rows, batches = [], 0
    for kind, number, logs in calls:
        if kind == "batch":
            index = first_batch + batches
            batches += 1
            if every and index % every == 0:
                rows.append(
                    {**{f"batch/{k}": v for k, v in logs.items()}, "batch/batch_step": index}
                )
        else:
            rows.append({**{f"epoch/{k}": v for k, v in logs.items()}, "epoch/epoch": number})
    return rows


def without_learning_rate(rows):
    return [{k: v for k, v in row.items() if not k.endswith("/learning_rate")} for row in rows]


@pytest.mark.parametrize("log_freq, every", [("batch", 1), (2, 2), ("epoch", None)])
def test_what_keras_logged_is_in_the_run_with_a_global_batch_step(tmp_path, log_freq, every):
    run = waddle.init(project="keras", dir=tmp_path, settings=QUIET)
    calls = fit(integration.WaddleCallback(log_freq=log_freq))

    rows = logged_rows(run)
    assert without_learning_rate(rows) == expected_rows(calls, every)
    assert all(
        row[key] == pytest.approx(0.05) for row in rows for key in row if "learning_rate" in key
    )
    batch_steps = [row["batch/batch_step"] for row in rows if "batch/batch_step" in row]
    assert batch_steps == (list(range(0, BATCHES * EPOCHS, every)) if every else [])
    epochs = [row for row in rows if "epoch/epoch" in row]
    assert [row["epoch/epoch"] for row in epochs] == [0, 1, 2]
    assert all("epoch/val_loss" in row and "epoch/loss" in row for row in epochs)


def test_a_fit_that_goes_on_counts_on_from_initial_global_step(tmp_path):
    run = waddle.init(project="keras", dir=tmp_path, settings=QUIET)
    calls = fit(
        integration.WaddleCallback(log_freq="batch", initial_global_step=10), initial_epoch=2
    )

    rows = logged_rows(run)
    assert without_learning_rate(rows) == expected_rows(calls, 1, first_batch=10)
    assert [row["epoch/epoch"] for row in rows if "epoch/epoch" in row] == [2]


def test_it_needs_a_run():
    with pytest.raises(RuntimeError, match=r"Call waddle.init\(\) before"):
        integration.WaddleCallback()
