"""The server's error policy and its voice: one-line notices on stderr, and background faults.

A background failure (the indexer reading a run or committing, compaction, the watcher, the
live hub) never stops the server and never goes by unseen. Each is reported here as a fault of
a kind, which promises:

- the first fault of a kind is printed as one line, saying what failed and what to do; later
  ones of that kind are counted, not printed (a retry loop would flood the terminal);
- every kind keeps its count, its last message and time, and whether it is still failing
  (``active``: its owner retries it and clears it once it works again), for ``/api/health``;
- the owner retries: a fault is never the end of the thread that met it.

Other lines the server has for its user (progress, the first reject of a file) go through
:meth:`Notices.say`, so that every line of one command carries its name.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Fault:
    kind: str
    message: str
    fix: str
    t: float
    count: int = 1
    active: bool = True


class Notices:
    """The notices and faults of one server command (``waddle serve``, ``waddle reindex``)."""

    def __init__(self, command: str = "waddle serve") -> None:
        self.command = command
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        """Print one line on stderr, as this command."""
        try:
            sys.stderr.write(f"{self.command}: {text}\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # stderr closed or gone: nothing better to do
            pass

    def fault(self, kind: str, message: str, fix: str, active: bool = True) -> None:
        """Count a fault of ``kind``; the first of its kind is printed with ``fix``."""
        with self._lock:
            fault = self._faults.get(kind)
            first = fault is None
            if first:
                self._faults[kind] = Fault(kind, message, fix, time.time(), active=active)
            else:
                fault.message, fault.fix, fault.t = message, fix, time.time()
                fault.count += 1
                fault.active = active
        if first:
            self.say(f"{message}; {fix} (more of these are counted in /api/health)")

    def resolve(self, kind: str) -> None:
        """``kind`` works again (its count and last message stay)."""
        with self._lock:
            fault = self._faults.get(kind)
            if fault is not None:
                fault.active = False

    def active(self) -> list[str]:
        with self._lock:
            return [kind for kind, fault in self._faults.items() if fault.active]

    def last(self, kinds: tuple[str, ...]) -> dict[str, Any] | None:
        """The newest fault of one of ``kinds``, as a dict, or None."""
        with self._lock:
            faults = [fault for kind, fault in self._faults.items() if kind in kinds]
            return asdict(max(faults, key=lambda fault: fault.t)) if faults else None

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(fault) for fault in self._faults.values()]
