"""Catch-up progress: what a server or a reindex is doing while it reads a large folder.

A :class:`CatchUp` follows one catch-up (the first pass over the log folder when ``waddle
serve`` starts, or the whole of ``waddle reindex``) and promises a line at most once a second
while it lasts (runs done, events, points per second and the time left), then one line when it
is done; a catch-up shorter than a second prints only that last line.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from waddle.server.notices import Notices


class CatchUp:
    def __init__(
        self,
        notices: Notices,
        runs: int,
        total_bytes: int,
        clock: Callable[[], float] = time.monotonic,
        every: float = 1.0,
    ) -> None:
        """Catching up on ``runs`` runs holding ``total_bytes`` bytes not indexed yet."""
        self.notices, self.runs, self.total_bytes = notices, runs, total_bytes
        self.clock, self.every = clock, every
        self.started = self.last = clock()

    def update(self, runs_done: int, events: int, points: int, bytes_done: int) -> None:
        """Where the catch-up stands (counts since it began); a line if a second has passed."""
        now = self.clock()
        if now - self.last < self.every:
            return
        self.last = now
        elapsed = now - self.started
        left = "?"
        if bytes_done:
            seconds = max(0.0, self.total_bytes - bytes_done) * elapsed / bytes_done
            left = f"about {_duration(seconds)} left"
        self.notices.say(
            f"catching up: {runs_done:,} of {self.runs:,} runs, {events:,} events, "
            f"{_rate(points, elapsed)} points/s, {left}"
        )

    def done(self, runs_done: int, events: int, points: int, failing: int = 0) -> None:
        elapsed = self.clock() - self.started
        failed = f" ({failing:,} failing, retried: see above)" if failing else ""
        self.notices.say(
            f"caught up: {runs_done:,} of {self.runs:,} runs{failed}, {events:,} events, "
            f"{points:,} points in {elapsed:.1f} s ({_rate(points, elapsed)} points/s)"
        )


def _rate(points: int, seconds: float) -> str:
    per_second = points / seconds if seconds > 0 else 0.0
    return f"{per_second / 1e6:.2f} M" if per_second >= 1e5 else f"{per_second:,.0f}"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"
