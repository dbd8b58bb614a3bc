"""Plain JSON values for config and summary: a deep copy the writer can encode later.

``to_jsonable`` snapshots what the caller passed (so later mutation of their objects changes
nothing) and turns it into dicts with string keys, lists, numbers, bools, strings and None.
numpy values become Python ones; anything else becomes its ``str()``, as in W&B's config, so a
``torch.device`` or a ``Path`` in an argparse namespace never stops a run from starting.
Non-finite floats are kept as they are: the event encoder preserves them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def to_jsonable(value: Any) -> Any:
    kind = type(value)
    if kind in (str, int, float, bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(item) for item in value]
    if kind.__module__ == "numpy" and hasattr(value, "tolist"):
        return to_jsonable(value.tolist())
    for base in (bool, int, float, str):  # subclasses such as IntEnum or a str enum
        if isinstance(value, base):
            return base(value)
    if hasattr(value, "__dict__") and kind.__name__ == "Namespace":  # argparse
        return to_jsonable(vars(value))
    return str(value)
