"""Multi-camera 2D keypoints in memory, and the plain keypoints npz every command accepts.

In memory (:class:`Keypoints`) the array is ``(T, C, J, 3)`` = frames, cameras, joints,
(x, y, confidence), pixels. On disk the npz holds:

- ``keypoints`` (C, T, J, 3) float: x, y in pixels, confidence in [0, 1]; missing = NaN, conf 0;
- ``joint_set`` str (one of :data:`epiflow.skeleton.JOINT_SETS`);
- ``camera_names`` (C,) str;
- ``image_size`` (C, 2) int: (width, height) of each camera's images;
- ``fps`` float, optional.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from epiflow.outputs import atomic_open
from epiflow.skeleton import get_joint_set, map_to_h36m

__all__ = ["Keypoints", "load_npz", "save_npz"]


@dataclass(frozen=True, eq=False)
class Keypoints:
    """2D keypoints of one person seen by C synchronized cameras.

    Attributes:
        data: (T, C, J, 3) float64; x, y pixels, confidence in [0, 1]; missing = NaN with conf 0.
        joint_set: the joint set's name (``h36m17``, ``blazepose33``, ...).
        camera_names: C names, in the order of axis 1.
        image_size: (C, 2) int, (width, height) pixels.
        fps: frames per second, or None when unknown.
    """

    data: np.ndarray
    joint_set: str
    camera_names: tuple[str, ...]
    image_size: np.ndarray
    fps: float | None = None

    def __post_init__(self):
        data = np.array(self.data, dtype=np.float64)
        js = get_joint_set(self.joint_set)
        C = len(self.camera_names)
        if data.ndim != 4 or data.shape[1] != C or data.shape[2] != len(js) or data.shape[3] != 3:
            raise ValueError(f"keypoints must have shape (T, C={C}, J={len(js)} for {js.name}, 3); "
                             f"got {data.shape}")
        size = np.asarray(self.image_size, dtype=np.int64).reshape(-1, 2) if np.size(
            self.image_size) else np.zeros((0, 2), np.int64)
        if size.shape != (C, 2):
            raise ValueError(f"image_size must have shape (C={C}, 2) as (width, height); "
                             f"got {np.shape(self.image_size)}")
        conf = data[..., 2]
        missing = ~np.isfinite(data[..., :2]).all(-1) | ~np.isfinite(conf) | (conf <= 0)
        data[missing] = (np.nan, np.nan, 0.0)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "image_size", size)
        object.__setattr__(self, "camera_names", tuple(str(n) for n in self.camera_names))

    @property
    def n_frames(self) -> int:
        return self.data.shape[0]

    @property
    def n_cameras(self) -> int:
        return self.data.shape[1]

    @property
    def xy(self) -> np.ndarray:
        """(T, C, J, 2) pixels."""
        return self.data[..., :2]

    @property
    def confidence(self) -> np.ndarray:
        """(T, C, J) in [0, 1]; 0 where missing."""
        return self.data[..., 2]

    def to_h36m(self) -> "Keypoints":
        """The same keypoints on the canonical 17 joints (see :mod:`epiflow.skeleton`)."""
        if self.joint_set == "h36m17":
            return self
        return replace(self, data=map_to_h36m(self.data, self.joint_set, confidence=True),
                       joint_set="h36m17")

    def select_cameras(self, names) -> "Keypoints":
        """Keypoints of some cameras, in the order given."""
        idx = [self.camera_names.index(n) for n in names]
        return replace(self, data=self.data[:, idx], camera_names=tuple(names),
                       image_size=self.image_size[idx])

    def frames(self, start: int, stop: int | None = None) -> "Keypoints":
        """Frames ``start:stop``."""
        return replace(self, data=self.data[start:stop])


def save_npz(kp: Keypoints, path) -> None:
    """Write the keypoints npz (``keypoints`` stored as (C, T, J, 3), see the module docstring)."""
    extra = {} if kp.fps is None else {"fps": np.float64(kp.fps)}
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, keypoints=kp.data.transpose(1, 0, 2, 3).astype(np.float32),
                            joint_set=np.str_(kp.joint_set),
                            camera_names=np.array(kp.camera_names, dtype=str),
                            image_size=kp.image_size, **extra)


def load_npz(path) -> Keypoints:
    """Read the keypoints npz; errors name the file and the key that is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"keypoints file {str(path)!r} does not exist")
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("keypoints", "joint_set", "camera_names", "image_size") if k not in z]
        if missing:
            raise ValueError(f"{path}: missing {missing}; a keypoints npz holds keypoints "
                             f"(C, T, J, 3), joint_set, camera_names (C,), image_size (C, 2), fps")
        arr = z["keypoints"]
        if arr.ndim != 4:
            raise ValueError(f"{path}: keypoints must be (C, T, J, 3); got shape {arr.shape}")
        try:
            return Keypoints(arr.transpose(1, 0, 2, 3), str(z["joint_set"]),
                             tuple(z["camera_names"].tolist()), z["image_size"],
                             float(z["fps"]) if "fps" in z else None)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
