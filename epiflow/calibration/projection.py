"""Batched pinhole projection with Brown–Conrady distortion, in torch.

Conventions (DESIGN.md): extrinsics are world→camera, ``x_cam = R · X_world + t``; distortion
coefficients are OpenCV's ``(k1, k2, p1, p2, k3)``; pixels have their origin at the centre of the
top-left pixel, x to the right, y down. All functions broadcast over leading batch dimensions and
keep the dtype and device of their inputs; pass float64 where precision matters.
"""
from __future__ import annotations

import torch

__all__ = ["world_to_camera", "distort", "undistort", "apply_intrinsics", "remove_intrinsics",
           "project"]


def world_to_camera(points: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Points in the world frame to a camera frame.

    Args:
        points: (..., N, 3) metres, world frame.
        R: (..., 3, 3) world→camera rotation. t: (..., 3) metres.

    Returns:
        (..., N, 3) metres in the camera frame (z forward).
    """
    return points @ R.transpose(-1, -2) + t.unsqueeze(-2)


def distort(xy: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """Apply Brown–Conrady distortion to normalised image coordinates.

    Args:
        xy: (..., N, 2) undistorted normalised coordinates (x/z, y/z).
        dist: (..., 5) ``(k1, k2, p1, p2, k3)``.

    Returns:
        (..., N, 2) distorted normalised coordinates.
    """
    k1, k2, p1, p2, k3 = (dist[..., i, None] for i in range(5))
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return torch.stack([xd, yd], dim=-1)


def _distort_jacobian(xy: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """(..., N, 2, 2) Jacobian of :func:`distort` with respect to ``xy``."""
    k1, k2, p1, p2, k3 = (dist[..., i, None] for i in range(5))
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    dradial = k1 + r2 * (2 * k2 + 3 * k3 * r2)  # d radial / d r2
    j00 = radial + 2 * x * x * dradial + 2 * p1 * y + 6 * p2 * x
    j01 = 2 * x * y * dradial + 2 * p1 * x + 2 * p2 * y
    j10 = 2 * x * y * dradial + 2 * p1 * x + 2 * p2 * y
    j11 = radial + 2 * y * y * dradial + 6 * p1 * y + 2 * p2 * x
    return torch.stack([torch.stack([j00, j01], -1), torch.stack([j10, j11], -1)], -2)


def undistort(xy_distorted: torch.Tensor, dist: torch.Tensor, iterations: int = 12) -> torch.Tensor:
    """Invert :func:`distort` by Newton's method (converges for the lenses of real webcams).

    Args:
        xy_distorted: (..., N, 2) distorted normalised coordinates.
        dist: (..., 5) ``(k1, k2, p1, p2, k3)``.

    Returns:
        (..., N, 2) undistorted normalised coordinates; NaN in, NaN out.
    """
    xy = xy_distorted.clone()
    for _ in range(iterations):
        residual = distort(xy, dist) - xy_distorted
        J = _distort_jacobian(xy, dist)
        det = J[..., 0, 0] * J[..., 1, 1] - J[..., 0, 1] * J[..., 1, 0]
        dx = (J[..., 1, 1] * residual[..., 0] - J[..., 0, 1] * residual[..., 1]) / det
        dy = (J[..., 0, 0] * residual[..., 1] - J[..., 1, 0] * residual[..., 0]) / det
        xy = xy - torch.stack([dx, dy], -1)
    return xy


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
