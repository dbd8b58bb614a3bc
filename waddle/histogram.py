"""``waddle.Histogram``: the distribution of many values, binned in the writer thread.

The constructor (caller's thread) only copies and checks: real numbers, not empty, at least
one finite value (checked in O(1) unless the first value is NaN or infinite; for a torch
tensor, which is only cloned on its device there, this check runs in the writer thread), and
1..512 bins. The writer thread counts NaN, +Inf and -Inf apart, bins the finite values
evenly between their min and max, and takes count, min, max, mean and std of the finite values.
A histogram is small, so it lives inline in the ``log`` event (docs/format.md, "Rich values").
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from waddle import media

WHAT = "waddle.Histogram"
MAX_BINS = 512
_CHUNK = 1 << 16


class Histogram:
    """A histogram to log: ``run.log({"grads": waddle.Histogram(values, num_bins=64)})``.

    ``sequence``: a numpy array, torch tensor or list of numbers (any shape; flattened). Or
    ``np_histogram=(counts, edges)`` as ``numpy.histogram`` returns it.
    """

    def __init__(self, sequence: Any = None, np_histogram: Any = None, num_bins: int = 64) -> None:
        if isinstance(num_bins, bool) or not hasattr(num_bins, "__index__"):
            raise TypeError(f"{WHAT}: num_bins must be an integer, not {num_bins!r}")
        num_bins = num_bins.__index__()
        if not 1 <= num_bins <= MAX_BINS:
            raise ValueError(f"{WHAT}: num_bins must be 1..{MAX_BINS}, not {num_bins}")
        self.num_bins = num_bins
        self._values: Any = None
        self._ready: Any = None  # for a CUDA tensor: whether its copy is made
        self._precomputed: dict[str, Any] | None = None
        if (sequence is None) == (np_histogram is None):
            raise TypeError(
                f"{WHAT}: pass either a sequence of values or np_histogram=(counts, edges)"
            )
        if np_histogram is not None:
            self._precomputed = _precomputed(np_histogram)
            return
        if media.is_torch(sequence):
            media.check_real(WHAT, sequence.dtype, tuple(sequence.shape))
            self._values, self._ready = media.device_copy(sequence)
            return
        values = _SPARES.copy(sequence)
        if values is None:
            values = media.as_array(WHAT, sequence)
        if values.dtype.kind == "f" and not math.isfinite(values.flat[0]):
            _require_finite(values)
        self._values = values

    def _waddle_snapshot(self, key: str) -> media.Snapshot:
        return media.Snapshot(self._store, self._ready)

    def _store(self, run_dir: Path) -> dict[str, Any]:
        if self._precomputed is None:  # bin once, however often this object is logged
            self._precomputed = bin_values(self._values, self.num_bins)
            _SPARES.give(self._values)
            self._values = None
        return dict(self._precomputed)

    def __repr__(self) -> str:
        return f"<waddle.Histogram num_bins={self.num_bins}>"


class _SpareArrays:
    """Copies the writer thread has finished binning, reused for the next histogram's copy.

    Copying a million values into fresh memory costs the caller ~1.7 ms of page faults; into
    memory already touched, ~0.2 ms. Only large numpy inputs take part, and the pool holds at
    most ``limit`` bytes.
    """

    def __init__(self, smallest: int = 256 * 1024, limit: int = 64 << 20) -> None:
        # No lock: the caller's thread takes spares and the writer's gives them back, and a
        # lock an interrupt left held on the caller's side would stop the writer for good.
        # Each list operation is atomic; a race at worst allocates a fresh array.
        self._arrays: list[Any] = []
        self._smallest = smallest
        self._limit = limit

    def copy(self, data: Any) -> Any:
        """A private flat copy of a large numpy array, in a spare if one fits; else None."""
        if (
            type(data).__module__ != "numpy"
            or not hasattr(data, "nbytes")
            or data.nbytes < self._smallest
        ):
            return None
        import numpy as np

        media.check_real(WHAT, data.dtype, data.shape)
        spare = next(
            (a for a in list(self._arrays) if a.dtype == data.dtype and a.size == data.size), None
        )
        if spare is not None:
            try:
                self._arrays.remove(spare)
            except ValueError:  # another thread took it first
                spare = None
        if spare is None:
            spare = np.empty(data.size, dtype=data.dtype)
        np.copyto(spare.reshape(data.shape), data)
        return spare

    def give(self, array: Any) -> None:
        if (
            type(array).__module__ != "numpy"
            or array.nbytes < self._smallest
            or array.base is not None
        ):
            return
        if sum(a.nbytes for a in list(self._arrays)) + array.nbytes <= self._limit:
            self._arrays.append(array)


_SPARES = _SpareArrays()


def bin_values(values: Any, num_bins: int) -> dict[str, Any]:
    """The stored histogram of ``values`` (writer thread)."""
    import numpy as np

    if media.is_torch(values):
        tensor = values.detach().cpu()
        if tensor.dtype.is_floating_point and tensor.dtype not in _numpy_floats():
            tensor = tensor.float()  # bfloat16 has no numpy dtype
        values = tensor.numpy()
    values = values.ravel()
    if values.dtype.kind == "b":
        values = values.astype(np.uint8)
    nan = posinf = neginf = 0
    if values.dtype.kind == "f":
        finite = np.isfinite(values)
        if not finite.all():
            nan = int(np.count_nonzero(np.isnan(values)))
            posinf = int(np.count_nonzero(values == np.inf))
            neginf = int(np.count_nonzero(values == -np.inf))
            values = values[finite]
            if values.size == 0:
                _require_finite(values)
    low, high = values.min(), values.max()
    span = (float(low), float(high))
    counts = np.zeros(num_bins, dtype=np.int64)
    for start in range(0, values.size, _CHUNK):
        # Binning in chunks, handing the GIL back after each, keeps the training thread's
        # log() calls from waiting behind one long numpy call; every chunk uses the same edges.
        counts += np.histogram(values[start : start + _CHUNK], bins=num_bins, range=span)[0]
        time.sleep(0)
    edges = np.histogram_bin_edges(values[:1], bins=num_bins, range=span)
    return {
        "_type": "histogram",
        "bins": edges.astype(np.float64).tolist(),
        "counts": counts.tolist(),
        "count": int(values.size),
        "min": low.item(),
        "max": high.item(),
        "mean": float(values.mean(dtype=np.float64)),
        "std": float(values.std(dtype=np.float64)),
        "nan": nan,
        "posinf": posinf,
        "neginf": neginf,
    }


def _numpy_floats() -> tuple:
    import torch

    return (torch.float16, torch.float32, torch.float64)


def _require_finite(values: Any) -> None:
    import numpy as np

    if not np.isfinite(values).any():
        raise ValueError(
            f"{WHAT}: all {values.size} values are NaN or infinite; there is nothing to bin"
        )


def _precomputed(np_histogram: Any) -> dict[str, Any]:
    import numpy as np

    try:
        counts, edges = np_histogram
    except (TypeError, ValueError):
        raise TypeError(f"{WHAT}: np_histogram must be a pair (counts, edges)") from None
    counts = media.as_array(f"{WHAT} counts", counts).astype(np.float64)
    edges = media.as_array(f"{WHAT} edges", edges).astype(np.float64)
    if counts.ndim != 1 or edges.ndim != 1 or edges.size != counts.size + 1:
        raise ValueError(
            f"{WHAT}: np_histogram needs n counts and n + 1 edges, got shapes "
            f"{counts.shape} and {edges.shape}"
        )
    if counts.size > MAX_BINS:
        raise ValueError(f"{WHAT}: {counts.size} bins is more than {MAX_BINS}")
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError(f"{WHAT}: np_histogram counts must be finite and not negative")
    if not np.isfinite(edges).all() or not (np.diff(edges) > 0).all():
        raise ValueError(f"{WHAT}: np_histogram edges must be finite and increasing")
    integral = bool((counts == np.round(counts)).all())
    counts_list = counts.astype(np.int64).tolist() if integral else counts.tolist()
    return {
        "_type": "histogram",
        "bins": edges.tolist(),
        "counts": counts_list,
        "count": int(counts.sum()) if integral else float(counts.sum()),
        "min": None,
        "max": None,
        "mean": None,
        "std": None,
        "nan": 0,
        "posinf": 0,
        "neginf": 0,
    }
