"""``waddle.Object3D``: a point cloud or a 3-D model logged with a run, as W&B's ``Object3D``.

A point cloud is a numpy array of shape (N, 3) (x, y, z), (N, 4) (and a category) or (N, 6) (and
r, g, b in 0..255); it is stored as little-endian float32 rows in ``media/<sha256>.pts.f32``
(the value says ``points`` and ``columns``), which a browser reads without parsing. A 3-D model
file (glTF, GLB, OBJ, STL) is stored as it is. Either can be downloaded; the dashboard draws
point clouds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from waddle import media

WHAT = "waddle.Object3D"
MODEL_TYPES = {
    ".gltf": "model/gltf+json",
    ".glb": "model/gltf-binary",
    ".obj": "model/obj",
    ".stl": "model/stl",
}
POINT_COLUMNS = (3, 4, 6)


class Object3D:
    def __init__(self, data_or_path: Any, caption: str | None = None, **kwargs: Any) -> None:
        self.caption = media.check_caption(WHAT, caption)
        self._points: Any = None
        self._path: Path | None = None
        if media.is_path(data_or_path):
            self._path = media.existing_file(WHAT, data_or_path)
            if self._path.suffix.lower() not in MODEL_TYPES:
                raise ValueError(
                    f"{WHAT}: {str(data_or_path)!r} is not a 3-D model file; use one of "
                    + ", ".join(MODEL_TYPES)
                )
            return
        import numpy as np

        points = media.as_array(WHAT, data_or_path)
        if points.ndim != 2 or points.shape[1] not in POINT_COLUMNS:
            raise ValueError(
                f"{WHAT}: a point cloud has shape (N, 3), (N, 4) or (N, 6), not {points.shape}"
            )
        if not np.isfinite(points).all():
            raise ValueError(f"{WHAT}: a point cloud holds NaN or infinite coordinates")
        self._points = np.ascontiguousarray(points, dtype="<f4")  # a private copy

    @classmethod
    def from_numpy(cls, data: Any) -> Object3D:
        return cls(data)

    @classmethod
    def from_file(cls, data_or_path: Any, file_type: str | None = None) -> Object3D:
        return cls(data_or_path)

    def _waddle_snapshot(self, key: str) -> media.Snapshot:
        points, path, caption = self._points, self._path, self.caption

        def store(run_dir: Path) -> dict[str, Any]:
            if path is not None:
                where = media.store_file(run_dir, path, path.suffix.lower())
                return {
                    "_type": "object3d",
                    **where,
                    "mime": MODEL_TYPES[path.suffix.lower()],
                    "caption": caption,
                }
            where = media.store_bytes(run_dir, points.tobytes(), ".pts.f32")
            return {
                "_type": "object3d",
                **where,
                "mime": "application/octet-stream",
                "points": int(points.shape[0]),
                "columns": int(points.shape[1]),
                "caption": caption,
            }

        return media.Snapshot(store)

    def __repr__(self) -> str:
        what = self._path.name if self._path is not None else f"{len(self._points)} points"
        return f"<waddle.Object3D {what}>"
