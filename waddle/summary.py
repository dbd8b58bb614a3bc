"""Run summary: one value per key that stands for the whole run, as in W&B.

Reading a key gives the value set explicitly with ``summary[key] = value`` if there is one, else
the last value logged under that key. Explicit values are recorded as ``summary`` events; the
server also computes min/max/mean per ``define_metric`` from the full series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from waddle.jsonable import to_jsonable
from waddle.values import Deferred


class Summary:
    def __init__(self, last_logged: dict[str, Any], on_change: Callable[[dict], None]) -> None:
        self._last = last_logged  # shared with the run, updated by every log()
        self._explicit: dict[str, Any] = {}
        self._on_change = on_change

    def update(self, values: Mapping[str, Any]) -> None:
        changes = {}
        for key, value in values.items():
            if type(key) is not str or not key:
                raise TypeError(f"summary keys must be non-empty strings, got {key!r}")
            changes[key] = to_jsonable(value)
        self._explicit.update(changes)
        self._on_change(changes)

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __getitem__(self, key: str) -> Any:
        if key in self._explicit:
            return self._explicit[key]
        value = self._last[key]
        # A torch or jax scalar is read here only because the caller asked for it.
        return value.materialize(None) if isinstance(value, Deferred) else value

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return key in self._explicit or key in self._last

    def keys(self) -> list[str]:
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
