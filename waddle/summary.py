"""Run summary: one value per key that stands for the whole run, as in W&B.

Reading a key gives the value set explicitly with ``summary[key] = value`` if there is one, else
the last value logged under that key (the writer thread keeps those, so a read first waits
for it to catch up: reading the summary is for the end of a run, not for every step). Explicit values are recorded as ``summary`` events; the
server also computes min/max/mean per ``define_metric`` from the full series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from waddle.jsonable import to_jsonable
from waddle.values import check_text


class Summary:
    def __init__(
        self,
        last_logged: dict[str, Any],
        on_change: Callable[[dict], None],
        sync: Callable[[], object] = lambda: None,
    ) -> None:
        self._last = last_logged  # the writer thread's record of the last value of each key
        self._explicit: dict[str, Any] = {}
        self._on_change = on_change
        self._sync = sync  # waits until the writer has seen every log() so far

    def update(self, values: Mapping[str, Any]) -> None:
        changes = {}
        for key, value in values.items():
            if type(key) is not str or not key:
                raise TypeError(f"summary keys must be non-empty strings, got {key!r}")
            check_text("a summary key", key)
            changes[key] = to_jsonable(value, f"summary[{key!r}]")
        self._explicit.update(changes)
        self._on_change(changes)

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __getitem__(self, key: str) -> Any:
        if key in self._explicit:
            return self._explicit[key]
        self._sync()
        return self._last[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        self._sync()
        return key in self._explicit or key in self._last

    def keys(self) -> list[str]:
        self._sync()
        return list({**self._last, **self._explicit})

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def items(self) -> list[tuple[str, Any]]:
        return [(key, self[key]) for key in self.keys()]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.items())

    def __repr__(self) -> str:
        return f"Summary({self.as_dict()!r})"
