"""Checks on 2D keypoints before calibrating cameras from them.

Bad input must give an error (or a warning in the report) that names the cameras, the reason
and what to record instead, never a silent garbage calibration. Checked here:

- keypoints in normalised units ([0, 1] of the image) instead of pixels;
- an unknown image size (OpenPose JSON does not store it) with no intrinsics to take it from;
- a camera that never sees the person, or sees the person in fewer than :data:`MIN_FRAMES` frames;
- too few frames in which at least two cameras see the person;
- a person who never moves (all frames show the same pose at the same place: the pooled
  correspondences are then a dozen points, too few for the geometry);
- a camera whose detections stop long before the others' (videos of different lengths);
- a subject height that is not a height in metres (:func:`check_subject_height`).

And on cameras as they are loaded from a calibration file (:func:`check_rig`): a singular or
absurd intrinsic matrix, a rotation that is not one, a translation that is not metres, a
distortion or image size that cannot be, so that a bad file is blamed, not the keypoints.
"""
from __future__ import annotations

import numpy as np

from epiflow.calibration.camera import CalibrationError, CameraRig
from epiflow.calibration.relative_pose import quiet_nan_warnings
from epiflow.keypoints import Keypoints, normalised_units

__all__ = ["image_sizes", "check_keypoints", "check_subject_height", "motion_spread",
           "check_rig", "relax_motion_hint", "OTHER_PERSON_RATIO"]

MIN_FRAMES = 10  #: frames where two cameras see the person, at least
MIN_JOINTS_SEEN = 6  #: confident joints that make a frame count as "sees the person"
HEIGHT_RANGE_M = (0.4, 3.0)  #: a subject height outside it is not a person's height in metres
FOCAL_RANGE = (0.05, 1000.0)  #: focal lengths, as multiples of the image's larger side
MAX_DISTANCE_M = 1000.0  #: a camera further than this from the world origin is not in metres
MAX_DISTORTION = 1000.0  #: a distortion coefficient larger than this is not a lens


def check_subject_height(height: float | None) -> None:
    """Raise :class:`CalibrationError` unless ``height`` is None or a person's height in metres.

    A height in centimetres (178) or millimetres would silently scale the cameras 100 or 1000
    times too far apart, a negative one would mirror the world, so both are refused.
    """
    if height is None:
        return
    lo, hi = HEIGHT_RANGE_M
    try:
        value = float(height)
    except (TypeError, ValueError):
        raise CalibrationError(f"subject height must be a number of metres; got {height!r}") \
            from None
    if not lo <= value <= hi:
        hint = f" (in centimetres? give {value / 100:.2f})" if 100 * lo <= value <= 100 * hi \
            else ""
        raise CalibrationError(
            f"subject height {height!r} is not a person's standing height in metres (expected "
            f"{lo}-{hi}){hint}; leave it out to take the scale from body proportions")


def image_sizes(keypoints: Keypoints, intrinsics: CameraRig | None) -> np.ndarray:
    """(C, 2) image sizes (width, height): the keypoints', else the intrinsics' where unknown."""
    sizes = np.array(keypoints.image_size, dtype=np.int64)
    unknown = (sizes <= 0).any(1)
    if intrinsics is not None:
        sizes[unknown] = intrinsics.sizes[unknown]
        unknown = (sizes <= 0).any(1)
    if unknown.any():
        cams = [keypoints.camera_names[c] for c in np.nonzero(unknown)[0]]
        raise CalibrationError(f"the image size of cameras {cams} is unknown (OpenPose JSON does "
                               f"not store it); give intrinsics (--intrinsics) or the keypoints' "
                               f"image_size")
    return sizes


def _check_pixels(keypoints: Keypoints, sizes: np.ndarray) -> None:
    problem = normalised_units(keypoints.xy, sizes)
    if problem:
        raise CalibrationError(f"{problem} (cameras {list(keypoints.camera_names)})")


def motion_spread(xy: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """How much the person moves, per camera: the median over joints of each joint's track
    spread (std of its 2D position over frames), as a fraction of the person's 2D size.

    Args:
        xy: (T, C, J, 2) pixels. seen: (T, C, J) bool, confident observations.

    Returns:
        (C,) fractions; NaN for a camera with no track.
    """
    pts = np.where(seen[..., None], xy, np.nan)
    with np.errstate(all="ignore"), quiet_nan_warnings():
        spread = np.linalg.norm(np.nanstd(pts, axis=0), axis=-1)  # (C, J)
        extent = np.nanmax(pts, axis=2) - np.nanmin(pts, axis=2)  # (T, C, 2)
        size = np.nanmedian(np.linalg.norm(extent, axis=-1), axis=0)  # (C,)
        return np.nanmedian(spread, axis=1) / size


def relax_motion_hint(spread: float) -> str:
    """How to relax the motion check (the option, in each command's ``--set`` form) and what it
    risks, for a capture whose smallest motion spread is ``spread``."""
    value = max(np.floor(spread * 1000) / 1000, 0.0) if np.isfinite(spread) else 0.0
    return (f"To calibrate anyway, lower the check's threshold min_motion (the "
            f"CalibrationConfig option; [calibrate.people] min_motion in a run's config): "
            f"'epiflow calibrate ... --set min_motion={value:g}', 'epiflow run ... --set "
            f"calibrate.people.min_motion={value:g}'. That risks cameras several degrees off "
            f"whose reprojection errors look as small as a good calibration's (a person nearly "
            f"still gave cameras up to 20° off); the calibration's verdict then says doubtful: "
            f"check it")


def check_keypoints(keypoints: Keypoints, sizes: np.ndarray, config) -> list[str]:
    """Raise :class:`CalibrationError` on input that cannot be calibrated; return warnings.

    Args:
        keypoints: the input keypoints. sizes: (C, 2) image sizes. config: a
            :class:`~epiflow.calibration.from_people.CalibrationConfig` (``min_confidence``,
            ``min_motion``).
    """
    names = list(keypoints.camera_names)
    if keypoints.n_cameras < 2:
        raise CalibrationError(f"calibration from people needs at least two cameras; got "
                               f"{names}")
    _check_pixels(keypoints, sizes)
    seen = (keypoints.confidence >= config.min_confidence) & np.isfinite(keypoints.xy).all(-1)
    frame_seen = seen.sum(-1) >= MIN_JOINTS_SEEN  # (T, C)
    blind = [names[c] for c in range(len(names)) if not frame_seen[:, c].any()]
    if blind:
        raise CalibrationError(
            f"cameras {blind} never see the person (no frame with {MIN_JOINTS_SEEN} joints of "
            f"confidence >= {config.min_confidence}): check that their videos or keypoint "
            f"folders are the right ones, or leave these cameras out")
    shared = int((frame_seen.sum(1) >= 2).sum())
    if shared < MIN_FRAMES:
        raise CalibrationError(
            f"only {shared} frames show the person in two or more cameras ({names}); at least "
            f"{MIN_FRAMES} are needed, a few hundred give a good calibration: record the person "
            f"walking through the space all cameras see")
    counts = frame_seen.sum(0)
    few = [f"{names[c]} ({counts[c]})" for c in range(len(names)) if counts[c] < MIN_FRAMES]
    if few:
        raise CalibrationError(
            f"cameras {few} see the person in fewer than {MIN_FRAMES} frames (frames with "
            f"{MIN_JOINTS_SEEN} joints of confidence >= {config.min_confidence} in brackets), too "
            f"few to place them ({names[int(counts.argmax())]} sees the person in "
            f"{int(counts.max())}): check these cameras' videos or keypoints (the person out of "
            f"view? a wrong folder?), or leave these cameras out")
    spread = motion_spread(keypoints.xy, seen)
    still = [f"{names[c]} ({spread[c]:.3f})" for c in range(len(names))
             if not spread[c] >= config.min_motion]
    if still:
        raise CalibrationError(
            f"the person hardly moves in cameras {still} (joint tracks spread less than "
            f"{config.min_motion} of the person's size): one pose repeated gives too few distinct "
            f"points for the geometry; " + _still_advice(spread, names, config.min_motion))
    return _length_warnings(frame_seen, names)


#: cameras that see a person move this many times more than the still ones see the most are
#: taken to follow another person (the Pose2Sim two-person take: 0.146 against 0.032; caliscope,
#: one person nearly still: 0.077 against 0.036)
OTHER_PERSON_RATIO = 3.0


def _still_advice(spread: np.ndarray, names: list[str], min_motion: float) -> str:
    """What to do about cameras whose motion ``spread`` (C,) is under ``min_motion``: when
    others see far more motion (:data:`OTHER_PERSON_RATIO`), the cameras likely followed
    different people, and the several-people options are named; otherwise the person moved
    too little, and the threshold's relaxation with its risk."""
    moving = spread >= min_motion
    listed = [f"{names[c]} ({spread[c]:.3f})" for c in np.flatnonzero(moving)]
    record = "record the person walking around the capture area and moving their arms"
    if moving.any() and spread[moving].max() >= OTHER_PERSON_RATIO * spread[~moving].max():
        return (f"{record}. Yet the person moves in cameras {listed}, "
                f"{spread[moving].max() / spread[~moving].max():.1f} times more: with several "
                f"people in view, the cameras likely followed different people (one person per "
                f"camera is kept by default). Calibrate from every person instead: 'epiflow "
                f"calibrate ... --max-people 2', 'epiflow run ... --set detect.max_people=2' "
                f"(the number of people in view); or give the cameras from a file, or 2D "
                f"keypoints of one person. Lowering min_motion would calibrate from different "
                f"people")
    more = f" (it moves a little more in cameras {listed})" if listed else ""
    return f"{record}{more}. " + relax_motion_hint(float(np.nanmin(spread)))


def _length_warnings(frame_seen: np.ndarray, names: list[str]) -> list[str]:
    """Warnings for cameras whose detections end (or start) far from the others'."""
    T = frame_seen.shape[0]
    last = np.array([np.nonzero(frame_seen[:, c])[0].max() for c in range(len(names))])
    first = np.array([np.nonzero(frame_seen[:, c])[0].min() for c in range(len(names))])
    out = []
    for c, name in enumerate(names):
        if last[c] < 0.8 * last.max() - 5:
            out.append(f"{name}: no detections after frame {last[c]} while other cameras go on to "
                       f"{last.max()} (of {T}): videos of different lengths or not synchronized? "
                       f"Trim all videos to the same synchronized span")
        if first[c] > 0.2 * T + first.min() + 5:
            out.append(f"{name}: no detections before frame {first[c]} while others start at "
                       f"{first.min()}: check the videos are synchronized")
    return out


def check_rig(rig: CameraRig, source: str) -> None:
    """Raise :class:`CalibrationError` naming ``source`` (the file), the camera and the field
    when a loaded camera cannot be a real one.

    Checked per camera: image size (w, h) > 0 pixels; K's last row (0, 0, 1) and zero below the
    diagonal, focal lengths fx, fy in :data:`FOCAL_RANGE` times the larger image side (a zero or
    normalised focal makes K singular or the rays absurd), principal point within the image's
    extent doubled; R orthonormal (RᵀR = I to 1e-3: files print 8 digits); the camera centre
    within :data:`MAX_DISTANCE_M` metres of the origin (a file in millimetres, a 1e300);
    distortion coefficients within :data:`MAX_DISTORTION`. NaN and inf are refused when a
    camera is built.
    """
    for cam in rig:
        problem = _camera_problem(cam)
        if problem:
            field, expected, got, todo = problem
            raise CalibrationError(f"{source}: camera {cam.name!r}: {field} is {got}; expected "
                                   f"{expected}: {todo}")


def _camera_problem(cam) -> tuple[str, str, str, str] | None:
    """(field, what was expected, what came, what to do) for the first thing wrong, or None."""
    w, h = cam.size
    if w <= 0 or h <= 0:
        return ("size", "(width, height) > 0 pixels", f"{(w, h)}",
                "write the image size the camera was calibrated at")
    K, fix = cam.K, "check the file is the calibration of these cameras, in pixels"
    if not np.allclose(K[2], (0, 0, 1)) or K[1, 0] != 0 or K[2, 0] != 0:
        return ("matrix (K)", "[[fx, s, cx], [0, fy, cy], [0, 0, 1]]", f"{K.tolist()}", fix)
    side = max(w, h)
    lo, hi = FOCAL_RANGE[0] * side, FOCAL_RANGE[1] * side
    for name, f in (("fx", K[0, 0]), ("fy", K[1, 1])):
        if not lo <= f <= hi:
            return (f"matrix (K) focal {name}", f"{lo:g}-{hi:g} pixels for a {w}x{h} image",
                    f"{f:g}", fix + " (a normalised K times the image size gives pixels)")
    for name, c, extent in (("cx", K[0, 2], w), ("cy", K[1, 2], h)):
        if not -0.5 * extent <= c <= 1.5 * extent:
            return (f"matrix (K) principal point {name}",
                    f"{-0.5 * extent:g}-{1.5 * extent:g} pixels for a {w}x{h} image", f"{c:g}",
                    fix + ", and that size is (width, height)")
    err = np.abs(cam.R.T @ cam.R - np.eye(3)).max()
    if err > 1e-3:
        return ("rotation", "an orthonormal 3x3 matrix or a Rodrigues vector",
                f"{cam.R.tolist()} (RᵀR differs from I by {err:.2g})",
                "write the rotation as a Rodrigues vector")
    dist = float(np.linalg.norm(cam.center))
    if dist > MAX_DISTANCE_M:
        return ("translation", f"metres, a camera within {MAX_DISTANCE_M:g} m of the origin",
                f"{cam.t.tolist()} (camera {dist:.3g} m away)",
                "convert millimetres to metres (divide by 1000)")
    if np.abs(cam.dist).max() > MAX_DISTORTION:
        return ("distortions", f"(k1, k2, p1, p2, k3) within +-{MAX_DISTORTION:g}",
                f"{cam.dist.tolist()}", "write the OpenCV Brown-Conrady coefficients")
    return None
