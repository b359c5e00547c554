"""Grouping detections across views at one instant (epiflow.calibration.association), on synthetic
crowds of real CMU motion with shuffled slots, ghosts, swaps and outliers."""
from __future__ import annotations

import numpy as np
import pytest

from epiflow.calibration.association import (DETECTION_REASON_TEXT, DetectionReason, associate,
                                             epipolar_costs)
from epiflow.calibration.people import triangulate_people
from epiflow.datasets.crowds import CrowdOptions, make_crowd, score_people


@pytest.fixture(scope="module")
def crowd():
    return make_crowd(CrowdOptions(n_people=3, n_cameras=5, n_frames=40), seed=3)


def test_epipolar_costs_separate_people(crowd):
    cost = epipolar_costs(crowd.rig, crowd.detections, crowd.joint_set)
    who = crowd.slot_person
    t, a, p, b, q = np.nonzero(np.isfinite(cost))
    same = (who[t, a, p] == who[t, b, q]) & (who[t, a, p] >= 0)
    other = (who[t, a, p] != who[t, b, q]) & (who[t, a, p] >= 0) & (who[t, b, q] >= 0)
    c = cost[t, a, p, b, q]
    assert np.median(c[same]) < 0.02                 # a few px on a person hundreds of px tall
    assert np.median(c[other]) > 0.1
    assert np.allclose(cost, cost.transpose(0, 3, 4, 1, 2), equal_nan=True)


def test_groups_hold_one_person_each(crowd):
    a = associate(crowd.rig, crowd.detections, crowd.joint_set)
    labels = [crowd.slot_person[t][a.group[t] == g] for t in range(a.group.shape[0])
              for g in range(a.group[t].max() + 1)]
    pure = np.mean([len(set(x.tolist())) == 1 and x[0] >= 0 for x in labels])
    assert pure >= 0.99
    real = crowd.slot_person >= 0
    assert (a.group[real] >= 0).mean() >= 0.97
    assert a.points3d.shape[:2] == a.n_views.shape and a.points3d.shape[2:] == (17, 3)


def test_assignment_accuracy_on_a_small_crowd(crowd):
    res = triangulate_people(crowd.rig, crowd.detections, crowd.joint_set)
    s = score_people(crowd, res.points3d, res.assignment)
    assert s["assignment_accuracy"] >= 0.99
    assert s["found"] >= 0.97 and s["mpjpe_mm"] <= 20 and s["swaps"] == 0
    assert len(res.person_ids) == 3


def _with_ghost(crowd, camera: int, frames: range, shift=(1.5, 0.0, 0.0)):
    """The crowd's detections with one more slot: person 0's true pose moved by ``shift`` metres,
    seen by ``camera`` only at ``frames``."""
    det = np.concatenate([crowd.detections, np.full(crowd.detections.shape[:2] + (1, 17, 3),
                                                    np.nan)], axis=2)
    det[:, :, -1, :, 2] = 0.0
    uv = crowd.rig.subset([camera]).project(crowd.truth[:, 0] + shift)[0]   # (T, J, 2)
    det[list(frames), camera, -1, :, :2] = uv[list(frames)]
    det[list(frames), camera, -1, :, 2] = 0.9
    return det


def test_a_ghost_seen_by_one_camera_is_rejected_with_its_reason():
    crowd = make_crowd(CrowdOptions(n_people=3, n_cameras=5, n_frames=30, ghost_rate=0.0),
                       seed=4)
    det = _with_ghost(crowd, camera=1, frames=range(5, 25))
    res = triangulate_people(crowd.rig, det, crowd.joint_set)
    assert (res.assignment[5:25, 1, -1] == -1).all()
    assert (res.detection_reason[5:25, 1, -1] == DetectionReason.ONE_VIEW).all()
    assert "ghost" in DETECTION_REASON_TEXT[DetectionReason.ONE_VIEW]
    assert len(res.person_ids) == 3                  # no fourth person from the ghost


@pytest.mark.parametrize("shape, words", [
    ((10, 5, 3, 17), ["detections", "4 dimensions", "(10, 5, 3, 17)"]),
    ((10, 5, 0, 17, 3), ["detections", "P axis", "(10, 5, 0, 17, 3)"]),
    ((10, 4, 3, 17, 3), ["detections", "(10, 4, 3, 17, 3)", "rig has 5", "4 cameras"]),
    ((10, 5, 3, 14, 3), ["detections", "J=17", "(10, 5, 3, 14, 3)", "joint_set"]),
])
def test_bad_detections_name_the_argument_and_shapes(crowd, shape, words):
    with pytest.raises(ValueError) as err:
        triangulate_people(crowd.rig, np.zeros(shape), crowd.joint_set)
    for w in words:
        assert w in str(err.value)


def test_an_empty_camera_frame_gives_no_group(crowd):
    det = crowd.detections.copy()
    det[:, 0] = np.nan
    det[:, 0, ..., 2] = 0.0
    a = associate(crowd.rig, det, crowd.joint_set)
    assert (a.group[:, 0] == -1).all()
    assert (a.reason[:, 0] == DetectionReason.EMPTY).all()
    assert (a.group[:, 1:][crowd.slot_person[:, 1:] >= 0] >= 0).mean() >= 0.97


def test_a_phantom_seen_by_two_cameras_of_five_is_removed():
    # a consistent pose in cameras 0 and 1 only (two ghosts agreeing), 1.5 m from person 0, in
    # front of the other three cameras, which see nothing there
    crowd = make_crowd(CrowdOptions(n_people=3, n_cameras=5, n_frames=30, ghost_rate=0.0),
                       seed=4)
    det = _with_ghost(crowd, camera=0, frames=range(30))
    extra = _with_ghost(crowd, camera=1, frames=range(30))
    det[:, 1, -1] = extra[:, 1, -1]
    res = triangulate_people(crowd.rig, det, crowd.joint_set)
    assert (res.assignment[:, :2, -1] == -1).all()
    assert (res.detection_reason[:, :2, -1] == DetectionReason.UNSUPPORTED).mean() > 0.9
    assert len(res.person_ids) == 3
    kept = triangulate_people(crowd.rig, det, crowd.joint_set, min_support=0)
    assert len(kept.person_ids) == 4                 # without the check it is a fourth person
