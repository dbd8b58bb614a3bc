"""The run's context: where and how it was started (host, user, Python, command line, git, hardware).

``quick_context()`` is cheap and runs in ``init()``; ``slow_context()`` runs git and asks the GPU
driver, so it runs in the writer thread before the run-start event is written. Neither raises:
a fact that cannot be had is left out.
"""

from __future__ import annotations

import getpass
import os
import platform
import socket
import subprocess
import sys
from typing import Any

# A diff larger than this is cut; the context says so.
MAX_GIT_DIFF_BYTES = 256 * 1024


def quick_context() -> dict[str, Any]:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in containers without a passwd entry
        user = None
    return {
        "host": socket.gethostname(),
        "user": user,
        "python": platform.python_version(),
        "executable": sys.executable,
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
        "pid": os.getpid(),
    }


def slow_context(cwd: str) -> dict[str, Any]:
    from waddle.gpu import gpu_inventory

    context: dict[str, Any] = {
        "os": platform.platform(),  # its first call reads the interpreter binary: milliseconds
        "cpu_count": os.cpu_count(),
        "memory_total": os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"),
    }
    gpus = gpu_inventory()
    if gpus:
        context["gpus"] = gpus
    git = git_context(cwd)
    if git:
        context["git"] = git
    return context


def _git(cwd: str, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.decode("utf-8", "replace")


def git_context(cwd: str) -> dict[str, Any] | None:
    """Remote, branch, commit, dirty flag and the working-tree diff (capped), or None."""
    head = _git(cwd, "rev-parse", "HEAD", "--abbrev-ref", "HEAD")
    if head is None:
        return None
    commit, _, branch = head.strip().partition("\n")
    remote = _git(cwd, "config", "--get", "remote.origin.url")
    diff = _git(cwd, "diff", "HEAD") or ""  # tracked files only, as "dirty" means here
    encoded = diff.encode("utf-8")
    truncated = len(encoded) > MAX_GIT_DIFF_BYTES
    if truncated:
        diff = encoded[:MAX_GIT_DIFF_BYTES].decode("utf-8", "ignore")
    return {
        "commit": commit,
        "branch": branch or None,
        "remote": remote.strip() if remote else None,
        "dirty": bool(diff),
        "diff": diff,
        "diff_truncated": truncated,
    }
