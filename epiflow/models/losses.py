"""Training losses for monocular 3D pose: pseudo-label (plain and scale-invariant), multi-view
consistency, reprojection onto the 2D input and left/right bone symmetry.

All poses are ``(B, J, 3)`` root-relative, metres, in a camera's frame. Weights are ``(B, J)``,
non-negative. A target that is NaN (a joint the triangulation could not place) gets weight 0 and
is replaced by a finite value *before* any arithmetic, so it contributes neither to the loss nor
to the gradients. Each loss is a weighted mean of per-joint distances (metres unless stated); it
is 0 when no weight is positive.

Example:
    >>> pred = torch.zeros(2, 17, 3, requires_grad=True)
    >>> target = torch.full((2, 17, 3), float("nan"))
    >>> float(pseudo_label_loss(pred, target, torch.ones(2, 17)))
    0.0
"""
from __future__ import annotations

import torch

from epiflow.skeleton import JointSet

__all__ = ["masked_target", "pseudo_label_loss", "scale_invariant_loss",
           "multiview_consistency_loss", "reprojection_loss", "root_translation",
           "symmetric_bone_pairs", "bone_symmetry_loss"]


def _check(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, what: str):
    if pred.ndim < 2 or pred.shape[-1] != target.shape[-1] or pred.shape[:-1] != target.shape[:-1]:
        raise ValueError(f"{what}: prediction and target must have the same shape (B, J, D); "
                         f"got {tuple(pred.shape)} and {tuple(target.shape)}")
    if weight is not None and weight.shape != pred.shape[:-1]:
        raise ValueError(f"{what}: weight must have shape {tuple(pred.shape[:-1])}; "
                         f"got {tuple(weight.shape)}")


def masked_target(target: torch.Tensor, weight: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(target with NaN replaced by 0, weight with 0 wherever target or weight is not finite).

    Args:
        target: (..., J, D). weight: (..., J) or None (all ones).
    """
    finite = torch.isfinite(target).all(-1)
    w = torch.ones_like(finite, dtype=target.dtype) if weight is None else weight.to(target.dtype)
    finite = finite & torch.isfinite(w) & (w > 0)
    return (torch.where(finite[..., None], target, torch.zeros_like(target)),
            torch.where(finite, w, torch.zeros_like(w)))


def _weighted_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return (values * weight).sum() / weight.sum().clamp_min(1e-8)


def pseudo_label_loss(pred: torch.Tensor, target: torch.Tensor,
                      weight: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted mean per-joint distance between prediction and label, metres (a weighted MPJPE).

    Args:
        pred, target: (B, J, 3) root-relative metres; target may hold NaN (masked).
        weight: (B, J) per-joint weights (the pseudo-label's), or None.
    """
    _check(pred, target, weight, "pseudo_label_loss")
    target, w = masked_target(target, weight)
    dist = (pred.float() - target.float()).square().sum(-1).add(1e-12).sqrt()
    return _weighted_mean(dist, w.float())


def scale_invariant_loss(pred: torch.Tensor, target: torch.Tensor,
                         weight: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`pseudo_label_loss` after scaling each predicted pose by its best (weighted
    least-squares) factor onto the label: for labels whose metric scale is uncertain (N-MPJPE)."""
    _check(pred, target, weight, "scale_invariant_loss")
    target, w = masked_target(target, weight)
    p, t, w = pred.float(), target.float(), w.float()
    num = (w[..., None] * p * t).sum((-1, -2))
    den = (w[..., None] * p * p).sum((-1, -2)).clamp_min(1e-8)
    return pseudo_label_loss(p * (num / den)[..., None, None], t, w)


def multiview_consistency_loss(pred_i: torch.Tensor, pred_j: torch.Tensor, R_ij: torch.Tensor,
                               weight: torch.Tensor | None = None) -> torch.Tensor:
    """Disagreement between two views' predictions of the same instant, metres.

    Args:
        pred_i, pred_j: (B, J, 3) root-relative poses in cameras i and j's frames.
        R_ij: (B, 3, 3) rotation from camera i's frame to camera j's
            (:meth:`CameraRig.relative_pose`; root-relative, so the translation cancels).
        weight: (B, J) or None; e.g. the lower 2D confidence of the two views.
    """
    _check(pred_i, pred_j, weight, "multiview_consistency_loss")
    if R_ij.shape != (pred_i.shape[0], 3, 3):
        raise ValueError(f"multiview_consistency_loss: R_ij must have shape "
                         f"({pred_i.shape[0]}, 3, 3); got {tuple(R_ij.shape)}")
    rotated = pred_i.float() @ R_ij.float().transpose(-1, -2)
    return pseudo_label_loss(rotated, pred_j.float(), weight)


def root_translation(pose: torch.Tensor, uv: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(B, 3) translation T that best places ``pose + T`` on the rays ``uv`` (weighted, linear).

    Args:
        pose: (B, J, 3) root-relative metres, camera frame. uv: (B, J, 2) normalised image
            coordinates (x/z, y/z), finite. w: (B, J) weights (0 = not used).
    """
    B, J, _ = pose.shape
    zeros, ones = torch.zeros_like(uv[..., 0]), torch.ones_like(uv[..., 0])
    # (p_x + T_x) - u (p_z + T_z) = 0  and  (p_y + T_y) - v (p_z + T_z) = 0
    ax = torch.stack([ones, zeros, -uv[..., 0]], -1)
    ay = torch.stack([zeros, ones, -uv[..., 1]], -1)
    A = torch.cat([ax, ay], 1)                                        # (B, 2J, 3)
    b = torch.cat([uv[..., 0] * pose[..., 2] - pose[..., 0],
                   uv[..., 1] * pose[..., 2] - pose[..., 1]], 1)      # (B, 2J)
    ww = torch.cat([w, w], 1)[..., None]
    AtA = (A * ww).transpose(1, 2) @ A + 1e-6 * torch.eye(3, device=A.device)
    Atb = ((A * ww).transpose(1, 2) @ b[..., None])
    return torch.linalg.solve(AtA, Atb)[..., 0]


def reprojection_loss(pred: torch.Tensor, uv: torch.Tensor,
                      weight: torch.Tensor | None = None) -> torch.Tensor:
    """Distance between the 2D input and the prediction projected back into the camera.

    The root's position is unknown to a root-relative model; it is solved for in closed form
    (weighted linear least squares) so that the prediction reprojects best, and the residuals are
    measured in normalised image coordinates times the root's depth (so roughly metres).

    Args:
        pred: (B, J, 3) root-relative metres, camera frame.
        uv: (B, J, 2) the input's undistorted normalised image coordinates (x/z, y/z);
            NaN = missing.
        weight: (B, J) 2D confidences, or None.
    """
    _check(pred[..., :2], uv, weight, "reprojection_loss")
    uv, w = masked_target(uv, weight)
    pred, uv, w = pred.float(), uv.float(), w.float()
    T = root_translation(pred, uv, w)
    cam = pred + T[:, None]
    z = cam[..., 2:3].clamp_min(1e-3)
    residual = (cam[..., :2] / z - uv) * T[:, None, 2:3].detach().clamp_min(1e-3)
    return _weighted_mean(residual.square().sum(-1).add(1e-12).sqrt(), w)


def symmetric_bone_pairs(joint_set: JointSet) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Pairs of bones ((parent, child) on the left, its mirror on the right) of a joint set."""
    flip = joint_set.flip_permutation
    bones = set(joint_set.bones)
    lefts = {left for left, _ in joint_set.left_right}
    return [((p, c), (int(flip[p]), int(flip[c]))) for p, c in joint_set.bones
            if c in lefts and (int(flip[p]), int(flip[c])) in bones]


def bone_symmetry_loss(pred: torch.Tensor, joint_set: JointSet) -> torch.Tensor:
    """Mean absolute difference between the lengths of mirrored left/right bones, metres.

    Args:
        pred: (B, J, 3) poses of ``joint_set`` (which must have a kinematic tree).
    """
    pairs = symmetric_bone_pairs(joint_set)
    if not pairs:
        raise ValueError(f"joint set {joint_set.name!r} has no mirrored bones; the symmetry loss "
                         f"needs a kinematic tree with left/right joints (use h36m17)")
    idx = torch.tensor(pairs, device=pred.device)                      # (P, 2, 2)
    p = pred.float()
    length = (p[:, idx[..., 1]] - p[:, idx[..., 0]]).square().sum(-1).add(1e-12).sqrt()
    return (length[..., 0] - length[..., 1]).abs().mean()
