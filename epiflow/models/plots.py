"""The trainer's pictures: training curves and predicted skeletons (drawn by :mod:`epiflow.viz`)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["plot_curves", "plot_prediction", "camera_to_display"]


def plot_curves(history: Sequence[dict], path) -> Path:
    """Plot the losses (``train_*``) and validation errors (``val_*``, mm) against the step.

    Args:
        history: metric rows as :func:`epiflow.models.train.fit` logs them (one per epoch).
    """
    from epiflow.viz import plot_training_curves, save_png
    keys = [k for k in dict.fromkeys(k for row in history for k in row)
            if k.startswith(("train_", "val_"))]
    columns = {k: np.array([row.get(k, np.nan) for row in history], float) for k in keys}
    columns["step"] = np.array([row["step"] for row in history], float)
    return save_png(plot_training_curves(columns, x="step", title=f"training ({Path(path).parent.name})"),
                    path)


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
