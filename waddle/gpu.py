"""NVIDIA GPUs through NVML, when a GPU answers.

The ``pynvml`` module (from the nvidia-ml-py package) is imported only here and only when first
needed. No module, no driver, or no device means no GPU facts and no GPU metrics, never an
error: every function returns an empty result instead.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

_lock = threading.Lock()
_nvml: Any = None  # the pynvml module once initialised; False once known to be unavailable


def _driver() -> Any:
    """The initialised pynvml module, or None when no GPU answers."""
    global _nvml
    with _lock:
        if _nvml is None:
            try:
                import pynvml

                pynvml.nvmlInit()
                _nvml = pynvml if pynvml.nvmlDeviceGetCount() > 0 else False
            except Exception:  # ImportError, NVMLError_LibraryNotFound, driver errors, ...
                _nvml = False
        return _nvml or None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def gpu_inventory() -> list[dict[str, Any]]:
    """Each GPU's index, name and total memory in bytes."""
    nvml = _driver()
    if nvml is None:
        return []
    gpus = []
    try:
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            gpus.append(
                {
                    "index": index,
                    "name": _text(nvml.nvmlDeviceGetName(handle)),
                    "memory_total": int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
                }
            )
    except Exception:
        return gpus
    return gpus


def gpu_metrics() -> dict[str, float]:
    """Per GPU: utilisation %, memory used (bytes and %), temperature °C and power W."""
    nvml = _driver()
    if nvml is None:
        return {}
    metrics: dict[str, float] = {}
    try:
        count = nvml.nvmlDeviceGetCount()
    except Exception:
        return metrics
    for index in range(count):
        prefix = f"gpu/{index}/"
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
        except Exception:
            continue
        # Each reading on its own: a GPU without a power sensor still reports the rest.
        with contextlib.suppress(Exception):
            metrics[prefix + "utilization"] = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        try:
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            metrics[prefix + "memory_used"] = float(memory.used)
            metrics[prefix + "memory_percent"] = 100.0 * memory.used / memory.total
        except Exception:
            pass
        with contextlib.suppress(Exception):
            metrics[prefix + "temperature"] = float(
                nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
            )
        with contextlib.suppress(Exception):
            metrics[prefix + "power"] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
    return metrics
