"""The tokens a server accepts, and what each one may do.

A **full** token may read and ingest (what a relay needs); a **read-only** token may read the
API, files and live updates, and nothing else (what a viewer needs). They come from
``--token`` (or ``WADDLE_TOKEN``), ``--read-token`` (``WADDLE_READ_TOKEN``), both repeatable
or comma-separated, and ``--token-file`` (``WADDLE_TOKEN_FILE``), which keeps them out of
``ps`` and shell history: one token a line, ``read <token>`` for a read-only one, ``#`` for a
comment. It promises:

- a presented token is compared with every token in constant time (:func:`hmac.compare_digest`
  each, all of them every time), so the answer's timing tells nothing of any token;
- no token is ever part of a message, an error or a log line: a bad token file is named by its
  path and line number only.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

from waddle.settings import check_token

FULL = "full"
READ = "read"


@dataclass(frozen=True)
class Tokens:
    """The full and read-only tokens of a server (none: a loopback-only server)."""

    full: tuple[str, ...] = ()
    read: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.full or self.read)

    def __repr__(self) -> str:  # never the tokens themselves
        return f"Tokens({len(self.full)} full, {len(self.read)} read-only)"

    def first_full(self) -> str | None:
        """The token a relay sends: the first full one."""
        return self.full[0] if self.full else None

    def first(self) -> str | None:
        """The token a reader sends (``waddle.Api()``): the first full one, else the first
        read-only one."""
        return (self.full or self.read or (None,))[0]

    def kind(self, presented: bytes | str) -> str | None:
        """FULL or READ for a token of this set, else None; every token is compared."""
        given = presented.encode() if isinstance(presented, str) else presented
        found = None
        for kind, tokens in ((READ, self.read), (FULL, self.full)):
            for token in tokens:
                if hmac.compare_digest(given, token.encode()):
                    found = kind
        return found


def read_file(path: str | Path) -> Tokens:
    """The tokens of a token file; ValueError naming the file and line of a bad one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the token file {path}: {error}") from None
    full, read = [], []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        where = f"{path}, line {number}"
        if len(words) == 2 and words[0] == READ:
            read.append(check_token(words[1], where))
        elif len(words) == 1 and words[0] != READ:
            full.append(check_token(words[0], where))
        else:
            raise ValueError(f"{where}: write a token, or 'read' and a token")
    if not (full or read):
        raise ValueError(f"the token file {path} holds no token")
    return Tokens(tuple(full), tuple(read))


def gather(
    full: tuple[str, ...] = (), read: tuple[str, ...] = (), file: str | None = None
) -> Tokens:
    """Every token of a server: those given, and those of ``file``."""
    from_file = read_file(file) if file else Tokens()
    return Tokens(full + from_file.full, read + from_file.read)
