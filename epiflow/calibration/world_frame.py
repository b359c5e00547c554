"""Metric scale and the world frame, from the person the cameras see.

Cameras recovered from images alone are known up to a similarity (rotation, translation and
scale of the world). This module fixes all seven numbers from the body:

- **Scale** from body proportions: each limb's length is a known fraction of standing height
  (Drillis & Contini's anthropometric ratios, as tabulated in Winter, *Biomechanics and Motor
  Control of Human Movement*, 4th ed., fig. 4.1): upper arm 0.186 H, forearm 0.146 H, thigh
  0.245 H, shank 0.246 H, hip joints to shoulders 0.288 H. With a subject height H given the
  scale is exact up to the detector's notion of a joint; without one, H defaults to 1.70 m
  (an adult's, either sex, within ±6 % for most adults).
- **Up** from the body: the median direction pelvis → thorax over all frames (people stand
  upright far more than they lie), replaced by the normal of the floor plane when the feet
  touch the floor over an area wide enough to fit one (the person walks around).
- **Floor** at z = 0: the low end (5th percentile) of the ankles' height, less the ankle's
  height above the sole (0.039 H).
- **Origin** on the floor under the pelvis at the first frame the pelvis is seen; **y** is the
  direction the person faces then (horizontal), **x** = y × z (their right).

Points are h36m17 joints, (T, 17, 3), in the frame to be moved.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from epiflow.skeleton import H36M17

__all__ = ["BONE_RATIOS", "ANKLE_HEIGHT_RATIO", "bone_lengths", "estimate_height",
           "scale_from_body", "up_direction", "world_alignment", "WorldAlignment"]

_J = H36M17.index
#: (joint a, joint b, length / stature) for h36m17 segments; "mid_hip"/"mid_shoulder" pairs are
#: handled by :func:`bone_lengths`.
BONE_RATIOS: tuple[tuple[str, str, float], ...] = (
    ("l_shoulder", "l_elbow", 0.186), ("r_shoulder", "r_elbow", 0.186),
    ("l_elbow", "l_wrist", 0.146), ("r_elbow", "r_wrist", 0.146),
    ("l_hip", "l_knee", 0.245), ("r_hip", "r_knee", 0.245),
    ("l_knee", "l_ankle", 0.246), ("r_knee", "r_ankle", 0.246),
    ("mid_hip", "mid_shoulder", 0.288),
)
#: height of the ankle joint above the sole, as a fraction of stature
ANKLE_HEIGHT_RATIO = 0.039


def _named(points: np.ndarray, name: str) -> np.ndarray:
    if name == "mid_hip":
        return (points[..., _J("l_hip"), :] + points[..., _J("r_hip"), :]) / 2
    if name == "mid_shoulder":
        return (points[..., _J("l_shoulder"), :] + points[..., _J("r_shoulder"), :]) / 2
    return points[..., _J(name), :]


def bone_lengths(points: np.ndarray) -> np.ndarray:
    """Median length of each :data:`BONE_RATIOS` segment over frames.

    Args:
        points: (T, 17, 3) h36m17 joints (any length unit); NaN where missing.

    Returns:
        (B,) median lengths in the unit of ``points``; NaN for a segment never seen.
    """
    if points.ndim != 3 or points.shape[1:] != (17, 3):
        raise ValueError(f"points must have shape (T, 17, 3) (h36m17); got {points.shape}")
    out = []
    for a, b, _ in BONE_RATIOS:
        d = np.linalg.norm(_named(points, a) - _named(points, b), axis=-1)
        d = d[np.isfinite(d)]
        out.append(np.median(d) if len(d) else np.nan)
    return np.array(out)


def estimate_height(points: np.ndarray) -> float:
    """Standing height implied by the limb lengths: the median of ``length / ratio`` over bones.

    Args:
        points: (T, 17, 3) h36m17 joints, metres.

    Returns:
        Height in the unit of ``points``.
    """
    ratios = np.array([r for _, _, r in BONE_RATIOS])
    est = bone_lengths(points) / ratios
    est = est[np.isfinite(est)]
    if not len(est):
        raise ValueError("estimate_height: no limb is seen in any frame (all joints NaN)")
    return float(np.median(est))


def scale_from_body(points: np.ndarray, height: float) -> float:
    """The factor that turns ``points`` into metres for a person ``height`` metres tall."""
    return height / estimate_height(points)


def _geometric_median(v: np.ndarray, iterations: int = 100) -> np.ndarray:
    """Geometric median of (N, 3) vectors (Weiszfeld). Unlike the median of each coordinate it
    turns with the vectors, so the world frame does not depend on the frame the points come in
    (camera 0's, arbitrary); like it, a minority of wild vectors hardly moves it."""
    m = v.mean(0)
    for _ in range(iterations):
        w = 1.0 / np.maximum(np.linalg.norm(v - m, axis=1), 1e-12)
        new = (w[:, None] * v).sum(0) / w.sum()
        if np.linalg.norm(new - m) < 1e-12:
            return new
        m = new
    return m


def up_direction(points: np.ndarray) -> np.ndarray:
    """(3,) unit up vector: the median direction pelvis → thorax over frames (see module doc;
    the geometric median of the unit directions)."""
    axis = points[:, _J("thorax")] - points[:, _J("pelvis")]
    axis = axis[np.isfinite(axis).all(1)]
    if not len(axis):
        raise ValueError("up_direction: pelvis and thorax are never both seen")
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    up = _geometric_median(axis)
    return up / np.linalg.norm(up)


def _plane(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares plane of (N, 3) points: (unit normal, spread along its second axis)."""
    centred = points - points.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    return vt[2], s[1] / np.sqrt(len(points))


def _floor_normal(points: np.ndarray, up: np.ndarray, min_spread: float) -> np.ndarray | None:
    """Normal of a plane fitted to the lower ankle of each frame, when they spread widely.

    All frames' lower ankles are fitted (the stance foot in most frames; a swinging foot is
    lifted the same way wherever the person walks, so it shifts the plane, not tilts it), then
    again without the ankles far from that first plane (triangulation outliers). Ankles are not
    picked by their height along ``up``: ``up`` is only the body axis, which leans (forward on a
    walk, ~5°), and a cut by height along a tilted axis keeps the feet of one end of the walk.
    """
    ankles = points[:, [_J("l_ankle"), _J("r_ankle")]]
    h = ankles @ up
    low = np.nanargmin(np.where(np.isfinite(h), h, np.inf), axis=1)
    feet = ankles[np.arange(len(ankles)), low]
    feet = feet[np.isfinite(feet).all(1)]
    if len(feet) < 20:
        return None
    normal, _ = _plane(feet)
    residual = (feet - feet.mean(0)) @ normal
    mad = np.median(np.abs(residual - np.median(residual)))
    inliers = np.abs(residual - np.median(residual)) <= 3 * 1.4826 * mad + 1e-9
    if inliers.sum() >= 20:
        feet = feet[inliers]
    normal, spread = _plane(feet)
    if spread < min_spread:
        return None
    return normal if normal @ up > 0 else -normal


@dataclass(frozen=True)
class WorldAlignment:
    """``X_world = scale · R · X_old + t``, with how each part was decided.

    Attributes:
        scale: float. R: (3, 3). t: (3,) metres. height: subject height used, metres.
        up_source: ``"body axis"`` or ``"floor plane"``.
    """

    scale: float
    R: np.ndarray
    t: np.ndarray
    height: float
    up_source: str


def world_alignment(points: np.ndarray, height: float = 1.70,
                    min_floor_spread: float = 0.4) -> WorldAlignment:
    """The similarity that makes ``points`` metric, Z up, floor z = 0, origin under the pelvis.

    Args:
        points: (T, 17, 3) h36m17 joints in an arbitrary frame and scale.
        height: the subject's standing height, metres.
        min_floor_spread: the feet's spread (std along the plane's second axis, metres after
            scaling) above which the floor plane's normal replaces the body axis as up.

    Returns:
        :class:`WorldAlignment`.
    """
    scale = scale_from_body(points, height)
    P = points * scale
    up = up_direction(P)
    normal = _floor_normal(P, up, min_floor_spread)
    up_source = "body axis"
    if normal is not None and np.degrees(np.arccos(np.clip(normal @ up, -1, 1))) < 30:
        up, up_source = normal, "floor plane"
    R = _frame_from(P, up)
    Q = P @ R.T
    ankles = Q[:, [_J("l_ankle"), _J("r_ankle")], 2]
    floor = np.nanpercentile(ankles, 5) - ANKLE_HEIGHT_RATIO * height
    pelvis = Q[:, _J("pelvis")]
    first = pelvis[np.isfinite(pelvis).all(1)][0]
    t = -np.array([first[0], first[1], floor])
    return WorldAlignment(float(scale), R, t, float(height), up_source)


def _frame_from(points: np.ndarray, up: np.ndarray) -> np.ndarray:
    """(3, 3) rotation whose rows are the new x, y, z axes: z = up, y = facing at the start."""
    across = points[:, _J("r_hip")] - points[:, _J("l_hip")]
    across = across[np.isfinite(across).all(1)][:30]
    facing = np.cross(up, _geometric_median(across)) if len(across) else np.zeros(3)
    facing -= (facing @ up) * up
    if np.linalg.norm(facing) < 1e-9:  # hips unseen: any horizontal direction
        facing = np.cross(up, [1.0, 0, 0] if abs(up[0]) < 0.9 else [0, 1.0, 0])
    y = facing / np.linalg.norm(facing)
    x = np.cross(y, up)
    return np.stack([x, y, up])
