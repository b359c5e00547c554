"""Batched point geometry of C calibrated views: the kernels under triangulation.

Observations live in undistorted normalised image coordinates (``x = X_cam / Z_cam``), stored
structure-of-arrays: ``x``, ``y``, ``conf`` are each (C, N), points are (3, N). Every function works
on all N points at once; the only Python loops are over the C cameras' constants.

The linear solve is the inhomogeneous DLT. View c contributes the rows ``a · X = -d`` and
``b · X = -e`` with ``a = x R₂ - R₀``, ``d = x t₂ - t₀``, ``b = y R₂ - R₁``, ``e = y t₂ - t₁``
(Rₖ the rows of R). The weighted normal equations ``M X = r``, ``M = Σ w (a aᵀ + b bᵀ)``,
``r = -Σ w (a d + b e)`` are *linear* in four per-view features ``(w (x² + y²), w x, w y, w)``, so
for all points at once they are one matrix product ``(9, 4C) @ (4C, N)`` with a constant matrix
built from the cameras (:func:`normal_equation_matrix`), then a closed-form 3 × 3 solve.

A row's residual is ``Z_c`` times the normalised image error, so weights ``conf · (f / Z)²``
(f the focal length in pixels) turn the algebraic cost into the squared reprojection error in
pixels, up to lens distortion: :func:`solve_reweighted` solves once with ``conf · f²``, then again
with the depths of that first solution. The ``M`` of the second solve is then the Fisher
information of the point (pixels⁻²): :func:`solve_normal_equations` returns ``trace(M⁻¹)`` with it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from epiflow.calibration import projection as P

__all__ = ["Observations", "Solution", "normal_equation_matrix", "features",
           "solve_normal_equations",
           "solve_weighted", "solve_reweighted", "leave_one_out", "view_residuals",
           "reprojection_errors"]

#: the fields of :class:`Observations` with one row per camera and one column per point
_PER_VIEW = ("x", "y", "u", "v", "conf", "observed")

#: a point whose normal matrix has det(M) <= this × (trace(M) / 3)³ has (nearly) parallel rays
#: (two rays at an angle θ give about 0.84 sin²θ, so this flags θ below ~0.001°)
CONDITION_FLOOR = 1e-10


@dataclass(frozen=True, eq=False)
class Observations:
    """Observations of N points by C cameras, ready for the batched solvers.

    The world is shifted so that its origin is the mean camera centre (``origin``), which keeps the
    normal equations well conditioned when the calibration's origin is far away; points coming out
    of the solvers are in that shifted frame until :meth:`to_world`.

    Attributes:
        x, y: (C, N) undistorted normalised coordinates; 0 where not observed.
        u, v: (C, N) the observed pixels (distorted), 0 where not observed.
        conf: (C, N) confidence >= 0; 0 where not observed.
        observed: (C, N) bool, finite coordinates and confidence above the threshold.
        R: (C, 3, 3) world→camera rotations. t: (C, 3) translations in the shifted frame.
        K: (C, 3, 3) intrinsics, pixels. dist: (C, 5) distortion. focal: (C, 1) √(f_x f_y), pixels.
        origin: (3,) the shift, metres, world frame.
    """

    x: torch.Tensor
    y: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    conf: torch.Tensor
    observed: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    K: torch.Tensor
    dist: torch.Tensor
    focal: torch.Tensor
    origin: torch.Tensor

    @property
    def n_cameras(self) -> int:
        return self.x.shape[0]

    def to_world(self, points: torch.Tensor) -> torch.Tensor:
        """(3, N) points in the shifted frame → (N, 3) world metres."""
        return points.T + self.origin

    def _with_views(self, fn) -> "Observations":
        """A copy with ``fn`` applied to each per-view array (x, y, u, v, conf, observed)."""
        return replace(self, **{f: fn(getattr(self, f)) for f in _PER_VIEW})

    def columns(self, index: torch.Tensor) -> "Observations":
        """The observations of some points: index (M,) long or (N,) bool."""
        return self._with_views(lambda a: a[:, index])

    def gathered(self, index: torch.Tensor) -> "Observations":
        """Each camera's points reordered by its own index (C, N) long: point n of camera c
        becomes the old point ``index[c, n]`` (mirrors the labels of some camera-frames)."""
        return self._with_views(lambda a: torch.gather(a, 1, index))

    def dropped(self, mask: torch.Tensor) -> "Observations":
        """A copy where the views of mask (C, N) bool are no longer observed."""
        keep = ~mask
        return self._with_views(lambda a: a & keep if a.dtype == torch.bool else a * keep)

    @classmethod
    def build(cls, uv: torch.Tensor, conf: torch.Tensor, observed: torch.Tensor,
              normalized: torch.Tensor, params: dict[str, torch.Tensor]) -> "Observations":
        """Assemble from pixels uv (C, N, 2), conf (C, N), observed (C, N) bool, the undistorted
        normalised coordinates (C, N, 2) and the rig's float64 tensors (keys K, dist, R, t)."""
        zero = torch.zeros((), dtype=uv.dtype, device=uv.device)
        R, t = params["R"], params["t"]
        origin = (-(R.transpose(-1, -2) @ t[..., None])[..., 0]).mean(0)  # mean camera centre
        t_shift = t + (R @ origin[:, None])[..., 0]
        K = params["K"]

        def comp(a, i):
            return torch.where(observed, a[..., i], zero).contiguous()
        return cls(comp(normalized, 0), comp(normalized, 1), comp(uv, 0), comp(uv, 1),
                   torch.where(observed, conf, zero).contiguous(), observed, R, t_shift, K,
                   params["dist"], (K[:, 0, 0] * K[:, 1, 1]).sqrt()[:, None], origin)


@dataclass(frozen=True, eq=False)
class Solution:
    """Points from the normal equations, with what the uncertainty needs.

    Attributes:
        points: (3, N) in the shifted frame of the observations; NaN where ``ok`` is False.
        trace_inverse: (N,) trace of M⁻¹ (with the reweighted M: m² per pixel² of noise).
        isotropy: (N,) ``det(M) / (trace(M) / 3)³`` in [0, 1]: 1 when the views constrain every
            direction equally (three orthogonal rays), near 0 for (nearly) parallel rays.
        ok: (N,) bool, M was invertible and well conditioned.
    """

    points: torch.Tensor
    trace_inverse: torch.Tensor
    isotropy: torch.Tensor
    ok: torch.Tensor


def normal_equation_matrix(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The constant (9, 4C) matrix that maps the per-view features to the normal equations.

    Args:
        R: (C, 3, 3) world→camera rotations. t: (C, 3) translations.

    Returns:
        (9, 4C): rows ``(m00, m01, m02, m11, m12, m22, r0, r1, r2)``; columns are the features
        ``w (x² + y²)``, ``w x``, ``w y``, ``w`` of camera 0, then of camera 1, ... (feature-major:
        column ``4 c + k`` is feature k of camera c).
    """
    R0, R1, R2 = R[:, 0], R[:, 1], R[:, 2]  # (C, 3)
    t0, t1, t2 = t[:, 0], t[:, 1], t[:, 2]
    rows = []
    for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)):
        rows.append(torch.stack([R2[:, i] * R2[:, j],
                                 -(R2[:, i] * R0[:, j] + R0[:, i] * R2[:, j]),
                                 -(R2[:, i] * R1[:, j] + R1[:, i] * R2[:, j]),
                                 R0[:, i] * R0[:, j] + R1[:, i] * R1[:, j]], -1))
    for i in range(3):
        rows.append(-torch.stack([R2[:, i] * t2, -(R2[:, i] * t0 + R0[:, i] * t2),
                                  -(R2[:, i] * t1 + R1[:, i] * t2), R0[:, i] * t0 + R1[:, i] * t1],
                                 -1))
    return torch.stack(rows).reshape(9, -1)  # (9, C, 4) → (9, 4C)


def features(obs: Observations, w: torch.Tensor) -> torch.Tensor:
    """(4C, N) per-view features ``w (x² + y²), w x, w y, w`` (camera-major, as the matrix)."""
    wx, wy = w * obs.x, w * obs.y
    return torch.stack([wx * obs.x + wy * obs.y, wx, wy, w], 1).reshape(4 * w.shape[0], w.shape[1])


def solve_normal_equations(m: torch.Tensor) -> Solution:
    """Solve the 3 × 3 systems of all points in closed form (cofactors).

    Args:
        m: (9, N) rows ``(m00, m01, m02, m11, m12, m22, r0, r1, r2)`` of ``M X = r``.

    Returns:
        :class:`Solution`; NaN points where M is singular or ill conditioned.
    """
    m00, m01, m02, m11, m12, m22, r0, r1, r2 = m
    k00, k01, k02 = m11 * m22 - m12 * m12, m02 * m12 - m01 * m22, m01 * m12 - m02 * m11
    k11, k12, k22 = m00 * m22 - m02 * m02, m01 * m02 - m00 * m12, m00 * m11 - m01 * m01
    det = m00 * k00 + m01 * k01 + m02 * k02
    scale = (m00 + m11 + m22) / 3
    isotropy = (det / (scale * scale * scale)).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
    ok = (isotropy > CONDITION_FLOOR) & (scale > 0)
    inv_det = torch.where(ok, 1 / torch.where(ok, det, torch.ones_like(det)),
                          torch.full_like(det, float("nan")))
    points = torch.stack([k00 * r0 + k01 * r1 + k02 * r2, k01 * r0 + k11 * r1 + k12 * r2,
                          k02 * r0 + k12 * r1 + k22 * r2]) * inv_det
    return Solution(points, (k00 + k11 + k22) * inv_det, isotropy.clamp(0, 1), ok)


def solve_weighted(obs: Observations, w: torch.Tensor, G: torch.Tensor | None = None) -> Solution:
    """One weighted linear solve. w: (C, N) weights (0 leaves a view out). G: the matrix of
    :func:`normal_equation_matrix` for these cameras (computed when None)."""
    if G is None:
        G = normal_equation_matrix(obs.R, obs.t)
    return solve_normal_equations(G @ features(obs, w))


def depths(obs: Observations, points: torch.Tensor) -> torch.Tensor:
    """(C, N) camera-frame depth Z of points (3, N) in every camera."""
    return obs.R[:, 2] @ points + obs.t[:, 2:3]


def solve_reweighted(obs: Observations, use: torch.Tensor, G: torch.Tensor | None = None
                     ) -> Solution:
    """Linear solve whose cost is the squared reprojection error in pixels (to first order).

    Args:
        obs: the observations. use: (C, N) bool, the views to use for each point.
        G: the cameras' :func:`normal_equation_matrix`, or None.

    Returns:
        :class:`Solution` of the second (depth-reweighted) solve: its ``trace_inverse`` is
        ``trace(I⁻¹)`` of the Fisher information ``I = Σ conf J_cᵀ J_c`` (J in pixels per metre).
    """
    G = normal_equation_matrix(obs.R, obs.t) if G is None else G
    w = obs.conf * use * obs.focal ** 2
    first = solve_weighted(obs, w, G)
    z = depths(obs, torch.nan_to_num(first.points))
    z2 = torch.where(z > 0, z * z, torch.ones_like(z))  # a view behind: caught by the caller
    return solve_weighted(obs, w / z2, G)


def leave_one_out(obs: Observations, use: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Each point re-solved without each of its views, for all points and views at once.

    Args:
        obs: the observations. use: (C, N) bool, the views of each point. points: (3, N) the
            solution with all of them (its depths weight the views, as in the reweighted solve).

    Returns:
        (C, 3, N): row c is the point from its views other than c (NaN where fewer than two
        remain or they are degenerate).
    """
    C, N = obs.x.shape
    z = depths(obs, torch.nan_to_num(points))
    w = obs.conf * use * obs.focal ** 2 / torch.where(z > 0, z * z, torch.ones_like(z))
    G = normal_equation_matrix(obs.R, obs.t)
    F = features(obs, w)
    m = G @ F
    Gc, Fc = G.reshape(9, C, 4).permute(1, 0, 2), F.reshape(C, 4, N)
    return torch.stack([solve_normal_equations(m - Gc[c] @ Fc[c]).points for c in range(C)])


def view_residuals(obs: Observations, points: torch.Tensor) -> torch.Tensor:
    """Reprojection error of points (3, N) in every view, in undistorted pixels.

    The error between the projection and the observation in normalised coordinates, times the
    focal length: the pixel error up to the local scale of the lens distortion (exact without it).

    Returns:
        (C, N); inf where the point is behind the camera, NaN where the point is NaN; the value
        is also computed where a view is unobserved (mask it with ``obs.observed``).
    """
    cam = obs.R @ points + obs.t[..., None]  # (C, 3, N)
    z = cam[:, 2]
    dx, dy = cam[:, 0] / z - obs.x, cam[:, 1] / z - obs.y
    r = (dx * dx + dy * dy).sqrt() * obs.focal
    return torch.where(z > 0, r, torch.where(torch.isnan(z), z, torch.full_like(z, float("inf"))))


def reprojection_errors(obs: Observations, points: torch.Tensor) -> torch.Tensor:
    """Exact reprojection error of points (3, N) in every observed view, pixels, distortion applied.

    Returns:
        (C, N); NaN where a view is unobserved or the point is NaN; inf behind the camera.
    """
    cam = obs.R @ points + obs.t[..., None]
    z = cam[:, 2]
    k = P._coefficients(obs.dist)
    xd, yd, _, _ = P._distort_xy(cam[:, 0] / z, cam[:, 1] / z, k)
    K = obs.K
    du = K[:, 0, 0, None] * xd + K[:, 0, 1, None] * yd + K[:, 0, 2, None] - obs.u
    dv = K[:, 1, 1, None] * yd + K[:, 1, 2, None] - obs.v
    r = (du * du + dv * dv).sqrt()
    r = torch.where(z > 0, r, torch.where(torch.isnan(z), z, torch.full_like(z, float("inf"))))
    return torch.where(obs.observed, r, torch.full_like(r, float("nan")))
