"""Run configuration: the hyperparameters of a run, with attribute and item access as in W&B.

Every change is snapshotted at once (see ``jsonable``) and handed to the run, which records it
as a ``config`` event; reading never touches the disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from waddle.jsonable import to_jsonable
from waddle.values import check_text


def as_mapping(value: Any) -> Mapping[str, Any]:
    """A dict, an argparse Namespace or any object with a ``__dict__`` as a mapping."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return value
    if hasattr(value, "__dict__"):
        return {key: item for key, item in vars(value).items() if not key.startswith("_")}
    raise TypeError(f"config must be a dict or an argparse Namespace, not {type(value).__name__}")


class Config:
    """``run.config``: ``config.lr``, ``config["lr"]`` and ``config.update({...})``."""

    def __init__(
        self, data: Mapping[str, Any] | None = None, on_change: Callable[[dict], None] | None = None
    ) -> None:
        object.__setattr__(self, "_data", {})
        object.__setattr__(self, "_on_change", None)
        if data:
            self.update(data)
        object.__setattr__(self, "_on_change", on_change)

    def update(self, values: Any, allow_val_change: bool | None = None) -> None:
        changes = {}
        for key, value in as_mapping(values).items():
            if type(key) is not str or not key:
                raise TypeError(f"config keys must be non-empty strings, got {key!r}")
            check_text("a config key", key)
            changes[key] = to_jsonable(value, f"config[{key!r}]")
        if not changes:
            return
        self._data.update(changes)
        if self._on_change is not None:
            self._on_change(changes)

    def setdefaults(self, values: Any) -> None:
        """Set only the keys that are not set yet (as W&B's ``config.setdefaults``)."""
        self.update(
            {key: value for key, value in as_mapping(values).items() if key not in self._data}
        )

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def keys(self):
        return self._data.keys()

    def items(self):
        return self._data.items()

    def __repr__(self) -> str:
        return f"Config({self._data!r})"
