"""Which detections of one instant are the same person: grouping across calibrated views.

:func:`associate` takes raw detections ``(T, C, P, J, 3)`` (P unassociated slots per camera-frame,
in no particular order) and, frame by frame, groups the slots of different cameras that are one
person. It follows the geometric line of MVPose (Dong et al., CVPR 2019: epipolar affinities,
cycle-consistent groups) and Pose2Sim's person association (epipolar consistency of candidate
views), written for whole sequences at once:

1. **affinities**: for every camera pair, the symmetric epipolar distance (pixels) of every pair of
   detections' confident joints, divided by the detections' size (pixels, the diagonal of their
   joints' box), truncated at ``cap`` and averaged over the joints both see; the smaller of the
   distance and that to the other detection mirrored (a left/right swap must not split a person).
   Vectorised over frames, slots and joints (:func:`epipolar_costs`).
2. **groups** (per frame): greedy agglomeration of the cheapest pairs, a group holding at most one
   detection per camera and accepting a detection only when its mean affinity to every member is
   within ``gate`` and none exceeds ``2 gate`` (complete linkage: with three cameras or more, a pair
   that is consistent only along an epipolar line is refused by the third view).
3. **verification**: every group of two views or more is triangulated at once (the robust
   :func:`~epiflow.calibration.triangulation.triangulate`); a member whose median joint
   reprojection error exceeds ``view_gate`` × its size is taken out (reason DISAGREES), groups that
   come close in 3D (``merge_m``) with disjoint cameras are joined, and a detection left alone is
   given to the group whose projection it matches within ``view_gate``.

A detection that joins no group of two views or more is a ghost or a person only its camera sees:
the two cannot be told apart at one instant, and both keep assignment -1 with reason ONE_VIEW.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import torch

from epiflow.calibration.camera import CameraRig
from epiflow.calibration.multiview import Observations, normal_equation_matrix
from epiflow.calibration.relative_pose import quiet_nan_warnings
from epiflow.calibration.robust import consensus
from epiflow.skeleton import get_joint_set

__all__ = ["DetectionReason", "DETECTION_REASON_TEXT", "Association", "associate",
           "detection_sizes", "epipolar_costs", "group_frames", "check_detections"]


class DetectionReason(IntEnum):
    """What became of a detection slot: the codes of ``detection_reason (T, C, P)``."""

    EMPTY = 0
    ASSIGNED = 1
    TOO_FEW_JOINTS = 2
    ONE_VIEW = 3
    DISAGREES = 4
    SHORT_TRACK = 5
    BEYOND_MAX_PEOPLE = 6
    UNSUPPORTED = 7


#: a sentence per :class:`DetectionReason`, for reports
DETECTION_REASON_TEXT = {
    DetectionReason.EMPTY: "empty slot",
    DetectionReason.ASSIGNED: "assigned to a person",
    DetectionReason.TOO_FEW_JOINTS: "too few confident joints to match",
    DetectionReason.ONE_VIEW: "ghost: no other camera's detection agrees with it (a false "
                              "detection, or a person only this camera sees); kept in 2D, no 3D",
    DetectionReason.DISAGREES: "disagrees with the other views of the person it matched",
    DetectionReason.SHORT_TRACK: "its person lasted too few frames (a spurious match)",
    DetectionReason.BEYOND_MAX_PEOPLE: "its person is beyond max_people (less confident)",
    DetectionReason.UNSUPPORTED: "its person is seen by too few of the cameras it stands in "
                                 "front of: two ghosts that agree along an epipolar line",
}


@dataclass(frozen=True, eq=False)
class Association:
    """Per-frame groups of detections (numpy).

    Attributes:
        group: (T, C, P) int, the group (index into axis G of ``points3d``) of each detection slot
            in its frame; -1 = none.
        points3d: (T, G, J, 3) metres, world frame: each group's robust triangulation; NaN where a
            group does not exist (G is the most groups of any frame).
        n_views: (T, G) int, cameras in each group (0 = no group).
        reason: (T, C, P) int8 :class:`DetectionReason`.
        size_px: (T, C, P) each detection's size (diagonal of its joints' box), pixels; NaN empty.
    """

    group: np.ndarray
    points3d: np.ndarray
    n_views: np.ndarray
    reason: np.ndarray
    size_px: np.ndarray


def check_detections(rig: CameraRig, detections, joint_set: str) -> np.ndarray:
    """``detections`` as a float64 (T, C, P, J, 3) array, or an error naming what is wrong."""
    det = np.asarray(detections, dtype=np.float64)
    J = len(get_joint_set(joint_set))
    want = f"(T, C={len(rig)}, P, J={J}, 3)"
    if det.ndim != 5:
        raise ValueError(f"detections must have shape {want}: frames, cameras of the rig "
                         f"({', '.join(rig.names)}), detection slots, joints of {joint_set!r}, "
                         f"(x, y, confidence); got {det.ndim} dimensions, shape {det.shape}")
    if det.shape[1] != len(rig):
        raise ValueError(f"detections has {det.shape[1]} cameras on axis 1 (shape {det.shape}) "
                         f"but rig has {len(rig)} ({', '.join(rig.names)}); expected {want}: "
                         f"pass the rig of the cameras the detections come from, in their order")
    if det.shape[2] == 0:
        raise ValueError(f"detections has a P axis (axis 2, detection slots) of size 0 (shape "
                         f"{det.shape}); expected {want} with P >= 1: a camera-frame with no "
                         f"person is a slot of NaN with confidence 0")
    if det.shape[3] != J or det.shape[4] != 3:
        raise ValueError(f"detections must have shape {want} for joint set {joint_set!r}; got "
                         f"{det.shape}: pass joint_set= the set the detections are in")
    return det


def detection_sizes(det: np.ndarray, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """(valid joints (..., J) bool, size (...) pixels = diagonal of the valid joints' box; NaN
    with fewer than two valid joints) of detections (..., J, 3)."""
    valid = np.isfinite(det[..., :2]).all(-1) & (np.nan_to_num(det[..., 2]) > min_confidence)
    xy = np.where(valid[..., None], det[..., :2], np.nan)
    with quiet_nan_warnings():
        span = np.nanmax(xy, axis=-2) - np.nanmin(xy, axis=-2)
    size = np.linalg.norm(span, axis=-1)
    return valid, np.where(valid.sum(-1) >= 2, size, np.nan)


def _pair_cost(E, xa, xb, va, vb, fa, fb, sa, sb, cap, min_common):
    """(T, P, Q) truncated mean epipolar distance / size between the detections of two cameras:
    x (T, P, J, 3) homogeneous normalised coordinates, v (T, P, J) valid, f focal px, s size."""
    la = xa @ E.T                       # epipolar lines in b, (T, P, J, 3)
    lb = xb @ E                         # epipolar lines in a, (T, Q, J, 3)
    num = np.abs(np.einsum("tpjk,tqjk->tpqj", la, xb))
    da = num / np.linalg.norm(lb[..., :2], axis=-1)[:, None] * fa / sa[:, :, None, None]
    db = num / np.linalg.norm(la[..., :2], axis=-1)[:, :, None] * fb / sb[:, None, :, None]
    both = va[:, :, None] & vb[:, None]
    d = np.minimum(np.nan_to_num(0.5 * (da + db), nan=cap, posinf=cap), cap)
    n = both.sum(-1)
    cost = (d * both).sum(-1) / np.maximum(n, 1)
    return np.where(n >= min_common, cost, np.inf)


def epipolar_costs(rig: CameraRig, det: np.ndarray, joint_set: str, *, min_confidence: float = 0.1,
                   cap: float = 0.5, min_common: int = 4,
                   essentials: dict | None = None) -> np.ndarray:
    """Pairwise affinity costs of all detections of each frame (step 1 of the module docstring).

    Args:
        rig: the C cameras. det: (T, C, P, J, 3) pixels (distorted) and confidence.
        joint_set: the joints' set (its left/right pairs give the mirrored detection).
        min_confidence: joints at or below it are not used. cap: the truncation, in sizes.
        min_common: fewer joints seen by both detections gives an infinite cost.
        essentials: cameras not calibrated yet: ``{(a, b): E}`` (a < b), the (3, 3) essential
            matrix of each camera pair with ``x_bᵀ E x_a = 0`` in normalised coordinates, used
            instead of the rig's poses (only its intrinsics are used); a pair missing from it
            gets infinite costs. None: E from the rig's poses.

    Returns:
        (T, C, P, C, P) symmetric epipolar distance in units of the detections' size; inf within
        one camera and for slots without enough joints.
    """
    T, C, P, J, _ = det.shape
    valid, size = detection_sizes(det, min_confidence)
    xy = rig.undistort(np.moveaxis(np.nan_to_num(det[..., :2]), 1, 0))  # (C, T, P, J, 2)
    x = np.moveaxis(np.concatenate([xy, np.ones(xy.shape[:-1] + (1,))], -1), 0, 1)
    flip = get_joint_set(joint_set).flip_permutation
    f = rig.K[:, [0, 1], [0, 1]].mean(1)
    size = np.nan_to_num(size, nan=np.inf)
    cost = np.full((T, C, P, C, P), np.inf)
    for a in range(C):
        for b in range(a + 1, C):
            if essentials is not None and (a, b) not in essentials:
                continue
            E = essentials[(a, b)] if essentials is not None else _essential(rig, a, b)
            args = (x[:, a], valid[:, a], f[a], f[b], size[:, a], size[:, b], cap, min_common)
            c = np.minimum(
                _pair_cost(E, args[0], x[:, b], args[1], valid[:, b], *args[2:]),
                _pair_cost(E, args[0], x[:, b][:, :, flip], args[1], valid[:, b][:, :, flip],
                           *args[2:]))
            cost[:, a, :, b] = c
            cost[:, b, :, a] = c.transpose(0, 2, 1)
    return cost


def _essential(rig: CameraRig, a: int, b: int) -> np.ndarray:
    """(3, 3) [t]x R of cameras a -> b of ``rig`` (t made unit)."""
    R, t = rig.relative_pose(a, b)
    return np.cross(t[:, None] / max(np.linalg.norm(t), 1e-12), R, axis=0)


def _greedy_groups(cost: np.ndarray, cams: np.ndarray, gate: float) -> list[list[int]]:
    """Groups of nodes (complete linkage, one node per camera) from a (n, n) cost matrix."""
    n = len(cams)
    label = list(range(n))
    members = {i: [i] for i in range(n)}
    i_idx, j_idx = np.nonzero(np.triu(cost < gate, 1))
    for k in np.argsort(cost[i_idx, j_idx], kind="stable"):
        a, b = label[i_idx[k]], label[j_idx[k]]
        if a == b or set(cams[members[a]]) & set(cams[members[b]]):
            continue
        cross = cost[np.ix_(members[a], members[b])]
        cross = cross[np.isfinite(cross)]
        if cross.size == 0 or cross.mean() > gate or cross.max() > 2 * gate:
            continue
        for m in members[b]:
            label[m] = a
        members[a] += members.pop(b)
    return [m for m in members.values() if len(m) >= 2]


@dataclass(frozen=True)
class _Gates:
    """The gates :func:`associate` passes down (documented there)."""

    view_gate: float
    min_confidence: float
    gate_px: float


def group_frames(cost: np.ndarray, ok: np.ndarray, gate: float) -> np.ndarray:
    """(T, C, P) int group per slot, -1 none (step 2 of the module docstring), from the costs
    (T, C, P, C, P) of :func:`epipolar_costs` and ok (T, C, P) the slots that may be grouped."""
    T, C, P = ok.shape
    group = np.full((T, C, P), -1)
    for t in range(T):
        nodes = np.flatnonzero(ok[t].reshape(-1))
        if nodes.size < 2:
            continue
        sub = cost[t].reshape(C * P, C * P)[np.ix_(nodes, nodes)]
        for g, members in enumerate(_greedy_groups(sub, nodes // P, gate)):
            group[t].reshape(-1)[nodes[members]] = g
    return group


def _gather(det: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The detections of each existing (frame, group): kp (C, M, J, 3) (NaN, confidence 0 where
    a camera has none), frame (M,) and group number (M,)."""
    T, C, P, J, _ = det.shape
    t, c, p = np.nonzero(group >= 0)
    G = group.max(initial=-1) + 1
    keys, m = np.unique(t * G + group[t, c, p], return_inverse=True)
    kp = np.full((C, len(keys), J, 3), np.nan)
    kp[..., 2] = 0.0
    kp[c, m] = det[t, c, p]
    return kp, keys // max(G, 1), keys % max(G, 1)


def _triangulated(rig, kp, gates) -> np.ndarray:
    """(M, J, 3) world points of the groups kp (C, M, J, 3): the views that agree
    (:func:`~epiflow.calibration.robust.consensus`) and their weighted solution."""
    C, M, J, _ = kp.shape
    if M == 0:
        return np.zeros((0, J, 3))
    uv = torch.as_tensor(kp[..., :2].reshape(C, M * J, 2))
    conf = torch.as_tensor(np.nan_to_num(kp[..., 2]).reshape(C, M * J))
    obs = Observations.build(uv, conf, rig.tensors(), gates.min_confidence)
    use, sol = consensus(obs, gates.gate_px, G=normal_equation_matrix(obs.R, obs.t))
    points = obs.to_world(sol.points).numpy()
    placed = (use.sum(0) >= 2).numpy() & sol.ok.numpy()
    return np.where(placed[:, None], points, np.nan).reshape(M, J, 3)


def _view_errors(rig, points, det_cm, size_cm, valid_cm, flip):
    """(C, M) median joint reprojection error / size of detections (C, M, J, 3) against points
    (M, J, 3), the smaller of the detection as given and mirrored; NaN where nothing to compare."""
    proj = rig.project(np.nan_to_num(points, nan=0.0))                   # (C, M, J, 2)
    placed = np.isfinite(points).all(-1)[None]
    errs = []
    for perm in (slice(None), flip):
        e = np.linalg.norm(proj - det_cm[..., perm, :2], axis=-1)
        e = np.where(placed & valid_cm[..., perm], e, np.nan)
        with quiet_nan_warnings():
            errs.append(np.nanmedian(e, axis=-1))
    with quiet_nan_warnings():
        return np.fmin(*errs) / size_cm


def associate(rig: CameraRig, detections, joint_set: str, *, gate: float = 0.06,
              view_gate: float = 0.08, merge_m: float = 0.15, min_confidence: float = 0.1,
              gate_px: float = 20.0, min_joints: int = 5) -> Association:
    """Group each frame's detections into people (module docstring).

    Args:
        rig: the C calibrated cameras.
        detections: (T, C, P, J, 3) x, y pixels (distorted image), confidence; an empty slot is
            NaN with confidence 0.
        joint_set: the detections' joint set.
        gate: the largest mean epipolar cost (in detection sizes) of a detection to a group.
        view_gate: the largest median reprojection error (in sizes) of a member of a group.
        merge_m: groups of disjoint cameras whose 3D poses are closer than this (mean joint
            distance, metres) are one person.
        min_confidence: joints at or below this confidence are not used.
        gate_px: the robust triangulation's gate, pixels.
        min_joints: a detection with fewer confident joints is not matched (TOO_FEW_JOINTS).

    Returns:
        :class:`Association`.
    """
    det = check_detections(rig, detections, joint_set)
    g = _Gates(view_gate, min_confidence, gate_px)
    valid, size = detection_sizes(det, min_confidence)
    ok = valid.sum(-1) >= min_joints
    flip = get_joint_set(joint_set).flip_permutation
    group = group_frames(epipolar_costs(rig, det, joint_set, min_confidence=min_confidence),
                            ok, gate)
    group, disagree = _verify(rig, det, group, flip, g)
    points = _group_points(rig, det, group, g)
    group, points = _merge_close(group, points, merge_m)
    group = _attach(rig, det, group, points, ok, valid, size, flip, view_gate)
    group, points = _compact(group, points)
    n_views = _group_cameras(group, points.shape[1]).sum(1)                  # (T, G)
    reason = np.full(group.shape, int(DetectionReason.EMPTY), np.int8)
    reason[valid.any(-1)] = DetectionReason.TOO_FEW_JOINTS
    reason[ok] = DetectionReason.ONE_VIEW
    reason[ok & disagree & (group < 0)] = DetectionReason.DISAGREES
    reason[group >= 0] = DetectionReason.ASSIGNED
    return Association(group, points, n_views, reason, size)


def _group_cameras(group: np.ndarray, G: int) -> np.ndarray:
    """(T, C, G) bool: camera c has a detection in group g of frame t (groups (T, C, P))."""
    return (group[..., None] == np.arange(G)).any(2)


def _compact(group: np.ndarray, points: np.ndarray | None = None):
    """Groups renumbered 0.. per frame, those of fewer than two cameras removed; with ``points``
    (T, G, J, 3) of the old numbers, also (groups, points (T, G', J, 3) of the new ones)."""
    T = group.shape[0]
    out = np.full_like(group, -1)
    kept = []
    for t in range(T):
        ids, counts = np.unique(group[t][group[t] >= 0], return_counts=True)
        ids = ids[counts >= 2]
        kept.append(ids)
        for new, old in enumerate(ids):
            out[t][group[t] == old] = new
    if points is None:
        return out
    G = max([len(k) for k in kept] + [0])
    new_points = np.full((T, G) + points.shape[2:], np.nan)
    for t, ids in enumerate(kept):
        new_points[t, :len(ids)] = points[t, ids]
    return out, new_points


def _group_points(rig, det, group, g: _Gates) -> np.ndarray:
    """(T, G, J, 3) the robust triangulation of each group of each frame (G = group.max() + 1)."""
    kp, frames, number = _gather(det, group)
    T, G = group.shape[0], group.max(initial=-1) + 1
    points = np.full((T, G, det.shape[3], 3), np.nan)
    points[frames, number] = _triangulated(rig, kp, g)
    return points


def _verify(rig, det, group, flip, g: _Gates):
    """Take out members that disagree with their group's triangulation; returns (groups,
    (T, C, P) bool taken out)."""
    disagree = np.zeros(group.shape, bool)
    kp, frames, number = _gather(det, group)
    if kp.shape[1] == 0:
        return group, disagree
    points = _triangulated(rig, kp, g)
    member = np.isfinite(kp[..., 0]).any(-1)                               # (C, M)
    v, s = detection_sizes(kp, g.min_confidence)
    bad = member & ~(_view_errors(rig, points, kp, s, v, flip) <= g.view_gate)
    c, m = np.nonzero(bad)
    t, n = frames[m], number[m]
    p = (group[t, c] == n[:, None]).argmax(1)
    group[t, c, p] = -1
    disagree[t, c, p] = True
    return _compact(group), disagree


def _merge_close(group, points, merge_m: float):
    """Join groups of one frame with disjoint cameras whose triangulations (T, G, J, 3) are
    within merge_m (mean joint distance); the joined group's points are the mean of the two."""
    T, G = points.shape[:2]
    if G < 2:
        return group, points
    with quiet_nan_warnings():
        d = np.nanmean(np.linalg.norm(points[:, :, None] - points[:, None], axis=-1), axis=-1)
    cams = _group_cameras(group, G)                                         # (T, C, G)
    overlap = np.einsum("tca,tcb->tab", cams, cams) > 0
    close = (d < merge_m) & ~overlap & np.triu(np.ones((G, G), bool), 1)[None]
    points = points.copy()
    for t, a, b in zip(*np.nonzero(close)):
        in_a, in_b = (group[t] == a).any(1), (group[t] == b).any(1)
        if in_a.any() and in_b.any() and not (in_a & in_b).any():
            group[t][group[t] == b] = a
            with quiet_nan_warnings():
                points[t, a] = np.nanmean(np.stack([points[t, a], points[t, b]]), 0)
            points[t, b] = np.nan
    return group, points


def _attach(rig, det, group, points, ok, valid, size, flip, view_gate: float):
    """Give each ungrouped detection to the group of its frame whose projection (of ``points``
    (T, G, J, 3)) it matches best within view_gate, among groups without its camera."""
    T, C, P = group.shape
    G = points.shape[1]
    if G == 0:
        return group
    has_cam = _group_cameras(group, G)                                      # (T, C, G)
    proj = rig.project(np.nan_to_num(points, nan=1e6))                      # (C, T, G, J, 2)
    placed = np.isfinite(points).all(-1)                                    # (T, G, J)
    for p in range(P):
        lone = ok[:, :, p] & (group[:, :, p] < 0)                           # (T, C)
        if not lone.any():
            continue
        t, c = np.nonzero(lone)
        d = det[t, c, p]                                                    # (n, J, 3)
        errs = []
        for perm in (slice(None), flip):
            e = np.linalg.norm(proj[c, t] - d[:, None, perm, :2], axis=-1)  # (n, G, J)
            e = np.where(placed[t] & valid[t, c, p][:, None, perm], e, np.nan)
            with quiet_nan_warnings():
                errs.append(np.nanmedian(e, axis=-1))
        err = np.fmin(*errs) / size[t, c, p][:, None]
        err = np.where(has_cam[t, c], np.inf, np.nan_to_num(err, nan=np.inf))
        best = err.argmin(1)
        take = err[np.arange(len(t)), best] <= view_gate
        group[t[take], c[take], p] = best[take]
        has_cam[t[take], c[take], best[take]] = True
    return group
