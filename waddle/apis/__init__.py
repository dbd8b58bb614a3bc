"""W&B's ``wandb.apis``: reading runs back (``waddle.Api``, in :mod:`waddle.apis.public`)."""

from waddle.apis.public import Api

__all__ = ["Api"]
