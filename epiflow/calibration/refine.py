"""Refine triangulated points: batched Levenberg–Marquardt on the reprojection error in pixels.

Minimises, for every point at once and independently,
``Σ_c w_c ‖π_c(X) - u_c‖²`` with ``π_c`` the full camera model (distortion included), pixels, and
``w_c`` the confidence of the views used. Each point has its own damping λ: a step that lowers
its cost is taken and λ shrinks; one that does not is refused and λ grows.
"""
from __future__ import annotations

import torch

from epiflow.calibration import projection as P
from epiflow.calibration.multiview import Observations, solve_normal_equations

__all__ = ["refine_points"]


def _residuals_and_jacobian(obs: Observations, X: torch.Tensor, w: torch.Tensor):
    """Pixel residuals (2 × (C, N)) of points X (3, N) and their Jacobian rows (2 × (C, 3, N));
    zero in the views of zero weight w (C, N), so that unused views cannot spread NaN."""
    cam = obs.R @ X + obs.t[..., None]
    inv_z = 1 / cam[:, 2]
    xn, yn = cam[:, 0] * inv_z, cam[:, 1] * inv_z
    k = P.distortion_coefficients(obs.dist)
    xd, yd, r2, radial = P.distort_xy(xn, yn, k)
    j00, j01, j11 = P.distort_jacobian_xy(xn, yn, r2, radial, k)
    fx, s, fy = obs.K[:, 0, 0, None], obs.K[:, 0, 1, None], obs.K[:, 1, 1, None]
    ex = fx * xd + s * yd + obs.K[:, 0, 2, None] - obs.u
    ey = fy * yd + obs.K[:, 1, 2, None] - obs.v
    # d(xn, yn)/dX = (R₀ - xn R₂, R₁ - yn R₂) / Z; chain with d(pixels)/d(xn, yn)
    p = (obs.R[:, 0, :, None] - xn[:, None] * obs.R[:, 2, :, None]) * inv_z[:, None]
    q = (obs.R[:, 1, :, None] - yn[:, None] * obs.R[:, 2, :, None]) * inv_z[:, None]
    a00, a01 = fx * j00 + s * j01, fx * j01 + s * j11
    a10, a11 = fy * j01, fy * j11
    Jx = a00[:, None] * p + a01[:, None] * q
    Jy = a10[:, None] * p + a11[:, None] * q
    used = w > 0
    return (torch.where(used, ex, 0), torch.where(used, ey, 0),
            torch.where(used[:, None], Jx, 0), torch.where(used[:, None], Jy, 0))


def _cost(ex: torch.Tensor, ey: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (w * (ex * ex + ey * ey)).sum(0)


def refine_points(obs: Observations, points: torch.Tensor, use: torch.Tensor,
                  iterations: int = 5, damping: float = 1e-3) -> torch.Tensor:
    """Lower the weighted pixel reprojection error of every point with a few LM steps.

    Args:
        obs: the observations. points: (3, N) start, in the observations' shifted frame; NaN
            points stay NaN. use: (C, N) bool, the views each point is fitted to.
        iterations: LM steps. damping: the initial λ (relative to the diagonal of JᵀWJ).

    Returns:
        (3, N) refined points; each point's cost never rises.
    """
    w = obs.conf * use
    X = points.clone()
    lam = torch.full_like(X[0], damping)
    ex, ey, Jx, Jy = _residuals_and_jacobian(obs, X, w)
    cost = _cost(ex, ey, w)
    for _ in range(iterations):
        wJx, wJy = w[:, None] * Jx, w[:, None] * Jy
        H = [(wJx[:, i] * Jx[:, j] + wJy[:, i] * Jy[:, j]).sum(0)
             for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))]
        g = [-(wJx[:, i] * ex + wJy[:, i] * ey).sum(0) for i in range(3)]
        for i in (0, 3, 5):  # the diagonal
            H[i] = H[i] * (1 + lam)
        step = solve_normal_equations(torch.stack(H + g)).points
        trial = X + torch.nan_to_num(step)
        tex, tey, tJx, tJy = _residuals_and_jacobian(obs, trial, w)
        tcost = _cost(tex, tey, w)
        better = tcost < cost  # False for NaN costs: the point stays
        X = torch.where(better, trial, X)
        ex, ey = torch.where(better, tex, ex), torch.where(better, tey, ey)
        Jx, Jy = torch.where(better, tJx, Jx), torch.where(better, tJy, Jy)
        cost = torch.where(better, tcost, cost)
        lam = torch.where(better, lam / 10, lam * 10)
    return X
