"""Evaluation of a trained model against ground truth, per clip and overall, with the metrics of
:mod:`epiflow.models.metrics` (MPJPE, N-MPJPE, P-MPJPE, PCK3D, AUC, PSS@50 and @100).

Every (frame, camera) whose 2D root is seen is predicted; poses are compared root-relative in
that camera's frame, metres; distances are reported in millimetres.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from epiflow.models import metrics as M
from epiflow.models.checkpoint import Checkpoint, load_checkpoint, load_model
from epiflow.outputs import atomic_write_text
from epiflow.models.data import (DataError, PoseDataset, PreparedSession, SessionArrays,
                                 collate_batch, prepare_session)

__all__ = ["predict_sessions", "pose_metrics", "evaluate_model", "evaluate_checkpoint",
           "write_json"]


@torch.no_grad()
def predict_sessions(model: nn.Module, sessions: Sequence[PreparedSession],
                     device: torch.device | str = "cpu", batch_size: int = 1024
                     ) -> list[np.ndarray]:
    """The model's pose for every (frame, camera) of each session whose 2D root is seen.

    Returns:
        per session (T, C, J, 3) float32 root-relative metres in each camera's frame; NaN where
        nothing was predicted.
    """
    model = model.to(device).eval()
    images = getattr(model, "input_kind", "keypoints") == "image"
    dataset = PoseDataset(sessions, model.input_window, images=images, keep_unlabelled=True)
    out = [np.full(s.y.shape, np.nan, np.float32) for s in sessions]
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate_batch)
    for batch in loader:
        inp = (batch["image"][:, 0].float() / 255.0) if images else batch["x"][:, 0]
        pred = model(inp.to(device)).float().cpu().numpy()
        k, t, c = batch["session"].numpy(), batch["frame"].numpy(), batch["camera"][:, 0].numpy()
        for kk in np.unique(k):
            m = k == kk
            out[kk][t[m], c[m]] = pred[m]
    return out


def pose_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Every metric over the poses complete in both (any leading shape, (..., J, 3) metres).

    Returns:
        ``n_poses``, ``mpjpe_mm``, ``n_mpjpe_mm``, ``p_mpjpe_mm``, ``pck3d`` (150 mm), ``auc``,
        ``pss50``, ``pss100`` (NaN when there are fewer poses than clusters), and
        ``mpjpe_per_joint_mm`` (J floats, whose mean is ``mpjpe_mm``).
    """
    J = pred.shape[-2]
    p, g = pred.reshape(-1, J, 3), gt.reshape(-1, J, 3)
    keep = np.isfinite(p).all((1, 2)) & np.isfinite(g).all((1, 2))
    p, g = p[keep].astype(np.float64), g[keep].astype(np.float64)
    if not len(p):
        raise DataError("no pose has both a prediction and complete ground truth to evaluate")
    out = {"n_poses": int(len(p)), "mpjpe_mm": 1000 * M.mpjpe(p, g),
           "n_mpjpe_mm": 1000 * M.n_mpjpe(p, g), "p_mpjpe_mm": 1000 * M.p_mpjpe(p, g),
           "pck3d": M.pck3d(p, g), "auc": M.auc(p, g),
           "mpjpe_per_joint_mm": [float(v) for v in 1000 * M.mpjpe_per_joint(p, g)]}
    for k in (50, 100):
        out[f"pss{k}"] = M.pss(p, g, k=k) if len(p) >= k else float("nan")
    return out


def evaluate_model(model: nn.Module, sessions: Sequence[SessionArrays], joint_set: str = "h36m17",
                   device: torch.device | str = "cpu", level: bool = False) -> dict:
    """Metrics of ``model`` on sessions with ground truth:
    ``{"overall": {...}, "clips": {name: {...}}}`` (see :func:`pose_metrics`); ``level``: the
    model works in level cameras (``data.level``; root-relative errors are the same in either
    frame)."""
    missing = [s.name for s in sessions if s.gt3d is None]
    if missing:
        raise DataError(f"sessions {missing} have no ground truth gt3d to evaluate against; "
                        f"evaluate on a source with 3D ground truth")
    prepared = [prepare_session(s, None, joint_set, level) for s in sessions]
    preds = predict_sessions(model, prepared, device)
    clips = {s.name: pose_metrics(p, s.gt) for s, p in zip(prepared, preds)}
    overall = pose_metrics(np.concatenate([p.reshape(-1, *p.shape[2:]) for p in preds]),
                           np.concatenate([s.gt.reshape(-1, *s.gt.shape[2:]) for s in prepared]))
    return {"overall": overall, "clips": clips}


def evaluate_checkpoint(checkpoint: Checkpoint | str | Path, sessions: Sequence[SessionArrays],
                        device: torch.device | str = "cpu") -> dict:
    """:func:`evaluate_model` for a checkpoint; the result names the checkpoint and its model."""
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    model = load_model(ckpt, device=device)
    result = evaluate_model(model, sessions, ckpt.config.data.joint_set, device,
                            ckpt.config.data.level)
    return {"checkpoint": str(ckpt.path), "model": ckpt.model_name,
            "labels": ckpt.config.data.labels, **result}


def write_json(result: dict, path) -> Path:
    """Write an evaluation result as JSON (NaN written as null)."""
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, float) and not np.isfinite(v):
            return None
        return v
    return atomic_write_text(path, json.dumps(clean(result), indent=2))
