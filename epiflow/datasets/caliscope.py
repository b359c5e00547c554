"""caliscope recordings: MediaPipe Holistic 2D points per camera, and caliscope's own 3D points.

``xy_HOLISTIC.csv`` columns: ``sync_index, port, frame_index, frame_time, point_id, img_loc_x,
img_loc_y, obj_loc_x, obj_loc_y``; one row per seen point. Point ids 0-32 are MediaPipe's 33 body
landmarks (epiflow's ``blazepose33`` order); higher ids (face, hands) are ignored here. Pixels are in
the unturned sensor image (see :mod:`epiflow.calibration.formats_caliscope` on ``rotation_count``).
The file has no confidence: a point present gets confidence 1, an absent one is NaN with 0.
Cameras are ``cam_<port>``, matching the ``[cam_N]`` tables of caliscope's ``config.toml``.

``xyz_HOLISTIC.csv`` (caliscope's triangulation, a reference, not ground truth) columns:
``<row>, sync_index, point_id, x_coord, y_coord, z_coord`` in metres, caliscope's world frame.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from epiflow.keypoints import Keypoints

__all__ = ["read_caliscope_xy", "read_caliscope_xyz", "read_caliscope_recording"]

_N_BODY = 33
_XY_COLUMNS = ("sync_index", "port", "frame_time", "point_id", "img_loc_x", "img_loc_y")
_XYZ_COLUMNS = ("sync_index", "point_id", "x_coord", "y_coord", "z_coord")


def _read_columns(path: Path, columns: tuple[str, ...]) -> np.ndarray:
    """(N, len(columns)) float array of the named columns of a caliscope csv."""
    if not path.is_file():
        raise FileNotFoundError(f"caliscope file {str(path)!r} does not exist")
    header = path.open().readline().strip().split(",")
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected {list(columns)} among "
                         f"the header's {header}")
    rows = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2,
                      usecols=[header.index(c) for c in columns])
    return rows


def _estimate_fps(sync: np.ndarray, port: np.ndarray, time: np.ndarray) -> float | None:
    """Frames per second from the median step of ``frame_time`` between sync indices of one port."""
    first = port == port.min()
    _, idx = np.unique(sync[first], return_index=True)
    steps = np.diff(time[first][idx]) / np.maximum(np.diff(sync[first][idx]), 1)
    return float(1.0 / np.median(steps)) if len(steps) and np.median(steps) > 0 else None


def read_caliscope_xy(path, image_size=None, fps: float | None = None) -> Keypoints:
    """Read caliscope's ``xy_<TRACKER>.csv`` body landmarks into :class:`Keypoints`.

    Args:
        path: the csv. image_size: (width, height) or (C, 2) in port order, e.g.
            ``load_caliscope(config).sizes``; (0, 0) when None (the csv does not store it).
        fps: frames per second; when None, estimated from the ``frame_time`` column (the test
            session's frame times step at 30.3 fps although its config says ``fps_recording = 24``).

    Returns:
        (T, C, 33, 3) ``blazepose33``, T = sync indices from the smallest to the largest,
        cameras ``cam_<port>`` in port order.
    """
    path = Path(path)
    rows = _read_columns(path, _XY_COLUMNS)
    sync, port, time, pid = rows[:, 0].astype(int), rows[:, 1].astype(int), rows[:, 2], rows[:, 3].astype(int)
    ports = np.unique(port)
    body = pid < _N_BODY
    data = np.full((sync.max() - sync.min() + 1, len(ports), _N_BODY, 3), np.nan)
    data[..., 2] = 0.0
    data[sync[body] - sync.min(), np.searchsorted(ports, port[body]), pid[body]] = np.column_stack(
        [rows[body, 4:6], np.ones(body.sum())])
    sizes = np.zeros((len(ports), 2), np.int64) if image_size is None else np.broadcast_to(
        np.asarray(image_size, dtype=np.int64), (len(ports), 2))
    return Keypoints(data, "blazepose33", tuple(f"cam_{p}" for p in ports), sizes,
                     fps if fps is not None else _estimate_fps(sync, port, time))


def read_caliscope_xyz(path, n_frames: int | None = None) -> np.ndarray:
    """Read caliscope's ``xyz_<TRACKER>.csv`` body landmarks: (T, 33, 3) metres, NaN where absent.

    Row t is sync index t (so it lines up with :func:`read_caliscope_xy` when both start at 0);
    T is ``n_frames`` when given, else the largest sync index + 1.
    """
    path = Path(path)
    rows = _read_columns(path, _XYZ_COLUMNS)
    sync, pid = rows[:, 0].astype(int), rows[:, 1].astype(int)
    body = pid < _N_BODY
    out = np.full((n_frames if n_frames is not None else sync.max() + 1, _N_BODY, 3), np.nan)
    keep = body & (sync < len(out))
    out[sync[keep], pid[keep]] = rows[keep, 2:5]
    return out


def read_caliscope_recording(folder, recording: str = "recording_1", tracker: str = "HOLISTIC"):
    """A caliscope session folder (``config.toml``, ``recordings/<recording>/<tracker>/``): its
    calibration (a :class:`~epiflow.calibration.camera.CameraRig`, unturned images), the 2D
    (:class:`Keypoints`, image sizes from the calibration) and caliscope's own 3D, (T, 33, 3)
    metres in its world frame, NaN where absent, row t the 2D's frame t."""
    from epiflow.calibration.formats import load_rig
    folder = Path(folder)
    rec = folder / "recordings" / recording / tracker
    rig = load_rig(folder / "config.toml")
    kp = read_caliscope_xy(rec / f"xy_{tracker}.csv", image_size=rig.sizes)
    return rig, kp, read_caliscope_xyz(rec / f"xyz_{tracker}.csv", kp.n_frames)
