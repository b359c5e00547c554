"""Batched pinhole projection with Brown–Conrady distortion, in torch.

Conventions (DESIGN.md): extrinsics are world→camera, ``x_cam = R · X_world + t``; distortion
coefficients are OpenCV's ``(k1, k2, p1, p2, k3)``; pixels have their origin at the centre of the
top-left pixel, x to the right, y down. All functions broadcast over leading batch dimensions and
keep the dtype and device of their inputs; pass float64 where precision matters.
"""
from __future__ import annotations

import torch

__all__ = ["world_to_camera", "distort", "distort_jacobian", "undistort", "apply_intrinsics",
           "remove_intrinsics", "project", "distortion_coefficients", "distort_xy",
           "distort_jacobian_xy", "undistort_xy"]


def world_to_camera(points: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Points in the world frame to a camera frame.

    Args:
        points: (..., N, 3) metres, world frame.
        R: (..., 3, 3) world→camera rotation. t: (..., 3) metres.

    Returns:
        (..., N, 3) metres in the camera frame (z forward).
    """
    return points @ R.transpose(-1, -2) + t.unsqueeze(-2)


def distortion_coefficients(dist: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``(k1, k2, p1, p2, k3)`` of dist (..., 5), each (..., 1) to broadcast over points."""
    return tuple(dist[..., i, None] for i in range(5))


def distort_xy(x: torch.Tensor, y: torch.Tensor, k: tuple[torch.Tensor, ...]):
    """Distortion on separate, contiguous coordinates (fast: no strided broadcasting).

    Returns (xd, yd, r2, radial), each shaped like x.
    """
    k1, k2, p1, p2, k3 = k
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xy2 = 2 * x * y
    xd = x * radial + p1 * xy2 + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + p2 * xy2
    return xd, yd, r2, radial


def distort_jacobian_xy(x, y, r2, radial, k: tuple[torch.Tensor, ...]):
    """(j00, j01, j11) of the symmetric 2x2 Jacobian of :func:`distort_xy` (j10 = j01)."""
    k1, k2, p1, p2, k3 = k
    dradial = 2 * (k1 + r2 * (2 * k2 + 3 * k3 * r2))  # 2 * d radial / d r2
    j00 = radial + x * x * dradial + 2 * p1 * y + 6 * p2 * x
    j01 = x * y * dradial + 2 * p1 * x + 2 * p2 * y
    j11 = radial + y * y * dradial + 6 * p1 * y + 2 * p2 * x
    return j00, j01, j11


def distort(xy: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """Apply Brown–Conrady distortion to normalised image coordinates.

    Args:
        xy: (..., N, 2) undistorted normalised coordinates (x/z, y/z).
        dist: (..., 5) ``(k1, k2, p1, p2, k3)``.

    Returns:
        (..., N, 2) distorted normalised coordinates.
    """
    xd, yd, _, _ = distort_xy(xy[..., 0].contiguous(), xy[..., 1].contiguous(),
                              distortion_coefficients(dist))
    return torch.stack([xd, yd], dim=-1)


def distort_jacobian(xy: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """(..., N, 2, 2) Jacobian of :func:`distort` with respect to ``xy`` (shapes as there).

    The one analytic derivative of the distortion model: :func:`undistort`'s Newton steps use
    it, and bundle adjustment's numpy copy is tested against it.
    """
    k = distortion_coefficients(dist)
    x, y = xy[..., 0].contiguous(), xy[..., 1].contiguous()
    _, _, r2, radial = distort_xy(x, y, k)
    j00, j01, j11 = distort_jacobian_xy(x, y, r2, radial, k)
    return torch.stack([torch.stack([j00, j01], -1), torch.stack([j01, j11], -1)], -2)


def _undistort_radial(u: torch.Tensor, v: torch.Tensor, k: tuple[torch.Tensor, ...],
                      iterations: int, tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Undistort a lens without tangential terms: a one-dimensional Newton on the radius.

    The undistorted point is ``s (u, v)`` with ``s`` solving ``s · radial(s² r_d²) = 1``;
    Newton starts from the radial inverse at the distorted radius, ``1 / radial(r_d²)``.
    """
    k1, k2, _, _, k3 = k
    rd2 = u * u + v * v
    s = 1 / (1 + rd2 * (k1 + rd2 * (k2 + rd2 * k3)))
    for _ in range(iterations):
        q = rd2 * s * s
        g = s * (1 + q * (k1 + q * (k2 + q * k3))) - 1  # relative radius error
        step = g / (1 + q * (3 * k1 + q * (5 * k2 + q * (7 * k3))))
        s = s - step
        # Newton squares the error: a step this small leaves it far below tol
        if step.numel() == 0 or float(step.abs().max()) <= tol ** 0.5 * 1e-1:
            break
    return u * s, v * s


def undistort_xy(u: torch.Tensor, v: torch.Tensor, k: tuple[torch.Tensor, ...],
                  iterations: int = 12, tol: float = 1e-14) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`undistort` on separate, finite coordinates u, v (any matching shapes) and the
    coefficients of :func:`distortion_coefficients`; returns (x, y)."""
    nonzero = torch.stack([c.reshape(-1) for c in k]).ne(0).any(1).tolist()  # one sync
    if not any(nonzero):
        return u, v
    if not (nonzero[2] or nonzero[3]):
        return _undistort_radial(u, v, k, iterations, tol)
    rd2 = u * u + v * v  # start from the radial inverse at the distorted radius: one step less
    shrink = 1 + rd2 * (k[0] + rd2 * (k[1] + rd2 * k[4]))
    x, y = u / shrink, v / shrink
    for _ in range(iterations):
        xd, yd, r2, radial = distort_xy(x, y, k)
        ex, ey = xd - u, yd - v
        if ex.numel() == 0 or float((ex.abs() + ey.abs()).max()) <= tol:
            break
        j00, j01, j11 = distort_jacobian_xy(x, y, r2, radial, k)
        det = j00 * j11 - j01 * j01
        x = x - (j11 * ex - j01 * ey) / det
        y = y - (j00 * ey - j01 * ex) / det
    return x, y


def undistort(xy_distorted: torch.Tensor, dist: torch.Tensor, iterations: int = 12,
              tol: float = 1e-14) -> torch.Tensor:
    """Invert :func:`distort` by Newton's method (converges for the lenses of real webcams).

    Stops early once every finite point reproduces its input to ``tol`` (normalised units), so
    zero or mild distortion costs one to three steps. A lens without tangential terms
    (``p1 = p2 = 0``) is solved along the radius, a one-dimensional Newton (a third of the work).

    Args:
        xy_distorted: (..., N, 2) distorted normalised coordinates.
        dist: (..., 5) ``(k1, k2, p1, p2, k3)``.

    Returns:
        (..., N, 2) undistorted normalised coordinates; NaN in, NaN out.
    """
    u, v = xy_distorted[..., 0], xy_distorted[..., 1]
    finite = torch.isfinite(u) & torch.isfinite(v)
    x, y = undistort_xy(torch.where(finite, u, 0.0), torch.where(finite, v, 0.0),
                        distortion_coefficients(dist), iterations, tol)
    nan = torch.full_like(x, float("nan"))
    return torch.stack([torch.where(finite, x, nan), torch.where(finite, y, nan)], dim=-1)


def apply_intrinsics(xy: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Normalised coordinates (..., N, 2) to pixels with K (..., 3, 3), skew included."""
    u = K[..., 0, 0, None] * xy[..., 0] + K[..., 0, 1, None] * xy[..., 1] + K[..., 0, 2, None]
    v = K[..., 1, 1, None] * xy[..., 1] + K[..., 1, 2, None]
    return torch.stack([u, v], dim=-1)


def remove_intrinsics(uv: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Pixels (..., N, 2) to normalised coordinates with K (..., 3, 3); inverse of the above."""
    y = (uv[..., 1] - K[..., 1, 2, None]) / K[..., 1, 1, None]
    x = (uv[..., 0] - K[..., 0, 2, None] - K[..., 0, 1, None] * y) / K[..., 0, 0, None]
    return torch.stack([x, y], dim=-1)


def project(points: torch.Tensor, K: torch.Tensor, dist: torch.Tensor, R: torch.Tensor,
            t: torch.Tensor) -> torch.Tensor:
    """Project world points to pixels.

    Args:
        points: (..., N, 3) metres, world frame.
        K: (..., 3, 3); dist: (..., 5); R: (..., 3, 3); t: (..., 3), as in :func:`world_to_camera`.

    Returns:
        (..., N, 2) pixels. Points at or behind the camera (z <= 0) come out NaN.
    """
    cam = world_to_camera(points, R, t)
    z = cam[..., 2:3]
    xy = cam[..., :2] / z
    xy = torch.where(z > 0, xy, torch.full_like(xy, float("nan")))
    return apply_intrinsics(distort(xy, dist), K)
