"""Two people on the Pose2Sim two-person videos with the lab cameras (issue 11's measurement,
``benchmarks/two_person.py``, on its first 20 frames).

The multi-person detector reads frames 0-19 of cam01..cam04 (a few seconds; the benchmark's
cache under the gitignored ``benchmarks/out`` is not used: a test must rebuild what it reads);
``triangulate_people`` with the lab calibration labels each person. Both people must be labelled
in at least 90 % of the frames under one id each, and no pelvis may move more than 0.25 m between
consecutive labelled frames (the two stand 1.5 m apart or more: an identity swap moves a pelvis
that far; a swap halfway through these frames makes a 1.67 m step). Measured: 100 % each,
largest step 0.15 m, the two pelvises 1.5-1.75 m apart.
"""
from __future__ import annotations

import numpy as np
import pytest

FRAMES = 20


@pytest.fixture(scope="module")
def labelled(shared_data):
    from epiflow.calibration.camera import match_rig
    from epiflow.calibration.formats import load_rig
    from epiflow.calibration.from_people import fit_sizes
    from epiflow.calibration.people import triangulate_people
    from epiflow.detection.detectors import list_videos, read_frames, video_info
    from epiflow.detection.tracking import MultiPersonPoseDetector
    from epiflow.skeleton import map_to_h36m
    demo = shared_data / "pose2sim_demo"
    paths = list_videos(demo / "multi_person" / "videos")
    detector = MultiPersonPoseDetector(max_people=4)
    det = []
    for path in paths:
        detector.reset()
        det.append(detector(read_frames(path, 0, FRAMES)))
    det = np.stack(det, axis=1)                                   # (T, C, P, 33, 3)
    lab = demo / "calibration" / "Calib_qualisys.toml"
    rig, _ = match_rig(load_rig(lab), [p.stem for p in paths], str(lab), by_order=True)
    rig, _ = fit_sizes(rig, np.array([video_info(p).size for p in paths]), str(lab))
    h36m = map_to_h36m(det, "blazepose33", confidence=True)
    return det, triangulate_people(rig, h36m, "h36m17")


def test_detector_sees_two_people_in_every_camera(labelled):
    det, _ = labelled
    people = (det[..., 2] > 0).any(-1).sum(-1)                    # (T, C)
    assert (people <= 2).all(), "no ghost or duplicate person in these views"
    assert (people >= 1).all() and np.mean(people == 2) >= 0.9


def test_both_people_labelled_without_identity_swap(labelled):
    _, res = labelled
    pelvis = res.points3d[:, :, 0]                                # (T, N, 3), h36m17 joint 0
    labelled_share = np.isfinite(pelvis).all(-1).mean(0)
    top = np.argsort(-labelled_share)[:2]
    assert len(res.person_ids) >= 2 and (labelled_share[top] >= 0.9).all(), labelled_share
    for n in top:
        p = pelvis[:, n][np.isfinite(pelvis[:, n]).all(-1)]
        steps = np.linalg.norm(np.diff(p, axis=0), axis=-1)
        assert steps.max() <= 0.25, f"person {res.person_ids[n]}: pelvis step {steps.max():.2f} m"
    a, b = pelvis[:, top[0]], pelvis[:, top[1]]
    apart = np.linalg.norm(a - b, axis=-1)
    assert np.nanmin(apart) > 0.4, "two labels on one person are not two people"


def test_cameras_from_the_two_people(labelled, shared_data):
    """The same 20 frames without the lab's extrinsics: the two people are matched across the
    cameras without a calibration (they agree with the lab cameras' association in every
    camera-frame where the lab one placed them), and the cameras solved from both (lab intrinsics) are within 7 degrees of
    the lab per pair (measured 5.5; 4.3 on all 100 frames, benchmarks/two_person.py); the cam03
    tracks swapped, a wrong matching, give cameras 180 degrees off."""
    from epiflow.calibration.camera import match_rig
    from epiflow.calibration.formats import load_rig
    from epiflow.calibration.from_people import calibrate_from_people, fit_sizes
    from epiflow.calibration.people_calibration import (associate_without_cameras,
                                                        calibrate_from_several_people)
    from epiflow.keypoints import Keypoints
    from epiflow.models.metrics import rig_errors
    det, res = labelled
    path = shared_data / "pose2sim_demo" / "calibration" / "Calib_qualisys.toml"
    names = ("cam01", "cam02", "cam03", "cam04")
    sizes = np.array([[1088, 1920]] * 4)
    lab, _ = match_rig(load_rig(path), list(names), str(path), by_order=True)
    lab, _ = fit_sizes(lab, sizes, str(path))
    found = associate_without_cameras(lab, det, "blazepose33")
    assert found.n_people == 2
    same = []
    for n in range(2):       # one lab person per person found (where the lab one placed the slot)
        ids = res.assignment[found.assignment == n]
        assert len(set(ids.tolist()) - {-1}) == 1 and (ids >= 0).mean() >= 0.8  # 0.89
        same.append(ids.max())
    assert sorted(same) == [0, 1]
    kp = Keypoints(det, "blazepose33", names, sizes, 30.0)
    e = rig_errors(calibrate_from_several_people(kp, lab).rig, lab)
    assert e["rotation_deg_max"] < 7.0, e
    people = found.people(det)                                       # (N, T, C, J, 3)
    people[:, :, 2] = people[::-1, :, 2]                             # cam03's two swapped
    wrong = Keypoints(np.concatenate(list(people)), "blazepose33", names, sizes, 30.0)
    assert rig_errors(calibrate_from_people(wrong, lab).rig, lab)["rotation_deg_max"] > 20

