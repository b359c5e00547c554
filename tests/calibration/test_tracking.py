"""Linking people through time (epiflow.calibration.tracking): identities through a crossing and
through an occlusion, on hand-made trajectories and on a synthetic crowd."""
from __future__ import annotations

import numpy as np
import pytest

from epiflow.calibration.people import triangulate_people
from epiflow.calibration.tracking import link_tracks, pose_distances
from epiflow.datasets.crowds import CrowdOptions, make_crowd, score_people

#: a 3-joint "pose": pelvis, head, a hand, metres
POSE = np.array([[0.0, 0.0, 0.9], [0.0, 0.0, 1.7], [0.3, 0.0, 1.1]])


def _crossing(T: int = 40, gap_m: float = 0.25, speed: float = 0.04) -> np.ndarray:
    """Two people walking at each other along x, ``gap_m`` apart in y, slots swapped every
    other frame: (T, 2, 3, 3)."""
    x = (np.arange(T) - T / 2 + 0.5) * speed        # they pass between frames T/2 - 1 and T/2
    a = POSE + np.stack([x, np.zeros(T), np.zeros(T)], 1)[:, None]
    b = POSE * [-1, 1, 1] + np.stack([-x, np.full(T, gap_m), np.zeros(T)], 1)[:, None]
    pts = np.stack([a, b], 1)
    pts[1::2] = pts[1::2, ::-1]
    return pts


def test_two_people_crossing_keep_their_ids():
    # each steps 0.15 m a frame, more than their 0.1 m gap: matching each to the nearest pose of
    # the frame before, without the velocity, swaps them where they pass
    pts = _crossing(gap_m=0.1, speed=0.15)
    track = link_tracks(pts, min_length=1)
    who = np.tile([0, 1], (len(pts), 1))
    who[1::2] = who[1::2, ::-1]                      # the true person of each slot
    first = {track[0, s]: who[0, s] for s in range(2)}
    assert all(first[track[t, s]] == who[t, s] for t in range(len(pts)) for s in range(2))


def test_a_track_survives_an_occlusion_and_ends_after_max_gap():
    pts = np.stack([_crossing()[t][[0 if t % 2 == 0 else 1]] for t in range(40)])  # person 0
    pts[15:23] = np.nan                              # hidden for 8 frames
    track = link_tracks(pts, max_gap=10, min_length=1)
    assert set(track[np.isfinite(pts[:, :, 0, 0])].tolist()) == {0}
    assert link_tracks(pts, max_gap=5, min_length=1).max() == 1     # too long a gap: a new id


def test_short_tracks_are_dropped():
    pts = np.full((20, 2, 3, 3), np.nan)
    pts[:, 0] = POSE
    pts[5:7, 1] = POSE + [2.0, 0, 0]                 # two frames of something else
    track = link_tracks(pts, min_length=5)
    assert (track[:, 0] == 0).all() and (track[:, 1] == -1).all()


def test_pose_distance_is_robust_to_a_misplaced_joint():
    b = POSE.copy()
    b[2] += 3.0
    assert pose_distances(POSE[None], b[None])[0, 0] == pytest.approx(0.0)
    assert pose_distances(POSE[None], np.full((1, 3, 3), np.nan))[0, 0] == np.inf


def test_bad_points_shape():
    with pytest.raises(ValueError, match=r"points3d must have shape \(T, G, J, 3\).*\(4, 3, 3\)"):
        link_tracks(np.zeros((4, 3, 3)))


def test_crossing_people_in_a_crowd_keep_their_ids():
    crowd = make_crowd(CrowdOptions(n_people=2, n_cameras=4, n_frames=60, cross_gap_frames=8),
                       seed=5)
    assert crowd.closest[:2] == (0, 1) and crowd.closest[3] < 0.45      # they do cross
    res = triangulate_people(crowd.rig, crowd.detections, crowd.joint_set)
    s = score_people(crowd, res.points3d, res.assignment)
    assert s["swaps"] == 0 and s["found"] >= 0.97 and len(res.person_ids) == 2
    # each result person holds one true person's detections on both sides of the crossing (a
    # ghost that falls on a person's projection where its camera missed it may join it)
    t0 = crowd.closest[2]
    for n in range(2):
        before = crowd.slot_person[:t0][res.assignment[:t0] == n]
        after = crowd.slot_person[t0:][res.assignment[t0:] == n]
        assert len({*before.tolist(), *after.tolist()} - {-1}) == 1
        assert (before == -1).sum() + (after == -1).sum() <= 2
