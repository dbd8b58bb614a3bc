"""Loggable values: what ``run.log()`` accepts, checked and snapshotted on the caller's thread.

``flatten()`` is on the training loop's hot path. It promises:

- every key is a non-empty string of at most MAX_KEY_LENGTH characters; nested mappings become
  ``"outer/inner"`` keys;
- whatever it accepts can be written: every string is encodable as UTF-8 (:func:`check_text`),
  every integer fits 64 bits, and the event fits one line of the format (``MAX_LINE_BYTES``),
  checked exactly only when many keys or long strings make that possible, so a call that
  returns is never dropped later by the writer;
- every value is something the writer thread can encode without touching the caller's objects
  again: immutable numbers, bools and strings pass through; numpy scalars and 0-d arrays are
  kept as numpy scalars; torch and jax scalars are held as :class:`Deferred` references and turned
  into numbers by the writer thread, so the caller never waits for a device;
- anything else raises TypeError or ValueError naming the key, before any of the call is kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from waddle import event as event_format
from waddle.segment import MAX_LINE_BYTES

MAX_KEY_LENGTH = 256

_INT_MIN, _INT_MAX = event_format.INT64_MIN, event_format.INT64_MAX
_SURROGATE = re.compile("[\ud800-\udfff]")
# One flat value takes at most this many bytes of a line, whatever its key (256 characters,
# each escaped as \uXXXX at worst) and number; a string adds at most 6 bytes a character.
_VALUE_BYTES = 1600
_CHAR_BYTES = 6
# Below this estimate an event surely fits a line; above it log() encodes it to be sure.
_SURELY_FITS = MAX_LINE_BYTES - (64 << 10)
_MANY_KEYS = _SURELY_FITS // _VALUE_BYTES


def writable_text(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode (lone surrogates) as backslash escapes: for
    text waddle records but the caller did not hand to it (console output, tracebacks)."""
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_text(what: str, text: str) -> str:
    """Return ``text`` if it can be written as UTF-8; raise ValueError naming ``what`` if not.

    A lone surrogate (what ``surrogateescape`` makes of undecodable bytes, or half of a broken
    pair) has no UTF-8 form.
    """
    if not text.isascii():
        found = _SURROGATE.search(text)
        if found:
            raise ValueError(
                f"{what} holds a lone surrogate {found.group()!r} at position {found.start()}, "
                "which UTF-8 cannot encode; decode the text properly first"
            )
    return text


class Deferred:
    """A value whose encoding happens in the writer thread.

    ``materialize`` receives the run folder (for values that write side files) and returns
    something JSON-encodable. It runs off the caller's thread and may be slow, but should not
    wait for a device: ``ready`` tells the writer whether it can run now (a value still being
    computed on a GPU is not ready), and the writer comes back for it later.
    """

    __slots__ = ()

    def ready(self) -> bool:
        return True

    def materialize(self, run_dir: Path) -> Any:
        raise NotImplementedError


class _TorchScalar(Deferred):
    """A torch scalar, read in the writer thread.

    On a CUDA device the value is copied into page-locked host memory by an asynchronous copy
    queued on the tensor's stream, followed by an event: no host sync here, ``ready`` asks the
    event, and the read is then a plain host read. Elsewhere the tensor is cloned (queued on its
    device like any kernel). Either way a later in-place update of the caller's tensor cannot
    change what gets logged.
    """

    __slots__ = ("done", "tensor")

    def __init__(self, tensor: Any) -> None:
        tensor = tensor.detach()
        if tensor.is_cuda:
            import torch

            host = torch.empty((), dtype=tensor.dtype, pin_memory=True)
            host.copy_(tensor, non_blocking=True)
            self.done = torch.cuda.Event()
            self.done.record(torch.cuda.current_stream(tensor.device))
            self.tensor = host
        else:
            self.tensor = tensor.clone()
            self.done = None

    def ready(self) -> bool:
        return self.done is None or self.done.query()

    def materialize(self, run_dir: Path) -> Any:
        if self.done is not None:
            self.done.synchronize()  # ready() said so already, unless the run is finishing
        return self.tensor.item()


class _JaxScalar(Deferred):
    __slots__ = ("array",)

    def __init__(self, array: Any) -> None:
        self.array = array  # jax arrays are immutable

    def ready(self) -> bool:
        is_ready = getattr(self.array, "is_ready", None)
        return is_ready is None or is_ready()

    def materialize(self, run_dir: Path) -> Any:
        return self.array.item()


# What flatten() tells the writer about a payload.
PLAIN = 0  # finite floats (maybe with ints or bools) only: encode without looking for NaN
CHECKED = 1  # valid, but may hold non-finite floats or strings: the encoder looks
DEFERRED = 2  # holds Deferred values: materialise them, then encode as CHECKED

# Beyond this a float sum may hide an integer too large for 64 bits.
_SAFE_SUM = 9.2e18


class _RichList(Deferred):
    __slots__ = ("items",)

    def __init__(self, items: list[Deferred]) -> None:
        self.items = items

    def ready(self) -> bool:
        return all(item.ready() for item in self.items)

    def materialize(self, run_dir: Path) -> Any:
        return {"_type": "list", "items": [item.materialize(run_dir) for item in self.items]}


def flatten(data: Any, known_keys: set[str]) -> tuple[dict[str, Any], int]:
    """Check and snapshot one ``log()`` payload.

    ``known_keys`` holds the keys this run has already validated; new valid keys are added.
    Returns the flat ``{key: value}`` dict and its kind (PLAIN, CHECKED or DEFERRED).
    """
    # The common case, known keys with plain float values, is checked in C: a subset test of
    # the keys, and one sum() whose type and finiteness prove every value is a finite float,
    # int or bool (strings, None, numpy, tensors and other objects all change or break it).
    if type(data) is dict and len(data) <= _MANY_KEYS and data.keys() <= known_keys:
        try:
            total = sum(data.values())
        except TypeError:
            total = None
        if type(total) is float and total - total == 0 and -_SAFE_SUM < total < _SAFE_SUM:
            return data.copy(), PLAIN
    if not isinstance(data, Mapping):
        raise TypeError(f"log() takes a dict of values, not {type(data).__name__}")
    out: dict[str, Any] = {}
    deferred = False
    for key, value in data.items():
        if key not in known_keys:
            check_key(key)
        kind = type(value)
        if kind is float or kind is bool or (kind is int and _INT_MIN <= value <= _INT_MAX):
            out[key] = value
        elif kind is str:
            out[key] = check_text(f"log() value for {key!r}", value)
        else:
            deferred |= _add_slow(out, key, value)
    chars = sum(len(value) for value in out.values() if type(value) is str)
    if len(out) * _VALUE_BYTES + chars * _CHAR_BYTES > _SURELY_FITS:
        _check_line(out)
    known_keys.update(key for key in data if type(key) is str)
    return out, DEFERRED if deferred else CHECKED


def _check_line(values: dict[str, Any]) -> None:
    """Raise if a log event of ``values`` would be longer than a line may be (docs/format.md).

    Deferred values (tensors, rich values) are counted as a number; the writer drops, and
    counts, a rich value that turns out too large.
    """
    probe = {key: 0.0 if isinstance(value, Deferred) else value for key, value in values.items()}
    event = {"v": 1, "seq": _INT_MAX, "t": 1e10, "type": "log", "step": _INT_MAX, "data": probe}
    size = len(event_format.encode(event))
    if size > MAX_LINE_BYTES:
        largest = max(values, key=lambda key: len(values[key]) if type(values[key]) is str else 0)
        raise ValueError(
            f"log() of {len(values)} values ({largest!r} the largest) makes an event of {size} "
            f"bytes; a line of the log holds at most {MAX_LINE_BYTES}: log fewer keys per call, "
            "or save long text as a file with run.save()"
        )


def check_key(key: Any, prefix: str = "") -> str:
    """Return ``prefix + key`` if it is a valid key; raise naming the problem otherwise."""
    if type(key) is not str:
        raise TypeError(f"log() keys must be strings: {prefix}{key!r} is {type(key).__name__}")
    if not key:
        raise ValueError(
            f"log() keys must not be empty (under {prefix!r})"
            if prefix
            else "log() keys must not be empty"
        )
    full = prefix + check_text("log() key", key)
    if len(full) > MAX_KEY_LENGTH:
        raise ValueError(
            f"log() key {full[:40]!r}... is {len(full)} characters; the limit is {MAX_KEY_LENGTH}"
        )
    return full


def _add_slow(out: dict[str, Any], key: str, value: Any) -> bool:
    """Add a value that is not a plain float, bool, str or 64-bit int; True if Deferred."""
    if isinstance(value, Mapping):
        deferred = False
        for inner_key, inner in value.items():
            full = check_key(inner_key, key + "/")
            kind = type(inner)
            if kind is float or kind is bool:
                out[full] = inner
            else:
                deferred |= _add_slow(out, full, inner)
        return deferred
    if isinstance(value, Deferred):
        out[key] = value
        return True
    snapshot = getattr(value, "_waddle_snapshot", None)
    if snapshot is not None:  # a rich data type (Image, Histogram, ...)
        out[key] = snapshot(key)
        return True
    if (
        isinstance(value, (list, tuple))
        and value
        and all(hasattr(item, "_waddle_snapshot") for item in value)
    ):
        # W&B's `log({"examples": [Image(...), ...]})`: one value holding several.
        out[key] = _RichList(
            [item._waddle_snapshot(f"{key}/{index}") for index, item in enumerate(value)]
        )
        return True
    kind = type(value)
    if kind is int or isinstance(value, int):
        if isinstance(value, bool):
            out[key] = bool(value)
        elif _INT_MIN <= value <= _INT_MAX:
            out[key] = int(value)
        else:
            raise ValueError(
                f"log() value for {key!r} is an integer outside the signed 64-bit range: {value}"
            )
        return False
    if isinstance(value, float):  # float subclasses, numpy.float64 among them
        out[key] = float(value)
        return False
    if isinstance(value, str):
        out[key] = check_text(f"log() value for {key!r}", str(value))
        return False
    if value is None:  # W&B's null: recorded as such, no point on a chart
        out[key] = None
        return False
    if isinstance(value, (list, tuple)):
        out[key] = _plain_list(key, value)
        return False
    module = kind.__module__
    if module == "numpy":
        if getattr(value, "ndim", 0) and value.size != 1:
            return _add_array(out, key, value, value.size)
        out[key] = _numpy_scalar(key, value.reshape(()) if getattr(value, "ndim", 0) else value)
        return False
    if module.startswith("torch"):
        if not hasattr(value, "numel"):
            raise TypeError(f"log() value for {key!r} is a torch {kind.__qualname__}; log a tensor")
        if value.is_complex():
            raise TypeError(
                f"log() value for {key!r} is a complex tensor; log its real part or abs()"
            )
        if value.numel() != 1:
            return _add_array(out, key, value, value.numel())
        out[key] = _TorchScalar(value.reshape(()))
        return True
    if module.startswith(("jax", "jaxlib")) and hasattr(value, "size"):
        if value.size != 1:
            raise TypeError(
                f"log() value for {key!r} is a jax array of shape {value.shape}; log a scalar, "
                "or waddle.Histogram(numpy.asarray(array)) for a distribution"
            )
        out[key] = _JaxScalar(value.reshape(()))
        return True
    if module.startswith("pandas") and kind.__name__ == "DataFrame":
        from waddle.table import Table

        out[key] = Table(dataframe=value)._waddle_snapshot(key)
        return True
    from waddle import figure

    if figure.is_figure(value):
        from waddle.image import Image

        out[key] = Image(value)._waddle_snapshot(key)
        return True
    raise TypeError(
        f"log() value for {key!r} has unsupported type {kind.__module__}.{kind.__qualname__}; "
        "log a number, bool, string, None, a list, an array or a waddle data type"
    )


# W&B's rule for arrays and tensors: up to this many values are kept as a list, more become a
# histogram of HISTOGRAM_BINS bins.
ARRAY_AS_LIST = 32
HISTOGRAM_BINS = 32


def _add_array(out: dict[str, Any], key: str, value: Any, size: int) -> bool:
    """A numpy array or torch tensor of ``size`` values other than one; True if Deferred."""
    if size > ARRAY_AS_LIST:
        from waddle.histogram import Histogram

        if getattr(value.dtype, "kind", "f") not in "biuf" and module_of(value) == "numpy":
            raise TypeError(
                f"log() value for {key!r} is a numpy array of {value.dtype}; an array of more "
                f"than {ARRAY_AS_LIST} values becomes a histogram, which needs real numbers"
            )
        out[key] = Histogram(value, num_bins=HISTOGRAM_BINS)._waddle_snapshot(key)
        return True
    if module_of(value) == "numpy":
        out[key] = _plain_list(key, value.tolist())
        return False
    out[key] = _TorchList(value)
    return True


def module_of(value: Any) -> str:
    return type(value).__module__.split(".")[0]


class _TorchList(Deferred):
    """A small torch tensor kept as a (nested) list, read in the writer thread."""

    __slots__ = ("ready_check", "tensor")

    def __init__(self, tensor: Any) -> None:
        from waddle import media

        self.tensor, self.ready_check = media.device_copy(tensor)

    def ready(self) -> bool:
        return self.ready_check is None or self.ready_check()

    def materialize(self, run_dir: Path) -> Any:
        return self.tensor.tolist()


def _plain_list(key: str, items: Any) -> list:
    """A copy of a list or tuple of numbers, bools, strings, None and such lists (W&B keeps
    them as they are); anything else raises naming ``key``."""
    out = []
    for index, item in enumerate(items):
        kind = type(item)
        if kind is float or kind is bool or item is None:
            out.append(item)
        elif kind is int:
            if not _INT_MIN <= item <= _INT_MAX:
                raise ValueError(
                    f"log() value for {key!r} holds an integer outside the signed 64-bit "
                    f"range at position {index}: {item}"
                )
            out.append(item)
        elif kind is str:
            out.append(check_text(f"log() value for {key!r} at position {index}", item))
        elif isinstance(item, (list, tuple)):
            out.append(_plain_list(key, item))
        elif kind.__module__ == "numpy" and getattr(item, "ndim", 1) == 0:
            out.append(_numpy_scalar(key, item))
        else:
            raise TypeError(
                f"log() value for {key!r} holds a {kind.__module__}.{kind.__qualname__} at "
                f"position {index}; a list may hold numbers, bools, strings, None and lists "
                "(or only waddle data types)"
            )
    return out


def _numpy_scalar(key: str, value: Any) -> Any:
    import numpy

    if isinstance(value, numpy.ndarray):
        value = value[()]
    if not isinstance(value, numpy.generic):
        raise TypeError(
            f"log() value for {key!r} has unsupported type numpy.{type(value).__name__}"
        )
    kind = value.dtype.kind
    if kind == "u" and value > _INT_MAX:
        raise ValueError(
            f"log() value for {key!r} is an integer outside the signed 64-bit range: {value}"
        )
    if kind in "fiub":
        return value  # numpy scalars are immutable; orjson encodes them directly
    if kind in "US":
        return check_text(f"log() value for {key!r}", str(value))
    raise TypeError(f"log() value for {key!r} is a numpy {value.dtype} scalar; log a real number")
