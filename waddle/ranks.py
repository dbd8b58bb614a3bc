"""Ranks: the processes of one distributed job logging into one run, each its own stream.

A run folder's own segments are rank 0's stream, the primary: it writes the run's config,
summary and final status. Every other rank writes a stream of its own in
``<run folder>/ranks/<rank>/`` (its own ``.lock``, its own gap-free seq from 0, its own media
and files), so no two processes ever share a file (docs/format.md, "Ranks"). A reader that
knows nothing of ranks sees rank 0 alone, a valid run.

This module decides, for ``init()``, which rank a process is and which run id the ranks of a
job share, and, for readers, which rank streams a run folder holds.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from pathlib import Path

from waddle import names
from waddle.run_folder import RunRecord, inspect_run

RANKS_DIR = "ranks"
RANK_MAX = 2**31 - 1  # a rank fits the index's 32-bit column
# torchrun's rendezvous id when none is given (static rendezvous): the same for every job.
UNNAMED_RENDEZVOUS = "none"


def stream_dir(run_dir: Path, rank: int) -> Path:
    """The folder rank ``rank`` of the run in ``run_dir`` writes its stream to."""
    return run_dir if rank == 0 else run_dir / RANKS_DIR / str(rank)


def is_rank(value: object) -> bool:
    """True for a rank number: an int from 0 to RANK_MAX (a bool is not one)."""
    return type(value) is int and 0 <= value <= RANK_MAX


def split_path(path: str) -> tuple[int, str]:
    """(rank, path in its stream's folder) of a path relative to the run folder: a path under
    ``ranks/<rank>/`` is of that rank, any other of rank 0."""
    parts = path.split("/", 2)
    rank = _rank_named(parts[1]) if len(parts) == 3 and parts[0] == RANKS_DIR else None
    return (0, path) if rank is None else (rank, parts[2])


def _rank_named(name: str) -> int | None:
    """The rank a folder of ``ranks/`` is named for (``1``, not ``01``), or None."""
    if name.isdigit() and name == str(int(name)) and int(name) > 0 and is_rank(int(name)):
        return int(name)
    return None


def process_rank(setting: int | None, environ: Mapping[str, str] | None = None) -> int:
    """This process's rank: the ``rank`` setting (or ``WADDLE_RANK``), else ``$RANK`` (what
    torchrun, Lightning and accelerate set), else 0."""
    if setting is not None:
        return setting
    env = os.environ if environ is None else environ
    value = env.get("RANK", "").strip()
    if not value:
        return 0
    if not value.isdigit():
        raise ValueError(f"RANK={value!r} is not a rank (an integer from 0)")
    return int(value)


def torchrun_id(environ: Mapping[str, str] | None = None) -> str | None:
    """The run id every rank of a torchrun job derives alike, or None outside one (``RANK``,
    ``WORLD_SIZE`` > 1 and ``TORCHELASTIC_RUN_ID`` set).

    It comes from the rendezvous id. torchrun's default one, ``none``, is the same for every
    job, so then the elastic agent (the parent of a node's ranks) and its start time stand in
    for it: the ranks of one node share a run, and a multi-node job needs ``--rdzv-id`` (or
    ``init(id=...)``) to share one across nodes.
    """
    env = os.environ if environ is None else environ
    job = env.get("TORCHELASTIC_RUN_ID", "").strip()
    try:
        world = int(env.get("WORLD_SIZE", "1"))
    except ValueError:
        world = 1
    if not job or world <= 1 or not env.get("RANK", "").strip():
        return None
    if job == UNNAMED_RENDEZVOUS:
        job = f"{os.uname().nodename}-{os.getppid()}-{_start_time(os.getppid())}"
    run_id = f"torchrun-{job}"
    if names.is_valid(run_id):
        return run_id
    return "torchrun-" + hashlib.sha256(job.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _start_time(pid: int) -> str:
    """When process ``pid`` started (psutil), so that a reused pid names another job."""
    import psutil

    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except (psutil.Error, OSError):
        return "0"


def rank_streams(run_dir: Path) -> list[tuple[int, Path]]:
    """The streams of ranks other than 0 in ``run_dir``, by rank: folders ``ranks/<n>``
    whose name is a rank written plainly (``1``, not ``01``), no symlinks."""
    found = []
    if not names.is_folder(run_dir / RANKS_DIR):
        return found
    for name in names.folders(run_dir / RANKS_DIR):
        rank = _rank_named(name)
        if rank is not None:
            found.append((rank, run_dir / RANKS_DIR / name))
    return sorted(found)


def inspect_ranks(record: RunRecord, heartbeat_timeout: float, now: float | None = None) -> None:
    """Fill ``record.ranks`` (a run folder's record, rank 0's stream) with the record of each
    other rank's stream, and make ``record.status`` the run's (:func:`run_status`)."""
    now = time.time() if now is None else now
    for rank, path in rank_streams(record.path):
        stream = inspect_run(path, heartbeat_timeout, now)
        if stream is not None:
            record.ranks[rank] = stream
    record.status = run_status(record, list(record.ranks.values()), heartbeat_timeout, now)


def run_status(
    primary: RunRecord, others: list[RunRecord], heartbeat_timeout: float, now: float
) -> str:
    """The status of a run of several ranks: crashed when a rank died (its finish says
    crashed, or its stream went stale without a finish before the primary finished), else
    the primary's. The server's index spells the same rule in SQL (server/routes/lookup.py)."""
    # A finished primary's newest event is its finish: until then, a rank silent for the
    # heartbeat timeout was dead; after it, a rank may end later without a word (a launcher
    # stopping the other processes once rank 0 is done).
    until = primary.last_activity if primary.finish is not None else now
    for stream in others:
        if stream.finish is not None:
            if stream.finish.get("status") == "crashed":
                return "crashed"
        elif stream.last_activity is not None and until - stream.last_activity > heartbeat_timeout:
            return "crashed"
    return primary.status
