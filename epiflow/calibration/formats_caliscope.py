"""caliscope ``config.toml`` calibrations, read into a :class:`CameraRig`.

Per ``[cam_N]`` table caliscope writes ``size`` [w, h], ``matrix`` K, five ``distortions``
(k1, k2, p1, p2, k3: OpenCV's order), ``rotation`` as a 3×3 matrix and ``translation`` in metres,
world→camera, plus ``port``, ``error``, ``ignore`` and ``rotation_count``. Other tables
(``[charuco]``, ``[capture_volume]``) are not cameras. Cameras marked ``ignore = true`` are left
out (caliscope leaves them out of its calibration too).

``rotation_count`` is the number of quarter turns caliscope turns a camera's image *for display*.
Its calibration and its recorded 2D points (``xy_*.csv``) are both in the unturned sensor image: on
the ``caliscope_4cam`` test session, caliscope's own 3D points project onto its 2D points equally
well for cameras with ``rotation_count`` -1, 0 and 1 when nothing is turned. So the rig is returned
unturned and the counts are only recorded, by :func:`caliscope_rotation_counts`; to work in the
turned images use :func:`epiflow.calibration.formats_qualisys.rotate_camera_image`.
"""
from __future__ import annotations

from pathlib import Path

from epiflow.calibration.camera import CalibrationError, CameraRig
from epiflow.calibration.camera_tables import camera_from_table, parse_toml, read_calibration_text

__all__ = ["load_caliscope", "caliscope_rotation_counts", "is_caliscope"]


def _camera_tables(path) -> dict[str, dict]:
    data = parse_toml(read_calibration_text(path), str(path))
    tables = {k: v for k, v in data.items() if isinstance(v, dict) and k.startswith("cam_")
              and not v.get("ignore", False)}
    if not tables:
        raise CalibrationError(f"{path}: no [cam_N] tables in use; expected a caliscope config.toml "
                               f"with [cam_0], [cam_1], ... tables")
    return tables


def is_caliscope(data: dict) -> bool:
    """Whether parsed TOML ``data`` looks like a caliscope ``config.toml`` (not a Pose2Sim TOML)."""
    cams = [v for k, v in data.items() if isinstance(v, dict) and k.startswith("cam_")]
    return "charuco" in data or any("rotation_count" in v or "port" in v for v in cams)


def load_caliscope(path) -> CameraRig:
    """Read a caliscope ``config.toml``: cameras ``cam_N`` in the file's order, unturned images.

    Returns:
        A rig with world→camera extrinsics in metres; errors name the file, camera and field.
    """
    source = str(Path(path))
    return CameraRig(camera_from_table(k, v, source) for k, v in _camera_tables(path).items())


def caliscope_rotation_counts(path) -> dict[str, int]:
    """``{camera name: rotation_count}`` of a caliscope ``config.toml`` (quarter turns for display;
    0 where absent). See the module docstring for why the rig itself is not turned."""
    return {k: int(v.get("rotation_count", 0)) for k, v in _camera_tables(path).items()}
