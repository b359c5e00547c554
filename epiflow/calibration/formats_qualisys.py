"""Qualisys ``.qca.txt`` calibration files (XML exported by QTM), read into a :class:`CameraRig`.

What the file holds, per ``<camera serial=... model=... viewrotation=...>``:

- ``<fov_video left right top bottom>``: the video window on the sensor, pixels (inclusive bounds);
  the image size is ``(right - left + 1, bottom - top + 1)``.
- ``<intrinsic>``: focal lengths and principal point in sensor sub-pixel units, **64 per pixel**
  (``focalLengthU / 64`` is fx in pixels), and the distortion coefficients ``radialDistortion1, 2``,
  ``tangentalDistortion1, 2``.
- ``<transform>``: the camera's rotation ``r11 .. r33`` and position ``x, y, z`` in the world,
  **millimetres**, camera-to-world, in Qualisys' camera frame (its y and z axes point opposite to
  OpenCV's).

The conversion to epiflow's convention (OpenCV camera, world→camera, metres) is the one Pose2Sim
uses to make ``Calib_qualisys.toml`` from ``Calib.qca.txt``: with ``M`` the matrix ``r11 .. r33``
read row by row and ``c`` the position in metres, ``R = diag(1, -1, -1) · M`` and ``t = -R · c``.
The distortion coefficients are divided by 64 like the pixel values, again as Pose2Sim does; on the
Pose2Sim demo the lens distortion is so small that the checkerboard images cannot tell the two
readings apart (line straightness differs by < 0.01 px), so we keep the reading that matches the
published TOML.

``viewrotation`` (0, 90, 180 or 270 degrees) says the video was turned on the way out of the camera
(portrait set-ups). The file's numbers are in sensor coordinates, so a non-zero value turns each
camera with :func:`rotate_camera_image` by ``viewrotation / 90`` clockwise quarter turns. The Pose2Sim
demo file was exported already turned (``viewrotation="0"``, sensor 1088×1920), so nothing is turned
there; the clockwise direction for non-zero values follows QTM's display setting and has no sample
file here to confirm it.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from epiflow.calibration.camera import CalibrationError, Camera, CameraRig
from epiflow.input_files import read_text_file

__all__ = ["load_qca", "rotate_camera_image"]

_SUBPIXELS = 64.0
_INTRINSIC = ("focalLengthU", "focalLengthV", "centerPointU", "centerPointV", "radialDistortion1",
              "radialDistortion2", "tangentalDistortion1", "tangentalDistortion2")
_TRANSFORM = ("x", "y", "z", "r11", "r12", "r13", "r21", "r22", "r23", "r31", "r32", "r33")
_FOV = ("left", "right", "top", "bottom")
_QUALISYS_TO_OPENCV = np.diag([1.0, -1.0, -1.0])


def _attributes(camera: ET.Element, tag: str, names: tuple[str, ...], where: str) -> dict:
    """The float attributes ``names`` of ``camera``'s child ``tag``; errors name what is missing."""
    node = camera.find(tag)
    if node is None:
        raise CalibrationError(f"{where}: no <{tag}> element; a Qualisys camera needs <fov_video>, "
                               f"<intrinsic> and <transform>")
    values = {}
    for name in names:
        if name not in node.attrib:
            raise CalibrationError(f"{where}: <{tag}> lacks the attribute {name!r}")
        try:
            values[name] = float(node.attrib[name])
        except ValueError:
            raise CalibrationError(f"{where}: <{tag} {name}={node.attrib[name]!r}> is not a number") from None
        if not math.isfinite(values[name]):
            raise CalibrationError(f"{where}: <{tag} {name}> is {node.attrib[name]!r}; expected a "
                                   f"finite number")
    return values


def _camera_from_element(camera: ET.Element, source: str) -> Camera:
    name = camera.attrib.get("serial", "")
    where = f"{source}: camera {name!r}"
    fov = _attributes(camera, "fov_video", _FOV, where)
    intr = _attributes(camera, "intrinsic", _INTRINSIC, where)
    tr = _attributes(camera, "transform", _TRANSFORM, where)
    K = np.array([[intr["focalLengthU"] / _SUBPIXELS, 0.0, intr["centerPointU"] / _SUBPIXELS - fov["left"]],
                  [0.0, intr["focalLengthV"] / _SUBPIXELS, intr["centerPointV"] / _SUBPIXELS - fov["top"]],
                  [0.0, 0.0, 1.0]])
    dist = np.array([intr[k] for k in _INTRINSIC[4:]]) / _SUBPIXELS
    M = np.array([tr[f"r{i}{j}"] for i in "123" for j in "123"]).reshape(3, 3)
    R = _QUALISYS_TO_OPENCV @ M
    center = np.array([tr["x"], tr["y"], tr["z"]]) / 1000.0
    size = (round(fov["right"] - fov["left"] + 1), round(fov["bottom"] - fov["top"] + 1))
    try:
        cam = Camera(name=name, K=K, dist=dist, R=R, t=-R @ center, size=size)
    except CalibrationError as err:
        raise CalibrationError(f"{where}: {err}") from None
    return rotate_camera_image(cam, _quarter_turns(camera.attrib.get("viewrotation", "0"), where))


def _quarter_turns(viewrotation: str, where: str) -> int:
    try:
        degrees = int(float(viewrotation))
    except ValueError:
        degrees = -1
    if degrees not in (0, 90, 180, 270):
        raise CalibrationError(f"{where}: viewrotation={viewrotation!r}; expected 0, 90, 180 or 270")
    return degrees // 90


def _is_video_camera(camera: ET.Element) -> bool:
    model = camera.attrib.get("model", "none").lower()
    return "video" in model or model == "none"


def load_qca(path) -> CameraRig:
    """Read a Qualisys ``.qca.txt`` calibration (see the module docstring for the conversion).

    Cameras come in the file's order, named by their ``serial`` attribute. As in Pose2Sim, only
    video cameras are kept (``model`` containing "video", or "none") when the file has any; a file
    of marker cameras only keeps them all.

    Returns:
        A rig with world→camera extrinsics in metres and intrinsics in pixels of the video image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration file {str(path)!r} does not exist; expected a "
                                f"Qualisys .qca.txt (XML)")
    try:
        root = ET.fromstring(read_text_file(path, "a Qualisys .qca.txt calibration (XML)"))
    except ET.ParseError as err:
        raise CalibrationError(f"{path}: not valid Qualisys XML: {err}") from None
    cameras = root.findall("cameras/camera")
    if not cameras:
        raise CalibrationError(f"{path}: no <cameras><camera> elements; expected a Qualisys "
                               f".qca.txt calibration")
    video = [c for c in cameras if _is_video_camera(c)]
    return CameraRig(_camera_from_element(c, str(path)) for c in (video or cameras))


def rotate_camera_image(camera: Camera, quarter_turns: int) -> Camera:
    """The same camera after its images are turned by ``quarter_turns`` × 90° clockwise.

    A pixel ``(u, v)`` of a ``(w, h)`` image lands at ``(h - 1 - v, u)`` of the ``(h, w)`` image after
    one clockwise turn (pixel centres at integer coordinates). The camera frame turns with the image
    about the optical axis (``x' = -y, y' = x``), so ``R`` and ``t`` turn with it, fx and fy swap,
    and the tangential distortion becomes ``(p1', p2') = (p2, -p1)``; the world is unchanged, so a
    world point projects to the turned pixel exactly. Negative counts turn counter-clockwise.

    Args:
        camera: the camera whose images were turned. quarter_turns: any integer.

    Returns:
        A new :class:`Camera` (the same object when ``quarter_turns % 4 == 0``).
    """
    Q = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    for _ in range(int(quarter_turns) % 4):
        (fx, _, cx), (_, fy, cy), _ = camera.K
        w, h = camera.size
        k1, k2, p1, p2, k3 = camera.dist
        K = np.array([[fy, 0.0, h - 1 - cy], [0.0, fx, cx], [0.0, 0.0, 1.0]])
        camera = camera.replace(K=K, dist=np.array([k1, k2, p2, -p1, k3]), R=Q @ camera.R,
                                t=Q @ camera.t, size=(h, w))
    return camera
