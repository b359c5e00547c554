"""Metric scale and the world frame, from the person the cameras see (and the scene).

Cameras recovered from images alone are known up to a similarity (rotation, translation and
scale of the world). This module fixes all seven numbers:

- **Scale** from body proportions: each limb's length is a known fraction of standing height
  (Drillis & Contini's anthropometric ratios, as tabulated in Winter, *Biomechanics and Motor
  Control of Human Movement*, 4th ed., fig. 4.1): upper arm 0.186 H, forearm 0.146 H, thigh
  0.245 H, shank 0.246 H, hip joints to shoulders 0.288 H. The stature is the least-squares fit
  of ``length_b = ratio_b · H`` over the limbs (a detector's error on a joint is a length, not a
  fraction, so long bones weigh more), after dropping limbs whose own estimate is more than 25 %
  from the median (a misplaced joint). With a subject height H given the scale is exact up to
  the detector's notion of a joint; without one, H defaults to 1.70 m and the scale carries the
  spread of adult statures (:data:`ADULT_STATURE_SD_M`), reported by :func:`scale_uncertainty`.
  A known distance between two camera centres (:class:`KnownDistance`) fixes the scale exactly.
- **Up**: the normal of the floor plane when the feet touch the floor over an area wide enough
  to fit one (the person walks around); else the scene's vertical (the vanishing point of
  vertical lines, :mod:`epiflow.calibration.vanishing`) when frames were given and it is found;
  else the body: the median direction pelvis → thorax over all frames (people stand upright far
  more than they lie; a person leaning or balancing tilts it).
- **Floor** at z = 0: the low end (5th percentile) of the ankles' height, less the ankle's
  height above the sole (0.039 H).
- **Origin** on the floor under the pelvis at the first frame the pelvis is seen; **y** is the
  direction the person faces then (horizontal), **x** = y × z (their right).

Points are h36m17 joints, (T, 17, 3), in the frame to be moved.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from epiflow.calibration.camera import CalibrationError, match_camera_names
from epiflow.skeleton import H36M17

__all__ = ["BONE_RATIOS", "ANKLE_HEIGHT_RATIO", "ADULT_STATURE_M", "ADULT_STATURE_SD_M",
           "bone_lengths", "estimate_height", "scale_from_body", "scale_uncertainty",
           "KnownDistance", "up_direction", "world_alignment", "WorldAlignment", "UP_SOURCES"]

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
#: the stature assumed when none is given, and the spread of adult statures around it, metres:
#: men and women pooled (adult means of about 1.63-1.78 m by sex and country, a within-sex
#: standard deviation of about 0.07 m; NCD-RisC, eLife 2016), so one standard deviation is
#: 5.3 % of the scale and 95 % of adults lie within ±10 %
ADULT_STATURE_M = 1.70
ADULT_STATURE_SD_M = 0.09
#: a limb whose own estimate of the stature is further than this (relative) from the median of
#: all limbs' is left out of the fit (a joint the detector misplaces)
_LIMB_OUTLIER = 0.25
#: how up was decided, best first
UP_SOURCES = ("floor plane", "scene lines", "body axis")


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


def _height_fit(points: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(stature, limb lengths (B,), limbs used (B,) bool): see :func:`estimate_height`."""
    ratios = np.array([r for _, _, r in BONE_RATIOS])
    lengths = bone_lengths(points)
    seen = np.isfinite(lengths)
    if not seen.any():
        raise ValueError("estimate_height: no limb is seen in any frame (all joints NaN)")
    each = lengths / ratios
    used = seen & (np.abs(each / np.median(each[seen]) - 1) <= _LIMB_OUTLIER)
    r, L = ratios[used], lengths[used]
    return float(r @ L / (r @ r)), lengths, used


def estimate_height(points: np.ndarray) -> float:
    """Standing height implied by the limb lengths: the least-squares fit of
    ``length_b = ratio_b · H`` over the limbs of :data:`BONE_RATIOS` (equal error per limb in
    length units), limbs whose own ``length / ratio`` is more than 25 % from the median left out.

    On the Pose2Sim demo (MediaPipe joints triangulated with the lab cameras, lab stature 1.60 m)
    the fit gives 1.61 m where the median of ``length / ratio`` over limbs gave 1.56 m: MediaPipe
    places the shoulders and elbows so that upper arms and shanks come out short and forearms
    and the trunk long, and a median picks one of them, where the fit averages them by length.

    Args:
        points: (T, 17, 3) h36m17 joints, metres.

    Returns:
        Height in the unit of ``points``.
    """
    return _height_fit(points)[0]


def scale_uncertainty(points: np.ndarray, height_given: bool) -> float:
    """Relative standard deviation of the body-proportion scale (0.05 = ±5 %).

    Two parts, added in quadrature: how well one stature explains the limbs (the least-squares
    fit's standard error, relative: the spread of this person's limbs around the proportions,
    which includes the detector's own notion of each joint), and, when no height was given, the
    spread of adult statures around the default (:data:`ADULT_STATURE_SD_M` /
    :data:`ADULT_STATURE_M`).

    Args:
        points: (T, 17, 3) h36m17 joints (any unit).
        height_given: whether the subject's height was given.
    """
    ratios = np.array([r for _, _, r in BONE_RATIOS])
    H, lengths, used = _height_fit(points)
    r, L = ratios[used], lengths[used]
    dof = max(len(r) - 1, 1)
    fit = float(np.sqrt(np.sum((L - r * H) ** 2) / dof / (r @ r)) / H)
    stature = 0.0 if height_given else ADULT_STATURE_SD_M / ADULT_STATURE_M
    return float(np.hypot(fit, stature))


def scale_from_body(points: np.ndarray, height: float) -> float:
    """The factor that turns ``points`` into metres for a person ``height`` metres tall."""
    return height / estimate_height(points)


@dataclass(frozen=True)
class KnownDistance:
    """A measured distance between two camera centres (a tape measure), which fixes the scale.

    Attributes:
        camera_a, camera_b: camera names (matched as :func:`~epiflow.calibration.camera.
            match_camera_names` matches: case, separators and leading zeros ignored).
        metres: the distance between their optical centres, metres (> 0).
    """

    camera_a: str
    camera_b: str
    metres: float

    @classmethod
    def parse(cls, values, where: str = "--known-distance") -> "KnownDistance":
        """From ``[camera_a, camera_b, metres]`` (command line or config), checked."""
        values = list(values)
        if len(values) != 3:
            raise ValueError(f"{where}: expected CAMERA_A CAMERA_B METRES (e.g. cam01 cam02 "
                             f"3.20); got {values}")
        a, b, d = values
        try:
            metres = float(d)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: the distance must be a number of metres (e.g. 3.20); "
                             f"got {d!r}") from None
        if not np.isfinite(metres) or metres <= 0:
            raise ValueError(f"{where}: the distance must be > 0 metres; got {d!r}")
        if str(a) == str(b):
            raise ValueError(f"{where}: two different cameras are needed; got {a!r} twice")
        return cls(str(a), str(b), metres)

    def indices(self, names, where: str = "--known-distance") -> tuple[int, int]:
        """Positions of the two cameras in ``names``.

        Raises:
            CalibrationError: a camera that is not among ``names`` (named, with the cameras
                there are), or both names meaning one camera.
        """
        names = [str(n) for n in names]
        out = []
        for cam in (self.camera_a, self.camera_b):
            try:
                out += match_camera_names([cam], names, where)
            except CalibrationError:
                raise CalibrationError(
                    f"{where}: camera {cam!r} is not one of this capture's cameras {names}; "
                    f"give two of those names and the metres between their centres, e.g. "
                    f"--known-distance {names[0]} {names[-1]} 3.20") from None
        if out[0] == out[1]:
            raise CalibrationError(f"{where}: {self.camera_a!r} and {self.camera_b!r} are one "
                                   f"camera ({names[out[0]]}); give two different cameras")
        return out[0], out[1]

    def scale(self, centers: np.ndarray, names) -> float:
        """The factor that makes the distance between the two cameras' ``centers`` (C, 3), in
        the reconstruction's unit, equal to :attr:`metres`."""
        i, j = self.indices(names)
        d = float(np.linalg.norm(np.asarray(centers)[i] - np.asarray(centers)[j]))
        if not d > 0:
            raise CalibrationError(f"--known-distance: cameras {names[i]} and {names[j]} came out "
                                   f"at the same place; the scale cannot be taken from them")
        return self.metres / d


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
        up_source: one of :data:`UP_SOURCES` (``"floor plane"``, ``"scene lines"``,
            ``"body axis"``).
        up_tilt_deg: angle between the up used and the body axis (pelvis → thorax), degrees.
    """

    scale: float
    R: np.ndarray
    t: np.ndarray
    height: float
    up_source: str
    up_tilt_deg: float = 0.0


#: the scene's vertical is refused when it is further than this from the body axis (degrees):
#: people lean and balance (the Pose2Sim demo's subject by 24°), but a vertical 45° off the body
#: is more likely a wrong cluster of lines than a person lying down
SCENE_UP_MAX_DEG = 45.0


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b),
                                              -1, 1))))


def world_alignment(points: np.ndarray, height: float = ADULT_STATURE_M,
                    min_floor_spread: float = 0.4, scale: float | None = None,
                    scene_up: np.ndarray | None = None) -> WorldAlignment:
    """The similarity that makes ``points`` metric, Z up, floor z = 0, origin under the pelvis.

    Args:
        points: (T, 17, 3) h36m17 joints in an arbitrary frame and scale.
        height: the subject's standing height, metres (the scale's when ``scale`` is None; the
            ankle's height above the floor always).
        min_floor_spread: the feet's spread (std along the plane's second axis, metres after
            scaling) above which the floor plane's normal replaces the body axis as up.
        scale: the factor to metres when known otherwise (a known distance between cameras);
            None = from the body and ``height``.
        scene_up: (3,) the scene's vertical in the frame of ``points`` (vanishing point of
            vertical lines, either sign), or None. Used when the feet give no floor plane and it
            lies within :data:`SCENE_UP_MAX_DEG` of the body axis.

    Returns:
        :class:`WorldAlignment`.
    """
    scale = scale_from_body(points, height) if scale is None else float(scale)
    P = points * scale
    body = up_direction(P)
    up, up_source = body, "body axis"
    if scene_up is not None:
        v = np.asarray(scene_up, float) / np.linalg.norm(scene_up)
        v = v if v @ body > 0 else -v
        if _angle_deg(v, body) < SCENE_UP_MAX_DEG:
            up, up_source = v, "scene lines"
    normal = _floor_normal(P, body, min_floor_spread)
    if normal is not None and _angle_deg(normal, body) < 30:
        up, up_source = normal, "floor plane"
    R = _frame_from(P, up)
    Q = P @ R.T
    ankles = Q[:, [_J("l_ankle"), _J("r_ankle")], 2]
    floor = np.nanpercentile(ankles, 5) - ANKLE_HEIGHT_RATIO * height
    pelvis = Q[:, _J("pelvis")]
    first = pelvis[np.isfinite(pelvis).all(1)][0]
    t = -np.array([first[0], first[1], floor])
    return WorldAlignment(float(scale), R, t, float(height), up_source, _angle_deg(up, body))


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
