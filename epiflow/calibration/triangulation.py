"""3D points from 2D observations of calibrated cameras: batched, robust, with a weight per point.

:func:`triangulate` takes ``points2d (C, ..., 2)`` pixels and an optional ``confidence (C, ...)``
and places every point at once (no Python loop over points or frames):

1. pixels are undistorted once (:meth:`CameraRig.undistort`) into normalised coordinates, float64;
   a view is *observed* where both coordinates are finite and its confidence is above
   ``min_confidence``;
2. ``robust=True``: the views that agree are found by consensus over camera pairs and
   reprojection gating (:mod:`epiflow.calibration.robust`); ``robust=False`` uses every observed
   view;
3. a confidence-weighted linear triangulation whose cost is the reprojection error in pixels
   (:mod:`epiflow.calibration.multiview`); ``refine=True`` adds a few Levenberg–Marquardt steps on
   the exact pixel error with distortion (:mod:`epiflow.calibration.refine`);
4. each point gets a predicted 3D error ``sigma`` and a ``weight`` in [0, 1]
   (:mod:`epiflow.calibration.uncertainty` documents the formula).

A point is never guessed: one that cannot be placed is NaN, with weight 0 and a :class:`Reason`.
numpy in, numpy out (float64); torch in, torch out (the input's floating dtype and device, computed
in float64 on that device).

:func:`triangulate_sequence` does the same for keypoints ``(T, C, J, 3)`` and adds what needs the
skeleton and time: the left/right swap test per camera-frame and optional temporal smoothing.
:func:`triangulate_two_view` is the EpipolarPose baseline (one camera pair, no robustness).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field, fields, replace
from enum import IntEnum
from typing import Literal

import numpy as np
import torch

from epiflow.calibration import smoothing
from epiflow.calibration.camera import CameraRig, match_rig
from epiflow.calibration.multiview import (Observations, Solution, finite, leave_one_out,
                                           map_blocks, nan_unless, normal_equation_matrix,
                                           pixel_errors, solve_reweighted)
from epiflow.calibration.refine import refine_points
from epiflow.calibration.robust import (consensus, detect_swaps, mirrored_frames,
                                       temporal_reference)
from epiflow.calibration.uncertainty import (noise_prior, point_sigma, residual_variance,
                                             weight_from_sigma)
from epiflow.config import check_limits, limits
from epiflow.keypoints import Keypoints
from epiflow.skeleton import get_joint_set

__all__ = ["Reason", "Triangulation", "triangulate", "triangulate_linear", "triangulate_sequence",
           "triangulate_two_view", "TriangulationOptions", "camera_shares",
           "dropped_camera_warnings", "MIN_CAMERA_SHARE"]


class Reason(IntEnum):
    """Why a point is (or is not) NaN: the ``reason`` code of :class:`Triangulation`."""

    OK = 0
    #: fewer than two views observed it (NaN keypoints or confidence <= ``min_confidence``)
    TOO_FEW_VIEWS = 1
    #: two or more views observed it, but fewer than two agree within the reprojection gate
    NO_CONSENSUS = 2
    #: the rays of its views are (nearly) parallel, or the solution lies behind a camera used
    DEGENERATE = 3
    #: (sequences with ``fill_gaps``) not triangulated; interpolated in time between neighbours
    INTERPOLATED = 4


@dataclass(frozen=True, eq=False)
class Triangulation:
    """Triangulated points and what is known about each (numpy or torch, as the input).

    For :func:`triangulate` with ``points2d (C, *S, 2)`` the point shape is ``S`` (``(N,)`` for
    ``(C, N, 2)``); for the sequence functions it is ``(T, J)``.

    Attributes:
        points: (*S, 3) metres in ``frame``; NaN where ``reason`` is not OK (or INTERPOLATED).
        weight: (*S,) in [0, 1], higher = smaller predicted error; 0 where NaN.
        sigma: (*S,) predicted root-mean-square 3D error, metres; NaN where NaN.
        reproj_error: (*S,) mean reprojection error over the views used, pixels (distortion
            applied); NaN where NaN.
        views: views used, bool: (C, *S); sequences (T, C, J).
        view_error: reprojection error in every observed view, used or not, pixels; NaN where a
            view did not observe the point: (C, *S); sequences (T, C, J).
        n_views: (*S,) int, the number of views used.
        reason: (*S,) int8 :class:`Reason` code.
        flipped: sequences only, (T, C) bool: camera-frames whose left/right labels were mirrored
            (``swap="flip"``) or whose paired joints were dropped (``swap="drop"``); else None.
        frame: ``"world"``, or ``"camera <name>"`` for :func:`triangulate_two_view` in a camera's
            frame.
    """

    points: np.ndarray | torch.Tensor
    weight: np.ndarray | torch.Tensor
    sigma: np.ndarray | torch.Tensor
    reproj_error: np.ndarray | torch.Tensor
    views: np.ndarray | torch.Tensor
    view_error: np.ndarray | torch.Tensor
    n_views: np.ndarray | torch.Tensor
    reason: np.ndarray | torch.Tensor
    flipped: np.ndarray | torch.Tensor | None = None
    frame: str = "world"

    def _map(self, fn) -> "Triangulation":
        """A copy with ``fn`` applied to every array field."""
        return replace(self, **{f.name: fn(getattr(self, f.name)) for f in fields(self)
                                if f.name != "frame" and getattr(self, f.name) is not None})

    def numpy(self) -> "Triangulation":
        """The same result with numpy arrays."""
        return self._map(lambda a: a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a)

    def summary(self) -> dict:
        """Points per :class:`Reason`; median weight and reprojection error (pixels) of the placed
        points."""
        r = self.numpy()
        ok = np.isfinite(r.points).all(-1)
        out = {reason.name.lower(): int((r.reason == reason).sum()) for reason in Reason}
        err = r.reproj_error[ok & np.isfinite(r.reproj_error)]
        out["median_weight"] = float(np.median(r.weight[ok])) if ok.any() else float("nan")
        out["median_reproj_px"] = float(np.median(err)) if err.size else float("nan")
        return out


# -- input ------------------------------------------------------------------------------------
def _to_tensor(a, name: str) -> tuple[torch.Tensor, bool]:
    """(float64 tensor, whether the input was numpy); a clear error for non-numeric input."""
    if isinstance(a, torch.Tensor):
        return a.detach().to(torch.float64), False
    try:
        return torch.as_tensor(np.asarray(a, dtype=np.float64)), True
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array; got {type(a).__name__}: {err}") from None


def _observations(rig: CameraRig, points2d, confidence, min_confidence: float):
    """Check and convert the input; returns (Observations, point shape S, output converter)."""
    uv, np_in = _to_tensor(points2d, "points2d")
    C = len(rig)
    if uv.ndim < 2 or uv.shape[0] != C or uv.shape[-1] != 2:
        raise ValueError(f"points2d must have shape (C={C}, ..., 2): one slice per camera of the "
                         f"rig ({', '.join(rig.names)}), pixels; got {tuple(uv.shape)}")
    shape = tuple(uv.shape[1:-1])
    conf = None
    if confidence is not None:
        conf, _ = _to_tensor(confidence, "confidence")
        conf = conf.to(uv.device)
        if tuple(conf.shape) != tuple(uv.shape[:-1]):
            raise ValueError(f"confidence must have shape {tuple(uv.shape[:-1])} (points2d's "
                             f"without the last axis); got {tuple(conf.shape)}")
        conf = conf.reshape(C, -1)
    obs = Observations.build(uv.reshape(C, -1, 2), conf, rig.tensors(device=uv.device),
                             min_confidence)
    dtype = points2d.dtype if isinstance(points2d, torch.Tensor) and \
        points2d.is_floating_point() else torch.float64

    def out(t: torch.Tensor):
        if np_in:
            return t.cpu().numpy()
        return t.to(dtype) if t.is_floating_point() else t
    return obs, shape, out


# -- core -------------------------------------------------------------------------------------
#: fields of :class:`Triangulation` with the camera axis first
_CAMERA_FIRST = ("views", "view_error")


@dataclass(frozen=True)
class _Settings:
    """The options of :func:`triangulate` (documented there)."""

    robust: bool = True
    refine: bool = False
    gate_px: float = 20.0
    min_confidence: float = 0.0
    noise_px: float | None = None
    weight_scale: float = 0.02
    refine_iterations: int = 5


@dataclass(frozen=True, eq=False)
class _Placed:
    """Points (3, N) in the observations' frame, the views used (C, N), the linear solution."""

    points: torch.Tensor
    use: torch.Tensor
    solution: Solution

    def merged(self, sub: "_Placed", cols: torch.Tensor) -> "_Placed":
        """This result with the points ``cols`` (N,) bool replaced by those of ``sub``."""
        def put(a, b):
            a = a.clone()
            a[..., cols] = b
            return a
        sol = Solution(*(put(getattr(self.solution, f.name), getattr(sub.solution, f.name))
                         for f in fields(Solution)))
        return _Placed(put(self.points, sub.points), put(self.use, sub.use), sol)

    def columns(self, index: torch.Tensor | slice) -> "_Placed":
        """The points ``index`` (a slice gives views)."""
        sol = Solution(*(getattr(self.solution, f.name)[..., index] for f in fields(Solution)))
        return _Placed(self.points[:, index], self.use[:, index], sol)

    def permuted(self, index: torch.Tensor) -> "_Placed":
        """Point n becomes the old point ``index[n]``."""
        sol = Solution(*(getattr(self.solution, f.name)[..., index] for f in fields(Solution)))
        return _Placed(self.points[:, index], self.use[:, index], sol)


def _place(obs: Observations, s: _Settings, prior: torch.Tensor | None = None) -> _Placed:
    """Choose the views (consensus, with an optional prior (3, N), or all observed), solve,
    refine: every point at once (block by block on the CPU: :func:`~.multiview.blocks`)."""
    G = normal_equation_matrix(obs.R, obs.t)

    def block(b: slice) -> _Placed:
        sub = obs.columns(b)
        if s.robust:
            use, solution = consensus(sub, s.gate_px, prior=None if prior is None else
                                      prior[:, b], G=G)
        else:
            use, solution = sub.observed, solve_reweighted(sub, sub.observed, G)
        points = solution.points
        if s.refine:
            points = refine_points(sub, points, use, iterations=s.refine_iterations)
        return _Placed(points, use, solution)
    return map_blocks(block, obs.n_points, obs.x.device)


def _reasons(observed: torch.Tensor, use: torch.Tensor, z: torch.Tensor, points: torch.Tensor,
             solved_ok: torch.Tensor) -> torch.Tensor:
    """(N,) int8 :class:`Reason` per point, from the views observed and used (C, N), the depths
    z (C, N) of the points (3, N) and whether their solve was well conditioned (N,)."""
    too_few = observed.sum(0) < 2
    no_consensus = (use.sum(0) < 2) & ~too_few
    behind = (use & (z <= 0)).sum(0) > 0
    degenerate = (~solved_ok | behind | ~finite(points.sum(0))) & ~too_few & ~no_consensus
    reason = too_few.to(torch.int8) * int(Reason.TOO_FEW_VIEWS)
    reason += no_consensus.to(torch.int8) * int(Reason.NO_CONSENSUS)
    return reason.add_(degenerate.to(torch.int8) * int(Reason.DEGENERATE))


def _measured(obs: Observations, placed: _Placed) -> dict[str, torch.Tensor]:
    """The per-point fields that need the views (one block of points): points (3, N) NaN unless
    placed, views used, every observed view's pixel error, the mean error over the views used,
    the residual variance s², the reason."""
    errors, z = pixel_errors(obs, placed.points)
    reason = _reasons(obs.observed, placed.use, z, placed.points, placed.solution.ok)
    good = reason == int(Reason.OK)
    use = placed.use & good
    n = use.sum(0)
    used = use.to(errors.dtype)
    r_used = (errors * used).nan_to_num_(0.0, 0.0, 0.0)
    not_good = nan_unless(good, errors.dtype)
    front = (z > 0).to(z.dtype)  # behind a camera: inf (``1 / 0``)
    view_error = errors.add_(front.reciprocal_().sub_(1)).add_(not_good)
    return dict(points=placed.points + not_good, views=use,
                view_error=view_error.add_(nan_unless(obs.observed, errors.dtype)), n_views=n,
                reproj_error=r_used.sum(0).div_(n.clamp(min=1)).add_(not_good), reason=reason,
                s2=residual_variance(r_used, obs.conf, use))


def _assemble(obs: Observations, placed: _Placed, s: _Settings) -> dict[str, torch.Tensor]:
    """The per-point fields (flat: (N, ...) and (C, N)) of the placed points."""
    flat = map_blocks(lambda b: _measured(obs.columns(b), placed.columns(b)), obs.n_points,
                      obs.x.device)
    s2, n = flat.pop("s2"), flat["n_views"]
    sigma0 = noise_prior(s2, n, s.noise_px)
    sigma = point_sigma(placed.solution.trace_inverse, s2, sigma0) + \
        nan_unless(flat["reason"] == int(Reason.OK), s2.dtype)
    return dict(flat, points=obs.to_world(flat["points"]), weight=weight_from_sigma(
        sigma, s.weight_scale), sigma=sigma)


def _shaped(flat: dict[str, torch.Tensor], C: int, shape: tuple, out) -> Triangulation:
    """A :class:`Triangulation` from flat fields: points shaped ``shape``, converted by ``out``."""
    return Triangulation(**{k: out(v.reshape((C,) + shape) if k in _CAMERA_FIRST
                                   else v.reshape(shape + tuple(v.shape[1:])))
                            for k, v in flat.items()})


def triangulate(rig: CameraRig, points2d, confidence=None, *, robust: bool = True,
                refine: bool = False, gate_px: float = 20.0, min_confidence: float = 0.0,
                noise_px: float | None = None, weight_scale: float = 0.02,
                refine_iterations: int = 5) -> Triangulation:
    """Triangulate points seen by the cameras of ``rig``, all at once.

    Args:
        rig: the C calibrated cameras.
        points2d: (C, *S, 2) pixels (distorted, as detected), numpy or torch; NaN = not seen.
        confidence: (C, *S) in [0, 1], or None (1 wherever points2d is finite). A view with
            confidence <= ``min_confidence`` is not observed.
        robust: find the views that agree (consensus over camera pairs, gating at ``gate_px``)
            and leave out the others; False uses every observed view.
        refine: a few Levenberg–Marquardt steps on the pixel error with distortion.
        gate_px: the reprojection error (pixels) above which a view disagrees (robust only).
        noise_px: the prior image noise σ₀ (pixels) of the uncertainty; None estimates it from
            the points with three or more views.
        weight_scale: the predicted 3D error (metres) at which the weight is 0.5.
        refine_iterations: LM steps when ``refine``.

    Returns:
        :class:`Triangulation` with fields shaped (*S, ...) and views (C, *S), world frame.

    Example:
        >>> tri = triangulate(rig, uv, conf)          # uv (C, N, 2), conf (C, N)
        >>> tri.points.shape, tri.weight.shape        # (N, 3), (N,)
    """
    s = _Settings(robust, refine, gate_px, min_confidence, noise_px, weight_scale,
                  refine_iterations)
    obs, shape, out = _observations(rig, points2d, confidence, min_confidence)
    return _shaped(_assemble(obs, _place(obs, s), s), len(rig), shape, out)


def triangulate_linear(P: torch.Tensor, xy: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Confidence-weighted linear (DLT) triangulation of N points from C views at once.

    The homogeneous DLT: each view's two rows are normalised to unit length, then scaled by the
    view's weight, and the point is the smallest right singular vector of the stacked rows.

    Args:
        P: (C, 3, 4) projection matrices that map world points to the coordinates of ``xy``
            (``[R | t]`` for undistorted normalised coordinates, ``K [R | t]`` for pixels).
        xy: (C, N, 2) observations; NaN where a view is missing.
        weight: (C, N) non-negative weights (confidence); 0 leaves a view out.

    Returns:
        (N, 3) world points. A point with fewer than two views of positive weight is NaN.
    """
    if P.shape[-2:] != (3, 4) or xy.shape[-1] != 2 or xy.shape[0] != P.shape[0] \
            or weight.shape != xy.shape[:-1]:
        raise ValueError(f"expected P (C, 3, 4), xy (C, N, 2), weight (C, N); got P "
                         f"{tuple(P.shape)}, xy {tuple(xy.shape)}, weight {tuple(weight.shape)}")
    valid = torch.isfinite(xy).all(-1) & (weight > 0)
    w = torch.where(valid, weight, torch.zeros_like(weight))
    x = torch.nan_to_num(xy)
    # rows: (x * P3 - P1), (y * P3 - P2), each normalised, then weighted; A is (N, 2C, 4)
    rows_x = x[..., 0, None] * P[:, None, 2, :] - P[:, None, 0, :]
    rows_y = x[..., 1, None] * P[:, None, 2, :] - P[:, None, 1, :]
    A = torch.cat([rows_x, rows_y], dim=0).transpose(0, 1)
    A = A / A.norm(dim=-1, keepdim=True).clamp_min(1e-12) * w.repeat(2, 1).T[..., None]
    X = _smallest_eigenvector(A.transpose(-1, -2) @ A)
    points = X[..., :3] / X[..., 3:4]
    enough = valid.sum(0) >= 2
    return torch.where(enough[:, None], points, torch.full_like(points, float("nan")))


def _adjugate4(m: torch.Tensor) -> torch.Tensor:
    """(N, 4, 4) adjugates (``det(m) · m⁻¹``, defined for singular m too) of (N, 4, 4) matrices,
    by Laplace expansion over the 2 × 2 minors of the top (s) and bottom (c) row pairs."""
    (m00, m01, m02, m03), (m10, m11, m12, m13), (m20, m21, m22, m23), (m30, m31, m32, m33) = \
        [[m[:, i, j] for j in range(4)] for i in range(4)]
    s0, s1, s2, s3, s4, s5 = (m[:, 0, i] * m[:, 1, j] - m[:, 1, i] * m[:, 0, j] for i, j in _PAIRS)
    c0, c1, c2, c3, c4, c5 = (m[:, 2, i] * m[:, 3, j] - m[:, 3, i] * m[:, 2, j] for i, j in _PAIRS)
    return torch.stack([
        torch.stack([m11 * c5 - m12 * c4 + m13 * c3, -m01 * c5 + m02 * c4 - m03 * c3,
                     m31 * s5 - m32 * s4 + m33 * s3, -m21 * s5 + m22 * s4 - m23 * s3], -1),
        torch.stack([-m10 * c5 + m12 * c2 - m13 * c1, m00 * c5 - m02 * c2 + m03 * c1,
                     -m30 * s5 + m32 * s2 - m33 * s1, m20 * s5 - m22 * s2 + m23 * s1], -1),
        torch.stack([m10 * c4 - m11 * c2 + m13 * c0, -m00 * c4 + m01 * c2 - m03 * c0,
                     m30 * s4 - m31 * s2 + m33 * s0, -m20 * s4 + m21 * s2 - m23 * s0], -1),
        torch.stack([-m10 * c3 + m11 * c1 - m12 * c0, m00 * c3 - m01 * c1 + m02 * c0,
                     -m30 * s3 + m31 * s1 - m32 * s0, m20 * s3 - m21 * s1 + m22 * s0], -1)], -2)


#: the column pairs (i, j) of the 2 × 2 minors of :func:`_adjugate4`
_PAIRS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))


def _smallest_eigenvector(M: torch.Tensor, iterations: int = 2) -> torch.Tensor:
    """(N, 4) unit eigenvectors of the smallest eigenvalue of symmetric positive semi-definite
    (N, 4, 4) matrices, mostly without a per-matrix LAPACK call (2x faster than ``eigh`` on the
    DLT's matrices).

    The adjugate of M is ``Σ_i (Π_{j≠i} λ_j) v_i v_iᵀ``: its largest term is v₁ v₁ᵀ, ahead of the
    next by λ₂ / λ₁ (a DLT's geometry against its noise: 10⁴ and more), so its column with the
    largest diagonal entry is close to v₁, and ``iterations`` steps of inverse iteration
    (``v ← adj(M) v``) close the rest. A matrix whose result is not an eigenvector to 1e-10 of
    its trace (λ₁ ≈ λ₂: noise as large as the geometry; or a rank-deficient M) goes to ``eigh``.
    """
    adj = _adjugate4(M)
    col = adj.diagonal(dim1=-2, dim2=-1).abs().argmax(-1)
    v = torch.take_along_dim(adj, col[:, None, None], dim=-1)[..., 0]
    v = v / v.norm(dim=-1, keepdim=True)
    for _ in range(iterations):
        v = (adj @ v[..., None])[..., 0]
        v = v / v.norm(dim=-1, keepdim=True)
    Mv = (M @ v[..., None])[..., 0]
    residual = (Mv - (v * Mv).sum(-1, keepdim=True) * v).norm(dim=-1)
    bad = ~(residual <= 1e-10 * M.diagonal(dim1=-2, dim2=-1).sum(-1))  # NaN is bad too
    if bool(bad.any()):
        v[bad] = torch.linalg.eigh(M[bad])[1][..., 0]
    return v


# -- sequences --------------------------------------------------------------------------------
def _sequence_input(rig: CameraRig, keypoints2d, joint_set: str | None):
    """(rig matched to the keypoints, kp (T, C, J, 3) float64 tensor, joint set, fps, np_in,
    out dtype)."""
    fps = None
    if isinstance(keypoints2d, Keypoints):
        rig = match_rig(rig, keypoints2d.camera_names)[0]
        joint_set, fps = keypoints2d.joint_set, keypoints2d.fps
        keypoints2d = keypoints2d.data
    kp, np_in = _to_tensor(keypoints2d, "keypoints2d")
    js = get_joint_set(joint_set or "h36m17")
    if kp.ndim != 4 or kp.shape[1] != len(rig) or kp.shape[3] != 3:
        raise ValueError(f"keypoints2d must have shape (T, C={len(rig)}, J, 3) for cameras "
                         f"{rig.names} (x, y pixels, confidence); got {tuple(kp.shape)}")
    if kp.shape[2] != len(js):
        raise ValueError(f"keypoints2d has {kp.shape[2]} joints but joint set {js.name!r} has "
                         f"{len(js)}; pass joint_set= the set the keypoints are in")
    dtype = keypoints2d.dtype if isinstance(keypoints2d, torch.Tensor) and \
        keypoints2d.is_floating_point() else torch.float64
    return rig, kp, js, fps, np_in, dtype


def _per_frame(tri: Triangulation) -> Triangulation:
    """Camera-first fields (C, T, J) of a torch result → (T, C, J)."""
    return replace(tri, views=tri.views.transpose(0, 1), view_error=tri.view_error.transpose(0, 1))


def _mirrored(obs: Observations, flips: torch.Tensor, flip: torch.Tensor, mode: str
              ) -> Observations:
    """The observations with the camera-frames ``flips`` (T, C) mirrored (``mode="flip"``) or
    their left/right joints dropped (``"drop"``); points are frame-major (``t J + j``)."""
    T, C = flips.shape
    J = flip.numel()
    if mode == "drop":
        paired = flip != torch.arange(J, device=flip.device)
        return obs.dropped((flips.T[:, :, None] & paired).reshape(C, T * J))
    base = torch.arange(T * J, device=flip.device).reshape(T, J)
    mirrored = base[:, flip]
    index = torch.where(flips.T[:, :, None], mirrored, base)  # (C, T, J)
    return obs.gathered(index.reshape(C, T * J))


def _fix_swaps(obs: Observations, placed: _Placed, T: int, flip: torch.Tensor, mode: str,
               s: _Settings) -> tuple[Observations, _Placed, torch.Tensor]:
    """Find mirrored camera-frames, fix their labels, re-place the frames concerned."""
    reference = leave_one_out(obs, placed.use, placed.points)
    flips = detect_swaps(obs, reference, T, flip, s.gate_px)
    if not bool(flips.any()):
        return obs, placed, flips
    obs = _mirrored(obs, flips, flip, mode)
    cols = flips.any(1)[:, None].expand(T, flip.numel()).reshape(-1)
    return obs, placed.merged(_place(obs.columns(cols), s), cols), flips


def _smoothed(rig, kp, tri, method, fps, cutoff_hz, fill_gaps, weight_scale):
    """tri with points smoothed in time (and short gaps filled), errors recomputed."""
    if method is not None and (fps is None or fps <= 0):
        raise ValueError(f"smoothing needs the frame rate: pass fps= (frames per second); got "
                         f"{fps}")
    points = tri.points.cpu().numpy()
    sigma = tri.sigma.cpu().numpy()
    filled = np.zeros(points.shape[:2], dtype=bool)
    if fill_gaps:
        points, filled = smoothing.fill_gaps(points, fill_gaps)
        sigma, _ = smoothing.fill_gaps(sigma[..., None], fill_gaps)
        sigma = np.where(filled, 2 * sigma[..., 0], sigma[..., 0])
    if method is not None:
        points = smoothing.smooth(points, fps, method=method, cutoff_hz=cutoff_hz)
    dev = tri.points.device
    pts, sig = torch.as_tensor(points, device=dev), torch.as_tensor(sigma, device=dev)
    filled_t = torch.as_tensor(filled, device=dev)
    errors = rig.reprojection_error(pts, kp[..., :2].transpose(0, 1)).transpose(0, 1)
    errors = torch.where(tri.view_error.isnan(), float("nan"), errors)
    use = tri.views | (filled_t[:, None] & ~errors.isnan())
    reproj = torch.where(use, errors, 0).sum(1) / use.sum(1).clamp(min=1)
    reason = torch.where(filled_t, int(Reason.INTERPOLATED), tri.reason.long()).to(torch.int8)
    ok = torch.isfinite(pts).all(-1)
    return replace(tri, points=pts, sigma=sig, weight=weight_from_sigma(sig, weight_scale),
                   reproj_error=torch.where(ok, reproj, float("nan")), view_error=errors,
                   reason=reason)


def _fix_mirrored_frames(obs: Observations, placed: _Placed, flips: torch.Tensor,
                         flip: torch.Tensor, mode: str
                         ) -> tuple[Observations, _Placed, torch.Tensor]:
    """Relabel the frames whose whole skeleton is mirrored (most views were): mirror all their
    views and their points. The camera-frames flagged as mirrored swap with the others
    (``mode="flip"``); with ``"drop"`` all of them are flagged (mirrored or dropped)."""
    T, J = flips.shape[0], flip.numel()
    frames = mirrored_frames(placed.points.T.reshape(T, J, 3), flip)
    if not bool(frames.any()):
        return obs, placed, flips
    every = frames[:, None].expand_as(flips)
    base = torch.arange(T * J, device=flip.device).reshape(T, J)
    index = torch.where(frames[:, None], base[:, flip], base).reshape(-1)
    flips = flips ^ every if mode == "flip" else flips | every
    return _mirrored(obs, every, flip, "flip"), placed.permuted(index), flips


def _fix_jumps(obs: Observations, placed: _Placed, T: int, J: int, gate_m: float, s: _Settings
               ) -> _Placed:
    """Re-place the joints far from where their neighbouring frames put them (or unplaced), with
    that position as a prior proposal of the consensus (it settles ties between view subsets)."""
    points = placed.points.T.reshape(T, J, 3)
    reference = temporal_reference(points)
    jump = (points - reference).norm(dim=-1)
    unplaced = ~torch.isfinite(jump) & (obs.observed.sum(0).reshape(T, J) >= 2)
    cols = (torch.isfinite(reference).all(-1) & ((jump > gate_m) | unplaced)).reshape(-1)
    if not bool(cols.any()):
        return placed
    prior = reference.reshape(-1, 3).T[:, cols]
    return placed.merged(_place(obs.columns(cols), s, prior), cols)


def triangulate_sequence(rig: CameraRig, keypoints2d, joint_set: str | None = "h36m17", *,
                         swap: str = "flip", smooth: str | None = None, fps: float | None = None,
                         cutoff_hz: float = 6.0, fill_gaps: int = 0,
                         temporal_gate_m: float | None = 0.1, **options) -> Triangulation:
    """Triangulate a sequence of skeletons: every frame and joint at once, plus the swap test.

    Args:
        rig: the cameras; with :class:`~epiflow.keypoints.Keypoints` input, matched to its
            camera names (:func:`~epiflow.calibration.camera.match_rig`), else in the order of
            axis 1.
        keypoints2d: (T, C, J, 3) x, y pixels and confidence (numpy or torch), or ``Keypoints``
            (which also gives the joint set and fps).
        joint_set: the joint set of the keypoints (its left/right pairs drive the swap test).
        swap: ``"flip"`` mirrors the labels of a camera-frame whose mirrored labels agree
            clearly better with the other views (:func:`~epiflow.calibration.robust.detect_swaps`),
            ``"drop"`` leaves its paired joints out instead, ``"off"`` skips the test. Needs
            ``robust`` (the default).
        smooth: None, ``"butterworth"`` (zero-phase, ``cutoff_hz``) or ``"one_euro"``; runs of
            valid frames are filtered separately, gaps stay gaps (:mod:`~.smoothing`).
        fps: frames per second for smoothing (taken from ``Keypoints`` when given).
        cutoff_hz: the Butterworth cut-off / one-euro minimum cut-off, Hz.
        fill_gaps: interpolate gaps of at most this many frames (reason INTERPOLATED, sigma
            doubled); 0 leaves every gap NaN.
        temporal_gate_m: a joint farther than this (metres) from where its neighbouring frames
            put it (:func:`~epiflow.calibration.robust.temporal_reference`), or not placed, is
            re-placed with that position as a prior proposal of the consensus: between view
            subsets with as many inliers, the one that agrees with the neighbours wins. It still
            comes from two or more of its own views, never from the neighbours. None: off.
        **options: passed to :func:`triangulate` (robust, refine, gate_px, min_confidence, ...).

    Returns:
        :class:`Triangulation`: points (T, J, 3) world metres, weight / sigma / reproj_error /
        n_views / reason (T, J), views / view_error (T, C, J), flipped (T, C).
    """
    if swap not in ("flip", "drop", "off"):
        raise ValueError(f"swap must be 'flip', 'drop' or 'off'; got {swap!r}")
    s = _Settings(**options)
    rig, kp, js, kp_fps, np_in, dtype = _sequence_input(rig, keypoints2d, joint_set)
    T, C, J, _ = kp.shape
    obs, _, _ = _observations(rig, kp[..., :2].transpose(0, 1), kp[..., 2].transpose(0, 1),
                              s.min_confidence)
    placed = _place(obs, s)
    flips = torch.zeros((T, C), dtype=torch.bool, device=kp.device)
    if swap != "off" and s.robust and js.left_right:
        flip = torch.as_tensor(js.flip_permutation, device=kp.device)
        obs, placed, flips = _fix_swaps(obs, placed, T, flip, swap, s)
        if temporal_gate_m:
            obs, placed, flips = _fix_mirrored_frames(obs, placed, flips, flip, swap)
    if temporal_gate_m and s.robust:
        placed = _fix_jumps(obs, placed, T, J, temporal_gate_m, s)
    tri = _per_frame(_shaped(_assemble(obs, placed, s), C, (T, J), lambda a: a))
    if smooth is not None or fill_gaps:
        fps = fps if fps is not None else kp_fps
        tri = _smoothed(rig, kp, tri, smooth, fps, cutoff_hz, fill_gaps, s.weight_scale)
    tri = replace(tri, flipped=flips)
    if np_in:
        return tri.numpy()
    return tri._map(lambda a: a.to(dtype) if a.is_floating_point() else a)


def _keyword_defaults(*functions) -> dict:
    """The defaults of the keyword-only parameters of ``functions``, by name."""
    return {name: p.default for f in functions
            for name, p in inspect.signature(f).parameters.items() if p.kind is p.KEYWORD_ONLY}


#: the defaults of :class:`TriangulationOptions`: those of the functions it configures
_DEFAULTS = _keyword_defaults(triangulate, triangulate_sequence)


@dataclass(frozen=True)
class TriangulationOptions:
    """The keyword options of :func:`triangulate_sequence` (its own and those it passes to
    :func:`triangulate`; documented there), but ``fps``, which comes with the keypoints. Their
    defaults are read from the two functions' signatures, so the two cannot differ. The
    ``[triangulate.options]`` table of a run config (:mod:`epiflow.pipeline.config`).

    Example:
        >>> tri = triangulate_sequence(rig, kp, fps=30.0, **TriangulationOptions(gate_px=30).kwargs())
    """

    swap: Literal["flip", "drop", "off"] = _DEFAULTS["swap"]
    smooth: Literal["butterworth", "one_euro"] | None = _DEFAULTS["smooth"]
    cutoff_hz: float = field(default=_DEFAULTS["cutoff_hz"], metadata=limits(gt=0))
    fill_gaps: int = field(default=_DEFAULTS["fill_gaps"], metadata=limits(ge=0))
    temporal_gate_m: float | None = field(default=_DEFAULTS["temporal_gate_m"],
                                          metadata=limits(ge=0))
    robust: bool = _DEFAULTS["robust"]
    refine: bool = _DEFAULTS["refine"]
    gate_px: float = field(default=_DEFAULTS["gate_px"], metadata=limits(gt=0))
    min_confidence: float = field(default=_DEFAULTS["min_confidence"], metadata=limits(ge=0, le=1))
    noise_px: float | None = field(default=_DEFAULTS["noise_px"], metadata=limits(gt=0))
    weight_scale: float = field(default=_DEFAULTS["weight_scale"], metadata=limits(gt=0))
    refine_iterations: int = field(default=_DEFAULTS["refine_iterations"], metadata=limits(ge=1))

    def __post_init__(self):
        check_limits(self, "TriangulationOptions")
        for name, allowed in (("swap", ("flip", "drop", "off")),
                              ("smooth", (None, "butterworth", "one_euro"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"TriangulationOptions.{name} must be one of {list(allowed)}; "
                                 f"got {getattr(self, name)!r}")

    def kwargs(self) -> dict:
        """The options as keyword arguments of :func:`triangulate_sequence`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def triangulate_two_view(rig: CameraRig, keypoints2d, pair: tuple = (0, 1), *,
                         frame: str = "camera", joint_set: str | None = "h36m17",
                         **options) -> Triangulation:
    """The EpipolarPose baseline: labels from one camera pair, plain linear triangulation.

    EpipolarPose (Kocabas et al., CVPR 2019) triangulates each frame from two views and trains on
    the result in the first camera's coordinate frame; it neither checks which views agree nor
    weights the labels by quality. Here the pair's calibrated cameras are used as given.

    Args:
        rig, keypoints2d, joint_set: as in :func:`triangulate_sequence`.
        pair: two camera indices or names; the first one's frame is the output frame.
        frame: ``"camera"`` (x_cam = R X + t of ``pair[0]``, metres) or ``"world"`` (to compare
            with ground truth in the rig's world frame).
        **options: passed to :func:`triangulate` (``robust`` is always False here).

    Returns:
        :class:`Triangulation` shaped as :func:`triangulate_sequence`'s; ``views`` are the pair's,
        ``view_error`` is reported for the pair's views only.
    """
    if frame not in ("camera", "world"):
        raise ValueError(f"frame must be 'camera' or 'world'; got {frame!r}")
    rig, kp, _, _, np_in, dtype = _sequence_input(rig, keypoints2d, joint_set)
    i, j = (rig.index(p) if isinstance(p, str) else int(p) for p in pair)
    if i == j or not (0 <= i < len(rig) and 0 <= j < len(rig)):
        raise ValueError(f"pair must name two different cameras of {rig.names}; got {pair}")
    keep = torch.zeros(len(rig), dtype=kp.dtype, device=kp.device)
    keep[[i, j]] = 1.0
    conf = kp[..., 2].transpose(0, 1) * keep[:, None, None]
    options = {**options, "robust": False}
    tri = _per_frame(triangulate(rig, kp[..., :2].transpose(0, 1), conf, **options))
    if frame == "camera":
        cam = rig[i]
        R = torch.as_tensor(cam.R, device=kp.device)
        t = torch.as_tensor(cam.t, device=kp.device)
        tri = replace(tri, points=tri.points @ R.T + t, frame=f"camera {cam.name}")
    if np_in:
        return tri.numpy()
    return tri._map(lambda a: a.to(dtype) if a.is_floating_point() else a)


#: a camera used in fewer than this share of the labels of joints it sees has been dropped: its
#: 2D points disagree with the other cameras'
MIN_CAMERA_SHARE = 0.5


def camera_shares(views, seen, labelled) -> np.ndarray:
    """Per camera, the share of the 3D labels of joints it sees that its view was used in.

    Args:
        views: (T, C, J) bool, the views each label used.
        seen: (T, C, J) bool, where each camera saw the joint (confidence > 0).
        labelled: (T, J) bool, the joints given a 3D label.

    Returns:
        (C,) float in [0, 1]; NaN for a camera that saw no labelled joint.
    """
    views, seen = np.asarray(views, bool), np.asarray(seen, bool)
    both = seen & np.asarray(labelled, bool)[:, None, :]
    n = both.sum(axis=(0, 2))
    used = (views & both).sum(axis=(0, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, used / np.maximum(n, 1), np.nan)


def dropped_camera_warnings(names, shares, min_share: float = MIN_CAMERA_SHARE) -> list[str]:
    """A warning for each camera of ``names`` whose share (:func:`camera_shares`) is below
    ``min_share``, naming the camera and its share, what it means and what to do."""
    return [f"camera {name}: used in only {100 * share:.0f}% of the 3D labels of the joints it "
            f"sees (expected {100 * min_share:.0f}% or more): its 2D points disagree with the "
            f"other cameras' (a wrong calibration of this camera, a video out of sync, or another "
            f"person in its view); check its calibration and reprojection error, or leave it out"
            for name, share in zip(names, np.asarray(shares, float))
            if np.isfinite(share) and share < min_share]
