"""The EpipolarPose way (Kocabas et al., CVPR 2019), kept as a baseline to compare against.

For each frame, camera 0 and camera j's joints of that frame alone give a fundamental matrix
(8-point with LMedS, ``cv2.findFundamentalMat(..., cv2.FM_LMEDS)``, undistorted pixels; kornia
has no LMedS). The rest runs batched over all frames of the pair in float64 with kornia:
``E = K_jᵀ F K_0`` (``kornia.geometry.epipolar.essential_from_fundamental``), its decomposition
and the cheirality choice (``motion_from_essential_choose_solution``, the frames' different
numbers of joints padded and masked), which ``cv2.recoverPose`` did frame by frame. The paper
uses each frame's pose independently (for the pseudo-labels of that frame); a calibration needs
one pose per camera, so here the per-frame poses of a pair are reduced to their median (the
chordal L1 median of the rotations, the normalised component-wise median of the baseline
directions). Poses are chained from the first camera (a star: 0 → j for every j); the
baselines' scales are made consistent by triangulation as in
:func:`epiflow.calibration.view_graph.chain_poses`.
There is no bundle adjustment and no refinement of intrinsics: unknown intrinsics stay at the
guess from the image size.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from epiflow.calibration.camera import CalibrationError
from epiflow.calibration.relative_pose import PairPose
from epiflow.calibration.view_graph import InitialPoses, chain_poses

__all__ = ["frame_pair_poses", "rotation_median", "per_frame_poses"]


def frame_pair_poses(x0: np.ndarray, x1: np.ndarray, valid: np.ndarray, K0: np.ndarray,
                     K1: np.ndarray, min_joints: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """One relative pose per frame from that frame's joints (fundamental matrix, LMedS).

    The fundamental matrices come from OpenCV frame by frame; the essential matrices and their
    cheirality-checked decompositions from kornia, all frames at once (float64).

    Args:
        x0, x1: (T, J, 2) undistorted pixels of cameras 0 and 1. valid: (T, J) bool, seen by both.
        K0, K1: (3, 3) intrinsics.
        min_joints: frames with fewer shared joints are skipped (8 for the 8-point algorithm).

    Returns:
        ``(R (M, 3, 3), t (M, 3))`` for the M frames that gave a pose, ``x_1 = R x_0 + t``,
        ``|t| = 1``.
    """
    # kornia takes 0.2 s to import: only the baseline needs it, not every calibration
    from kornia.geometry.epipolar import (essential_from_fundamental,
                                          motion_from_essential_choose_solution)
    Fs, frames = [], []
    for t in range(x0.shape[0]):
        v = valid[t]
        if v.sum() < min_joints:
            continue
        p0, p1 = np.ascontiguousarray(x0[t, v]), np.ascontiguousarray(x1[t, v])
        F, _ = cv2.findFundamentalMat(p0, p1, cv2.FM_LMEDS)
        if F is None or F.shape != (3, 3):
            continue
        Fs.append(F)
        frames.append(t)
    if not Fs:
        return np.zeros((0, 3, 3)), np.zeros((0, 3))
    M = len(Fs)
    mask = valid[frames]  # (M, J): the frames' own joints; the others are padding
    pad = [torch.from_numpy(np.where(mask[..., None], x[frames], 0.0).astype(np.float64))
           for x in (x0, x1)]
    k0, k1 = (torch.as_tensor(K, dtype=torch.float64).expand(M, 3, 3) for K in (K0, K1))
    E = essential_from_fundamental(torch.from_numpy(np.stack(Fs).astype(np.float64)), k0, k1)
    # kornia's first camera (our 0) is at the origin and the pose maps it into the second:
    # x_1 = R x_0 + t, |t| = 1, as cv2.recoverPose; the mask keeps padding out of the count
    motion = motion_from_essential_choose_solution(E, k0, k1, *pad,
                                                   mask=torch.from_numpy(mask))
    R, t = motion[0].numpy(), motion[1][..., 0].numpy()
    return R, t / np.linalg.norm(t, axis=1, keepdims=True)


def _project_so3(M: np.ndarray) -> np.ndarray:
    U, _, Vt = np.linalg.svd(M)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


def rotation_median(R: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Chordal L1 median of rotations (Weiszfeld iterations, projected onto SO(3)).

    Args:
        R: (M, 3, 3) rotations, M >= 1.

    Returns:
        (3, 3) rotation.
    """
    current = _project_so3(R.mean(0))
    for _ in range(iterations):
        d = np.linalg.norm((R - current).reshape(len(R), -1), axis=1)
        w = 1.0 / np.maximum(d, 1e-9)
        current = _project_so3((w[:, None, None] * R).sum(0) / w.sum())
    return current


def per_frame_poses(xu: np.ndarray, valid: np.ndarray, K: np.ndarray, xn: np.ndarray,
                    names: list[str]) -> tuple[InitialPoses, list[int]]:
    """All cameras placed relative to camera 0 from per-frame fundamental matrices.

    Args:
        xu: (C, T, J, 2) undistorted pixels. valid: (C, T, J) bool. K: (C, 3, 3).
        xn: (C, T, J, 2) normalised coordinates (for the scales). names: camera names.

    Returns:
        (:class:`InitialPoses` in camera 0's frame, per camera the number of frames that gave a
        pose).
    """
    C = xu.shape[0]
    star, counts = [], [0]
    for j in range(1, C):
        both = valid[0] & valid[j]
        R, t = frame_pair_poses(xu[0], xu[j], both, K[0], K[j])
        counts.append(len(R))
        if not len(R):
            raise CalibrationError(f"per_frame: no frame has 8 joints seen by both {names[0]} and "
                                   f"{names[j]}; the per-frame method needs them in one frame")
        direction = np.median(t, axis=0)
        direction /= np.linalg.norm(direction)
        star.append(PairPose(0, j, rotation_median(R), direction, np.zeros((3, 3)),
                             np.zeros(xu.shape[1], bool), int(both.sum()), len(R), float("nan")))
    perm = np.arange(xu.shape[2])  # no left/right handling in the baseline
    return chain_poses(star, xn, valid, perm), counts
