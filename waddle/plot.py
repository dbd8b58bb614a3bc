"""``waddle.plot``: W&B's preset charts, stored as a table plus what to draw from it.

Each function returns a :class:`CustomChart` to log under a key, as in W&B
(``run.log({"roc": waddle.plot.roc_curve(y_true, y_probas)})``). Its value on disk is
``{"_type": "chart", "chart": <kind>, "fields": {role: column}, "title", "table": <table value>}``
(docs/format.md); the dashboard draws it with the scalar charts' library. The curves
(precision-recall, ROC) and the confusion matrix are computed with numpy, with W&B's columns
and without scikit-learn, in the writer thread (the inputs are copied at the call).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from waddle import media
from waddle.table import Table

WHAT = "waddle.plot"
# At most this many points per curve (ROC): a curve has one point per distinct score.
MAX_CURVE_POINTS = 1000


class CustomChart:
    """A chart of ``kind`` over a table, the roles of its columns in ``fields``."""

    def __init__(
        self,
        kind: str,
        fields: dict[str, str | None],
        title: str,
        table: Callable[[], Table] | Table,
    ) -> None:
        self.kind, self.fields, self.title = kind, fields, str(title or "")
        self._table = table  # a Table, or what makes it in the writer thread

    def _waddle_snapshot(self, key: str) -> media.Snapshot:
        table = self._table
        snapshot_now = table._waddle_snapshot(key) if isinstance(table, Table) else None

        def store(run_dir: Path) -> dict[str, Any]:
            stored = snapshot_now or table()._waddle_snapshot(key)
            return {
                "_type": "chart",
                "chart": self.kind,
                "fields": self.fields,
                "title": self.title,
                "table": stored.materialize(run_dir),
            }

        return media.Snapshot(store)


def _columns(table: Table, *names: str | None) -> None:
    if not isinstance(table, Table):
        raise TypeError(
            f"{WHAT}: the first argument must be a waddle.Table, not {type(table).__name__}"
        )
    missing = [name for name in names if name is not None and name not in table.columns]
    if missing:
        raise ValueError(
            f"{WHAT}: the table has no column {missing[0]!r} ({', '.join(table.columns)})"
        )


def line(
    table: Table,
    x: str,
    y: str,
    stroke: str | None = None,
    title: str = "",
    split_table: bool = False,
) -> CustomChart:
    _columns(table, x, y, stroke)
    return CustomChart("line", {"x": x, "y": y, "stroke": stroke}, title, table)


def scatter(
    table: Table, x: str, y: str, title: str = "", split_table: bool = False
) -> CustomChart:
    _columns(table, x, y)
    return CustomChart("scatter", {"x": x, "y": y}, title, table)


def bar(
    table: Table, label: str, value: str, title: str = "", split_table: bool = False
) -> CustomChart:
    _columns(table, label, value)
    return CustomChart("bar", {"label": label, "value": value}, title, table)


def histogram(table: Table, value: str, title: str = "", split_table: bool = False) -> CustomChart:
    _columns(table, value)
    return CustomChart("histogram", {"value": value}, title, table)


def line_series(
    xs: Iterable[Any],
    ys: Iterable[Iterable[Any]],
    keys: Iterable[str] | None = None,
    title: str = "",
    xname: str = "x",
    split_table: bool = False,
) -> CustomChart:
    """Several lines: ``ys[i]`` against ``xs`` (or ``xs[i]`` when xs is a list of lists)."""
    ys = [list(series) for series in ys]
    xs = list(xs)
    per_series = bool(xs) and (isinstance(xs[0], (list, tuple)) or getattr(xs[0], "ndim", 0) >= 1)
    names = list(keys) if keys is not None else [f"key_{index}" for index in range(len(ys))]
    if len(names) != len(ys):
        raise ValueError(f"{WHAT}: {len(names)} keys for {len(ys)} series")
    table = Table(columns=["step", "lineKey", "lineVal"])
    for index, series in enumerate(ys):
        steps = list(xs[index]) if per_series else xs
        if len(steps) != len(series):
            raise ValueError(
                f"{WHAT}: series {names[index]!r} has {len(series)} values for {len(steps)} x values"
            )
        for step, value in zip(steps, series, strict=True):
            table.add_data(step, names[index], value)
    return CustomChart(
        "line_series",
        {"x": "step", "y": "lineVal", "stroke": "lineKey", "xname": xname},
        title,
        table,
    )


def confusion_matrix(
    probs: Any = None,
    y_true: Any = None,
    preds: Any = None,
    class_names: Any = None,
    title: str = "Confusion Matrix Curve",
    split_table: bool = False,
) -> CustomChart:
    """Counts of each (actual, predicted) class pair, zeros included (W&B's columns)."""
    import numpy as np

    if (probs is None) == (preds is None) or y_true is None:
        raise ValueError(f"{WHAT}: confusion_matrix takes y_true and either preds or probs")
    actual = np.asarray(y_true)
    predicted = np.asarray(preds) if preds is not None else np.asarray(probs).argmax(axis=1)
    if actual.shape != predicted.shape:
        raise ValueError(f"{WHAT}: {len(actual)} true labels for {len(predicted)} predictions")
    count = int(max(actual.max(initial=0), predicted.max(initial=0))) + 1
    names = (
        list(class_names) if class_names is not None else [f"Class_{i + 1}" for i in range(count)]
    )
    if len(names) < count:
        raise ValueError(f"{WHAT}: {len(names)} class names for {count} classes")

    def make() -> Table:
        counts = np.zeros((len(names), len(names)), dtype=np.int64)
        np.add.at(counts, (actual, predicted), 1)
        table = Table(columns=["Actual", "Predicted", "nPredictions"])
        for i, actual_name in enumerate(names):
            for j, predicted_name in enumerate(names):
                table.add_data(actual_name, predicted_name, int(counts[i, j]))
        return table

    return CustomChart(
        "confusion_matrix",
        {"actual": "Actual", "predicted": "Predicted", "value": "nPredictions"},
        title,
        make,
    )


def pr_curve(
    y_true: Any = None,
    y_probas: Any = None,
    labels: list[str] | None = None,
    classes_to_plot: list | None = None,
    interp_size: int = 21,
    title: str = "Precision-Recall Curve",
    split_table: bool = False,
) -> CustomChart:
    """Per class, the best precision at ``interp_size`` evenly spaced recall levels."""
    import numpy as np

    truth, scores, classes = _scored(y_true, y_probas, classes_to_plot)

    def make() -> Table:
        table = Table(columns=["class", "precision", "recall"])
        levels = np.linspace(0, 1, interp_size)
        for index, label in classes:
            precision, recall = _precision_recall(truth == index, scores[:, index])
            for level in levels:
                reached = precision[recall >= level]
                table.add_data(
                    _label(labels, label),
                    round(float(reached.max()) if len(reached) else 0.0, 3),
                    round(float(level), 3),
                )
        return table

    return CustomChart(
        "pr_curve", {"x": "recall", "y": "precision", "stroke": "class"}, title, make
    )


def roc_curve(
    y_true: Any = None,
    y_probas: Any = None,
    labels: list[str] | None = None,
    classes_to_plot: list | None = None,
    title: str = "ROC Curve",
    split_table: bool = False,
) -> CustomChart:
    """Per class, the false and true positive rates at each threshold (W&B's columns)."""
    import numpy as np

    truth, scores, classes = _scored(y_true, y_probas, classes_to_plot)

    def make() -> Table:
        table = Table(columns=["class", "fpr", "tpr"])
        for index, label in classes:
            fpr, tpr = _rates(truth == index, scores[:, index])
            keep = np.unique(
                np.linspace(0, len(fpr) - 1, min(len(fpr), MAX_CURVE_POINTS)).astype(int)
            )
            for i in keep:
                table.add_data(
                    _label(labels, label), round(float(fpr[i]), 3), round(float(tpr[i]), 3)
                )
        return table

    return CustomChart("roc_curve", {"x": "fpr", "y": "tpr", "stroke": "class"}, title, make)


def _scored(y_true: Any, y_probas: Any, classes_to_plot: Any) -> tuple[Any, Any, list]:
    import numpy as np

    if y_true is None or y_probas is None:
        raise ValueError(f"{WHAT}: the curve takes y_true and y_probas")
    truth = np.array(y_true)  # copies: the caller may change theirs
    scores = np.array(y_probas, dtype=np.float64)
    if scores.ndim != 2 or len(scores) != len(truth):
        raise ValueError(
            f"{WHAT}: y_probas must be (samples, classes) with one row per label in y_true"
        )
    present = np.unique(truth)
    wanted = (
        present if classes_to_plot is None else [c for c in present if c in set(classes_to_plot)]
    )
    return truth, scores, [(int(c), c) for c in wanted]


def _label(labels: list[str] | None, label: Any) -> Any:
    return (
        labels[int(label)]
        if labels is not None
        else (label.item() if hasattr(label, "item") else label)
    )


def _ranked(positive: Any, score: Any) -> tuple[Any, Any, int]:
    """Cumulative true and false positives at each distinct score, highest first."""
    import numpy as np

    order = np.argsort(-score, kind="stable")
    score, positive = score[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    true_positives = np.cumsum(positive)[last]
    false_positives = (last + 1) - true_positives
    return true_positives, false_positives, int(positive.sum())


def _precision_recall(positive: Any, score: Any) -> tuple[Any, Any]:
    import numpy as np

    true_positives, false_positives, total = _ranked(positive, score)
    precision = true_positives / np.maximum(true_positives + false_positives, 1)
    recall = true_positives / max(total, 1)
    return np.r_[1.0, precision], np.r_[0.0, recall]


def _rates(positive: Any, score: Any) -> tuple[Any, Any]:
    import numpy as np

    true_positives, false_positives, total = _ranked(positive, score)
    negatives = max(len(positive) - total, 1)
    return np.r_[0.0, false_positives / negatives], np.r_[0.0, true_positives / max(total, 1)]
