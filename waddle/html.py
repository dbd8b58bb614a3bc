"""``waddle.Html``: an HTML page logged with a run, as W&B's ``wandb.Html``.

The page is stored as a file in ``media/`` (content-addressed, as every media file) and shown
by the dashboard only in a sandboxed frame served by ``/files`` with ``Content-Security-Policy:
sandbox``: its scripts, if any, run with no access to the dashboard or its data
(docs/security.md). ``inject`` (W&B's: add its stylesheet) is accepted and means nothing here.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from waddle import media
from waddle.values import check_text

WHAT = "waddle.Html"


class Html:
    """``Html(data)``: a string of HTML, a file-like object holding it, or the path of an
    .html file (``data_is_not_path=True`` reads a string as HTML even if it names a file)."""

    def __init__(self, data: Any, inject: bool = True, data_is_not_path: bool = False) -> None:
        if isinstance(data, io.TextIOBase) or hasattr(data, "read"):
            text = data.read()
        elif (
            not data_is_not_path
            and media.is_path(data)
            and Path(data).suffix.lower() in (".html", ".htm")
        ):
            text = media.existing_file(WHAT, data).read_text(encoding="utf-8", errors="replace")
        elif isinstance(data, str):
            text = data
        else:
            raise TypeError(
                f"{WHAT}: data must be HTML text, a file object or an .html path, not {type(data).__name__}"
            )
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        self.html = check_text(WHAT, text)

    def _waddle_snapshot(self, key: str) -> media.Snapshot:
        data = self.html.encode("utf-8")

        def store(run_dir: Path) -> dict[str, Any]:
            return {
                "_type": "html",
                **media.store_bytes(run_dir, data, ".html"),
                "mime": "text/html",
            }

        return media.Snapshot(store)

    def __repr__(self) -> str:
        return f"<waddle.Html {len(self.html)} characters>"
