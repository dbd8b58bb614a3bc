"""matplotlib figures as images: what ``log({"chart": plt})``, ``log({"chart": fig})`` and
``waddle.Image(fig)`` record, as W&B's scripts log them.

A figure is rendered to PNG at once, on the caller's thread: matplotlib is not thread-safe, and
the figure may be changed or closed right after the call. That costs what ``savefig`` costs
(tens of milliseconds for a typical chart, README); the PNG is then an image like any other.
"""

from __future__ import annotations

import io
import sys
from typing import Any


def is_figure(value: Any) -> bool:
    """True for a matplotlib Figure, Axes or the ``matplotlib.pyplot`` module itself."""
    if value is sys.modules.get("matplotlib.pyplot"):
        return True
    return type(value).__module__.startswith("matplotlib.") and (
        hasattr(value, "savefig") or hasattr(value, "get_figure")
    )


def render_png(value: Any) -> bytes:
    """The PNG of a figure (for pyplot, its current figure; for Axes, their figure)."""
    figure = value.gcf() if value is sys.modules.get("matplotlib.pyplot") else value
    if not hasattr(figure, "savefig"):
        figure = figure.get_figure()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
