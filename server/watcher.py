"""Watching the log folder: which run folders have news for the indexer.

The watcher owns the file-system observation of one log folder. It promises:

- a change to a run folder (a segment appended to or created, the folder created or deleted)
  is reported through ``mark(project, run_id)`` within milliseconds, using one shared watchdog
  (inotify) observer; a project folder's own change is reported as ``mark(project, None)``;
- only project folders are watched, each whole, and the log folder itself without its
  subfolders (a new project is watched as it appears): never ``.waddle/``, where the index and
  the readers' caches change all the time, so they cost no inotify watch and no event;
- where inotify is unavailable or its limits are hit, it says so once (a fault of kind
  ``watcher``, server/notices.py) and polls instead (every ``poll_interval`` seconds); a poll
  that fails is a fault too, retried at the next poll;
- a slow poll runs beside inotify as a safety net, so a missed event costs latency, never data:
  every ``SAFETY_POLL_INTERVAL`` seconds it looks at the runs that changed in the last
  ``RECENT`` seconds (heard of from inotify or found by the poll), the runs of projects
  inotify does not watch, new and vanished run folders, and the next share of the other runs,
  so that each is looked at about every ``SAFETY_SWEEP`` seconds: its cost follows what is
  live, not the size of the archive.

Reports are hints: the indexer always reads a run to the end of its segments, since inotify
merges events.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from waddle.server.notices import Notices
from watchdog import events
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from waddle import names, ranks, segment

Mark = Callable[[str, "str | None"], None]

# Event kinds that mean the folder changed; opens and read-only closes (ours) do not.
CHANGES = frozenset({"created", "modified", "deleted", "moved", "closed"})
# Only those are asked of inotify. Were opens, reads and read-only closes delivered, reading
# thousands of runs (the indexer, the polls, watchdog itself re-listing folders after an
# overflow) would overflow the kernel's queue again and again.
WATCHED = [
    events.DirCreatedEvent,
    events.DirDeletedEvent,
    events.DirModifiedEvent,
    events.DirMovedEvent,
    events.FileClosedEvent,
    events.FileCreatedEvent,
    events.FileDeletedEvent,
    events.FileModifiedEvent,
    events.FileMovedEvent,
]
SAFETY_POLL_INTERVAL = 5.0
SAFETY_SWEEP = 60.0  # seconds in which the safety poll looks at every run at least once
RECENT = 600.0  # seconds a run that changed stays looked at by every safety poll

Run = tuple[str, str]


class Watcher:
    def __init__(
        self,
        root: Path,
        mark: Mark,
        mode: str = "auto",  # checked where it is set (server/settings.py, `watcher`)
        poll_interval: float = 0.5,
        notices: Notices | None = None,
    ) -> None:
        self.root = Path(root)
        self.mark = mark
        self.mode = mode
        self.poll_interval = poll_interval
        self.notices = notices or Notices()
        self.using = "poll"
        self._observer: Observer | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        # Per run folder, its segments' (size, mtime) when the poll last looked.
        self._state: dict[Run, dict[str, tuple[int, int]]] = {}
        self._recent: dict[Run, float] = {}  # run -> when it last changed (monotonic)
        self._recent_lock = threading.Lock()  # inotify's thread adds, the poller's prunes
        self._cursor = 0  # where the safety poll's next share of the runs begins
        self._handler: _Handler | None = None
        self._projects: set[str] = set()  # project folders watched

    def start(self) -> None:
        interval = self.poll_interval
        if self.mode != "poll":
            try:
                observer = Observer()
                self._handler = _Handler(self.root, self._heard, self._watch_project)
                observer.schedule(
                    self._handler, str(self.root), recursive=False, event_filter=WATCHED
                )
                self._observer = observer
                for project in names.folders(self.root):
                    self._watch_project(project)
                observer.start()
            except OSError as error:
                self._observer = None
                if self.mode == "inotify":
                    raise
                self.notices.fault(
                    "watcher",
                    f"cannot watch {self.root} with inotify ({error})",
                    f"polling every {self.poll_interval:g} s instead; raising the limits "
                    "fs.inotify.max_user_watches and max_user_instances (sysctl) brings inotify "
                    "back",
                    active=False,
                )
            else:
                self.using = "inotify"
                interval = SAFETY_POLL_INTERVAL
        self._poll(news=False)  # remember what is there now: the archive, not news
        self._poller = threading.Thread(
            target=self._poll_loop,
            args=(interval, self.using == "poll"),
            name="waddle-poller",
            daemon=True,
        )
        self._poller.start()

    def _watch_project(self, project: str) -> None:
        """Watch the project folder ``project`` whole, once; then report it, for what it got
        before its watch began."""
        observer = self._observer
        if observer is None or project in self._projects:
            return
        try:
            observer.schedule(
                self._handler, str(self.root / project), recursive=True, event_filter=WATCHED
            )
        except OSError as error:  # the limits: the safety poll still finds its runs
            self.notices.fault(
                "watcher",
                f"cannot watch {self.root / project} with inotify ({error})",
                f"its runs are looked at by a poll every {SAFETY_POLL_INTERVAL:g} s; raising "
                "fs.inotify.max_user_watches (sysctl) brings inotify back",
                active=False,
            )
            return
        self._projects.add(project)
        self.mark(project, None)

    def stop(self) -> None:
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
        if self._poller is not None:
            self._poller.join()

    def _heard(self, project: str, run_id: str | None) -> None:
        """inotify's report: passed on, and the run looked at by every safety poll a while."""
        if run_id is not None:
            with self._recent_lock:
                self._recent[(project, run_id)] = time.monotonic()
        self.mark(project, run_id)

    def _poll_loop(self, interval: float, everything: bool) -> None:
        while not self._stop.wait(interval):
            try:
                self._poll(everything)
            except OSError as error:  # a folder vanishing mid-scan; the next pass sees it
                self.notices.fault(
                    "watcher", f"polling {self.root} failed: {error}", "retrying at the next poll"
                )
            else:
                self.notices.resolve("watcher")

    def _poll(self, everything: bool = True, news: bool = True) -> None:
        """Look at the runs' segments and report the runs whose segments changed: all of them
        (the first look, and the only watch where inotify is missing), or those the safety
        poll is due to look at (see the module's docstring). ``news``: what changed counts as
        recent (not so for the first look, which finds the whole archive new)."""
        runs = [
            (project, run_id)
            for project in names.folders(self.root)
            for run_id in names.folders(os.path.join(self.root, project))
        ]
        for run in set(self._state) - set(runs):  # a vanished run folder
            del self._state[run]
            self.mark(*run)
        due = runs if everything else self._due(runs)
        now = time.monotonic()
        for run in due:
            # One listing per folder and paths as strings: with pathlib and a stat per
            # question, looking at 10,000 runs took 0.28 s of a core (now 0.14 s).
            seen: dict[str, tuple[int, int]] = {}
            _note_segments(os.path.join(self.root, *run), seen, with_ranks=True)
            if seen != self._state.get(run, {}):
                if news:
                    with self._recent_lock:
                        self._recent[run] = now
                self.mark(*run)
            self._state[run] = seen

    def _due(self, runs: list[Run]) -> list[Run]:
        """The runs a safety poll looks at: recent ones, new ones, those of projects inotify
        does not watch, and the next share of the rest (every run within SAFETY_SWEEP)."""
        now = time.monotonic()
        with self._recent_lock:
            self._recent = {run: t for run, t in self._recent.items() if now - t < RECENT}
            recent = set(self._recent)
        share = math.ceil(len(runs) * SAFETY_POLL_INTERVAL / SAFETY_SWEEP)
        start = self._cursor % len(runs) if runs else 0
        self._cursor = start + share
        turn = set((runs[start:] + runs[:start])[:share])
        return [
            run
            for run in runs
            if run in turn
            or run in recent
            or run not in self._state
            or run[0] not in self._projects
        ]


def _note_segments(folder: str, seen: dict[str, tuple[int, int]], with_ranks: bool) -> None:
    """Note in ``seen`` the size and mtime of each segment in ``folder`` (a run's, or a rank's
    stream); ``with_ranks``: those of the run's ranks' streams too."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if segment.is_segment(entry):
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            seen[entry.path] = (info.st_size, info.st_mtime_ns)
        elif with_ranks and entry.name == ranks.RANKS_DIR:
            for _, path in ranks.rank_streams(Path(folder)):
                _note_segments(str(path), seen, with_ranks=False)


class _Handler(FileSystemEventHandler):
    def __init__(self, root: Path, mark: Mark, new_project: Callable[[str], None]) -> None:
        self.root = str(root)
        self.mark = mark
        self.new_project = new_project

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in CHANGES:
            return
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if not path:
                continue
            parts = Path(os.fsdecode(os.path.relpath(path, self.root))).parts
            if not parts or parts[0].startswith(".") or parts[0] == "..":
                continue
            if len(parts) == 1 and event.is_directory and names.is_valid(parts[0]):
                self.new_project(parts[0])  # a project folder made or moved in
            self.mark(parts[0], parts[1] if len(parts) > 1 else None)
