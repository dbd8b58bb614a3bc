"""The watcher reports run folders' news through inotify, new projects included, and never
watches the server's own folder (.waddle/: the index and readers' caches)."""

from __future__ import annotations

import math
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


def test_a_poll_reports_the_runs_whose_segments_or_ranks_segments_changed_and_nothing_else(
    tmp_path,
):
    """The safety poll (and the watcher where inotify is missing) sees appends to a run's
    segments and its ranks' segments; other files, folders not a rank's and symlinked
    segments (which could lead out of the log folder) are none of its business."""
    run = tmp_path / "p" / "r"
    rank = run / "ranks" / "1"
    not_a_rank = run / "ranks" / "01"
    for folder in (rank, not_a_rank):
        folder.mkdir(parents=True)
    segments = [folder / "events-000000000000.jsonl" for folder in (run, rank, not_a_rank)]
    for path in segments:
        path.write_bytes(b"{}\n")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.jsonl"
    outside.write_bytes(b"{}\n")
    (run / "events-000000000001.jsonl").symlink_to(outside)
    marks: list[tuple[str, str | None]] = []
    watcher = Watcher(tmp_path, lambda project, run_id: marks.append((project, run_id)))

    watcher._poll()
    assert set(marks) == {("p", "r")}
    assert sorted(watcher._state[("p", "r")]) == sorted(str(path) for path in segments[:2])
    for change in (
        lambda: outside.write_bytes(b"{}\n{}\n"),
        lambda: (run / "notes.txt").write_text("not a segment"),
        lambda: segments[2].write_bytes(b"{}\n{}\n"),
    ):
        marks.clear()
        change()
        watcher._poll()
        assert marks == []
    for path in segments[:2]:
        marks.clear()
        with path.open("ab") as file:
            file.write(b"{}\n")
        watcher._poll()
        assert marks == [("p", "r")]


def test_the_safety_poll_costs_what_is_live_and_still_finds_every_change(tmp_path, monkeypatch):
    """Beside inotify, a safety poll looks at a share of the idle runs (each within a sweep),
    at every poll the runs that changed lately or that inotify reported, and new and vanished
    run folders at once: its cost follows what is live, not the archive."""
    for i in range(24):
        (tmp_path / "p" / f"r{i:02d}").mkdir(parents=True)
        (tmp_path / "p" / f"r{i:02d}" / "events-000000000000.jsonl").write_bytes(b"{}\n")
    marks: list[tuple[str, str | None]] = []
    watcher = Watcher(tmp_path, lambda project, run: marks.append((project, run)))
    watcher._projects.add("p")  # as if inotify watched it
    watcher._poll(news=False)  # the first look, at everything (as start() does)
    looked: list[str] = []
    note = watcher_module._note_segments

    def spy(folder, seen, with_ranks):
        looked.append(Path(folder).name)
        note(folder, seen, with_ranks)

    monkeypatch.setattr(watcher_module, "_note_segments", spy)

    def poll():
        marks.clear()
        looked.clear()
        watcher._poll(everything=False)

    share = math.ceil(24 * watcher_module.SAFETY_POLL_INTERVAL / watcher_module.SAFETY_SWEEP)
    poll()
    assert len(looked) == share and marks == []
    # An idle run's append is found within a sweep...
    with (tmp_path / "p" / "r17" / "events-000000000000.jsonl").open("ab") as file:
        file.write(b"{}\n")
    sweep = math.ceil(watcher_module.SAFETY_SWEEP / watcher_module.SAFETY_POLL_INTERVAL)
    for _ in range(sweep):
        poll()
        if marks:
            break
    assert marks == [("p", "r17")]
    # ... and from then on the run is looked at by every poll, as is one inotify reported.
    watcher._heard("p", "r03")
    poll()
    assert {"r17", "r03"} <= set(looked) and len(looked) == share + 2
    # A new run and a vanished one are reported at the next poll.
    (tmp_path / "p" / "new").mkdir()
    (tmp_path / "p" / "new" / "events-000000000000.jsonl").write_bytes(b"{}\n")
    for path in (tmp_path / "p" / "r05").iterdir():
        path.unlink()
    (tmp_path / "p" / "r05").rmdir()
    poll()
    assert sorted(marks) == [("p", "new"), ("p", "r05")]
    # A project inotify does not watch is looked at whole, every time.
    watcher._projects.discard("p")
    poll()
    assert len(looked) == 24
