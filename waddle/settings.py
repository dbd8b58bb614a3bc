"""Settings: every knob of the client, resolved as argument, then ``WADDLE_*`` variable, then default.

A :class:`Settings` holds only what the caller passed; :meth:`Settings.resolve` fills the rest
from the environment at the moment a run starts, so tests and long-lived processes never see a
value frozen at import time. README lists every variable; a test keeps the two in step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any, NamedTuple

from waddle import names


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


class Setting(NamedTuple):
    """One setting: its variable, default, parser and meaning, and the variable W&B reads for
    the same thing, which counts when waddle's own is unset (README lists both)."""

    variable: str
    default: Any
    parse: Any
    meaning: str
    wandb: str | None = None


def check_token(token: str, where: str) -> str:
    """``token`` if it may be a token: printable ASCII, no spaces; ValueError naming ``where``
    (never the token) if not."""
    if not token or not token.isascii() or any(ch.isspace() or ord(ch) < 32 for ch in token):
        raise ValueError(f"{where}: a token is printable ASCII without spaces")
    return token


def parse_tokens(value: Any) -> tuple[str, ...]:
    """Tokens given as one string (comma-separated) or as several strings."""
    items = value.split(",") if isinstance(value, str) else [str(item) for item in value]
    return tuple(check_token(item.strip(), "a token given") for item in items if item.strip())


def parse_url(value: Any) -> str:
    """An http:// or https:// URL of a server (no user, query or fragment), without a
    trailing slash."""
    from urllib.parse import urlsplit

    text = str(value).strip().rstrip("/")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as error:
        raise ValueError(f"not a URL ({error})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("the URL holds no user, password, query or fragment: pass the token apart")
    return text


def parse_mode(value: Any) -> str:
    """offline, disabled or online; W&B's spellings too (dryrun is offline, run is online)."""
    mode = {"dryrun": "offline", "run": "online", "shared": "online"}.get(value, value)
    if mode not in ("offline", "online", "disabled"):
        raise ValueError("expected offline, online or disabled")
    return mode


def parse_console(value: Any) -> bool:
    """on/off like any switch, and W&B's capture modes (anything but off captures)."""
    if value in ("auto", "wrap", "redirect", "wrap_raw", "wrap_emu"):
        return True
    return parse_bool(value)


SETTINGS: dict[str, Setting] = {
    "dir": Setting("WADDLE_DIR", "./logs", str, "folder that holds the event logs", "WANDB_DIR"),
    "mode": Setting(
        "WADDLE_MODE",
        "offline",
        parse_mode,
        "offline (write the log), disabled (every call a no-op) or online (relay)",
        "WANDB_MODE",
    ),
    "flush_interval": Setting(
        "WADDLE_FLUSH_INTERVAL",
        0.05,
        number(float, 0, strict=True),
        "seconds between the writer thread's writes while events arrive",
    ),
    "fsync_interval": Setting(
        "WADDLE_FSYNC_INTERVAL",
        2.0,
        number(float, 0),
        "seconds between fsyncs of the event log (also at finish)",
    ),
    "queue_size": Setting(
        "WADDLE_QUEUE_SIZE",
        20_000,
        number(int, 1),
        "events held for the writer before log() waits for room",
    ),
    "segment_bytes": Setting(
        "WADDLE_SEGMENT_BYTES",
        64 * 1024 * 1024,
        number(int, 1),
        "size after which the writer starts a new segment file",
    ),
    "scalar_copies": Setting(
        "WADDLE_SCALAR_COPIES",
        False,
        parse_bool,
        "also write each closed segment's numbers as columns, so that history() reads them "
        "without parsing the JSON (the training process pays about 0.7 µs, 24 bytes of memory "
        "and 16 bytes of disk per event, and 8 of each per value)",
    ),
    "system_metrics_interval": Setting(
        "WADDLE_SYSTEM_METRICS_INTERVAL",
        10.0,
        number(float, 0),
        "seconds between system metric samples; 0 turns them off",
    ),
    "console": Setting(
        "WADDLE_CONSOLE",
        True,
        parse_console,
        "capture stdout and stderr into the run (off to disable)",
        "WANDB_CONSOLE",
    ),
    "silent": Setting(
        "WADDLE_SILENT",
        False,
        parse_bool,
        "print no informational lines (warnings and errors still show)",
        "WANDB_SILENT",
    ),
    "heartbeat_interval": Setting(
        "WADDLE_HEARTBEAT_INTERVAL",
        10.0,
        number(float, 0, strict=True),
        "seconds of silence after which the writer records a heartbeat",
    ),
    "heartbeat_timeout": Setting(
        "WADDLE_HEARTBEAT_TIMEOUT",
        120.0,
        number(float, 0, strict=True),
        "seconds without any event after which a run that did not finish counts as crashed",
    ),
    # Relaying (server/relay.py): the central server, and who this machine is to it.
    "server": Setting(
        "WADDLE_SERVER",
        None,
        parse_url,
        "URL of the central server runs are relayed to (mode online, waddle relay and sync),"
        " and that waddle.Api() reads",
    ),
    "token": Setting(
        "WADDLE_TOKEN",
        None,
        parse_tokens,
        "the token a server requires, and a relay sends (comma-separated: several)",
    ),
    "token_file": Setting(
        "WADDLE_TOKEN_FILE",
        None,
        str,
        "a file of tokens, one a line (`read TOKEN`: read-only), kept out of `ps`",
    ),
    "origin": Setting(
        "WADDLE_ORIGIN",
        None,
        names.check_origin,
        "the name of this machine on a central server (default: its host name's first label)",
    ),
    # Distributed training (waddle/ranks.py): which stream of a shared run this process writes.
    "rank": Setting(
        "WADDLE_RANK",
        None,
        number(int, 0),
        "this process's rank in a run shared by the ranks of one job (default: $RANK)",
    ),
    "join_ranks": Setting(
        "WADDLE_JOIN_RANKS",
        True,
        parse_bool,
        "ranks of one job (one id, or torchrun's) log into one run; off: each rank its own run",
    ),
    "artifact_dir": Setting(
        "WADDLE_ARTIFACT_DIR",
        "./artifacts",
        str,
        "folder under which artifact.download() puts <name>:v<N> when given no root",
        "WANDB_ARTIFACT_DIR",
    ),
}

# W&B settings with a meaning here: W&B's name -> (waddle's setting, the value it takes).
_WANDB_SETTINGS = {
    "_disable_stats": ("system_metrics_interval", lambda off: 0.0 if off else None),
    "x_disable_stats": ("system_metrics_interval", lambda off: 0.0 if off else None),
    "x_stats_sampling_interval": ("system_metrics_interval", lambda seconds: seconds),
    "root_dir": ("dir", lambda folder: folder),
}


@dataclass(frozen=True, init=False)
class Settings:
    """Client settings; a field left as None falls back to its ``WADDLE_*`` variable, then its
    W&B twin, then its default.

    Any other keyword is one of W&B's settings (``wandb.Settings(start_method="thread")``):
    those with a meaning here set the matching field, the others are kept in ``ignored`` and
    change nothing, so a W&B script's settings never stop it (README, "Coming from W&B").
    """

    dir: str | None = None
    mode: str | None = None
    flush_interval: float | None = None
    fsync_interval: float | None = None
    queue_size: int | None = None
    segment_bytes: int | None = None
    scalar_copies: bool | None = None
    system_metrics_interval: float | None = None
    console: bool | None = None
    silent: bool | None = None
    heartbeat_interval: float | None = None
    heartbeat_timeout: float | None = None
    server: str | None = None
    token: Any = None
    token_file: str | None = None
    origin: str | None = None
    rank: int | None = None
    join_ranks: bool | None = None
    artifact_dir: str | None = None
    ignored: dict[str, Any] = field(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        own = {f.name for f in fields(self)} - {"ignored"}
        ignored = dict(values.pop("ignored", None) or {})
        for name, value in list(values.items()):
            if name in own:
                continue
            del values[name]
            mapped = _WANDB_SETTINGS.get(name)
            if mapped is not None and mapped[1](value) is not None:
                values.setdefault(mapped[0], mapped[1](value))
            else:
                ignored[name] = value
        for name in own:
            object.__setattr__(self, name, values.get(name))
        object.__setattr__(self, "ignored", ignored)

    def resolve(self, environ: dict[str, str] | None = None) -> Settings:
        """A copy with every field set, from the environment or the default where unset."""
        return resolve_fields(self, SETTINGS, environ)


def parse_tags(value: Any) -> list[str]:
    """Tags as a list, from a comma-separated string (W&B's ``WANDB_TAGS``) or a list."""
    if isinstance(value, str):
        return [tag.strip() for tag in value.split(",") if tag.strip()]
    return list(value)


def parse_resume(value: Any) -> bool | str:
    """W&B's resume: allow, must, never, auto, or a bool (true is auto)."""
    if isinstance(value, bool) or value in ("allow", "must", "never", "auto"):
        return value
    return parse_bool(value)


# What init() takes from the environment when its argument is None: argument -> Setting.
RUN_VARIABLES: dict[str, Setting] = {
    "project": Setting(
        "WADDLE_PROJECT", "default", str, "project used when init() names none", "WANDB_PROJECT"
    ),
    "name": Setting("WADDLE_NAME", None, str, "run name when init() gives none", "WANDB_NAME"),
    "notes": Setting("WADDLE_NOTES", None, str, "run notes", "WANDB_NOTES"),
    "tags": Setting("WADDLE_TAGS", None, parse_tags, "comma-separated run tags", "WANDB_TAGS"),
    "group": Setting("WADDLE_RUN_GROUP", None, str, "run group", "WANDB_RUN_GROUP"),
    "job_type": Setting("WADDLE_JOB_TYPE", None, str, "run job type", "WANDB_JOB_TYPE"),
    "id": Setting("WADDLE_RUN_ID", None, str, "id of the run to start or continue", "WANDB_RUN_ID"),
    "resume": Setting(
        "WADDLE_RESUME",
        None,
        parse_resume,
        "allow, must, never or auto: whether init() continues the run of that id",
        "WANDB_RESUME",
    ),
}


def from_environment(
    setting: Setting, environ: dict[str, str] | None = None
) -> tuple[Any, str] | None:
    """The value of ``setting``'s variable, else its W&B twin, with where it came from; None
    when both are unset or empty."""
    env = os.environ if environ is None else environ
    for variable in (setting.variable, setting.wandb):
        if variable and env.get(variable):
            return env[variable], f"{variable}={env[variable]!r}"
    return None


def parsed(setting: Setting, value: Any, source: str) -> Any:
    """``value`` through ``setting``'s parser; ValueError naming ``source`` if invalid."""
    try:
        return setting.parse(value)
    except ValueError as error:
        raise ValueError(f"{source} is not valid: {error}") from None


def run_argument(name: str, value: Any, environ: dict[str, str] | None = None) -> Any:
    """An init() argument: ``value`` if given, else its variables (RUN_VARIABLES), else the
    default."""
    if value is not None:
        return value
    setting = RUN_VARIABLES[name]
    found = from_environment(setting, environ)
    return setting.default if found is None else parsed(setting, *found)


def resolve_fields(settings: Any, table: dict[str, Any], environ: dict[str, str] | None) -> Any:
    """A copy of the dataclass ``settings`` with every field of ``table`` set and parsed.

    ``table`` maps a field to its :class:`Setting` (or a tuple of the same fields). A field
    left as None comes from its variable, else its W&B twin (an empty variable counts as
    unset), else the default. Every value given, as an argument or a variable, goes through the
    field's parser, so ``console="off"`` means what ``WADDLE_CONSOLE=off`` means; an invalid one
    raises ValueError naming where it came from.
    """
    resolved = {}
    for name, entry in table.items():
        setting = Setting(*entry)
        value = getattr(settings, name)
        if value is not None:
            resolved[name] = parsed(setting, value, f"setting {name}={value!r}")
            continue
        found = from_environment(setting, environ)
        resolved[name] = setting.default if found is None else parsed(setting, *found)
    return replace(settings, **resolved)


def resolve_one(name: str, value: Any = None) -> Any:
    """One setting: the argument if given, else its variable, else its default."""
    return getattr(Settings(**{name: value}).resolve(), name)
