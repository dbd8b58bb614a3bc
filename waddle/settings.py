"""Settings: every knob of the client, resolved as argument, then ``WADDLE_*`` variable, then default.

A :class:`Settings` holds only what the caller passed; :meth:`Settings.resolve` fills the rest
from the environment at the moment a run starts, so tests and long-lived processes never see a
value frozen at import time. README lists every variable; a test keeps the two in step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected on/off, got {text!r}")


# name -> (environment variable, default, parser, meaning)
SETTINGS: dict[str, tuple[str, Any, Any, str]] = {
    "dir": ("WADDLE_DIR", "./logs", str, "folder that holds the event logs"),
    "mode": ("WADDLE_MODE", "offline", str, "offline (write the log) or disabled (no-op)"),
    "flush_interval": (
        "WADDLE_FLUSH_INTERVAL",
        0.05,
        float,
        "seconds between the writer thread's writes while events arrive",
    ),
    "fsync_interval": (
        "WADDLE_FSYNC_INTERVAL",
        2.0,
        float,
        "seconds between fsyncs of the event log (also at finish)",
    ),
    "queue_size": (
        "WADDLE_QUEUE_SIZE",
        20_000,
        int,
        "events held for the writer before log() waits for room",
    ),
    "segment_bytes": (
        "WADDLE_SEGMENT_BYTES",
        64 * 1024 * 1024,
        int,
        "size after which the writer starts a new segment file",
    ),
    "system_metrics_interval": (
        "WADDLE_SYSTEM_METRICS_INTERVAL",
        10.0,
        float,
        "seconds between system metric samples; 0 turns them off",
    ),
    "console": ("WADDLE_CONSOLE", True, _parse_bool, "capture stdout and stderr into the run"),
    "heartbeat_interval": (
        "WADDLE_HEARTBEAT_INTERVAL",
        10.0,
        float,
        "seconds of silence after which the writer records a heartbeat",
    ),
    "heartbeat_timeout": (
        "WADDLE_HEARTBEAT_TIMEOUT",
        120.0,
        float,
        "seconds without any event after which a run that did not finish counts as crashed",
    ),
}


@dataclass(frozen=True)
class Settings:
    """Client settings; a field left as None falls back to its ``WADDLE_*`` variable, then its default."""

    dir: str | None = None
    mode: str | None = None
    flush_interval: float | None = None
    fsync_interval: float | None = None
    queue_size: int | None = None
    segment_bytes: int | None = None
    system_metrics_interval: float | None = None
    console: bool | None = None
    heartbeat_interval: float | None = None
    heartbeat_timeout: float | None = None

    def resolve(self, environ: dict[str, str] | None = None) -> Settings:
        """A copy with every field set, from the environment or the default where unset."""
        return resolve_fields(self, SETTINGS, environ)


def resolve_fields(
    settings: Any, table: dict[str, tuple[str, Any, Any, str]], environ: dict[str, str] | None
) -> Any:
    """A copy of the dataclass ``settings`` with each unset field taken from ``table``.

    ``table`` maps a field to (variable, default, parser, meaning); an empty variable counts
    as unset, and an unparsable one raises ValueError naming it.
    """
    env = os.environ if environ is None else environ
    resolved = {}
    for field in fields(settings):
        value = getattr(settings, field.name)
        if value is None:
            variable, default, parse, _ = table[field.name]
            text = env.get(variable)
            if not text:
                value = default
            else:
                try:
                    value = parse(text)
                except ValueError as error:
                    raise ValueError(f"{variable}={text!r} is not valid: {error}") from None
        resolved[field.name] = value
    return replace(settings, **resolved)


def resolve_one(name: str, value: Any = None) -> Any:
    """One setting: the argument if given, else its variable, else its default."""
    return getattr(Settings(**{name: value}).resolve(), name)
