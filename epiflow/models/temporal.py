"""A temporal lifter with spatial-temporal attention and a skeleton-graph branch, in the spirit
of MotionAGFormer (Mehraban et al., 2024): our own small design, not a port.

Each block runs two streams side by side on ``(B, W, J, D)`` tokens (W frames, J joints) and
fuses them with learned per-token weights (MotionAGFormer's adaptive fusion):

- **attention**: self-attention over the joints of each frame (spatial), then over the frames of
  each joint (temporal);
- **graph** (``graph = true``): a graph convolution over the skeleton's bones (the joint set's
  kinematic tree, self-loops, symmetric normalisation), then a depth-wise convolution over
  neighbouring frames (kernel 3), each with a residual and an MLP.

``causal = true`` masks the temporal attention and pads the temporal convolution on one side so
that frame t sees frames <= t only: the centre frame's pose then depends on the window's first
half and the centre, never on later frames (online use; the later half is read but has no
effect). The model returns the centre frame's pose, which is how the dataset and ``predict``
place a window around each frame (:class:`epiflow.models.data.PoseDataset`).

Sized for a CPU by the recipes (``configs/cmu_selfsup_temporal.toml``: window 9, width 32,
depth 2); MotionAGFormer's own sizes (window 243, width 128, depth 16) are a config away on a
GPU.

Example:
    >>> model = TemporalLifter(TemporalConfig(window=9, dim=32, depth=1), n_joints=17)
    >>> model(torch.zeros(4, 9, 17, 2)).shape
    torch.Size([4, 17, 3])
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from epiflow.config import ConfigError, check_limits, limits
from epiflow.models.lifters import check_keypoint_input
from epiflow.skeleton import JOINT_SETS, get_joint_set

__all__ = ["TemporalConfig", "TemporalLifter", "skeleton_adjacency", "tree_joint_set"]


@dataclass(frozen=True)
class TemporalConfig:
    """Settings of :class:`TemporalLifter` (section ``[model.temporal]``).

    ``window``: input frames (odd); ``dim``: token width (a multiple of ``heads``); ``depth``:
    blocks; ``mlp_ratio``: MLP width / ``dim``; ``graph``: the skeleton-graph stream beside the
    attention stream; ``causal``: the centre frame sees no later frame.
    """

    window: int = field(default=27, metadata=limits(ge=1))
    dim: int = field(default=64, metadata=limits(ge=4))
    depth: int = field(default=2, metadata=limits(ge=1))
    heads: int = field(default=4, metadata=limits(ge=1))
    mlp_ratio: float = field(default=2.0, metadata=limits(gt=0))
    dropout: float = field(default=0.0, metadata=limits(ge=0, le=0.9))
    graph: bool = True
    causal: bool = False

    def __post_init__(self):
        check_limits(self, "model.temporal")
        if self.window % 2 == 0:
            raise ConfigError(f"config key 'model.temporal.window': expected an odd number of "
                              f"frames (the pose of the centre frame comes out), got "
                              f"{self.window}; use {self.window + 1}")
        if self.dim % self.heads:
            raise ConfigError(f"config key 'model.temporal.dim' ({self.dim}) must be a multiple "
                              f"of 'model.temporal.heads' ({self.heads})")


def tree_joint_set(n_joints: int) -> str:
    """The joint set with a kinematic tree and ``n_joints`` joints (``h36m17`` or ``cmu31``):
    the lifters train root-relative, which needs a tree, and each tree has its own size.

    Raises:
        ValueError when no joint set with a tree has that many joints.
    """
    names = [n for n in JOINT_SETS if get_joint_set(n).parents is not None
             and len(get_joint_set(n)) == n_joints]
    if len(names) != 1:
        trees = {n: len(get_joint_set(n)) for n in JOINT_SETS if get_joint_set(n).parents}
        raise ValueError(f"no single joint set with a kinematic tree has {n_joints} joints "
                         f"(trees: {trees}); the lifters train on one of those")
    return names[0]


def skeleton_adjacency(n_joints: int) -> torch.Tensor:
    """(J, J) symmetric-normalised adjacency of the skeleton with self-loops,
    D^-1/2 (A + I) D^-1/2 (Kipf and Welling), of the tree joint set of ``n_joints`` joints."""
    js = get_joint_set(tree_joint_set(n_joints))
    a = torch.eye(n_joints)
    for parent, child in js.bones:
        a[parent, child] = a[child, parent] = 1.0
    d = a.sum(1).rsqrt()
    return d[:, None] * a * d[None, :]


class _Mlp(nn.Module):
    def __init__(self, dim: int, ratio: float, dropout: float):
        super().__init__()
        hidden = max(int(dim * ratio), 1)
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class _Attention(nn.Module):
    """Pre-norm multi-head self-attention with a residual and an MLP, over axis 1 of
    ``(N, L, D)``; ``mask`` (L, L) bool, True = not attended."""

    def __init__(self, cfg: TemporalConfig):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.dim)
        self.attn = nn.MultiheadAttention(cfg.dim, cfg.heads, dropout=cfg.dropout,
                                          batch_first=True)
        self.mlp = _Mlp(cfg.dim, cfg.mlp_ratio, cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return self.mlp(x)


class _AttentionStream(nn.Module):
    """Spatial attention (joints of a frame), then temporal attention (frames of a joint)."""

    def __init__(self, cfg: TemporalConfig):
        super().__init__()
        self.spatial, self.temporal = _Attention(cfg), _Attention(cfg)
        mask = torch.triu(torch.ones(cfg.window, cfg.window, dtype=torch.bool), 1)
        self.register_buffer("mask", mask if cfg.causal else None, persistent=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        B, W, J, D = h.shape
        h = self.spatial(h.reshape(B * W, J, D)).reshape(B, W, J, D)
        h = self.temporal(h.transpose(1, 2).reshape(B * J, W, D), self.mask)
        return h.reshape(B, J, W, D).transpose(1, 2)


class _GraphStream(nn.Module):
    """Graph convolution over the skeleton, then a depth-wise convolution over 3 frames
    (the frame and the one before and after; the two before when causal)."""

    def __init__(self, cfg: TemporalConfig, n_joints: int):
        super().__init__()
        self.register_buffer("adjacency", skeleton_adjacency(n_joints), persistent=False)
        self.norm_s, self.norm_t = nn.LayerNorm(cfg.dim), nn.LayerNorm(cfg.dim)
        self.gcn = nn.Linear(cfg.dim, cfg.dim)
        self.tconv = nn.Conv1d(cfg.dim, cfg.dim, 3, groups=cfg.dim)
        self.pad = (2, 0) if cfg.causal else (1, 1)
        self.mlp_s = _Mlp(cfg.dim, cfg.mlp_ratio, cfg.dropout)
        self.mlp_t = _Mlp(cfg.dim, cfg.mlp_ratio, cfg.dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        B, W, J, D = h.shape
        g = torch.einsum("ij,bwjd->bwid", self.adjacency, self.gcn(self.norm_s(h)))
        h = self.mlp_s(h + torch.nn.functional.gelu(g))
        t = self.norm_t(h).permute(0, 2, 3, 1).reshape(B * J, D, W)        # (BJ, D, W)
        t = self.tconv(nn.functional.pad(t, self.pad, mode="replicate"))
        t = t.reshape(B, J, D, W).permute(0, 3, 1, 2)
        return self.mlp_t(h + torch.nn.functional.gelu(t))


class _Block(nn.Module):
    """The two streams and their adaptive fusion: softmax weights per token from both outputs."""

    def __init__(self, cfg: TemporalConfig, n_joints: int):
        super().__init__()
        self.attention = _AttentionStream(cfg)
        self.graph = _GraphStream(cfg, n_joints) if cfg.graph else None
        self.fuse = nn.Linear(2 * cfg.dim, 2) if cfg.graph else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a = self.attention(h)
        if self.graph is None:
            return a
        g = self.graph(h)
        alpha = self.fuse(torch.cat([a, g], -1)).softmax(-1)
        return alpha[..., :1] * a + alpha[..., 1:] * g


class TemporalLifter(nn.Module):
    """The spatial-temporal attention + graph lifter (module docstring).

    Reads ``(B, W, J, 2)`` normalised 2D (:func:`epiflow.models.data.normalize_keypoints`),
    ``W = config.window`` frames centred on the frame to lift; returns that frame's pose
    ``(B, J, 3)``, root-relative metres in the camera's frame.
    """

    kind = "temporal"
    input_kind = "keypoints"

    def __init__(self, config: TemporalConfig = TemporalConfig(), n_joints: int = 17):
        super().__init__()
        self.config, self.n_joints, self.input_window = config, n_joints, config.window
        self.embed = nn.Linear(2, config.dim)
        self.joint_pos = nn.Parameter(torch.zeros(1, 1, n_joints, config.dim))
        self.time_pos = nn.Parameter(torch.zeros(1, config.window, 1, config.dim))
        nn.init.trunc_normal_(self.joint_pos, std=0.02)
        nn.init.trunc_normal_(self.time_pos, std=0.02)
        self.blocks = nn.ModuleList(_Block(config, n_joints) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim)
        self.head = nn.Linear(config.dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_keypoint_input(x, self.input_window, self.n_joints)
        h = self.embed(x) + self.joint_pos + self.time_pos                   # (B, W, J, D)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h[:, self.input_window // 2]))
