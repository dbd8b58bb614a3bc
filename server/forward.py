"""The commands that forward runs to a central server, around :class:`~waddle.server.relay.Relay`:
``waddle relay`` (for good), ``waddle sync`` (until acknowledged, then says what it sent) and
the forwarder of one online run (``python -m waddle.server.forward RUN_DIR PID [RANK]``, started
by ``waddle.init(mode="online")``: of a run several ranks share, each rank's forwarder sends its
own stream).

None of them needs the server's extra packages: a training machine forwards with the client's
dependencies alone. Their lines go to stderr as ``waddle relay: …`` (server/notices.py); the
relay's state is said when it changes, and every ``REPORT_EVERY`` seconds while behind.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from waddle.server import tokens
from waddle.server.notices import Notices
from waddle.server.relay import Relay, Scope
from waddle.server.uplink import Uplink

from waddle.settings import Settings

REPORT_EVERY = 30.0
# The forwarder of an online run goes on this long after its training process ended while the
# central server cannot be reached, then leaves the rest to `waddle sync` or a relay.
LINGER = 60.0


def open_relay(
    path: str | Path | None, command: str, scope: Scope | None = None, **given: Any
) -> Relay:
    """A relay of the folder ``path`` (a log folder, a project or a run: ``scope`` says which
    when the folder cannot, a run with no segment yet) from settings given as arguments
    (``to``, ``token``, ``token_file``, ``origin``), else their variables."""
    settings = Settings(
        dir=str(path) if path is not None else None,
        server=given.get("to"),
        token=given.get("token") or None,
        token_file=given.get("token_file"),
        origin=given.get("origin"),
    ).resolve()
    if settings.server is None:
        raise ValueError("say where to relay: --to URL, or set WADDLE_SERVER")
    token = tokens.gather(settings.token or (), (), settings.token_file).first_full()
    if token is None:
        raise ValueError("relaying needs a token: --token, --token-file or WADDLE_TOKEN")
    uplink = Uplink(settings.server, token)
    scope = scope or Scope.of(settings.dir)
    return Relay(scope, uplink, settings.origin, Notices(f"waddle {command}"))


def relay_command(relay: Relay) -> int:
    """Forward until interrupted, saying how it goes."""
    relay.notices.say(
        f"relaying {_where(relay.scope)} to {relay.uplink.url} as origin {relay.origin}"
    )
    relay.start()
    reporter = _Reporter(relay)
    try:
        while True:
            time.sleep(1.0)
            reporter.report()
    except KeyboardInterrupt:
        relay.stop()
        reporter.report(force=True)
        return 130


def sync_command(relay: Relay) -> int:
    """Forward everything there is now; say what was sent. Exit status 1 when a run was
    refused, 130 when interrupted (what was acknowledged is kept for the next sync)."""
    try:
        relay.sync()
    except KeyboardInterrupt:
        relay.notices.say("interrupted; what the central server acknowledged is remembered")
        return 130
    finally:
        relay.close()
    tracks = list(relay.tracks.values())
    sent = [track for track in tracks if track.sent]
    runs = {(track.project, track.run_id) for track in tracks}
    sent_runs = {(track.project, track.run_id) for track in sent}
    status = relay.status()
    # The streams of a run's ranks count apart once any run has more than rank 0's.
    streams = f" ({_count(len(sent), 'rank')})" if any(t.rank for t in tracks) else ""
    line = (
        f"sent {_count(len(sent_runs), 'run')}{streams} to {relay.uplink.url}: "
        f"{_count(relay.totals['events'], 'event')} ({_size(relay.totals['bytes'])}), "
        f"{_count(relay.totals['files'], 'file')} ({_size(relay.totals['file_bytes'])})"
    )
    versions = relay.artifacts.totals["versions"]
    if versions:
        line += (
            f", {_count(versions, 'artifact version')} "
            f"({_count(relay.artifacts.totals['objects'], 'file')}, "
            f"{_size(relay.artifacts.totals['object_bytes'])})"
        )
    there = len(runs - sent_runs - {(t.project, t.run_id) for t in tracks if t.refused})
    if there:
        line += f"; {there} run{'s were' if there != 1 else ' was'} there already"
    if status["skipped_lines"]:
        line += f"; {status['skipped_lines']:,} lines not sent (not events: see waddle ls)"
    print(f"waddle sync: {line}")
    for refused in status["refused"]:
        what = refused.get("run") or f"artifact {refused['artifact']}"
        print(f"waddle sync: {what} not sent: {refused['reason']}", file=sys.stderr)
    return 1 if status["refused"] else 0


class _Reporter:
    """Says the relay's state when it changes, and every REPORT_EVERY seconds while behind."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.said: tuple | None = None
        self.said_at = 0.0

    def report(self, force: bool = False) -> None:
        status = self.relay.status()
        state = status["state"]
        error = (status["last_error"] or {}).get("message") if state == "retrying" else None
        key = (state, error)
        now = time.monotonic()
        if not force and key == self.said and (state == "ok" or now - self.said_at < REPORT_EVERY):
            return
        self.said, self.said_at = key, now
        sent = f"{status['sent_events']:,} events sent"
        if state == "ok":
            text = f"caught up: {_count(status['runs'], 'run')}, {sent}"
        else:
            text = (
                f"behind by about {status['behind_events']:,} events "
                f"({_size(status['behind_bytes'])}), {sent}"
            )
            if error:
                text += f"; retrying in {status['retry_in']:g} s: {error}"
        self.relay.notices.say(text)


def _where(scope: Scope) -> str:
    if scope.run is not None:
        return f"run {scope.project}/{scope.run}"
    if scope.project is not None:
        return f"project {scope.project} of {scope.root}"
    return str(scope.root)


def _count(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _size(count: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:,} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    return str(count)


def forward_online_run(run_dir: str, parent: int, rank: int = 0) -> int:
    """The forwarder of one online run's stream ``rank``: until it finished, or its process
    ``parent`` ended, and all of it is acknowledged (or the central server stayed unreachable
    for LINGER seconds after that)."""
    path = Path(run_dir).absolute()
    try:
        scope = Scope(path.parent.parent, path.parent.name, path.name, rank)
        relay = open_relay(path, "relay", scope=scope)
    except ValueError as error:
        Notices("waddle relay").say(f"not relaying {run_dir}: {error}")
        return 1
    ended_at: list[float] = []

    def going_on() -> bool:
        tracks = relay.tracks.values()
        finished = bool(tracks) and all(track.finished for track in tracks)
        if os.getppid() == parent and _alive(parent) and not finished:
            return True
        if not ended_at:
            ended_at.append(time.monotonic())
        if time.monotonic() - ended_at[0] > LINGER:
            relay.halt()  # give up: sync or a relay sends the rest later
        return False

    done = relay.sync(follow=going_on)
    relay.close()
    if not done:
        status = relay.status()
        relay.notices.say(
            f"run {relay.scope.project}/{relay.scope.run}: about {status['behind_events']:,} "
            f"events not relayed to {relay.uplink.url} yet; `waddle sync {run_dir}` sends them"
        )
    return 0 if done else 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if __name__ == "__main__":
    sys.exit(forward_online_run(*sys.argv[1:2], *map(int, sys.argv[2:4])))
