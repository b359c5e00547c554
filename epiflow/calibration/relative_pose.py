"""Relative pose of a camera pair from the joints of people, pooled over all frames.

One frame of joints is too few, too noisy and too close to planar for a stable essential matrix
(the EpipolarPose way, see :mod:`epiflow.calibration.per_frame`). Pooling every reliable joint of
every frame of a session gives thousands of correspondences spread over the whole capture volume;
a robust fit (OpenCV's USAC/MAGSAC) with the cheirality choice (``cv2.recoverPose``) then gives
the pair's rotation and baseline direction.

A detector often mirrors a person seen from behind (left and right labels exchanged). For a
pair that is a per-frame exchange of the left and right joints of one camera relative to the
other; :func:`pair_pose` fits both label orders and decides per frame which one the epipolar
geometry prefers (see :func:`frame_flips`).

Coordinates here are *normalised* image coordinates (undistorted, K removed), ``(x/z, y/z)``;
errors and thresholds are converted to pixels with a focal length.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

__all__ = ["PairPose", "reliable_mask", "correspondence_joints", "pair_pose", "fit_essential",
           "sampson_error", "frame_flips", "refine_pose", "quiet_nan_warnings"]

_FACE_WORDS = ("nose", "eye", "ear", "mouth")


def correspondence_joints(joint_set: str) -> np.ndarray:
    """Which joints of ``joint_set`` make good correspondences between views.

    Every joint but the face points (nose, eyes, ears, mouth: where a detector puts them
    depends on the view far more than for a body joint). Feet (heels, toes) and hands (pinky,
    index, thumb) stay: each adds a point with its own detector error, and on the Pose2Sim demo
    (MediaPipe) adding them to the 12 limb joints brought the worst pairwise rotation of the
    data's best bundle adjustment from 3.0° to 1.2° of the lab calibration.

    Returns:
        (J,) bool, True for the joints to use.
    """
    from epiflow.skeleton import get_joint_set
    names = get_joint_set(joint_set).joints
    return np.array([not any(word in n.lower() for word in _FACE_WORDS) for n in names])


def reliable_mask(xy: np.ndarray, confidence: np.ndarray, joints: np.ndarray,
                  min_confidence: float = 0.5, max_jump: float = 0.15,
                  window: int = 2) -> np.ndarray:
    """Observations worth using as correspondences.

    An observation is kept when it is finite, its joint is in ``joints``, its confidence is at
    least ``min_confidence``, and it is temporally consistent: it lies within ``max_jump`` ×
    the person's 2D size of the median of its own track over ``±window`` frames (a joint that
    jumps for one frame is a detector error, not motion).

    Args:
        xy: (T, C, J, 2) pixels. confidence: (T, C, J). joints: (J,) bool.

    Returns:
        (T, C, J) bool.
    """
    if xy.shape[:-1] != confidence.shape or xy.shape[-1] != 2 or joints.shape != xy.shape[2:3]:
        raise ValueError(f"expected xy (T, C, J, 2), confidence (T, C, J), joints (J,); got "
                         f"{xy.shape}, {confidence.shape}, {joints.shape}")
    ok = np.isfinite(xy).all(-1) & (confidence >= min_confidence) & joints
    pts = np.where(ok[..., None], xy, np.nan)
    with np.errstate(all="ignore"), quiet_nan_warnings():
        size = np.nanmax(pts, axis=2) - np.nanmin(pts, axis=2)  # (T, C, 2)
        size = np.nanmedian(np.linalg.norm(size, axis=-1), axis=0)  # (C,)
        T = xy.shape[0]
        stack = np.stack([pts[np.clip(np.arange(T) + d, 0, T - 1)]
                          for d in range(-window, window + 1)])
        med = np.nanmedian(stack, axis=0)
        jump = np.linalg.norm(pts - med, axis=-1)
        consistent = ~(jump > max_jump * size[None, :, None])   # NaN size: nothing to judge
    return ok & consistent


@contextmanager
def quiet_nan_warnings():
    """Silence numpy's 'All-NaN slice' / 'Mean of empty slice' warnings inside a block (NaN
    results are expected and handled by the caller)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def sampson_error(E: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """First-order geometric (Sampson) distance of correspondences to an essential matrix.

    Args:
        E: (3, 3) with ``x2ᵀ E x1 = 0``. x1, x2: (..., 2) normalised coordinates.

    Returns:
        (...,) distance in normalised units (multiply by a focal length for pixels).
    """
    h1 = np.concatenate([x1, np.ones_like(x1[..., :1])], -1)
    h2 = np.concatenate([x2, np.ones_like(x2[..., :1])], -1)
    Ex1 = h1 @ E.T
    Etx2 = h2 @ E
    num = np.einsum("...i,...i->...", h2, Ex1)
    den = Ex1[..., 0] ** 2 + Ex1[..., 1] ** 2 + Etx2[..., 0] ** 2 + Etx2[..., 1] ** 2
    return np.abs(num) / np.sqrt(np.maximum(den, 1e-30))


def fit_essential(x1: np.ndarray, x2: np.ndarray, threshold: float,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Robust essential matrix (USAC/MAGSAC), the pose it implies (cheirality by recoverPose),
    polished by :func:`refine_pose`.

    Args:
        x1, x2: (N, 2) normalised coordinates of the same points in cameras 1 and 2.
        threshold: inlier threshold, normalised units (pixels / focal length).

    Returns:
        ``(E (3, 3), R (3, 3), t (3,) unit, inliers (N,) bool)`` with ``x2 ~ R x1 + t``, or None
        when no model could be fitted (too few points or degenerate).
    """
    if len(x1) < 8:
        return None
    cv2.setRNGSeed(seed)
    p1 = np.ascontiguousarray(x1, dtype=np.float64)
    p2 = np.ascontiguousarray(x2, dtype=np.float64)
    E, mask = cv2.findEssentialMat(p1, p2, np.eye(3), method=cv2.USAC_MAGSAC, prob=0.9999,
                                   threshold=threshold, maxIters=1000)
    if E is None or E.shape != (3, 3) or mask is None:
        return None
    inl = mask.ravel().astype(bool)
    _, R, t, pose_mask = cv2.recoverPose(E, p1, p2, np.eye(3), mask=mask.copy())
    inl &= pose_mask.ravel() > 0
    if inl.sum() < 8:
        return None
    R, t = refine_pose(R, t.ravel(), p1[inl], p2[inl], threshold)
    E = _skew(t) @ R
    return E, R, t, sampson_error(E, p1, p2) < threshold


def _skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])


def refine_pose(R: np.ndarray, t: np.ndarray, x1: np.ndarray, x2: np.ndarray,
                scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Polish a relative pose on the robust (soft-L1) Sampson error of its inliers.

    A robust fit's model comes from a minimal sample and its local optimisation; this least-
    squares pass over all inliers brought a synthetic pair's rotation error from 0.56° to 0.14°
    (the test pair of tests/calibration/test_relative_pose.py: 1 px noise, 20 % outliers).

    Args:
        R: (3, 3), t: (3,) the pose to start from (``x2 ~ R x1 + t``). x1, x2: (N, 2) normalised
            inlier correspondences. scale: the robust loss's scale, normalised units.

    Returns:
        (R (3, 3), t (3,) unit).
    """
    t = t / np.linalg.norm(t)
    u = np.cross(t, [1.0, 0, 0] if abs(t[0]) < 0.9 else [0, 1.0, 0])
    u /= np.linalg.norm(u)
    v = np.cross(t, u)

    def pose(p):
        tt = t + p[3] * u + p[4] * v
        return Rotation.from_rotvec(p[:3]).as_matrix() @ R, tt / np.linalg.norm(tt)

    def residuals(p):
        Rp, tp = pose(p)
        return sampson_error(_skew(tp) @ Rp, x1, x2)

    sol = least_squares(residuals, np.zeros(5), loss="soft_l1", f_scale=scale, x_scale=1e-3)
    return pose(sol.x)


@dataclass(frozen=True, eq=False)
class PairPose:
    """Relative pose of cameras i → j: ``x_j = R · x_i + t`` (camera frames; t unit length).

    Attributes:
        i, j: camera indices. R: (3, 3). t: (3,) unit baseline direction in camera j's frame.
        E: (3, 3) essential matrix, ``x_jᵀ E x_i = 0`` (normalised coordinates).
        flipped: (T,) bool, frames where camera j's left/right labels are exchanged relative
            to camera i's. n_shared: observations both cameras have. n_inliers: inliers of E.
        error_px: median Sampson error of the inliers, pixels.
    """

    i: int
    j: int
    R: np.ndarray
    t: np.ndarray
    E: np.ndarray
    flipped: np.ndarray
    n_shared: int
    n_inliers: int
    error_px: float


def frame_flips(E: np.ndarray, x1: np.ndarray, x2: np.ndarray, valid1: np.ndarray,
                valid2: np.ndarray, perm: np.ndarray, robust: float) -> np.ndarray:
    """Per frame, whether camera 2's left/right-exchanged labels fit ``E`` better.

    Each frame's joints that both label orders can score are scored with a truncated Sampson
    error (``min(e, robust)``); a frame flips when the exchanged order scores lower.

    Args:
        E: (3, 3), ``x2ᵀ E x1 = 0``. x1, x2: (T, J, 2) normalised. valid1, valid2: (T, J) bool.
        perm: (J,) left/right swap. robust: truncation of the error, normalised units.

    Returns:
        (T,) bool.
    """
    common = valid1 & valid2 & valid2[:, perm]
    with np.errstate(invalid="ignore"):
        e_plain = np.minimum(sampson_error(E, x1, x2), robust)
        e_flip = np.minimum(sampson_error(E, x1, x2[:, perm]), robust)
    plain = np.where(common, e_plain, 0).sum(-1)
    flip = np.where(common, e_flip, 0).sum(-1)
    return flip < plain


def pair_pose(x1: np.ndarray, x2: np.ndarray, valid1: np.ndarray, valid2: np.ndarray,
              perm: np.ndarray, focal_px: float, threshold_px: float = 3.0,
              i: int = 0, j: int = 1, seed: int = 0, max_points: int = 4000,
              rounds: int = 2) -> PairPose | None:
    """Relative pose of one camera pair from pooled joints, with left/right flips per frame.

    Fits E to the plain correspondences and to the ones with camera 2's labels exchanged in
    every frame, keeps the better (more inliers), then ``rounds`` times decides per frame which
    label order fits (:func:`frame_flips`) and refits on the corrected correspondences.

    Args:
        x1, x2: (T, J, 2) normalised coordinates of cameras i and j (NaN where missing).
        valid1, valid2: (T, J) bool reliable observations. perm: (J,) left/right permutation.
        focal_px: a focal length to turn ``threshold_px`` into normalised units.
        max_points: at most this many correspondences (drawn at random) go into each robust fit;
            inliers are then counted over all of them.

    Returns:
        The :class:`PairPose`, or None when the pair shares fewer than 8 observations or no
        model fits.
    """
    T = x1.shape[0]
    thr = threshold_px / focal_px
    starts = [(_fit_labelled(x1, x2, valid1, valid2, np.full(T, s), perm, thr, seed, max_points),
               np.full(T, s)) for s in (False, True)]
    starts = [(fit, flips) for fit, flips in starts if fit is not None]
    if not starts:
        return None
    fit, flips = max(starts, key=lambda s: s[0][3].sum())
    for _ in range(rounds):
        flips = frame_flips(fit[0], x1, x2, valid1, valid2, perm, 4 * thr)
        fit = _refit_labelled(fit, x1, x2, valid1, valid2, flips, perm, thr)
        if fit is None:
            return None
    E, R, t, inl, n_shared, err = fit
    return PairPose(i, j, R, t, E, flips, n_shared, int(inl.sum()), float(err * focal_px))


def _labelled(x1, x2, valid1, valid2, flips, perm):
    """(p1, p2) (M, 2): the correspondences both cameras have, ``flips`` (T,) applied to camera
    2's labels."""
    x2f = np.where(flips[:, None, None], x2[:, perm], x2)
    both = valid1 & np.where(flips[:, None], valid2[:, perm], valid2)
    return x1[both], x2f[both]


def _scored(E, R, t, p1, p2, thr):
    """(E, R, t, inliers, n shared, median inlier Sampson error) of a pose on p1, p2 (M, 2), or
    None with fewer than 8 inliers."""
    err = sampson_error(E, p1, p2)
    inl = err < thr
    if inl.sum() < 8:
        return None
    return E, R, t, inl, len(p1), float(np.median(err[inl]))


def _refit_labelled(fit, x1, x2, valid1, valid2, flips, perm, thr):
    """A fit of :func:`_fit_labelled` carried over to relabelled correspondences: the pose
    polished (:func:`refine_pose`) on the inliers it has among them, no new robust search (the
    flips change a few frames, not the pose; the six pairs of the Pose2Sim demo took 0.81 s with
    a fresh MAGSAC fit per round, 0.48 s this way)."""
    p1, p2 = _labelled(x1, x2, valid1, valid2, flips, perm)
    inl = sampson_error(fit[0], p1, p2) < thr
    if inl.sum() < 8:
        return None
    R, t = refine_pose(fit[1], fit[2], p1[inl], p2[inl], thr)
    return _scored(_skew(t) @ R, R, t, p1, p2, thr)


def _fit_labelled(x1, x2, valid1, valid2, flips, perm, thr, seed, max_points):
    """E fitted to the correspondences with ``flips`` applied to camera 2:
    (E, R, t, inliers over all shared, n shared, median inlier Sampson error) or None."""
    p1, p2 = _labelled(x1, x2, valid1, valid2, flips, perm)
    pick = np.arange(len(p1))
    if len(p1) > max_points:
        pick = np.sort(np.random.default_rng(seed).choice(len(p1), max_points, replace=False))
    fit = fit_essential(p1[pick], p2[pick], thr, seed)
    if fit is None:
        return None
    return _scored(*fit[:3], p1, p2, thr)
