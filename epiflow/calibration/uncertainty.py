"""How good is a triangulated point: a 3D error estimate and a weight in [0, 1] per point.

The formula (all points at once):

1. **Geometry.** The Fisher information of the point from the views it used,
   ``I = Σ_c conf_c J_cᵀ J_c``, with ``J_c`` (2 × 3) the derivative of camera c's projection in
   pixels with respect to the point, ``(f_c / Z_c) [R₀ - x R₂; R₁ - y R₂]``. ``trace(I⁻¹)``
   (metres² per pixel² of noise) grows with fewer views, narrower angles between the rays, farther
   and lower-resolution cameras, and lower confidence.
2. **Residuals.** The image noise of this point, ``σ̂² = max(σ₀², s² / 4)``, from its own
   residuals ``s² = Σ_c conf_c r_c² / (2n - 3)`` (n views used, 2n - 3 degrees of freedom, r in
   pixels) and the typical noise ``σ₀``: ``noise_px`` when given, else the median ``s`` over the
   points with at least three views (the batch's own). Under Gaussian noise a point's residuals
   say nothing about its own error (they are independent of it), so they count only when they
   are far above the typical (``s > 2 σ₀``): a view that should have been left out. Measured on
   synthetic captures, pooling them in always (``(ν₀σ₀² + dof·s²)/(ν₀ + dof)``) lowered the rank
   correlation with the true error from 0.43 to 0.12.
3. **3D error.** ``sigma = √(σ̂² trace(I⁻¹))`` metres: the predicted root-mean-square 3D error
   (covariance ``σ̂² I⁻¹``).
4. **Weight.** ``weight = 1 / (1 + (sigma / weight_scale)²)``: 1 for a perfect point, 0.5 at
   ``sigma = weight_scale`` (default 2 cm), 0 for a point that could not be triangulated.
   A higher weight predicts a lower error.
"""
from __future__ import annotations

import torch

__all__ = ["EXCESS", "DEFAULT_NOISE_PX", "residual_variance", "noise_prior", "point_sigma",
           "weight_from_sigma"]

#: residual variance counts once it exceeds this many times σ₀² (``s > 2 σ₀``)
EXCESS = 4.0
#: σ₀ (pixels) when neither ``noise_px`` nor any point with three views gives one
DEFAULT_NOISE_PX = 2.0


def residual_variance(residuals: torch.Tensor, conf: torch.Tensor, use: torch.Tensor
                      ) -> torch.Tensor:
    """s² (N,) pixels²: ``Σ conf r² / (2n - 3)`` over the views used (module docstring, step 2).

    Args:
        residuals: (C, N) reprojection errors, pixels. conf: (C, N). use: (C, N) bool.
    """
    r2 = torch.where(use, conf * residuals * residuals, 0).sum(0)
    return r2 / (2 * use.sum(0) - 3).clamp(min=1).to(residuals.dtype)


def noise_prior(s2: torch.Tensor, n_views: torch.Tensor, noise_px: float | None = None) -> float:
    """σ₀ in pixels: ``noise_px``, or the median √s² of the points with >= 3 views.

    Args:
        s2: (N,) from :func:`residual_variance`. n_views: (N,) views used per point.
    """
    if noise_px is not None:
        if not noise_px > 0:
            raise ValueError(f"noise_px must be positive (pixels) or None; got {noise_px}")
        return float(noise_px)
    s2 = s2[(n_views >= 3) & torch.isfinite(s2)]
    return float(s2.median().sqrt()) if s2.numel() else DEFAULT_NOISE_PX


def point_sigma(trace_inverse: torch.Tensor, s2: torch.Tensor, noise_px: float) -> torch.Tensor:
    """Predicted RMS 3D error (N,) metres (module docstring, steps 2-3).

    Args:
        trace_inverse: (N,) ``trace(I⁻¹)`` from the reweighted linear solve, m² / px².
        s2: (N,) the residual variance of :func:`residual_variance`. noise_px: σ₀, pixels.
    """
    noise2 = torch.maximum(torch.full_like(s2, noise_px ** 2), s2 / EXCESS)
    return (noise2 * trace_inverse).clamp(min=0).sqrt()


def weight_from_sigma(sigma: torch.Tensor, weight_scale: float = 0.02) -> torch.Tensor:
    """Weight in [0, 1] from the predicted 3D error (module docstring, step 4); 0 where NaN."""
    if not weight_scale > 0:
        raise ValueError(f"weight_scale must be positive (metres); got {weight_scale}")
    w = 1 / (1 + (sigma / weight_scale) ** 2)
    return torch.nan_to_num(w, nan=0.0)
