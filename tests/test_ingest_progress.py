"""Catch-up progress: a line at most once a second while a large folder is read (runs, events,
points/s, time left), and one when caught up, for `waddle serve` and `waddle reindex`."""

from __future__ import annotations

import orjson
from waddle.server.notices import Notices
from waddle.server.progress import CatchUp

from tests.conftest import wait_until
from tests.server_helpers import serving
from tests.test_cli import waddle


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_at_most_once_a_second_then_one_when_caught_up(capsys):
    clock = Clock()
    progress = CatchUp(Notices("waddle serve"), runs=10, total_bytes=1000, clock=clock)
    for at, done in ((0.5, 100), (1.0, 250), (1.6, 400), (2.0, 500), (2.9, 700)):
        clock.now = 100.0 + at
        progress.update(runs_done=done // 100, events=done * 3, points=done * 30_000,
                        bytes_done=done)  # fmt: skip
    clock.now = 104.0
    progress.done(runs_done=10, events=3000, points=30_000_000)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "waddle serve: catching up: 2 of 10 runs, 750 events, 7.50 M points/s, about 3 s left",
        "waddle serve: catching up: 5 of 10 runs, 1,500 events, 7.50 M points/s, about 2 s left",
        "waddle serve: caught up: 10 of 10 runs, 3,000 events, 30,000,000 points in 4.0 s"
        " (7.50 M points/s)",
    ]


def _folder(root, runs=3, steps=50):
    for r in range(runs):
        run_dir = root / "p" / f"r{r}"
        run_dir.mkdir(parents=True)
        lines = [{"v": 1, "seq": 0, "t": 1.0e9, "type": "run_start", "name": f"r{r}"}]
        lines += [
            {"v": 1, "seq": i + 1, "t": 1.0e9, "type": "log", "step": i, "data": {"x": 1.0}}
            for i in range(steps)
        ]
        (run_dir / "events-000000000000.jsonl").write_bytes(
            b"".join(orjson.dumps(line) + b"\n" for line in lines)
        )


def test_serve_says_when_it_has_caught_up(tmp_path, capfd):
    _folder(tmp_path)
    said: list[str] = []
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        wait_until(lambda: said.extend(capfd.readouterr().err.splitlines()) or said)
    (line,) = [line for line in said if "caught up" in line]
    assert line.startswith("waddle serve: caught up: 3 of 3 runs, 153 events, 150 points in ")


def test_reindex_says_when_it_has_caught_up(tmp_path):
    _folder(tmp_path)
    done = waddle("reindex", str(tmp_path))
    assert done.returncode == 0, done.stderr
    *during, line = done.stderr.splitlines()  # on a busy machine it may take over a second
    assert all(said.startswith("waddle reindex: catching up: ") for said in during)
    assert line.startswith("waddle reindex: caught up: 3 of 3 runs, 153 events, 150 points in ")
