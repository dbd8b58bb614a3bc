"""What a relay knows the central server holds, kept on disk so a restart resumes from it.

One file per (log folder, central server, origin): ``<log dir>/.waddle/relay/<key>.json``,
``{"url", "origin", "runs": {"<project>/<run id>": {"acked", "last", "next_seq", "offsets"}}}``,
one entry per stream of a run: ``<project>/<run id>`` for rank 0's, ``…/ranks/<N>`` for rank
N's (waddle/ranks.py). Per stream: ``acked``, the newest seq the central server acknowledged, and a resume point at or
before the event after it: the segment ``offsets`` read up to there, ``last`` (the seq of the
event just before it, or -1) and ``next_seq``. It promises:

- a save is durable and whole: written to a temporary file, fsynced, renamed over the old one
  (and the folder fsynced); a kill at any moment leaves the previous save or the new one;
- processes share the file (a ``waddle relay`` and the forwarders of online runs): each save
  takes a lock on ``<key>.lock``, reads the file again and replaces only the runs this process
  forwards, so no process's acknowledgements are lost to another's save;
- an acknowledgement is a resume point, not a promise: a relay resuming from an old one sends
  again what the central server already holds, which it ignores (exactly once is the central
  side's rule; this file only spares the bandwidth).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson


def state_path(root: Path, url: str, origin: str) -> Path:
    """The state file of relaying ``root`` to ``url`` as ``origin``."""
    parts = urlsplit(url)
    digest = hashlib.sha256(f"{url}\n{origin}".encode()).hexdigest()[:12]
    name = f"{parts.hostname}-{parts.port or parts.scheme}-{digest}"
    return Path(root) / ".waddle" / "relay" / f"{name}.json"


def load(path: Path) -> dict[str, dict[str, Any]]:
    """The runs of a state file (empty when there is none, or it cannot be read: the relay
    then asks the central server where each run stands)."""
    try:
        value = orjson.loads(path.read_bytes())
        runs = value["runs"]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        return {}
    return runs if isinstance(runs, dict) else {}


def save(path: Path, url: str, origin: str, runs: dict[str, dict[str, Any]]) -> None:
    """Replace the entries of ``runs`` in the file, durably; other runs' entries stay."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged = {**load(path), **runs}
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(temp, "wb") as file:
                file.write(orjson.dumps({"url": url, "origin": origin, "runs": merged}))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    finally:
        os.close(lock)
