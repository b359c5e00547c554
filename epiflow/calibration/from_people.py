"""Cameras from the people in view: the ``calibrate_from_people`` entry point.

Steps (``method = "pooled"``, the default):

1. Check the input (:mod:`epiflow.calibration.input_checks`): pixel units, every camera sees the
   person, enough frames, a person who moves.
2. Map the keypoints to h36m17 and keep the reliable body joints (confidence, temporal
   consistency; no face points): :func:`~epiflow.calibration.relative_pose.reliable_mask`.
3. Undistort with the given intrinsics, or with a guess from the image size.
4. Per camera pair, a robust essential matrix from all frames pooled, with left/right flips
   decided per frame (:func:`~epiflow.calibration.relative_pose.pair_pose`).
5. The view graph; a split graph is an error naming the groups. Poses chained along a maximum
   spanning tree, scales made consistent by triangulation (:mod:`~.view_graph`).
6. Bundle adjustment of all cameras and points (focal lengths too when the intrinsics are
   unknown), in rounds: after each, gross outliers are dropped and each camera-frame's left/right
   labels are re-decided against the other cameras (:mod:`~.mirroring`).
7. Metric scale, up axis, floor and origin from the body (:mod:`~.world_frame`).

``method = "per_frame"`` replaces 4–6 by the EpipolarPose baseline (:mod:`~.per_frame`).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch

from epiflow.calibration.bundle_adjustment import INTRINSIC_PARAMETERS, bundle_adjust
from epiflow.calibration.camera import CalibrationError, Camera, CameraRig, match_rig
from epiflow.calibration.input_checks import (HEIGHT_RANGE_M, check_keypoints,
                                            check_subject_height, image_sizes, motion_spread)
from epiflow.calibration.mirroring import apply_flips, relabel_flips
from epiflow.calibration.per_frame import per_frame_poses
from epiflow.calibration.relative_pose import correspondence_joints, pair_pose, reliable_mask
from epiflow.calibration.triangulation import triangulate_linear
from epiflow.calibration.verdict import Adjustment, Verdict, assess
from epiflow.calibration.view_graph import chain_poses, check_connected, spanning_tree
from epiflow.calibration.vanishing import vertical_from_lines
from epiflow.calibration.world_frame import (ADULT_STATURE_SD_M, KnownDistance, scale_uncertainty,
                                             up_direction, world_alignment)
from epiflow.config import check_limits, limits
from epiflow.keypoints import Keypoints
from epiflow.skeleton import get_joint_set, map_to_h36m

__all__ = ["CalibrationConfig", "CalibrationResult", "calibrate_from_people", "guess_intrinsics",
           "fit_sizes"]


@dataclass(frozen=True)
class CalibrationConfig:
    """Options of :func:`calibrate_from_people`.

    Attributes:
        method: ``"pooled"`` (all frames pooled per pair, view graph, bundle adjustment) or
            ``"per_frame"`` (the EpipolarPose baseline: one fundamental matrix per frame).
        min_confidence: observations below it are not used.
        max_jump: temporal consistency: a joint further than this × the person's 2D size from the
            median of its track over ±2 frames is dropped.
        threshold_px: inlier threshold of the essential-matrix fits, pixels.
        min_shared: a pair needs this many observations both cameras see to be fitted.
        min_inliers: a fitted pair needs this many inliers to join the view graph.
        focal_guess: focal length guess when intrinsics are unknown, × the image's longer side.
        refine_unknown: intrinsics refined by bundle adjustment when none are given (some of
            ``focal``, ``principal_point``, ``k1``, ``shared_focal``: one focal length for all).
        same_focal: the cameras are of one model at one zoom (a lab's identical cameras, phones
            of one model): ``focal`` is refined as one focal length for all of them. On the
            Pose2Sim demo (four identical cameras, lab focals within 0.5 % of each other) the
            focal lengths come out 0.5 % off instead of 5.1 %: with 100 frames of a person
            balancing in place, each camera's own focal length is uncertain by 3-4 % (95 %).
        refine_known: intrinsics refined even when given (default none).
        loss: robust loss of bundle adjustment (``huber``, ``cauchy``, ``soft_l1``, ``linear``).
        loss_scale_px: where the loss turns robust, pixels.
        rounds: bundle-adjustment rounds (outliers dropped and left/right relabelled between;
            each round starts from the points the last one adjusted).
        tolerance: the last round stops when the robust cost falls by less than this
            (relative); the rounds before it, whose result is only a start, at 100x it (on the
            Pose2Sim demo, with the warm starts: 47 iterations instead of 115, the same cameras
            to 0.01 deg).
        confidence_weights: weight each observation by its confidence in bundle adjustment
            (off by default: MediaPipe's visibility scores say little about how well a visible
            joint is placed; with them the Pose2Sim demo's rotations came out worse).
        outlier_px: after a round, observations with a larger error are dropped (pixels, or
            4 × the camera's median error when that is larger). Only gross errors: the robust
            loss already discounts the rest, and at 25 px the gate cut informative observations
            of a person 1,500 px tall (Pose2Sim demo, lab intrinsics: worst rotation 1.10° at
            25 px, 0.96° at 50 px).
        max_frames: frames used at most (evenly spaced) to bound the time taken.
        default_height: the subject's height (metres) assumed when none is given.
        min_motion: the person must move: the median joint's track must spread over at least
            this fraction of the person's 2D size in every camera.
        seed: seed of the robust fits.
        mirrored: what bundle adjustment does with the observations found left/right mirrored
            (a camera-frame the detector saw from the wrong side): ``"drop"`` them (the
            default: on the Pose2Sim demo a relabelled mirrored frame is still placed with a
            bias, and leaving cam02's 29 such frames out brought the worst relative rotation
            from 1.46° to 1.10° of the lab's) or ``"relabel"`` them and keep them.
        bootstrap: refits over resampled frames for the verdict's uncertainty
            (:mod:`epiflow.calibration.verdict`; 0: the adjustment's covariance alone).
    """

    method: Literal["pooled", "per_frame"] = "pooled"
    min_confidence: float = field(default=0.5, metadata=limits(ge=0, le=1))
    max_jump: float = field(default=0.15, metadata=limits(gt=0))
    threshold_px: float = field(default=3.0, metadata=limits(gt=0))
    min_shared: int = field(default=60, metadata=limits(ge=1))
    min_inliers: int = field(default=40, metadata=limits(ge=1))
    focal_guess: float = field(default=1.0, metadata=limits(gt=0))
    refine_unknown: tuple[str, ...] = ("focal",)
    refine_known: tuple[str, ...] = ()
    loss: Literal["huber", "cauchy", "soft_l1", "linear"] = "cauchy"
    loss_scale_px: float = field(default=5.0, metadata=limits(gt=0))
    rounds: int = field(default=3, metadata=limits(ge=1))
    tolerance: float = field(default=1e-6, metadata=limits(gt=0))
    confidence_weights: bool = False
    outlier_px: float = field(default=50.0, metadata=limits(gt=0))
    max_frames: int = field(default=1500, metadata=limits(ge=2))
    default_height: float = field(default=1.70, metadata=limits(ge=HEIGHT_RANGE_M[0],
                                                                le=HEIGHT_RANGE_M[1]))
    min_motion: float = field(default=0.05, metadata=limits(ge=0))
    seed: int = field(default=0, metadata=limits(ge=0))
    mirrored: Literal["drop", "relabel"] = "drop"
    same_focal: bool = False
    bootstrap: int = field(default=20, metadata=limits(ge=0))

    def __post_init__(self):
        check_limits(self, "CalibrationConfig")
        bad = [r for r in self.refine_unknown + self.refine_known if r not in INTRINSIC_PARAMETERS]
        if bad:
            raise ValueError(f"CalibrationConfig: unknown intrinsics to refine {bad}; expected "
                             f"some of {list(INTRINSIC_PARAMETERS)}")
        if self.mirrored not in ("drop", "relabel"):
            raise ValueError(f"CalibrationConfig.mirrored must be 'drop' or 'relabel'; "
                             f"got {self.mirrored!r}")
        if self.method not in ("pooled", "per_frame"):
            raise ValueError(f"CalibrationConfig.method must be 'pooled' or 'per_frame'; "
                             f"got {self.method!r}")
        if self.loss not in ("huber", "cauchy", "soft_l1", "linear"):
            raise ValueError(f"CalibrationConfig.loss must be 'huber', 'cauchy', 'soft_l1' or "
                             f"'linear'; got {self.loss!r}")


@dataclass(frozen=True, eq=False)
class CalibrationResult:
    """Cameras recovered from people.

    Attributes:
        rig: metric cameras, world Z up, floor at z = 0, origin on the floor under the person at
            the start (see :mod:`epiflow.calibration.world_frame`).
        report: JSON-able dict: method, per camera (reprojection error, observations used,
            focal, whether refined, left/right flips), pairs, scale source and height, up
            source, warnings.
        points: (T, 17, 3) the person's h36m17 joints triangulated with ``rig``, metres (for
            inspection; the pseudo-labels come from :mod:`epiflow.calibration.triangulation`).
        flips: (T, C, J) bool, the observations whose left/right labels were exchanged (joint j
            of camera c at frame t taken from its twin), in the keypoints' joint set.
        adjustment: the last bundle adjustment (observations and solution, before the world
            frame), which :mod:`epiflow.calibration.verdict` judges; None for ``per_frame``.
        verdict: :class:`~epiflow.calibration.verdict.Verdict`: per-camera 95 % bounds and
            ``good`` / ``doubtful`` / ``failed`` with the reasons (also ``report["verdict"]``).
    """

    rig: CameraRig
    report: dict
    points: np.ndarray = field(repr=False, default=None)
    flips: np.ndarray = field(repr=False, default=None)
    adjustment: Adjustment | None = field(repr=False, default=None)
    verdict: Verdict | None = None


def guess_intrinsics(names: list[str], sizes: np.ndarray, focal_guess: float = 1.0) -> CameraRig:
    """Cameras with a focal length of ``focal_guess`` × the longer image side, the principal
    point at the image centre and no distortion (identity pose)."""
    cams = []
    for name, (w, h) in zip(names, np.asarray(sizes)):
        f = focal_guess * max(w, h)
        cams.append(Camera(name, [[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]],
                           size=(int(w), int(h))))
    return CameraRig(cams)


def fit_sizes(rig: CameraRig, sizes: np.ndarray, where: str = "the calibration"
              ) -> tuple[CameraRig, list[str]]:
    """Cameras made to fit the 2D keypoints' image sizes ``sizes`` (C, 2) (w, h) pixels (0 =
    unknown, kept), and a warning per camera whose size differed; see :func:`_fit_size`.
    ``where`` names the rig's file in the error for a size that cannot be fitted."""
    sizes = np.asarray(sizes).reshape(-1, 2)
    if len(sizes) != len(rig):  # no sizes known (OpenPose JSON without --image-size)
        return rig, []
    out, warnings = [], []
    for cam, size in zip(rig, sizes):
        cam, warning = _fit_size(cam, size, where)
        out.append(cam)
        warnings += [warning] if warning else []
    return CameraRig(out), warnings


def _fit_size(cam: Camera, size, where: str = "the calibration") -> tuple[Camera, str | None]:
    """One camera's intrinsics for images of ``size`` (w, h).

    A size that differs by at most 16 pixels per side is a codec's crop of padding (H.264 codes
    1088 rows and shows 1080; the crop is at the right and bottom), so K is kept and only the
    size changes. Both sides scaled by one factor (±1 %) is a resized video: K is scaled. Other
    differences are an error.
    """
    w, h = int(size[0]), int(size[1])
    cw, ch = cam.size
    if (w, h) == (cw, ch) or w == 0:
        return cam, None
    if abs(w - cw) <= 16 and abs(h - ch) <= 16:
        return cam.replace(size=(w, h)), (
            f"{cam.name}: the calibration is for {cw}x{ch} images, the keypoints' are {w}x{h}: "
            f"taken as a codec's crop of padding at the right/bottom edge, K kept as given; if "
            f"these images were cropped or padded elsewhere, give a calibration made at {w}x{h}")
    sx, sy = w / cw, h / ch
    if abs(sx / sy - 1) < 0.01:
        K = cam.K.copy()
        K[0] *= sx
        K[1] *= sy
        return cam.replace(K=K, size=(w, h)), (
            f"{cam.name}: the calibration is for {cw}x{ch} images, the keypoints' are {w}x{h}: "
            f"taken as the same view resized, K scaled by {sx:.4f}; if these images were cropped, "
            f"give a calibration made at {w}x{h}")
    raise CalibrationError(f"{where}: camera {cam.name}: intrinsics are for {cw}x{ch} images but "
                           f"the keypoints are from {w}x{h} images (neither a crop of padding nor "
                           f"a resize); give the calibration of these videos, measured at "
                           f"{w}x{h}")


def _subsample(T: int, max_frames: int) -> np.ndarray:
    if T <= max_frames:
        return np.arange(T)
    return np.linspace(0, T - 1, max_frames).round().astype(int)


def calibrate_from_people(keypoints: Keypoints, intrinsics: CameraRig | None = None,
                          subject_height: float | None = None,
                          config: CalibrationConfig = CalibrationConfig(),
                          intrinsics_source: str = "intrinsics",
                          known_distance: KnownDistance | None = None,
                          scene: list | None = None,
                          frame_groups: np.ndarray | None = None) -> CalibrationResult:
    """Calibrate synchronized cameras from the person they all see.

    Args:
        keypoints: (T, C, J, 3) 2D keypoints of one person, pixels, any joint set that maps to
            h36m17; ``image_size`` needed unless ``intrinsics`` are given.
        intrinsics: known K and distortion per camera (matched by name, else in order; their
            extrinsics are ignored), or None to estimate focal lengths from a guess.
        subject_height: the person's height, metres, for the scale; None = body proportions
            with ``config.default_height``.
        config: :class:`CalibrationConfig`.
        intrinsics_source: what ``intrinsics`` came from (its file), named in errors about it.
        known_distance: metres between two cameras' centres, which then fix the scale
            (:class:`~epiflow.calibration.world_frame.KnownDistance`); None = from the body.
        scene: per camera (the keypoints' order), a few ``(frame index, image)`` pairs ((H, W,
            3) uint8 RGB): the scene's vertical lines give up when the feet give no floor
            (:mod:`~epiflow.calibration.vanishing`); None or empty = no scene.
        frame_groups: (T,) which person each frame is of, when several people's frames are
            stacked: the verdict refits each alone (:func:`~epiflow.calibration.verdict.
            people_disagreement`); None = one person.

    Returns:
        :class:`CalibrationResult`: metric cameras, world Z up, floor z = 0.

    Raises:
        CalibrationError: input that cannot give a calibration (normalised coordinates, a camera
            that never sees the person or in too few frames, a person who never moves, too few
            shared frames, a view graph in pieces, a subject height not in metres), with the
            cameras, the reason and what to record instead.
    """
    check_subject_height(subject_height)
    names = list(keypoints.camera_names)
    if known_distance is not None:
        known_distance.indices(names)  # a camera not in the capture: refused before any work
    warnings: list[str] = []
    if intrinsics is not None:
        intrinsics, w = match_rig(intrinsics, names, intrinsics_source, by_order=True)
        warnings += w
    sizes = image_sizes(keypoints, intrinsics)
    warnings += check_keypoints(keypoints, sizes, config)
    frames = _subsample(keypoints.n_frames, config.max_frames)
    valid = reliable_mask(keypoints.xy, keypoints.confidence,
                          correspondence_joints(keypoints.joint_set), config.min_confidence,
                          config.max_jump)[frames].transpose(1, 0, 2)
    xy = keypoints.xy[frames].transpose(1, 0, 2, 3)
    conf = keypoints.confidence[frames].transpose(1, 0, 2)
    if intrinsics is None:
        rig0, refine = guess_intrinsics(names, sizes, config.focal_guess), config.refine_unknown
        if config.same_focal:
            refine = tuple("shared_focal" if r == "focal" else r for r in refine)
    else:
        rig0, w = fit_sizes(intrinsics, sizes, intrinsics_source)
        warnings += w
        refine = config.refine_known
    perm = get_joint_set(keypoints.joint_set).flip_permutation
    if config.method == "per_frame":
        rig, flips, stats = _per_frame(rig0, xy, valid, names)
        refine = ()
    else:
        rig, flips, stats = _pooled(rig0, xy, valid, conf, perm, refine, config, names)
    adjustment = stats.pop("adjustment", None)
    if adjustment is not None and frame_groups is not None:
        adjustment = replace(adjustment, groups=np.asarray(frame_groups)[frames])
    if flips.ndim == 2:
        flips = np.repeat(flips[..., None], xy.shape[2], axis=2)
    flips = _expand(flips, frames, keypoints.n_frames)
    points = _all_joints(rig, keypoints, flips, perm, config.min_confidence)
    align, world, scale_note = _world(rig, points[frames], keypoints, subject_height, config,
                                      known_distance, scene)
    rig = rig.transformed(align.scale, align.R, align.t)
    points = points * align.scale @ align.R.T + align.t
    report = _report(config, rig, refine, stats, flips, align, subject_height, warnings)
    report.update(world)
    report["warnings"] += scale_note
    verdict = _verdict(adjustment, keypoints, rig, refine, report, config, intrinsics is not None)
    report["verdict"] = verdict.to_dict()
    return CalibrationResult(rig, report, points, flips, adjustment, verdict)


def _verdict(adjustment, keypoints: Keypoints, rig: CameraRig, refine, report: dict,
             config: CalibrationConfig, intrinsics_given: bool) -> Verdict:
    """The verdict on the cameras (:func:`epiflow.calibration.verdict.assess`): the motion is
    judged against the default ``min_motion`` even when the check was relaxed."""
    names = list(rig.names)
    median = np.array([report["cameras"][n]["reprojection_error_px_median"] or np.nan
                       for n in names], float)
    seen = (keypoints.confidence >= config.min_confidence) & np.isfinite(keypoints.xy).all(-1)
    implausible = [bool(_focal_warning(cam)) and "focal" in refine for cam in rig]
    min_motion = max(config.min_motion, CalibrationConfig.min_motion)
    return assess(adjustment, names, median, motion_spread(keypoints.xy, seen), min_motion,
                  intrinsics_given, implausible, config.bootstrap, config.seed)


def _world(rig, points, keypoints, subject_height, config, known_distance, scene):
    """Step 7: (the :class:`~epiflow.calibration.world_frame.WorldAlignment` of ``rig`` (camera
    0's frame) and ``points`` (T, 17, 3) in it, the report's entries on scale and up, the
    warning on a scale from body proportions alone (a list, empty otherwise))."""
    scale = None if known_distance is None else known_distance.scale(rig.centers, rig.names)
    vertical = None
    if scene and any(len(s) for s in scene):
        boxes = [[_person_box(keypoints, t, c, config.min_confidence) for t, _ in frames]
                 for c, frames in enumerate(scene)]
        vertical = vertical_from_lines(rig, [[im for _, im in frames] for frames in scene],
                                       up_direction(points), boxes)
    align = world_alignment(points, subject_height or config.default_height, scale=scale,
                            scene_up=None if vertical is None else vertical.up)
    source = ("known_distance" if known_distance else "subject_height" if subject_height
              else "body_proportions")
    sd = None if known_distance else scale_uncertainty(points, bool(subject_height))
    info = {"scale_source": source, "scale_relative_sd": sd,
            "known_distance": None if known_distance is None else
            [known_distance.camera_a, known_distance.camera_b, known_distance.metres],
            "up_angle_to_body_axis_deg": round(align.up_tilt_deg, 2),
            "scene_vertical": None if vertical is None else vertical.summary(),
            "scene_frames": [len(s) for s in scene] if scene else None}
    note = []
    if source == "body_proportions":
        note.append(
            f"{SCALE_WARNING} with an assumed {align.height:.2f} m stature (adults "
            f"spread ±{ADULT_STATURE_SD_M:.2f} m): distances uncertain by ±{100 * sd:.1f} % (one "
            f"standard deviation; ±{196 * sd:.0f} % for 95 %); give --subject-height, or "
            f"--known-distance CAM_A CAM_B METRES, for a metric scale")
    return align, info, note


def _person_box(keypoints: Keypoints, t: int, c: int, min_confidence: float):
    """(x0, y0, x1, y1) pixels of camera ``c``'s confident keypoints at frame ``t``, or None."""
    if not 0 <= t < keypoints.n_frames:
        return None
    ok = keypoints.confidence[t, c] >= min_confidence
    xy = keypoints.xy[t, c][ok & np.isfinite(keypoints.xy[t, c]).all(-1)]
    return np.r_[xy.min(0), xy.max(0)] if len(xy) else None


def _expand(flips: np.ndarray, frames: np.ndarray, T: int) -> np.ndarray:
    """(T, C, ...) flips for all frames from those of the used frames (nearest used frame)."""
    idx = np.clip(np.searchsorted(frames, np.arange(T)), 0, len(frames) - 1)
    return flips[idx]


def _triangulate(rig: CameraRig, xy: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(N, 3) DLT points from (C, N, 2) pixels and (C, N) validity, undistorted first."""
    xn = rig.undistort(xy)
    P = torch.as_tensor(np.concatenate([rig.R, rig.t[:, :, None]], 2))
    return triangulate_linear(P, torch.as_tensor(xn), torch.as_tensor(valid.astype(float))).numpy()


def _pairs(rig0, xy, valid, perm, config, names):
    """Pooled relative poses of the pairs that share enough observations, the reasons for the
    rejected ones, and the normalised coordinates.

    The pairs are fitted in a thread per CPU: OpenCV's robust fits release the GIL, so on two
    cores the six pairs of the Pose2Sim demo take 0.26 s instead of 0.42 s (same results)."""
    C = len(rig0)
    xn = rig0.undistort(xy)
    focal = float(np.mean(rig0.K[:, [0, 1], [0, 1]]))
    candidates, reasons = [], {}
    for i in range(C):
        for j in range(i + 1, C):
            shared = int((valid[i] & valid[j]).sum())
            if shared < config.min_shared:
                reasons[(i, j)] = f"{shared} shared observations (< {config.min_shared})"
            else:
                candidates.append((i, j))

    def fit(ij):
        i, j = ij
        return pair_pose(xn[i], xn[j], valid[i], valid[j], perm, focal, config.threshold_px,
                         i, j, config.seed)
    with ThreadPoolExecutor(max(1, min(len(candidates), os.cpu_count() or 1))) as pool:
        fitted = list(pool.map(fit, candidates))
    pairs = []
    for (i, j), p in zip(candidates, fitted):
        if p is None or p.n_inliers < config.min_inliers:
            n = 0 if p is None else p.n_inliers
            reasons[(i, j)] = f"{n} essential-matrix inliers (< {config.min_inliers})"
        else:
            pairs.append(p)
    check_connected(names, [(p.i, p.j) for p in pairs], reasons)
    return pairs, reasons, xn


def _pooled(rig0, xy, valid, conf, perm, refine, config, names):
    """Steps 4–6 of the module docstring: (rig in camera 0's frame, flips (T, C, J), stats)."""
    C, T, J = valid.shape
    pairs, reasons, xn = _pairs(rig0, xy, valid, perm, config, names)
    init = chain_poses(spanning_tree(C, pairs), xn, valid, perm)
    rig = CameraRig(c.replace(R=init.R[k], t=init.t[k]) for k, c in enumerate(rig0))
    flips, use, ba = init.flips, valid.copy(), None
    for r in range(config.rounds):
        x, v, c = _for_adjustment(xy, use, conf, flips, perm, config.mirrored)
        w = (c if config.confidence_weights else 1.0) * v
        X = _triangulate(rig, x.reshape(C, -1, 2), v.reshape(C, -1))
        if ba is not None:  # start where the last round ended: its points are already adjusted
            X = np.where(np.isfinite(ba.points), ba.points, X)
        last = r + 1 == config.rounds
        ba = bundle_adjust(rig, x.reshape(C, -1, 2), w.reshape(C, -1), X, refine, config.loss,
                           config.loss_scale_px, tolerance=config.tolerance * (1 if last else 100))
        rig = ba.rig
        if r + 1 < config.rounds:
            gross = _outliers(ba.errors_px.reshape(C, T, J), config)  # in the adjusted order
            use = valid & ~(apply_flips(gross, flips, perm) if config.mirrored == "relabel"
                            else gross)
            flips = relabel_flips(rig, xy, use, flips, perm)
    stats = {"pairs": [_pair_stats(p, names) for p in pairs],
             "rejected_pairs": {f"{names[i]}-{names[j]}": r for (i, j), r in reasons.items()},
             "errors_px": ba.errors_px, "converged": ba.success,
             "adjustment": Adjustment(rig, x, w, ba.points.reshape(T, J, 3), tuple(refine),
                                      config.loss, config.loss_scale_px)}
    return rig, flips, stats


def _for_adjustment(xy, use, conf, flips, perm, mirrored: str):
    """The observations bundle adjustment sees: (xy (C, T, J, 2), use (C, T, J), conf), with the
    mirrored ones (``flips`` (T, C[, J])) relabelled or left out (``CalibrationConfig.mirrored``)."""
    if mirrored == "relabel":
        return (apply_flips(xy, flips, perm), apply_flips(use, flips, perm),
                apply_flips(conf, flips, perm))
    f = np.moveaxis(flips, 1, 0)  # (C, T[, J])
    if f.ndim == 2:
        f = f[..., None]
    return xy, use & ~f, conf


def _outliers(errors: np.ndarray, config: CalibrationConfig) -> np.ndarray:
    """(C, T, J) bool: observations whose error is gross (see ``CalibrationConfig.outlier_px``)."""
    with np.errstate(all="ignore"):
        med = np.nanmedian(errors.reshape(len(errors), -1), axis=1)
    limit = np.maximum(config.outlier_px, 4 * np.nan_to_num(med))[:, None, None]
    return np.nan_to_num(errors, nan=0.0) > limit


def _pair_stats(p, names) -> dict:
    return {"cameras": [names[p.i], names[p.j]], "shared": p.n_shared, "inliers": p.n_inliers,
            "sampson_px": round(p.error_px, 3), "flipped_frames": int(p.flipped.sum())}


def _per_frame(rig0, xy, valid, names):
    """The EpipolarPose baseline: (rig in camera 0's frame, flips (all False), stats)."""
    C, T, J = valid.shape
    xn = rig0.undistort(xy)
    xu = rig0.undistort(xy, normalized=False)
    init, counts = per_frame_poses(xu, valid, rig0.K, xn, names)
    rig = CameraRig(c.replace(R=init.R[k], t=init.t[k]) for k, c in enumerate(rig0))
    X = _triangulate(rig, xy.reshape(C, -1, 2), valid.reshape(C, -1))
    errors = np.where(valid.reshape(C, -1), rig.reprojection_error(X, xy.reshape(C, -1, 2)),
                      np.nan)
    stats = {"frames_with_pose": dict(zip(names, counts)), "errors_px": errors,
             "converged": True}
    return rig, np.zeros((T, C), bool), stats


def _all_joints(rig: CameraRig, keypoints: Keypoints, flips: np.ndarray, perm: np.ndarray,
                min_confidence: float) -> np.ndarray:
    """(T, 17, 3) h36m17 joints: every joint triangulated (DLT) with the rig, flips applied,
    then mapped to h36m17."""
    xy = keypoints.xy.transpose(1, 0, 2, 3)
    valid = (keypoints.confidence >= min_confidence).transpose(1, 0, 2)
    x, v = apply_flips(xy, flips, perm), apply_flips(valid, flips, perm)
    C, T, J = v.shape
    X = _triangulate(rig, x.reshape(C, -1, 2), v.reshape(C, -1)).reshape(T, J, 3)
    return map_to_h36m(X, keypoints.joint_set, confidence=False)


#: estimated focal lengths outside this range, × the image's longer side, are implausible
#: (fields of view of 136° to 11° across the longer side)
FOCAL_RANGE = (0.2, 5.0)


def _focal_warning(cam: Camera) -> list[str]:
    """A warning when an estimated focal length is implausible: bundle adjustment can run off to
    a far camera with a long lens when the guess is far from the truth (focal lengths of 900-1500
    px guessed as 1920 px: one synthetic rig in ten ended with a focal of 25,000 px and its
    relative rotations 67° off, with a median reprojection error of 6 px)."""
    ratio = float(cam.K[0, 0]) / max(cam.size)
    lo, hi = FOCAL_RANGE
    if lo <= ratio <= hi:
        return []
    fov = float(np.degrees(2 * np.arctan(0.5 / ratio)))
    return [f"{cam.name}: estimated focal length {cam.K[0, 0]:.0f} px is {ratio:.2f} x the "
            f"image's longer side ({max(cam.size)} px; a {fov:.1f}° field of view; plausible "
            f"{lo}-{hi} x): this camera's calibration is likely wrong; give its intrinsics "
            f"(--intrinsics, e.g. from board images with epiflow.calibration.board) or a closer "
            f"focal_guess"]


#: how the warning on a scale from body proportions alone starts (with the uncertainty after)
SCALE_WARNING = "scale: from body proportions"

#: said when the world's up comes from the body axis (the feet did not span the floor)
BODY_AXIS_WARNING = ("up: from the body axis (pelvis -> thorax; the feet did not cover enough "
                     "floor for a floor plane and no vertical lines of the scene were found or "
                     "given: keypoints carry no images): Z is as vertical as the person stood, "
                     "and a person leaning or balancing tilts it; calibrate from the videos "
                     "(the scene's vertical edges then give up), record a few steps of walking, "
                     "or give the cameras from a file, when the vertical matters")


def _report(config, rig, refine, stats, flips, align, subject_height, warnings) -> dict:
    errors = stats.pop("errors_px")
    cams = {}
    for c, cam in enumerate(rig):
        e = errors[c][np.isfinite(errors[c])]
        cams[cam.name] = {
            "reprojection_error_px_median": float(np.median(e)) if len(e) else None,
            "reprojection_error_px_mean": float(np.mean(e)) if len(e) else None,
            "observations_used": int(len(e)), "focal_px": float(cam.K[0, 0]),
            "principal_point_px": [float(cam.K[0, 2]), float(cam.K[1, 2])],
            "left_right_flipped_frames": int(flips[:, c].any(-1).sum())}
        if len(e) and np.median(e) > 15:
            warnings.append(f"{cam.name}: median reprojection error {np.median(e):.1f} px is high; "
                            f"check the camera's keypoints (another person? unsynchronized video?)")
        warnings += _focal_warning(cam) if "focal" in refine else []
    if align.up_source == "body axis":
        warnings.append(BODY_AXIS_WARNING)
    return {"method": config.method, "intrinsics_refined": list(refine), "cameras": cams,
            "scale_source": "subject_height" if subject_height else "body_proportions",
            "subject_height_m": align.height, "up_source": align.up_source,
            **{k: v for k, v in stats.items()}, "warnings": warnings}
