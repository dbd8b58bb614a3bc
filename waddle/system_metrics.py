"""System metrics: CPU, memory, disk and network from psutil, GPUs from NVML when present.

The writer thread calls :meth:`SystemSampler.sample` on its own schedule; a sample is a flat
``{name: number}`` dict. CPU percentages and rates (disk and network bytes per second) are
measured between two readings, so a sample taken right after the previous one (the first, at a
run's start) has none. Sampling never raises.
"""

from __future__ import annotations

import os
import time
from typing import Any

from waddle.gpu import gpu_metrics

# Seconds between two readings below which CPU percentages and rates mean nothing.
MIN_ELAPSED = 0.02


class SystemSampler:
    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process(os.getpid())
        # cpu_percent() measures since the previous call: prime both counters now.
        psutil.cpu_percent(None)
        self._process.cpu_percent(None)
        self._last_time = time.monotonic()
        self._last_disk = self._counters(psutil.disk_io_counters)
        self._last_net = self._counters(psutil.net_io_counters)

    @staticmethod
    def _counters(read: Any) -> Any:
        try:
            return read()
        except Exception:  # unavailable in some containers
            return None

    def sample(self) -> dict[str, float]:
        psutil = self._psutil
        metrics: dict[str, float] = {}
        now = time.monotonic()
        elapsed = now - self._last_time
        measured = elapsed >= MIN_ELAPSED  # long enough since the last reading for rates
        try:
            if measured:
                metrics["cpu/percent"] = psutil.cpu_percent(None)
                metrics["proc/cpu_percent"] = self._process.cpu_percent(None)
            metrics["proc/rss"] = float(self._process.memory_info().rss)
            metrics["proc/threads"] = float(self._process.num_threads())
            memory = psutil.virtual_memory()
            metrics["memory/used"] = float(memory.total - memory.available)
            metrics["memory/percent"] = memory.percent
        except Exception:
            pass
        if not measured:
            metrics.update(gpu_metrics())
            return metrics
        self._last_time = now
        disk = self._counters(psutil.disk_io_counters)
        if disk is not None and self._last_disk is not None:
            metrics["disk/read_bytes_per_s"] = (
                disk.read_bytes - self._last_disk.read_bytes
            ) / elapsed
            metrics["disk/write_bytes_per_s"] = (
                disk.write_bytes - self._last_disk.write_bytes
            ) / elapsed
        self._last_disk = disk
        net = self._counters(psutil.net_io_counters)
        if net is not None and self._last_net is not None:
            metrics["net/sent_bytes_per_s"] = (net.bytes_sent - self._last_net.bytes_sent) / elapsed
            metrics["net/recv_bytes_per_s"] = (net.bytes_recv - self._last_net.bytes_recv) / elapsed
        self._last_net = net
        metrics.update(gpu_metrics())
        return metrics
