"""Intrinsics from checkerboard images (OpenCV), another input to calibration from people.

The board is found in each image (``cv2.findChessboardCorners`` on a copy scaled to at most
``detect_side`` pixels, falling back to ``cv2.findChessboardCornersSB``; corners then refined to
sub-pixel on the full image), and ``cv2.calibrateCamera`` fits K and the distortion
(k1, k2, p1, p2; k3 fixed at 0, which a handful of views cannot pin down). An image whose
error is over 3 times the median (and 1 px) is taken as a misdetected board, dropped, and the
fit repeated. The result carries OpenCV's RMS reprojection error and the error of each image.

The Pose2Sim demo's boards have 4 × 7 inner corners and 60 mm squares.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from epiflow.calibration.camera import CalibrationError, Camera, CameraRig

__all__ = ["BoardCalibration", "find_board", "calibrate_board", "calibrate_board_folder",
           "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True, eq=False)
class BoardCalibration:
    """Intrinsics of one camera from board images.

    Attributes:
        camera: the camera (K, distortion, image size; identity pose).
        rms_px: OpenCV's RMS reprojection error over all corners, pixels.
        per_image_px: RMS error of each used image, pixels, by file name.
        rejected: images in which no board was found.
    """

    camera: Camera
    rms_px: float
    per_image_px: dict[str, float] = field(default_factory=dict)
    rejected: tuple[str, ...] = ()


def find_board(gray: np.ndarray, pattern: tuple[int, int] = (4, 7),
               detect_side: int = 1000) -> np.ndarray | None:
    """Inner corners of a checkerboard in a grayscale image.

    Args:
        gray: (H, W) uint8 image. pattern: inner corners (columns, rows).
        detect_side: the image is searched at most this many pixels on its longer side (faster),
            then the corners are refined on the full image.

    Returns:
        (N, 2) float32 corner pixels in OpenCV's order, or None when no board is found.
    """
    if gray.ndim != 2:
        raise ValueError(f"find_board: expected a (H, W) grayscale image; got {gray.shape}")
    scale = min(1.0, detect_side / max(gray.shape))
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) \
        if scale < 1 else gray
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    ok, corners = cv2.findChessboardCorners(small, pattern, flags)
    if not ok:
        ok, corners = cv2.findChessboardCornersSB(small, pattern)
    if not ok:
        return None
    corners = (corners.reshape(-1, 1, 2) / scale).astype(np.float32)
    window = max(3, int(round(5 / scale)))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3)
    cv2.cornerSubPix(gray, corners, (window, window), (-1, -1), criteria)
    return corners.reshape(-1, 2)


def _board_points(pattern: tuple[int, int], square_size: float) -> np.ndarray:
    """(N, 3) float32 corner positions on the board plane, metres."""
    grid = np.mgrid[0:pattern[0], 0:pattern[1]].T.reshape(-1, 2)
    return np.hstack([grid * square_size, np.zeros((len(grid), 1))]).astype(np.float32)


def calibrate_board(images, pattern: tuple[int, int] = (4, 7), square_size: float = 0.06,
                    name: str = "camera", detect_side: int = 1000) -> BoardCalibration:
    """Calibrate one camera's intrinsics from images of a checkerboard.

    Args:
        images: paths of the camera's board images (all the same size).
        pattern: inner corners (columns, rows). square_size: side of a square, metres.
        name: the camera's name.

    Returns:
        :class:`BoardCalibration`.

    Raises:
        CalibrationError: fewer than 3 images with a board found, or images of different sizes.
    """
    paths = [Path(p) for p in images]
    corners, used, rejected, size = [], [], [], None
    for path in paths:
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise FileNotFoundError(f"board image {str(path)!r} cannot be read as an image")
        if size is not None and (gray.shape[1], gray.shape[0]) != size:
            raise CalibrationError(f"{name}: board images differ in size: {path.name} is "
                                   f"{gray.shape[1]}x{gray.shape[0]}, earlier ones {size}")
        size = (gray.shape[1], gray.shape[0])
        found = find_board(gray, pattern, detect_side)
        (corners if found is not None else rejected).append(found if found is not None
                                                             else path.name)
        if found is not None:
            used.append(path.name)
    if len(corners) < 3:
        raise CalibrationError(
            f"{name}: a {pattern[0]}x{pattern[1]}-corner board was found in {len(corners)} of "
            f"{len(paths)} images; at least 3 are needed: take images of the whole board at "
            f"several tilts, or check the pattern size (inner corners)")
    result = _fit(corners, used, pattern, square_size, size, name)
    errors = np.array(list(result.per_image_px.values()))
    bad = errors > max(1.0, 3 * np.median(errors))
    if bad.any() and (~bad).sum() >= 3:  # one image with a misdetected board: drop it, refit
        keep = np.nonzero(~bad)[0]
        rejected += [used[i] for i in np.nonzero(bad)[0]]
        result = _fit([corners[i] for i in keep], [used[i] for i in keep], pattern,
                      square_size, size, name)
    return BoardCalibration(result.camera, result.rms_px, result.per_image_px, tuple(rejected))


def _fit(corners, used, pattern, square_size, size, name) -> BoardCalibration:
    """``cv2.calibrateCamera`` on the found corners, with each image's RMS error."""
    obj = [_board_points(pattern, square_size)] * len(corners)
    rms, K, dist, rvecs, tvecs = cv2.calibrateCamera(obj, corners, size, None, None,
                                                     flags=cv2.CALIB_FIX_K3)
    per_image = {}
    for n, o, c, r, t in zip(used, obj, corners, rvecs, tvecs):
        proj, _ = cv2.projectPoints(o, r, t, K, dist)
        per_image[n] = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - c) ** 2, 1))))
    return BoardCalibration(Camera(name, K, np.asarray(dist).ravel()[:5], size=size), float(rms),
                            per_image)


def _folder_for(name: str, folders: list[Path]) -> Path | None:
    key = re.sub(r"[^0-9a-z]", "", name.lower())
    hits = [f for f in folders if key and key in re.sub(r"[^0-9a-z]", "", f.name.lower())]
    return hits[0] if len(hits) == 1 else None


def calibrate_board_folder(folder, names: list[str], pattern: tuple[int, int] = (4, 7),
                           square_size: float = 0.06) -> CameraRig:
    """Intrinsics of several cameras from a folder with one sub-folder of board images each.

    Sub-folders are matched to ``names`` by name (``int_cam01_img`` holds ``cam01``'s images,
    ignoring case and punctuation), else in order when the counts agree.

    Returns:
        A :class:`CameraRig` with identity poses, cameras in the order of ``names``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"board folder {str(folder)!r} does not exist")
    subs = sorted(p for p in folder.iterdir() if p.is_dir())
    found = [_folder_for(n, subs) for n in names]
    if any(f is None for f in found):
        if len(subs) != len(names):
            raise CalibrationError(f"{folder}: cannot match board sub-folders "
                                   f"{[s.name for s in subs]} to cameras {names}")
        found = subs
    cams = []
    for name, sub in zip(names, found):
        images = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        cams.append(calibrate_board(images, pattern, square_size, name).camera)
    return CameraRig(cams)
