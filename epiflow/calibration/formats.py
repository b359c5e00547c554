"""Camera calibration files: the Pose2Sim / Anipose TOML layout (read and write).

TOML layout, one table per camera, in the order the cameras were given::

    [cam_01]
    name = "cam_01"
    size = [1088.0, 1920.0]          # width, height, pixels
    matrix = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
    distortions = [k1, k2, p1, p2]   # k3 appended when non-zero
    rotation = [rx, ry, rz]          # Rodrigues vector, world→camera
    translation = [tx, ty, tz]       # metres, world→camera
    fisheye = false

A table called ``metadata`` is not a camera.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from epiflow.calibration.camera import CalibrationError, Camera, CameraRig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["load_toml", "save_toml", "rig_to_toml", "rig_from_toml"]

_FIELDS = ("size", "matrix", "distortions", "rotation", "translation")


def _read_text(path) -> str:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration file {str(path)!r} does not exist; "
                                f"expected a camera TOML (Pose2Sim / Anipose layout)")
    return path.read_text()


def _camera_from_table(key: str, table: dict, source: str) -> Camera:
    missing = [f for f in _FIELDS if f not in table]
    if missing:
        raise CalibrationError(f"{source}: camera [{key}] lacks {', '.join(missing)}; each camera "
                               f"needs {', '.join(_FIELDS)}")
    try:
        rot = np.asarray(table["rotation"], dtype=np.float64)
        R = Rotation.from_rotvec(rot).as_matrix() if rot.shape == (3,) else rot
        return Camera(name=str(table.get("name", key)), K=table["matrix"],
                      dist=table["distortions"], R=R, t=table["translation"],
                      size=tuple(round(float(v)) for v in table["size"]))
    except (CalibrationError, ValueError, TypeError) as err:
        raise CalibrationError(f"{source}: camera [{key}]: {err}") from None


def rig_from_toml(text: str, source: str = "<string>") -> CameraRig:
    """Parse the camera TOML layout from a string; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise CalibrationError(f"{source}: not valid TOML: {err}") from None
    cams = [_camera_from_table(k, v, source) for k, v in data.items()
            if isinstance(v, dict) and k != "metadata"]
    if not cams:
        raise CalibrationError(f"{source}: no camera tables found; expected [cam_name] tables "
                               f"with {', '.join(_FIELDS)}")
    return CameraRig(cams)


def load_toml(path) -> CameraRig:
    """Read a camera TOML file, cameras in the order written."""
    return rig_from_toml(_read_text(path), str(path))


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[ " + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if not math.isfinite(value):
        raise CalibrationError(f"cannot write a non-finite number ({value}) to a camera file")
    return repr(value)


def rig_to_toml(rig: CameraRig, metadata: dict | None = None) -> str:
    """The camera TOML layout as a string (see the module docstring)."""
    lines = []
    for cam in rig:
        dist = cam.dist if cam.dist[4] != 0 else cam.dist[:4]
        table = {"name": cam.name, "size": [float(cam.size[0]), float(cam.size[1])],
                 "matrix": cam.K.tolist(), "distortions": dist.tolist(),
                 "rotation": cam.rvec.tolist(), "translation": cam.t.tolist(), "fisheye": False}
        lines.append(f"[{cam.name}]")
        lines += [f"{k} = {_fmt(v)}" for k, v in table.items()]
        lines.append("")
    meta = {"adjusted": False, "error": 0.0, **(metadata or {})}
    lines.append("[metadata]")
    lines += [f"{k} = {_fmt(v)}" for k, v in meta.items()]
    return "\n".join(lines) + "\n"


def save_toml(rig: CameraRig, path, metadata: dict | None = None) -> None:
    """Write ``rig`` to ``path`` in the camera TOML layout (written whole, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(rig_to_toml(rig, metadata))
    tmp.replace(path)
