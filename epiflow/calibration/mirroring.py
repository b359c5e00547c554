"""Left/right labels made consistent across cameras, frame by frame.

A 2D detector often mirrors a person seen from behind: its "left wrist" is the right wrist.
Relative to the other cameras that is an exchange of every left joint with its right twin
(:attr:`epiflow.skeleton.JointSet.flip_permutation`) in one camera at one frame. Pairwise
epipolar geometry finds these exchanges for each pair
(:func:`epiflow.calibration.relative_pose.frame_flips`); once all cameras are placed, this module
re-decides them with all cameras at once, pair of twin joints by pair: a camera's labels of a
pair at a frame are exchanged when the exchanged observations lie closer to the points
triangulated from the other cameras.
"""
from __future__ import annotations

import numpy as np
import torch

from epiflow.calibration.camera import CameraRig
from epiflow.calibration.triangulation import triangulate_linear

__all__ = ["apply_flips", "relabel_flips"]


def apply_flips(values: np.ndarray, flips: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Exchange left and right joints where ``flips`` says so.

    Args:
        values: (C, T, J, ...) per-camera, per-frame joint values (coordinates, masks...).
        flips: (T, C) bool (the whole body exchanged) or (T, C, J) bool (joint j takes the value
            of its twin ``perm[j]``; kept symmetric: ``flips[..., j] == flips[..., perm[j]]``).
        perm: (J,) left/right permutation.

    Returns:
        (C, T, J, ...) with the exchanged values.
    """
    f = np.moveaxis(flips, 1, 0)
    if f.ndim == 2:
        f = f[:, :, None]
    f = f.reshape(f.shape + (1,) * (values.ndim - 3))
    return np.where(f, values[:, :, perm], values)


def _loo_projections(rig: CameraRig, xy: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(C, T, J, 2): each camera's projection of the points triangulated from the others."""
    C, T, J, _ = xy.shape
    xn = rig.undistort(xy)
    Pm = torch.as_tensor(np.concatenate([rig.R, rig.t[:, :, None]], 2))
    out = np.full(xy.shape, np.nan)
    for c in range(C):
        others = [k for k in range(C) if k != c]
        X = triangulate_linear(Pm[others], torch.as_tensor(xn[others].reshape(C - 1, -1, 2)),
                               torch.as_tensor(valid[others].reshape(C - 1, -1).astype(float)))
        out[c] = rig.subset([c]).project(X.numpy().reshape(T, J, 3))[0]
    return out


def relabel_flips(rig: CameraRig, xy: np.ndarray, valid: np.ndarray, flips: np.ndarray,
                  perm: np.ndarray, min_error_px: float = 5.0,
                  max_rounds: int = 2) -> np.ndarray:
    """Re-decide, per camera, frame and left/right joint pair, whether the labels are exchanged.

    Detectors mirror a whole person, but also half of one (the arms of a person seen from
    behind, not the legs: seen on the Pose2Sim demo), so each pair of twin joints is decided
    on its own: exchanged when the exchanged observations lie closer to the points
    triangulated from the other cameras (their summed error at least 1.5 times smaller, and the
    plain error above ``min_error_px``). Each round changes, per frame and pair, the one camera
    that gains most; rounds stop when nothing changes.

    Args:
        rig: calibrated cameras (C). xy: (C, T, J, 2) pixels, as detected. valid: (C, T, J)
            bool. flips: (T, C) or (T, C, J) bool, the current exchanges. perm: (J,) left/right
            permutation.
        max_rounds: at most this many rounds.

    Returns:
        (T, C, J) bool, the new exchanges (relative to the detections).
    """
    C, T, J = valid.shape
    flips = np.broadcast_to(flips[..., None], (T, C, J)).copy() if flips.ndim == 2 \
        else flips.copy()
    twins = np.nonzero(perm != np.arange(J))[0]
    twins = twins[twins < perm[twins]]  # one index per pair
    flips[..., np.setdiff1d(np.arange(J), twins)] = False
    flips[..., perm[twins]] = flips[..., twins]
    for _ in range(max_rounds):
        x, v = apply_flips(xy, flips, perm), apply_flips(valid, flips, perm)
        proj = _loo_projections(rig, x, v)
        plain = np.linalg.norm(proj - x, axis=-1)  # (C, T, J)
        swapped = np.linalg.norm(proj - x[:, :, perm], axis=-1)
        a, b = twins, perm[twins]
        ok = v[..., a] & v[..., b] & np.isfinite(plain[..., a] + plain[..., b] + swapped[..., a]
                                                 + swapped[..., b])
        e_plain = np.where(ok, plain[..., a] + plain[..., b], 0)
        e_swap = np.where(ok, swapped[..., a] + swapped[..., b], np.inf)
        gain = np.where((1.5 * e_swap < e_plain) & (e_plain > 2 * min_error_px),
                        e_plain - e_swap, 0.0)  # (C, T, P)
        best = gain.argmax(0)  # (T, P)
        change = np.take_along_axis(gain, best[None], 0)[0] > 0
        if not change.any():
            break
        t_idx, p_idx = np.nonzero(change)
        c_idx = best[t_idx, p_idx]
        flips[t_idx, c_idx, a[p_idx]] ^= True
        flips[t_idx, c_idx, b[p_idx]] ^= True
    return flips
