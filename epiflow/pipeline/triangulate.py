"""Triangulate: a session's weighted 3D pseudo-labels from its stored 2D keypoints and cameras.

One detection slot (P = 1): the one person, today's robust :func:`triangulate_sequence`, N = 1,
person id 0. Several slots (P > 1): the slots are associated across cameras and through time and
each person triangulated (:func:`epiflow.calibration.people.triangulate_people`); its warnings
and per-person, per-camera record go into the summary the store keeps (attr ``labels``).
"""
from __future__ import annotations

import numpy as np

from epiflow.pipeline.config import TriangulateConfig
from epiflow.store import Session

__all__ = ["triangulate_session", "views_tcj", "camera_reproj_px", "person_slots",
           "person_camera_quality"]


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

    Reads ``keypoints2d (T, C, P, J, 3)`` and the session's rig; writes ``pseudo3d (T, N, J, 3)``
    metres, ``pseudo3d_weight (T, N, J)``, ``reproj_error (T, N, J)`` pixels,
    ``pseudo3d_views (T, N, C, J)`` and ``person_ids (N,)``.

    Returns:
        A summary: fraction of joints labelled, of camera-frames found left/right mirrored,
        median weight and reprojection error (pixels), per camera the share of the labels of
        joints it sees that used it (``camera_share``) and the median reprojection error of the
        views used (``median_reproj_px_per_camera``), warnings (a camera dropped from most, or
        disagreeing for a person); with several people also ``people``: per person id its
        frames labelled and per camera the frames of each reason a view was or was not used.
    """
    kp = np.asarray(session.keypoints2d[:], dtype=np.float64)
    if kp.shape[2] > 1:
        return _people(session, kp, cfg)
    return _one_person(session, kp[:, :, 0], cfg)


def _one_person(session: Session, kp: np.ndarray, cfg: TriangulateConfig) -> dict:
    """P = 1: ``kp`` (T, C, J, 3), the one person (id 0)."""
    from epiflow.calibration.triangulation import camera_shares, dropped_camera_warnings
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
    session.write_labels(points[:, None], weight[:, None], error[:, None], views[:, None], [0])
    flipped = getattr(tri, "flipped", None)
    shares = camera_shares(views, kp[..., 2] > 0, labelled)
    names = session.camera_names
    return {"labelled": float(labelled.mean()),
            "flipped": None if flipped is None else float(np.asarray(flipped).mean()),
            "median_weight": float(np.median(weight[labelled])) if labelled.any() else None,
            "median_reproj_px": float(np.nanmedian(error[labelled])) if labelled.any() else None,
            "camera_share": {n: None if np.isnan(v) else float(v)
                             for n, v in zip(names, shares)},
            "median_reproj_px_per_camera": _named(names, camera_reproj_px(
                session.rig, points[:, None], kp[:, :, None], np.zeros((T, C, 1), int),
                views[:, None])),
            "warnings": dropped_camera_warnings(names, shares)
            if cfg.method == "multiview" else []}  # two_view leaves the other cameras out


def _people(session: Session, kp: np.ndarray, cfg: TriangulateConfig) -> dict:
    """P > 1: ``kp`` (T, C, P, J, 3) unassociated slots, associated and triangulated per person."""
    from epiflow.calibration.people import triangulate_people
    if cfg.method != "multiview":
        raise ValueError(f"config key 'triangulate.method' = {cfg.method!r}: several people "
                         f"(detect.max_people > 1 or a keypoints P axis) are triangulated by "
                         f"'multiview' only")
    options = cfg.options.kwargs()
    if not options.get("min_confidence"):  # associate's own default ignores joints <= 0.1
        options.pop("min_confidence", None)
    rig = session.rig  # parsed from the camera TOML attribute: once
    res = triangulate_people(rig, kp, session.joint_set, fps=session.fps, **options)
    if len(res.person_ids) == 0:
        raise ValueError(f"session {session.id!r}: no person was seen by two cameras that agree "
                         f"in its {kp.shape[2]} detection slots; check that the cameras belong "
                         f"to these keypoints")
    session.write_labels(res.points3d, res.weight, res.reproj_error, res.views, res.person_ids,
                         person_slots(res.assignment, len(res.person_ids)))
    labelled = res.weight > 0
    per_camera = camera_reproj_px(rig, res.points3d, kp, res.assignment, res.views)
    names = session.camera_names
    return {"labelled": float(labelled.mean()), "flipped": None,
            "median_weight": float(np.median(res.weight[labelled])) if labelled.any() else None,
            "median_reproj_px": float(np.nanmedian(res.reproj_error[labelled]))
            if labelled.any() else None,
            "camera_share": _named(names, _mean_over_people(res.camera_share)),
            "median_reproj_px_per_camera": _named(names, per_camera),
            "people": {str(int(i)): {"frames_labelled": int(labelled[:, n].any(-1).sum()),
                                     "cameras": res.camera_reasons.get(int(i), {})}
                       for n, i in enumerate(res.person_ids)},
            "warnings": list(res.warnings)}


def person_slots(assignment: np.ndarray, n_people: int) -> np.ndarray:
    """(T, N, C) int16 slot of each person per camera (-1 none) from the (T, C, P) assignment
    (person index of each slot, -1 none)."""
    T, C, _ = assignment.shape
    slots = np.full((T, n_people, C), -1, np.int16)
    t, c, p = np.nonzero(assignment >= 0)
    slots[t, assignment[t, c, p], c] = p
    return slots


def camera_reproj_px(rig, points: np.ndarray, kp: np.ndarray, assignment: np.ndarray,
                     views: np.ndarray) -> np.ndarray:
    """(C,) median reprojection error, pixels, per camera of the views the labels used.

    Args:
        points: (T, N, J, 3) metres. kp: (T, C, P, J, 3) detections, pixels.
        assignment: (T, C, P) int, person index (axis N) of each slot, -1 none.
        views: (T, N, C, J) bool, the views used.
    """
    T, C, P = assignment.shape
    errors: list[list[np.ndarray]] = [[] for _ in range(C)]
    with np.errstate(invalid="ignore"):
        for n in range(points.shape[1]):
            det = np.full((T, C) + kp.shape[3:], np.nan)
            t, c, p = np.nonzero(assignment == n)
            det[t, c] = kp[t, c, p]
            err = rig.reprojection_error(points[:, n], det[..., :2].transpose(1, 0, 2, 3))
            used = views[:, n].transpose(1, 0, 2)
            for cam in range(C):
                errors[cam].append(err[cam][used[cam] & np.isfinite(err[cam])])
    return np.array([np.median(np.concatenate(e)) if sum(map(len, e)) else np.nan
                     for e in errors])


def person_camera_quality(rig, labels, detections: np.ndarray) -> list[dict]:
    """Per person and camera, from stored labels: how often the camera detects the person, how
    often its view went into the person's labels, and how far its detections of the person lie
    from the labels' projections.

    Args:
        rig: the session's cameras (world frame). labels: :class:`~epiflow.store.Labels`
            (N people, ``slots`` (T, N, C)). detections: (T, C, P, J, 3) pixels + confidence.

    Returns:
        a dict per person: ``id`` and ``cameras`` {name: {``detected``: share of the T frames
        with a slot of the person in the camera, ``used``: share of the person's labelled
        joints whose label used the camera, ``reproj_px``: median over the person's labelled
        joints the camera detects (confidence > 0), used or not, of the pixel distance between
        detection and projected label; None where there is none}}.
    """
    out = []
    for n in range(labels.n_people):
        person = labels.person(n)
        kp = person.keypoints(np.asarray(detections))                        # (T, C, J, 3)
        labelled = person.weight > 0                                          # (T, J)
        with np.errstate(invalid="ignore"):
            err = rig.reprojection_error(person.pseudo3d, np.moveaxis(kp[..., :2], 1, 0))
        seen = np.moveaxis(kp[..., 2] > 0, 1, 0) & labelled & np.isfinite(err)  # (C, T, J)
        cams = {}
        for c, name in enumerate(rig.names):
            cams[name] = {
                "detected": float((person.slots[:, c] >= 0).mean()),
                "used": float(person.views[:, c][labelled].mean()) if labelled.any() else None,
                "reproj_px": float(np.median(err[c][seen[c]])) if seen[c].any() else None}
        out.append({"id": person.person_id, "cameras": cams})
    return out


def _mean_over_people(share: np.ndarray) -> np.ndarray:
    """(C,) mean over the people of a (N, C) share, NaN where no person has one."""
    seen = np.isfinite(share)
    total = np.where(seen, share, 0.0).sum(0)
    return np.where(seen.any(0), total / np.maximum(seen.sum(0), 1), np.nan)


def _named(names, values) -> dict:
    """{camera name: value or None (NaN)}."""
    return {n: None if not np.isfinite(v) else float(v) for n, v in zip(names, values)}


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
