"""The server's two commands: ``serve`` (run the API on a socket) and ``reindex`` (rebuild).

``serve`` promises to bind loopback unless told otherwise and to refuse any other address
without a token; it prints the URL once the socket is bound (the real port when 0 was asked).
``reindex`` builds a fresh index beside the old one and swaps it in only when complete.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import uvicorn
from waddle.server.access import is_loopback
from waddle.server.notices import Notices
from waddle.server.settings import ServerSettings
from waddle.server.store import Store, StoreError

# Seconds a thread holding the GIL runs before another that waits for it takes a turn. The
# indexer's thread runs Python most of the time; a thread answering requests (a relay's batch,
# an API call) waits a turn each time it comes back from the kernel (a write, an fsync,
# decompressing): 1 ms turns, not Python's 5 ms, let a relay's batches through about a third
# faster while the indexer is busy (benchmarks/results/relay.md). Checked again in turns on
# 2026-11-29 (benchmarks/results/server.md, "GIL turns"): a relay's 10M values at 642,000 to
# 1,000,000 values/s against 662,000 to 689,000 with 5 ms, at the same CPU per value; the live
# tail and log() → WebSocket latency the same within the load's noise. It still pays: kept.
SWITCH_INTERVAL = 0.001


def bind(settings: ServerSettings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it, a small answer on a keep-alive connection
    # waited ~40 ms for the client's delayed ACK (Nagle), which is most of a dashboard's calls.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as error:
        sock.close()
        raise OSError(
            f"cannot listen on {settings.host}:{settings.port}: {error.strerror}"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(settings: ServerSettings) -> None:
    from waddle.server.app import create_app
    from waddle.server.routes import dashboard

    settings = settings.resolve()
    if not is_loopback(settings.host) and not settings.tokens():
        raise ValueError(
            f"refusing to listen on {settings.host} without a token: anyone who can reach it "
            "could read your runs. Pass --token or --token-file, or set WADDLE_TOKEN (or use "
            "127.0.0.1)"
        )
    app = create_app(settings)
    sys.setswitchinterval(SWITCH_INTERVAL)
    sock = bind(settings)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"waddle: serving {Path(settings.dir).resolve()} at http://{shown}:{port}", flush=True)
    if not dashboard.built():
        print(f"waddle: {dashboard.NOT_BUILT}", flush=True)
    server(app).run(sockets=[sock])


def server(app) -> uvicorn.Server:
    """The uvicorn server for ``app`` (not started).

    WebSockets: websockets' Sans-I/O implementation, whose send waits while the socket's
    buffer is full (uvicorn >= 0.52.1), so a slow client holds back only its own messages and
    the hub's bound on pending points applies (docs/api.md, "resync"). No per-message
    compression: it kept ~300 KB of zlib state per connection (the legacy implementation's
    windows), which stayed in the process after 1,000 clients had left; the live messages are
    small and mostly go over loopback.
    """
    config = uvicorn.Config(
        app,
        log_level="warning",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        lifespan="on",
    )
    return uvicorn.Server(config)


def reindex(settings: ServerSettings) -> dict[str, int]:
    from waddle.server.indexer import Indexer

    settings = settings.resolve()
    root = settings.log_folder()
    target = Path(settings.db)
    notices = Notices("waddle reindex")
    if target.exists():
        _set_aside_if_unusable(target, notices)
    fresh = target.with_name(target.name + ".reindex")
    for path in (fresh, Path(str(fresh) + ".wal")):
        path.unlink(missing_ok=True)
    store = Store(fresh)
    try:
        indexer = Indexer(store, root, notices=notices)
        failed = indexer.catch_up()
        counts = {
            name: store.query(f"SELECT count(*) FROM {table}")[0][0]
            for name, table in (
                ("runs", "runs"),
                ("scalars", "scalars"),
                ("rejects", "rejects"),
            )
        }
        counts["events"] = indexer.totals["events"]
    finally:
        store.close()
    Path(str(target) + ".wal").unlink(missing_ok=True)
    os.replace(fresh, target)
    if failed:
        raise RuntimeError(
            f"the index was rebuilt without {len(failed)} run(s) that could not be read "
            f"({', '.join(failed)}; see above); fix them and run `waddle reindex` again"
        )
    return counts


def _set_aside_if_unusable(index: Path, notices: Notices) -> None:
    """Move an index that is no readable waddle index aside (kept for a look), saying so; an
    index of another version is left for the rebuild to replace; one in use is refused."""
    try:
        Store(index).close()
    except StoreError as error:
        if error.in_use:
            raise
        if error.other_version:
            return
        aside = index.with_name(f"{index.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(index, aside)
        wal = Path(f"{index}.wal")
        if wal.exists():
            os.replace(wal, Path(f"{aside}.wal"))
        notices.say(f"moved the index {index} aside to {aside}: it {error.why}; rebuilding")
