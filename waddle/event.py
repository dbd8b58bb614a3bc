"""The event format: one JSON object per line, shared by the client, the reader and the server.

This module owns the encoding of an event to bytes and back, and nothing else. It promises:

- Every encoded event is one line of UTF-8 JSON ending in ``\\n``, self-contained, carrying the
  format version ``v``, the per-run sequence number ``seq``, the wall time ``t`` and the ``type``.
- Non-finite floats survive exactly. JSON has no NaN or Infinity, and orjson writes them as
  ``null``, so the encoder replaces each one with ``null`` and records it in ``nf``: a sparse
  mirror of the event holding ``"nan"``, ``"inf"`` or ``"-inf"`` at the same place (list
  positions as decimal strings). The decoder puts the floats back.
- Decoding never trusts its input: anything that is not a well-formed event of a known version
  raises :class:`MalformedEvent` with the reason.

The full specification is docs/format.md; keep the two in step.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

FORMAT_VERSION = 1

# Every integer an event holds (seq, step, a logged int) fits a signed 64-bit integer: the
# index stores them as BIGINT, and a writer refuses anything else before it is written.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# The bounds a reader holds every event to (docs/format.md, "Bounds"). seq and step leave room
# for the next one (+ 1) in 64 bits. A wall time before the epoch or after T_MAX (the year
# 2286) is a broken clock or a wrong unit (milliseconds), and would make a run sort first or
# count as running forever.
SEQ_MAX = STEP_MAX = INT64_MAX - 1
T_MAX = 1e10
_NUMBERS = frozenset({int, float})

# Every event type of format version 1. Readers reject others as unknown.
EVENT_TYPES = frozenset(
    {
        "run_start",
        "config",
        "log",
        "summary",
        "define_metric",
        "console",
        "system",
        "heartbeat",
        "alert",
        "finish",
        "file",
        "artifact",
    }
)

_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
_NONFINITE_TOKENS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class MalformedEvent(ValueError):
    """A line that is not a valid event; the message says why."""


def encode(event: dict[str, Any], finite: bool = False) -> bytes:
    """Encode one event (already stamped with v, seq, t, type) as a JSON line.

    ``finite=True`` is the caller's promise that the event holds no NaN or ±Inf (the writer
    knows it of most log events), which skips looking for them.
    Raises TypeError when a value cannot be represented in JSON.
    """
    line = orjson.dumps(event, option=_DUMPS_OPTIONS)
    # orjson writes NaN and ±Inf as null: only a line with a null can hold one. Real nulls
    # (a None in a config, the word inside a string) take the slow path and change nothing.
    if finite or b"null" not in line:
        return line
    marks = _nonfinite_marks(event)
    if not marks:
        return line
    return orjson.dumps({**event, "nf": marks}, option=_DUMPS_OPTIONS)


def _nonfinite_marks(value: Any) -> Any:
    """The sparse mirror of ``value`` that holds a token at every non-finite float, or None."""
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (math.inf, -math.inf):
            return "inf" if value > 0 else "-inf"
        return None
    if isinstance(value, dict):
        marks = {}
        for key, item in value.items():
            mark = _nonfinite_marks(item)
            if mark is not None:
                marks[key] = mark
        return marks or None
    if isinstance(value, (list, tuple)):
        marks = {}
        for index, item in enumerate(value):
            mark = _nonfinite_marks(item)
            if mark is not None:
                marks[str(index)] = mark
        return marks or None
    if hasattr(value, "dtype") and getattr(value, "shape", None) == ():
        # numpy scalars other than float64 (float32, float16) are not float subclasses.
        return _nonfinite_marks(float(value)) if value.dtype.kind == "f" else None
    if hasattr(value, "dtype") and value.dtype.kind == "f":
        return _nonfinite_marks(value.tolist())
    return None


def decode(line: bytes | str) -> dict[str, Any]:
    """Decode one line (with or without its newline) into an event dict.

    Raises MalformedEvent naming what is wrong.
    """
    event = _load_object(line)
    version = event.get("v")
    if version != FORMAT_VERSION:
        if type(version) is int and version > FORMAT_VERSION:
            raise MalformedEvent(
                f"format version {version} is newer than this reader ({FORMAT_VERSION})"
            )
        raise MalformedEvent(f"missing or invalid format version: {version!r}")
    # The floats go back first, so that what nf names is checked like the rest (a seq made NaN).
    _put_back_nonfinite(event)
    seq, t = event.get("seq"), event.get("t")
    if not in_bounds(seq, t):
        if type(seq) is not int or not 0 <= seq <= SEQ_MAX:
            raise MalformedEvent(f"missing or invalid seq: {seq!r} (an integer, 0 to 2**63 - 2)")
        raise MalformedEvent(
            f"missing or invalid wall time t: {t!r} (seconds since the epoch, 0 to {T_MAX:g})"
        )
    kind = event.get("type")
    if type(kind) is not str or kind not in EVENT_TYPES:
        raise MalformedEvent(f"unknown event type: {kind!r}")
    return event


def decode_document(data: bytes | str) -> dict[str, Any]:
    """Decode a JSON object written with :func:`encode` that is no event (an artifact manifest,
    a line of an artifact's version log): its non-finite floats put back from ``nf``.

    Raises MalformedEvent naming what is wrong.
    """
    document = _load_object(data)
    _put_back_nonfinite(document)
    return document


def _load_object(data: bytes | str) -> dict[str, Any]:
    try:
        loaded = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise MalformedEvent(f"not valid JSON ({error})") from None
    if type(loaded) is not dict:
        raise MalformedEvent("not a JSON object")
    return loaded


def _put_back_nonfinite(document: dict[str, Any]) -> None:
    """Apply and remove the ``nf`` mirror of ``document``."""
    marks = document.pop("nf", None)
    if marks is not None:
        if type(marks) is not dict:
            raise MalformedEvent("nf is not an object")
        _restore_nonfinite(document, marks)


def in_bounds(seq: Any, t: Any, step: Any = 0) -> bool:
    """Whether ``seq``, the wall time ``t`` and (for events that have one) ``step`` are within
    the format's bounds: ``0 <= seq <= SEQ_MAX`` and ``0 <= step <= STEP_MAX`` as ints, and
    ``0 <= t <= T_MAX`` as a number.

    The one check of them: :func:`decode` makes it for every event, the server's handlers for a
    step, and its fast path for the log lines it takes without :func:`decode`, so every reader
    takes the same lines.
    """
    return (
        type(seq) is int
        and 0 <= seq <= SEQ_MAX
        and type(t) in _NUMBERS
        and 0 <= t <= T_MAX
        and type(step) is int
        and 0 <= step <= STEP_MAX
    )


def is_int64(value: Any, low: int = INT64_MIN) -> bool:
    """Whether ``value`` is an int from ``low`` to INT64_MAX: what an integer field other than
    seq and step (an exit code, a count) must be for the index to hold it."""
    return type(value) is int and low <= value <= INT64_MAX


def _restore_nonfinite(container: Any, marks: dict[str, Any]) -> None:
    for key, mark in marks.items():
        try:
            slot = int(key) if isinstance(container, list) else key
            if isinstance(mark, dict):
                _restore_nonfinite(container[slot], mark)
            else:
                container[slot] = _NONFINITE_TOKENS[mark]
        except (KeyError, IndexError, TypeError, ValueError):
            raise MalformedEvent(f"nf names a place the event does not have: {key!r}") from None
