"""``wandb.util``: the helpers of W&B's module of that name that training scripts call.

Only what scripts use is here (W&B's own examples resume a run with
``wandb.util.generate_id()``); it is a compatibility surface, not a home for waddle's helpers.
"""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_lowercase + string.digits


def generate_id(length: int = 8) -> str:
    """A random run id of ``length`` lowercase letters and digits (a valid waddle name)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))
