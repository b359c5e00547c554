"""Triangulation of 2D observations from several calibrated cameras.

The core is batched: every point of every frame at once, no Python loop over points.
"""
from __future__ import annotations

import torch

__all__ = ["triangulate_linear"]


def triangulate_linear(P: torch.Tensor, xy: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Confidence-weighted linear (DLT) triangulation of N points from C views at once.

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
    # rows: w * (x * P3 - P1), w * (y * P3 - P2); A is (N, 2C, 4)
    rows_x = x[..., 0, None] * P[:, None, 2, :] - P[:, None, 0, :]
    rows_y = x[..., 1, None] * P[:, None, 2, :] - P[:, None, 1, :]
    A = torch.cat([rows_x * w[..., None], rows_y * w[..., None]], dim=0).transpose(0, 1)
    A = A / A.norm(dim=-1, keepdim=True).clamp_min(1e-12) * (w.repeat(2, 1).T[..., None] > 0)
    _, vecs = torch.linalg.eigh(A.transpose(-1, -2) @ A)
    X = vecs[..., 0]
    points = X[..., :3] / X[..., 3:4]
    enough = valid.sum(0) >= 2
    return torch.where(enough[:, None], points, torch.full_like(points, float("nan")))
