"""The watcher reports run folders' news through inotify, new projects included, and never
watches the server's own folder (.waddle/: the index and readers' caches)."""

from __future__ import annotations

from pathlib import Path

from waddle.server import watcher as watcher_module
from waddle.server.watcher import Watcher

from tests.conftest import wait_until


def test_a_project_made_after_the_start_is_watched_and_waddle_folder_never(tmp_path, monkeypatch):
    monkeypatch.setattr(watcher_module, "SAFETY_POLL_INTERVAL", 3600.0)  # inotify alone
    (tmp_path / "old" / "r1").mkdir(parents=True)
    (tmp_path / ".waddle" / "history").mkdir(parents=True)
    marks: list[tuple[str, str | None]] = []
    watcher = Watcher(tmp_path, lambda project, run: marks.append((project, run)))
    watcher.start()
    try:
        assert watcher.using == "inotify"
        (tmp_path / "new" / "r2").mkdir(parents=True)  # a project made while it watches
        wait_until(lambda: ("new", None) in marks)
        (tmp_path / "new" / "r2" / "000000.jsonl").write_bytes(b"{}\n")
        wait_until(lambda: ("new", "r2") in marks)
        (tmp_path / "old" / "r1" / "000000.jsonl").write_bytes(b"{}\n")
        wait_until(lambda: ("old", "r1") in marks)
        watched = {Path(emitter.watch.path) for emitter in watcher._observer.emitters}
        assert watched == {tmp_path, tmp_path / "old", tmp_path / "new"}
    finally:
        watcher.stop()
