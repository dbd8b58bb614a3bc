"""Plain JSON values for config and summary: a deep copy the writer can encode later.

``to_jsonable`` snapshots what the caller passed (so later mutation of their objects changes
nothing) and turns it into dicts with string keys, lists, numbers, bools, strings and None.
numpy values become Python ones; anything else becomes its ``str()``, as in W&B's config, so a
``torch.device`` or a ``Path`` in an argparse namespace never stops a run from starting.
Non-finite floats are kept as they are: the event encoder preserves them. What no event can
hold raises ValueError naming where it is: an integer outside 64 bits, or text UTF-8 cannot
encode (see ``values.check_text``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from waddle.event import INT64_MAX, INT64_MIN
from waddle.values import check_text


def to_jsonable(value: Any, where: str) -> Any:
    """A plain JSON copy of ``value``; ``where`` names it in errors, e.g. ``config['lr']``."""
    kind = type(value)
    if kind is float or kind is bool or value is None:
        return value
    if kind is str:
        return check_text(where, value)
    if kind is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"{where} is an integer outside the signed 64-bit range: {value}")
        return value
    if isinstance(value, Mapping):
        return {
            check_text(f"a key in {where}", str(key)): to_jsonable(item, f"{where}[{key!r}]")
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if kind.__module__ == "numpy" and hasattr(value, "tolist"):
        return to_jsonable(value.tolist(), where)
    for base in (bool, int, float, str):  # subclasses such as IntEnum or a str enum
        if isinstance(value, base):
            return to_jsonable(base(value), where)
    if hasattr(value, "__dict__") and kind.__name__ == "Namespace":  # argparse
        return to_jsonable(vars(value), where)
    return to_jsonable(str(value), where)
