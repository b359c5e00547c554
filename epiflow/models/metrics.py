"""Accuracy metrics for 3D poses and for recovered cameras, named as in the papers.

Pose metrics take ``pred`` and ``gt`` of shape (..., J, 3) in metres (numpy or torch; torch is
detached and read as numpy) and return a Python float. A joint that is NaN in either is left out of
every mean, and of the alignments. Poses are compared as given: for the Human3.6M protocols pass
root-relative poses (pelvis at the origin).

- :func:`mpjpe`: mean per-joint position error (Protocol #1).
- :func:`n_mpjpe`: MPJPE after the least-squares scale of each predicted pose (Rhodin et al., CVPR
  2018), scaling about the origin as VideoPose3D does.
- :func:`p_mpjpe`: MPJPE after the similarity Procrustes alignment of each pose (Protocol #2,
  VideoPose3D's ``p_mpjpe``), reflections excluded.
- :func:`p_mpjpe_torch`, :func:`procrustes_align_torch`: the same on torch tensors, batched over
  poses on the tensors' device (CPU or CUDA), the similarity fitted by roma's
  ``rigid_points_registration`` (Umeyama with scale; the joints a pose misses get weight 0);
  these return tensors, not floats.
- :func:`pck3d`, :func:`auc`: fraction of joints within 150 mm, and PCK averaged over thresholds
  0–150 mm in 5 mm steps (Mehta et al., MPI-INF-3DHP).
- :func:`pss`: Pose Structure Score (Wandt et al., CanonPose, CVPR 2021).
- :func:`pcp`: Percentage of Correct Parts, per limb (Burenius et al. / Belagiannis et al., the
  multi-person Shelf and Campus protocol).

:func:`rig_errors` compares an estimated camera rig with a reference; it and
:func:`rotation_angle_deg` live in :mod:`epiflow.calibration.compare` (re-exported here).
"""
from __future__ import annotations

import numpy as np
import roma
import torch
from scipy.cluster.vq import kmeans2

from epiflow.calibration.compare import rig_errors, rotation_angle_deg

__all__ = ["mpjpe", "mpjpe_per_joint", "n_mpjpe", "p_mpjpe", "pck3d", "auc", "pss",
           "procrustes_align", "procrustes_align_torch", "p_mpjpe_torch", "pcp",
           "rotation_angle_deg", "rig_errors"]

AUC_THRESHOLDS = np.linspace(0.0, 0.15, 31)


def _arrays(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    """pred and gt (numpy or torch) as float64 numpy arrays, checked to be alike (..., J, 3)."""
    def arr(x):
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        return np.asarray(x, dtype=np.float64)
    p, g = arr(pred), arr(gt)
    if p.shape != g.shape or p.ndim < 2 or p.shape[-1] != 3:
        raise ValueError(f"pred and gt must have the same shape (..., J, 3); got {p.shape} and "
                         f"{g.shape}")
    return p, g


def _poses(pred, gt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, J, 3) pred, (N, J, 3) gt as float64 and the (N, J) mask of joints finite in both."""
    p, g = _arrays(pred, gt)
    p, g = p.reshape(-1, *p.shape[-2:]), g.reshape(-1, *g.shape[-2:])
    valid = np.isfinite(p).all(-1) & np.isfinite(g).all(-1)
    return np.where(valid[..., None], p, 0.0), np.where(valid[..., None], g, 0.0), valid


def _joint_errors(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The per-joint distances (N, J) of the valid joints, flattened."""
    return np.linalg.norm(pred - gt, axis=-1)[valid]


def _mean(errors: np.ndarray) -> float:
    return float(np.mean(errors)) if errors.size else float("nan")


def mpjpe(pred, gt) -> float:
    """Mean per-joint position error, metres.

    Args:
        pred, gt: (..., J, 3) metres.

    Example: a pose shifted by 10 mm has ``mpjpe = 0.010``.
    """
    p, g, valid = _poses(pred, gt)
    return _mean(_joint_errors(p, g, valid))


def mpjpe_per_joint(pred, gt) -> np.ndarray:
    """Mean position error of each joint, metres: (J,), NaN for a joint never valid in both.

    Args:
        pred, gt: (..., J, 3) metres.

    Over poses where every joint is valid, the mean of this is :func:`mpjpe`.
    """
    p, g, valid = _poses(pred, gt)
    dist = np.where(valid, np.linalg.norm(p - g, axis=-1), 0.0)
    n = valid.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, dist.sum(0) / np.maximum(n, 1), np.nan)


def n_mpjpe(pred, gt) -> float:
    """MPJPE after scaling each predicted pose by ``s = <pred, gt> / <pred, pred>``, metres.

    Args:
        pred, gt: (..., J, 3) metres, root-relative. A pose twice too large scores 0.
    """
    p, g, valid = _poses(pred, gt)
    scale = np.sum(p * g, axis=(-1, -2)) / np.maximum(np.sum(p * p, axis=(-1, -2)), 1e-12)
    return _mean(_joint_errors(scale[:, None, None] * p, g, valid))


def procrustes_align(pred, gt) -> np.ndarray:
    """Each predicted pose moved by the similarity (scale, rotation, translation) that best fits
    its ground truth in least squares over the joints finite in both.

    Args:
        pred, gt: (..., J, 3) metres.

    Returns:
        (N, J, 3) aligned predictions with N = the product of the leading dimensions; joints
        missing in either input are 0 there, and poses with fewer than 3 valid joints are NaN.
    """
    p, g, valid = _poses(pred, gt)
    w = valid[..., None].astype(np.float64)
    count = np.maximum(w.sum(axis=1, keepdims=True), 1.0)
    mu_p, mu_g = (p * w).sum(1, keepdims=True) / count, (g * w).sum(1, keepdims=True) / count
    x, y = (p - mu_p) * w, (g - mu_g) * w
    U, S, Vt = np.linalg.svd(np.einsum("nji,njk->nik", x, y))
    d = np.sign(np.linalg.det(np.einsum("nij,njk->nik", Vt.transpose(0, 2, 1),
                                        U.transpose(0, 2, 1))))
    D = np.ones_like(S)
    D[:, 2] = d
    R = np.einsum("nji,nj,nkj->nik", Vt, D, U)  # V · diag(D) · Uᵀ
    scale = (S * D).sum(-1) / np.maximum((x ** 2).sum(axis=(1, 2)), 1e-12)
    aligned = scale[:, None, None] * np.einsum("nij,nkj->nki", R, x) + mu_g
    aligned = np.where(valid[..., None], aligned, 0.0)
    aligned[valid.sum(1) < 3] = np.nan
    return aligned


def p_mpjpe(pred, gt) -> float:
    """MPJPE after the per-pose similarity Procrustes alignment (Protocol #2), metres.

    Args:
        pred, gt: (..., J, 3) metres. A pose rotated, scaled and shifted scores 0.
    """
    aligned = procrustes_align(pred, gt)
    _, g, valid = _poses(pred, gt)
    valid &= np.isfinite(aligned).all(-1)
    return _mean(_joint_errors(np.nan_to_num(aligned), g, valid))


def _torch_poses(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """pred, gt (..., J, 3) on one device in a float dtype (float32 for half precision), missing
    joints zeroed, and the (..., J) mask of the joints finite in both (and in ``valid``)."""
    if pred.shape != gt.shape or pred.ndim < 2 or pred.shape[-1] != 3:
        raise ValueError(f"pred and gt must have the same shape (..., J, 3); got "
                         f"{tuple(pred.shape)} and {tuple(gt.shape)}")
    dtype = torch.promote_types(pred.dtype, gt.dtype)
    if dtype not in (torch.float32, torch.float64):
        dtype = torch.float32
    p, g = pred.to(dtype), gt.to(device=pred.device, dtype=dtype)
    ok = torch.isfinite(p).all(-1) & torch.isfinite(g).all(-1)
    if valid is not None:
        ok = ok & valid.to(device=pred.device, dtype=torch.bool)
    zero = p.new_zeros(())
    return torch.where(ok[..., None], p, zero), torch.where(ok[..., None], g, zero), ok


def procrustes_align_torch(pred: torch.Tensor, gt: torch.Tensor,
                           valid: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`procrustes_align` on tensors, on their device: each predicted pose moved by the
    similarity (``roma.rigid_points_registration`` with scale, reflections excluded) that best fits
    its ground truth over the joints finite in both.

    Args:
        pred, gt: (..., J, 3) metres (float64 for the numpy version's digits; half precision is
            computed in float32). valid: optional (..., J) bool, joints to use besides the finite
            ones.

    Returns:
        (..., J, 3) aligned predictions (the leading shape is kept); joints left out are 0 there,
        poses with fewer than 3 joints are NaN.
    """
    p, g, ok = _torch_poses(pred, gt, valid)
    w = ok.to(p.dtype)
    enough = ok.sum(-1) >= 3
    # a pose without 3 joints is NaN at the end; uniform weights keep roma off 0 / 0 meanwhile
    R, t, s = roma.rigid_points_registration(p, g, weights=torch.where(enough[..., None], w, 1.0),
                                             compute_scaling=True)
    aligned = s[..., None, None] * p @ R.transpose(-1, -2) + t[..., None, :]
    # a prediction collapsed to a point (an untrained model's zeros) has scale 0 in the numpy
    # version: every joint goes to the ground truth's centroid; roma's scale is 0 / 0 there
    count = w.sum(-1).clamp_min(1.0)
    mu_p = (w[..., None] * p).sum(-2) / count[..., None]
    spread = (w * ((p - mu_p[..., None, :]) ** 2).sum(-1)).sum(-1)
    mu_g = (w[..., None] * g).sum(-2) / count[..., None]
    aligned = torch.where((spread > 0)[..., None, None], aligned, mu_g[..., None, :])
    aligned = torch.where(ok[..., None], aligned, p.new_zeros(()))
    return torch.where(enough[..., None, None], aligned, p.new_tensor(float("nan")))


def p_mpjpe_torch(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None,
                  reduction: str = "mean") -> torch.Tensor:
    """:func:`p_mpjpe` on tensors, on their device, metres.

    Args:
        pred, gt: (..., J, 3) metres. valid: optional (..., J) bool, joints to use besides the
            finite ones.
        reduction: ``"mean"``: a 0-d tensor, the mean over every joint used of the poses with at
            least 3 (the number :func:`p_mpjpe` gives, NaN when there is none); ``"none"``: the
            (...) mean error of each pose, NaN for a pose with fewer than 3 joints.
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none'; got {reduction!r}")
    aligned = procrustes_align_torch(pred, gt, valid)
    _, g, ok = _torch_poses(pred, gt, valid)
    ok = ok & (ok.sum(-1, keepdim=True) >= 3)
    err = torch.where(ok, (torch.nan_to_num(aligned) - g).norm(dim=-1), g.new_zeros(()))
    if reduction == "none":
        return err.sum(-1) / ok.sum(-1)  # 0 / 0 = NaN for a pose without 3 joints
    return err.sum() / ok.sum()


def pck3d(pred, gt, threshold: float = 0.15) -> float:
    """Fraction (0–1) of joints within ``threshold`` metres of the ground truth.

    Args:
        pred, gt: (..., J, 3) metres. threshold: metres (150 mm as in MPI-INF-3DHP).
    """
    p, g, valid = _poses(pred, gt)
    errors = _joint_errors(p, g, valid)
    return float(np.mean(errors <= threshold)) if errors.size else float("nan")


def auc(pred, gt, thresholds: np.ndarray = AUC_THRESHOLDS) -> float:
    """Area under the PCK curve: PCK (0–1) averaged over thresholds 0–150 mm in 5 mm steps.

    Args:
        pred, gt: (..., J, 3) metres. thresholds: (K,) metres.
    """
    p, g, valid = _poses(pred, gt)
    errors = _joint_errors(p, g, valid)
    if not errors.size:
        return float("nan")
    return float(np.mean(errors[None, :] <= np.asarray(thresholds)[:, None]))


def pcp(pred, gt, limbs, alpha: float = 0.5) -> np.ndarray:
    """Percentage of Correct Parts, limb by limb: which limbs of each pose are correct.

    A limb (a, b) is correct when the mean of its two endpoint errors is at most ``alpha`` times
    its ground-truth length: ``(|p_a - g_a| + |p_b - g_b|) / 2 <= alpha * |g_a - g_b|`` (the
    Shelf/Campus protocol as MVPose and VoxelPose evaluate it). A limb whose predicted endpoint is
    NaN is wrong; one whose ground-truth endpoint is NaN is not scored.

    Args:
        pred, gt: (..., J, 3) metres (numpy or torch). limbs: L pairs (a, b) of joint indices.
        alpha: the share of the limb's length allowed (0.5 in the papers).

    Returns:
        (..., L) float: 1.0 correct, 0.0 wrong, NaN not scored; ``100 * nanmean`` is the PCP in %.

    Example: a pose whose right forearm is off by more than half its length scores 0 on that
    limb and 1 on the rest.
    """
    p, g = _arrays(pred, gt)
    limbs = np.asarray(limbs, dtype=int).reshape(-1, 2)
    if limbs.size and (limbs.min() < 0 or limbs.max() >= p.shape[-2]):
        raise ValueError(f"limbs must index the {p.shape[-2]} joints; got indices from "
                         f"{limbs.min()} to {limbs.max()}")
    a, b = limbs[:, 0], limbs[:, 1]
    err = (np.linalg.norm(p[..., a, :] - g[..., a, :], axis=-1)
           + np.linalg.norm(p[..., b, :] - g[..., b, :], axis=-1)) / 2
    length = np.linalg.norm(g[..., a, :] - g[..., b, :], axis=-1)
    with np.errstate(invalid="ignore"):
        correct = (err <= alpha * length).astype(np.float64)
    return np.where(np.isfinite(length), correct, np.nan)


def _structure(poses: np.ndarray, root: int) -> np.ndarray:
    """(N, J·3) root-relative poses divided by their Frobenius norm."""
    rel = poses - poses[:, root:root + 1]
    norm = np.linalg.norm(rel.reshape(len(rel), -1), axis=1)
    return rel.reshape(len(rel), -1) / np.maximum(norm, 1e-12)[:, None]


def pss(pred, gt, k: int = 50, seed: int = 0, root: int = 0) -> float:
    """Pose Structure Score: the fraction (0–1) of predictions whose nearest pose cluster is
    their ground truth's.

    Ground-truth poses, made root-relative and scale-normalised (divided by their Frobenius norm),
    are clustered by k-means (k-means++ start, seeded); each prediction and its ground truth are
    assigned to the nearest centre, and a prediction scores when both centres are the same. Poses
    with a NaN joint in either are left out.

    Args:
        pred, gt: (..., J, 3) metres, at least ``k`` poses. k: clusters (Wandt et al. use 50, 100).
        seed: k-means seed. root: the joint the poses are made relative to (pelvis in h36m17).
    """
    p, g, valid = _poses(pred, gt)
    keep = valid.all(1)
    if keep.sum() < k:
        raise ValueError(f"pss: needs at least k={k} complete poses; got {int(keep.sum())} "
                         f"(of {len(valid)}); lower k or pass more poses")
    gs, ps = _structure(g[keep], root), _structure(p[keep], root)
    centres, gt_label = kmeans2(gs, k, minit="++", seed=np.random.default_rng(seed))
    pred_label = np.argmin(((ps[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    return float(np.mean(pred_label == gt_label))
