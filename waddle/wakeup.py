"""A wake-up call between threads that no interrupt can jam: a non-blocking pipe.

``threading.Event`` takes a lock in ``set()`` and ``wait()``. A KeyboardInterrupt raised in the
main thread just after such a lock was taken leaves it held, and a signal handler that calls
``set()`` on an Event the interrupted code was setting waits for itself forever. A
:class:`Wakeup` is a pipe instead: :meth:`set` is one ``os.write`` (a C call that either happened
or did not), so it is safe on ``log()``'s hot path, from any thread and from a signal handler;
:meth:`wait` is a ``select`` with a timeout. A wake-up may be spurious: waiters recheck their
condition.
"""

from __future__ import annotations

import contextlib
import os
import select


class Wakeup:
    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        # A hint that a byte is on its way, so that callers in a hurry skip the system call.
        self.pending = False

    def set(self) -> None:
        """Wake the waiter (now, or at its next wait). Never blocks, never raises."""
        self.pending = True
        with contextlib.suppress(OSError):  # a full pipe is already a wake-up; closed: nobody waits
            os.write(self._write, b"\0")

    def wait(self, timeout: float) -> bool:
        """Wait until set or ``timeout`` seconds pass; True if set. Clears what it saw."""
        try:
            ready = select.select([self._read], [], [], max(0.0, timeout))[0]
        except (OSError, ValueError):  # closed under us: nothing left to wait for
            return True
        if ready:
            self.pending = False
            with contextlib.suppress(OSError):
                while os.read(self._read, 4096):
                    pass
        return bool(ready)

    def close(self) -> None:
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)
