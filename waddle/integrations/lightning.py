"""PyTorch Lightning's logger for waddle: ``Trainer(logger=WaddleLogger(project="mnist"))``.

One class for ``lightning.pytorch`` and ``pytorch_lightning`` alike: it derives from the Logger
base class of each one installed, so either Trainer takes it. It takes ``WandbLogger``'s
arguments and records what ``WandbLogger`` records:

- each ``log_metrics(metrics, step)`` is one ``run.log()`` (the next waddle step) with the
  trainer's step as the value ``trainer/global_step``, which ``define_metric`` makes the x-axis
  of every key. Lightning logs validation at the step of the last training batch, and
  ``trainer.test()`` counts its own steps from 0: as separate rows, neither is dropped;
- ``log_hyperparams`` updates the run's config; ``after_save_checkpoint`` logs checkpoints as
  versions of the model artifact ``model-<run id>`` when ``log_model`` asks for it (``True``:
  the best and last at the end, ``"all"``: each as it is written);
- ``finalize(status)`` finishes a run the logger started: ``"success"`` as finished,
  ``"failed"`` as crashed with the exception Lightning is handling, and ``"finished"`` (what
  Lightning says before a SLURM requeue) flushes it and marks it preempting. A later use of
  the logger (``trainer.test()`` after ``fit()``) continues the same run. A run that was open
  before the logger (``waddle.init()`` by the script) is left to the script to finish.

Only global rank zero writes: other ranks get a run whose every call does nothing. Pickling
(Lightning's spawn launchers) hands the run over: it is finished here and continued, under
the same id, in the process that unpickles the logger and uses it.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

from waddle import session
from waddle.artifact import Artifact
from waddle.integrations import require
from waddle.notice import Notices
from waddle.run import DisabledRun
from waddle.settings import RUN_VARIABLES, from_environment, resolve_one

_notices = Notices()

STEP_KEY = "trainer/global_step"
DEFAULT_PROJECT = "lightning_logs"  # WandbLogger's
WHAT = "waddle.integrations.lightning"


def _logger_bases() -> tuple[type, ...]:
    """The Logger base class of each Lightning package installed (both, often: the ``lightning``
    package installs ``pytorch_lightning`` too)."""
    bases = []
    for module in ("lightning.pytorch.loggers", "pytorch_lightning.loggers"):
        try:
            bases.append(importlib.import_module(module).Logger)
        except ImportError:
            continue
    if not bases:
        require("lightning.pytorch", "lightning", WHAT)  # raises, naming the extra
    return tuple(bases)


_BASES = _logger_bases()
rank_zero_only = require("lightning_utilities.core.rank_zero", "lightning", WHAT).rank_zero_only


class WaddleLogger(*_BASES):
    """Log a Lightning Trainer's metrics, hyperparameters and checkpoints to a waddle run.

    ``project`` (default ``$WADDLE_PROJECT``, ``$WANDB_PROJECT``, else ``lightning_logs``),
    ``name`` (the run's), ``save_dir`` (waddle's log folder; default ``$WADDLE_DIR`` or
    ``./logs``), ``version`` (the run id: an existing run is continued), ``log_model``
    (False, True or ``"all"``), ``checkpoint_name`` (the model artifact's name), ``prefix`` (put
    before every metric key, joined by ``-``), ``experiment`` (a run to log to instead of
    starting one); other keywords go to ``waddle.init()``. ``offline`` and ``anonymous`` are
    WandbLogger's, accepted for the same code to run (waddle is always local).
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        name: str | None = None,
        save_dir: str | os.PathLike | None = None,
        version: str | None = None,
        offline: bool = False,
        dir: str | os.PathLike | None = None,
        id: str | None = None,
        anonymous: bool | None = None,
        project: str | None = None,
        log_model: bool | str = False,
        experiment: Any = None,
        prefix: str = "",
        checkpoint_name: str | None = None,
        **init_kwargs: Any,
    ) -> None:
        super().__init__()
        if log_model not in (False, True, "all"):
            raise ValueError(f"{WHAT}: log_model must be False, True or 'all', not {log_model!r}")
        found = from_environment(RUN_VARIABLES["project"])
        self._project = project or (found[0] if found else DEFAULT_PROJECT)
        self._name = name
        self._save_dir = str(Path(resolve_one("dir", save_dir or dir)).absolute())
        self._id = version or id
        self._log_model = log_model
        self._checkpoint_name = checkpoint_name
        self._prefix = prefix
        self._init_kwargs = init_kwargs
        self._given = experiment
        self._experiment: Any = None
        self._disabled: DisabledRun | None = None
        self._owned = False  # this logger started the run, so it finishes it
        self._finished = False  # finalize() finished it: the next use continues it
        self._checkpoint_callback: Any = None
        self._saved_checkpoints: dict[str, float] = {}  # path -> mtime when saved

    # ---- what Lightning asks of a logger -------------------------------------------------

    @property
    def experiment(self) -> Any:
        """The run (started at first use); a run that records nothing on ranks other than 0."""
        if rank_zero_only.rank != 0:
            if self._disabled is None:
                self._disabled = DisabledRun(self._project, self._name, None)
            return self._disabled
        if self._experiment is None or self._finished:
            self._experiment = self._open()
            self._experiment.define_metric(STEP_KEY)
            self._experiment.define_metric("*", step_metric=STEP_KEY, step_sync=True)
        return self._experiment

    def _open(self) -> Any:
        """The run given to the logger, else the script's open run (as W&B does), else a run
        of its own: a new one, or the one it finished (or was pickled with) continued."""
        run = self._given or (None if self._finished else session.current_run())
        self._given = None
        self._owned = run is None
        if run is None:
            run = session.init(
                project=self._project,
                name=self._name,
                dir=self._save_dir,
                id=self._id,
                resume="allow" if self._id else None,
                reinit="create_new",
                **self._init_kwargs,
            )
        self._finished = False
        self._id = run.id
        self._project = run.project
        return run

    @property
    def name(self) -> str:
        """The project (Lightning puts checkpoints under ``save_dir/name/version``)."""
        return self._project

    @property
    def version(self) -> str | None:
        """The run id (None on ranks other than 0 until the run is known)."""
        return self._id

    @property
    def save_dir(self) -> str:
        """waddle's log folder."""
        return self._save_dir

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Update the run's config with ``params`` (a dict or an argparse Namespace)."""
        self.experiment.config.update(params)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Log ``metrics`` as the next row, with ``step`` as ``trainer/global_step``."""
        if self._prefix:
            metrics = {f"{self._prefix}{self.LOGGER_JOIN_CHAR}{k}": v for k, v in metrics.items()}
        if step is not None:
            metrics = {**metrics, STEP_KEY: step}
        self.experiment.log(metrics)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Save the checkpoints just written, when ``log_model`` asks for it now; else keep
        the callback to save its best and last checkpoints at the end."""
        if self._log_model == "all" or (
            self._log_model is True and getattr(checkpoint_callback, "save_top_k", None) == -1
        ):
            self._save_checkpoints(checkpoint_callback)
        elif self._log_model is True:
            self._checkpoint_callback = checkpoint_callback

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Save what ``log_model=True`` kept for the end, and finish the run if this logger
        started it (module docstring says how each status ends it)."""
        if self._experiment is None or self._finished:
            return
        if status == "success" and self._checkpoint_callback is not None:
            self._save_checkpoints(self._checkpoint_callback)
        run = self._experiment
        if status == "finished":  # a SLURM requeue: the job comes back to continue it
            run.mark_preempting()
            run.flush()
            return
        if not self._owned:
            run.flush()
            return
        self._finished = True
        kind, error, traceback = sys.exc_info()
        if status != "failed":
            run.finish()
        elif kind is not None:  # Lightning is handling the exception that ended training
            run.__exit__(kind, error, traceback)  # crashed, with its traceback
        else:
            run.finish(exit_code=1)

    def __getstate__(self) -> dict[str, Any]:
        """What pickling keeps: the run's id, not the run (module docstring)."""
        state = self.__dict__.copy()
        run = self._experiment
        if run is not None and self._owned and not self._finished:
            run.finish()
            self._finished = True
        state["_experiment"] = None
        state["_finished"] = False
        state["_checkpoint_callback"] = None
        state["_disabled"] = None
        return state

    # ---- WandbLogger's conveniences ------------------------------------------------------

    def watch(
        self, model: Any, log: str | None = "gradients", log_freq: int = 100, log_graph: bool = True
    ) -> None:
        """Histograms of the model's gradients and/or parameters (``run.watch``)."""
        self.experiment.watch(model, log=log, log_freq=log_freq, log_graph=log_graph)

    @rank_zero_only
    def log_table(
        self,
        key: str,
        columns: list[str] | None = None,
        data: list[list[Any]] | None = None,
        dataframe: Any = None,
        step: int | None = None,
    ) -> None:
        """Log a ``waddle.Table`` under ``key``."""
        from waddle.table import Table

        self.log_metrics({key: Table(columns=columns, data=data, dataframe=dataframe)}, step)

    @rank_zero_only
    def log_image(
        self, key: str, images: list[Any], step: int | None = None, **kwargs: Any
    ) -> None:
        """Log a list of images under ``key``; each keyword (``caption``, ``boxes``) is a list
        with one entry per image."""
        from waddle.image import Image

        self._log_media(key, Image, images, step, kwargs)

    @rank_zero_only
    def log_audio(
        self, key: str, audios: list[Any], step: int | None = None, **kwargs: Any
    ) -> None:
        """Log a list of audio clips under ``key`` (keywords as for ``log_image``)."""
        from waddle.audio import Audio

        self._log_media(key, Audio, audios, step, kwargs)

    @rank_zero_only
    def log_video(
        self, key: str, videos: list[Any], step: int | None = None, **kwargs: Any
    ) -> None:
        """Log a list of videos under ``key`` (keywords as for ``log_image``)."""
        from waddle.video import Video

        self._log_media(key, Video, videos, step, kwargs)

    def _log_media(
        self, key: str, kind: type, items: list[Any], step: int | None, kwargs: dict
    ) -> None:
        if not isinstance(items, list):
            raise TypeError(f'{WHAT}: expected a list of {kind.__name__.lower()}s for "{key}"')
        for name, values in kwargs.items():
            if len(values) != len(items):
                raise ValueError(f"{WHAT}: {name} has {len(values)} entries for {len(items)} items")
        made = [
            kind(item, **{name: values[i] for name, values in kwargs.items()})
            for i, item in enumerate(items)
        ]
        self.log_metrics({key: made}, step)

    # ---- checkpoints ---------------------------------------------------------------------

    def _save_checkpoints(self, checkpoint_callback: Any) -> None:
        """Log each checkpoint of the callback not logged yet (or rewritten since) as the next
        version of the model artifact ``model-<run id>`` (or ``checkpoint_name``), as
        WandbLogger does: the file as ``model.ckpt``, its score and original name as metadata,
        aliased ``latest``, and ``best`` when it is the callback's best.

        Each returns once its version is stored: the callback deletes a checkpoint that leaves
        its top k as soon as a better one is saved, which may be before the run's copier
        thread copied it, and a file gone before its copy is refused (waddle/artifact.py). So
        the copy costs the training thread what it costs W&B's logger, which copies each file
        as it is added."""
        best = getattr(checkpoint_callback, "best_model_path", None)
        scores = {
            path: score.item() if hasattr(score, "item") else score  # a tensor, mostly
            for path, score in (getattr(checkpoint_callback, "best_k_models", None) or {}).items()
        }
        paths = [getattr(checkpoint_callback, "last_model_path", None), best, *scores]
        run = self.experiment
        for path in sorted(
            dict.fromkeys(path for path in paths if path and os.path.isfile(path)),
            key=os.path.getmtime,
        ):
            mtime = os.path.getmtime(path)
            if self._saved_checkpoints.get(path) == mtime:
                continue
            metadata = {
                "score": scores.get(path),
                "original_filename": Path(path).name,
                **{
                    name: getattr(checkpoint_callback, name)
                    for name in ("monitor", "mode", "save_last", "save_top_k")
                    if hasattr(checkpoint_callback, name)
                },
            }
            artifact = Artifact(
                self._checkpoint_name or f"model-{run.id}", "model", metadata=metadata
            )
            artifact.add_file(path, name="model.ckpt")
            run.log_artifact(artifact, aliases=["latest", "best"] if path == best else ["latest"])
            try:
                artifact.wait()
            except RuntimeError as error:  # the file changed meanwhile: training goes on
                _notices.show("checkpoint", f"checkpoint {path} not logged: {error}", limit=3)
            self._saved_checkpoints[path] = mtime
