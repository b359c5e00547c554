"""2D-to-3D lifters: a residual MLP (Martinez et al., 2017) and a spatio-temporal transformer.

A lifter maps one camera's normalised 2D keypoints to the root-relative 3D pose in that camera's
frame, metres (see :func:`epiflow.models.data.normalize_keypoints` for the input). Every model
reports what it needs: ``input_window`` (frames it reads, odd; the pose of the centre frame comes
out), ``n_joints`` and ``input_kind`` (``"keypoints"`` or ``"image"``).

Input ``(B, W, J, 2)`` (``(B, J, 2)`` is accepted when ``W == 1``); output ``(B, J, 3)``.

Example:
    >>> model = ResidualMLPLifter(MLPConfig(hidden=64, blocks=1), n_joints=17)
    >>> model(torch.zeros(8, 17, 2)).shape
    torch.Size([8, 17, 3])
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["window_indices", "frame_stride", "MLPConfig", "TransformerConfig", "ResidualMLPLifter",
           "TemporalTransformerLifter",
           "check_keypoint_input"]


@dataclass(frozen=True)
class MLPConfig:
    """Residual MLP lifter settings (Martinez et al. use hidden 1024, 2 blocks, dropout 0.5).

    ``window``: input frames (odd), flattened into one vector: 1 is Martinez et al.'s per-frame
    lifter; more gives the centre frame the motion around it (VideoPose3D's temporal context
    without its dilated convolutions), at the MLP's speed.
    """

    hidden: int = 1024
    blocks: int = 2
    dropout: float = 0.25
    window: int = 1

    def __post_init__(self):
        if self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"config key 'model.mlp.window' must be a positive odd number of "
                             f"frames; got {self.window!r}")


@dataclass(frozen=True)
class TransformerConfig:
    """Spatio-temporal transformer settings (MixSTE-like alternating attention; small by default).

    ``window`` is the number of input frames (odd); ``depth`` the number of spatial+temporal block
    pairs; ``dim`` the token width.
    """

    window: int = 27
    dim: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.1


def window_indices(n_frames: int, window: int, stride: int = 1) -> np.ndarray:
    """(T, W) the frames each frame of a sequence reads: ``window`` frames centred on it, every
    ``stride``-th (edges repeat the end frames)."""
    offsets = (np.arange(window) - window // 2) * max(1, int(stride))
    return np.clip(np.arange(n_frames)[:, None] + offsets, 0, max(n_frames - 1, 0))


def frame_stride(fps: float | None, train_fps: float | None) -> int:
    """Frames of footage at ``fps`` per frame of the training motion at ``train_fps`` (at least
    1): a window learned on 30 fps motion reads every 2nd frame of a 60 fps video, so that it
    spans the same time. 1 when either rate is unknown."""
    if not fps or not train_fps or fps <= 0 or train_fps <= 0:
        return 1
    return max(1, int(round(fps / train_fps)))


def check_keypoint_input(x: torch.Tensor, window: int, n_joints: int) -> torch.Tensor:
    """Check a lifter's input and return it as ``(B, W, J, 2)``.

    Args:
        x: (B, W, J, 2) or, when ``window == 1``, (B, J, 2) normalised 2D keypoints.
    """
    if x.ndim == 3 and window == 1:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1:] != (window, n_joints, 2):
        want = f"(B, {window}, {n_joints}, 2)" + (f" or (B, {n_joints}, 2)" if window == 1 else "")
        raise ValueError(f"lifter input must have shape {want}; got {tuple(x.shape)}")
    return x


class _ResidualBlock(nn.Module):
    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class ResidualMLPLifter(nn.Module):
    """Martinez et al.'s baseline: linear in, residual blocks of two linear layers, linear out.

    Reads ``W = config.window`` frames, ``(B, W, J, 2)`` (or ``(B, J, 2)`` when W is 1), and
    returns the centre frame's pose ``(B, J, 3)``, root-relative metres.
    """

    kind = "mlp"
    input_kind = "keypoints"

    def __init__(self, config: MLPConfig = MLPConfig(), n_joints: int = 17):
        super().__init__()
        self.config, self.n_joints, self.input_window = config, n_joints, config.window
        self.inp = nn.Sequential(nn.Linear(2 * n_joints * config.window, config.hidden),
                                 nn.BatchNorm1d(config.hidden), nn.ReLU(),
                                 nn.Dropout(config.dropout))
        self.blocks = nn.Sequential(*[_ResidualBlock(config.hidden, config.dropout)
                                      for _ in range(config.blocks)])
        self.out = nn.Linear(config.hidden, 3 * n_joints)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_keypoint_input(x, self.input_window, self.n_joints)
        y = self.out(self.blocks(self.inp(x.flatten(1))))
        return y.view(-1, self.n_joints, 3)


class _AttentionBlock(nn.Module):
    """Pre-norm self-attention + MLP over the second axis of ``(N, L, D)`` tokens."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(
            cfg.dim, cfg.heads, int(cfg.dim * cfg.mlp_ratio), cfg.dropout, activation="gelu",
            batch_first=True, norm_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class TemporalTransformerLifter(nn.Module):
    """Alternating spatial (joints of a frame) and temporal (one joint over frames) attention.

    In the spirit of MixSTE / MotionAGFormer, small by default. Reads ``(B, W, J, 2)`` with
    ``W = config.window`` and returns the centre frame's pose ``(B, J, 3)``, root-relative metres.
    """

    kind = "transformer"
    input_kind = "keypoints"

    def __init__(self, config: TransformerConfig = TransformerConfig(), n_joints: int = 17):
        super().__init__()
        if config.window < 1 or config.window % 2 == 0:
            raise ValueError(f"transformer window must be a positive odd number of frames; "
                             f"got {config.window}")
        if config.dim % config.heads:
            raise ValueError(f"transformer dim ({config.dim}) must be divisible by heads "
                             f"({config.heads})")
        self.config, self.n_joints, self.input_window = config, n_joints, config.window
        self.embed = nn.Linear(2, config.dim)
        self.joint_pos = nn.Parameter(torch.zeros(1, 1, n_joints, config.dim))
        self.time_pos = nn.Parameter(torch.zeros(1, config.window, 1, config.dim))
        nn.init.trunc_normal_(self.joint_pos, std=0.02)
        nn.init.trunc_normal_(self.time_pos, std=0.02)
        self.spatial = nn.ModuleList(_AttentionBlock(config) for _ in range(config.depth))
        self.temporal = nn.ModuleList(_AttentionBlock(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim)
        self.head = nn.Linear(config.dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_keypoint_input(x, self.input_window, self.n_joints)
        B, W, J, _ = x.shape
        h = self.embed(x) + self.joint_pos + self.time_pos  # (B, W, J, D)
        for spatial, temporal in zip(self.spatial, self.temporal):
            h = spatial(h.reshape(B * W, J, -1)).reshape(B, W, J, -1)
            h = temporal(h.transpose(1, 2).reshape(B * J, W, -1)).reshape(B, J, W, -1)
            h = h.transpose(1, 2)
        return self.head(self.norm(h[:, W // 2]))
