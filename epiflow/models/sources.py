"""Training data from synthetic captures of CMU motion: the sessions a recipe trains on when its
store does not exist yet.

For each clip: a synthetic capture (:func:`epiflow.datasets.synthetic.cmu_capture`), cameras
recovered from the people in it (:func:`epiflow.calibration.from_people.calibrate_from_people`)
or the true ones, pseudo-labels by robust multi-view triangulation
(:func:`epiflow.calibration.triangulation.triangulate_sequence`) or by EpipolarPose's two views
(``triangulate_two_view``), and the ground truth, written to a pose store as one session per
clip (:func:`write_session`). Ground truth is stored in the true world frame with the true
cameras beside it (``gt_cameras_toml``), so it can be put into any camera's frame exactly.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from epiflow.calibration.camera import CameraRig
from epiflow.models.config import SourceConfig
from epiflow.models.data import SessionArrays

__all__ = ["capture_source", "session_from_capture", "oracle_session", "crop_boxes",
           "render_crops", "recover_cameras", "label_session", "write_session", "build_store",
           "synthetic_sessions"]


def capture_source(clip: str, source: SourceConfig):
    """The synthetic capture of one clip as ``source`` describes it (rig seeded by ``seed``)."""
    from epiflow.datasets.synthetic import Corruption, cmu_capture
    corruption = Corruption(noise_px=source.noise_px, outlier_fraction=source.outlier_fraction)
    return cmu_capture(clip, source.n_cameras, corruption, seed=source.seed, layout=source.layout,
                       data_dir=source.data_dir or None, fps=source.fps, radius=source.radius,
                       focal_px=source.focal_px)


def session_from_capture(capture, name: str | None = None) -> SessionArrays:
    """A session of a synthetic capture with its true cameras and ground truth, no labels yet."""
    kp = capture.keypoints
    return SessionArrays(name or capture.name, kp.data.astype(np.float32), capture.rig,
                         kp.joint_set, gt3d=capture.points3d.astype(np.float32),
                         gt_rig=capture.rig, fps=kp.fps)


def crop_boxes(keypoints2d: np.ndarray, margin: float = 1.25) -> np.ndarray:
    """Square person boxes (the pipeline's crop rule: the seen joints' extent times ``margin``,
    at least 16 px, centred on it).

    Args:
        keypoints2d: (..., J, 3) pixels and confidence.

    Returns:
        (..., 4) float32 ``x0, y0, x1, y1`` pixels; NaN where fewer than two joints are seen.
    """
    kp = np.asarray(keypoints2d, np.float64)
    ok = np.isfinite(kp[..., :2]).all(-1) & (kp[..., 2] > 0)
    xy = np.where(ok[..., None], kp[..., :2], np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanmin(xy, -2), np.nanmax(xy, -2)
    side = np.maximum((hi - lo).max(-1) * margin, 16.0)[..., None]
    corner = (lo + hi) / 2 - side / 2
    boxes = np.concatenate([corner, corner + side], -1)
    boxes[ok.sum(-1) < 2] = np.nan
    return boxes.astype(np.float32)


def render_crops(keypoints2d: np.ndarray, joint_set: str, size: int) -> np.ndarray:
    """Person crops for synthetic captures: the 2D skeleton drawn in its :func:`crop_boxes`
    square, one colour per bone, on black.

    Args:
        keypoints2d: (T, C, J, 3) pixels and confidence.

    Returns:
        (T, C, size, size, 3) uint8 RGB; all zeros where fewer than two joints are seen.
    """
    import cv2
    from epiflow.skeleton import get_joint_set
    bones = get_joint_set(joint_set).bones
    colours = [tuple(int(255 * v) for v in plt_colour(i)) for i in range(len(bones))]
    boxes = crop_boxes(keypoints2d)
    T, C = keypoints2d.shape[:2]
    out = np.zeros((T, C, size, size, 3), np.uint8)
    for t, c in zip(*np.nonzero(np.isfinite(boxes[..., 0]))):
        kp = keypoints2d[t, c]
        ok = np.isfinite(kp[:, :2]).all(-1) & (kp[:, 2] > 0)
        xy = (kp[:, :2] - boxes[t, c, :2]) * (size / (boxes[t, c, 2] - boxes[t, c, 0]))
        for (a, b), colour in zip(bones, colours):
            if ok[a] and ok[b]:
                cv2.line(out[t, c], tuple(int(v) for v in xy[a].round()),
                         tuple(int(v) for v in xy[b].round()), colour, max(1, size // 32),
                         cv2.LINE_AA)
    return out


def plt_colour(i: int) -> tuple[float, float, float]:
    """A distinct RGB colour in [0, 1] for index ``i`` (HSV wheel, golden-ratio steps)."""
    import colorsys
    return colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.85, 1.0)


def oracle_session(clip: str = "02_01", seed: int = 0, label_noise_m: float = 0.0,
                   n_cameras: int = 4, name: str | None = None, crop_size: int = 0
                   ) -> SessionArrays:
    """A synthetic session of a packaged clip (no shared data needed) whose pseudo-labels are the
    ground truth plus Gaussian noise of ``label_noise_m`` metres, weight 1, with the true cameras
    (and :func:`render_crops` when ``crop_size`` > 0): small, exactly known training data for
    tests and demos."""
    from epiflow.datasets.synthetic import cmu_capture
    base = session_from_capture(cmu_capture(clip, n_cameras, seed=seed), name)
    noise = np.random.default_rng(seed).normal(0, label_noise_m, base.gt3d.shape)
    return SessionArrays(base.name, base.keypoints2d, base.rig, base.joint_set,
                         (base.gt3d + noise).astype(np.float32),
                         np.ones(base.gt3d.shape[:2], np.float32), base.gt3d, base.gt_rig,
                         render_crops(base.keypoints2d, base.joint_set, crop_size)
                         if crop_size else None, fps=base.fps)


def recover_cameras(capture, source: SourceConfig) -> tuple[CameraRig, dict]:
    """The cameras ``source`` asks for (recovered from the people, or the true ones) and the
    calibration report."""
    if source.cameras == "true":
        return capture.rig, {"method": "true"}
    from epiflow.calibration.from_people import calibrate_from_people
    intrinsics = capture.rig if source.intrinsics == "known" else None
    result = calibrate_from_people(capture.keypoints, intrinsics=intrinsics)
    return result.rig, dict(result.report)


def label_session(capture, source: SourceConfig, cameras: tuple[CameraRig, dict] | None = None
                  ) -> tuple[SessionArrays, dict]:
    """Cameras and pseudo-labels for one capture; returns (session, calibration report).

    The session's world frame is that of the recovered cameras (``cameras`` when given, as
    :func:`recover_cameras` returns them); ``gt3d`` stays in the true world frame with ``gt_rig``
    the true cameras.
    """
    rig, report = cameras or recover_cameras(capture, source)
    kp = capture.keypoints.data
    if source.labels == "robust":
        from epiflow.calibration.triangulation import triangulate_sequence
        tri = triangulate_sequence(rig, kp, capture.keypoints.joint_set)
        points, weight = np.asarray(tri.points), np.asarray(tri.weight)
    else:
        points, weight = _two_view_labels(rig, kp, capture.keypoints.joint_set)
    base = session_from_capture(capture)
    weight = np.where(np.isfinite(points).all(-1), np.nan_to_num(weight), 0.0)
    crops = (render_crops(base.keypoints2d, base.joint_set, source.crop_size)
             if source.crop_size else None)
    session = SessionArrays(base.name, base.keypoints2d, rig, base.joint_set,
                            points.astype(np.float32), weight.astype(np.float32), base.gt3d,
                            base.gt_rig, crops, fps=base.fps)
    return session, report


def _two_view_labels(rig: CameraRig, keypoints2d: np.ndarray, joint_set: str
                     ) -> tuple[np.ndarray, np.ndarray]:
    """EpipolarPose's labels: cameras 0 and 1 only, plain linear triangulation, every label
    weighted alike (it has no notion of label quality); in the rig's world frame."""
    from epiflow.calibration.triangulation import triangulate_two_view
    tri = triangulate_two_view(rig, keypoints2d, pair=(0, 1), frame="world", joint_set=joint_set)
    points = np.asarray(tri.points)
    return points, np.isfinite(points).all(-1).astype(np.float32)


def write_session(store, session: SessionArrays, calibration: dict | None = None,
                  attrs: dict | None = None, chunk_frames: int = 256) -> None:
    """Write an in-memory session (keypoints, cameras, labels, ground truth) into a store.

    Args:
        store: an open :class:`epiflow.store.PoseStore` (mode ``"a"``).
        calibration: the calibration report stored with the cameras.
    """
    T, C = session.keypoints2d.shape[:2]
    s = store.create_session(
        session.name, n_frames=T, camera_names=session.rig.names, joint_set=session.joint_set,
        image_size=session.rig.sizes, fps=session.fps, chunk_frames=chunk_frames,
        crop_size=0 if session.crops is None else session.crops.shape[2],
        with_gt3d=session.gt3d is not None, attrs=attrs)
    boxes = crop_boxes(session.keypoints2d)
    for unit in range(-(-T // s.chunk_frames)):
        start, stop = s.unit_frames(unit)
        for c in range(C):
            crops = None if session.crops is None else session.crops[start:stop, c]
            s.write_unit(unit, c, session.keypoints2d[start:stop, c], crops, boxes[start:stop, c])
    for stage in ("ingest", "detect"):
        s.set_status(stage, "done")
    s.write_rig(session.rig, str((calibration or {}).get("method", "given")), calibration)
    s.set_status("calibrate", "done")
    if session.pseudo3d is not None:
        err = np.full(session.pseudo3d.shape[:2], np.nan, np.float32)
        s.write_labels(session.pseudo3d, session.pseudo3d_weight, err)
        s.set_status("triangulate", "done")
    if session.gt3d is not None:
        s.write_gt3d(session.gt3d, "true_world", session.gt_rig)
    if session.pseudo3d is not None:
        s.mark_complete()


def synthetic_sessions(source: SourceConfig, progress: bool = True
                       ) -> list[tuple[SessionArrays, dict]]:
    """(session, calibration report) for every clip of ``source`` (see the module docstring)."""
    if not source.clips:
        raise ValueError("config key 'data.source.clips' is empty; name the CMU clips to capture, "
                         "e.g. clips = ['02_01', '02_02']")
    out = []
    for clip in tqdm(source.clips, desc="synthetic captures", disable=not progress):
        out.append(label_session(capture_source(clip, source), source))
    return out


def build_store(path, source: SourceConfig, progress: bool = True):
    """Build the pose store at ``path`` from ``source`` (one session per clip); returns it open.

    A local store is written beside its path first and renamed into place when every session is
    in, so an interrupted build leaves no half store behind to train on (an fsspec URL is
    written in place).
    """
    from epiflow.config import to_dict
    from epiflow.store import PoseStore
    if source.kind != "cmu_synthetic":
        raise ValueError(f"cannot build a store from data.source.kind = {source.kind!r}; "
                         f"only 'cmu_synthetic' builds one")
    local = "://" not in str(path)
    target = Path(path)
    work = target.with_name(target.name + ".building") if local else path
    if local:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    store = PoseStore.open(work, "a")
    for session, report in synthetic_sessions(source, progress):
        write_session(store, session, report,
                      attrs={"source": {"kind": source.kind, **to_dict(source)}})
    if not local:
        return store
    try:
        Path(work).rename(target)
    except OSError:  # another run finished the same store first: use that one
        shutil.rmtree(work, ignore_errors=True)
    return PoseStore.open(target, "r")
