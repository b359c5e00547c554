"""Several people seen by calibrated cameras: who is who in every view, and each one's 3D.

:func:`triangulate_people` is the entry point. From raw detections ``(T, C, P, J, 3)`` (P
unassociated slots per camera-frame) it

1. groups each frame's detections across views (:func:`~.association.associate`): epipolar
   affinities, complete-linkage groups, reprojection checks; ghosts (seen by one camera only)
   join no group;
2. links the groups through time (:func:`~.tracking.link_tracks`) into people with stable ids;
3. gathers each person's detections into ``(T, C, J, 3)`` and triangulates them with today's
   robust, weighted :func:`~.triangulation.triangulate_sequence` (consensus of views, left/right
   swap test, temporal re-placement, a weight per joint);
4. records for every person, frame and camera why a view was not used (:class:`ViewReason`) and
   warns, by name, of a camera that disagrees with the others for a large share of a person's
   frames (a detection near where the person projects that the geometry refused, or one that
   was assigned but out-voted on most joints).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from epiflow.calibration.association import DetectionReason, associate, check_detections
from epiflow.calibration.camera import CameraRig
from epiflow.calibration.relative_pose import quiet_nan_warnings
from epiflow.calibration.tracking import link_tracks, renumbered
from epiflow.calibration.triangulation import (TriangulationOptions, camera_shares,
                                               dropped_camera_warnings, triangulate_sequence)

__all__ = ["ViewReason", "VIEW_REASON_TEXT", "PeopleResult", "triangulate_people",
           "person_detections",
           "people_from_assignment", "DISAGREE_SHARE"]

#: a camera whose view of a person disagrees with the other views in more than this share of the
#: frames where it sees the person is named in the warnings
DISAGREE_SHARE = 0.3


class ViewReason(IntEnum):
    """Why a camera's view of a person at a frame was or was not used: ``camera_reason``."""

    USED = 0
    NOT_DETECTED = 1
    OUTSIDE_IMAGE = 2
    DISAGREES = 3
    NO_LABEL = 4


#: the words of each :class:`ViewReason`, as reports and ``camera_reasons`` write them
VIEW_REASON_TEXT = {ViewReason.USED: "used", ViewReason.NOT_DETECTED: "not detected",
                    ViewReason.OUTSIDE_IMAGE: "outside the image",
                    ViewReason.DISAGREES: "disagrees with the other views",
                    ViewReason.NO_LABEL: "no 3D label at this frame"}


@dataclass(frozen=True, eq=False)
class PeopleResult:
    """Each person's 3D and how it was made (numpy).

    Attributes:
        points3d: (T, N, J, 3) metres, world frame; NaN = no label.
        weight: (T, N, J) in [0, 1]; 0 where no label.
        reproj_error: (T, N, J) mean reprojection error over the views used, pixels.
        person_ids: (N,) int, stable over time (the track numbers, by first appearance).
        assignment: (T, C, P) int, index into N of each detection slot's person; -1 = none.
        views: (T, N, C, J) bool, the views each label used.
        camera_reason: (T, N, C) int8 :class:`ViewReason`.
        camera_share: (N, C) share of the person's labelled frames in which the camera's view
            was used, among those where it projects into the image; NaN if never.
        camera_reasons: {person id: {camera name: {reason text: frames, ..., "share used": x}}}.
        detection_reason: (T, C, P) int8 :class:`~.association.DetectionReason` of every slot.
        disagree_offset_px: (T, N, C) distance, pixels, from the person's projection to the
            refused detection near it (the DISAGREES case); NaN otherwise.
        warnings: sentences naming the camera and person where a camera disagrees with the others
            for a large share of a person's frames, and people dropped by ``max_people``.
        camera_names: the rig's names (axis C). joint_set: the joints' set.
    """

    points3d: np.ndarray
    weight: np.ndarray
    reproj_error: np.ndarray
    person_ids: np.ndarray
    assignment: np.ndarray
    views: np.ndarray
    camera_reason: np.ndarray
    camera_share: np.ndarray
    camera_reasons: dict
    detection_reason: np.ndarray
    disagree_offset_px: np.ndarray
    warnings: list[str] = field(default_factory=list)
    camera_names: tuple[str, ...] = ()
    joint_set: str = "h36m17"


def _split_options(options: dict) -> tuple[dict, dict, dict]:
    """The options of associate, link_tracks and triangulate_sequence (shared names go to all
    that take them); an unknown name is an error."""
    def names(f):
        return {n for n, p in inspect.signature(f).parameters.items() if p.kind is p.KEYWORD_ONLY}
    a, t = names(associate), names(link_tracks)
    s = {f for f in TriangulationOptions.__dataclass_fields__} | {"fps"}
    unknown = sorted(set(options) - a - t - s)
    if unknown:
        raise TypeError(f"triangulate_people: unknown options {unknown}; it takes max_people, "
                        f"those of associate {sorted(a)}, of link_tracks {sorted(t)} and of "
                        f"triangulate_sequence {sorted(s)}")
    return ({k: v for k, v in options.items() if k in a},
            {k: v for k, v in options.items() if k in t},
            {k: v for k, v in options.items() if k in s})


def _people_assignment(group: np.ndarray, track: np.ndarray) -> np.ndarray:
    """(T, C, P) track of each slot from its group (T, C, P) and the groups' tracks (T, G)."""
    t = np.broadcast_to(np.arange(group.shape[0])[:, None, None], group.shape)
    if track.shape[1] == 0:
        return np.full(group.shape, -1)
    return np.where(group >= 0, track[t, np.maximum(group, 0)], -1)


def _in_image(rig: CameraRig, points: np.ndarray) -> np.ndarray:
    """(..., C) bool: at least half of the placed joints of poses (..., J, 3) project into the
    camera's image (in front of it)."""
    proj = np.moveaxis(rig.project(np.nan_to_num(points, nan=1e6)), 0, -3)  # (..., C, J, 2)
    placed = np.isfinite(points).all(-1)[..., None, :]
    w, h = rig.sizes[:, 0][:, None], rig.sizes[:, 1][:, None]
    inside = placed & (proj[..., 0] >= 0) & (proj[..., 0] < w) & (proj[..., 1] >= 0) \
        & (proj[..., 1] < h)
    return inside.sum(-1) >= 0.5 * np.maximum(placed.sum(-1), 1)


def _drop_unsupported(rig, assoc, track, assignment, min_support: float):
    """Remove the people whose median support over their frames (cameras with their detection /
    cameras whose image they project into) is below ``min_support``: two ghosts agreeing along
    an epipolar line make a phantom that the other cameras, which should see it, do not. Returns
    (assignment renumbered, (T, C, P) bool slots removed)."""
    n = assignment.max(initial=-1) + 1
    if n == 0 or not min_support:
        return assignment, np.zeros(assignment.shape, bool)
    t, g = np.nonzero(track >= 0)
    support = assoc.n_views[t, g] / np.maximum(_in_image(rig, assoc.points3d[t, g]).sum(-1), 2)
    median = np.array([np.median(support[track[t, g] == k]) for k in range(n)])
    out = renumbered(assignment, np.flatnonzero(median >= min_support), n)
    return out, (assignment >= 0) & (out < 0)


def _keep_most_confident(det, assignment, max_people):
    """(assignment with the people beyond ``max_people`` removed and renumbered by first
    appearance, dropped (T, C, P) bool, a note or None). Confidence: the sum over a person's
    detections of their mean joint confidence."""
    n = assignment.max(initial=-1) + 1
    if max_people is None or n <= max_people:
        return assignment, np.zeros(assignment.shape, bool), None
    conf = np.nan_to_num(det[..., 2]).mean(-1)
    score = np.bincount(assignment[assignment >= 0], conf[assignment >= 0], minlength=n)
    keep = np.sort(np.argsort(-score, kind="stable")[:max_people])
    out = renumbered(assignment, keep, n)
    dropped = (assignment >= 0) & (out < 0)
    gone = sorted(set(range(n)) - set(keep.tolist()))
    note = (f"max_people={max_people}: {n} people were found; kept the {max_people} most "
            f"confident (sum of detection confidence {', '.join(f'{score[k]:.0f}' for k in keep)}"
            f"), left out {len(gone)} (scores {', '.join(f'{score[k]:.0f}' for k in gone)}); "
            f"their detections have reason BEYOND_MAX_PEOPLE")
    return out, dropped, note


def person_detections(det: np.ndarray, assignment: np.ndarray, n: int) -> np.ndarray:
    """(T, C, J, 3) the detections of person ``n`` (NaN, confidence 0 where none), gathered from
    ``det`` (T, C, P, J, 3) by ``assignment`` (T, C, P), as :class:`PeopleResult` gives it."""
    T, C, P, J, _ = det.shape
    kp = np.full((T, C, J, 3), np.nan)
    kp[..., 2] = 0.0
    t, c, p = np.nonzero(assignment == n)
    kp[t, c] = det[t, c, p]
    return kp


def _view_reasons(rig, det, assignment, points, views, loose: float, shape_gate: float = 0.1):
    """(camera_reason (T, N, C) int8, offset (T, N, C) px): for each person's labelled frames,
    per camera, used / disagrees (assigned but out-voted on every joint, or an unassigned
    detection of the person's shape, its joints within ``shape_gate`` × the person's projected
    size of the projection once shifted by their median offset, that offset within ``loose`` ×
    the size: a camera off by a translation, not a ghost of another pose) / not detected /
    outside the image."""
    T, C, P = assignment.shape
    N = points.shape[1]
    labelled = np.isfinite(points).all(-1).any(-1)                           # (T, N)
    proj = np.moveaxis(rig.project(np.nan_to_num(points, nan=1e6)), 0, 2)   # (T, N, C, J, 2)
    placed = np.isfinite(points).all(-1)[:, :, None]                         # (T, N, 1, J)
    in_image = _in_image(rig, points)                                        # (T, N, C)
    xy = np.where(placed[..., None], proj, np.nan)
    with quiet_nan_warnings():
        size = np.linalg.norm(np.nanmax(xy, -2) - np.nanmin(xy, -2), axis=-1)  # (T, N, C)
    assigned = (assignment[:, None] == np.arange(N)[None, :, None, None]).any(-1)  # (T, N, C)
    free = (assignment < 0) & (np.nan_to_num(det[..., 2]) > 0).any(-1)      # (T, C, P)
    t, n, c = np.nonzero(labelled[..., None] & in_image & ~assigned & free.any(-1)[:, None])
    diff = det[t, c, :, :, :2] - proj[t, n, c][:, None]                      # (K, P, J, 2)
    diff = np.where(placed[t, n][..., None], diff, np.nan)                   # placed (K, 1, J)
    with quiet_nan_warnings():
        shift = np.nanmedian(diff, axis=-2)                                  # (K, P, 2)
        shape = np.nanmedian(np.linalg.norm(diff - shift[..., None, :], axis=-1), axis=-1)
    offset = np.linalg.norm(shift, axis=-1)
    alike = free[t, c] & (shape <= shape_gate * size[t, n, c, None]) & \
        (offset <= loose * size[t, n, c, None])
    nearest = np.full((T, N, C), np.inf)
    nearest[t, n, c] = np.where(alike, offset, np.inf).min(-1, initial=np.inf)
    used = views.any(-1)
    reason = np.full((T, N, C), int(ViewReason.NOT_DETECTED), np.int8)
    reason[~in_image] = ViewReason.OUTSIDE_IMAGE
    near = ~assigned & np.isfinite(nearest)
    reason[near | (assigned & ~used)] = ViewReason.DISAGREES
    reason[used] = ViewReason.USED
    reason[~labelled] = ViewReason.NO_LABEL
    return reason, np.where(near & (reason == ViewReason.DISAGREES), nearest, np.nan)


def _camera_summary(reason, names, ids):
    """(camera_reasons dict, camera_share (N, C)) from camera_reason (T, N, C)."""
    T, N, C = reason.shape
    out, share = {}, np.full((N, C), np.nan)
    for n in range(N):
        out[int(ids[n])] = {}
        for c, name in enumerate(names):
            r = reason[:, n, c]
            counts = {VIEW_REASON_TEXT[k]: int((r == k).sum()) for k in ViewReason
                      if k != ViewReason.NO_LABEL}
            seen = int(((r != ViewReason.NO_LABEL) & (r != ViewReason.OUTSIDE_IMAGE)).sum())
            share[n, c] = counts["used"] / seen if seen else np.nan
            out[int(ids[n])][name] = {**counts, "share used": float(share[n, c])}
    return out, share


def _disagree_warnings(reason, offset, names, ids) -> list[str]:
    """A warning per person and camera disagreeing in more than DISAGREE_SHARE of its frames."""
    out = []
    for n, c in np.ndindex(*reason.shape[1:]):
        r = reason[:, n, c]
        seen = ((r != ViewReason.NO_LABEL) & (r != ViewReason.OUTSIDE_IMAGE)).sum()
        bad = (r == ViewReason.DISAGREES).sum()
        if seen and bad / seen > DISAGREE_SHARE:
            off = offset[:, n, c]
            where = (f" (its detection a median {np.nanmedian(off):.0f} px from where the others "
                     f"put the person)" if np.isfinite(off).any() else "")
            out.append(f"person {ids[n]}: camera {names[c]} disagrees with the other views in "
                       f"{100 * bad / seen:.0f}% of the {seen} frames where it sees this "
                       f"person{where}; its view is left out there: check this camera's "
                       f"calibration and synchronisation")
    return out


def triangulate_people(rig: CameraRig, detections, joint_set: str, *,
                       max_people: int | None = None, loose_gate: float = 1.0,
                       min_support: float = 0.6, **options) -> PeopleResult:
    """Associate, track and triangulate several people (module docstring).

    Args:
        rig: the C calibrated cameras.
        detections: (T, C, P, J, 3) x, y pixels (distorted image), confidence; an empty slot is
            NaN with confidence 0; P unassociated slots per camera-frame, in no particular order.
        joint_set: the detections' joint set (``h36m17``, ``shelf14``, ...).
        max_people: keep at most this many people, the most confident (the note is in
            ``warnings``); None keeps all.
        loose_gate: an unassigned detection within this many of a person's projected sizes of
            the person's projection counts as that camera disagreeing (``DISAGREES``).
        min_support: a person detected, at the median frame, by fewer than this share of the
            cameras whose image it projects into is a phantom (two ghosts that agree along an
            epipolar line) and is removed (reason UNSUPPORTED); 0 keeps all.
        **options: for :func:`~.association.associate` (gate, view_gate, merge_m, min_joints,
            min_confidence, gate_px), :func:`~.tracking.link_tracks` (gate_m, gap_gate_m,
            max_gap, min_length) and :func:`~.triangulation.triangulate_sequence` (swap, smooth,
            fps, gate_px, min_confidence, temporal_gate_m, ...).

    Returns:
        :class:`PeopleResult`.

    Example:
        >>> res = triangulate_people(rig, det, "h36m17")     # det (T, C, P, J, 3)
        >>> res.points3d.shape, res.person_ids               # (T, N, J, 3), (N,)
    """
    det = check_detections(rig, detections, joint_set)
    if max_people is not None and (not isinstance(max_people, (int, np.integer)) or
                                   max_people < 1):
        raise ValueError(f"max_people must be a positive integer or None; got {max_people!r}")
    a_opts, t_opts, s_opts = _split_options(options)
    assoc = associate(rig, det, joint_set, **a_opts)
    track = link_tracks(assoc.points3d, **t_opts)
    assignment = _people_assignment(assoc.group, track)
    det_reason = assoc.reason.copy()
    det_reason[(assoc.group >= 0) & (assignment < 0)] = DetectionReason.SHORT_TRACK
    assignment, unsupported = _drop_unsupported(rig, assoc, track, assignment, min_support)
    det_reason[unsupported] = DetectionReason.UNSUPPORTED
    assignment, dropped, note = _keep_most_confident(det, assignment, max_people)
    det_reason[dropped] = DetectionReason.BEYOND_MAX_PEOPLE
    return people_from_assignment(rig, det, joint_set, assignment, detection_reason=det_reason,
                                  loose_gate=loose_gate, notes=[note] if note else [], **s_opts)


def people_from_assignment(rig: CameraRig, detections, joint_set: str, assignment, *,
                           detection_reason=None, loose_gate: float = 1.0, notes=(),
                           **options) -> PeopleResult:
    """Steps 3 and 4 of the module docstring for a given assignment of the detections to people
    (from :func:`triangulate_people`, ground truth, or a baseline).

    Args:
        rig, detections, joint_set, loose_gate: as in :func:`triangulate_people`.
        assignment: (T, C, P) int, the person (0..N-1) of each slot, -1 none; a person holds at
            most one slot per camera-frame.
        detection_reason: (T, C, P) int8 :class:`~.association.DetectionReason`, or None
            (ASSIGNED where assigned, else EMPTY or ONE_VIEW).
        notes: sentences put first in the warnings.
        **options: passed to :func:`~.triangulation.triangulate_sequence`.
    """
    det = check_detections(rig, detections, joint_set)
    assignment = np.asarray(assignment)
    if assignment.shape != det.shape[:3]:
        raise ValueError(f"assignment must have shape (T, C, P) = {det.shape[:3]} (detections' "
                         f"first three axes); got {assignment.shape}")
    if detection_reason is None:
        present = (np.nan_to_num(det[..., 2]) > 0).any(-1)
        detection_reason = np.where(assignment >= 0, int(DetectionReason.ASSIGNED), np.where(
            present, int(DetectionReason.ONE_VIEW), int(DetectionReason.EMPTY))).astype(np.int8)
    s_opts = options
    det_reason = detection_reason
    T, C, P, J, _ = det.shape
    N = assignment.max(initial=-1) + 1
    points = np.full((T, N, J, 3), np.nan)
    weight, reproj = np.zeros((T, N, J)), np.full((T, N, J), np.nan)
    views = np.zeros((T, N, C, J), bool)
    warnings = list(notes)
    ids = np.arange(N)
    for n in range(N):
        kp = person_detections(det, assignment, n)
        tri = triangulate_sequence(rig, kp, joint_set, **s_opts)
        points[:, n], weight[:, n], reproj[:, n] = tri.points, tri.weight, tri.reproj_error
        views[:, n] = tri.views
        labelled = np.isfinite(tri.points).all(-1)
        shares = camera_shares(tri.views, kp[..., 2] > 0, labelled)
        warnings += [f"person {n}: {w}" for w in dropped_camera_warnings(rig.names, shares)]
    reason, offset = _view_reasons(rig, det, assignment, points, views, loose_gate)
    summary, share = _camera_summary(reason, rig.names, ids)
    warnings += _disagree_warnings(reason, offset, rig.names, ids)
    return PeopleResult(points, weight, reproj, ids, assignment, views, reason, share, summary,
                        det_reason, offset, warnings, tuple(rig.names), joint_set)
