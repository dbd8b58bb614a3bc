"""``waddle.Audio``: a sound clip, stored as WAV (or as the file it was given as).

The constructor (caller's thread) copies the samples and checks them: shape (samples,) or
(samples, channels), real numbers, floats in [-1, 1] (for a torch tensor, which is only
cloned on its device there, the range is checked in the writer thread), a positive sample rate. A file given by
path must exist and have an extension a browser plays; it is copied as it is by the writer
thread when the writer gets to it (within about one flush interval), so do not rewrite it right
after logging. The writer thread encodes 16-bit PCM WAV with the stdlib ``wave`` module and
stores it in ``<run>/media/`` by content hash (waddle.media).
"""

from __future__ import annotations

import io
import math
import wave
from pathlib import Path
from typing import Any

from waddle import media

WHAT = "waddle.Audio"
FILE_TYPES = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
    ".webm": "audio/webm",
}
MAX_CHANNELS = 16


class Audio:
    """Audio to log: ``run.log({"speech": waddle.Audio(samples, sample_rate=16000)})``.

    ``data``: a numpy array (or torch tensor) of shape (samples,) or (samples, channels),
    float in [-1, 1] or int16; or the path of a .wav, .mp3, .ogg, .flac, .m4a or .webm file
    (then ``sample_rate`` may be None).
    """

    def __init__(
        self, data: Any, sample_rate: int | None = None, caption: str | None = None
    ) -> None:
        self.caption = media.check_caption(WHAT, caption)
        self._samples: Any = None
        self._ready: Any = None  # for a CUDA tensor: whether its copy is made
        self._path: Path | None = None
        self._file: media.StoredOnce | None = None
        self.channels: int | None = None
        self.frames: int | None = None
        if media.is_path(data):
            self._path = media.existing_file(WHAT, data)
            suffix = self._path.suffix.lower()
            if suffix not in FILE_TYPES:
                raise ValueError(
                    f"{WHAT}: {str(data)!r} is not a format browsers play; use one of "
                    + ", ".join(FILE_TYPES)
                )
            self.mime = FILE_TYPES[suffix]
            self.sample_rate = None if sample_rate is None else _rate(sample_rate)
            if suffix == ".wav":
                try:
                    with wave.open(str(self._path), "rb") as reader:
                        self.sample_rate = reader.getframerate()
                        self.channels = reader.getnchannels()
                        self.frames = reader.getnframes()
                except (wave.Error, EOFError) as error:
                    # The stdlib reads PCM only; a float WAV still plays in a browser.
                    with open(self._path, "rb") as file:
                        header = file.read(12)
                    if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
                        raise ValueError(
                            f"{WHAT}: {str(data)!r} is not a WAV file: {error}"
                        ) from None
            return
        self.mime = "audio/wav"
        if sample_rate is None:
            raise TypeError(f"{WHAT}: sample_rate is required for sample data")
        self.sample_rate = _rate(sample_rate)
        if media.is_torch(data):
            media.check_real(WHAT, data.dtype, tuple(data.shape))
            shape = tuple(data.shape)
            if "float" not in str(data.dtype) and str(data.dtype) != "torch.int16":
                raise TypeError(f"{WHAT}: samples of dtype {data.dtype}: pass float or int16")
            # Queued on the tensor's device; the range is checked in the writer thread.
            array, self._ready = media.device_copy(data)
        else:
            array = media.as_array(WHAT, data)
            shape = array.shape
        _check_shape(shape)
        if not media.is_torch(array):
            _check_values(array)
        self._samples = array
        self.frames = shape[0]
        self.channels = 1 if len(shape) == 1 else shape[1]

    def _waddle_snapshot(self, key: str) -> media.Snapshot:
        if self._file is None:
            self._file = media.StoredOnce(self._path, self._encode_wav, ".wav")
        return media.Snapshot(self._store, self._ready)

    def _store(self, run_dir: Path) -> dict[str, Any]:
        where = self._file(run_dir)
        duration = None
        if self.frames is not None and self.sample_rate:
            duration = self.frames / self.sample_rate
        return {
            "_type": "audio",
            **where,
            "mime": self.mime,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "duration": duration,
            "caption": self.caption,
        }

    def _encode_wav(self) -> bytes:
        import numpy as np

        samples = self._samples
        if media.is_torch(samples):
            tensor = samples.detach().cpu()
            samples = (tensor.double() if tensor.dtype.is_floating_point else tensor).numpy()
            _check_values(samples)
        if samples.dtype.kind == "f":
            samples = np.rint(samples.astype(np.float64) * 32767.0)
        pcm = np.ascontiguousarray(samples, dtype="<i2")
        out = io.BytesIO()
        with wave.open(out, "wb") as writer:
            writer.setnchannels(self.channels)
            writer.setsampwidth(2)
            writer.setframerate(self.sample_rate)
            writer.writeframes(pcm.tobytes())
        return out.getvalue()

    def __repr__(self) -> str:
        return f"<waddle.Audio {self.mime} sample_rate={self.sample_rate}>"


def _check_shape(shape: tuple) -> None:
    if len(shape) == 2 and shape[1] > MAX_CHANNELS and shape[0] <= MAX_CHANNELS:
        raise ValueError(
            f"{WHAT}: shape {shape} looks like (channels, samples); "
            "pass (samples, channels), e.g. data.T"
        )
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] > MAX_CHANNELS):
        raise ValueError(
            f"{WHAT}: an array of shape {shape} is not audio; "
            f"pass (samples,) or (samples, channels ≤ {MAX_CHANNELS})"
        )


def _check_values(array: Any) -> None:
    if array.dtype.kind == "f":
        low, high = array.min(), array.max()
        if math.isnan(low) or math.isnan(high):
            raise ValueError(f"{WHAT}: the samples contain NaN")
        if low < -1 or high > 1:
            raise ValueError(
                f"{WHAT}: float samples must be in [-1, 1], these range from {low:g} to "
                f"{high:g}; scale them, e.g. x / abs(x).max()"
            )
    elif array.dtype.name != "int16":
        raise TypeError(f"{WHAT}: samples of dtype {array.dtype}: pass float in [-1, 1] or int16")


def _rate(sample_rate: Any) -> int:
    if isinstance(sample_rate, bool) or not hasattr(sample_rate, "__index__"):
        if isinstance(sample_rate, float) and sample_rate.is_integer():
            sample_rate = int(sample_rate)
        else:
            raise TypeError(f"{WHAT}: sample_rate must be an integer (Hz), not {sample_rate!r}")
    rate = sample_rate.__index__()
    if not 1 <= rate <= 2**31 - 1:
        raise ValueError(f"{WHAT}: sample_rate {rate} is not a positive number of Hz")
    return rate
