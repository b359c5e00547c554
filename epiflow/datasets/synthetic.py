"""Synthetic multi-camera captures: real CMU motion seen by a virtual camera rig, with known truth.

:func:`make_rig` places cameras around a capture centre, all looking at it. :func:`synthesize`
projects a :class:`~epiflow.datasets.cmu.Motion` into every camera and corrupts the 2D keypoints the
way a 2D detector does, under a :class:`Corruption` model that can be turned up or down:

- **noise**: isotropic Gaussian pixel noise whose std scales with the person's apparent size.
  ``noise_px`` is the std per coordinate for a person :data:`REFERENCE_HEIGHT_PX` = 400 px tall;
  a person that appears 200 px tall gets half of it. Apparent height = ``f_y · H / depth``, with H the
  person's standing height (95th percentile over the clip of the 3D vertical extent) and depth the
  camera-frame z of the body's centroid, per camera and frame.
- **confidence** falls as the error rises: ``c = 1 / (1 + (e / confidence_halfwidth_px)²)`` with e
  the pixel error rescaled to the 400 px reference person (so c = 0.5 at e = the half-width), times
  a jitter ``1 - confidence_jitter · U(0, 1)``. Gross outliers instead draw their confidence
  uniformly from ``outlier_confidence`` (detectors are often confidently wrong).
- **out of view**: a joint projecting outside the image, or behind the camera, is missing.
- **occlusion**: a joint whose line of sight passes through the torso (a capsule of ``torso_radius``
  around the segment pelvis → thorax) at least ``occlusion_margin`` before reaching the joint is an
  occlusion candidate (the far hip, an arm behind the back); candidates are dropped at random so that
  ``drop_fraction`` of the in-view joints go missing (when candidates are too few, other in-view
  joints are dropped at random to make up the fraction).
- **gross outliers**: ``outlier_fraction`` of the remaining observations move a random distance in
  ``outlier_distance`` × the apparent height, in a random direction.
- **left/right swaps**: ``swap_fraction`` of camera-frames have the whole body mirrored (every left
  joint exchanged with its right twin, :attr:`epiflow.skeleton.JointSet.flip_permutation`).
- **time offsets**: camera c's clock runs ``offset_c`` frames ahead: its row t shows the motion at
  frame ``t + offset_c`` (clamped to the clip); offsets are integers in ±``max_time_offset_frames``,
  camera 0 at 0.

Missing joints are NaN with confidence 0. Everything is deterministic for a seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from epiflow.calibration.camera import Camera, CameraRig
from epiflow.calibration.sync import CameraStreams, frame_times
from epiflow.datasets.cmu import Motion, load_cmu_clip, load_packaged_clip
from epiflow.keypoints import Keypoints
from epiflow.skeleton import get_joint_set, map_to_h36m, H36M17

__all__ = ["REFERENCE_HEIGHT_PX", "make_rig", "look_at", "Corruption", "SyntheticCapture",
           "synthesize", "capture_center", "cmu_capture", "cmu_clip_path", "skeleton_crops",
           "motion_at", "unsynchronized_capture"]

#: person height (pixels) at which ``Corruption.noise_px`` is the noise std
REFERENCE_HEIGHT_PX = 400.0


# -- rig -----------------------------------------------------------------------------------------
def look_at(center: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World→camera (R (3, 3), t (3,)) of a camera at ``center`` looking at ``target`` (metres).

    The image's x axis stays horizontal (world Z is up, image y points down).
    """
    forward = np.asarray(target, float) - np.asarray(center, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    if np.linalg.norm(right) < 1e-9:
        raise ValueError("look_at: a camera looking straight up or down has no horizontal x axis; "
                         "give it a different height than its target")
    right /= np.linalg.norm(right)
    R = np.stack([right, np.cross(forward, right), forward])
    return R, -R @ np.asarray(center, float)


def _per_camera(value, n: int, rng: np.random.Generator, what: str) -> np.ndarray:
    """A scalar for all cameras, or a (lo, hi) range drawn uniformly per camera: (n,)."""
    v = np.asarray(value, dtype=np.float64)
    if v.ndim == 0:
        return np.full(n, float(v))
    if v.shape == (2,):
        return rng.uniform(v[0], v[1], n)
    raise ValueError(f"make_rig: {what} must be a number or a (low, high) range; got {value!r}")


def _distortions(distortion, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 5): a float d gives k1 ~ U(-d, d) and k2 ~ U(-d/4, d/4); an array is used as given."""
    d = np.asarray(distortion, dtype=np.float64)
    if d.ndim == 0:
        out = np.zeros((n, 5))
        out[:, 0] = rng.uniform(-1, 1, n) * d
        out[:, 1] = rng.uniform(-1, 1, n) * d / 4
        return out
    if d.shape in ((5,), (n, 5)):
        return np.broadcast_to(d, (n, 5)).copy()
    raise ValueError(f"make_rig: distortion must be a strength, a (5,) or a ({n}, 5) array; "
                     f"got shape {d.shape}")


def make_rig(n_cameras: int = 4, layout: str = "ring", radius: float = 5.0,
             height=1.5, focal_px=1200.0, size: tuple[int, int] = (1920, 1080),
             distortion=0.0, target=(0.0, 0.0, 1.0), seed: int = 0) -> CameraRig:
    """A virtual rig of cameras around a capture centre, each looking at it.

    Args:
        n_cameras: number of cameras, named ``cam_01``, ``cam_02``, ...
        layout: ``"ring"``: evenly spaced azimuths (a seeded random start) at ``radius``;
            ``"random"``: random azimuths, distances in ``radius × U(0.7, 1.3)``.
        radius: horizontal distance from the target, metres.
        height: camera height above the floor, metres, or a (low, high) range drawn per camera.
        focal_px: focal length (f_x = f_y), pixels, or a (low, high) range drawn per camera.
        size: (width, height) of the images, pixels; principal point at the centre.
        distortion: a strength d (k1 ~ U(-d, d), k2 ~ U(-d/4, d/4)), or (5,) / (C, 5) coefficients.
        target: (3,) the point all cameras look at, metres, world frame (Z up).
        seed: the random seed; the same seed gives the same rig.
    """
    if n_cameras < 1:
        raise ValueError(f"make_rig: n_cameras must be at least 1; got {n_cameras}")
    rng = np.random.default_rng(seed)
    if layout == "ring":
        azimuth = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(n_cameras) / n_cameras
        dist = np.full(n_cameras, float(radius))
    elif layout == "random":
        azimuth = rng.uniform(0, 2 * np.pi, n_cameras)
        dist = radius * rng.uniform(0.7, 1.3, n_cameras)
    else:
        raise ValueError(f"make_rig: layout must be 'ring' or 'random'; got {layout!r}")
    heights = _per_camera(height, n_cameras, rng, "height")
    focal = _per_camera(focal_px, n_cameras, rng, "focal_px")
    dists = _distortions(distortion, n_cameras, rng)
    target = np.asarray(target, dtype=np.float64)
    w, h = int(size[0]), int(size[1])
    cameras = []
    for c in range(n_cameras):
        center = target + [dist[c] * np.cos(azimuth[c]), dist[c] * np.sin(azimuth[c]), 0.0]
        center[2] = heights[c]
        R, t = look_at(center, target)
        K = np.array([[focal[c], 0, (w - 1) / 2], [0, focal[c], (h - 1) / 2], [0, 0, 1]])
        cameras.append(Camera(f"cam_{c + 1:02d}", K, dists[c], R, t, (w, h)))
    return CameraRig(cameras)


# -- corruption model -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Corruption:
    """How a synthetic 2D detector errs (see the module docstring for the model).

    Attributes:
        noise_px: Gaussian noise std per coordinate, pixels, for a person 400 px tall; scales
            with the apparent height.
        outlier_fraction: fraction of observed joints that are gross outliers.
        outlier_distance: (low, high) outlier displacement, in units of the apparent height.
        outlier_confidence: (low, high) range of the outliers' confidence.
        drop_fraction: fraction of in-view joints missing by occlusion.
        torso_radius: metres, the torso capsule (around pelvis → thorax) that hides joints.
        occlusion_margin: metres the hidden joint must lie beyond where its ray meets the torso.
        swap_fraction: fraction of camera-frames with left and right mirrored.
        max_time_offset_frames: per-camera clock offsets are integers in ± this.
        confidence_halfwidth_px: error (pixels at the 400 px reference) where confidence is 0.5.
        confidence_jitter: confidence is multiplied by ``1 - confidence_jitter · U(0, 1)``.
    """

    noise_px: float = 2.0
    outlier_fraction: float = 0.02
    outlier_distance: tuple[float, float] = (0.1, 0.5)
    outlier_confidence: tuple[float, float] = (0.3, 0.9)
    drop_fraction: float = 0.05
    torso_radius: float = 0.13
    occlusion_margin: float = 0.05
    swap_fraction: float = 0.01
    max_time_offset_frames: int = 0
    confidence_halfwidth_px: float = 8.0
    confidence_jitter: float = 0.1

    def __post_init__(self):
        for name in ("outlier_fraction", "drop_fraction", "swap_fraction", "confidence_jitter"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"Corruption.{name} must be in [0, 1]; got {getattr(self, name)}")
        if min(self.noise_px, self.max_time_offset_frames) < 0 or self.confidence_halfwidth_px <= 0:
            raise ValueError("Corruption: noise_px and max_time_offset_frames must be >= 0 and "
                             f"confidence_halfwidth_px > 0; got {self}")

    @classmethod
    def none(cls) -> "Corruption":
        """Exact keypoints: no noise, outliers, drops, swaps or offsets; confidence 1 in view."""
        return cls(noise_px=0.0, outlier_fraction=0.0, drop_fraction=0.0, swap_fraction=0.0,
                   max_time_offset_frames=0, confidence_jitter=0.0)


@dataclass(frozen=True, eq=False)
class SyntheticCapture:
    """A synthetic capture and its ground truth.

    Attributes:
        keypoints: the corrupted 2D keypoints, (T, C, J, 3).
        points3d: (T, J, 3) true joint positions, metres, world frame, on the reference clock.
        rig: the true cameras.
        clean2d: (T, C, J, 2) exact projections of what each camera saw (its own clock), pixels;
            NaN where out of view.
        outlier: (T, C, J) bool, keypoint j (in output order) is a gross outlier.
        swapped: (T, C) bool, the camera-frame is left/right mirrored.
        dropped: (T, C, J) bool, in view but missing by occlusion (output order).
        in_view: (T, C, J) bool, the joint projects into the image, in front of the camera.
        time_offsets: (C,) int frames; camera c's row t shows frame t + offset_c.
        apparent_height_px: (T, C) the person's apparent height, pixels.
        corruption: the model used. seed: the seed used. name: the motion's name.
    """

    keypoints: Keypoints
    points3d: np.ndarray
    rig: CameraRig
    clean2d: np.ndarray
    outlier: np.ndarray
    swapped: np.ndarray
    dropped: np.ndarray
    in_view: np.ndarray
    time_offsets: np.ndarray
    apparent_height_px: np.ndarray
    corruption: Corruption = field(default_factory=Corruption)
    seed: int = 0
    name: str = ""


# -- synthesis ------------------------------------------------------------------------------------
def _in_joint_set(motion: Motion, joint_set: str) -> Motion:
    if joint_set == motion.joint_set:
        return motion
    if joint_set == "h36m17":
        return motion.to_h36m()
    raise ValueError(f"synthesize: joint_set must be 'h36m17' or the motion's own "
                     f"{motion.joint_set!r}; got {joint_set!r}")


def _time_offsets(n_cameras: int, max_offset: int, rng: np.random.Generator) -> np.ndarray:
    """(C,) int clock offsets in ± max_offset frames, camera 0 at 0."""
    offsets = rng.integers(-max_offset, max_offset + 1, n_cameras)
    offsets[0] = 0
    return offsets


def _seen_points(points: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(T, C, J, 3): what each camera sees on its own clock (frame t + offset_c, clamped)."""
    T = points.shape[0]
    idx = np.clip(np.arange(T)[:, None] + offsets[None, :], 0, T - 1)
    return points[idx]


def _project_own(rig: CameraRig, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project each camera's own points (T, C, J, 3).

    Returns:
        uv (T, C, J, 2) pixels (NaN behind the camera), depth (T, C, J) metres (camera z), and
        monotonic (T, C, J) bool: the lens model is one-to-one at that radius (no fold-back).
    """
    import torch
    from epiflow.calibration import projection as P
    T, C, J, _ = seen.shape
    X = torch.as_tensor(seen.transpose(1, 0, 2, 3).reshape(C, T * J, 3))
    p = rig.tensors()
    uv = P.project(X, p["K"], p["dist"], p["R"], p["t"]).numpy()
    cam = P.world_to_camera(X, p["R"], p["t"]).numpy()
    r2 = (cam[..., 0] ** 2 + cam[..., 1] ** 2) / np.maximum(cam[..., 2], 1e-12) ** 2
    k1, k2, k3 = (rig.dist[:, i, None] for i in (0, 1, 4))
    monotonic = 1 + r2 * (3 * k1 + r2 * (5 * k2 + r2 * 7 * k3)) > 0

    def back(a):
        return a.reshape(C, T, J, *a.shape[2:]).swapaxes(0, 1)
    return back(uv), back(cam[..., 2]), back(monotonic)


def _apparent_height(rig: CameraRig, seen: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(T, C) the person's apparent height, pixels: f_y · standing height / centroid depth."""
    extent = np.nanmax(points[..., 2], axis=1) - np.nanmin(points[..., 2], axis=1)
    stature = np.nanpercentile(extent, 95)
    centroid = np.nanmean(seen, axis=2)  # (T, C, 3)
    depth = np.einsum("cj,tcj->tc", rig.R[:, 2], centroid) + rig.t[None, :, 2]
    return np.where(depth > 0, rig.K[None, :, 1, 1] * stature / np.where(depth > 0, depth, 1),
                    np.nan)


def _segment_distance(p0, p1, q0, q1) -> tuple[np.ndarray, np.ndarray]:
    """Closest approach of segments p0→p1 and q0→q1 (broadcast (..., 3)): (distance, s on p)."""
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a, e = np.sum(d1 * d1, -1), np.sum(d2 * d2, -1)
    b, c, f = np.sum(d1 * d2, -1), np.sum(d1 * r, -1), np.sum(d2 * r, -1)
    denom = a * e - b * b
    s = np.clip(np.where(denom > 1e-12, (b * f - c * e) / np.maximum(denom, 1e-12), 0.0), 0, 1)
    t = (b * s + f) / np.maximum(e, 1e-12)
    s = np.where(t < 0, np.clip(-c / a, 0, 1), np.where(t > 1, np.clip((b - c) / a, 0, 1), s))
    t = np.clip(t, 0, 1)
    gap = p0 + s[..., None] * d1 - (q0 + t[..., None] * d2)
    return np.linalg.norm(gap, axis=-1), s


def _behind_torso(rig: CameraRig, seen: np.ndarray, joint_set: str, radius: float,
                  margin: float) -> np.ndarray:
    """(T, C, J) bool: the torso hides the joint from the camera.

    The torso is a capsule of ``radius`` metres around the segment pelvis → thorax; a joint is
    hidden when the ray from the camera centre to it passes through the capsule at least
    ``margin`` metres before reaching the joint (the far hip, an arm behind the back, ...).
    """
    h = map_to_h36m(seen, joint_set, confidence=False)
    pelvis, thorax = h[..., H36M17.index("pelvis"), :], h[..., H36M17.index("thorax"), :]
    cams = np.broadcast_to(rig.centers[None, :, None], seen.shape)
    dist, s = _segment_distance(cams, seen, pelvis[:, :, None], thorax[:, :, None])
    ray = np.linalg.norm(seen - cams, axis=-1)
    return (dist < radius) & ((1 - s) * ray > margin)


def _occlusion(candidate: np.ndarray, in_view: np.ndarray, fraction: float,
               rng: np.random.Generator) -> np.ndarray:
    """(T, C, J) bool drops: candidates first, others at random, ``fraction`` of in-view joints."""
    u = rng.random(in_view.shape)
    candidate = candidate & in_view
    n_view = max(int(in_view.sum()), 1)
    share = candidate.sum() / n_view
    if share >= fraction:
        return candidate & (u < fraction / max(share, 1e-12))
    extra = (fraction - share) / max(1 - share, 1e-12)
    return candidate | (in_view & ~candidate & (u < extra))


def _outliers(uv: np.ndarray, outlier: np.ndarray, height_px: np.ndarray, corruption: Corruption,
              rng: np.random.Generator) -> np.ndarray:
    """uv with the outlier entries moved ``outlier_distance`` × apparent height, random direction."""
    angle = rng.uniform(0, 2 * np.pi, outlier.shape)
    dist = rng.uniform(*corruption.outlier_distance, outlier.shape) * height_px[..., None]
    shift = np.stack([np.cos(angle), np.sin(angle)], -1) * dist[..., None]
    return np.where(outlier[..., None], uv + shift, uv)


def _confidence(uv: np.ndarray, clean: np.ndarray, scale: np.ndarray, outlier: np.ndarray,
                corruption: Corruption, rng: np.random.Generator) -> np.ndarray:
    """(T, C, J) confidence falling with the error at the 400 px reference; outliers drawn."""
    err = np.linalg.norm(uv - clean, axis=-1) / scale[..., None]
    conf = 1 / (1 + (err / corruption.confidence_halfwidth_px) ** 2)
    conf *= 1 - corruption.confidence_jitter * rng.random(conf.shape)
    drawn = rng.uniform(*corruption.outlier_confidence, conf.shape)
    return np.where(outlier, drawn, conf)


def _mirror(arrays: list[np.ndarray], swapped: np.ndarray, perm: np.ndarray) -> list[np.ndarray]:
    """Each (T, C, J, ...) array with its joints permuted by ``perm`` where ``swapped`` (T, C)."""
    out = []
    for a in arrays:
        a = a.copy()
        a[swapped] = a[swapped][:, perm]
        out.append(a)
    return out


def synthesize(motion: Motion, rig: CameraRig, corruption: Corruption = Corruption(),
               seed: int = 0, joint_set: str = "h36m17") -> SyntheticCapture:
    """A capture of ``motion`` by ``rig``, its 2D corrupted by ``corruption`` (module docstring).

    Args:
        motion: the 3D motion (T, J_src, 3), metres, world frame of the rig.
        rig: the true cameras.
        corruption: the detector's error model; ``Corruption.none()`` for exact keypoints.
        seed: random seed; the same seed gives the same arrays.
        joint_set: ``"h36m17"`` or the motion's own joint set.

    Returns:
        SyntheticCapture with keypoints (T, C, J, 3) and the ground truth. Mask arrays
        (``outlier``, ``dropped``, ``in_view``) describe the keypoint at each index of the output; in
        a swapped camera-frame the keypoint at index j is the detection of joint ``perm[j]``.
    """
    motion = _in_joint_set(motion, joint_set)
    rng = np.random.default_rng(seed)
    offsets = _time_offsets(len(rig), corruption.max_time_offset_frames, rng)
    seen = _seen_points(motion.points, offsets)
    clean, depth, monotonic = _project_own(rig, seen)
    w, h = rig.sizes[:, 0, None], rig.sizes[:, 1, None]
    in_view = (depth > 0) & monotonic & (clean[..., 0] >= 0) & (clean[..., 0] <= w - 1) \
        & (clean[..., 1] >= 0) & (clean[..., 1] <= h - 1)
    clean = np.where(in_view[..., None], clean, np.nan)
    height_px = _apparent_height(rig, seen, motion.points)
    scale = height_px / REFERENCE_HEIGHT_PX
    uv = clean + rng.normal(size=clean.shape) * (corruption.noise_px * scale)[..., None, None]
    candidate = _behind_torso(rig, seen, motion.joint_set, corruption.torso_radius,
                              corruption.occlusion_margin)
    dropped = _occlusion(candidate, in_view, corruption.drop_fraction, rng)
    observed = in_view & ~dropped
    outlier = observed & (rng.random(observed.shape) < corruption.outlier_fraction)
    uv = _outliers(uv, outlier, height_px, corruption, rng)
    conf = _confidence(uv, clean, scale, outlier, corruption, rng)
    data = np.concatenate([uv, conf[..., None]], axis=-1)
    data[~observed] = (np.nan, np.nan, 0.0)
    swapped = rng.random(observed.shape[:2]) < corruption.swap_fraction
    perm = get_joint_set(motion.joint_set).flip_permutation
    data, outlier, dropped, in_view = _mirror([data, outlier, dropped, in_view], swapped, perm)
    keypoints = Keypoints(data, motion.joint_set, tuple(rig.names), rig.sizes, motion.fps)
    return SyntheticCapture(keypoints, motion.points, rig, clean, outlier, swapped, dropped,
                            in_view, offsets, height_px, corruption, seed, motion.name)


def capture_center(motion: Motion) -> np.ndarray:
    """(3,) the point a rig should look at: the middle of the root's horizontal range, 1 m up."""
    root = motion.points[:, 0]
    lo, hi = np.nanmin(root[:, :2], axis=0), np.nanmax(root[:, :2], axis=0)
    return np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, 1.0])


def cmu_clip_path(clip: str, data_dir) -> Path:
    """Where :func:`cmu_capture` reads clip ``clip`` (``02_01``) of the shared data folder
    ``data_dir``: ``data_dir/cmu_mocap/<subject>/<clip>.amc``."""
    return Path(data_dir) / "cmu_mocap" / clip.split("_")[0] / f"{clip}.amc"


def cmu_capture(clip: str = "02_01", n_cameras: int = 4, corruption: Corruption = Corruption(),
                seed: int = 0, layout: str = "ring", data_dir=None, fps: float | None = 30.0,
                joint_set: str = "h36m17", **rig_options) -> SyntheticCapture:
    """A synthetic capture of a CMU clip by a virtual rig centred on the motion.

    Args:
        clip: the clip's name (``02_01``): a packaged clip (see ``epiflow/data/README.md``) when
            ``data_dir`` is None, else ``data_dir/cmu_mocap/<subject>/<clip>.amc``.
        n_cameras, layout, **rig_options: passed to :func:`make_rig` (radius, height, focal_px,
            size, distortion); the rig looks at :func:`capture_center` of the motion.
        corruption, joint_set: as in :func:`synthesize`.
        seed: seeds the rig (``seed``) and the corruption (``seed + 1``).
        data_dir: the shared real-data folder, or None for the packaged clips.
        fps: resample the motion to this rate (None keeps it: 30 packaged, 120 from ASF/AMC).
    """
    if data_dir is None:
        motion = load_packaged_clip(clip)
    else:
        motion = load_cmu_clip(cmu_clip_path(clip, data_dir))
    if fps is not None and fps != motion.fps:
        motion = motion.resample(fps)
    rig = make_rig(n_cameras, layout, target=capture_center(motion), seed=seed, **rig_options)
    return synthesize(motion, rig, corruption, seed=seed + 1, joint_set=joint_set)


def skeleton_crops(keypoints2d: np.ndarray, joint_set: str, size: int, margin: float = 1.25,
                   min_confidence: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Person crops of a synthetic capture (it has no pixels): the 2D skeleton drawn, one colour
    per bone, on black, in the square the pipeline crops a video around (the seen joints'
    extent times ``margin``, at least 16 px, centred on it; as
    :func:`epiflow.detection.crops.person_crops`).

    Args:
        keypoints2d: (T, C, J, 3) pixels and confidence. joint_set: their joint set (the bones).
        size: the crops' side, pixels.

    Returns:
        crops (T, C, size, size, 3) uint8 RGB (zeros where fewer than two joints have
        ``min_confidence``) and boxes (T, C, 4) float32 ``x0, y0, x1, y1`` pixels (NaN there).
    """
    import colorsys

    import cv2
    bones = get_joint_set(joint_set).bones
    colours = [tuple(int(255 * v) for v in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.85, 1.0))
               for i in range(len(bones))]
    kp = np.asarray(keypoints2d, np.float64)
    T, C = kp.shape[:2]
    crops = np.zeros((T, C, size, size, 3), np.uint8)
    boxes = np.full((T, C, 4), np.nan, np.float32)
    for t, c in np.ndindex(T, C):
        ok = np.isfinite(kp[t, c, :, :2]).all(-1) & (kp[t, c, :, 2] >= min_confidence)
        if ok.sum() < 2:
            continue
        lo, hi = kp[t, c, ok, :2].min(0), kp[t, c, ok, :2].max(0)
        side = max(float((hi - lo).max()) * margin, 16.0)
        corner = (lo + hi) / 2 - side / 2
        boxes[t, c] = (*corner, *(corner + side))
        xy = np.round(np.nan_to_num(kp[t, c, :, :2] - corner) * (size / side)).astype(int)
        for (a, b), colour in zip(bones, colours):
            if ok[a] and ok[b]:
                cv2.line(crops[t, c], tuple(xy[a]), tuple(xy[b]), colour, max(1, size // 32),
                         cv2.LINE_AA)
    return crops, boxes


def motion_at(motion: Motion, times: np.ndarray) -> np.ndarray:
    """(N, J, 3) the motion's joints at ``times`` seconds from its first frame, linearly
    interpolated (clamped to the clip)."""
    u = np.clip(np.asarray(times, np.float64) * motion.fps, 0, motion.n_frames - 1)
    lo = np.minimum(np.floor(u).astype(int), motion.n_frames - 2)
    w = (u - lo)[:, None, None]
    return (1 - w) * motion.points[lo] + w * motion.points[lo + 1]


def unsynchronized_capture(motion: Motion, rig: CameraRig, fps, offsets, n_frames,
                           corruption: Corruption = Corruption(), seed: int = 0,
                           start: float = 0.0, joint_set: str = "h36m17"):
    """A capture by cameras that are not synchronized: camera c's frame k shows the motion at
    ``start + offsets[c] + k / fps[c]`` seconds (motion time; ``offsets`` in seconds on camera
    0's clock, camera 0 at 0), its 2D corrupted as :func:`synthesize` does (seed ``seed + c``).

    Args:
        motion: the 3D motion (a high rate, e.g. CMU's 120 fps, keeps interpolation exact).
        rig: the true cameras. fps, offsets, n_frames: (C,) each camera's rate, clock offset
            (seconds) and frame count.

    Returns:
        :class:`~epiflow.calibration.sync.CameraStreams`, each camera's (n_frames[c], J, 3) on
        its own clock.
    """
    tracks = []
    for c in range(len(rig)):
        times = start + frame_times(n_frames[c], fps[c], offsets[c])
        part = Motion(motion_at(motion, times), motion.joint_set, fps[c], motion.name)
        cap = synthesize(part, rig.subset([c]), corruption, seed=seed + c, joint_set=joint_set)
        tracks.append(cap.keypoints.data[:, 0])
    return CameraStreams(tuple(tracks), np.asarray(fps, float), tuple(rig.names), joint_set,
                         rig.sizes)
