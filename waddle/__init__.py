"""waddle: a local-first experiment tracker with W&B's API.

    import waddle
    run = waddle.init(project="mnist", config={"lr": 1e-3})
    for step in range(1000):
        run.log({"loss": loss})
    run.finish()

Every call becomes an event in an append-only JSON-lines log under ``./logs`` (see
docs/format.md), written by a background thread. ``waddle.run``, ``waddle.config`` and
``waddle.summary`` are the current run's, as in wandb.
"""

from __future__ import annotations

from typing import Any

from waddle import apis, plot, util
from waddle.apis import Api
from waddle.artifact import Artifact
from waddle.audio import Audio
from waddle.histogram import Histogram
from waddle.html import Html
from waddle.image import Image
from waddle.notice import termerror, termlog, termwarn
from waddle.object3d import Object3D
from waddle.run import AlertLevel, DisabledRun, Run, RunLockedError
from waddle.session import (
    alert,
    define_metric,
    finish,
    init,
    log,
    log_artifact,
    log_model,
    login,
    mark_preempting,
    save,
    setup,
    unwatch,
    use_artifact,
    use_model,
    watch,
)
from waddle.settings import Settings
from waddle.table import Table
from waddle.text import Markdown, Text
from waddle.video import Video

__version__ = "0.1.0"

__all__ = [
    "AlertLevel",
    "Api",
    "Artifact",
    "Audio",
    "DisabledRun",
    "Histogram",
    "Html",
    "Image",
    "Markdown",
    "Object3D",
    "Run",
    "RunLockedError",
    "Settings",
    "Table",
    "Text",
    "Video",
    "__version__",
    "alert",
    "apis",
    "config",
    "define_metric",
    "finish",
    "init",
    "log",
    "log_artifact",
    "log_model",
    "login",
    "mark_preempting",
    "plot",
    "run",
    "save",
    "setup",
    "summary",
    "termerror",
    "termlog",
    "termwarn",
    "unwatch",
    "use_artifact",
    "use_model",
    "util",
    "watch",
]

# Importing the submodules waddle.run, waddle.config and waddle.summary bound those names
# here; drop them so that `waddle.run` and friends mean the current run's (through __getattr__
# below), as in wandb. The submodules stay importable by their full names.
del config, run, summary  # noqa: F821


def __getattr__(name: str) -> Any:
    # waddle.run, waddle.config and waddle.summary follow the current run, so they cannot be
    # plain module attributes.
    from waddle.session import current_run

    if name == "run":
        return current_run()
    if name in ("config", "summary"):
        run = current_run()
        if run is None:
            raise AttributeError(f"waddle.{name} needs a run: call waddle.init() first")
        return getattr(run, name)
    if name == "tensorboard":  # wandb.tensorboard.patch(), as waddle.tensorboard.patch()
        import importlib

        return importlib.import_module("waddle.tensorboard")
    raise AttributeError(f"module 'waddle' has no attribute {name!r}")
