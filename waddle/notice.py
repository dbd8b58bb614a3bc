"""Notices: one-line messages to the user on stderr, each kind shown a bounded number of times.

Background failures never raise into training code; they become a notice instead (see the
error policy in README). Notices go to the process's real stderr, past console capture, so a
message about a failing log folder is not itself queued for that folder.
"""

from __future__ import annotations

import sys


class Notices:
    """Per-run notice counter: ``show(kind, text)`` prints at most ``limit`` times per kind."""

    def __init__(self, limit: int = 1) -> None:
        self._limit = limit
        self._shown: dict[str, int] = {}

    def show(self, kind: str, text: str, limit: int | None = None) -> bool:
        # No lock: the writer thread and the caller's (interruptible) thread both show notices,
        # and a lock an interrupt left held would silence the writer forever. Two threads
        # racing past the count at once may each print: harmless.
        count = self._shown.get(kind, 0)
        if count >= (self._limit if limit is None else limit):
            return False
        self._shown[kind] = count + 1
        say(text)
        return True


def say(text: str) -> None:
    _term(text, newline=True, prefix=True, level="")


def termlog(
    string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True
) -> None:
    """W&B's ``termlog``: one line for the user on stderr, prefixed ``waddle:``."""
    _term(string, newline, prefix, "")


def termwarn(
    string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True
) -> None:
    _term(string, newline, prefix, "warning: ")


def termerror(
    string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True
) -> None:
    _term(string, newline, prefix, "error: ")


def _term(string: str, newline: bool, prefix: bool, level: str) -> None:
    stream = sys.__stderr__ or sys.stderr
    try:
        stream.write(f"{'waddle: ' if prefix else ''}{level}{string}{chr(10) if newline else ''}")
        stream.flush()
    except (OSError, ValueError):
        pass
