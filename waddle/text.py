"""``waddle.Text`` and ``waddle.Markdown``: strings shown as text, as a diff, or rendered.

Both are checked in the constructor (a string, at most MAX_CHARS characters) and live inline in
the ``log`` event (docs/format.md, "Rich values"). ``Text(text, expected=...)`` asks the
dashboard for a diff of ``text`` against ``expected``; Markdown is rendered by the dashboard
(which must sanitise it: it is the training script's output, not trusted HTML).
"""

from __future__ import annotations

from typing import Any

from waddle import media
from waddle.values import check_text

# An event line must stay well under the reader's 16 MiB line limit.
MAX_CHARS = 1 << 20


class Text:
    """Text to log: ``run.log({"sample": waddle.Text(output, expected=target)})``."""

    def __init__(self, text: str, expected: str | None = None) -> None:
        self.text = _check("waddle.Text", "text", text)
        self.expected = None if expected is None else _check("waddle.Text", "expected", expected)

    def _waddle_snapshot(self, key: str) -> media.Snapshot:
        value = {"_type": "text", "text": self.text, "expected": self.expected}
        return media.Snapshot(lambda run_dir: value)

    def __repr__(self) -> str:
        return f"<waddle.Text {self.text[:30]!r}>"


class Markdown:
    """Markdown to log: ``run.log({"report": waddle.Markdown("# Results\\n...")})``."""

    def __init__(self, text: str) -> None:
        self.text = _check("waddle.Markdown", "text", text)

    def _waddle_snapshot(self, key: str) -> media.Snapshot:
        value = {"_type": "markdown", "text": self.text}
        return media.Snapshot(lambda run_dir: value)

    def __repr__(self) -> str:
        return f"<waddle.Markdown {self.text[:30]!r}>"


def _check(what: str, name: str, text: Any) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{what}: {name} must be a string, not {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise ValueError(
            f"{what}: {name} has {len(text)} characters, more than {MAX_CHARS}; "
            "save long text as a file with run.save()"
        )
    return check_text(f"{what}: {name}", str(text))
