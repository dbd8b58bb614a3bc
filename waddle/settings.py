"""Settings: every knob of the client, resolved as argument, then ``WADDLE_*`` variable, then default.

A :class:`Settings` holds only what the caller passed; :meth:`Settings.resolve` fills the rest
from the environment at the moment a run starts, so tests and long-lived processes never see a
value frozen at import time. README lists every variable; a test keeps the two in step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any


def parse_bool(value: Any) -> bool:
    """on/off, true/false, yes/no, 1/0 (any case), or a bool."""
    if type(value) is bool:
        return value
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected on/off, got {value!r}")


def number(kind: type, minimum: float, strict: bool = False, maximum: float | None = None) -> Any:
    """A parser of ``kind`` (int or float) numbers at least ``minimum`` (above it if ``strict``)
    and at most ``maximum``, given as a number or as text; NaN and bools are refused, and an int
    must be whole."""

    def parse(value: Any) -> Any:
        if isinstance(value, bool) or (kind is int and isinstance(value, float)):
            raise ValueError(f"expected {'an integer' if kind is int else 'a number'}")
        try:
            parsed = kind(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise ValueError(f"expected {'an integer' if kind is int else 'a number'}") from None
        if parsed != parsed or parsed < minimum or (strict and parsed == minimum):
            raise ValueError(f"must be {'above' if strict else 'at least'} {minimum:g}")
        if maximum is not None and parsed > maximum:
            raise ValueError(f"must be at most {maximum:g}")
        return parsed

    return parse


def choice(*options: str) -> Any:
    """A parser of one of ``options``."""

    def parse(value: Any) -> str:
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    return parse


# name -> (environment variable, default, parser, meaning)
SETTINGS: dict[str, tuple[str, Any, Any, str]] = {
    "dir": ("WADDLE_DIR", "./logs", str, "folder that holds the event logs"),
    "mode": ("WADDLE_MODE", "offline", str, "offline (write the log) or disabled (no-op)"),
    "flush_interval": (
        "WADDLE_FLUSH_INTERVAL",
        0.05,
        number(float, 0, strict=True),
        "seconds between the writer thread's writes while events arrive",
    ),
    "fsync_interval": (
        "WADDLE_FSYNC_INTERVAL",
        2.0,
        number(float, 0),
        "seconds between fsyncs of the event log (also at finish)",
    ),
    "queue_size": (
        "WADDLE_QUEUE_SIZE",
        20_000,
        number(int, 1),
        "events held for the writer before log() waits for room",
    ),
    "segment_bytes": (
        "WADDLE_SEGMENT_BYTES",
        64 * 1024 * 1024,
        number(int, 1),
        "size after which the writer starts a new segment file",
    ),
    "system_metrics_interval": (
        "WADDLE_SYSTEM_METRICS_INTERVAL",
        10.0,
        number(float, 0),
        "seconds between system metric samples; 0 turns them off",
    ),
    "console": ("WADDLE_CONSOLE", True, parse_bool, "capture stdout and stderr into the run"),
    "heartbeat_interval": (
        "WADDLE_HEARTBEAT_INTERVAL",
        10.0,
        number(float, 0, strict=True),
        "seconds of silence after which the writer records a heartbeat",
    ),
    "heartbeat_timeout": (
        "WADDLE_HEARTBEAT_TIMEOUT",
        120.0,
        number(float, 0, strict=True),
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
    """A copy of the dataclass ``settings`` with every field set and parsed.

    ``table`` maps a field to (variable, default, parser, meaning). A field left as None comes
    from its variable (an empty one counts as unset), else the default. Every value given,
    as an argument or a variable, goes through the field's parser, so ``console="off"`` means
    what ``WADDLE_CONSOLE=off`` means; an invalid one raises ValueError naming where it came from.
    """
    env = os.environ if environ is None else environ
    resolved = {}
    for field in fields(settings):
        value = getattr(settings, field.name)
        variable, default, parse, _ = table[field.name]
        if value is not None:
            source = f"setting {field.name}={value!r}"
        else:
            value = env.get(variable) or None
            source = f"{variable}={value!r}"
        if value is None:
            value = default
        else:
            try:
                value = parse(value)
            except ValueError as error:
                raise ValueError(f"{source} is not valid: {error}") from None
        resolved[field.name] = value
    return replace(settings, **resolved)


def resolve_one(name: str, value: Any = None) -> Any:
    """One setting: the argument if given, else its variable, else its default."""
    return getattr(Settings(**{name: value}).resolve(), name)
