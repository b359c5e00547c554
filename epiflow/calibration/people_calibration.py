"""Cameras from several people in view: association without cameras, then calibration on everyone.

:func:`calibrate_from_people` solves the cameras from one person whose 2D is known in every
camera. With several people, each camera-frame holds P detection slots in no particular order
(``(T, C, P, J, 3)``): which slot of one camera is which slot of another is what the cameras would
tell, and the cameras are what is sought. :func:`calibrate_from_several_people` breaks the circle:

1. **pairings** (per camera pair): every detection of camera i in a frame is paired with every
   detection of camera j in the same frame, all pairings pooled as extra frames, and one robust
   essential matrix is fitted to the pool (:func:`~.relative_pose.pair_pose`: MAGSAC, left/right
   flips per pairing). The right pairings agree on one geometry while a wrong pairing (two
   different people) is consistent with none, so with two people half of the pool are inliers
   and the robust fit finds the pair's geometry without knowing who is who.
2. **groups** (per frame): the epipolar cost of every pair of detections under those essential
   matrices (:func:`~.association.epipolar_costs` with ``essentials``) and the cycle-consistent
   greedy grouping of the association with cameras (:func:`~.association.group_frames`: one
   detection per camera, a member accepted only when it agrees with every other member).
3. **people through time**: each frame's groups are linked to the people of the frames before by
   how near their 2D detections are in the cameras both have (median joint distance in units of
   the detection's size, the smaller of plain and left/right mirrored; Hungarian matching;
   :func:`link_groups_2d`). Shuffled slots do not matter; a detector's track that jumps to another
   person is outvoted by the other cameras.
4. **calibration on everyone**: each person's 2D ``(T, C, J, 3)`` over the frames they were
   grouped in, stacked as extra frames, goes through :func:`calibrate_from_people` (pooled pair
   fits, view graph, bundle adjustment, world frame) unchanged.
5. **verification**: a pair whose pooled fit is more than ``PAIR_OFF_DEG`` from the calibrated
   cameras' relative rotation settled on a wrong geometry (cameras facing each other across the
   people, whose epipoles fall among the people, are prone to it); then steps 2–4 run again with
   the epipolar geometry of the calibrated cameras (bundle adjustment on everyone already
   outweighs a wrong pair or two), so that pair's detections are matched right.

The people's 3D labels are then made with the recovered cameras by
:func:`~.people.triangulate_people` (association with cameras, tracking, per-person
triangulation), as for given cameras.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from epiflow.calibration.association import detection_sizes, epipolar_costs, group_frames
from epiflow.calibration.camera import CalibrationError, CameraRig, match_rig
from epiflow.calibration.compare import rotation_angle_deg
from epiflow.calibration.from_people import (CalibrationConfig, CalibrationResult,
                                             calibrate_from_people, fit_sizes, guess_intrinsics)
from epiflow.calibration.input_checks import image_sizes
from epiflow.calibration.relative_pose import (correspondence_joints, pair_pose,
                                               quiet_nan_warnings, reliable_mask)
from epiflow.keypoints import Keypoints
from epiflow.skeleton import get_joint_set

__all__ = ["PeopleWithoutCameras", "associate_without_cameras", "link_groups_2d",
           "calibrate_from_several_people"]

#: grouping gate: the largest mean epipolar distance (in detection sizes) of a detection to a
#: group (as :func:`~.association.associate`'s ``gate``)
GROUP_GATE = 0.06
#: a detection with fewer confident joints is not grouped
MIN_JOINTS = 5
#: linking gate: the largest median joint distance (in detection sizes) between a person's last
#: detection in a camera and a new group's, for the group to continue the person
LINK_GATE = 0.5
#: a person may be unseen for this many frames and still be continued
MAX_GAP = 10
#: a pair fit this far (degrees) from the first calibration's relative rotation was wrong: the
#: people are associated again with the first cameras and the cameras solved again
PAIR_OFF_DEG = 5.0
#: people grouped in fewer frames are left out of the calibration (spurious groups)
MIN_FRAMES = 5


class PeopleWithoutCameras:
    """The people found in detections without cameras (steps 1–3 of the module docstring).

    Attributes:
        assignment: (T, C, P) int, the person (0..N-1) of each detection slot, -1 none.
        pairs: per camera pair fitted, ``{"cameras": [a, b], "pooled": observations pooled over
            all pairings, "inliers": of the essential matrix, "inlier_share"}``.
        rejected: ``{"a-b": reason}`` of the pairs that gave no essential matrix.
        frames: (N,) frames each person was grouped in.
        rotations: ``{(a, b): R}`` (3, 3) the relative rotation of each pair fitted
            (``x_b = R x_a + t``); empty when the association used known poses.
    """

    def __init__(self, assignment, pairs, rejected, frames, rotations=None):
        self.assignment, self.pairs, self.rejected, self.frames = (assignment, pairs, rejected,
                                                                  frames)
        self.rotations = rotations or {}

    @property
    def n_people(self) -> int:
        return len(self.frames)

    def people(self, detections: np.ndarray) -> np.ndarray:
        """(N, T, C, J, 3) each person's detections (NaN, confidence 0 where not assigned)."""
        det = np.asarray(detections, float)
        T, C, P, J, _ = det.shape
        out = np.full((self.n_people, T, C, J, 3), np.nan)
        out[..., 2] = 0.0
        t, c, p = np.nonzero(self.assignment >= 0)
        out[self.assignment[t, c, p], t, c] = det[t, c, p]
        return out


def _pooled_pairings(xn, valid, i: int, j: int):
    """(x1, x2 (M, J, 2), v1, v2 (M, J)): every slot of camera i paired with every slot of camera
    j in each frame, the pairings stacked as M = T·P·P pseudo-frames. xn (C, T, P, J, 2),
    valid (C, T, P, J)."""
    C, T, P, J, _ = xn.shape
    x1 = np.repeat(xn[i][:, :, None], P, axis=2).reshape(-1, J, 2)
    x2 = np.repeat(xn[j][:, None], P, axis=1).reshape(-1, J, 2)
    v1 = np.repeat(valid[i][:, :, None], P, axis=2).reshape(-1, J)
    v2 = np.repeat(valid[j][:, None], P, axis=1).reshape(-1, J)
    return x1, x2, v1, v2


def _pair_essentials(rig0: CameraRig, det: np.ndarray, joint_set: str,
                     config: CalibrationConfig):
    """Step 1: ({(a, b): E}, {(a, b): R}, pair records, rejected {name: reason}) from the pooled
    pairings (``x_b = R x_a + t``)."""
    T, C, P, J, _ = det.shape
    joints = correspondence_joints(joint_set)
    valid = np.stack([reliable_mask(det[:, :, p, :, :2], np.nan_to_num(det[:, :, p, :, 2]),
                                    joints, config.min_confidence, np.inf)
                      for p in range(P)], axis=2)                      # (T, C, P, J)
    xn = rig0.undistort(np.moveaxis(np.nan_to_num(det[..., :2]), 1, 0))  # (C, T, P, J, 2)
    valid = np.moveaxis(valid, 1, 0)
    perm = get_joint_set(joint_set).flip_permutation
    focal = float(np.mean(rig0.K[:, [0, 1], [0, 1]]))
    essentials, rotations, pairs, rejected = {}, {}, [], {}
    names = rig0.names
    for a in range(C):
        for b in range(a + 1, C):
            x1, x2, v1, v2 = _pooled_pairings(xn, valid, a, b)
            both = (v1 & v2).sum(-1) >= 8                 # pairings with enough joints in both
            shared = int((v1 & v2)[both].sum())
            fit = None
            if shared >= config.min_shared:
                fit = pair_pose(x1[both], x2[both], v1[both], v2[both], perm, focal,
                                config.threshold_px, a, b, config.seed)
            if fit is None or fit.n_inliers < config.min_inliers:
                n = 0 if fit is None else fit.n_inliers
                rejected[f"{names[a]}-{names[b]}"] = (
                    f"{shared} observations pooled over all pairings of their detections, "
                    f"{n} essential-matrix inliers (< {config.min_inliers})")
                continue
            essentials[(a, b)] = fit.E
            rotations[(a, b)] = fit.R
            pairs.append({"cameras": [names[a], names[b]], "pooled": shared,
                          "inliers": fit.n_inliers,
                          "inlier_share": round(fit.n_inliers / max(shared, 1), 3)})
    return essentials, rotations, pairs, rejected


def _distances_2d(last: np.ndarray, groups: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """(K, G) median over shared cameras of the median joint distance (in detection sizes,
    smaller of plain and mirrored) between people's last detections last (K, C, J, 3) and
    groups' detections groups (G, C, J, 3); inf when no camera is shared."""
    valid_a, size_a = detection_sizes(last, 0.0)
    valid_b, _ = detection_sizes(groups, 0.0)
    d = []
    for p in (slice(None), perm):
        e = np.linalg.norm(last[:, None, :, :, :2] - groups[None, :, :, p, :2], axis=-1)
        ok = valid_a[:, None] & valid_b[None][..., p]
        d.append(np.where(ok, e, np.nan))
    with quiet_nan_warnings():
        per_cam = np.fmin(np.nanmedian(d[0], -1), np.nanmedian(d[1], -1)) / size_a[:, None]
        cost = np.nanmedian(per_cam, -1)                                  # (K, G)
    return np.nan_to_num(cost, nan=np.inf)


def link_groups_2d(det: np.ndarray, group: np.ndarray, joint_set: str, gate: float = LINK_GATE,
                   max_gap: int = MAX_GAP) -> np.ndarray:
    """Step 3: people through time from per-frame groups, without cameras.

    Args:
        det: (T, C, P, J, 3) pixels, confidence. group: (T, C, P) int, each frame's groups, -1
            none (:func:`~.association.group_frames`). joint_set: for the mirrored joints.
        gate: a group continues a person when their median joint distance, in the person's
            detection sizes, is within it (median over the cameras both have).
        max_gap: frames a person may go unseen.

    Returns:
        (T, C, P) int person of each slot, -1 none; people numbered in order of appearance.
    """
    T, C, P, J, _ = det.shape
    perm = np.asarray(get_joint_set(joint_set).flip_permutation)
    person = np.full((T, C, P), -1)
    last = np.zeros((0, C, J, 3))            # each person's latest detection per camera
    seen = np.zeros((0, C), int)             # ... and its frame
    for t in range(T):
        G = int(group[t].max(initial=-1)) + 1
        if G == 0:
            continue
        now = np.full((G, C, J, 3), np.nan)
        now[..., 2] = 0.0
        c, p = np.nonzero(group[t] >= 0)
        now[group[t, c, p], c] = det[t, c, p]
        recent = np.where((t - seen <= max_gap)[..., None, None], last, np.nan)
        cost = _distances_2d(recent, now, perm) if len(last) else np.zeros((0, G))
        rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e9))
        to = np.full(G, -1)
        for k, g in zip(rows, cols):
            if cost[k, g] <= gate:
                to[g] = k
        for g in np.flatnonzero(to < 0):
            to[g] = len(last)
            last = np.concatenate([last, np.full((1, C, J, 3), np.nan)])
            seen = np.concatenate([seen, np.full((1, C), -10 ** 9)])
        person[t, c, p] = to[group[t, c, p]]
        has = (np.nan_to_num(now[..., 2]) > 0).any(-1)                    # (G, C)
        for g in range(G):
            last[to[g], has[g]] = now[g, has[g]]
            seen[to[g], has[g]] = t
        _rejoin(person, last, seen, cost, rows, to, gate, t)
    return person


def _rejoin(person, last, seen, cost, rows, to, gate: float, t: int) -> None:
    """A person split into two groups for a few frames (one group refused a member the other
    kept) comes back as one group, which continues one of the two: the other, left without a
    group although within ``gate`` of it, is merged into it when the two never held the same
    camera in one frame (``person`` (T, C, P), the memories ``last``, ``seen`` updated in place;
    ``cost`` (K, G) of frame ``t``, ``to`` (G,) the person each group continues)."""
    taken = set(to.tolist())
    for k in range(cost.shape[0]):
        if k in taken or not np.isfinite(cost[k]).any():
            continue
        g = int(np.argmin(cost[k]))
        m = int(to[g])
        if cost[k, g] > gate or m == k:
            continue
        both = ((person[:t] == k).any(-1) & (person[:t] == m).any(-1)).any()
        if both:
            continue
        person[person == k] = m
        newer = seen[k] > seen[m]
        last[m, newer], seen[m, newer] = last[k, newer], seen[k, newer]
        seen[k] = -10 ** 9


def _keep_people(person: np.ndarray, min_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(person renumbered with those grouped in fewer than ``min_frames`` frames removed,
    frames (N,) of each kept person)."""
    N = int(person.max(initial=-1)) + 1
    frames = np.array([(person == n).any((1, 2)).sum() for n in range(N)], int)
    keep = np.flatnonzero(frames >= min_frames)
    new = np.full(N + 1, -1)
    new[keep] = np.arange(len(keep))
    return new[person], frames[keep]


def associate_without_cameras(intrinsics: CameraRig, detections, joint_set: str,
                              config: CalibrationConfig = CalibrationConfig(),
                              min_frames: int = MIN_FRAMES,
                              use_poses: bool = False) -> PeopleWithoutCameras:
    """Steps 1–3 of the module docstring: who is who across cameras and through time, without
    the cameras' poses.

    Args:
        intrinsics: the C cameras' K and distortion (their poses are not used): given ones, or a
            guess (:func:`~.from_people.guess_intrinsics`).
        detections: (T, C, P, J, 3) pixels (distorted image) and confidence; empty slots NaN with
            confidence 0; slots in no particular order.
        joint_set: the detections' joint set.
        config: the options of the pair fits (threshold_px, min_shared, min_inliers,
            min_confidence, seed).
        min_frames: people grouped in fewer frames are dropped.
        use_poses: take the epipolar geometry from the rig's poses (a first calibration)
            instead of fitting it to the pooled pairings (step 1 skipped).

    Returns:
        :class:`PeopleWithoutCameras`.
    """
    det = np.asarray(detections, float)
    essentials, rotations, pairs, rejected = (None, {}, [], {}) if use_poses else \
        _pair_essentials(intrinsics, det, joint_set, config)
    valid, _ = detection_sizes(det, config.min_confidence)
    cost = epipolar_costs(intrinsics, det, joint_set, min_confidence=config.min_confidence,
                          essentials=essentials)
    group = group_frames(cost, valid.sum(-1) >= MIN_JOINTS, GROUP_GATE)
    person, frames = _keep_people(link_groups_2d(det, group, joint_set), min_frames)
    return PeopleWithoutCameras(person, pairs, rejected, frames, rotations)


def _stacked(people: np.ndarray, kp: Keypoints) -> tuple[Keypoints, np.ndarray]:
    """(sum of frames, C, J, 3) keypoints: each person's frames with a detection in two cameras
    or more, in time order, person after person (people (N, T, C, J, 3)); and (sum of frames,)
    the person of each."""
    seen = (np.nan_to_num(people[..., 2]) > 0).any(-1).sum(-1) >= 2        # (N, T)
    data = np.concatenate([people[n][seen[n]] for n in range(len(people))])
    groups = np.repeat(np.arange(len(people)), seen.sum(1))
    return Keypoints(data, kp.joint_set, kp.camera_names, kp.image_size, kp.fps), groups


def _intrinsics_guess(kp: Keypoints, intrinsics: CameraRig | None, source: str,
                      config: CalibrationConfig) -> CameraRig:
    """The intrinsics the association uses: the given ones fitted to the image sizes, else the
    guess :func:`calibrate_from_people` starts from."""
    names = list(kp.camera_names)
    sizes = image_sizes(kp, intrinsics)
    if intrinsics is None:
        return guess_intrinsics(names, sizes, config.focal_guess)
    rig, _ = match_rig(intrinsics, names, source, by_order=True)
    return fit_sizes(rig, sizes, source)[0]


def calibrate_from_several_people(keypoints: Keypoints, intrinsics: CameraRig | None = None,
                                  subject_height: float | None = None,
                                  config: CalibrationConfig = CalibrationConfig(),
                                  intrinsics_source: str = "intrinsics",
                                  known_distance=None, scene=None) -> CalibrationResult:
    """Calibrate synchronized cameras from the several people they see (module docstring).

    Args:
        keypoints: (T, C, P, J, 3) 2D detections, pixels, P unassociated slots per camera-frame
            (a keypoints without a P axis, or P = 1, is one person: :func:`calibrate_from_people`).
        intrinsics, config, intrinsics_source, known_distance, scene: as for
            :func:`calibrate_from_people` (the scene's frames without the people's boxes when
            there are several: the stacked people's frames are not the videos').
        subject_height: the people's mean height, metres, for the scale; None = body
            proportions.

    Returns:
        :class:`~.from_people.CalibrationResult` whose ``points`` and ``flips`` are of the
        stacked people and whose report has ``people``: the people found, frames of each, the
        pair fits of the association.

    Raises:
        CalibrationError: as :func:`calibrate_from_people`, and when the detections of the
        people cannot be matched across cameras (no pair's pooled pairings give a geometry, or
        no person is grouped in two cameras or more), naming the pairs and what to record.
    """
    if not keypoints.has_people or keypoints.data.shape[2] == 1:
        one = keypoints if not keypoints.has_people else Keypoints(
            keypoints.data[:, :, 0], keypoints.joint_set, keypoints.camera_names,
            keypoints.image_size, keypoints.fps)
        return calibrate_from_people(one, intrinsics, subject_height, config,
                                     intrinsics_source=intrinsics_source,
                                     known_distance=known_distance, scene=scene)
    rig0 = _intrinsics_guess(keypoints, intrinsics, intrinsics_source, config)
    found = associate_without_cameras(rig0, keypoints.data, keypoints.joint_set, config)
    _check_found(found, keypoints)
    scene = scene and [[(-1, image) for _, image in frames] for frames in scene]
    stacked, groups = _stacked(found.people(keypoints.data), keypoints)
    result = calibrate_from_people(stacked, intrinsics, subject_height, config,
                                   intrinsics_source=intrinsics_source,
                                   known_distance=known_distance, scene=scene,
                                   frame_groups=groups)
    off, first = _disagreeing_pairs(found, result.rig), found
    if off:       # step 5: associate again with the first cameras' geometry, calibrate again
        found = associate_without_cameras(result.rig, keypoints.data, keypoints.joint_set,
                                          config, use_poses=True)
        _check_found(found, keypoints, first)
        stacked, groups = _stacked(found.people(keypoints.data), keypoints)
        result = calibrate_from_people(stacked, intrinsics, subject_height, config,
                                       intrinsics_source=intrinsics_source,
                                       known_distance=known_distance, scene=scene,
                                       frame_groups=groups)
    report = {**result.report, "people": {
        "found": found.n_people, "frames": found.frames.tolist(),
        "pairings": first.pairs, "rejected_pairings": first.rejected,
        "pairings_off_deg": off}}
    return CalibrationResult(result.rig, report, result.points, result.flips,
                             result.adjustment, result.verdict)


def _disagreeing_pairs(found: PeopleWithoutCameras, rig: CameraRig) -> dict[str, float]:
    """``{"a-b": degrees}`` of the pairs whose pooled fit's rotation is more than
    ``PAIR_OFF_DEG`` from the calibrated cameras' relative rotation (a robust fit that settled
    on a wrong geometry: cameras facing each other across the people, whose epipoles lie among
    the people, where a wrong pairing of detections fits a wrong geometry about as well)."""
    off = {}
    for (a, b), R in found.rotations.items():
        Rc, _ = rig.relative_pose(a, b)
        deg = float(rotation_angle_deg(R.T @ Rc))
        if deg > PAIR_OFF_DEG:
            off[f"{rig.names[a]}-{rig.names[b]}"] = round(deg, 1)
    return off


def _check_found(found: PeopleWithoutCameras, kp: Keypoints,
                 first: PeopleWithoutCameras | None = None) -> None:
    """A :class:`CalibrationError` when the people could not be matched across cameras
    (``first``: the pass whose pair fits the message quotes)."""
    P = kp.data.shape[2]
    first = first or found
    if first.pairs and found.n_people:
        return
    why = "; ".join(f"{k}: {v}" for k, v in first.rejected.items()) or "no pair fitted"
    raise CalibrationError(
        f"cameras {list(kp.camera_names)}: the {P} detection slots per camera-frame could not be "
        f"matched across cameras without a calibration (no camera pair's pooled pairings of "
        f"detections agree on one geometry, or no person was grouped in two cameras for "
        f"{MIN_FRAMES} frames; pairs: {why}). Record a stretch where the people move apart or "
        f"one person is alone in view, or give the cameras (--cameras) and triangulate")
