"""Run summary: one value per key that stands for the whole run, as in W&B.

Reading a key gives the value set explicitly with ``summary[key] = value`` if there is one,
else what was logged under that key, kept by the writer thread as W&B keeps it
(:class:`Logged`): the last value, or, for a key ``define_metric(summary=...)`` covers, the
aggregates it asked for (``{"max": 5.0}``), or nothing for ``summary="none"``; a key whose
tracking failed (a bug, said once by the writer) is unknown: absent, never a wrong value. A
read first waits for the writer to catch up: reading the summary is for the end of a run, not
for every step.
Explicit values are recorded as ``summary`` events; the server computes the same aggregates
from the full series.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from waddle.jsonable import to_jsonable
from waddle.values import check_text

AGGREGATES = ("min", "max", "mean", "first", "last")


class Logged:
    """The summary of what was logged; updated by the writer thread, read after a flush.

    ``on_failure(key, error)``: told once per key whose tracking fails; the key is unknown
    from then on.
    """

    def __init__(self, on_failure: Callable[[str, Exception], object] | None = None) -> None:
        self._on_failure = on_failure
        self.unknown: set[str] = set()  # keys whose tracking failed
        self.last: dict[str, Any] = {}
        self._defines: list[tuple[str, list[str]]] = []  # (name or glob, aggregates), in order
        self._specs: dict[str, list[str] | None] = {}  # key -> its aggregates, cached
        self._stats: dict[str, dict[str, float]] = {}

    def define(self, name: str, summary: str | None) -> None:
        if summary is not None:
            self._defines.append((name, [part.strip() for part in summary.split(",")]))
            self._specs.clear()

    @property
    def keeps_every_value(self) -> bool:
        """True when a definition's summary (min, max, mean...) takes every value logged, not
        only each key's last one."""
        return bool(self._defines)

    def update(self, values: dict[str, Any]) -> None:
        if None in values.values():  # a logged None is no summary value, as in W&B
            values = {key: value for key, value in values.items() if value is not None}
        self.last.update(values)
        if not self._defines:
            return
        for key, value in values.items():
            try:  # free unless it raises; a failing key costs only its own aggregates
                if self._spec(key) and _is_number(value):
                    _add(self._stats.setdefault(key, {}), float(value))
            except Exception as error:
                self._fail(key, error)

    def update_each(self, values: dict[str, Any]) -> None:
        """``update(values)`` key by key, after it raised: a key that raises alone is unknown.
        (``update`` raises only before it counts any value, so none is counted twice.)"""
        for key, value in values.items():
            try:
                self.update({key: value})
            except Exception as error:
                self._fail(key, error)

    def _fail(self, key: str, error: Exception) -> None:
        if key not in self.unknown:
            self.unknown.add(key)
            if self._on_failure is not None:
                self._on_failure(key, error)

    def __getitem__(self, key: str) -> Any:
        if key in self.unknown:
            raise KeyError(key)
        spec = self._spec(key) if self._defines else None
        if spec is None:
            return self.last[key]
        if "none" in spec or key not in self.last:
            raise KeyError(key)
        stats = self._stats.get(key)
        if stats is None:  # not a number
            return self.last[key]
        return {name: _aggregate(stats, name) for name in spec if name in AGGREGATES}

    def __contains__(self, key: object) -> bool:
        return key in self.last and not self._hidden(key)

    def keys(self) -> list[str]:
        return [key for key in self.last if not self._hidden(key)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def _hidden(self, key: Any) -> bool:
        """A key whose definition asks for no summary, or whose tracking failed."""
        if key in self.unknown:
            return True
        return bool(self._defines) and "none" in (self._spec(key) or ())

    def _spec(self, key: str) -> list[str] | None:
        if key not in self._specs:
            spec = None
            for name, aggregates in self._defines:
                if name == key or fnmatch.fnmatchcase(key, name):
                    spec = aggregates
            self._specs[key] = spec
        return self._specs[key]


def _is_number(value: Any) -> bool:
    """A float, an int or a numpy number. (A dtype's kind is compared with a tuple: an empty
    string would be "in" any string, and took every str for a number.)"""
    kind = type(value)
    if kind is float or kind is int:
        return True
    return getattr(getattr(value, "dtype", None), "kind", None) in ("i", "u", "f")


def _add(stats: dict[str, float], value: float) -> None:
    if not stats:
        stats.update(first=value, count=0, total=0.0)
    stats["last"] = value
    if math.isnan(value):
        return
    stats["count"] += 1
    stats["total"] += value
    stats["min"] = min(stats.get("min", value), value)
    stats["max"] = max(stats.get("max", value), value)


def _aggregate(stats: dict[str, float], name: str) -> float | None:
    if name == "mean":
        return stats["total"] / stats["count"] if stats["count"] else None
    return stats.get(name)


class Summary:
    def __init__(
        self,
        logged: Logged,
        on_change: Callable[[dict], None],
        sync: Callable[[], object] = lambda: None,
    ) -> None:
        self._logged = logged
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
        return self._logged[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        self._sync()
        return key in self._explicit or key in self._logged

    def keys(self) -> list[str]:
        self._sync()
        return list({**dict.fromkeys(self._logged.keys()), **self._explicit})

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
