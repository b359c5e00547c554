"""Adapting a lifter's prediction to the video being predicted, without labels (issue 14).

Only the 2D of that video is used:

- **left/right swaps** (:func:`fix_swaps`): a monocular detector sometimes takes the person for
  facing the other way for a stretch of frames (MediaPipe does in 30 of the 100 frames of the
  Pose2Sim demo's cam02); the stretch is found by temporal consistency and relabelled;
- **global position alignment** (:func:`align_positions`, after PoseDA's GPA): the training data
  sees the person near the optical axis; a person filmed off centre (a phone held low, a person
  at the edge of a wide lens) is seen at another angle. A pure camera rotation maps rays to rays,
  so the sequence's rays are rotated (about the camera centre) until the person's median root ray
  is the optical axis, lifted there, and the prediction is rotated back: the same geometry, the
  training data's position distribution;
- **uncertainty** (:func:`predict_with_uncertainty`): the model's per-joint spread over
  Monte-Carlo dropout passes (its own ``predict_with_uncertainty`` when it has one, e.g. a
  multi-hypothesis lifter), metres;
- **test-time optimisation** (:func:`optimise_sequence`, after UAO): the sequence's 3D poses are
  refined to reproject onto the 2D (confidence-weighted, robust), to keep every bone at one length
  over the video and to move smoothly, while a prior keeps each joint near the model's prediction
  with a weight of 1 / its uncertainty²: confident joints stay, uncertain ones follow the 2D.

:func:`adapt_sequence` runs the three; :mod:`epiflow.models.predict` calls it unless told not to.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from epiflow.models.data import normalize_keypoints
from epiflow.models.level import level_rotation, rotate_rays
from epiflow.models.lifters import window_indices
from epiflow.models.losses import root_translation
from epiflow.skeleton import get_joint_set

__all__ = ["AdaptConfig", "fix_swaps", "centre_rotation", "rotate_rays", "align_positions",
           "model_frame",
           "predict_with_uncertainty", "run_windows", "optimise_sequence", "adapt_sequence",
           "model_input",
           "bone_lengths"]


@dataclass(frozen=True)
class AdaptConfig:
    """What :func:`adapt_sequence` does.

    Attributes:
        swaps: undo the detector's whole-body left/right swaps (:func:`fix_swaps`).
        align: global position alignment (rotate the rays to put the person on the axis).
        samples: Monte-Carlo dropout passes for the per-joint uncertainty (0: none, every
            joint then gets the floor ``min_sigma_m``).
        steps: test-time optimisation steps (0: none).
        reprojection, bone, smooth, prior: weights of the TTO terms (:func:`optimise_sequence`).
        sigma_2d: expected 2D error, in units of the person's 2D size.
        bone_sigma: expected relative spread of a bone's length over time.
        accel_sigma: expected joint acceleration, m/s² (45 m/s²: 5 cm/frame² at 30 fps).
        min_sigma_m: floor of the per-joint uncertainty, metres.
        lr: the optimiser's step, metres.
    """

    swaps: bool = True
    align: bool = True
    samples: int = 16
    steps: int = 150
    reprojection: float = 1.0
    bone: float = 1.0
    smooth: float = 1.0
    prior: float = 1.0
    sigma_2d: float = 0.03
    bone_sigma: float = 0.02
    accel_sigma: float = 45.0
    min_sigma_m: float = 0.02
    lr: float = 0.005


def _pan(ray: np.ndarray) -> np.ndarray:
    """(3, 3) the turn about the camera's y axis that takes ``ray`` (3,) into the y-z plane."""
    angle = np.arctan2(ray[0], ray[2])
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])


def centre_rotation(ray: np.ndarray) -> np.ndarray:
    """(3, 3) rotation R with ``R @ ray`` on the optical axis (0, 0, +z): a pan about the camera's
    y axis, then a tilt about its x axis (the image's horizon stays horizontal).

    Args:
        ray: (3,) a direction in the camera frame with z > 0.
    """
    ray = np.asarray(ray, np.float64) / np.linalg.norm(ray)
    Ry = _pan(ray)                                                   # takes x to 0
    r1 = Ry @ ray
    tilt = np.arctan2(r1[1], r1[2])
    c, s = np.cos(tilt), np.sin(tilt)
    Rx = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])               # takes y to 0
    return Rx @ Ry


def align_positions(uv: np.ndarray, root: int) -> tuple[np.ndarray, np.ndarray]:
    """The sequence's rays rotated so that the median root ray is the optical axis.

    Args:
        uv: (T, J, 2) undistorted normalised image coordinates; NaN = missing.

    Returns:
        (T, J, 2) the rotated coordinates and R (3, 3): a pose P predicted from them is
        ``P @ R`` (= R^T P) in the real camera's frame.
    """
    seen = np.isfinite(uv[:, root]).all(-1)
    if not seen.any():
        return uv, np.eye(3)
    u, v = np.median(uv[seen, root], axis=0)
    R = centre_rotation(np.array([u, v, 1.0]))
    return rotate_rays(uv, R), R


def fix_swaps(uv: np.ndarray, conf: np.ndarray, joint_set: str = "h36m17"
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undo a monocular detector's whole-body left/right swaps (it took the person for facing the
    other way) by temporal consistency.

    Two states per frame, the labels as detected or mirrored (every left joint exchanged with its
    right twin); a Viterbi pass picks the state sequence whose consecutive frames agree best (the
    cost of a step is the mean distance between the two frames' labelled joints, in units of the
    person's 2D size; a swap is an abrupt jump of every left joint to its twin, a person turning
    round moves the joints smoothly). Only the relative labelling is known this way, and only
    along a chain of steps that compare a left/right pair (:func:`_swap_steps`): where a step
    compares none (nobody seen, a person partly seen at the image's edge), the labels after it
    are unrelated to those before. So the sequence is cut there and, in each piece, the state
    most of its frames are in is taken as right.

    Args:
        uv: (T, J, 2) image coordinates (any units); NaN = missing. conf: (T, J).

    Returns:
        (T, J, 2) and (T, J) relabelled, and (T,) bool the frames that were mirrored.
    """
    flip = get_joint_set(joint_set).flip_permutation
    T = len(uv)
    if T < 2:
        return uv, conf, np.zeros(T, bool)
    cost, linked = _swap_steps(uv, flip)
    total, back = np.zeros(2), np.zeros((T, 2), int)
    for t in range(1, T):
        c = total[:, None] + cost[t]
        back[t] = np.argmin(c, 0)
        total = c[back[t], [0, 1]]
    state = np.zeros(T, int)
    state[-1] = int(np.argmin(total))
    for t in range(T - 1, 0, -1):
        state[t - 1] = back[t, state[t]]
    piece = np.cumsum(~linked) - 1                    # (T,) the piece of each frame, from 0
    majority = np.bincount(piece, weights=state) > np.bincount(piece) / 2
    mirrored = state.astype(bool) ^ majority[piece]   # per piece at once: linear in T
    out_uv, out_conf = uv.copy(), conf.copy()
    out_uv[mirrored] = uv[mirrored][:, flip]
    out_conf[mirrored] = conf[mirrored][:, flip]
    return out_uv, out_conf, mirrored


def _swap_steps(uv: np.ndarray, flip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Viterbi costs of :func:`fix_swaps` and where they tell the labelling.

    A step t-1 -> t compares the same joints under all four state pairs: the joints seen in both
    frames whose twin is seen in both too (else a mirrored state would be compared on fewer
    joints, or on none and so for free, than the detected one). Only a left/right pair among them
    tells a swap from no swap; central joints cost the same in every state.

    Args:
        uv: (T, J, 2) image coordinates; NaN = missing. flip: (J,) each joint's twin.

    Returns:
        (T, 2, 2) cost from state a at t-1 to state b at t (row 0 zeros), in units of the
        person's 2D size (RMS distance of the joints from the root), and (T,) bool:
        step t compares a left/right pair (False for t = 0).
    """
    T = len(uv)
    seen = np.isfinite(uv).all(-1)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames with nobody: NaN, handled below
        rel = uv - uv[:, :1]
        size = np.sqrt(np.nanmean(np.square(rel).sum(-1), -1))              # (T,)
        size = np.where(np.isfinite(size) & (size > 0), size, np.nanmedian(size))
    size = np.where(np.isfinite(size) & (size > 0), size, 1.0)             # root never seen
    both = np.stack([uv, uv[:, flip]], 1)                                   # (T, 2, J, 2)
    pair_seen = seen & seen[:, flip]                                        # (T, J)
    cost, linked = np.zeros((T, 2, 2)), np.zeros(T, bool)
    sided = flip != np.arange(len(flip))
    for t in range(1, T):
        common = pair_seen[t] & pair_seen[t - 1]
        linked[t] = (common & sided).any()
        if not linked[t]:
            continue
        d = np.linalg.norm(both[t][None, :, common] - both[t - 1][:, None, common], axis=-1)
        cost[t] = d.mean(-1) / size[t]
    return cost, linked


def _dropout_on(model: nn.Module) -> list[nn.Module]:
    drops = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    for m in drops:
        m.train()
    return drops


@torch.no_grad()
def predict_with_uncertainty(model: nn.Module, x: np.ndarray, samples: int = 16,
                             seed: int = 0, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A lifter's prediction and per-joint uncertainty on a sequence.

    Args:
        x: (T, J, 2) the normalised lifter input (:func:`normalize_keypoints`).
        samples: Monte-Carlo dropout passes (a model with its own ``predict_with_uncertainty(x)``
            answers itself).
        stride: frames between a window's frames (:func:`~epiflow.models.lifters.frame_stride`).

    Returns:
        (T, J, 3) prediction (the deterministic pass), metres, and (T, J) uncertainty: the RMS
        distance of the passes from their mean, metres (zeros when the model has no dropout).
    """
    if hasattr(model, "predict_with_uncertainty"):
        return model.predict_with_uncertainty(x, stride=stride)
    model.eval()
    pred = run_windows(model, x, stride=stride)
    if samples <= 0:
        return pred, np.zeros(pred.shape[:2], np.float32)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model.eval()
        drops = _dropout_on(model)
        if not drops:
            return pred, np.zeros(pred.shape[:2], np.float32)
        runs = np.stack([run_windows(model, x, stride=stride) for _ in range(samples)])
    finally:
        model.eval()
        torch.random.set_rng_state(state)
    spread = np.sqrt(np.square(runs - runs.mean(0)).sum(-1).mean(0))
    return pred, spread.astype(np.float32)


@torch.no_grad()
def run_windows(model: nn.Module, x: np.ndarray, batch_size: int = 2048, stride: int = 1
                ) -> np.ndarray:
    """A lifter over a sequence, each frame with its window of ``model.input_window`` frames,
    every ``stride``-th (edges repeat the end frames), in the model's current mode (dropout on
    when training).

    Args:
        x: (T, J, 2) normalised lifter input.

    Returns:
        (T, J, 3) float32 root-relative metres.
    """
    device = next(model.parameters()).device
    T = len(x)
    idx = window_indices(T, model.input_window, stride)
    out = []
    for start in range(0, T, batch_size):
        windows = torch.from_numpy(np.ascontiguousarray(x[idx[start:start + batch_size]]))
        out.append(model(windows.to(device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.n_joints, 3), np.float32)


def bone_lengths(points, joint_set: str = "h36m17"):
    """(..., B) the lengths of the kinematic tree's bones of (..., J, 3) poses (numpy or torch)."""
    bones = np.array(get_joint_set(joint_set).bones)
    d = points[..., bones[:, 1], :] - points[..., bones[:, 0], :]
    if isinstance(d, torch.Tensor):
        return d.square().sum(-1).add(1e-12).sqrt()
    return np.linalg.norm(d, axis=-1)


@torch.enable_grad()
def optimise_sequence(pred: np.ndarray, sigma: np.ndarray, uv: np.ndarray, conf: np.ndarray,
                       joint_set: str = "h36m17", cfg: AdaptConfig = AdaptConfig(),
                       fps: float = 30.0) -> np.ndarray:
    """Refine a predicted sequence against its own 2D (module docstring, after UAO).

    Minimises, over root-relative poses P (T, J, 3) and root positions t (T, 3), the sum of
    four terms, each a mean of squared residuals over their expected size:

    - reprojection: ``c · huber(|π(P + t) - uv| / (s · sigma_2d))`` with s the person's 2D size
      (RMS spread of the joints about the root) and c the 2D confidence;
    - bone: the variance over time of each bone's length relative to its mean, over
      ``bone_sigma²``;
    - smooth: the squared acceleration of the joints (m/s², at ``fps``) over ``accel_sigma²``;
    - prior: ``|P - P0|² / σ²`` with σ the per-joint uncertainty (floored at ``min_sigma_m``).

    Args:
        pred: (T, J, 3) the model's root-relative prediction P0, metres, camera frame; frames
            with NaN are left as they are.
        sigma: (T, J) its uncertainty, metres. uv: (T, J, 2) undistorted normalised image
            coordinates (NaN = missing). conf: (T, J) 2D confidences.

    Returns:
        (T, J, 3) the refined poses, root-relative (root at 0).
    """
    if cfg.steps <= 0:
        return pred
    js = get_joint_set(joint_set)
    root = js.parents.index(-1)
    ok = np.isfinite(pred).all((1, 2)) & np.isfinite(uv[:, root]).all(-1)
    if ok.sum() < 1:
        return pred
    P0 = torch.from_numpy(pred[ok].astype(np.float64))
    obs = torch.from_numpy(np.nan_to_num(uv[ok]).astype(np.float64))
    w = torch.from_numpy(np.where(np.isfinite(uv[ok]).all(-1), np.nan_to_num(conf[ok]), 0.0))
    sig = torch.from_numpy(np.maximum(np.nan_to_num(sigma[ok], nan=1.0), cfg.min_sigma_m))
    rel = obs - obs[:, root:root + 1]
    size = (rel.square().sum(-1) * (w > 0)).sum(-1).div((w > 0).sum(-1).clamp_min(1)).sqrt()
    size = size.clamp_min(1e-4)[:, None]
    t0 = root_translation(P0, obs, w)
    t0[:, 2] = t0[:, 2].clamp_min(0.5)
    delta = torch.zeros_like(P0, requires_grad=True)
    t = t0.clone().requires_grad_(True)
    mask = torch.ones_like(P0[..., :1])
    mask[:, root] = 0
    opt = torch.optim.Adam([delta, t], lr=cfg.lr)
    for _ in range(cfg.steps):
        opt.zero_grad()
        P = P0 + delta * mask
        loss = _tto_loss(P, P0, t, obs, w, size, sig, js, cfg, fps)
        loss.backward()
        opt.step()
    out = np.array(pred, dtype=np.float64)
    out[ok] = (P0 + delta.detach() * mask).numpy()
    return out.astype(pred.dtype)


def _tto_loss(P, P0, t, obs, w, size, sig, js, cfg: AdaptConfig, fps: float) -> torch.Tensor:
    """Each term a mean of squared residuals over their expected size (so 1 is typical)."""
    cam = P + t[:, None]
    proj = cam[..., :2] / cam[..., 2:3].clamp_min(1e-3)
    err = (proj - obs).square().sum(-1).add(1e-12).sqrt() / size / cfg.sigma_2d
    reproj = (2 * nn.functional.huber_loss(err, torch.zeros_like(err), reduction="none",
                                           delta=3.0) * w).sum() / w.sum().clamp_min(1e-9)
    lengths = bone_lengths(P, js.name)                                  # (T, B)
    bone = (lengths.var(0, unbiased=False) / lengths.mean(0).square().clamp_min(1e-6)).mean() \
        / cfg.bone_sigma ** 2 if len(P) > 1 else P.new_zeros(())
    accel = (P[2:] - 2 * P[1:-1] + P[:-2]) * fps ** 2 if len(P) > 2 else P[:0]
    smooth = accel.square().sum(-1).mean() / cfg.accel_sigma ** 2 if len(P) > 2 \
        else P.new_zeros(())
    prior = ((P - P0).square().sum(-1) / sig.square()).mean()
    return (cfg.reprojection * reproj + cfg.bone * bone + cfg.smooth * smooth
            + cfg.prior * prior)


def model_frame(uv: np.ndarray, root: int, up: np.ndarray | None = None, align: bool = True
                ) -> tuple[np.ndarray, np.ndarray]:
    """The rays a lifter reads, and the rotation R (3, 3) from the camera to that frame (a pose P
    predicted there is ``P @ R`` in the camera's frame).

    ``up`` None (a model of the camera's frame): with ``align``, the global position alignment
    (:func:`align_positions`). ``up`` (3,) the scene's vertical in the camera's frame (a model of
    level cameras, ``data.level``): the level camera (:mod:`epiflow.models.level`), then, with
    ``align``, panned about the vertical to face the person (the elevation is kept: it is what
    tells the model how far above or below the person the camera is).

    Args:
        uv: (T, J, 2) undistorted normalised image coordinates; NaN = missing.
    """
    if up is None:
        return align_positions(uv, root) if align else (uv, np.eye(3))
    R = level_rotation(up)
    level = rotate_rays(uv, R)
    seen = np.isfinite(level[:, root]).all(-1)
    if align and seen.any():
        R = _pan(np.array([np.median(level[seen, root, 0]), 0.0, 1.0])) @ R
    return rotate_rays(uv, R), R


def adapt_sequence(model: nn.Module, uv: np.ndarray, conf: np.ndarray, joint_set: str,
                   cfg: AdaptConfig = AdaptConfig(), fps: float | None = None,
                   up: np.ndarray | None = None, stride: int = 1
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Predict a sequence with alignment, uncertainty and test-time optimisation.

    Args:
        uv: (T, J, 2) undistorted normalised image coordinates of ``joint_set``; NaN = missing.
        conf: (T, J) 2D confidences. fps: the video's frame rate (None: 30).
        up: (3,) the scene's vertical in the camera's frame, for a model of level cameras
            (:func:`model_frame`); None for a model of the camera's own frame.
        stride: frames between a window's frames (the footage's rate over the training's).

    Returns:
        (T, J, 3) root-relative metres in the camera's frame (NaN where the root is not seen) and
        (T, J) the model's per-joint uncertainty, metres.
    """
    root = get_joint_set(joint_set).parents.index(-1)
    seen = np.isfinite(uv[:, root]).all(-1) & (conf[:, root] > 0)
    uv_in, R, uv, conf = model_input(uv, conf, joint_set, cfg, up)
    seen &= np.isfinite(uv_in[:, root]).all(-1)  # a root ray behind the level camera: unread
    pred, sigma = predict_with_uncertainty(model, normalize_keypoints(uv_in, root), cfg.samples,
                                           stride=stride)
    pred = (pred.astype(np.float64) @ R).astype(np.float32)                 # back to the camera
    pred[~seen] = np.nan
    return optimise_sequence(pred, sigma, uv, conf, joint_set, cfg, fps or 30.0), sigma


def model_input(uv: np.ndarray, conf: np.ndarray, joint_set: str,
                cfg: AdaptConfig = AdaptConfig(), up: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rays :func:`adapt_sequence` lifts: the detector's swaps undone (with ``cfg.swaps``),
    then turned into the model's frame (:func:`model_frame`); the lifter reads them through
    :func:`normalize_keypoints`.

    Args:
        uv: (T, J, 2) undistorted normalised image coordinates of ``joint_set``; NaN = missing.
        conf: (T, J) 2D confidences. up: as :func:`adapt_sequence`'s.

    Returns:
        (T, J, 2) the rays in the model's frame (NaN where a ray is behind the level camera),
        R (3, 3) camera -> model frame (a pose P predicted there is ``P @ R`` in the camera's
        frame), and the swap-fixed ``uv`` and ``conf``.
    """
    root = get_joint_set(joint_set).parents.index(-1)
    if cfg.swaps:
        uv, conf, _ = fix_swaps(uv, conf, joint_set)
    uv_in, R = model_frame(uv, root, up, cfg.align)
    return uv_in, R, uv, conf
