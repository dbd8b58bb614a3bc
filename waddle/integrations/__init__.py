"""Loggers and callbacks that let a training framework log into a waddle run.

One module per framework, each imported only by code that uses that framework and each needing
its own optional extra (README, "Framework integrations"):

- ``waddle.integrations.lightning``: ``WaddleLogger`` for PyTorch Lightning (``waddle[lightning]``);
- ``waddle.integrations.transformers``: ``WaddleCallback`` for the Hugging Face Trainer, and
  ``report_to="waddle"`` (``waddle[transformers]``);
- ``waddle.integrations.keras``: ``WaddleCallback`` for Keras 3 (``waddle[keras]``).
"""

from __future__ import annotations

import importlib


def require(module: str, extra: str, what: str) -> object:
    """Import ``module``, or raise ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{what} needs {module.split('.')[0]} ({error.name or module} is missing): "
            f"pip install -e '.[{extra}]' in a clone of waddle"
        ) from error
