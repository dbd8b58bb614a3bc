"""Process hooks: the open runs of this process and what happens to them when the process ends.

Every way a training process ends drains each open run's queue and writes its finish event:

- ``run.finish()`` or leaving ``with waddle.init(...)``: as the caller says;
- normal interpreter exit: atexit finishes each run as "finished" (exit code 0), or "crashed"
  when an uncaught exception was seen first, with its traceback;
- SIGTERM: each run is finished as "crashed" (exit code 143), then the previous handler runs,
  or, if it was the default, the signal is raised again so the process still dies of it;
- SIGINT: each run's writer is asked to write and fsync what is queued (without waiting: a
  signal handler must never wait on another thread), then Python's handler raises
  KeyboardInterrupt as usual, and the exit path finishes the runs;
- a child made by fork (DataLoader workers, multiprocessing) forgets the parent's runs: it
  never writes into the parent's files, and its log() calls are no-ops.

Hooks are installed once, on the first run; signal handlers only from the main thread and only
where the program has not set its own handler to "ignore". Nothing here takes a lock: a handler
runs on the main thread between any two bytecodes, possibly inside the code it interrupts, and
the list of open runs is only appended to, removed from and copied, which the GIL keeps whole.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import traceback
from typing import Any

_open_runs: list[Any] = []
_installed = False
_crash: dict[str, Any] | None = None  # the uncaught exception seen by the excepthook
_replaced_handlers: dict[int, Any] = {}  # signal number -> the handler ours replaced


def register(run: Any) -> None:
    _open_runs.append(run)
    _install()


def unregister(run: Any) -> None:
    with contextlib.suppress(ValueError):
        _open_runs.remove(run)


def open_runs() -> list[Any]:
    return list(_open_runs)


def _install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(_at_exit)
    previous_hook = sys.excepthook

    def excepthook(kind: type, value: BaseException, tb: Any) -> None:
        global _crash
        _crash = {
            "reason": kind.__name__,
            "traceback": "".join(traceback.format_exception(kind, value, tb)),
        }
        previous_hook(kind, value, tb)

    sys.excepthook = excepthook
    os.register_at_fork(after_in_child=_forget_in_child)
    if threading.current_thread() is threading.main_thread():
        _wrap_signal(signal.SIGTERM, _on_sigterm)
        _wrap_signal(signal.SIGINT, _on_sigint)


def _wrap_signal(number: int, handler: Any) -> None:
    try:
        previous = signal.getsignal(number)
        if previous in (signal.SIG_IGN, None):
            return
        signal.signal(number, lambda signum, frame: handler(signum, frame, previous))
        _replaced_handlers[number] = previous
    except (ValueError, OSError):  # not the main thread of the main interpreter
        pass


def _on_sigterm(signum: int, frame: Any, previous: Any) -> None:
    for run in open_runs():
        run._finish_from_hook(exit_code=128 + signum, reason="SIGTERM", traceback_text=None)
    if callable(previous):
        previous(signum, frame)
    else:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _on_sigint(signum: int, frame: Any, previous: Any) -> None:
    for run in open_runs():
        run.flush(timeout=0)
    if callable(previous):
        previous(signum, frame)
    else:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _at_exit() -> None:
    crash = _crash
    for run in open_runs():
        if crash is None:
            run._finish_from_hook(exit_code=0, reason=None, traceback_text=None)
        else:
            run._finish_from_hook(
                exit_code=1, reason=crash["reason"], traceback_text=crash["traceback"]
            )


def _forget_in_child() -> None:
    from waddle import console

    runs = list(_open_runs)
    _open_runs.clear()
    for run in runs:
        run._forget_after_fork()
    console.forget_all()
    # The child has no run to finish: give it back the handlers it would have had. A Python
    # handler where the default was also leaves a child blocked in a C call (a worker waiting
    # on its task queue) unable to die of SIGTERM when the signal lands just before the call.
    for number, previous in _replaced_handlers.items():
        with contextlib.suppress(ValueError, OSError, TypeError):
            signal.signal(number, previous)
