"""One camera's TOML table read into a :class:`Camera`: the piece the Pose2Sim / Anipose camera
TOML (:mod:`epiflow.calibration.formats`) and caliscope's ``config.toml``
(:mod:`epiflow.calibration.formats_caliscope`) share, kept below both so neither imports the other.

A camera table holds ``size`` [w, h] pixels, ``matrix`` K (3×3), ``distortions`` (k1, k2, p1, p2
[, k3]), ``rotation`` world→camera as a Rodrigues vector (3,) or a matrix (3×3) and
``translation`` in metres; ``name`` is optional (the table's key otherwise).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from epiflow.calibration.camera import CalibrationError, Camera
from epiflow.input_files import read_text_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["CAMERA_FIELDS", "read_calibration_text", "parse_toml", "camera_from_table"]

#: The fields every camera table must hold.
CAMERA_FIELDS = ("size", "matrix", "distortions", "rotation", "translation")


def read_calibration_text(path) -> str:
    """The text of calibration file ``path``; a missing file, or one that is not text, is named
    in the error (:func:`~epiflow.input_files.read_text_file`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration file {str(path)!r} does not exist; "
                                f"expected a camera TOML (Pose2Sim / Anipose layout)")
    return read_text_file(path, "a calibration file (camera TOML, caliscope config.toml or "
                                "Qualisys XML)")


def parse_toml(text: str, source: str) -> dict:
    """TOML ``text`` as a dict; invalid TOML raises :class:`CalibrationError` naming ``source``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise CalibrationError(f"{source}: not valid TOML: {err}") from None


def camera_from_table(key: str, table: dict, source: str) -> Camera:
    """The camera of TOML table ``[key]`` of file ``source`` (named in every error)."""
    missing = [f for f in CAMERA_FIELDS if f not in table]
    if missing:
        raise CalibrationError(f"{source}: camera [{key}] lacks {', '.join(missing)}; each camera "
                               f"needs {', '.join(CAMERA_FIELDS)}")
    for f in CAMERA_FIELDS:
        try:
            bad = not np.all(np.isfinite(np.asarray(table[f], dtype=np.float64)))
        except (TypeError, ValueError):
            raise CalibrationError(f"{source}: camera [{key}]: {f} is not numbers: "
                                   f"{table[f]!r}") from None
        if bad:
            raise CalibrationError(f"{source}: camera [{key}]: {f} contains NaN or inf: {table[f]}")
    try:
        rot = np.asarray(table["rotation"], dtype=np.float64)
        R = Rotation.from_rotvec(rot).as_matrix() if rot.shape == (3,) else rot
        return Camera(name=str(table.get("name", key)), K=table["matrix"],
                      dist=table["distortions"], R=R, t=table["translation"],
                      size=tuple(round(float(v)) for v in table["size"]))
    except (CalibrationError, ValueError, TypeError) as err:
        raise CalibrationError(f"{source}: camera [{key}]: {err}") from None
