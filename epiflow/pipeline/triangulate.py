"""Triangulate: a session's weighted 3D pseudo-labels from its stored 2D keypoints and cameras."""
from __future__ import annotations

import numpy as np

from epiflow.pipeline.config import TriangulateConfig
from epiflow.store import Session

__all__ = ["triangulate_session", "views_tcj"]


def views_tcj(views: np.ndarray, T: int, C: int, J: int) -> np.ndarray:
    """The views-used mask (T, C, J) bool of a triangulated sequence, checked.

    The camera axis has one place in a sequence's arrays, second (README, "the camera axis"): the
    layout is not guessed from the shape, which could not tell (T, C, J) from (C, T, J) when
    T == C.
    """
    views = np.asarray(views, dtype=bool)
    if views.shape != (T, C, J):
        raise ValueError(f"views must be (T, C, J) = {(T, C, J)} (frames, cameras, joints); got "
                         f"{views.shape}")
    return views


def triangulate_session(session: Session, cfg: TriangulateConfig) -> dict:
    """Triangulate every frame and joint of ``session`` with its cameras and write the labels.

    Reads ``keypoints2d (T, C, J, 3)`` and the session's rig; writes ``pseudo3d (T, J, 3)``
    metres, ``pseudo3d_weight (T, J)``, ``reproj_error (T, J)`` pixels, ``pseudo3d_views``.

    Returns:
        A summary: fraction of joints labelled, of camera-frames found left/right mirrored,
        median weight and reprojection error (pixels), per camera the share of the labels of
        joints it sees that used it (``camera_share``), and warnings (a camera dropped from most).
    """
    from epiflow.calibration.triangulation import camera_shares, dropped_camera_warnings
    kp = np.asarray(session.keypoints2d[:], dtype=np.float64)
    T, C, J, _ = kp.shape
    tri = _triangulation(session, kp, cfg)
    points = np.asarray(tri.points, dtype=np.float64).reshape(T, J, 3)
    weight = np.nan_to_num(np.asarray(tri.weight, dtype=np.float64).reshape(T, J))
    if cfg.method == "two_view":  # EpipolarPose weighs every label alike
        weight = np.ones_like(weight)
    error = np.asarray(tri.reproj_error, dtype=np.float64).reshape(T, J)
    labelled = np.isfinite(points).all(-1)
    weight[~labelled] = 0.0
    views = views_tcj(tri.views, T, C, J)
    session.write_labels(points, weight, error, views)
    flipped = getattr(tri, "flipped", None)
    shares = camera_shares(views, kp[..., 2] > 0, labelled)
    return {"labelled": float(labelled.mean()),
            "flipped": None if flipped is None else float(np.asarray(flipped).mean()),
            "median_weight": float(np.median(weight[labelled])) if labelled.any() else None,
            "median_reproj_px": float(np.nanmedian(error[labelled])) if labelled.any() else None,
            "camera_share": {n: None if np.isnan(v) else float(v)
                             for n, v in zip(session.camera_names, shares)},
            "warnings": dropped_camera_warnings(session.camera_names, shares)
            if cfg.method == "multiview" else []}  # two_view leaves the other cameras out


def _triangulation(session: Session, kp: np.ndarray, cfg: TriangulateConfig):
    """The :class:`~epiflow.calibration.triangulation.Triangulation` of (T, C, J, 3) ``kp``
    by ``cfg.method``, in the session's world frame."""
    from epiflow.calibration import triangulation as tr
    if cfg.method == "two_view":
        return tr.triangulate_two_view(session.rig, kp, pair=(0, 1), frame="world",
                                       joint_set=session.joint_set)
    if cfg.method != "multiview":
        raise ValueError(f"config key 'triangulate.method': expected 'multiview' or 'two_view'; "
                         f"got {cfg.method!r}")
    return tr.triangulate_sequence(session.rig, kp, joint_set=session.joint_set, fps=session.fps,
                                   **cfg.options.kwargs())
