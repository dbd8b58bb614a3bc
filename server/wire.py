"""How values go on the wire (HTTP and WebSocket JSON) and into the index's JSON columns.

JSON has no NaN or Infinity. Everywhere the server writes JSON, a non-finite float becomes the
string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` (the spelling JavaScript's ``Number()``
and Python's ``float()`` both read back); it is never dropped or turned into ``null``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
from starlette.responses import JSONResponse

NAN, POS_INF, NEG_INF = "NaN", "Infinity", "-Infinity"


def float_token(value: float) -> float | str:
    if value != value:
        return NAN
    if value == math.inf:
        return POS_INF
    if value == -math.inf:
        return NEG_INF
    return value


class Tokens(list):
    """A list already in wire form (from :func:`floats`): :func:`plain` does not walk it again."""


def plain(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its string token (recursively).

    numpy arrays and :class:`Tokens` pass as they are: orjson writes the arrays, and a float
    array holding non-finite values must go through :func:`floats` first.
    """
    if type(value) is float:
        return value if math.isfinite(value) else float_token(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)) and type(value) is not Tokens:
        return [plain(item) for item in value]
    return value


def dumps(value: Any) -> bytes:
    return orjson.dumps(plain(value), option=orjson.OPT_SERIALIZE_NUMPY)


def floats(values: np.ndarray) -> np.ndarray | Tokens:
    """A float array ready for :func:`dumps`: the array itself when every value is finite
    (orjson writes it without making a Python float per value), else a list with the
    non-finite values as tokens."""
    if np.isfinite(values).all():
        return np.ascontiguousarray(values, dtype=np.float64)
    out = Tokens(values.tolist())
    for index in np.flatnonzero(~np.isfinite(values)).tolist():
        out[index] = float_token(out[index])
    return out


class WireJSON(JSONResponse):
    """A JSON response written by :func:`dumps`. Returned from a route as it is, it also skips
    FastAPI's encoder, which would walk every value in Python first."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


def loads_json_column(text: str | None) -> Any:
    """A JSON column read back from the index (its non-finite floats stay string tokens)."""
    return None if text is None else orjson.loads(text)
