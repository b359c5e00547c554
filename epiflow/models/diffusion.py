"""A multi-hypothesis diffusion lifter (D3DP, Shan et al., 2023) with joint-wise
reprojection-based aggregation (JPMA) and a per-joint uncertainty.

Training: a label pose ``y`` (root-relative metres, scaled by :data:`POSE_SCALE`) is noised to a
random step t of a cosine schedule (``timesteps`` steps), ``x_t = sqrt(a_t) y + sqrt(1 - a_t) e``,
and the denoiser predicts the clean pose from ``x_t``, t and the 2D input; the prediction is
what the training losses see (the pseudo-label loss with the labels' per-joint weights, the
reprojection and symmetry terms alike), so the lifter trains from pseudo-labels like the others.
The trainer hands the label to :meth:`DiffusionLifter.forward` as ``target`` in training mode.

Inference: ``hypotheses`` poses are drawn from Gaussian noise and denoised in ``steps`` DDIM
steps (deterministic after the first draw; the draw is seeded, so a prediction is repeatable).
JPMA then picks, for every joint, the hypothesis whose reprojection lies nearest the 2D input:
each hypothesis is placed in front of the camera by the translation that reprojects it best
(:func:`~epiflow.models.losses.root_translation`) and projected. The 2D comes from the lifter's
normalised input (:func:`epiflow.models.data.normalize_keypoints`: the root's image position and
the other joints' offsets divided by their spread), rebuilt at a nominal spread of
:data:`NOMINAL_SPREAD` (a person about 4.5 m away); the pinhole projection of a root-relative
pose is nearly invariant to that choice (it changes only the depth the fit finds).

Uncertainty: per joint, the spread of the hypotheses (per-axis standard deviation about their
mean, metres) and a bound that the error should stay under with probability ``bound``, taken as
an isotropic Gaussian's (``sqrt(chi2_3(bound))`` spreads) times ``bound_scale`` (1 until
:meth:`DiffusionLifter.calibrate_bound` fits it on labelled frames, e.g. validation
pseudo-labels).

Example:
    >>> model = DiffusionLifter(DiffusionConfig(dim=32, depth=1, hypotheses=3), n_joints=17)
    >>> out = model.eval().sample(torch.zeros(2, 1, 17, 2))
    >>> out.hypotheses.shape, out.pose.shape, out.bound.shape
    (torch.Size([2, 3, 17, 3]), torch.Size([2, 17, 3]), torch.Size([2, 17]))
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from epiflow.config import ConfigError, check_limits, limits
from epiflow.models.lifters import check_keypoint_input, window_indices
from epiflow.models.losses import root_translation
from epiflow.models.temporal import tree_joint_set
from epiflow.skeleton import get_joint_set

__all__ = ["DiffusionConfig", "DiffusionLifter", "DiffusionOutput", "cosine_alpha_bar", "jpma",
           "uv_from_input", "POSE_SCALE", "NOMINAL_SPREAD"]

#: Metres -> diffusion units: root-relative poses (RMS about 0.45 m) to about unit spread.
POSE_SCALE = 2.0
#: The 2D spread (normalised image units) at which JPMA rebuilds image coordinates from the input.
NOMINAL_SPREAD = 0.1


@dataclass(frozen=True)
class DiffusionConfig:
    """Settings of :class:`DiffusionLifter` (section ``[model.diffusion]``).

    ``window``: 2D input frames (odd; their trajectories condition the centre frame's pose);
    ``dim``, ``depth``, ``heads``, ``mlp_ratio``, ``dropout``: the denoiser (a transformer over
    the joints); ``timesteps``: the noise schedule's length; ``steps``: DDIM steps at inference;
    ``hypotheses``: poses drawn per input; ``aggregation``: ``jpma`` (per joint, the hypothesis
    that reprojects nearest the 2D) or ``mean``; ``bound``: the probability of the per-joint
    bound reported; ``seed``: the inference draws' seed.
    """

    window: int = field(default=1, metadata=limits(ge=1))
    dim: int = field(default=64, metadata=limits(ge=4))
    depth: int = field(default=3, metadata=limits(ge=1))
    heads: int = field(default=4, metadata=limits(ge=1))
    mlp_ratio: float = field(default=2.0, metadata=limits(gt=0))
    dropout: float = field(default=0.0, metadata=limits(ge=0, le=0.9))
    timesteps: int = field(default=1000, metadata=limits(ge=2))
    steps: int = field(default=5, metadata=limits(ge=1))
    hypotheses: int = field(default=5, metadata=limits(ge=1))
    aggregation: Literal["jpma", "mean"] = "jpma"
    bound: float = field(default=0.9, metadata=limits(gt=0, le=0.999))
    seed: int = 0

    def __post_init__(self):
        check_limits(self, "model.diffusion")
        if self.window % 2 == 0:
            raise ConfigError(f"config key 'model.diffusion.window': expected an odd number of "
                              f"frames, got {self.window}; use {self.window + 1}")
        if self.dim % self.heads:
            raise ConfigError(f"config key 'model.diffusion.dim' ({self.dim}) must be a multiple "
                              f"of 'model.diffusion.heads' ({self.heads})")
        if self.steps > self.timesteps:
            raise ConfigError(f"config key 'model.diffusion.steps' ({self.steps}) must be at most "
                              f"'model.diffusion.timesteps' ({self.timesteps})")


@dataclass(frozen=True)
class DiffusionOutput:
    """What :meth:`DiffusionLifter.sample` gives, all root-relative metres in the camera frame:
    ``hypotheses (B, H, J, 3)``, ``pose (B, J, 3)`` (the configured aggregation), ``jpma (B, J,
    3)``, ``mean (B, J, 3)``, ``sigma (B, J)`` (per-axis spread of the hypotheses), ``bound (B,
    J)`` (the error bound at probability ``config.bound``), ``choice (B, J)`` (JPMA's
    hypothesis per joint)."""

    hypotheses: torch.Tensor
    pose: torch.Tensor
    jpma: torch.Tensor
    mean: torch.Tensor
    sigma: torch.Tensor
    bound: torch.Tensor
    choice: torch.Tensor


def cosine_alpha_bar(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """(timesteps,) cumulative signal fraction a_t of the cosine schedule (Nichol and Dhariwal),
    from nearly 1 at t = 0 to nearly 0 at the last step."""
    t = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return (f[1:] / f[0]).clamp(1e-5, 0.9999).float()


def uv_from_input(x: torch.Tensor, root: int, spread: float = NOMINAL_SPREAD
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Image coordinates rebuilt from one frame's normalised lifter input, and which joints
    were seen.

    Args:
        x: (B, J, 2) :func:`~epiflow.models.data.normalize_keypoints` output (the root's slot
            holds its image position; missing joints are exactly 0).

    Returns:
        uv (B, J, 2) normalised image coordinates at a 2D spread of ``spread``; seen (B, J)
        float, 0 for joints that were missing.
    """
    base = x[:, root:root + 1]
    uv = base + spread * x
    uv[:, root] = x[:, root]
    seen = (x != 0).any(-1).float()
    seen[:, root] = 1.0
    return uv, seen


def jpma(hypotheses: torch.Tensor, uv: torch.Tensor, seen: torch.Tensor
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Joint-wise reprojection-based multi-hypothesis aggregation (D3DP's JPMA).

    Each hypothesis is translated so that it reprojects best onto ``uv`` (weighted by ``seen``)
    and projected; for every joint the hypothesis with the smallest reprojection error is taken.
    A joint not seen in 2D takes the hypotheses' mean.

    Args:
        hypotheses: (B, H, J, 3) root-relative poses, metres, camera frame.
        uv: (B, J, 2) the 2D input, normalised image coordinates. seen: (B, J) 1/0.

    Returns:
        pose (B, J, 3) and choice (B, J) int64 (the hypothesis index per joint).
    """
    B, H, J, _ = hypotheses.shape
    flat = hypotheses.reshape(B * H, J, 3).float()
    uv_h = uv[:, None].expand(B, H, J, 2).reshape(B * H, J, 2).float()
    w_h = seen[:, None].expand(B, H, J).reshape(B * H, J).float()
    cam = flat + root_translation(flat, uv_h, w_h)[:, None]
    proj = cam[..., :2] / cam[..., 2:3].clamp_min(1e-3)
    error = (proj - uv_h).norm(dim=-1).view(B, H, J)
    choice = error.argmin(1)                                                   # (B, J)
    pose = hypotheses.gather(1, choice[:, None, :, None].expand(B, 1, J, 3))[:, 0]
    pose = torch.where(seen[..., None] > 0, pose, hypotheses.mean(1))
    return pose, choice


def _time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) integer steps -> (B, dim) sinusoidal features."""
    half = dim // 2
    freq = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / max(half, 1))
    angle = t.float()[:, None] * freq[None]
    emb = torch.cat([angle.sin(), angle.cos()], -1)
    return nn.functional.pad(emb, (0, dim - emb.shape[-1]))


class _Denoiser(nn.Module):
    """Clean pose (B, J, 3) from a noisy one (B, J, 3), its step t (B,) and the 2D (B, W, J, 2):
    a token per joint (its noisy 3D, its 2D trajectory, the whole 2D pose through an MLP, the
    step) through a transformer over the joints."""

    def __init__(self, cfg: DiffusionConfig, n_joints: int):
        super().__init__()
        self.dim = cfg.dim
        self.cond = nn.Linear(2 * cfg.window, cfg.dim)
        width = 2 * cfg.window * n_joints
        self.pose_cond = nn.Sequential(nn.Linear(width, 4 * cfg.dim), nn.GELU(),
                                       nn.Linear(4 * cfg.dim, cfg.dim))
        self.noisy = nn.Linear(3, cfg.dim)
        self.time = nn.Sequential(nn.Linear(cfg.dim, cfg.dim), nn.GELU(),
                                  nn.Linear(cfg.dim, cfg.dim))
        self.joint_pos = nn.Parameter(torch.zeros(1, n_joints, cfg.dim))
        nn.init.trunc_normal_(self.joint_pos, std=0.02)
        layer = nn.TransformerEncoderLayer(cfg.dim, cfg.heads, int(cfg.dim * cfg.mlp_ratio),
                                           cfg.dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.layers = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(cfg.dim), nn.Linear(cfg.dim, 3))

    def forward(self, noisy: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        B, W, J, _ = x.shape
        cond = self.cond(x.permute(0, 2, 1, 3).reshape(B, J, 2 * W))
        cond = cond + self.pose_cond(x.reshape(B, -1))[:, None]
        time = self.time(_time_embedding(t, self.dim))[:, None]
        return self.head(self.layers(cond + self.noisy(noisy) + time + self.joint_pos))


class DiffusionLifter(nn.Module):
    """D3DP-style lifter (module docstring).

    ``forward(x)`` in eval mode: the aggregated pose ``(B, J, 3)`` of ``sample(x)``; in training
    mode with ``target (B, J, 3)``: the denoiser's clean-pose prediction from the noised target.
    Input ``(B, W, J, 2)`` (or ``(B, J, 2)`` when ``window == 1``), normalised 2D.
    """

    kind = "diffusion"
    input_kind = "keypoints"
    #: the trainer passes the batch's labels as ``target`` in training mode
    reads_target = True

    def __init__(self, config: DiffusionConfig = DiffusionConfig(), n_joints: int = 17):
        super().__init__()
        self.config, self.n_joints, self.input_window = config, n_joints, config.window
        self.root = get_joint_set(tree_joint_set(n_joints)).parents.index(-1)
        self.denoiser = _Denoiser(config, n_joints)
        self.register_buffer("alpha_bar", cosine_alpha_bar(config.timesteps))
        self.register_buffer("bound_scale", torch.ones(()))
        from scipy.stats import chi2
        self.gaussian_radius = float(chi2.ppf(config.bound, 3) ** 0.5)

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        x = check_keypoint_input(x, self.input_window, self.n_joints)
        if self.training and target is not None:
            return self.denoise_target(x, target)
        return self.sample(x).pose

    def denoise_target(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Training step's prediction: ``target`` (B, J, 3) metres (NaN = unlabelled, taken as
        0: the loss weights those joints 0) noised to a random step, denoised; (B, J, 3)."""
        y = torch.nan_to_num(target.float(), nan=0.0) * POSE_SCALE
        t = torch.randint(0, self.config.timesteps, (len(y),), device=y.device)
        a = self.alpha_bar[t][:, None, None]
        noisy = a.sqrt() * y + (1 - a).sqrt() * torch.randn_like(y)
        return self.denoiser(noisy, t, x) / POSE_SCALE

    def _schedule(self) -> list[int]:
        """The DDIM steps from the last to 0, ``config.steps`` of them."""
        T, K = self.config.timesteps, self.config.steps
        return [int(round(v)) for v in torch.linspace(T - 1, 0, K).tolist()]

    @torch.no_grad()
    def hypotheses(self, x: torch.Tensor, n: int | None = None) -> torch.Tensor:
        """``n`` (default ``config.hypotheses``) poses per input by DDIM from seeded noise (the
        same ``n`` draws for every input, so an input's hypotheses do not depend on its batch).

        Args:
            x: (B, W, J, 2) normalised 2D. Returns: (B, n, J, 3) metres.
        """
        x = check_keypoint_input(x, self.input_window, self.n_joints)
        n = n or self.config.hypotheses
        B, J = len(x), self.n_joints
        gen = torch.Generator(device=x.device).manual_seed(self.config.seed)
        # the same n draws for every input: a frame's hypotheses do not depend on its batch
        pose = torch.randn(n, J, 3, generator=gen, device=x.device).repeat(B, 1, 1)
        cond = x.repeat_interleave(n, 0)
        steps = self._schedule()
        for i, t in enumerate(steps):
            tt = torch.full((B * n,), t, device=x.device, dtype=torch.long)
            clean = self.denoiser(pose, tt, cond)
            if i == len(steps) - 1:
                break
            a, a_next = self.alpha_bar[t], self.alpha_bar[steps[i + 1]]
            eps = (pose - a.sqrt() * clean) / (1 - a).sqrt()
            pose = a_next.sqrt() * clean + (1 - a_next).sqrt() * eps
        out = clean / POSE_SCALE
        out = out - out[:, self.root:self.root + 1]
        return out.view(B, n, J, 3)

    @torch.no_grad()
    def sample(self, x: torch.Tensor, n: int | None = None) -> DiffusionOutput:
        """Hypotheses, their JPMA and mean aggregations and the per-joint uncertainty
        (:class:`DiffusionOutput`) for ``x`` (B, W, J, 2)."""
        x = check_keypoint_input(x, self.input_window, self.n_joints)
        hyps = self.hypotheses(x, n)
        uv, seen = uv_from_input(x[:, self.input_window // 2], self.root)
        chosen, choice = jpma(hyps, uv, seen)
        mean = hyps.mean(1)
        sigma = (hyps - mean[:, None]).square().sum(-1).mean(1).div(3).sqrt()
        bound = self.gaussian_radius * self.bound_scale * sigma
        pose = chosen if self.config.aggregation == "jpma" else mean
        return DiffusionOutput(hyps, pose, chosen, mean, sigma, bound, choice)

    @torch.no_grad()
    def predict_with_uncertainty(self, x, batch_size: int = 1024, stride: int = 1):
        """A sequence's poses and per-joint uncertainty, for test-time adaptation
        (:func:`epiflow.models.adapt.predict_with_uncertainty` asks the model when it can).

        Args:
            x: (T, J, 2) numpy normalised lifter input; each frame is read with its window of
                ``input_window`` frames, every ``stride``-th (edges repeat the end frames).

        Returns:
            (T, J, 3) float32 poses (the configured aggregation), metres, and (T, J) float32
            RMS distance of the hypotheses from their mean, metres.
        """
        self.eval()
        device = next(self.parameters()).device
        T = len(x)
        idx = window_indices(T, self.input_window, stride)
        poses, spread = [], []
        for start in range(0, T, batch_size):
            win = torch.from_numpy(np.ascontiguousarray(x[idx[start:start + batch_size]]))
            out = self.sample(win.to(device).float())
            poses.append(out.pose.cpu().numpy())
            spread.append((out.sigma * 3 ** 0.5).cpu().numpy())
        if not poses:
            return np.zeros((0, self.n_joints, 3), np.float32), np.zeros((0, self.n_joints),
                                                                        np.float32)
        return (np.concatenate(poses).astype(np.float32),
                np.concatenate(spread).astype(np.float32))

    @torch.no_grad()
    def calibrate_bound(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> float:
        """Fit ``bound_scale`` so that the stated bound holds on labelled frames with the
        configured probability (the ``bound`` quantile of error / Gaussian bound); returns it.

        Args:
            x: (B, W, J, 2) inputs; y: (B, J, 3) labels, metres (NaN = none); w: (B, J) weights
            (joints with weight > 0 count; the root, always exact, does not).
        """
        self.bound_scale.fill_(1.0)
        out = self.sample(x)
        err = (out.pose - torch.nan_to_num(y)).norm(dim=-1)
        use = (w > 0) & torch.isfinite(y).all(-1) & (out.bound > 0)
        use[:, self.root] = False
        if not use.any():
            raise ValueError("calibrate_bound: no labelled joint (weight > 0) to fit on")
        ratio = (err[use] / out.bound[use]).float()
        self.bound_scale.fill_(float(torch.quantile(ratio, self.config.bound)))
        return float(self.bound_scale)
