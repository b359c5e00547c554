"""Shelf / 4D-association ``calibration.json``, read into a :class:`CameraRig`.

The file is a JSON object with one entry per camera, keyed by its name (``"0"`` ... ``"4"``)::

    {"0": {"K": [9 numbers, row-major 3×3, pixels],
           "RT": [12 numbers, row-major 3×4 [R | t], world→camera, metres],
           "imgSize": [width, height]}, ...}

There is no distortion (the detections were made on the images as they are), so ``dist`` is zero.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from epiflow.calibration.camera import CalibrationError, Camera, CameraRig
from epiflow.input_files import read_text_file

__all__ = ["load_shelf_calibration"]

_FIELDS = {"K": 9, "RT": 12, "imgSize": 2}


def _numbers(entry: dict, field: str, where: str) -> np.ndarray:
    if field not in entry:
        raise CalibrationError(f"{where} lacks {field!r}; each camera needs "
                               f"{', '.join(_FIELDS)} (K 9 numbers, RT 12, imgSize 2)")
    try:
        values = np.asarray(entry[field], dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise CalibrationError(f"{where}: {field!r} is not a list of numbers: {entry[field]!r}") from None
    if values.size != _FIELDS[field]:
        raise CalibrationError(f"{where}: {field!r} must hold {_FIELDS[field]} numbers; "
                               f"got {values.size}")
    if not np.all(np.isfinite(values)):
        raise CalibrationError(f"{where}: {field!r} contains NaN or inf: {values.tolist()}")
    return values


def _camera(name: str, entry, source: str) -> Camera:
    where = f"{source}: camera {name!r}"
    if not isinstance(entry, dict):
        raise CalibrationError(f"{where} is not an object with K, RT and imgSize")
    K = _numbers(entry, "K", where).reshape(3, 3)
    RT = _numbers(entry, "RT", where).reshape(3, 4)
    size = _numbers(entry, "imgSize", where)
    try:
        return Camera(name=name, K=K, R=RT[:, :3], t=RT[:, 3], size=(round(size[0]), round(size[1])))
    except CalibrationError as err:
        raise CalibrationError(f"{where}: {err}") from None


def load_shelf_calibration(path) -> CameraRig:
    """Read a Shelf / 4D-association ``calibration.json`` (see the module docstring).

    Returns:
        A rig of the cameras in the file's order, named by their keys, no distortion.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration file {str(path)!r} does not exist; expected a "
                                f"Shelf-style calibration.json")
    try:
        data = json.loads(read_text_file(path, "a Shelf-style calibration.json"))
    except json.JSONDecodeError as err:
        raise CalibrationError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(data, dict) or not data:
        raise CalibrationError(f"{path}: expected a JSON object of cameras "
                               f'{{"0": {{"K": ..., "RT": ..., "imgSize": ...}}, ...}}')
    return CameraRig(_camera(str(k), v, str(path)) for k, v in data.items())
