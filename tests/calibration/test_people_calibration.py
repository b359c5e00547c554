"""Cameras from several people (epiflow.calibration.people_calibration): association without
cameras on synthetic crowds of real CMU motion (slots shuffled in every camera-frame, ghosts,
people hidden from views, left/right swaps), then calibration on everyone."""
from __future__ import annotations

import numpy as np
import pytest

from epiflow.calibration.camera import CalibrationError
from epiflow.calibration.from_people import CalibrationConfig, calibrate_from_people
from epiflow.calibration.people_calibration import (associate_without_cameras,
                                                    calibrate_from_several_people,
                                                    link_groups_2d)
from epiflow.datasets.crowds import CrowdOptions, make_crowd
from epiflow.keypoints import Keypoints
from epiflow.models.metrics import rig_errors

#: fewer bundle-adjustment rounds keep each calibration to a few seconds
FAST = CalibrationConfig(rounds=2)


@pytest.fixture(scope="module")
def crowd():
    return make_crowd(CrowdOptions(n_people=3, n_cameras=4, n_frames=30), seed=1)


def _keypoints(crowd, data=None):
    return Keypoints(crowd.detections if data is None else data, crowd.joint_set,
                     tuple(crowd.rig.names), crowd.rig.sizes, 30.0)


def test_groups_without_cameras_hold_one_person_each(crowd):
    found = associate_without_cameras(crowd.rig, crowd.detections, crowd.joint_set)
    a, truth = found.assignment, crowd.slot_person
    real = truth >= 0
    assert (a[real] >= 0).mean() >= 0.85                      # most real detections grouped
    assert (a[~real] >= 0).mean() <= 0.2                      # ghosts mostly left out
    mixed = total = 0
    for t in range(a.shape[0]):                               # per frame: one true person each
        for n in np.unique(a[t][a[t] >= 0]):
            who = set(truth[t][a[t] == n].tolist()) - {-1}
            total += 1
            mixed += len(who) > 1
    assert total >= 0.9 * 3 * a.shape[0] and mixed / total <= 0.05, (mixed, total)  # 0.038
    assert len(found.pairs) == 6 and all(p["inlier_share"] > 0.05 for p in found.pairs)


def test_cameras_from_a_crowd_with_shuffled_slots(crowd):
    res = calibrate_from_several_people(_keypoints(crowd), crowd.rig, config=FAST)
    e = rig_errors(res.rig, crowd.rig)
    assert e["rotation_deg_max"] < 1.0, e                    # measured 0.22 deg
    assert res.report["people"]["found"] >= 3
    # slot 0 taken as one person (what a one-person calibration would read) is no calibration
    naive = _keypoints(crowd, crowd.detections[:, :, 0])
    try:
        wrong = rig_errors(calibrate_from_people(naive, crowd.rig, config=FAST).rig,
                           crowd.rig)["rotation_deg_max"]
    except CalibrationError:
        wrong = np.inf
    assert wrong > 3.0


def test_intrinsics_unknown(crowd):
    res = calibrate_from_several_people(_keypoints(crowd), None, config=FAST)
    e = rig_errors(res.rig, crowd.rig)
    assert e["rotation_deg_max"] < 2.0, e


def test_linking_follows_people_through_shuffled_slots(crowd):
    """Groups given right in every frame but numbered at random: the link through time puts each
    true person under one id in (nearly) every frame."""
    truth = crowd.slot_person
    rng = np.random.default_rng(0)
    group = np.full(truth.shape, -1)
    for t in range(truth.shape[0]):
        order = rng.permutation(3)
        for n in range(3):
            group[t][truth[t] == n] = order[n]
    person = link_groups_2d(crowd.detections, group, crowd.joint_set)
    for n in range(3):
        ids, counts = np.unique(person[truth == n], return_counts=True)
        assert counts.max() / counts.sum() >= 0.95, (n, ids, counts)


def test_people_never_seen_together_is_a_clear_error(crowd):
    """Each camera sees the people only in its own stretch of frames: no pair of cameras has a
    frame in common, so no pairing can be matched."""
    det = crowd.detections.copy()
    T, C = det.shape[:2]
    for c in range(C):
        other = np.ones(T, bool)
        other[c * T // C:(c + 1) * T // C] = False
        det[other, c] = np.nan
        det[other, c, ..., 2] = 0.0
    with pytest.raises(CalibrationError, match="could not be matched across cameras") as err:
        calibrate_from_several_people(_keypoints(crowd, det), crowd.rig, config=FAST)
    assert "--cameras" in str(err.value) and "cam_01-cam_02: 0 observations" in str(err.value)


def test_one_slot_is_the_one_person_path(crowd):
    """P = 1 goes to calibrate_from_people unchanged (same cameras)."""
    truth = crowd.slot_person
    one = np.full(crowd.detections.shape[:2] + (1,) + crowd.detections.shape[3:], np.nan)
    one[..., 2] = 0
    t, c, p = np.nonzero(truth == 1)                       # a walker (person 0 stands)
    one[t, c, 0] = crowd.detections[t, c, p]
    a = calibrate_from_several_people(_keypoints(crowd, one), crowd.rig, config=FAST)
    b = calibrate_from_people(_keypoints(crowd, one[:, :, 0]), crowd.rig, config=FAST)
    assert np.allclose(a.rig.R, b.rig.R) and "people" not in a.report
