"""The trainer's pictures: training curves and predicted skeletons (drawn by :mod:`epiflow.viz`)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["plot_curves", "plot_prediction", "camera_to_display"]


_LEGEND = {"val_label_mm": "against the labels", "val_gt_mm": "against ground truth",
           "val_gt_p_mm": "against ground truth, Procrustes-aligned"}


def plot_curves(history: Sequence[dict], path) -> Path:
    """Training curves against the step: the loss and its terms (``train_*``), the validation
    errors in mm (``val_*``: against the labels and against ground truth) and the learning rate.

    Args:
        history: metric rows as :func:`epiflow.models.train.fit` logs them (one per epoch).
    """
    from matplotlib.figure import Figure

    from epiflow.viz import save_png
    keys = list(dict.fromkeys(k for row in history for k in row))
    step = np.array([row["step"] for row in history], float)
    panels = [("training loss (m)", [k for k in keys if k.startswith("train_")], True),
              ("validation error (mm)", [k for k in keys if k.startswith("val_")], False),
              ("learning rate", ["lr"], True)]
    fig = Figure(figsize=(13, 3.6), dpi=100)
    for i, (title, names, log) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        for name in names:
            y = np.array([row.get(name, np.nan) for row in history], float)
            ok = np.isfinite(y)
            ax.plot(step[ok], y[ok], marker="o" if ok.sum() <= 40 else None, ms=3, lw=1.3,
                    label=_LEGEND.get(name, name.removeprefix("train_")))
        if log and any(np.nanmin([row.get(n, np.nan) for row in history]) > 0 for n in names):
            ax.set_yscale("log")
        ax.set(title=title, xlabel="step")
        ax.grid(alpha=0.3)
        if names:
            ax.legend(fontsize=8)
    fig.suptitle(f"training: {Path(path).parent.name}", fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)


def camera_to_display(points: np.ndarray) -> np.ndarray:
    """Camera-frame points (x right, y down, z forward) as a Z-up world for drawing:
    ``(x, z, -y)`` (the camera looks along +Y, its up is +Z)."""
    points = np.asarray(points, float)
    return np.stack([points[..., 0], points[..., 2], -points[..., 1]], -1)


def plot_prediction(points3d: np.ndarray, path, joint_set: str = "h36m17", n_frames: int = 4,
                    title: str | None = None) -> Path:
    """Draw a few evenly spaced frames of a predicted sequence.

    Args:
        points3d: (T, J, 3) root-relative metres in the camera's frame.
    """
    from epiflow.viz import plot_skeletons_3d, save_png
    T = points3d.shape[0]
    idx = np.unique(np.linspace(0, T - 1, min(n_frames, T)).round().astype(int))
    fig = plot_skeletons_3d({"prediction": camera_to_display(points3d[idx])}, joint_set=joint_set,
                            frame_labels=[f"frame {i}" for i in idx], title=title)
    return save_png(fig, path)
