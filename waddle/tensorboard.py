"""TensorBoard's writer API on a waddle run: ``SummaryWriter``, ``patch()`` and ``unpatch()``.

``waddle.tensorboard.SummaryWriter`` takes the signatures of ``torch.utils.tensorboard`` and
``tensorboardX``'s writers, so that switching is one import. It promises:

- every value goes to a waddle run as a keyed log event (docs/format.md, "Keyed steps"): a
  tag's ``global_step`` may repeat or go back, and a ``walltime`` given is kept exactly;
- nothing waits for a device on the caller's thread: tensors go through waddle's deferred
  values (a copy queued on their device, read by the writer thread);
- nothing is lost on an exception: values are queued at once and the run's exit hook writes
  them, as for ``run.log()``;
- the run is the current one (``waddle.init()``) when there is one, else a run of its own,
  named after the log folder as TensorBoard names runs, finished by ``close()``.

How TensorBoard's values map (README, "Coming from TensorBoard"):

- ``add_scalars(main, {"a": x, "b": y})``: keys ``main/a`` and ``main/b`` (TensorBoard writes
  one sub-run folder per sub-series instead);
- ``add_text``: a ``markdown`` value (TensorBoard renders text as markdown);
- ``add_hparams``: the hyperparameters into ``run.config``, the metrics into ``run.summary``;
- ``add_figure``, ``add_image(s)``, ``add_audio``, ``add_video``, ``add_histogram``,
  ``add_mesh`` (a point cloud): waddle's rich values; ``add_pr_curve``: a ``pr_curve`` chart;
- ``add_custom_scalars``: its layout in ``run.summary["tensorboard/custom_scalars"]``;
  ``add_graph``: the model's module tree as text under ``graph``; ``add_embedding``: ignored,
  with one warning.

``patch()`` makes torch's and tensorboardX's own writers mirror what they write into the
current run (W&B's ``sync_tensorboard``); see :func:`patch`.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import weakref
from datetime import datetime
from pathlib import Path
from typing import Any

from waddle.notice import Notices

_notices = Notices()
_owned: weakref.WeakSet = weakref.WeakSet()  # runs started by a writer of this module

# TensorBoard's default image layouts.
_IMAGE_FORMATS = {"CHW", "HWC", "HW"}
_IMAGES_FORMATS = {"NCHW", "NHWC"}


class SummaryWriter:
    """TensorBoard's ``SummaryWriter``, writing to a waddle run (module docstring).

    ``log_dir`` (tensorboardX: ``logdir``) names the run when the writer starts its own; its
    default is TensorBoard's ``runs/<date>_<host><comment>``. ``purge_step``, ``max_queue``,
    ``flush_secs``, ``filename_suffix`` and ``write_to_disk`` are accepted and mean nothing
    here (waddle's writer thread decides when to write). ``run``: log to this run instead of
    the current one; ``prefix``: put in front of every key (``patch()`` uses it).
    """

    def __init__(
        self,
        log_dir: str | os.PathLike | None = None,
        comment: str = "",
        purge_step: int | None = None,
        max_queue: int = 10,
        flush_secs: int = 120,
        filename_suffix: str = "",
        *,
        logdir: str | os.PathLike | None = None,
        write_to_disk: bool = True,
        run: Any = None,
        prefix: str = "",
        **kwargs: Any,
    ) -> None:
        log_dir = log_dir if log_dir is not None else logdir
        if log_dir is None:
            stamp = datetime.now().strftime("%b%d_%H-%M-%S")
            log_dir = os.path.join("runs", f"{stamp}_{socket.gethostname()}{comment}")
        self.log_dir = str(log_dir)
        self.logdir = self.log_dir  # tensorboardX's name
        self._prefix = prefix
        self._own = False
        if run is None:
            from waddle.session import current_run, init

            run = current_run()
            if run is None or run in _owned:  # each writer of its own is a run, as in TensorBoard
                run = init(name=Path(self.log_dir).name or None, reinit="create_new")
                _owned.add(run)
                self._own = True
        self.run = run
        self._closed = False
        # add_scalar, the call made millions of times, is the run's own function for this
        # writer: one Python frame for the common case (Run._scalar_adder). A subclass's own
        # add_scalar stays its own.
        self._add_scalar = run._scalar_adder(prefix)
        if type(self).add_scalar is SummaryWriter.add_scalar:
            self.add_scalar = self._add_scalar

    # ---- the scalars ---------------------------------------------------------------

    def add_scalar(
        self,
        tag: str,
        scalar_value: Any,
        global_step: int | None = None,
        walltime: float | None = None,
        new_style: bool = False,
        double_precision: bool = False,
    ) -> None:
        """``global_step`` may repeat or go back; ``walltime`` is kept as given. (A writer's
        own, made in ``__init__``, is called instead; this one calls it.)"""
        self._add_scalar(tag, scalar_value, global_step, walltime)

    def add_scalars(
        self,
        main_tag: str,
        tag_scalar_dict: dict[str, Any],
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """One key per sub-series: ``main_tag/<key>``."""
        main = self._prefix + main_tag
        data = {f"{main}/{key}": value for key, value in tag_scalar_dict.items()}
        self.run._log_keyed(data, global_step, walltime)

    # ---- rich values -----------------------------------------------------------------

    def add_histogram(
        self,
        tag: str,
        values: Any,
        global_step: int | None = None,
        bins: Any = "tensorflow",
        walltime: float | None = None,
        max_bins: int | None = None,
    ) -> None:
        """A histogram of ``values`` (numpy or tensor): ``bins`` as a number of bins, else 64
        (or ``max_bins``), evenly spaced from the smallest value to the largest."""
        from waddle.histogram import Histogram

        count = bins if isinstance(bins, int) and not isinstance(bins, bool) else max_bins or 64
        self._log(tag, Histogram(values, num_bins=count), global_step, walltime)

    def add_histogram_raw(
        self,
        tag: str,
        min: float,
        max: float,
        num: int,
        sum: float,
        sum_squares: float,
        bucket_limits: Any,
        bucket_counts: Any,
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """A histogram already binned: ``bucket_limits`` are the right edges, ``min`` the
        left edge of the first bucket."""
        from waddle.histogram import Histogram

        edges = [float(min), *(float(limit) for limit in bucket_limits)]
        counts = [float(count) for count in bucket_counts]
        self._log(tag, Histogram(np_histogram=(counts, edges)), global_step, walltime)

    def add_image(
        self,
        tag: str,
        img_tensor: Any,
        global_step: int | None = None,
        walltime: float | None = None,
        dataformats: str = "CHW",
    ) -> None:
        from waddle.image import Image

        self._log(tag, Image(_to_hwc(img_tensor, dataformats)), global_step, walltime)

    def add_images(
        self,
        tag: str,
        img_tensor: Any,
        global_step: int | None = None,
        walltime: float | None = None,
        dataformats: str = "NCHW",
    ) -> None:
        """A batch of images: one ``list`` value of images under ``tag``."""
        from waddle.image import Image

        if dataformats.upper() not in _IMAGES_FORMATS:
            raise ValueError(f"add_images: dataformats {dataformats!r} is not NCHW or NHWC")
        layout = dataformats.upper()[1:]
        images = [Image(_to_hwc(image, layout)) for image in img_tensor]
        self._log(tag, images, global_step, walltime)

    def add_figure(
        self,
        tag: str,
        figure: Any,
        global_step: int | None = None,
        close: bool = True,
        walltime: float | None = None,
    ) -> None:
        """A matplotlib figure (or a list of them), rendered to PNG now (matplotlib is not
        thread-safe), then closed unless ``close=False``."""
        from waddle.image import Image

        figures = figure if isinstance(figure, list) else [figure]
        images = [Image(one) for one in figures]
        if close:
            import matplotlib.pyplot as plt

            for one in figures:
                plt.close(one)
        self._log(tag, images if isinstance(figure, list) else images[0], global_step, walltime)

    def add_text(
        self,
        tag: str,
        text_string: str,
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """Text, rendered as markdown (as TensorBoard does)."""
        from waddle.text import Markdown

        self._log(tag, Markdown(text_string), global_step, walltime)

    def add_audio(
        self,
        tag: str,
        snd_tensor: Any,
        global_step: int | None = None,
        sample_rate: int = 44100,
        walltime: float | None = None,
    ) -> None:
        """Audio of shape (1, L) or (L,), values in [-1, 1]."""
        from waddle.audio import Audio

        self._log(tag, Audio(snd_tensor.reshape(-1), sample_rate), global_step, walltime)

    def add_video(
        self,
        tag: str,
        vid_tensor: Any,
        global_step: int | None = None,
        fps: float = 4,
        walltime: float | None = None,
    ) -> None:
        """Videos of shape (N, T, C, H, W): one video, or a list when N > 1."""
        from waddle.video import Video

        if len(vid_tensor.shape) != 5:
            raise ValueError(
                f"add_video: a video tensor has shape (N, T, C, H, W), not {tuple(vid_tensor.shape)}"
            )
        videos = [Video(video, fps=fps) for video in vid_tensor]
        self._log(tag, videos if len(videos) > 1 else videos[0], global_step, walltime)

    def add_mesh(
        self,
        tag: str,
        vertices: Any,
        colors: Any = None,
        faces: Any = None,
        config_dict: Any = None,
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """The vertices (and colours) as a point cloud; faces are not kept (one warning)."""
        if faces is not None:
            _notices.show("mesh-faces", "add_mesh: faces are not kept; the vertices are, as points")
        inputs = (vertices,) if colors is None else (vertices, colors)
        self._log(tag, _made(_point_cloud, *inputs), global_step, walltime)

    def add_pr_curve(
        self,
        tag: str,
        labels: Any,
        predictions: Any,
        global_step: int | None = None,
        num_thresholds: int = 127,
        weights: Any = None,
        walltime: float | None = None,
    ) -> None:
        """A binary precision-recall curve (``labels`` true or false, ``predictions`` the
        probability of true), as waddle's ``pr_curve`` chart."""
        chart = functools.partial(_pr_curve, tag)
        self._log(tag, _made(chart, labels, predictions), global_step, walltime)

    # ---- run-level records -------------------------------------------------------------

    def add_hparams(
        self,
        hparam_dict: dict[str, Any],
        metric_dict: dict[str, Any],
        hparam_domain_discrete: Any = None,
        run_name: str | None = None,
        global_step: int | None = None,
    ) -> None:
        """The hyperparameters into ``run.config``, the metrics into ``run.summary``."""
        self.run.config.update({self._prefix + k: v for k, v in hparam_dict.items()})
        self.run.summary.update({self._prefix + k: _number(v) for k, v in metric_dict.items()})

    def add_custom_scalars(self, layout: dict[str, Any]) -> None:
        """The layout, recorded in ``run.summary["tensorboard/custom_scalars"]``."""
        self.run.summary.update({"tensorboard/custom_scalars": layout})

    def add_custom_scalars_multilinechart(
        self, tags: list[str], category: str = "default", title: str = "untitled"
    ) -> None:
        self.add_custom_scalars({category: {title: ["Multiline", tags]}})

    def add_custom_scalars_marginchart(
        self, tags: list[str], category: str = "default", title: str = "untitled"
    ) -> None:
        self.add_custom_scalars({category: {title: ["Margin", tags]}})

    def add_graph(
        self,
        model: Any,
        input_to_model: Any = None,
        verbose: bool = False,
        use_strict_trace: bool = True,
        **kwargs: Any,
    ) -> None:
        """The model's module tree, as text under ``graph`` (no trace is run)."""
        from waddle.text import Text

        self._log("graph", Text(repr(model)), 0, None)

    def add_embedding(self, mat: Any, *args: Any, **kwargs: Any) -> None:
        _notices.show("embedding", "add_embedding is not recorded by waddle (ignored)")

    def add_onnx_graph(self, *args: Any, **kwargs: Any) -> None:
        _notices.show("onnx", "add_onnx_graph is not recorded by waddle (ignored)")

    # ---- the writer itself -------------------------------------------------------------

    def get_logdir(self) -> str:
        return self.log_dir

    def flush(self) -> None:
        """Wait until everything added so far is on disk."""
        self.run.flush()

    def close(self) -> None:
        """Flush; finish the run if this writer started it. Later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        if self._own:
            self.run.finish()
        else:
            self.run.flush()

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _log(self, tag: str, value: Any, global_step: Any, walltime: Any) -> None:
        self.run._log_keyed({self._prefix + tag: value}, global_step, walltime)


def _to_hwc(image: Any, dataformats: str) -> Any:
    """``image`` in ``dataformats`` as HW or HWC, as a view (a tensor stays on its device)."""
    layout = dataformats.upper()
    if layout not in _IMAGE_FORMATS:
        raise ValueError(f"add_image: dataformats {dataformats!r} is not one of CHW, HWC, HW")
    if layout == "CHW":
        if len(image.shape) != 3:
            raise ValueError(
                f"add_image: a CHW image has 3 dimensions, not shape {tuple(image.shape)}"
            )
        return image.permute(1, 2, 0) if hasattr(image, "permute") else image.transpose(1, 2, 0)
    return image


def _made(build: Any, *inputs: Any) -> Any:
    """``build(*arrays)``, a waddle value, from ``inputs``: at once for host data (a mistake
    raises here); for torch tensors, in the writer thread, once the copies queued on their
    device are made (no wait on the caller's thread)."""
    from waddle import media

    if not any(media.is_torch(one) for one in inputs):
        return build(*inputs)
    copies = [media.device_copy(one) if media.is_torch(one) else (one, None) for one in inputs]
    checks = [ready for _, ready in copies if ready is not None]

    def store(run_dir: Path) -> Any:
        arrays = [copy.cpu().numpy() if media.is_torch(copy) else copy for copy, _ in copies]
        return build(*arrays)._waddle_snapshot("").materialize(run_dir)

    return media.Snapshot(store, (lambda: all(ready() for ready in checks)) if checks else None)


def _point_cloud(vertices: Any, colors: Any = None) -> Any:
    import numpy as np

    from waddle.object3d import Object3D

    points = np.asarray(vertices, dtype=np.float32).reshape(-1, 3)
    if colors is not None:
        rgb = np.asarray(colors, dtype=np.float32).reshape(-1, 3)
        points = np.concatenate([points, rgb], axis=1)
    return Object3D(points)


def _pr_curve(title: str, labels: Any, predictions: Any) -> Any:
    import numpy as np

    from waddle import plot

    truth = np.asarray(labels).reshape(-1).astype(bool).astype(int)
    scores = np.asarray(predictions, dtype=np.float64).reshape(-1)
    probas = np.stack([1 - scores, scores], axis=1)
    return plot.pr_curve(truth, probas, classes_to_plot=[1], title=title)


def _number(value: Any) -> Any:
    """A metric of add_hparams as a plain number (tensors and numpy scalars included)."""
    if hasattr(value, "item"):
        return value.item()
    return value


# ---- patch(): mirroring torch's and tensorboardX's own writers ----------------------------

# The SummaryWriter methods mirrored, with what waddle's writer does for each.
MIRRORED = (
    "add_scalar",
    "add_scalars",
    "add_histogram",
    "add_histogram_raw",
    "add_image",
    "add_images",
    "add_figure",
    "add_text",
    "add_audio",
    "add_video",
    "add_mesh",
    "add_pr_curve",
    "add_hparams",
    "add_custom_scalars",
    "add_graph",
)
# The writer classes patch() knows: module, class name.
WRITERS = (
    ("torch.utils.tensorboard.writer", "SummaryWriter"),
    ("tensorboardX.writer", "SummaryWriter"),
)

_patched: dict[tuple[type, str], Any] = {}  # (class, method) -> the original
_state = threading.local()  # .inside: a mirrored call is under way on this thread
_root: list[str | None] = [None]


def patch(root_logdir: str | os.PathLike | None = None) -> None:
    """Make torch's and tensorboardX's ``SummaryWriter`` (those installed, imported or not)
    also write what they are given into the current waddle run, as it is written.

    Each value keeps its tag, step and wall time; a writer whose log folder is not
    ``root_logdir`` (default: the folder of the first writer that writes) puts that folder,
    relative to the root (or its name, outside it), in front of its tags: ``val/loss`` for
    ``writer("runs/x/val").add_scalar("loss", ...)`` beside ``runs/x``. Nothing is mirrored
    while no run is current. ``unpatch()`` undoes it.
    """
    import importlib

    _root[0] = None if root_logdir is None else os.path.abspath(root_logdir)
    for module_name, class_name in WRITERS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        cls = getattr(module, class_name)
        for method in MIRRORED:
            if (cls, method) in _patched or not hasattr(cls, method):
                continue
            original = getattr(cls, method)
            _patched[(cls, method)] = original
            setattr(cls, method, _mirroring(original, method))


def unpatch() -> None:
    """Give torch's and tensorboardX's writers their own methods back."""
    for (cls, method), original in _patched.items():
        setattr(cls, method, original)
    _patched.clear()


def _mirroring(original: Any, method: str) -> Any:
    @functools.wraps(original)
    def mirrored(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_state, "inside", False):  # add_hparams' own writer, and such
            return original(self, *args, **kwargs)
        _state.inside = True
        try:
            result = original(self, *args, **kwargs)
            mirror = _mirror_of(self)
            if mirror is not None:
                getattr(mirror, method)(*args, **kwargs)
        finally:
            _state.inside = False
        return result

    return mirrored


def _mirror_of(writer: Any) -> SummaryWriter | None:
    """The waddle writer mirroring ``writer`` into the current run, made on first use."""
    from waddle.session import current_run

    run = current_run()
    if run is None:
        return None
    mirror = writer.__dict__.get("_waddle_mirror")
    if mirror is None or mirror.run is not run:
        log_dir = os.path.abspath(_log_dir_of(writer))
        if _root[0] is None:
            _root[0] = log_dir
        mirror = SummaryWriter(log_dir, run=run, prefix=_prefix(log_dir, _root[0]))
        writer.__dict__["_waddle_mirror"] = mirror
    return mirror


def _log_dir_of(writer: Any) -> str:
    get = getattr(writer, "get_logdir", None)
    return str(get() if get is not None else getattr(writer, "logdir", "."))


def _prefix(log_dir: str, root: str) -> str:
    if log_dir == root:
        return ""
    relative = os.path.relpath(log_dir, root)
    if relative.startswith(".."):
        relative = os.path.basename(log_dir)
    return relative.replace(os.sep, "/") + "/"
