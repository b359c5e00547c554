"""BlazePose's geometry, outside MediaPipe's one-person graph: anchors, detections, crops.

The numbers are those of MediaPipe's own graphs (``pose_detection_cpu.pbtxt``,
``pose_detection_to_roi.pbtxt``, ``pose_landmarks_to_roi.pbtxt``,
``tensors_to_pose_landmarks_and_segmentation.pbtxt``):

- detector: the image letterboxed to 224x224 keeping its aspect, values in [-1, 1]; 2254 SSD
  anchors (5 layers, strides 8, 16, 32, 32, 32, scales 0.1484375-0.75, fixed size); per anchor
  12 numbers x, y, w, h and 4 keypoints (x, y) in 224-pixel units relative to the anchor, and
  one score logit (clipped to +-100, sigmoid); weighted non-maximum suppression at IoU 0.3.
  Keypoint 0 is the hips' centre, keypoint 1 a point above the head that gives size and tilt.
- person crop (region of interest, ROI): a square centred on keypoint 0, side
  2 x |kp1 - kp0| x 1.25, turned so kp0 -> kp1 points up in the crop; 256x256, values [0, 1].
- landmarks: 39 x (x, y, z, visibility logit, presence logit) in crop pixels, refined by a 7x7
  window of the 64x64 heatmap; 0-32 are the BlazePose joints, 33-34 the auxiliary pair that
  gives the next frame's crop the same way as the detector's keypoints 0-1.

Coordinates here are continuous pixels (the left edge of the image is x = 0, a pixel's centre
is at i + 0.5), as MediaPipe's normalised landmarks times the image size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ssd_anchors", "decode_detections", "weighted_nms", "letterbox", "detector_windows",
           "Roi", "roi_from_keypoints", "crop_matrix", "crop_rois", "decode_landmarks",
           "box_iou", "DETECTOR_SIZE", "LANDMARK_SIZE"]

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
ROI_SCALE = 1.25


def ssd_anchors(size: int = DETECTOR_SIZE, strides=(8, 16, 32, 32, 32)) -> np.ndarray:
    """Anchor centres of the pose detector, MediaPipe's ``SsdAnchorsCalculator``.

    Consecutive layers of one stride share a grid; each layer puts two anchors in every cell
    (aspect ratio 1 and the interpolated scale). ``fixed_anchor_size`` makes them all of unit
    size, so only the centres matter (the scales 0.1484375-0.75 do not enter the decoding).

    Returns:
        (2254, 2) x, y centres in [0, 1] of the 224x224 input, ordered layer group, row,
        column, anchor.
    """
    out, layer = [], 0
    while layer < len(strides):
        n = 1
        while layer + n < len(strides) and strides[layer + n] == strides[layer]:
            n += 1
        cells = int(np.ceil(size / strides[layer]))
        c = (np.arange(cells) + 0.5) / cells
        yy, xx = np.meshgrid(c, c, indexing="ij")
        grid = np.stack([xx.ravel(), yy.ravel()], -1)
        out.append(np.repeat(grid, 2 * n, axis=0))
        layer += n
    return np.concatenate(out).astype(np.float32)


def decode_detections(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray,
                      min_score: float = 0.5, size: int = DETECTOR_SIZE) -> np.ndarray:
    """Detections above ``min_score`` from one image's raw detector output.

    Args:
        raw_boxes: (A, 12) x, y, w, h, then 4 keypoints (x, y), in ``size``-pixel units,
            relative to the anchor centres. raw_scores: (A,) or (A, 1) logits.
        anchors: (A, 2) from :func:`ssd_anchors`.

    Returns:
        (D, 13) float32: box ``x0, y0, x1, y1``, 4 keypoints ``x, y``, score; coordinates in
        [0, 1] of the detector's input (letterboxed) image; D may be 0.
    """
    raw_scores = np.asarray(raw_scores, np.float64).reshape(-1)
    if raw_boxes.shape != (len(anchors), 12) or len(raw_scores) != len(anchors):
        raise ValueError(f"raw_boxes must be ({len(anchors)}, 12) and raw_scores "
                         f"({len(anchors)},); got {raw_boxes.shape} and {raw_scores.shape}")
    score = 1 / (1 + np.exp(-np.clip(raw_scores, -100, 100)))
    keep = score >= min_score
    r, a = raw_boxes[keep] / size, anchors[keep]
    centre, half = r[:, :2] + a, r[:, 2:4] / 2
    kps = r[:, 4:].reshape(-1, 4, 2) + a[:, None]
    out = np.concatenate([centre - half, centre + half, kps.reshape(-1, 8), score[keep, None]], 1)
    return out.astype(np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``x0, y0, x1, y1``: a (N, 4), b (M, 4) -> (N, M)."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2:4] - x[:, :2], 0, None).prod(-1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(dets: np.ndarray, iou: float = 0.3) -> np.ndarray:
    """MediaPipe's weighted non-maximum suppression.

    The best remaining detection and all others that overlap it by more than ``iou`` are
    replaced by their score-weighted mean box and keypoints, with the best one's score.

    Args:
        dets: (D, 13) from :func:`decode_detections`.

    Returns:
        (K, 13), best score first.
    """
    dets = dets[np.argsort(-dets[:, -1], kind="stable")]
    out = []
    while len(dets):
        group = box_iou(dets[:1, :4], dets[:, :4])[0] > iou
        group[0] = True
        w = dets[group, -1:]
        merged = (dets[group, :-1] * w).sum(0) / w.sum()
        out.append(np.append(merged, dets[0, -1]))
        dets = dets[~group]
    return np.array(out, np.float32).reshape(-1, 13)


def letterbox(frame: np.ndarray, size: int = DETECTOR_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The detector's input: the frame scaled to fit ``size`` x ``size``, padded with black.

    Args:
        frame: (H, W, 3) uint8 RGB.

    Returns:
        (size, size, 3) float32 in [-1, 1], and (3,) ``scale, pad_x, pad_y`` such that a point
        at ``u`` in [0, 1] of the letterboxed image is at ``(u * size - pad) / scale`` frame
        pixels. Area averaging, not MediaPipe's bilinear sampling: at 8x down, the far person of
        the two-person demo's cam03 went unfound in half of the test's frames with bilinear.
    """
    import cv2
    h, w = frame.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    px, py = (size - nw) // 2, (size - nh) // 2
    img = np.zeros((size, size, 3), np.uint8)
    img[py:py + nh, px:px + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
    return img.astype(np.float32) / 127.5 - 1.0, np.array([nw / w, px, py], np.float64)


def detector_windows(height: int, width: int, max_ratio: float = 1.2) -> np.ndarray:
    """Parts of a frame the person detector reads: the whole frame and, when the frame is
    longer than ``max_ratio`` times its width (or the reverse), squares along its long side.

    Letterboxing a 1088x1920 portrait frame to 224x224 leaves a person at 11.7% of their pixel
    size and the far ones go undetected; its two overlapping 1088-pixel squares give 20.6%.

    Returns:
        (V, 4) int ``x0, y0, x1, y1`` frame pixels; the whole frame first.
    """
    out = [(0, 0, width, height)]
    short, long = min(height, width), max(height, width)
    if long > max_ratio * short:
        for start in np.linspace(0, long - short, int(np.ceil(long / short))).round().astype(int):
            out.append((0, start, width, start + short) if height > width
                       else (start, 0, start + short, height))
    return np.array(out, int)


@dataclass(frozen=True)
class Roi:
    """A square person crop in frame pixels: centre ``cx, cy``, ``side``, ``angle`` (radians,
    positive turns the crop's up direction towards +x)."""

    cx: float
    cy: float
    side: float
    angle: float

    def box(self) -> np.ndarray:
        """(4,) the axis-aligned square ``x0, y0, x1, y1`` of side ``side`` around the centre."""
        h = self.side / 2
        return np.array([self.cx - h, self.cy - h, self.cx + h, self.cy + h])


def roi_from_keypoints(centre: np.ndarray, top: np.ndarray, scale: float = ROI_SCALE) -> Roi:
    """The crop from the hips' centre and the size/tilt point above the head, frame pixels.

    MediaPipe's ``AlignmentPointsRectsCalculator`` (side = 2 |top - centre|, rotation that
    makes centre -> top point up) then ``RectTransformationCalculator`` (x ``scale``).
    """
    d = np.asarray(top, np.float64) - np.asarray(centre, np.float64)
    angle = np.pi / 2 - np.arctan2(-d[1], d[0])
    angle = (angle + np.pi) % (2 * np.pi) - np.pi
    return Roi(float(centre[0]), float(centre[1]), float(2 * np.hypot(*d) * scale), float(angle))


def crop_matrix(roi: Roi, size: int = LANDMARK_SIZE) -> np.ndarray:
    """(2, 3) affine map from crop pixels to frame pixels (continuous coordinates).

    A crop point ``q`` goes to ``centre + side * R(angle) @ (q / size - 0.5)``, MediaPipe's
    ``LandmarkProjectionCalculator``; the crop is warped with the same map, inverted.
    """
    c, s = np.cos(roi.angle), np.sin(roi.angle)
    A = roi.side / size * np.array([[c, -s], [s, c]])
    b = np.array([roi.cx, roi.cy]) - A @ np.full(2, size / 2)
    return np.concatenate([A, b[:, None]], 1)


def crop_rois(frame: np.ndarray, rois: list[Roi], size: int = LANDMARK_SIZE) -> np.ndarray:
    """The landmark network's input for each ROI of one frame.

    Args:
        frame: (H, W, 3) uint8 RGB.

    Returns:
        (len(rois), size, size, 3) float32 in [0, 1]; outside the frame the edge is repeated.
    """
    import cv2
    out = np.empty((len(rois), size, size, 3), np.float32)
    for i, roi in enumerate(rois):
        M = crop_matrix(roi, size)
        M[:, 2] += M[:, :2].sum(1) * 0.5 - 0.5        # OpenCV's pixel centres are at integers
        crop = cv2.warpAffine(frame, M, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
        out[i] = crop.astype(np.float32) / 255.0
    return out


def _refine_from_heatmap(xy: np.ndarray, heatmap: np.ndarray, kernel: int = 7,
                         min_confidence: float = 0.5) -> np.ndarray:
    """MediaPipe's ``RefineLandmarksFromHeatmapCalculator``: xy (L, 2) in [0, 1] of the crop,
    heatmap (h, w, L) logits -> xy moved to the sigmoid-weighted mean cell of the ``kernel``
    window around it (cut at the heatmap's edges), where the window's best cell is at least
    ``min_confidence``; landmarks off the heatmap stay."""
    h, w, L = heatmap.shape
    r = (kernel - 1) // 2
    col, row = np.floor(xy[:, 0] * w).astype(int), np.floor(xy[:, 1] * h).astype(int)
    j = np.flatnonzero((col >= 0) & (col < w) & (row >= 0) & (row < h))
    padded = np.pad(heatmap, ((r, r), (r, r), (0, 0)), constant_values=-np.inf)
    offsets = np.arange(kernel)
    rows, cols = row[j, None] + offsets, col[j, None] + offsets            # padded coordinates
    p = 1 / (1 + np.exp(-padded[rows[:, :, None], cols[:, None, :], j[:, None, None]]))
    total = p.sum((1, 2))
    ok = (p.max((1, 2)) >= min_confidence) & (total > 0)
    mean_col = (p.sum(1) * (cols - r)).sum(1) / np.where(ok, total, 1)
    mean_row = (p.sum(2) * (rows - r)).sum(1) / np.where(ok, total, 1)
    out = xy.copy()
    out[j[ok]] = np.stack([mean_col[ok] / w, mean_row[ok] / h], 1)
    return out


def decode_landmarks(raw: np.ndarray, heatmap: np.ndarray, roi: Roi,
                     size: int = LANDMARK_SIZE) -> np.ndarray:
    """One crop's landmarks in frame pixels.

    Args:
        raw: (195,) = 39 x (x, y, z, visibility logit, presence logit), x, y in crop pixels.
        heatmap: (64, 64, 39) logits. roi: the crop they came from.

    Returns:
        (39, 3) float32: x, y frame pixels and the visibility (sigmoid) as confidence.
    """
    lm = np.asarray(raw, np.float32).reshape(39, 5)
    xy = _refine_from_heatmap(lm[:, :2] / size, heatmap) * size
    M = crop_matrix(roi, size)
    frame_xy = xy @ M[:, :2].T + M[:, 2]
    vis = 1 / (1 + np.exp(-lm[:, 3]))
    return np.concatenate([frame_xy, vis[:, None]], 1).astype(np.float32)
