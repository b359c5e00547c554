"""Human3.6M as VideoPose3D prepares it: ``data_3d_h36m.npz`` and ``data_2d_h36m_*.npz``.

- ``data_3d_h36m.npz``: ``positions_3d``, a pickled dict ``[subject][action] -> (T, 32, 3)`` world
  coordinates of Human3.6M's 32 mocap joints. VideoPose3D's ``prepare_data_h36m.py`` divides by
  1000, so its files hold metres; files written from the raw mocap hold millimetres. ``units="auto"``
  tells them apart by size (median |coordinate| above 20 means millimetres). Only the 17 joints
  VideoPose3D keeps (:data:`H36M_KEPT_JOINTS`) are returned, which are epiflow's ``h36m17`` in order.
- ``data_2d_h36m_<source>.npz``: ``positions_2d``, a pickled dict ``[subject][action] -> list of
  4 arrays (T, J, 2)`` pixels, one per camera in :data:`H36M_CAMERA_IDS` order, and ``metadata``
  (``layout_name`` "h36m" or "coco" where given, ``num_joints``, ``keypoints_symmetry``). The files
  carry no confidence: every finite point gets 1.

Both files are pickles (``allow_pickle=True``): load only files from a source you trust.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from epiflow.keypoints import Keypoints

__all__ = ["H36M_KEPT_JOINTS", "H36M_CAMERA_IDS", "H36M_IMAGE_SIZES", "load_h36m_3d",
           "load_h36m_2d", "h36m32_to_h36m17"]

#: Indices of the 32 mocap joints VideoPose3D keeps, giving h36m17's order.
H36M_KEPT_JOINTS = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
H36M_CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")
#: (width, height) of each camera's images, pixels.
H36M_IMAGE_SIZES = ((1000, 1002), (1000, 1000), (1000, 1000), (1000, 1002))
_LAYOUTS = {"h36m": "h36m17", "coco": "coco17"}


def _load_pickled(path, key: str):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Human3.6M file {str(path)!r} does not exist")
    with np.load(path, allow_pickle=True) as z:
        if key not in z:
            raise ValueError(f"{path}: no {key!r} array (has {list(z.keys())}); expected a "
                             f"VideoPose3D-prepared Human3.6M npz")
        value = z[key].item() if z[key].dtype == object else z[key]
        meta = z["metadata"].item() if "metadata" in z else {}
    if not isinstance(value, dict):
        raise ValueError(f"{path}: {key!r} must be a dict [subject][action]; got {type(value).__name__}")
    return value, meta


def h36m32_to_h36m17(positions, units: str = "auto", source: str = "<array>") -> np.ndarray:
    """Keep VideoPose3D's 17 of Human3.6M's 32 joints and express them in metres.

    Args:
        positions: (T, 32, 3). units: "m", "mm" or "auto" (see the module docstring).
        source: names the data in errors.

    Returns:
        (T, 17, 3) metres, ``h36m17`` order.
    """
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 3 or pos.shape[1:] != (32, 3):
        raise ValueError(f"{source}: positions must have shape (T, 32, 3); got {pos.shape}")
    if units not in ("m", "mm", "auto"):
        raise ValueError(f"units must be 'm', 'mm' or 'auto'; got {units!r}")
    if units == "auto":
        units = "mm" if np.nanmedian(np.abs(pos)) > 20 else "m"
    kept = pos[:, list(H36M_KEPT_JOINTS)]
    return kept / 1000.0 if units == "mm" else kept


def load_h36m_3d(path, units: str = "auto") -> dict[str, dict[str, np.ndarray]]:
    """Read ``data_3d_h36m.npz``: ``[subject][action] -> (T, 17, 3)`` metres, ``h36m17``, world frame."""
    data, _ = _load_pickled(path, "positions_3d")
    return {s: {a: h36m32_to_h36m17(p, units, f"{path}[{s}][{a}]") for a, p in acts.items()}
            for s, acts in data.items()}


def _joint_set(meta: dict, n_joints: int, path) -> str:
    layout = meta.get("layout_name", "h36m" if n_joints == 17 else None)
    if layout not in _LAYOUTS:
        raise ValueError(f"{path}: keypoint layout {layout!r} with {n_joints} joints; this reader "
                         f"knows {list(_LAYOUTS)} (17 joints)")
    return _LAYOUTS[layout]


def _keypoints(views, meta: dict, where: str) -> Keypoints:
    arrays = [np.asarray(v, dtype=np.float64) for v in views]
    if len(arrays) != len(H36M_CAMERA_IDS) or any(a.ndim != 3 or a.shape[2] != 2 for a in arrays):
        raise ValueError(f"{where}: expected a list of {len(H36M_CAMERA_IDS)} arrays (T, J, 2); got "
                         f"{[a.shape for a in arrays]}")
    T = min(len(a) for a in arrays)  # detections may run a frame or two longer in some cameras
    xy = np.stack([a[:T] for a in arrays], axis=1)
    data = np.concatenate([xy, np.isfinite(xy).all(-1, keepdims=True).astype(float)], -1)
    return Keypoints(data, _joint_set(meta, xy.shape[2], where), H36M_CAMERA_IDS,
                     np.array(H36M_IMAGE_SIZES), fps=50.0)


def load_h36m_2d(path) -> dict[str, dict[str, Keypoints]]:
    """Read ``data_2d_h36m_<source>.npz``: ``[subject][action] ->`` :class:`Keypoints`.

    Each is (T, 4, 17, 3) pixels with confidence 1, cameras :data:`H36M_CAMERA_IDS`, 50 fps, T the
    shortest camera's length; joint set ``h36m17`` or ``coco17`` from the metadata's layout.
    """
    data, meta = _load_pickled(path, "positions_2d")
    return {s: {a: _keypoints(v, meta, f"{path}[{s}][{a}]") for a, v in acts.items()}
            for s, acts in data.items()}
