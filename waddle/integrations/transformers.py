"""The Hugging Face Trainer's callback for waddle: ``Trainer(..., callbacks=[WaddleCallback()])``.

It records what transformers' ``WandbCallback`` records:

- at the start of training, the run's config: the model's config, then the training arguments
  (``args.to_sanitized_dict()``) over it, and ``model/num_parameters``;
- each ``Trainer.log()`` as one row: ``eval_*`` keys become ``eval/*``, ``test_*`` keys
  ``test/*`` and the others ``train/*``, with the trainer's step as ``train/global_step``,
  which ``define_metric`` makes the x-axis of every key (an evaluation at a training step is a
  row of its own, so nothing is dropped); the end-of-training figures (``train_runtime``,
  ``train_samples_per_second``, ``train_steps_per_second``, ``train_loss``, ``total_flos``)
  go to the summary instead; ``predict()``'s metrics are a row too (``test/*``, with the step);
- at the end of training, a run the callback started is finished; a later ``evaluate()``
  or ``predict()`` continues it. A run that was open before (``waddle.init()`` by the script)
  is used as it is and left to the script to finish.

Only the world's process zero writes. Importing this module also makes
``TrainingArguments(report_to="waddle")`` work: transformers finds the callback of each
``report_to`` name in ``transformers.integrations.integration_utils.INTEGRATION_TO_CALLBACK``,
and the import adds ``"waddle"`` there (without changing any other entry).
"""

from __future__ import annotations

from typing import Any

from waddle import session
from waddle.integrations import require
from waddle.settings import RUN_VARIABLES, from_environment

WHAT = "waddle.integrations.transformers"
STEP_KEY = "train/global_step"
# Figures the Trainer logs once, at the end of training: summary values, not history.
SUMMARY_KEYS = (
    "train_runtime",
    "train_samples_per_second",
    "train_steps_per_second",
    "train_loss",
    "total_flos",
)
# How the keys the Trainer logs are named in the run, as WandbCallback names them.
PREFIXES = (("eval_", "eval/"), ("test_", "test/"))

_integrations = require("transformers.integrations.integration_utils", "transformers", WHAT)


def rewrite_keys(logs: dict[str, Any]) -> dict[str, Any]:
    """``eval_loss`` -> ``eval/loss``, ``test_acc`` -> ``test/acc``, ``loss`` -> ``train/loss``."""
    rewritten = {}
    for key, value in logs.items():
        for prefix, section in PREFIXES:
            if key.startswith(prefix):
                rewritten[section + key[len(prefix) :]] = value
                break
        else:
            rewritten["train/" + key] = value
    return rewritten


class WaddleCallback(_integrations.TrainerCallback):
    """Log a Hugging Face Trainer's metrics and config to a waddle run.

    ``project`` defaults to ``$WADDLE_PROJECT`` or ``$WANDB_PROJECT``, else the training
    arguments' ``project`` (transformers' default: ``huggingface``); the run is named by
    ``run_name``. Other keywords go to ``waddle.init()``.
    """

    def __init__(self, project: str | None = None, **init_kwargs: Any) -> None:
        self._project = project
        self._init_kwargs = init_kwargs
        self._run: Any = None
        self._owned = False  # this callback started the run, so it finishes it
        self._run_id: str | None = None  # of the run it started, to continue after finishing

    def setup(self, args: Any, state: Any, model: Any = None) -> None:
        """Open the run and record the config (world process zero only)."""
        if not state.is_world_process_zero:
            return
        run = self._open(args, state)
        config = {}
        model_config = getattr(model, "config", None)
        if model_config is not None:
            config.update(
                model_config if isinstance(model_config, dict) else model_config.to_dict()
            )
        config.update(args.to_sanitized_dict())
        if hasattr(model, "num_parameters"):
            config["model/num_parameters"] = model.num_parameters()
        run.config.update(config)

    def _open(self, args: Any, state: Any) -> Any:
        if self._run is not None:
            return self._run
        run = session.current_run()
        self._owned = run is None
        if run is None:
            found = from_environment(RUN_VARIABLES["project"])
            trial = getattr(state, "trial_name", None)
            run = session.init(
                project=self._project
                or (found[0] if found else getattr(args, "project", None) or "huggingface"),
                name=trial or getattr(args, "run_name", None),
                group=(args.run_name or args.output_dir) if trial else None,
                id=self._run_id,
                resume="allow" if self._run_id else None,
                **self._init_kwargs,
            )
            self._run_id = run.id
        run.define_metric(STEP_KEY)
        run.define_metric("*", step_metric=STEP_KEY, step_sync=True)
        self._run = run
        return run

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any):
        if getattr(state, "is_hyper_param_search", False) and self._owned:
            self._finish()  # each trial is a run of its own
            self._run_id = None
        self.setup(args, state, model)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any):
        if not state.is_world_process_zero or not logs:
            return
        run = self._open(args, state)
        for key in SUMMARY_KEYS:
            if key in logs:
                run.summary[key] = logs[key]
        rows = rewrite_keys({k: v for k, v in logs.items() if k not in SUMMARY_KEYS})
        if rows:
            run.log({**rows, STEP_KEY: state.global_step})

    def on_predict(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any):
        # With the step too (W&B's callback leaves it out): every key is plotted against it.
        if state.is_world_process_zero and metrics:
            self._open(args, state).log({**rewrite_keys(metrics), STEP_KEY: state.global_step})

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any):
        if state.is_world_process_zero and self._owned:
            self._finish()

    def _finish(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None


_integrations.INTEGRATION_TO_CALLBACK.setdefault("waddle", WaddleCallback)
