"""Person crops: square image patches around a person's 2D joints, what image models read.

The pipeline stores them per frame (:mod:`epiflow.pipeline.detect`), prediction makes them on
the fly (:mod:`epiflow.models.predict`), with the same rule: the box is the joints' extent times
a margin, centred on the joints, at least 16 pixels.
"""
from __future__ import annotations

import numpy as np

__all__ = ["person_crops"]


def person_crops(frames: list[np.ndarray], keypoints: np.ndarray, size: int,
                 margin: float = 1.25, min_confidence: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Square crops around the person.

    Args:
        frames: N (H, W, 3) uint8 BGR frames. keypoints: (N, J, 3) pixels and confidence.
        size: side of the crops, pixels. margin: box side / the joints' extent.

    Returns:
        crops (N, size, size, 3) uint8 RGB (zeros where no person) and boxes (N, 4) float32
        ``x0, y0, x1, y1`` in frame pixels (NaN where no person).
    """
    import cv2
    crops = np.zeros((len(frames), size, size, 3), np.uint8)
    boxes = np.full((len(frames), 4), np.nan, np.float32)
    for i, (frame, kp) in enumerate(zip(frames, keypoints)):
        ok = np.isfinite(kp[:, :2]).all(-1) & (kp[:, 2] >= min_confidence)
        if ok.sum() < 2:
            continue
        lo, hi = kp[ok, :2].min(0), kp[ok, :2].max(0)
        side = max(float((hi - lo).max()) * margin, 16.0)
        x0, y0 = (lo + hi) / 2 - side / 2
        M = np.array([[size / side, 0, -x0 * size / side], [0, size / side, -y0 * size / side]])
        crop = cv2.warpAffine(frame, M, (size, size), flags=cv2.INTER_AREA, borderValue=0)
        crops[i] = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        boxes[i] = (x0, y0, x0 + side, y0 + side)
    return crops, boxes
