"""``waddle.Table``: rows of cells, stored as a content-addressed JSON side file.

``add_data()`` (caller's thread) checks each row when it is added: one cell per column, each a
number, string, bool, None or a waddle rich value (Image, Audio, Video, Text, Markdown,
Histogram), so a bad row raises there, naming the row and the column. Logging a table snapshots
its rows (the cells are immutable, so this copies one list), and rows added later belong only
to later logs. The writer thread stores the cells' media, writes the table as
``<run>/media/<sha256>.table.json`` (waddle.media) and logs a small reference, so a large table
does not bloat the event log. docs/format.md ("Rich values") has the file's format;
:func:`read_table` reads it back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from waddle import event as event_format
from waddle import media
from waddle.values import check_text

WHAT = "waddle.Table"
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class Table:
    """A table to log: ``run.log({"predictions": table})``.

    ``columns``: the column names. ``data``: rows (lists of cells, or a 2-D array).
    ``dataframe``: a pandas DataFrame instead of both. ``add_data(*cells)`` appends a row.
    """

    def __init__(
        self, columns: Iterable[str] | None = None, data: Any = None, dataframe: Any = None
    ) -> None:
        if dataframe is not None:
            if data is not None:
                raise TypeError(f"{WHAT}: pass data or dataframe, not both")
            if columns is None:
                columns = [str(name) for name in dataframe.columns]
            data = dataframe.itertuples(index=False, name=None)
        if columns is None:
            if data is None:
                raise TypeError(f"{WHAT}: pass columns=[...] (or data whose rows set the width)")
            data = list(data)
            width = len(data[0]) if data else 0
            columns = [f"col{index}" for index in range(width)]
        self.columns = _check_columns(columns)
        self._rows: list[tuple] = []
        if data is not None:
            for row in data:
                self.add_data(*row)

    def add_data(self, *cells: Any) -> None:
        """Append one row: one cell per column."""
        row_index = len(self._rows)
        if len(cells) != len(self.columns):
            raise ValueError(
                f"{WHAT}: row {row_index} has {len(cells)} cells but the table has "
                f"{len(self.columns)} columns ({', '.join(self.columns)})"
            )
        self._rows.append(
            tuple(
                _cell(row_index, name, cell) for name, cell in zip(self.columns, cells, strict=True)
            )
        )

    def add_column(self, name: str, data: Any, optional: bool = False) -> None:
        """Add a column holding ``data``, one cell per row (W&B's ``add_column``); a table
        without rows takes its length from ``data``."""
        cells = list(data)
        if self._rows and len(cells) != len(self._rows):
            raise ValueError(
                f"{WHAT}: column {name!r} has {len(cells)} cells but the table has "
                f"{len(self._rows)} rows"
            )
        self.columns = _check_columns([*self.columns, name])
        rows = self._rows or [() for _ in cells]
        self._rows = [
            (*row, _cell(index, name, cell))
            for index, (row, cell) in enumerate(zip(rows, cells, strict=True))
        ]

    def get_column(self, name: str, convert_to: str | None = None) -> Any:
        """The cells of column ``name``; ``convert_to="numpy"`` gives a numpy array."""
        if name not in self.columns:
            raise KeyError(f"{WHAT}: no column {name!r} (columns: {', '.join(self.columns)})")
        index = self.columns.index(name)
        cells = [row[index] for row in self._rows]
        if convert_to == "numpy":
            import numpy as np

            return np.array(cells)
        return cells

    def get_dataframe(self) -> Any:
        """The table as a pandas DataFrame (needs pandas)."""
        import pandas

        return pandas.DataFrame(self.data, columns=self.columns)

    @property
    def data(self) -> list[list[Any]]:
        return [list(row) for row in self._rows]

    def _waddle_snapshot(self, key: str) -> media.Snapshot:
        columns, rows = list(self.columns), list(self._rows)
        return media.Snapshot(lambda run_dir: _store(run_dir, key, columns, rows))

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return f"<waddle.Table {len(self._rows)} rows × {len(self.columns)} columns>"


def _store(run_dir: Path, key: str, columns: list[str], rows: list[tuple]) -> dict[str, Any]:
    marks: dict[str, dict[str, str]] = {}
    out_rows = []
    for row_index, row in enumerate(rows):
        out_row = []
        for column_index, cell in enumerate(row):
            if isinstance(cell, float) and not math.isfinite(cell):
                token = "nan" if cell != cell else ("inf" if cell > 0 else "-inf")
                marks.setdefault(str(row_index), {})[str(column_index)] = token
                cell = None
            elif hasattr(cell, "_waddle_snapshot"):
                cell = cell._waddle_snapshot(key).materialize(run_dir)
            out_row.append(cell)
        out_rows.append(out_row)
    document: dict[str, Any] = {"columns": columns, "data": out_rows}
    if marks:
        document["nf"] = marks
    stored = media.store_bytes(run_dir, orjson.dumps(document), ".table.json")
    return {
        "_type": "table",
        **stored,
        "mime": "application/json",
        "columns": columns,
        "rows": len(out_rows),
    }


def read_table(run_dir: Path, value: dict[str, Any]) -> dict[str, Any]:
    """The ``{"columns": [...], "data": [[...]]}`` of a logged table value, NaN and ±Inf restored.

    Media cells stay the dicts stored for them (``_type``, ``path``, ...).
    """
    path = str(value["path"])
    if not path.startswith(media.MEDIA_DIR + "/") or ".." in path.split("/"):
        raise ValueError(f"a table path must lie in {media.MEDIA_DIR}/: {path!r}")
    document = orjson.loads((Path(run_dir) / path).read_bytes())
    for row_index, row_marks in document.pop("nf", {}).items():
        for column_index, token in row_marks.items():
            document["data"][int(row_index)][int(column_index)] = _NONFINITE[token]
    return document


def _check_columns(columns: Iterable[str]) -> list[str]:
    if isinstance(columns, str):
        raise TypeError(f"{WHAT}: columns must be a list of names, not one string")
    names = list(columns)
    for name in names:
        if type(name) is not str or not name:
            raise TypeError(f"{WHAT}: column names must be non-empty strings, got {name!r}")
    if len(set(names)) != len(names):
        seen: set[str] = set()
        twice = next(name for name in names if name in seen or seen.add(name))
        raise ValueError(f"{WHAT}: column {twice!r} appears twice")
    return names


def _cell(row_index: int, column: str, cell: Any) -> Any:
    kind = type(cell)
    if cell is None or kind is bool or kind is float:
        return cell
    if kind is str:
        return check_text(f"{WHAT}: row {row_index}, column {column!r}", cell)
    if kind is int:
        if not event_format.INT64_MIN <= cell <= event_format.INT64_MAX:
            raise ValueError(
                f"{WHAT}: row {row_index}, column {column!r}: the integer {cell} is outside 64 bits"
            )
        return cell
    if hasattr(cell, "_waddle_snapshot"):
        if isinstance(cell, Table):
            raise TypeError(f"{WHAT}: row {row_index}, column {column!r}: tables do not nest")
        return cell  # rich values are immutable snapshots of what they were given
    if kind.__module__ == "numpy" and hasattr(cell, "item") and getattr(cell, "ndim", 1) == 0:
        return _cell(row_index, column, cell.item())
    for base in (bool, int, float, str):  # subclasses such as IntEnum
        if isinstance(cell, base):
            return _cell(row_index, column, base(cell))
    raise TypeError(
        f"{WHAT}: row {row_index}, column {column!r}: a {kind.__name__} is not a table cell; "
        "use a number, string, bool, None or a waddle.Image/Audio/Video/Text"
    )
