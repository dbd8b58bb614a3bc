"""The run's content-addressed file store, shared by every rich data type and ``run.save()``.

Media files live in ``<run>/media/`` and saved files in ``<run>/files/``, each named by the
sha256 of its content plus an extension, so the same bytes are stored once however often they
are logged. This module promises:

- a stored file is complete or absent: it is written under a temporary name starting with
  ``.`` in the same folder, fsynced, then renamed into place, so a reader never sees half a file;
- the path it returns is relative to the run folder, uses ``/`` and never leaves the folder;
- nothing here runs on the caller's thread except :func:`check_pillow` and the checks in
  :func:`check_caption` and :func:`as_array`: hashing and writing happen in the writer thread.

It also holds the pieces the data types share: :class:`Snapshot` (the Deferred they hand to
``run.log()``), the lazy Pillow import, and the array checks common to images and video.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from waddle.values import Deferred, check_text

MEDIA_DIR = "media"
FILES_DIR = "files"

_FICLONE = 0x40049409  # Linux ioctl: copy-on-write clone (btrfs, XFS); fcntl.FICLONE in 3.12+
_CHUNK = 1 << 20


class Snapshot(Deferred):
    """What a rich value's ``_waddle_snapshot()`` returns: encode and store in the writer thread.

    ``ready``, when given, tells whether the data ``store`` reads is there yet (see
    :func:`device_copy`).
    """

    __slots__ = ("_ready", "store")

    def __init__(
        self, store: Callable[[Path], dict[str, Any]], ready: Callable[[], bool] | None = None
    ) -> None:
        self.store = store
        self._ready = ready

    def ready(self) -> bool:
        return self._ready is None or self._ready()

    def materialize(self, run_dir: Path) -> Any:
        return self.store(run_dir)


def device_copy(tensor: Any) -> tuple[Any, Callable[[], bool] | None]:
    """A copy of a torch tensor queued on its device (no host sync on the caller's thread),
    and, on a CUDA device, a check that tells whether the device has made it yet, so that the
    writer thread reads it only then instead of waiting for the device."""
    copy = tensor.detach().clone()
    if not copy.is_cuda:
        return copy, None
    import torch

    done = torch.cuda.Event()
    done.record(torch.cuda.current_stream(copy.device))
    return copy, done.query


def store_bytes(run_dir: Path, data: bytes, extension: str, folder: str = MEDIA_DIR) -> dict:
    """Store ``data`` as ``<folder>/<sha256><extension>``; return path, sha256 and bytes."""
    digest = hashlib.sha256(data).hexdigest()
    relative = f"{folder}/{digest}{extension}"
    target = run_dir / relative
    if not target.exists():
        directory = target.parent
        directory.mkdir(parents=True, exist_ok=True)
        temp = directory / f".{digest}.{os.getpid()}.tmp"
        try:
            with open(temp, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
    return {"path": relative, "sha256": digest, "bytes": len(data)}


def store_file(
    run_dir: Path, source: Path, extension: str, folder: str = MEDIA_DIR, link: bool = False
) -> dict:
    """Copy the file ``source`` into ``<folder>/<sha256><extension>``; return path, sha256, bytes.

    The copy is a copy-on-write clone where the file system offers one, else a plain copy; with
    ``link=True`` a hard link where the file system allows it (it shares the source's content, so
    a later in-place rewrite of the source changes the stored file too). The hash is taken from
    the stored copy, so it always matches the stored bytes.
    """
    directory = run_dir / folder
    directory.mkdir(parents=True, exist_ok=True)
    temp = directory / f".incoming.{os.getpid()}.{id(source):x}.tmp"
    try:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        linked = False
        if link:
            try:
                os.link(source, temp)
                linked = True
            except OSError:
                pass  # another file system, or links not allowed: copy instead
        if not linked:
            _copy(source, temp)
        digest = hashlib.sha256()
        size = 0
        with open(temp, "rb") as file:
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        hexdigest = digest.hexdigest()
        relative = f"{folder}/{hexdigest}{extension}"
        target = run_dir / relative
        if not target.exists():
            os.replace(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return {"path": relative, "sha256": hexdigest, "bytes": size}


class StoredOnce:
    """Where a media value's file is in a run folder: the source file it was made from, or
    the bytes ``encode()`` gives, stored on first use and remembered, so a value logged again
    to the same run is neither encoded nor hashed again. Writer thread only."""

    def __init__(self, source: Path | None, encode: Callable[[], bytes], extension: str) -> None:
        self.source = source
        self._encode = encode
        self._extension = extension
        self._stored: tuple[Path, dict] | None = None

    def __call__(self, run_dir: Path) -> dict:
        stored = self._stored
        if stored is None or stored[0] != run_dir:
            if self.source is not None:
                where = store_file(run_dir, self.source, self.source.suffix.lower())
            else:
                where = store_bytes(run_dir, self._encode(), self._extension)
            stored = self._stored = (run_dir, where)
        return stored[1]


def _copy(source: Path, temp: Path) -> None:
    with open(source, "rb") as src, open(temp, "wb") as dst:
        cloned = False
        if sys.platform.startswith("linux"):
            import fcntl

            try:
                fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
                cloned = True
            except OSError:
                pass
        if not cloned:
            shutil.copyfileobj(src, dst, _CHUNK)
        dst.flush()
        os.fsync(dst.fileno())


def check_pillow(what: str) -> None:
    """Raise the one-line fix if Pillow is missing, without importing it.

    Importing Pillow takes about 10 ms; the caller's thread only asks whether it is there and
    the writer thread, which encodes, imports it.
    """
    module = sys.modules.get("PIL", False)
    if module is None or (module is False and importlib.util.find_spec("PIL") is None):
        require_pillow(what)


def require_pillow(what: str) -> Any:
    """The ``PIL.Image`` module, or an ImportError naming the one-line fix."""
    try:
        from PIL import Image as pil_image
    except ImportError:
        raise ImportError(
            f"{what} needs Pillow, which is not installed: pip install -e '.[media]' in a clone of waddle (or pip install pillow)"
        ) from None
    return pil_image


def check_caption(what: str, caption: Any) -> str | None:
    if caption is None:
        return caption
    if isinstance(caption, str):
        return check_text(f"{what}: caption", str(caption))
    raise TypeError(f"{what}: caption must be a string, not {type(caption).__name__}")


def existing_file(what: str, path: Any) -> Path:
    """``path`` as an absolute Path to an existing regular file, or a clear error."""
    file = Path(os.fspath(path)).expanduser()
    if not file.exists():
        raise FileNotFoundError(f"{what}: no such file: {str(path)!r}")
    if not file.is_file():
        raise ValueError(f"{what}: {str(path)!r} is not a regular file")
    return file.absolute()


def is_path(data: Any) -> bool:
    return isinstance(data, (str, os.PathLike))


def is_torch(data: Any) -> bool:
    return type(data).__module__.startswith("torch") and hasattr(data, "detach")


def as_array(what: str, data: Any) -> Any:
    """A private numpy copy of ``data`` (an array or nested sequence), checked to be real numbers."""
    import numpy as np

    try:
        array = np.array(data, copy=True)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{what}: cannot read the data as an array: {error}") from None
    check_real(what, array.dtype, array.shape)
    return array


def check_real(what: str, dtype: Any, shape: tuple) -> None:
    """Raise unless ``dtype`` is bool, integer or float and the shape holds at least one value."""
    kind = getattr(dtype, "kind", None)
    if kind is None:  # a torch dtype
        name = str(dtype)
        kind = (
            "c" if "complex" in name else "f" if "float" in name else "b" if "bool" in name else "i"
        )
    if kind == "c":
        raise TypeError(f"{what}: complex numbers are not supported; pass abs() or the real part")
    if kind not in "biuf":
        raise TypeError(f"{what}: the data has dtype {dtype}; pass real numbers")
    if any(size == 0 for size in shape):
        raise ValueError(f"{what}: the array of shape {tuple(shape)} is empty")
