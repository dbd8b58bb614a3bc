"""The copier: a run's background thread that stores files, beside its writer thread.

Copying and hashing a file can take minutes (a checkpoint or a dataset of many gigabytes).
Done on the writer thread, it would hold back every event queued behind it: no heartbeat
would be written (the run would look crashed), nothing logged meanwhile would reach disk,
and ``log()`` would wait once the queue filled. So a run hands each ``log_artifact()`` and
``save()`` to this thread instead (started by the first one), which does them one after
another, in call order, and then queues each one's event (``artifact``, ``file``) for the
writer. It promises:

- nothing on the caller's side takes a lock (waddle/wakeup.py), as for the writer;
- a job that fails (a file changed, a full disk) never reaches the training code: one notice
  per kind of failure, and a count the run adds to ``finish.lost_values``;
- :meth:`Copier.finish` returns once every job submitted before it is done, so a run's finish
  event comes after the events of all its artifacts (and ``run.flush()`` waits until it is
  :meth:`Copier.idle`).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from waddle.notice import Notices
from waddle.wakeup import Wakeup

# A job: (wall time of the call, the event's type, store(run_dir) -> the event's fields).
Job = tuple[float, str, Callable[[Path], dict[str, Any]]]


class Copier:
    def __init__(
        self,
        run_dir: Path,
        deliver: Callable[[float, str, dict[str, Any]], None],
        notices: Notices,
    ) -> None:
        self.run_dir = run_dir
        self.lost = 0  # jobs that failed; written by this thread only
        self.progress = Wakeup()  # set after each job
        self._deliver = deliver
        self._notices = notices
        self._jobs: deque[Job | None] = deque()  # None: the end
        self._wake = Wakeup()
        self._busy = False  # a job is taken and not done
        self.thread = threading.Thread(target=self._main, name="waddle-copier", daemon=True)
        self.thread.start()

    def submit(self, t: float, kind: str, store: Callable[[Path], dict[str, Any]]) -> None:
        self._jobs.append((t, kind, store))
        self._wake.set()

    def idle(self) -> bool:
        return not self._jobs and not self._busy

    def wait(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``done()`` or the thread ends or ``timeout`` passes; ``done()``."""
        deadline = time.monotonic() + timeout
        while not done() and self.thread.is_alive():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.progress.wait(min(remaining, 0.05))
        return done()

    def finish(self) -> None:
        """Do every job submitted so far, then end the thread."""
        self._jobs.append(None)
        self._wake.set()
        waited = 0.0
        while self.thread.is_alive():
            self.thread.join(10.0)
            waited += 10.0
            if self.thread.is_alive():
                self._notices.show(
                    "copier-slow",
                    f"still storing saved files and artifacts of {self.run_dir} after {waited:.0f} s...",
                )
        self.close()

    def close(self) -> None:
        self._wake.close()
        self.progress.close()

    def _main(self) -> None:
        while True:
            if not self._jobs:
                self._wake.wait(1.0)
                continue
            self._busy = True
            job = self._jobs.popleft()
            if job is None:
                self._busy = False
                return
            t, kind, store = job
            try:
                self._deliver(t, kind, store(self.run_dir))
            except Exception as error:  # a failed job never stops the others
                self.lost += 1
                what = "an artifact" if kind == "artifact" else "a saved file"
                self._notices.show(
                    f"copier-{kind}-{type(error).__name__}",
                    f"{what} could not be stored: {error}",
                    limit=3,
                )
            except BaseException:  # a bug here must not pass silently
                self.lost += 1
                self._notices.show("copier", "the copier failed:\n" + traceback.format_exc())
            finally:
                self._busy = False
                self.progress.set()
