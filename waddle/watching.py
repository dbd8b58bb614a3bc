"""``run.watch(model)``: histograms of a torch model's gradients and parameters, as W&B logs them.

Hooks on the model record, every ``log_freq`` backward passes (gradients, counted per
parameter) or forward passes (parameters), one ``waddle.Histogram`` per parameter under
``gradients/<name>`` or ``parameters/<name>`` (``graph_<i>`` in front of the names of every
model watched after the first), added to the current step (``commit=False``). The hook only
queues a copy of the tensor on its device (one kernel launch per parameter, on the step that
logs); binning happens in the writer thread, once the device has made the copy. ``log_graph``
records the module tree as text under ``graph`` (``graph_<i>``). ``unwatch`` removes the hooks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

BINS = 64  # as W&B's watch
WATCH_LOG = ("gradients", "parameters", "all", None)


class Watch:
    """The hooks one ``watch()`` put on one model."""

    def __init__(self, run: Any, model: Any, prefix: str, log: str | None, log_freq: int) -> None:
        self.model = model
        self.handles: list[Any] = []
        if log in ("parameters", "all"):
            counter = [0]

            def after_forward(module: Any, inputs: Any, output: Any) -> None:
                if _due(counter, log_freq):
                    run.log(
                        _histograms(module.named_parameters(), "parameters/" + prefix, False),
                        commit=False,
                    )

            self.handles.append(model.register_forward_hook(after_forward))
        if log in ("gradients", "all"):
            for name, parameter in model.named_parameters():
                if parameter.requires_grad:
                    self.handles.append(
                        parameter.register_hook(
                            _gradient_hook(run, f"gradients/{prefix}{name}", log_freq)
                        )
                    )

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def watch(
    run: Any,
    models: Any,
    log: str | None,
    log_freq: int,
    idx: int | None,
    log_graph: bool,
    first_index: int,
) -> list[Watch]:
    """Hook ``models`` (one or a sequence); ``first_index`` is the run's count of watched models."""
    import torch

    if log not in WATCH_LOG:
        raise ValueError("watch(): log must be 'gradients', 'parameters', 'all' or None")
    if isinstance(log_freq, bool) or not isinstance(log_freq, int) or log_freq < 1:
        raise ValueError(f"watch(): log_freq must be a positive integer, not {log_freq!r}")
    models = list(models) if isinstance(models, Sequence) else [models]
    for model in models:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"watch() takes torch.nn.Module models, not {type(model).__name__}")
    watches = []
    start = first_index if idx is None else idx
    for offset, model in enumerate(models):
        index = start + offset
        prefix = f"graph_{index}" if index > 0 else ""
        watches.append(Watch(run, model, prefix, log, log_freq))
        if log_graph:
            from waddle.text import Text

            run.log({prefix or "graph": Text(repr(model))}, commit=False)
    return watches


def _due(counter: list[int], log_freq: int) -> bool:
    counter[0] += 1
    if counter[0] < log_freq:
        return False
    counter[0] = 0
    return True


def _gradient_hook(run: Any, key: str, log_freq: int) -> Any:
    counter = [0]

    def hook(gradient: Any) -> None:
        if _due(counter, log_freq):
            run.log(_histograms([(key, gradient)], "", True), commit=False)

    return hook


def _histograms(named: Any, prefix: str, full_names: bool) -> dict[str, Any]:
    from waddle.histogram import Histogram

    return {
        (name if full_names else prefix + name): Histogram(tensor.detach(), num_bins=BINS)
        for name, tensor in named
        if tensor is not None and tensor.numel() > 0
    }
