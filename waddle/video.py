"""``waddle.Video``: a clip of frames, stored as an animated GIF (or as the file it was given as).

The constructor (caller's thread) copies the frames and checks them: T×H×W×C or T×C×H×W with
1, 3 or 4 channels, uint8 or floats in [0, 1] (a torch tensor is only cloned on its device
there; its range is checked in the writer thread), a positive fps. The writer thread encodes an
animated GIF with Pillow, which every browser plays without plugins, and stores it in
``<run>/media/`` by content hash (waddle.media). GIF delays come in 10 ms units and browsers
slow down delays under 20 ms, so the stored ``fps`` is at most 50. A video file given by path
must exist; the writer thread copies it as it is.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from waddle import image, media

WHAT = "waddle.Video"
FILE_TYPES = {
    ".gif": "image/gif",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".ogv": "video/ogg",
    ".ogg": "video/ogg",
    ".webp": "image/webp",
    ".apng": "image/apng",
}
MAX_GIF_FPS = 50.0


class Video:
    """A video to log: ``run.log({"rollout": waddle.Video(frames, fps=8)})``.

    ``data_or_path``: a numpy array or torch tensor of frames, T×H×W×C or T×C×H×W (C is 1, 3
    or 4; uint8 or floats in [0, 1]), or the path of a .gif, .mp4, .webm, .ogv, .webp or .apng file.
    """

    def __init__(self, data_or_path: Any, fps: float = 4, caption: str | None = None) -> None:
        self.caption = media.check_caption(WHAT, caption)
        if isinstance(fps, (bool, str)) or not hasattr(fps, "__float__"):
            raise TypeError(f"{WHAT}: fps must be a number, not {fps!r}")
        if not 0 < float(fps) < math.inf:
            raise ValueError(f"{WHAT}: fps must be a positive number, not {fps}")
        self._frames: Any = None
        self._ready: Any = None  # for a CUDA tensor: whether its copy is made
        self._path: Path | None = None
        self._file: media.StoredOnce | None = None
        self.frames = self.width = self.height = None
        if media.is_path(data_or_path):
            self._path = media.existing_file(WHAT, data_or_path)
            suffix = self._path.suffix.lower()
            if suffix not in FILE_TYPES:
                raise ValueError(
                    f"{WHAT}: {str(data_or_path)!r} is not a format browsers play; use one of "
                    + ", ".join(FILE_TYPES)
                )
            self.mime = FILE_TYPES[suffix]
            self.fps = float(fps)
            return
        media.check_pillow(WHAT)
        self.mime = "image/gif"
        self.fps = min(float(fps), MAX_GIF_FPS)
        if media.is_torch(data_or_path):
            shape = tuple(data_or_path.shape)
            media.check_real(WHAT, data_or_path.dtype, shape)
            frames, self._ready = media.device_copy(data_or_path)
        else:
            frames = media.as_array(WHAT, data_or_path)
            shape = frames.shape
        if len(shape) != 4:
            raise ValueError(
                f"{WHAT}: frames of shape {shape} are not a video; pass T×H×W×C or T×C×H×W"
                + ("; for one picture use waddle.Image" if len(shape) == 3 else "")
            )
        if shape[-1] in (1, 3, 4):
            self._channels_first = False
            self.height, self.width = shape[1], shape[2]
        elif shape[1] in (1, 3, 4):
            self._channels_first = True
            self.height, self.width = shape[2], shape[3]
        else:
            raise ValueError(
                f"{WHAT}: frames of shape {shape} have neither 1, 3 nor 4 channels; "
                "pass T×H×W×C or T×C×H×W"
            )
        if not media.is_torch(frames):
            image._check_range(frames)
        self.frames = shape[0]
        self._frames = frames

    def _waddle_snapshot(self, key: str) -> media.Snapshot:
        if self._file is None:
            self._file = media.StoredOnce(self._path, self._encode_gif, ".gif")
        return media.Snapshot(self._store, self._ready)

    def _store(self, run_dir: Path) -> dict[str, Any]:
        where = self._file(run_dir)
        return {
            "_type": "video",
            **where,
            "mime": self.mime,
            "fps": self.fps,
            "frames": self.frames,
            "width": self.width,
            "height": self.height,
            "caption": self.caption,
        }

    def _encode_gif(self) -> bytes:
        import numpy as np

        pil_image = media.require_pillow(WHAT)
        frames = self._frames
        if media.is_torch(frames):
            frames = image.to_uint8(frames, False)  # range checked there; layout kept
        if self._channels_first:
            frames = np.moveaxis(frames, 1, -1)
        if frames.shape[-1] == 4:
            frames = frames[..., :3]  # GIF has no partial transparency
        pictures = [
            pil_image.fromarray(image.to_uint8(frame, False)).convert("RGB") for frame in frames
        ]
        out = io.BytesIO()
        pictures[0].save(
            out,
            format="GIF",
            save_all=True,
            append_images=pictures[1:],
            duration=max(20, round(1000.0 / self.fps)),
            loop=0,
        )
        return out.getvalue()

    def __repr__(self) -> str:
        return f"<waddle.Video {self.mime} frames={self.frames} fps={self.fps}>"
