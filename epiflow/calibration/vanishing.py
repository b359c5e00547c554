"""The scene's vertical from line segments: vertical vanishing points, combined over cameras.

Rooms are full of vertical edges (door frames, cupboards, window frames, table legs). A 3D line
of direction ``v`` seen by a camera lies in the plane through the optical centre and the
segment's two endpoints; that plane's normal ``n`` (camera frame) is perpendicular to ``R v``
(``R``: world→camera rotation). Rotated into the world, ``(Rᵀ n) · v = 0`` for every vertical
segment of every camera, so once the cameras' rotations are known the segments of all cameras
vote for one ``v`` in one frame: no vanishing point has to be found in any single image, and a
camera that sees few verticals still adds what it sees.

Steps (:func:`vertical_from_lines`):

1. Segments per image (OpenCV's line segment detector, on the image shrunk to
   :data:`WORK_SIDE` pixels on its longer side; segments shorter than ``min_length`` × the
   longer side dropped; those whose midpoint lies on the person, within their 2D box, dropped:
   limbs are not vertical).
2. Endpoints undistorted with the camera, plane normals rotated into the world frame.
3. Candidates: segments that point, in their image, within ``max_image_deg`` of where the
   prior up (the body axis) projects: a coarse filter, the prior may be 30° off.
4. RANSAC over pairs of candidates (``v = n₁ × n₂``, within ``max_prior_deg`` of the prior),
   scored by the summed length of the segments within ``inlier_deg`` of ``v``; then ``v``
   refined as the least-squares null vector of the inliers' normals (weighted by length), twice.

The result's ``camera_spread_deg`` says how well the cameras agree: each camera's own vertical
(the same refinement on its inliers alone) against the combined one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from epiflow.calibration.camera import CameraRig

__all__ = ["SceneVertical", "line_segments", "vertical_from_lines", "video_scene_frames",
           "WORK_SIDE"]

#: images are shrunk to this many pixels on their longer side before segments are detected
WORK_SIDE = 960


@dataclass(frozen=True)
class SceneVertical:
    """The scene's vertical.

    Attributes:
        up: (3,) unit vector in the rig's world frame, on the side of the prior.
        segments: segments detected (all images). inliers: segments that voted for ``up``.
        cameras_used: names of the cameras with at least one inlier.
        camera_spread_deg: {camera: angle between its own vertical and ``up``}, degrees (cameras
            with at least 3 inliers).
        prior_deg: angle between ``up`` and the prior, degrees.
    """

    up: np.ndarray
    segments: int
    inliers: int
    cameras_used: list
    camera_spread_deg: dict
    prior_deg: float

    def summary(self) -> dict:
        """JSON-able record for reports."""
        return {"up": [float(x) for x in self.up], "segments": self.segments,
                "inliers": self.inliers, "cameras_used": list(self.cameras_used),
                "camera_spread_deg": {k: round(v, 2) for k, v in self.camera_spread_deg.items()},
                "angle_to_body_axis_deg": round(self.prior_deg, 2)}


def line_segments(image: np.ndarray, min_length: float = 0.04) -> np.ndarray:
    """Straight segments of an image.

    Args:
        image: (H, W) or (H, W, 3) uint8.
        min_length: shortest segment kept, as a fraction of the image's longer side.

    Returns:
        (N, 4) float: x1, y1, x2, y2 in the image's pixels.
    """
    import cv2
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    factor = min(1.0, WORK_SIDE / max(gray.shape))
    small = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA) \
        if factor < 1 else gray
    found = cv2.createLineSegmentDetector().detect(small)[0]
    if found is None:
        return np.zeros((0, 4))
    seg = found.reshape(-1, 4).astype(float) / factor
    length = np.hypot(seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1])
    return seg[length >= min_length * max(gray.shape)]


def _off_person(seg: np.ndarray, box) -> np.ndarray:
    """(N,) bool: segments whose midpoint is outside ``box`` (x0, y0, x1, y1, pixels; None =
    no person), the box grown by 10 % each side."""
    if box is None or not np.isfinite(box).all():
        return np.ones(len(seg), bool)
    x0, y0, x1, y1 = box
    gx, gy = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
    mx, my = (seg[:, 0] + seg[:, 2]) / 2, (seg[:, 1] + seg[:, 3]) / 2
    return ~((mx > x0 - gx) & (mx < x1 + gx) & (my > y0 - gy) & (my < y1 + gy))


def _plane_normals(rig: CameraRig, c: int, seg: np.ndarray) -> np.ndarray:
    """(N, 3) unit normals, world frame, of the planes through camera ``c``'s centre and each
    segment (endpoints undistorted)."""
    ends = np.zeros((len(rig), 2 * len(seg), 2))
    ends[c] = seg.reshape(-1, 2)
    xn = np.asarray(rig.undistort(ends))[c].reshape(-1, 2, 2)
    a = np.concatenate([xn[:, 0], np.ones((len(seg), 1))], 1)
    b = np.concatenate([xn[:, 1], np.ones((len(seg), 1))], 1)
    n = np.cross(a, b)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    return n @ rig.R[c]  # (Rᵀ n)ᵀ = nᵀ R


def _towards_vanishing_point(rig: CameraRig, c: int, seg: np.ndarray, up: np.ndarray,
                             max_deg: float) -> np.ndarray:
    """(N,) bool: segments whose image direction is within ``max_deg`` of the direction from
    their midpoint to the vanishing point of ``up`` (world) in camera ``c`` (either way)."""
    d = rig.K[c] @ rig.R[c] @ up  # homogeneous vanishing point (may be at infinity)
    mid = np.stack([(seg[:, 0] + seg[:, 2]) / 2, (seg[:, 1] + seg[:, 3]) / 2], 1)
    to_vp = d[:2][None] - mid * d[2]  # direction to the point, also when d[2] = 0
    along = seg[:, 2:] - seg[:, :2]
    cos = np.abs(np.sum(to_vp * along, 1)) / np.maximum(
        np.linalg.norm(to_vp, axis=1) * np.linalg.norm(along, axis=1), 1e-12)
    return cos >= np.cos(np.radians(max_deg))


def _null_vector(n: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(3,) unit v minimising sum w (n · v)² (smallest eigenvector)."""
    return np.linalg.eigh((n * w[:, None]).T @ n)[1][:, 0]


def _refine(n, w, v, inlier_sin, rounds: int = 2):
    """Least-squares refinement of ``v`` on its inliers; (v, inlier mask)."""
    inl = np.abs(n @ v) < inlier_sin
    for _ in range(rounds):
        if inl.sum() < 2:
            break
        new = _null_vector(n[inl], w[inl])
        v = new if new @ v > 0 else -new
        inl = np.abs(n @ v) < inlier_sin
    return v, inl


def _ransac(n, w, prior, max_prior_deg, inlier_sin, iterations, rng):
    """Best (v, score) over pairs of segments; v on the prior's side, within max_prior_deg."""
    best, score = None, 0.0
    cos_max = np.cos(np.radians(max_prior_deg))
    for _ in range(iterations):
        i, j = rng.choice(len(n), 2, replace=False)
        v = np.cross(n[i], n[j])
        norm = np.linalg.norm(v)
        if norm < 1e-6:
            continue
        v = v / norm
        v = v if v @ prior > 0 else -v
        if v @ prior < cos_max:
            continue
        s = w[np.abs(n @ v) < inlier_sin].sum()
        if s > score:
            best, score = v, s
    return best, score


def vertical_from_lines(rig: CameraRig, images: Sequence[Sequence[np.ndarray]],
                        prior_up: np.ndarray, person_boxes: Sequence[Sequence] | None = None,
                        min_length: float = 0.04, max_image_deg: float = 30.0,
                        max_prior_deg: float = 40.0, inlier_deg: float = 0.5,
                        min_inliers: int = 8, iterations: int = 2000,
                        seed: int = 0) -> SceneVertical | None:
    """The scene's vertical in the frame of ``rig`` (see the module docstring).

    Args:
        rig: cameras with rotations (any world frame and scale) and intrinsics.
        images: per camera of ``rig``, a few frames ((H, W[, 3]) uint8, RGB or gray; the
            camera's image size); an empty list for a camera without frames.
        prior_up: (3,) a rough up in the rig's frame (the body axis): picks the vertical among
            the scene's directions and its sign.
        person_boxes: per camera, per image, the person's 2D box (x0, y0, x1, y1) or None.
        min_length: shortest segment, × the image's longer side.
        max_image_deg: a segment is a candidate when it points within this of the prior's
            vanishing point in its image.
        max_prior_deg: the vertical found is within this of the prior.
        inlier_deg: a segment votes for v when its plane is within this of v (degrees).
        min_inliers: fewer inlier segments than this: no vertical (None).
        iterations: RANSAC pairs tried. seed: the sampler's seed.

    Returns:
        :class:`SceneVertical`, or None when too few vertical segments are seen.
    """
    prior = np.asarray(prior_up, float) / np.linalg.norm(prior_up)
    normals, weights, cams, total = [], [], [], 0
    for c, frames in enumerate(images):
        for k, image in enumerate(frames):
            seg = line_segments(image, min_length)
            total += len(seg)
            box = person_boxes[c][k] if person_boxes is not None else None
            seg = seg[_off_person(seg, box)]
            seg = seg[_towards_vanishing_point(rig, c, seg, prior, max_image_deg)]
            if not len(seg):
                continue
            normals.append(_plane_normals(rig, c, seg))
            weights.append(np.hypot(seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1]))
            cams.append(np.full(len(seg), c))
    if not normals or sum(len(n) for n in normals) < max(min_inliers, 2):
        return None
    n, w, cam = np.concatenate(normals), np.concatenate(weights), np.concatenate(cams)
    inlier_sin = np.sin(np.radians(inlier_deg))
    v, _ = _ransac(n, w, prior, max_prior_deg, inlier_sin, iterations,
                   np.random.default_rng(seed))
    if v is None:
        return None
    v, inl = _refine(n, w, v, inlier_sin)
    if inl.sum() < min_inliers:
        return None
    spread = {}
    for c in np.unique(cam[inl]):
        mine = inl & (cam == c)
        if mine.sum() >= 3:
            vc = _null_vector(n[mine], w[mine])
            spread[rig.names[c]] = float(np.degrees(np.arccos(min(1.0, abs(vc @ v)))))
    used = [rig.names[c] for c in np.unique(cam[inl])]
    prior_deg = float(np.degrees(np.arccos(np.clip(v @ prior, -1, 1))))
    return SceneVertical(v, total, int(inl.sum()), used, spread, prior_deg)


def video_scene_frames(paths: Sequence, count: int = 2, with_index: bool = True) -> list:
    """A few frames of each video for :func:`vertical_from_lines`: ``count`` frames spread over
    the video (first and last for 2), so that the person hides different parts of the scene.

    Args:
        paths: one video file per camera. count: frames per video.
        with_index: pair each frame with its index (for the person's box from the keypoints);
            False pairs it with -1 (keypoints on another clock, e.g. synchronized videos).

    Returns:
        per camera, a list of ``(frame index or -1, (H, W, 3) uint8 RGB)``; frames that fail to
        decode are left out (a camera may get none).
    """
    import cv2
    out = []
    for path in paths:
        cap = cv2.VideoCapture(str(path))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        frames = []
        for t in sorted(set(np.linspace(0, max(n - 1, 0), count).round().astype(int))):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(t))
            ok, image = cap.read()
            if ok:
                frames.append((int(t) if with_index else -1,
                               cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
        cap.release()
        out.append(frames)
    return out
