"""Keras 3's callback for waddle: ``model.fit(..., callbacks=[WaddleCallback()])``.

It records what W&B's ``WandbMetricsLogger`` records, under the same keys:

- at the end of each epoch, the epoch's metrics (validation ones included) as ``epoch/<name>``,
  with ``epoch/epoch`` (Keras's epoch number) and ``epoch/learning_rate``, and ``epoch/epoch``
  the x-axis of every ``epoch/*`` key;
- with ``log_freq="batch"`` (or a number of batches), also the metrics of every (or every
  n-th) training batch as ``batch/<name>`` with ``batch/batch_step`` and
  ``batch/learning_rate``, ``batch/batch_step`` the x-axis of every ``batch/*`` key.

Keras numbers batches from 0 again in each epoch; ``batch/batch_step`` is the batch's number
counted over the whole training (from ``initial_global_step``, for a ``fit()`` that goes on
from an ``initial_epoch``), so batch rows never repeat a step. Every row is a ``run.log()`` of
its own (the next waddle step). The callback logs into the run open when it is made (or the
``run`` given) and leaves finishing it to the script.
"""

from __future__ import annotations

from typing import Any

from waddle import session
from waddle.integrations import require
from waddle.notice import Notices

WHAT = "waddle.integrations.keras"
BATCH_STEP = "batch/batch_step"
EPOCH_STEP = "epoch/epoch"

keras = require("keras", "keras", WHAT)


class WaddleCallback(keras.callbacks.Callback):
    """Log a Keras model's training metrics to a waddle run (module docstring).

    ``log_freq``: ``"epoch"`` (the default), ``"batch"``, or a number n (every n-th batch,
    counted over the whole training); ``initial_global_step``: the number of batches trained
    before this ``fit()``; ``run``: the run to log to (default: the current run).
    """

    def __init__(
        self, log_freq: str | int = "epoch", initial_global_step: int = 0, run: Any = None
    ) -> None:
        super().__init__()
        if log_freq == "batch":
            log_freq = 1
        if log_freq != "epoch" and (
            isinstance(log_freq, bool) or not isinstance(log_freq, int) or log_freq < 1
        ):
            raise ValueError(
                f"{WHAT}: log_freq must be 'epoch', 'batch' or a positive number, not {log_freq!r}"
            )
        self._run = run if run is not None else session.current_run()
        if self._run is None:
            raise RuntimeError(f"Call waddle.init() before {WHAT}.WaddleCallback().")
        self._every = None if log_freq == "epoch" else log_freq
        self._global_batch = initial_global_step  # batches trained before this epoch
        self._epoch_start = initial_global_step
        self._notices = Notices()
        if self._every is not None:
            self._run.define_metric(BATCH_STEP)
            self._run.define_metric("batch/*", step_metric=BATCH_STEP)
        self._run.define_metric(EPOCH_STEP)
        self._run.define_metric("epoch/*", step_metric=EPOCH_STEP)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_start = self._global_batch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # ``batch`` is the last batch of the call (several with steps_per_execution).
        index = self._epoch_start + batch
        self._global_batch = index + 1
        if self._every is None or index % self._every:
            return
        row = {f"batch/{key}": value for key, value in (logs or {}).items()}
        row[BATCH_STEP] = index
        self._run.log(self._with_learning_rate(row, "batch/learning_rate"))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        row = {f"epoch/{key}": value for key, value in (logs or {}).items()}
        row[EPOCH_STEP] = epoch
        self._run.log(self._with_learning_rate(row, "epoch/learning_rate"))

    def _with_learning_rate(self, row: dict[str, Any], key: str) -> dict[str, Any]:
        """``row`` with the optimizer's current learning rate under ``key`` (Keras 3 gives
        it as a number, a variable or a scalar tensor, also for a schedule). Keras has made
        the metrics Python floats already, so reading it here costs no extra device sync."""
        optimizer = getattr(self.model, "optimizer", None)
        try:
            rate = optimizer.learning_rate if optimizer is not None else None
            if rate is not None:
                row[key] = float(rate)
        except Exception as error:  # an optimizer of another kind: metrics go on without it
            self._notices.show("learning-rate", f"{WHAT}: the learning rate is not logged: {error}")
        return row
