"""Multi-camera 2D keypoints in memory, and the plain keypoints npz every command accepts.

In memory (:class:`Keypoints`) the array is ``(T, C, J, 3)`` = frames, cameras, joints,
(x, y, confidence), pixels: one person; or ``(T, C, P, J, 3)``: P unassociated detection slots
per camera-frame (several people, slot p of one camera unrelated to slot p of another; an empty
slot is NaN with confidence 0). On disk the npz holds:

- ``keypoints`` (C, T, J, 3) or (C, T, P, J, 3) float: x, y in pixels, confidence in [0, 1];
  missing = NaN, conf 0;
- ``joint_set`` str (one of :data:`epiflow.skeleton.JOINT_SETS`);
- ``camera_names`` (C,) str;
- ``image_size`` (C, 2) int: (width, height) of each camera's images;
- ``fps`` float, optional.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from epiflow.input_files import open_npz
from epiflow.outputs import atomic_open
from epiflow.skeleton import get_joint_set, map_to_h36m

__all__ = ["Keypoints", "load_npz", "save_npz", "check_keypoint_values", "normalised_units",
           "NPZ_LAYOUT"]

#: The keypoints npz's layout, as errors quote it.
NPZ_LAYOUT = ("keypoints (C, T, J, 3) float (x, y pixels, confidence in [0, 1]; or "
              "(C, T, P, J, 3) with P >= 1 detection slots per camera-frame for several people), "
              "joint_set, camera_names (C,), image_size (C, 2) (width, height), fps (optional)")


@dataclass(frozen=True, eq=False)
class Keypoints:
    """2D keypoints of one person, or of several unassociated people, seen by C synchronized
    cameras.

    Attributes:
        data: (T, C, J, 3) float64, one person; or (T, C, P, J, 3), P >= 1 unassociated detection
            slots per camera-frame (:attr:`has_people`); x, y pixels, confidence in [0, 1];
            missing = NaN with conf 0.
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
        if data.ndim not in (4, 5) or data.shape[1] != C or data.shape[-2] != len(js) or \
                data.shape[-1] != 3:
            raise ValueError(f"keypoints must have shape (T, C={C}, J={len(js)} for {js.name}, 3) "
                             f"or (T, C={C}, P, J={len(js)}, 3); got {data.shape}")
        if data.ndim == 5 and data.shape[2] == 0:
            raise ValueError(f"keypoints have a P axis (detection slots, axis 2 of (T, C, P, J, 3))"
                             f" of size 0 (shape {data.shape}); expected P >= 1: a camera-frame "
                             f"with no person is a slot of NaN with confidence 0")
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
    def has_people(self) -> bool:
        """Whether :attr:`data` has the P axis of detection slots, (T, C, P, J, 3)."""
        return self.data.ndim == 5

    def with_people(self) -> "Keypoints":
        """The same keypoints with a P axis: (T, C, 1, J, 3) for one person, else unchanged."""
        return self if self.has_people else replace(self, data=self.data[:, :, None])

    @property
    def xy(self) -> np.ndarray:
        """(T, C, J, 2) pixels ((T, C, P, J, 2) with a P axis)."""
        return self.data[..., :2]

    @property
    def confidence(self) -> np.ndarray:
        """(T, C, J) in [0, 1] ((T, C, P, J) with a P axis); 0 where missing."""
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
    """Write the keypoints npz (``keypoints`` stored as (C, T, J, 3), or (C, T, P, J, 3) with a P
    axis; see the module docstring)."""
    extra = {} if kp.fps is None else {"fps": np.float64(kp.fps)}
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, keypoints=np.swapaxes(kp.data, 0, 1).astype(np.float32),
                            joint_set=np.str_(kp.joint_set),
                            camera_names=np.array(kp.camera_names, dtype=str),
                            image_size=kp.image_size, **extra)


def load_npz(path) -> Keypoints:
    """Read the keypoints npz (layout in the module docstring), checked: errors name the file,
    what it holds and what was expected (:data:`NPZ_LAYOUT`, :func:`check_keypoint_values`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"keypoints file {str(path)!r} does not exist")
    with _open_npz(path) as z:
        missing = [k for k in ("keypoints", "joint_set", "camera_names", "image_size") if k not in z]
        if missing:
            raise ValueError(f"{path}: missing {missing}; it holds {sorted(z.files)}; expected a "
                             f"keypoints npz: {NPZ_LAYOUT}")
        arr = _npz_array(z, "keypoints", path)
        if arr.ndim not in (4, 5) or arr.shape[-1] != 3:
            raise ValueError(f"{path}: keypoints must be (C, T, J, 3) = cameras, frames, joints, "
                             f"(x, y, confidence), or (C, T, P, J, 3) with P detection slots per "
                             f"camera-frame; got shape {arr.shape}")
        if arr.ndim == 5 and arr.shape[2] == 0:
            raise ValueError(f"{path}: keypoints (C, T, P, J, 3) has a P axis (axis 2, detection "
                             f"slots per camera-frame) of size 0, shape {arr.shape}; expected "
                             f"P >= 1: write a camera-frame with no person as a slot of NaN with "
                             f"confidence 0")
        data = np.swapaxes(arr, 0, 1)
        check_keypoint_values(data, str(path))
        try:
            return Keypoints(data, str(_npz_array(z, "joint_set", path)),
                             tuple(_npz_array(z, "camera_names", path).tolist()),
                             _npz_array(z, "image_size", path),
                             float(_npz_array(z, "fps", path)) if "fps" in z else None)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}: {err}") from None


def _open_npz(path: Path):
    """The npz at ``path`` (:func:`~epiflow.input_files.open_npz`), refused as a keypoints npz."""
    return open_npz(path, f"a keypoints npz: {NPZ_LAYOUT}")


def _npz_array(z, key: str, path: Path) -> np.ndarray:
    """``z[key]``, or a ValueError when it is an object array (which would need pickle)."""
    try:
        return z[key]
    except ValueError as err:
        raise ValueError(f"{path}: {key} cannot be read without pickle ({err}); write it as "
                         f"numbers or strings, expected: {NPZ_LAYOUT}") from None


def check_keypoint_values(data: np.ndarray, source: str) -> None:
    """Raise ValueError naming ``source`` unless raw keypoints hold something to work with.

    Args:
        data: (T, C, J, 3) or (T, C, P, J, 3) as read, before :class:`Keypoints` marks missing
            observations.

    Refused: a dtype that is not floating point (integers, text, objects); no frames or no
    cameras; a finite confidence outside [0, 1] (percentages, logits); an x or y that is NaN or
    inf while its confidence is above 0 (a missing observation is NaN with confidence 0).
    """
    if data.dtype.kind != "f":
        raise ValueError(f"{source}: keypoints have dtype {data.dtype}; expected floating point "
                         f"(x, y pixels, confidence in [0, 1], NaN where missing)")
    T, C = data.shape[:2]
    if T == 0 or C == 0:
        raise ValueError(f"{source}: keypoints hold {T} frames of {C} cameras (shape (T, C, ..., "
                         f"J, 3) = {data.shape}); expected at least one frame and one camera")
    conf = data[..., 2]
    bad = np.isfinite(conf) & ((conf < 0) | (conf > 1))
    if bad.any():
        raise ValueError(f"{source}: {int(bad.sum())} confidences lie outside [0, 1] (from "
                         f"{np.nanmin(conf):g} to {np.nanmax(conf):g}); expected a probability in "
                         f"[0, 1] per keypoint: rescale them (percentages / 100, logits through a "
                         f"sigmoid)")
    lost = (conf > 0) & ~np.isfinite(data[..., :2]).all(-1)
    if lost.any():
        first = np.argwhere(lost)[0]
        t, c, j = first[0], first[1], first[-1]
        slot = f", slot {first[2]}" if lost.ndim == 4 else ""
        raise ValueError(f"{source}: {int(lost.sum())} keypoints have a NaN or inf x or y but a "
                         f"confidence above 0 (the first: frame {t}, camera {c}{slot}, joint "
                         f"{j}); a missing keypoint is NaN with confidence 0: set their "
                         f"confidence to 0")


def normalised_units(xy: np.ndarray, sizes: np.ndarray) -> str | None:
    """What is wrong when keypoints look normalised instead of in pixels, or None.

    The rule: every finite x, y lies within [-1.5, 1.5] (a whole person inside a pixel and a
    half) while the images are larger than 16 pixels, or of unknown size (0).

    Args:
        xy: (..., 2) keypoints, pixels expected. sizes: (C, 2) image (width, height), 0 unknown.
    """
    finite = xy[np.isfinite(xy).all(-1)]
    sizes = np.asarray(sizes)
    if not len(finite) or np.abs(finite).max() > 1.5 or 0 < sizes.max() <= 16:
        return None
    images = (f"the images are {sizes[0][0]}x{sizes[0][1]} pixels" if sizes.max() > 0
              else "pixels were expected")
    return (f"the keypoints look normalised (every x, y within [{finite.min():.2f}, "
            f"{finite.max():.2f}]) but {images}; epiflow needs pixel coordinates: multiply x by "
            f"the image width and y by its height")
