"""Console capture: a copy of what the program prints to ``sys.stdout`` and ``sys.stderr``.

While at least one run captures, both streams are wrapped by a :class:`Tee` that writes
everything through to the real stream first (the user sees their output unchanged) and hands
each completed line to every capturing run. Carriage returns are resolved the way a terminal
shows them, so a progress bar redrawn a thousand times becomes the one line left on screen,
not a thousand lines. Output written below Python (by C code straight to the file descriptor)
is not captured.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

Sink = Callable[[str, str], None]  # (stream name, text of whole lines)

# A partial line (no newline yet) longer than this is handed over as it is.
MAX_PARTIAL = 64 * 1024

_lock = threading.RLock()
_sinks: list[Sink] = []
_tees: dict[str, Tee] = {}


def visible_line(line: str) -> str:
    """What a terminal shows for a line containing carriage returns."""
    line = line.rstrip("\r")
    cut = line.rfind("\r")
    return line if cut < 0 else line[cut + 1 :]


class Tee:
    def __init__(self, name: str, original: Any) -> None:
        self._name = name
        self._original = original
        self._partial = ""

    def write(self, text: str) -> int:
        written = self._original.write(text)
        if _sinks and isinstance(text, str) and text:
            self._capture(text)
        return written

    def _capture(self, text: str) -> None:
        with _lock:
            text = self._partial + text
            cut = text.rfind("\n")
            if cut < 0:
                self._partial = visible_line(text) if "\r" in text else text
                if len(self._partial) > MAX_PARTIAL:
                    self._emit(self._partial)
                    self._partial = ""
                return
            complete, self._partial = text[: cut + 1], text[cut + 1 :]
            if "\r" in complete:
                complete = "".join(visible_line(line) + "\n" for line in complete[:-1].split("\n"))
            if "\r" in self._partial:
                self._partial = visible_line(self._partial)
            self._emit(complete)

    def _emit(self, text: str) -> None:
        for sink in list(_sinks):
            sink(self._name, text)

    def flush_partial(self) -> None:
        with _lock:
            if self._partial:
                self._emit(self._partial + "\n")
                self._partial = ""

    def flush(self) -> None:
        self._original.flush()

    def __getattr__(self, name: str) -> Any:
        # isatty(), fileno(), encoding, buffer, ...: whatever the real stream has.
        return getattr(self._original, name)


def attach(sink: Sink) -> None:
    """Start sending console lines to ``sink``; wraps the streams on first use."""
    with _lock:
        for name in ("stdout", "stderr"):
            original = getattr(sys, name)
            if name not in _tees and original is not None:
                tee = Tee(name, original)
                _tees[name] = tee
                setattr(sys, name, tee)
        _sinks.append(sink)


def detach(sink: Sink) -> None:
    """Stop sending to ``sink``, first handing it any unfinished line; unwrap when none is left."""
    with _lock:
        if sink not in _sinks:
            return
        for tee in _tees.values():
            tee.flush_partial()
        _sinks.remove(sink)
        if not _sinks:
            for name, tee in list(_tees.items()):
                # Only undo our own wrapping: if someone wrapped the stream after us, our tee
                # stays in their chain and is reused (it captures nothing while no run listens).
                if getattr(sys, name) is tee:
                    setattr(sys, name, tee._original)
                    del _tees[name]


def forget_all() -> None:
    """In a forked child: capture nothing more for the parent's runs."""
    global _lock
    _lock = threading.RLock()  # another thread of the parent may have held the old one
    _sinks.clear()
