"""Several people from raw detections (epiflow.calibration.people.triangulate_people): the record
of each person and camera, a person seen by one camera, a camera 200 px off, max_people."""
from __future__ import annotations

import numpy as np
import pytest

from epiflow.calibration.association import DetectionReason
from epiflow.calibration.formats_shelf import load_shelf_calibration
from epiflow.calibration.people import (PeopleResult, ViewReason, people_from_assignment,
                                        triangulate_people)
from epiflow.datasets.crowds import CrowdOptions, make_crowd, naive_slot_order, score_people
from epiflow.datasets.shelf import gt_track, read_shelf_gt, read_shelf_people
from epiflow.skeleton import get_joint_set


@pytest.fixture(scope="module")
def crowd():
    return make_crowd(CrowdOptions(n_people=3, n_cameras=5, n_frames=40), seed=7)


@pytest.fixture(scope="module")
def result(crowd) -> PeopleResult:
    return triangulate_people(crowd.rig, crowd.detections, crowd.joint_set)


def _person_of(crowd, res: PeopleResult, true: int) -> int:
    """The result person most of true person ``true``'s detections went to."""
    got = res.assignment[(crowd.slot_person == true) & (res.assignment >= 0)]
    return int(np.bincount(got).argmax())


def test_result_shapes_and_accuracy(crowd, result):
    T, C, P = crowd.detections.shape[:3]
    N = len(result.person_ids)
    assert N == 3 and result.points3d.shape == (T, N, 17, 3)
    assert result.weight.shape == result.reproj_error.shape == (T, N, 17)
    assert result.views.shape == (T, N, C, 17) and result.assignment.shape == (T, C, P)
    assert result.camera_reason.shape == (T, N, C) and result.camera_share.shape == (N, C)
    assert ((result.weight >= 0) & (result.weight <= 1)).all()
    assert (result.weight[~np.isfinite(result.points3d).all(-1)] == 0).all()
    s = score_people(crowd, result.points3d, result.assignment)
    assert s["found"] >= 0.97 and s["mpjpe_mm"] <= 20 and s["swaps"] == 0
    assert np.nanmedian(result.reproj_error) < 5.0
    assert result.warnings == []
    for m in range(3):                               # the record agrees with the truth
        n = _person_of(crowd, result, m)
        r = result.camera_reason[:, n]
        labelled = r != ViewReason.NO_LABEL
        hidden = ~crowd.detected[:, m] & labelled
        assert np.isin(r[hidden], [ViewReason.NOT_DETECTED, ViewReason.OUTSIDE_IMAGE]).mean() > 0.95
        assert (r[crowd.detected[:, m] & labelled] == ViewReason.USED).mean() > 0.95


def test_the_naive_slot_order_fails_on_the_same_crowd(crowd):
    res = people_from_assignment(crowd.rig, crowd.detections, crowd.joint_set,
                                 naive_slot_order(crowd.detections), swap="off",
                                 temporal_gate_m=None)
    s = score_people(crowd, res.points3d, res.assignment)
    assert s["found"] < 0.8 and s["swaps"] > 20


def test_a_person_seen_by_one_camera_only_is_kept_in_2d_without_3d(crowd):
    det = crowd.detections.copy()
    alone = (crowd.slot_person == 2) & (np.arange(5) != 0)[None, :, None]
    det[alone] = (np.nan, np.nan, 0.0)                         # person 2: camera 0 only
    res = triangulate_people(crowd.rig, det, crowd.joint_set)
    slots = crowd.slot_person[:, 0] == 2
    assert len(res.person_ids) == 2
    assert (res.assignment[:, 0][slots] == -1).all()
    assert (res.detection_reason[:, 0][slots] == DetectionReason.ONE_VIEW).all()
    # no 3D anywhere near person 2
    d = np.linalg.norm(res.points3d[:, :, 0] - crowd.truth[:, None, 2, 0], axis=-1)
    assert np.nanmin(d) > 0.3


def test_a_camera_200_px_off_for_one_person_is_named(crowd, result):
    det = crowd.detections.copy()
    mine = crowd.slot_person == 1
    mine[:, [0, 1, 3, 4]] = False                              # person 1 in cam_03 only
    det[mine, :, 0] += 200.0
    res = triangulate_people(crowd.rig, det, crowd.joint_set)
    n = _person_of(crowd, res, 1)
    named = [w for w in res.warnings if "cam_03" in w and f"person {res.person_ids[n]}" in w]
    assert named, res.warnings
    assert "200 px" in named[0] or "disagrees" in named[0]
    r = res.camera_reason[:, n, 2]
    seen = (r != ViewReason.NO_LABEL) & (r != ViewReason.OUTSIDE_IMAGE)
    assert (r[seen] == ViewReason.DISAGREES).mean() > 0.8
    assert res.camera_reasons[int(res.person_ids[n])]["cam_03"]["share used"] < 0.2
    assert abs(np.nanmedian(res.disagree_offset_px[:, n, 2]) - 200) < 20
    assert not any("cam_03" in w for w in res.warnings if w not in named)   # the others are fine
    s = score_people(crowd, res.points3d, res.assignment)
    assert s["mpjpe_mm"] <= 20 and s["found"] >= 0.97


def test_max_people_keeps_the_most_confident_with_a_note(crowd):
    det = crowd.detections.copy()
    det[crowd.slot_person == 0, :, 2] *= 0.3                   # person 0: low confidence
    res = triangulate_people(crowd.rig, det, crowd.joint_set, max_people=2)
    assert len(res.person_ids) == 2 and res.points3d.shape[1] == 2
    dropped = res.detection_reason == DetectionReason.BEYOND_MAX_PEOPLE
    assert set(crowd.slot_person[dropped].tolist()) - {-1} == {0}   # (a ghost on it may go too)
    assert (crowd.slot_person[dropped] == -1).sum() <= 2
    assert (res.assignment[crowd.slot_person == 0] == -1).all()
    assert any("max_people=2" in w and "3 people" in w for w in res.warnings)


@pytest.mark.parametrize("value", [0, -1, 1.5])
def test_max_people_must_be_a_positive_integer(crowd, value):
    with pytest.raises(ValueError, match="max_people must be a positive integer"):
        triangulate_people(crowd.rig, crowd.detections, crowd.joint_set, max_people=value)


def test_an_unknown_option_is_named(crowd):
    with pytest.raises(TypeError, match="unknown options \\['gatee'\\]"):
        triangulate_people(crowd.rig, crowd.detections, crowd.joint_set, gatee=0.1)


def test_people_from_assignment_checks_the_assignment_shape(crowd):
    with pytest.raises(ValueError, match=r"assignment must have shape \(T, C, P\)"):
        people_from_assignment(crowd.rig, crowd.detections, crowd.joint_set, np.zeros((3, 3)))


def test_shelf_people_keep_one_id_each(shared_data):
    """Real data: the Shelf detections (assembled per camera without the ground truth) with the
    given cameras; each annotated actor is found, pelvis within 0.2 m of the ground truth, in
    95 % of its annotated frames, always under one id."""
    root = shared_data / "shelf"
    rig = load_shelf_calibration(root / "calibration.json")
    res = triangulate_people(rig, read_shelf_people(root, "body25"), "body25")
    gt = read_shelf_gt(root / "gt.txt")
    pelvis = res.points3d[:, :, get_joint_set("body25").index("MidHip")]          # (T, N, 3)
    for pid in sorted({p.id for frame in gt for p in frame}):
        truth = gt_track(gt, pid)[:, -1]                                          # pelvis
        frames = np.flatnonzero(np.isfinite(truth).all(-1))
        d = np.linalg.norm(pelvis[frames] - truth[frames, None], axis=-1)
        found = np.nan_to_num(d, nan=np.inf).min(1) < 0.2
        assert found.mean() >= 0.95, (pid, found.mean())
        assert len(set(np.nanargmin(np.nan_to_num(d[found], nan=np.inf), 1).tolist())) == 1
