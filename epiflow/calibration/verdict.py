"""How far to trust cameras recovered from people: per-camera uncertainty and a verdict.

A calibration from people can look as good as any other (small reprojection errors) and still
be wrong: the pose of a camera that sees a person standing nearly still, or through a lens whose
intrinsics are wrong, is not fixed by the observations. This module states, per camera:

1. **Uncertainty** (:func:`camera_uncertainty`), as 95 % bounds:

   - ``rotation_deg``: the largest error of the camera's rotation relative to any other camera
     (the gauge-free quantity, ``R_j R_iᵀ``), degrees;
   - ``position``: the error of its centre, as a fraction of the rig's size (the largest distance
     between two camera centres);
   - ``focal_pct``: the error of its focal length, percent, when it was estimated.

   Three estimates, the largest kept per camera:

   - the **covariance** of the last bundle adjustment (Gauss-Newton ``σ² (Jᵀ W J)⁻¹`` at the
     solution, σ² the residual variance, camera 0 and the scale fixed:
     :func:`~epiflow.calibration.bundle_adjustment.pose_covariance`); a bound is
     ``√(χ²₃(0.95) λ_max)`` of the 3 × 3 covariance of the error;
   - a **bootstrap over frames**: the adjustment refitted from its solution (three reweighted
     Gauss-Newton steps, :func:`~epiflow.calibration.bundle_adjustment.linearized_refits`) on
     frames drawn with replacement, in blocks of T / 20 consecutive frames (neighbouring frames of
     a video are nearly the same image, and one frame's joints share the detector's errors on it);
     the 95th percentile of the refits' deviations from the solution;
   - with intrinsics given, **how much the cameras hang on them** (:func:`intrinsics_sensitivity`):
     the change when the focal lengths and k1 are freed. Wrong intrinsics bias the cameras, which
     no spread of the data shows; this is the size of that bias, to first order. With the focal
     lengths estimated, the same with the principal points freed (they are assumed at the image
     centres; Shelf's are up to 51 px off, which turns its cameras 2-4°);
   - with several people, **how much the people disagree** (:func:`people_disagreement`): each
     person who fixes the cameras alone refitted alone; the cameras' spread over the people, over
     √people. A bias from mixing up people across cameras, which no spread of the frames shows.

2. **A verdict** (:func:`judge`), per camera and for the rig: ``good``, ``doubtful`` or
   ``failed``, each with its reasons and what to do. A *large error* is a rotation more than
   :data:`LARGE_ROTATION_DEG` (2°) off, or a centre more than :data:`LARGE_POSITION` (5 %) of the
   rig's size off. ``good`` needs the 95 % bounds under those limits and none of the warning
   signs below; a bound above :data:`FAILED_FACTOR` × a limit (or not finite), or an implausible
   estimated focal length, is ``failed``; anything between is ``doubtful``; a check that could
   not be computed (a degenerate refit) is said (``unchecked``) and caps the verdict at
   ``doubtful``. The reason names what
   made the bound large: the data (``uncertain``: more frames, more motion) or the given
   intrinsics (``intrinsics``: freeing them moves the camera more than the data's spread). Warning
   signs, each of which makes a camera at best ``doubtful``:

   - the person moved less than the motion check asks by default (the check was relaxed);
   - a median reprojection error above :data:`HIGH_ERROR_PX`.

The bounds' coverage (how often the true error lies within them) and the verdicts' record are
measured over synthetic captures with known cameras and real captures with reference calibrations
by ``benchmarks/calibration_verdict.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.spatial.transform import Rotation

from epiflow.calibration.bundle_adjustment import (INTRINSIC_PARAMETERS, linearized_refits,
                                                   pose_covariance)
from epiflow.calibration.camera import CameraRig
from epiflow.calibration.similarity import umeyama

__all__ = ["Adjustment", "Uncertainty", "Verdict", "CameraVerdict", "camera_uncertainty",
           "judge", "assess",
           "intrinsics_sensitivity", "verdict_lines", "verdict_metadata", "rig_size",
           "LARGE_ROTATION_DEG", "LARGE_POSITION", "VERDICTS"]

#: a camera whose rotation (relative to the others) is more than this off has a large error
LARGE_ROTATION_DEG = 2.0
#: a camera whose centre is more than this fraction of the rig's size off has a large error
LARGE_POSITION = 0.05
#: a bound this many times a limit is a failed calibration, not a doubtful one
FAILED_FACTOR = 5.0
#: a median reprojection error above this (pixels) is a warning sign
HIGH_ERROR_PX = 15.0
#: χ²₃(0.95): a 3D Gaussian error lies within √(this · λ_max) with at least 95 % probability
CHI2_3_95 = 7.8147
#: Gauss-Newton steps of each refit of :func:`people_disagreement`
SPLIT_STEPS = 8
#: a person with fewer frames than this is not refitted alone (:func:`people_disagreement`)
MIN_PERSON_FRAMES = 20
#: the verdicts, best first
VERDICTS = ("good", "doubtful", "failed")


@dataclass(frozen=True, eq=False)
class Adjustment:
    """The last bundle adjustment of a calibration: its observations and solution.

    Attributes:
        rig: the adjusted cameras (any world frame, any scale).
        points2d: (C, T, J, 2) observations, pixels, NaN where missing.
        weight: (C, T, J) weights as adjusted (0: left out).
        points3d: (T, J, 3) the adjusted points, the rig's frame; NaN where left out.
        refine: intrinsics refined. loss, loss_scale_px: the robust loss.
        groups: (T,) which person each frame is of, when several people's frames are stacked
            (:func:`~epiflow.calibration.people_calibration.calibrate_from_several_people`);
            None: one person.
    """

    rig: CameraRig
    points2d: np.ndarray
    weight: np.ndarray
    points3d: np.ndarray
    refine: tuple[str, ...] = ()
    loss: str = "cauchy"
    loss_scale_px: float = 5.0
    groups: np.ndarray | None = None

    def flat(self, frame_weight: np.ndarray | None = None):
        """(points2d (C, T·J, 2), weight (C, T·J), points3d (T·J, 3)), each frame's weight
        multiplied by ``frame_weight`` (T,) when given."""
        C, T, J = self.weight.shape
        w = self.weight if frame_weight is None else self.weight * frame_weight[None, :, None]
        return (self.points2d.reshape(C, T * J, 2), w.reshape(C, T * J),
                self.points3d.reshape(T * J, 3))


@dataclass(frozen=True, eq=False)
class Uncertainty:
    """95 % bounds per camera (see the module docstring), and how they were had.

    Attributes:
        rotation_deg: (C,) degrees. position: (C,) fraction of the rig's size. focal_pct: (C,)
            percent, NaN where the focal length was given. sigma_px: residual std, pixels.
        weakest: the covariance's smallest over largest eigenvalue (near 0: a direction the
            observations do not fix).
        parts: the rotation bounds (C,) of each source, degrees: ``covariance``, ``bootstrap``
            and ``intrinsics`` (:func:`intrinsics_sensitivity`; with ``intrinsics_focal_pct``,
            the focal lengths' change) where they were run.
    """

    rotation_deg: np.ndarray
    position: np.ndarray
    focal_pct: np.ndarray
    sigma_px: float
    weakest: float
    parts: dict


def rig_size(rig: CameraRig) -> float:
    """The largest distance between two camera centres (the rig's units)."""
    d = rig.centers[:, None] - rig.centers[None]
    return float(np.linalg.norm(d, axis=-1).max())


def _pair_rotation_bounds(cov_a: np.ndarray, R: np.ndarray) -> np.ndarray:
    """(C,) per camera the largest 95 % bound (degrees) of its rotation relative to another.

    Args:
        cov_a: (C, 3, C, 3) covariance of the left rotation errors a_c (radians).
        R: (C, 3, 3) world→camera rotations.
    """
    C = len(R)
    out = np.zeros(C)
    for i in range(C):
        for j in range(i + 1, C):
            A = R[j] @ R[i].T  # error of R_j R_iᵀ: a_j - A a_i
            S = (cov_a[j, :, j] + A @ cov_a[i, :, i] @ A.T - cov_a[j, :, i] @ A.T
                 - A @ cov_a[i, :, j])
            bound = np.degrees(np.sqrt(CHI2_3_95 * max(np.linalg.eigvalsh(S).max(), 0.0)))
            out[i], out[j] = max(out[i], bound), max(out[j], bound)
    return out


def _covariance_bounds(adj: Adjustment) -> tuple[np.ndarray, np.ndarray, np.ndarray, float,
                                                     float]:
    """(rotation_deg (C,), position (C,), focal_pct (C,), sigma_px, weakest) from the
    adjustment's covariance (module docstring)."""
    x, w, X = adj.flat()
    pc = pose_covariance(adj.rig, x, w, X, adj.refine, adj.loss, adj.loss_scale_px)
    cov = pc.cov
    rot = _pair_rotation_bounds(cov[:, :3, :, :3], adj.rig.R)
    C = len(adj.rig)
    pos = np.array([np.sqrt(CHI2_3_95 * max(np.linalg.eigvalsh(cov[c, 3:6, c, 3:6]).max(), 0))
                    for c in range(C)]) / rig_size(adj.rig)
    focal = np.full(C, np.nan)
    for name in ("focal", "shared_focal"):
        if name in adj.refine:  # its column: after the pose's 6 and the intrinsics before it
            col = 6 + sum(INTRINSIC_PARAMETERS[r] for r in adj.refine[:adj.refine.index(name)])
            f = np.sqrt(adj.rig.K[:, 0, 0] * adj.rig.K[:, 1, 1])
            focal = 100 * 1.96 * np.sqrt(np.maximum(cov[np.arange(C), col, np.arange(C), col],
                                                    0)) / f
    return rot, pos, focal, pc.sigma_px, pc.weakest


def _bootstrap_bounds(adj: Adjustment, n: int, block: int, seed: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rotation_deg (C,), position (C,), focal_pct (C,)) 95th percentiles of ``n`` refits
    (:func:`~epiflow.calibration.bundle_adjustment.linearized_refits`) on frames drawn with
    replacement in blocks of ``block`` consecutive frames."""
    rng = np.random.default_rng(seed)
    C, T, J = adj.weight.shape
    starts = np.arange(0, T, block)
    counts = np.zeros((n, T))
    for b in range(n):
        for s in rng.choice(starts, len(starts)):
            counts[b, s:s + block] += 1
    x, w, X = adj.flat()
    rigs = linearized_refits(adj.rig, x, w, X, np.repeat(counts, J, axis=1), adj.refine,
                             adj.loss, adj.loss_scale_px)
    rot = [_relative_rotation_errors(rig, adj.rig) for rig in rigs]
    pos = [_position_errors(rig, adj.rig) for rig in rigs]
    focal = [100 * np.abs(rig.K[:, 0, 0] / adj.rig.K[:, 0, 0] - 1) for rig in rigs]
    q = lambda a: np.percentile(np.array(a), 95, axis=0)  # noqa: E731
    estimated = {"focal", "shared_focal"} & set(adj.refine)
    return q(rot), q(pos), q(focal) if estimated else np.full(C, np.nan)


def _relative_rotation_errors(rig: CameraRig, reference: CameraRig) -> np.ndarray:
    """(C,) per camera the largest angle (degrees) between its rotation relative to another camera
    in ``rig`` and in ``reference``."""
    C = len(rig)
    out = np.zeros(C)
    for i in range(C):
        for j in range(i + 1, C):
            D = (rig.R[j] @ rig.R[i].T) @ (reference.R[j] @ reference.R[i].T).T
            e = float(np.degrees(Rotation.from_matrix(D).magnitude()))
            out[i], out[j] = max(out[i], e), max(out[j], e)
    return out


def camera_uncertainty(adj: Adjustment, bootstrap: int = 20, intrinsics_given: bool = False,
                       block: int | None = None, seed: int = 0) -> Uncertainty:
    """95 % bounds per camera on rotation, position and focal length (module docstring, step 1).

    Args:
        adj: the last bundle adjustment (:class:`Adjustment`).
        bootstrap: refits over resampled frames (0: none).
        intrinsics_given: the intrinsics were given, not estimated. The effect of the given or
            assumed intrinsics (:func:`intrinsics_sensitivity`) is part of the bounds either way
            (except with none estimated nor given, a fixed-intrinsics method), and so is the
            people's disagreement (:func:`people_disagreement`) when ``adj.groups`` is set.
        block: frames per resampled block; None: T / 20, at least 1.
        seed: seed of the resampling.
    """
    C = len(adj.rig)
    rot, pos, focal, sigma, weakest = _covariance_bounds(adj)
    found = {"covariance": rot}
    if bootstrap > 0:
        T = adj.weight.shape[1]
        brot, bpos, bfocal = _bootstrap_bounds(adj, bootstrap, block or max(1, T // 20), seed)
        rot, pos, focal = np.fmax(rot, brot), np.fmax(pos, bpos), np.fmax(focal, bfocal)
        found["bootstrap"] = brot
    if intrinsics_given or {"focal", "shared_focal"} & set(adj.refine):
        srot, spos, sfocal = intrinsics_sensitivity(adj)
        rot, pos = np.fmax(rot, srot), np.fmax(pos, spos)  # fmax: NaN (not checked) ignored
        found["intrinsics"], found["intrinsics_focal_pct"] = srot, sfocal
        found["intrinsics_given"] = intrinsics_given
    people = people_disagreement(adj)
    if people is not None:
        rot, pos = np.fmax(rot, people[0]), np.fmax(pos, people[1])
        found["people"], found["people_position"] = people
    return Uncertainty(rot, pos, focal, sigma, weakest, found)


def people_disagreement(adj: Adjustment, steps: int = SPLIT_STEPS
                        ) -> tuple[np.ndarray, np.ndarray] | None:
    """How much the cameras change from one person to another, with several people: the
    adjustment refitted from its solution on each person's frames alone
    (:func:`~epiflow.calibration.bundle_adjustment.linearized_refits`, ``steps`` steps; people
    with at least :data:`MIN_PERSON_FRAMES` frames), each compared with the whole solution,
    gauge-free.

    The covariance and the bootstrap show the noise of the data, not a bias: detections of
    different people mixed up across cameras, a detector's errors that differ from one person's
    pose to another's. Each person alone then gives cameras off the whole solution by more than
    their noise (on Shelf 3-5 × their covariance bounds, on the two-person demo up to 10 ×). If
    each person's cameras are off the truth independently, the whole, about their mean, is off
    by about their spread around it over √n; that is the estimate. Only people who fix the
    cameras alone count (each refit's own covariance bound under :data:`LARGE_ROTATION_DEG`:
    someone standing in a corner, seen by few cameras, does not).

    Returns:
        (rotation_deg (C,), position (C,)): per camera the root mean square, over the people,
        of the change of its rotation relative to another camera (degrees) and of its centre
        (after the best similarity, fraction of the rig's size) from the whole solution to that
        person's, over √(people); NaN where a refit failed. None with fewer than two people who
        fix the cameras alone.
    """
    if adj.groups is None:
        return None
    C, T, J = adj.weight.shape
    people = [g for g in np.unique(adj.groups) if (adj.groups == g).sum() >= MIN_PERSON_FRAMES]
    if len(people) < 2:
        return None
    masks = np.array([(adj.groups == g).astype(float) for g in people])
    x, w, X = adj.flat()
    try:
        with np.errstate(all="ignore"):
            rigs = linearized_refits(adj.rig, x, w, X, np.repeat(masks, J, axis=1), adj.refine,
                                     adj.loss, adj.loss_scale_px, steps=steps)
    except (np.linalg.LinAlgError, ValueError):
        return np.full(C, np.nan), np.full(C, np.nan)
    if not all(np.isfinite(r.R).all() and np.isfinite(r.t).all() for r in rigs):
        return np.full(C, np.nan), np.full(C, np.nan)
    noise = [_covariance_bounds(replace(adj, rig=rig, weight=adj.weight * m[None, :, None]))[:2]
             for rig, m in zip(rigs, masks)]
    fixed = [k for k, (r, _) in enumerate(noise) if np.nanmax(r) < LARGE_ROTATION_DEG]
    if len(fixed) < 2:
        return None
    rot = np.array([_relative_rotation_errors(rigs[k], adj.rig) for k in fixed])
    pos = np.array([_position_errors(rigs[k], adj.rig) for k in fixed])
    n = len(fixed)  # the whole is about their mean: its bias about their spread over √n
    return np.sqrt((rot ** 2).mean(0) / n), np.sqrt((pos ** 2).mean(0) / n)


def intrinsics_sensitivity(adj: Adjustment) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How much the cameras hang on the intrinsics that were given or assumed: the adjustment
    refitted from its solution (:func:`~epiflow.calibration.bundle_adjustment.linearized_refits`,
    six steps) with more of them free: with intrinsics given, the focal lengths and the first
    radial distortion coefficient; with focal lengths estimated, the principal points (assumed
    at the image centres; real cameras' are tens of pixels off, Shelf's up to 51 px, which turns
    a camera by degrees).

    Returns:
        (rotation_deg (C,), position (C,), focal_pct (C,)): per camera the largest change of its
        rotation relative to another camera (degrees), of its centre (after the best similarity,
        fraction of the rig's size) and of its focal length (percent). NaN when the refit failed
        (a degenerate system): the check could not be made.
    """
    C = len(adj.rig)
    x, w, X = adj.flat()
    if {"focal", "shared_focal"} & set(adj.refine):
        more = ("principal_point",)
    else:
        more = ("focal", "k1")
    free = tuple(adj.refine) + tuple(r for r in more if r not in adj.refine)
    if free == tuple(adj.refine):
        return np.zeros(C), np.zeros(C), np.zeros(C)
    # six Gauss-Newton steps: within 0.1° of a full adjustment's change on the Pose2Sim demo and
    # the synthetic wrong-focal capture, at a fifth of its time
    try:
        with np.errstate(all="ignore"):
            rig = linearized_refits(adj.rig, x, w, X, np.ones((1, x.shape[1])), free, adj.loss,
                                    adj.loss_scale_px, steps=6)[0]
    except (np.linalg.LinAlgError, ValueError):
        return np.full(C, np.nan), np.full(C, np.nan), np.full(C, np.nan)
    if not (np.isfinite(rig.R).all() and np.isfinite(rig.t).all() and np.isfinite(rig.K).all()):
        return np.full(C, np.nan), np.full(C, np.nan), np.full(C, np.nan)
    return (_relative_rotation_errors(rig, adj.rig), _position_errors(rig, adj.rig),
            100 * np.abs(rig.K[:, 0, 0] / adj.rig.K[:, 0, 0] - 1))


def _position_errors(rig: CameraRig, reference: CameraRig) -> np.ndarray:
    """(C,) camera centre errors after the best similarity, fraction of ``reference``'s size."""
    s, R, t = umeyama(rig.centers, reference.centers)
    return np.linalg.norm(s * rig.centers @ R.T + t - reference.centers, axis=1) / \
        rig_size(reference)


@dataclass(frozen=True)
class CameraVerdict:
    """One camera's verdict: ``verdict`` (one of :data:`VERDICTS`), its 95 % bounds (rotation in
    degrees, position as a fraction of the rig's size, focal length in percent or NaN) and the
    reasons for anything but ``good``."""

    name: str
    verdict: str
    rotation_deg: float
    position: float
    focal_pct: float
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """The verdict on a rig: the worst of its cameras', with the reasons and what to do.

    Attributes:
        verdict: ``good``, ``doubtful`` or ``failed`` (:data:`VERDICTS`).
        cameras: one :class:`CameraVerdict` per camera, in the rig's order.
        advice: what to do, one sentence per kind of problem found (empty when good).
        sigma_px: the residual standard deviation of the adjustment, pixels.
    """

    verdict: str
    cameras: tuple[CameraVerdict, ...]
    advice: tuple[str, ...] = ()
    sigma_px: float = float("nan")

    def to_dict(self) -> dict:
        """JSON-able: the report's ``verdict`` entry."""
        def num(v):
            return None if not np.isfinite(v) else round(float(v), 4)
        return {"verdict": self.verdict, "large_error": {"rotation_deg": LARGE_ROTATION_DEG,
                                                         "position_of_rig": LARGE_POSITION},
                "bound": "95 %", "sigma_px": num(self.sigma_px), "advice": list(self.advice),
                "cameras": {c.name: {"verdict": c.verdict, "rotation_deg": num(c.rotation_deg),
                                     "position_of_rig": num(c.position),
                                     "focal_pct": num(c.focal_pct), "reasons": list(c.reasons)}
                            for c in self.cameras}}

    def metadata(self) -> dict:
        """Flat keys for a camera TOML's ``[metadata]`` table (:func:`verdict_metadata`)."""
        return verdict_metadata(self.to_dict())

    def lines(self) -> list[str]:
        """What the commands print (:func:`verdict_lines`)."""
        return verdict_lines(self.to_dict())


def verdict_metadata(verdict: dict) -> dict:
    """Flat keys for a camera TOML's ``[metadata]`` table from a report's ``verdict`` entry
    (:meth:`Verdict.to_dict`): the verdict, then per camera (lists in the file's camera order)
    its verdict and 95 % bounds, the reasons and what to do."""
    cams = verdict.get("cameras", {})

    def values(key, digits):
        return [float("nan") if c[key] is None else round(c[key], digits) for c in cams.values()]
    out = {"verdict": verdict["verdict"], "verdict_cameras": list(cams),
           "verdict_per_camera": [c["verdict"] for c in cams.values()],
           "rotation_uncertainty_deg": values("rotation_deg", 3),
           "position_uncertainty_of_rig": values("position_of_rig", 4)}
    if any(c["focal_pct"] is not None for c in cams.values()):
        out["focal_uncertainty_pct"] = values("focal_pct", 2)
    out["verdict_reasons"] = [f"{n}: {r}" for n, c in cams.items() for r in c["reasons"]]
    out["verdict_advice"] = list(verdict.get("advice", []))
    return {k: v for k, v in out.items()
            if not (isinstance(v, list) and any(isinstance(x, float) and not np.isfinite(x)
                                                for x in v))}


def verdict_lines(verdict: dict) -> list[str]:
    """What ``calibrate``, ``run`` and ``inspect`` print from a report's ``verdict`` entry: the
    verdict, one line per camera (its 95 % bounds and reasons), then what to do."""
    out = [f"calibration verdict: {verdict['verdict'].upper()} (95 % bounds; a large error is "
           f"a rotation over {LARGE_ROTATION_DEG:g}° or a camera position over "
           f"{100 * LARGE_POSITION:g} % of the rig's size off)"]
    for name, c in verdict.get("cameras", {}).items():
        if c["rotation_deg"] is None:
            bounds = "no uncertainty"
        else:
            bounds = (f"rotation ±{c['rotation_deg']:.2f}°, position "
                      f"±{100 * c['position_of_rig']:.1f} % of the rig")
            bounds += f", focal ±{c['focal_pct']:.1f} %" if c["focal_pct"] is not None else ""
        why = f" ({'; '.join(c['reasons'])})" if c["reasons"] else ""
        out.append(f"  {name}: {c['verdict']}, {bounds}{why}")
    out += [f"  what to do: {a}" for a in verdict.get("advice", [])]
    return out


#: what to do, per kind of problem
ADVICE = {
    "uncertain": "record more of the person walking through the whole space the cameras share, "
                 "arms moving (a few hundred frames), or give the cameras from a board or a "
                 "camera file (--cameras)",
    "motion": "the motion check was relaxed (calibrate.min_motion): record the person walking "
              "around the capture area instead of standing in place",
    "intrinsics": "the result hangs on the given intrinsics: check they are these cameras' at "
                  "this resolution, or measure them with a board (--board)",
    "assumed": "give the intrinsics (--intrinsics: the cameras' file, or board images): "
               "estimated from people, the focal lengths and principal points are assumptions "
               "the cameras hang on",
    "people": "the people give different cameras (detections mixed up across cameras, or one "
              "of them moving too little): record a longer take with one person at a time "
              "walking through the space all cameras share, give the intrinsics "
              "(--intrinsics) if they were not, or give the cameras (--cameras)",
    "unchecked": "a check could not be made on this capture: compare the cameras with a "
                 "reference (epiflow compare-cameras) before trusting them",
    "error": "check these cameras' keypoints (another person? unsynchronized video?)",
    "focal": "give the intrinsics (--intrinsics, e.g. from board images)",
    "method": "use calibrate.method = \"pooled\" (the default), which states its uncertainty",
}


def _level(bound: float, limit: float) -> int:
    """0 good, 1 doubtful, 2 failed for a 95 % ``bound`` against a large-error ``limit``."""
    if not bound <= FAILED_FACTOR * limit:  # NaN (not fixed at all) is failed too
        return 2
    return int(bound > limit)


def judge(names, uncertainty: Uncertainty, median_error_px=None, motion=None,
          min_motion: float = 0.0, implausible_focal=None) -> Verdict:
    """The verdict on each camera and on the rig (module docstring, step 2).

    Args:
        names: (C,) camera names. uncertainty: :func:`camera_uncertainty`'s bounds (with its
            ``intrinsics`` part when the intrinsics were given).
        median_error_px: (C,) median reprojection errors, pixels, or None.
        motion: (C,) :func:`~epiflow.calibration.input_checks.motion_spread`, or None;
            min_motion: the spread the motion check asks by default.
        implausible_focal: (C,) bool, estimated focal lengths out of the plausible range.
    """
    cameras, kinds = [], []
    for c, name in enumerate(names):
        level, reasons = _camera_level(c, uncertainty, median_error_px, motion, min_motion,
                                       implausible_focal, kinds)
        cameras.append(CameraVerdict(name, VERDICTS[level], float(uncertainty.rotation_deg[c]),
                                     float(uncertainty.position[c]),
                                     float(uncertainty.focal_pct[c]), tuple(reasons)))
    worst = max((VERDICTS.index(c.verdict) for c in cameras), default=2)
    advice = tuple(ADVICE[k] for k in ADVICE if k in kinds)
    return Verdict(VERDICTS[worst], tuple(cameras), advice, uncertainty.sigma_px)


def _camera_level(c, u: Uncertainty, median_error_px, motion, min_motion, implausible_focal,
                  kinds: list) -> tuple[int, list[str]]:
    """(0/1/2, reasons) for camera ``c``; the kinds of problem found are appended to ``kinds``."""
    level, reasons = 0, []

    def flag(new_level, kind, reason):
        nonlocal level
        level = max(level, new_level)
        reasons.append(reason)
        kinds.append(kind)
    level_bounds = max(_level(u.rotation_deg[c], LARGE_ROTATION_DEG),
                       _level(u.position[c], LARGE_POSITION))
    source = {"uncertain": max([float(u.parts[k][c]) for k in ("covariance", "bootstrap")
                                if k in u.parts] + [0])}
    for key in ("intrinsics", "people"):
        if key in u.parts and not np.isfinite(u.parts[key][c]):
            flag(1, "unchecked", f"unchecked: the {CHECKS[key]} could not be computed (a "
                                 f"degenerate system), so the bounds may be too small")
        elif key in u.parts:
            source[key] = float(u.parts[key][c])
    if "intrinsics" in source and not u.parts.get("intrinsics_given", True):
        source["assumed"] = source.pop("intrinsics")
    kind = max(source, key=source.get)  # what made the bound large
    if level_bounds:
        flag(level_bounds, kind, _reason(kind, c, u, source[kind]))
    if motion is not None and not motion[c] >= min_motion:
        flag(1, "motion", f"motion: the person hardly moves in this view (spread "
                          f"{motion[c]:.3f} < {min_motion:g})")
    if median_error_px is not None and median_error_px[c] > HIGH_ERROR_PX:
        flag(1, "error", f"error: median reprojection error {median_error_px[c]:.1f} px")
    if implausible_focal is not None and implausible_focal[c]:
        flag(2, "focal", "focal: the estimated focal length is implausible (see the warnings)")
    return level, reasons


#: the checks beyond the data's spread, as the reasons name them
CHECKS = {"intrinsics": "check of the intrinsics (refit with more of them free)",
          "people": "check of the people against each other (refit on each alone)"}


def _reason(kind: str, c: int, u: Uncertainty, value: float) -> str:
    """The reason for camera ``c``'s bounds over the limits, by what made them large."""
    if kind == "intrinsics":
        return (f"intrinsics: freeing them turns it {value:.1f}° and changes its focal length "
                f"{u.parts['intrinsics_focal_pct'][c]:.0f} %")
    if kind == "assumed":
        return (f"assumed intrinsics: freeing the principal point (assumed at the image centre) "
                f"turns it {value:.1f}°")
    if kind == "people":
        return (f"people disagree: refitted on each person alone, it turns by {value:.1f}° "
                f"as root mean square over √people")
    return (f"uncertain: bounds over the limits ({LARGE_ROTATION_DEG:g}°, "
            f"{100 * LARGE_POSITION:g} %)")


def assess(adj: Adjustment | None, names, median_error_px=None, motion=None,
           min_motion: float = 0.0, intrinsics_given: bool = False, implausible_focal=None,
           bootstrap: int = 20, seed: int = 0) -> Verdict:
    """Uncertainty and verdict of a calibration's last adjustment ``adj`` (None: a method
    without one, judged ``doubtful``); arguments as in :func:`camera_uncertainty` and
    :func:`judge`."""
    if adj is None:
        cams = tuple(CameraVerdict(n, "doubtful", np.nan, np.nan, np.nan,
                                   ("no uncertainty: the method has no bundle adjustment",))
                     for n in names)
        return Verdict("doubtful", cams, (ADVICE["method"],))
    u = camera_uncertainty(adj, bootstrap, intrinsics_given, seed=seed)
    return judge(names, u, median_error_px, motion, min_motion, implausible_focal)
