"""``waddle.Image``: a picture with an optional caption and bounding boxes.

The constructor runs on the caller's thread and promises to be cheap and to catch bad input
there: it copies what could change (a numpy array, a PIL image, a torch tensor via
``detach().clone()`` with no host sync), reads a file given by path, and checks the shape, the
dtype, the value range (numpy; a torch tensor's range is checked in the writer thread) and the
boxes. The writer thread encodes PNG (a JPEG, PNG, GIF or WebP file is kept as it is) and stores
it in ``<run>/media/`` by content hash (waddle.media). Boxes are normalised to one shape, in
pixels; docs/format.md ("Rich values") has the exact JSON.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from waddle import figure, media
from waddle.values import check_text

WHAT = "waddle.Image"
# File formats a browser shows as they are; any other image file is re-encoded as PNG.
KEPT_FORMATS = {"PNG": "png", "JPEG": "jpeg", "GIF": "gif", "WEBP": "webp"}
# Pillow modes PNG stores as they are; others are converted to RGB(A).
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"}
# A box may overshoot the image by this fraction of its side (float rounding), then is clamped.
_BOX_SLACK = 1e-6


class Image:
    """An image to log: ``run.log({"sample": waddle.Image(array, caption="a cat")})``.

    ``data``: a numpy array (HW, HWC or CHW with 1, 3 or 4 channels; uint8, bool, integers in
    0..255, or floats in [0, 1]), a PIL image, a torch tensor of the same shapes, the path of
    an image file or its bytes in an ``io.BytesIO``, or a matplotlib figure (rendered to PNG
    now, see waddle/figure.py). ``boxes``: W&B's ``{"predictions": {"box_data": [...], "class_labels":
    {...}}}``, or a list of ``{"x_min", "y_min", "x_max", "y_max", "label", "score"}`` dicts in
    pixels (add ``"domain": "relative"`` for fractions of the image size), or lavd's
    ``{"xStart", "yStart", "xEnd", "yEnd", "className", "probability"}`` dicts in pixels.
    ``classes``: the names of the classes a box may have (lavd), in class id order;
    ``threshold``: the score below which the dashboard hides a box at first (lavd: boxes less
    probable than this are not counted as valid). Every box is stored, whatever its score.
    """

    def __init__(
        self,
        data: Any,
        caption: str | None = None,
        boxes: Any = None,
        classes: Sequence[str] | None = None,
        threshold: float | None = None,
    ) -> None:
        self.caption = media.check_caption(WHAT, caption)
        self.classes = _class_names(classes)
        self.threshold = None if threshold is None else _number("image", "threshold", threshold)
        self._pixels: Any = None  # numpy array, HW or HWC, or a torch tensor (checked later)
        self._ready: Any = None  # for a CUDA tensor: whether its copy is made
        self._chw = False
        self._pil: Any = None
        self._file: bytes | None = None
        self._format = "png"
        self._stored: tuple[Path, dict] | None = None
        if figure.is_figure(data):  # rendered now: matplotlib is not thread-safe
            data = io.BytesIO(figure.render_png(data))
        if media.is_path(data) or isinstance(data, io.BytesIO):
            pil_image = media.require_pillow(WHAT)
            self._file = (
                data.getvalue()
                if isinstance(data, io.BytesIO)
                else media.existing_file(WHAT, data).read_bytes()
            )
            try:
                with pil_image.open(io.BytesIO(self._file)) as opened:
                    self.width, self.height = opened.size
                    file_format = opened.format
            except Exception as error:
                raise ValueError(f"{WHAT}: {str(data)!r} is not an image file: {error}") from None
            if file_format in KEPT_FORMATS:
                self._format = KEPT_FORMATS[file_format]
        elif type(data).__module__.startswith("PIL."):
            media.check_pillow(WHAT)
            if not hasattr(data, "copy") or not hasattr(data, "size"):
                raise TypeError(f"{WHAT}: unsupported PIL object {type(data).__name__}")
            self._pil = data.copy()
            self.width, self.height = self._pil.size
            if self.width == 0 or self.height == 0:
                raise ValueError(f"{WHAT}: the PIL image is empty ({self.width}×{self.height})")
        elif media.is_torch(data):
            media.check_pillow(WHAT)
            media.check_real(WHAT, data.dtype, tuple(data.shape))
            self.height, self.width, self._chw = _layout(tuple(data.shape))
            self._pixels, self._ready = media.device_copy(data)
        else:
            media.check_pillow(WHAT)
            array = media.as_array(WHAT, data)
            self.height, self.width, self._chw = _layout(array.shape)
            _check_range(array)
            self._pixels = array
        self.boxes = normalise_boxes(boxes, self.width, self.height, self.classes)

    def _waddle_snapshot(self, key: str) -> media.Snapshot:
        return media.Snapshot(self._store, self._ready)

    def _store(self, run_dir: Path) -> dict[str, Any]:
        stored = self._stored
        if stored is None or stored[0] != run_dir:
            if self._file is not None and self._format != "png":
                data, extension = self._file, "." + self._format
            else:
                data, extension = self._encode_png(), ".png"
            stored = (run_dir, media.store_bytes(run_dir, data, extension))
            self._stored = stored
        value: dict[str, Any] = {
            "_type": "image",
            **stored[1],
            "mime": "image/" + self._format,
            "width": self.width,
            "height": self.height,
            "caption": self.caption,
        }
        if self.boxes is not None:
            value["boxes"] = self.boxes
        if self.classes is not None:
            value["classes"] = self.classes
        if self.threshold is not None:
            value["threshold"] = self.threshold
        return value

    def _encode_png(self) -> bytes:
        pil_image = media.require_pillow(WHAT)
        if self._file is not None:
            with pil_image.open(io.BytesIO(self._file)) as opened:
                picture = opened.convert("RGBA" if "A" in opened.getbands() else "RGB")
        elif self._pil is not None:
            picture = self._pil
            if picture.mode not in _PNG_MODES:
                picture = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
        else:
            picture = pil_image.fromarray(to_uint8(self._pixels, self._chw))
        out = io.BytesIO()
        picture.save(out, format="PNG")
        return out.getvalue()

    def __repr__(self) -> str:
        caption = f" caption={self.caption!r}" if self.caption else ""
        return f"<waddle.Image {self.width}×{self.height}{caption}>"


def _layout(shape: tuple) -> tuple[int, int, bool]:
    """(height, width, channels first) of an image array, or a clear error."""
    if len(shape) == 2:
        return shape[0], shape[1], False
    if len(shape) == 3:
        if shape[-1] in (1, 3, 4):
            return shape[0], shape[1], False
        if shape[0] in (1, 3, 4):
            return shape[1], shape[2], True
        raise ValueError(
            f"{WHAT}: an array of shape {shape} has neither 1, 3 nor 4 channels; "
            "pass HW, HWC or CHW"
        )
    raise ValueError(
        f"{WHAT}: a {len(shape)}-D array of shape {shape} is not an image; pass HW, HWC or CHW"
        + ("; for frames use waddle.Video, or log one image per key" if len(shape) == 4 else "")
    )


def _check_range(array: Any) -> None:
    """Raise unless the pixel values fit the dtype's convention (see the class docstring)."""
    kind = array.dtype.kind
    if kind == "b" or array.dtype.name == "uint8":
        return
    low, high = array.min(), array.max()
    if kind == "f":
        if math.isnan(low) or math.isnan(high):
            raise ValueError(f"{WHAT}: the pixel values contain NaN")
        if low < 0 or high > 1:
            raise ValueError(
                f"{WHAT}: float pixels must be in [0, 1], these range from {low:g} to {high:g}; "
                "divide by 255, or pass uint8"
            )
    elif low < 0 or high > 255:
        raise ValueError(
            f"{WHAT}: integer pixels must be in 0..255, these range from {low} to {high}"
        )


def to_uint8(pixels: Any, channels_first: bool) -> Any:
    """HW or HWC uint8 pixels from a checked array or tensor (writer thread)."""
    import numpy as np

    if media.is_torch(pixels):
        tensor = pixels.detach().cpu()
        if tensor.dtype.is_floating_point:
            tensor = tensor.float()
        array = tensor.numpy()
        _check_range(array)
    else:
        array = pixels
    if channels_first:
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[:, :, 0]
    kind = array.dtype.kind
    if kind == "f":
        array = np.rint(array * 255.0)
    elif kind == "b":
        array = array * np.uint8(255)
    return np.ascontiguousarray(array, dtype=np.uint8)


# ---- boxes ---------------------------------------------------------------------------


def normalise_boxes(
    boxes: Any, width: int, height: int, classes: list[str] | None = None
) -> list[dict] | None:
    """Boxes in one shape, in pixels (see docs/format.md), or a clear error."""
    if boxes is None:
        return None
    out: list[dict] = []
    if isinstance(boxes, Mapping):  # W&B: {group: {"box_data": [...], "class_labels": {...}}}
        for group, spec in boxes.items():
            if type(group) is not str or not group:
                raise TypeError(f"{WHAT}: box group names must be strings, got {group!r}")
            if not isinstance(spec, Mapping) or "box_data" not in spec:
                raise ValueError(
                    f"{WHAT}: boxes[{group!r}] must be a dict with 'box_data' "
                    "(and optionally 'class_labels')"
                )
            labels = _class_labels(group, spec.get("class_labels"))
            box_data = spec["box_data"]
            if not isinstance(box_data, Sequence) or isinstance(box_data, str):
                raise TypeError(f"{WHAT}: boxes[{group!r}]['box_data'] must be a list of boxes")
            for index, box in enumerate(box_data):
                where = f"box {index} of {group!r}"
                out.append(_wandb_box(where, group, box, labels, width, height))
    elif isinstance(boxes, Sequence) and not isinstance(boxes, str):
        for index, box in enumerate(boxes):
            if isinstance(box, Mapping) and "xStart" in box:
                out.append(_lavd_box(f"box {index}", box, width, height, classes))
            else:
                out.append(_simple_box(f"box {index}", box, width, height))
    else:
        raise TypeError(
            f"{WHAT}: boxes must be W&B's {{group: {{'box_data': [...]}}}} or a list of box "
            f"dicts, not {type(boxes).__name__}"
        )
    return out


def _class_labels(group: str, labels: Any) -> dict[int, str]:
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise TypeError(f"{WHAT}: boxes[{group!r}]['class_labels'] must map class ids to names")
    out = {}
    for class_id, name in labels.items():
        out[_integer(f"class id in boxes[{group!r}]['class_labels']", class_id)] = str(name)
    return out


def _wandb_box(
    where: str, group: str, box: Any, labels: dict[int, str], width: int, height: int
) -> dict:
    if not isinstance(box, Mapping) or not isinstance(box.get("position"), Mapping):
        raise ValueError(f"{WHAT}: {where} needs a 'position' dict")
    position = box["position"]
    domain = box.get("domain")
    if domain not in (None, "pixel"):
        raise ValueError(
            f"{WHAT}: {where} has domain {domain!r}; use 'pixel', or leave it out for "
            "coordinates relative to the image size"
        )
    if "middle" in position:
        middle = position["middle"]
        if not isinstance(middle, Sequence) or len(middle) != 2:
            raise ValueError(f"{WHAT}: {where}: 'middle' must be [x, y]")
        x, y = _number(where, "middle", middle[0]), _number(where, "middle", middle[1])
        half_w = _number(where, "width", position.get("width")) / 2
        half_h = _number(where, "height", position.get("height")) / 2
        corners = (x - half_w, y - half_h, x + half_w, y + half_h)
    elif all(name in position for name in ("minX", "minY", "maxX", "maxY")):
        corners = tuple(
            _number(where, name, position[name]) for name in ("minX", "minY", "maxX", "maxY")
        )
    else:
        raise ValueError(
            f"{WHAT}: {where}: position needs minX, maxX, minY, maxY or middle, width, height"
        )
    class_id = box.get("class_id")
    if class_id is not None:
        class_id = _integer(f"{where}: class_id", class_id)
    caption = box.get("box_caption")
    return _box(
        where,
        group,
        corners,
        domain == "pixel",
        width,
        height,
        class_id=class_id,
        label=labels.get(class_id) if class_id is not None else None,
        caption=None if caption is None else str(caption),
        scores=_scores(where, box.get("scores")),
    )


def _simple_box(where: str, box: Any, width: int, height: int) -> dict:
    if not isinstance(box, Mapping):
        raise TypeError(f"{WHAT}: {where} must be a dict, not {type(box).__name__}")
    missing = [name for name in ("x_min", "y_min", "x_max", "y_max") if name not in box]
    if missing:
        raise ValueError(f"{WHAT}: {where} is missing {', '.join(missing)}")
    domain = box.get("domain", "pixel")
    if domain not in ("pixel", "relative"):
        raise ValueError(f"{WHAT}: {where} has domain {domain!r}; use 'pixel' or 'relative'")
    corners = tuple(
        _number(where, name, box[name]) for name in ("x_min", "y_min", "x_max", "y_max")
    )
    label = box.get("label")
    class_id = box.get("class_id")
    scores = {} if box.get("score") is None else {"score": _number(where, "score", box["score"])}
    return _box(
        where,
        "boxes",
        corners,
        domain == "pixel",
        width,
        height,
        class_id=None if class_id is None else _integer(f"{where}: class_id", class_id),
        label=None if label is None else str(label),
        caption=None,
        scores=scores,
    )


def _lavd_box(where: str, box: Mapping, width: int, height: int, classes: list[str] | None) -> dict:
    """lavd's box: two corners in pixels, an optional class name and probability."""
    missing = [name for name in ("xStart", "yStart", "xEnd", "yEnd") if name not in box]
    if missing:
        raise ValueError(f"{WHAT}: {where} is missing {', '.join(missing)}")
    corners = tuple(
        _number(where, name, box[name]) for name in ("xStart", "yStart", "xEnd", "yEnd")
    )
    label = box.get("className")
    if label is not None:
        label = check_text(f"{WHAT}: {where}: className", str(label))
    probability = box.get("probability")
    scores = {} if probability is None else {"score": _number(where, "probability", probability)}
    return _box(
        where,
        "boxes",
        corners,
        True,
        width,
        height,
        class_id=classes.index(label) if classes and label in classes else None,
        label=label,
        caption=None,
        scores=scores,
    )


def _class_names(classes: Any) -> list[str] | None:
    if classes is None:
        return None
    if isinstance(classes, str) or not isinstance(classes, Sequence):
        raise TypeError(f"{WHAT}: classes must be a list of class names, not {classes!r}")
    names = []
    for name in classes:
        if type(name) is not str or not name:
            raise TypeError(f"{WHAT}: class names must be non-empty strings, got {name!r}")
        names.append(check_text(f"{WHAT}: a class name", name))
    return names


def _box(
    where: str,
    group: str,
    corners: tuple,
    pixels: bool,
    width: int,
    height: int,
    **fields: Any,
) -> dict:
    x_min, y_min, x_max, y_max = corners
    if not pixels:
        x_min, x_max, y_min, y_max = x_min * width, x_max * width, y_min * height, y_max * height
    if x_min > x_max or y_min > y_max:
        raise ValueError(
            f"{WHAT}: {where} is inverted: min ({x_min:g}, {y_min:g}) is past max "
            f"({x_max:g}, {y_max:g})"
        )
    slack_x, slack_y = width * _BOX_SLACK, height * _BOX_SLACK
    if x_min < -slack_x or y_min < -slack_y or x_max > width + slack_x or y_max > height + slack_y:
        unit = "" if pixels else " (relative coordinates, scaled to pixels)"
        raise ValueError(
            f"{WHAT}: {where} ({x_min:g}, {y_min:g})–({x_max:g}, {y_max:g}){unit} lies outside "
            f"the {width}×{height} image"
        )
    return {
        "group": group,
        "x_min": min(max(x_min, 0.0), width),
        "y_min": min(max(y_min, 0.0), height),
        "x_max": min(max(x_max, 0.0), width),
        "y_max": min(max(y_max, 0.0), height),
        **fields,
    }


def _scores(where: str, scores: Any) -> dict[str, float]:
    if scores is None:
        return {}
    if not isinstance(scores, Mapping):
        raise TypeError(f"{WHAT}: {where}: scores must map names to numbers")
    return {str(name): _number(where, f"scores[{name!r}]", value) for name, value in scores.items()}


def _number(where: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if type(value).__module__ != "numpy" or getattr(value, "dtype", None) is None:
            raise TypeError(f"{WHAT}: {where}: {name} must be a number, not {value!r}")
        if value.dtype.kind not in "iuf":
            raise TypeError(f"{WHAT}: {where}: {name} must be a number, not {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{WHAT}: {where}: {name} is {number}")
    return number


def _integer(what: str, value: Any) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)  # JSON round trips turn int keys into strings
        raise TypeError(f"{WHAT}: {what} must be an integer, not {value!r}")
    return value.__index__()
