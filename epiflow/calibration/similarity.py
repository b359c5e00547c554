"""The similarity between matched 3D point sets (Umeyama, PAMI 1991).

Cameras and points recovered from images are known up to a similarity (scale, rotation,
translation); comparing them with a reference (:func:`epiflow.calibration.compare.rig_errors`) or
drawing them in the reference's world (:mod:`epiflow.viz`) first finds the similarity between them.
"""
from __future__ import annotations

import numpy as np

__all__ = ["umeyama"]


def umeyama(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R (3, 3), t (3,)) minimising ``Σ |s R source_i + t - target_i|²``.

    Reflections are excluded (det R = +1).

    Args:
        source, target: (N, 3) matched points, N >= 2 (N >= 3 not collinear for a unique R).

    Returns:
        (s, R, t) with ``target ≈ s · R · source + t``; s = 1 when the source points coincide.
    """
    src, dst = np.asarray(source, float), np.asarray(target, float)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    x, y = src - mu_s, dst - mu_d
    U, S, Vt = np.linalg.svd(y.T @ x / len(src))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt)) or 1.0])
    R = U @ D @ Vt
    var = (x ** 2).sum() / len(src)
    s = float(np.trace(np.diag(S) @ D) / var) if var > 0 else 1.0
    return s, R, mu_d - s * R @ mu_s
