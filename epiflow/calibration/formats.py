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
    time_offset = 0.0                # optional: seconds on the first camera's clock at which
                                     # this camera's first frame was taken (unsynchronized)

A table called ``metadata`` is not a camera.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from epiflow.calibration.camera import CalibrationError, CameraRig
from epiflow.calibration.camera_tables import (CAMERA_FIELDS, camera_from_table, parse_toml,
                                               read_calibration_text)
from epiflow.calibration.formats_caliscope import is_caliscope, load_caliscope
from epiflow.calibration.formats_qualisys import load_qca
from epiflow.calibration.formats_shelf import load_shelf_calibration
from epiflow.calibration.input_checks import check_rig
from epiflow.outputs import atomic_write_text

__all__ = ["load_toml", "save_toml", "rig_to_toml", "rig_from_toml", "load_rig", "RIG_FORMATS",
           "time_offsets_from_toml"]


def rig_from_toml(text: str, source: str = "<string>") -> CameraRig:
    """Parse the camera TOML layout from a string; ``source`` names it in errors."""
    return _rig_from_tables(parse_toml(text, source), source)


def _rig_from_tables(data: dict, source: str) -> CameraRig:
    """The rig of a parsed camera TOML (its camera tables, in order), unchecked."""
    cams = [camera_from_table(k, v, source) for k, v in data.items()
            if isinstance(v, dict) and k != "metadata"]
    if not cams:
        raise CalibrationError(f"{source}: no camera tables found; expected [cam_name] tables "
                               f"with {', '.join(CAMERA_FIELDS)}")
    return CameraRig(cams)


def load_toml(path) -> CameraRig:
    """Read a camera TOML file, cameras in the order written, checked (:func:`check_rig`)."""
    rig = rig_from_toml(read_calibration_text(path), str(path))
    check_rig(rig, str(path))
    return rig


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


def rig_to_toml(rig: CameraRig, metadata: dict | None = None,
                time_offsets=None) -> str:
    """The camera TOML layout as a string (see the module docstring); ``time_offsets`` (C,)
    seconds, when given, go into each camera's table as ``time_offset``."""
    lines = []
    for c, cam in enumerate(rig):
        dist = cam.dist if cam.dist[4] != 0 else cam.dist[:4]
        table = {"name": cam.name, "size": [float(cam.size[0]), float(cam.size[1])],
                 "matrix": cam.K.tolist(), "distortions": dist.tolist(),
                 "rotation": cam.rvec.tolist(), "translation": cam.t.tolist(), "fisheye": False}
        if time_offsets is not None:
            table["time_offset"] = float(time_offsets[c])
        lines.append(f"[{cam.name}]")
        lines += [f"{k} = {_fmt(v)}" for k, v in table.items()]
        lines.append("")
    meta = {"adjusted": False, "error": 0.0, **(metadata or {})}
    lines.append("[metadata]")
    lines += [f"{k} = {_fmt(v)}" for k, v in meta.items()]
    return "\n".join(lines) + "\n"


def save_toml(rig: CameraRig, path, metadata: dict | None = None, time_offsets=None) -> None:
    """Write ``rig`` to ``path`` in the camera TOML layout (written whole, then renamed);
    ``time_offsets`` as in :func:`rig_to_toml`."""
    atomic_write_text(path, rig_to_toml(rig, metadata, time_offsets))


def time_offsets_from_toml(text: str, source: str = "<string>") -> dict[str, float]:
    """``{camera name: time_offset}`` (seconds on the first camera's clock at which the camera's
    first frame was taken) of a camera TOML's tables that have one; {} for synchronized rigs."""
    return {str(v.get("name", k)): float(v["time_offset"])
            for k, v in parse_toml(text, source).items()
            if isinstance(v, dict) and k != "metadata" and "time_offset" in v}


#: The calibration files :func:`load_rig` reads, as named in its errors.
RIG_FORMATS = ("camera TOML (Pose2Sim / Anipose layout, *.toml)", "caliscope config.toml",
               "Qualisys *.qca.txt (XML)", "Shelf / 4D-association calibration.json")


def load_rig(path) -> CameraRig:
    """Read any calibration file epiflow knows (:data:`RIG_FORMATS`), chosen by suffix and content.

    ``*.qca.txt`` (or XML whose root is ``<calibration>``) is Qualisys; ``*.json`` is Shelf-style;
    ``*.toml`` is caliscope's ``config.toml`` when it has ``port``/``rotation_count`` fields or a
    ``[charuco]`` table, otherwise the Pose2Sim / Anipose camera TOML.

    Every camera is checked as it is loaded (:func:`~epiflow.calibration.input_checks.check_rig`):
    a singular K, a rotation that is not one, a translation not in metres... raise
    :class:`CalibrationError` naming the file, the camera and the field.

    Returns:
        The rig, world→camera, metres, cameras in the file's order.
    """
    rig = _read_rig(Path(path))
    check_rig(rig, str(path))
    return rig


def _read_rig(path: Path) -> CameraRig:
    """The rig of any calibration file :func:`load_rig` reads, unchecked."""
    if not path.is_file():
        raise FileNotFoundError(f"calibration file {str(path)!r} does not exist or is not a file; "
                                f"accepted: {'; '.join(RIG_FORMATS)}")
    name = path.name.lower()
    if name.endswith(".json"):
        return load_shelf_calibration(path)
    if name.endswith(".toml"):
        data = parse_toml(read_calibration_text(path), str(path))
        # read and parsed once; load_rig checks the rig (load_toml would check it twice)
        return load_caliscope(path) if is_caliscope(data) else _rig_from_tables(data, str(path))
    if name.endswith((".qca.txt", ".qca")) or (
            name.endswith((".txt", ".xml")) and read_calibration_text(path).lstrip()[:1] == "<"):
        return load_qca(path)
    raise CalibrationError(f"{path}: unknown calibration format (suffix {path.suffix!r}); "
                           f"accepted: {'; '.join(RIG_FORMATS)}")
