"""Several people through ``epiflow run``: a synthetic two-person crowd as a keypoints npz with a
P axis and its cameras gives two labelled people with stable ids; inspect lists both, export
writes a TRC each, the trainer samples both; bad inputs are refused before any work."""
from __future__ import annotations

import json

import numpy as np
import pytest

from epiflow.calibration.formats import save_toml
from epiflow.cli import main
from epiflow.datasets.crowds import CrowdOptions, make_crowd, score_people
from epiflow.keypoints import Keypoints, save_npz
from epiflow.store import PoseStore


@pytest.fixture(scope="module")
def crowd():
    return make_crowd(CrowdOptions(n_people=2, n_cameras=4, n_frames=40), seed=3)


def _inputs(tmp_path, crowd, det=None):
    kp = Keypoints(crowd.detections if det is None else det, crowd.joint_set,
                   tuple(crowd.rig.names), crowd.rig.sizes, crowd.fps)
    save_npz(kp, tmp_path / "kp.npz")
    save_toml(crowd.rig, tmp_path / "cameras.toml")
    return ["--keypoints", str(tmp_path / "kp.npz"), "--cameras", str(tmp_path / "cameras.toml")]


def test_two_people_run_inspect_export_train(ray_head, tmp_path, crowd, capsys):
    out = str(tmp_path / "S.zarr")
    assert main(["run", *_inputs(tmp_path, crowd), "--out", out, "--session", "two",
                 "--address", ray_head["address"], "--quiet"]) == 0
    s = PoseStore.open(out).session("two")
    T, C, P = crowd.detections.shape[:3]
    assert s.is_complete and s.max_people == P and s.keypoints2d.shape == (T, C, P, 17, 3)
    labels = s.labels()
    assert labels.n_people == 2 and labels.person_ids.tolist() == [0, 1]
    assert labels.pseudo3d.shape == (T, 2, 17, 3) and labels.slots.shape == (T, 2, C)
    # the store's slots are the association: the trainer's 2D of a person is that person's
    assignment = np.full((T, C, P), -1)
    t, n, c = np.nonzero(labels.slots >= 0)
    assignment[t, c, labels.slots[t, n, c]] = n
    score = score_people(crowd, labels.pseudo3d, assignment)
    assert score["found"] >= 0.97 and score["mpjpe_mm"] <= 20 and score["swaps"] == 0, score
    assert score["assignment_accuracy"] >= 0.97, score
    people = s.label_summary["people"]
    assert sorted(people) == ["0", "1"] and set(people["0"]["cameras"]) == set(crowd.rig.names)
    capsys.readouterr()

    assert main(["inspect", out]) == 0
    lines = capsys.readouterr().out.splitlines()
    for pid in (0, 1):       # a line per person, then its camera table
        at = next(i for i, x in enumerate(lines) if f"two person {pid}:" in x)
        assert f"of {T} frames labelled" in lines[at]
        assert lines[at + 1].split() == ["camera", "detected", "%", "refused", "%", "used", "%",
                                         "reproj", "px"]
        assert [x.split()[0] for x in lines[at + 2:at + 2 + C]] == list(crowd.rig.names)
    assert main(["inspect", out, "--json"]) == 0
    people = json.loads(capsys.readouterr().out)["sessions"][0]["people"]
    for p in people:   # the crowd hides people from some cameras and swaps some joints
        for name, cam in p["cameras"].items():
            assert 0.3 <= cam["detected"] <= 1 and cam["refused"] <= 0.25, (p["id"], name, cam)
            assert 0.2 <= cam["used"] <= cam["detected"] + 0.05, (p["id"], name, cam)
            assert cam["reproj_px"] < 5.0, (p["id"], name, cam)
    for c, name in enumerate(crowd.rig.names):   # detected, summed over people: the truth's
        found = sum(p["cameras"][name]["detected"] for p in people)
        assert abs(found - crowd.detected[:, :, c].mean(0).sum()) <= 0.2, (name, found)
    assert main(["export", out, "--out", str(tmp_path / "poses.trc")]) == 0
    assert sorted(p.name for p in tmp_path.glob("poses*.trc")) == ["poses_p0.trc",
                                                                   "poses_p1.trc"]

    from epiflow.models.data import PoseDataset, load_sessions, prepare_session
    sessions = load_sessions(out)
    assert [(x.name, x.session_id, x.person_id) for x in sessions] == [
        ("two:p0", "two", 0), ("two:p1", "two", 1)]
    for x in sessions:   # each person's 2D is its own: its labels reproject onto it
        err = crowd.rig.reprojection_error(x.pseudo3d, np.moveaxis(x.keypoints2d[..., :2], 1, 0))
        assert np.nanmedian(err) < 5.0, x.name
    data = PoseDataset([prepare_session(x, "pseudo", "h36m17") for x in sessions], 1)
    usable = sum(int(((x.keypoints2d[..., 0, 2] > 0) & (x.pseudo3d_weight > 0).any(-1)[:, None])
                     .sum()) for x in sessions)      # root seen in the camera, frame labelled
    assert 0.98 * usable <= len(data) <= usable      # (a root the undistortion loses: left out)
    assert usable > 0.7 * 2 * T * C                   # (the crowd hides people from cameras)
    assert set(data.index[:, 0].tolist()) == {0, 1}  # samples of both people


def test_a_camera_off_for_one_person_is_stored_and_printed_by_name(ray_head, tmp_path, capsys):
    """The crowd of tests/calibration/test_triangulation_cli_people.py (with 4 cameras and 2
    people, a camera 200 px off for one person loses that person's association instead)."""
    crowd = make_crowd(CrowdOptions(n_people=3, n_cameras=5, n_frames=40), seed=7)
    det = crowd.detections.copy()
    mine = crowd.slot_person == 1
    mine[:, [0, 1, 3, 4]] = False                              # person 1, in the third camera
    det[mine, :, 0] += 200.0
    cam = crowd.rig.names[2]
    out = str(tmp_path / "S.zarr")
    assert main(["run", *_inputs(tmp_path, crowd, det), "--out", out, "--session", "off",
                 "--address", ray_head["address"], "--quiet"]) == 0
    err = capsys.readouterr().err
    printed = [w for w in err.splitlines() if f"camera {cam} disagrees" in w]
    assert len(printed) == 1 and "epiflow run: warning:" in printed[0], err
    s = PoseStore.open(out).session("off")
    assert any(f"camera {cam} disagrees" in w for w in s.warnings)
    n = [w for w in printed[0].split() if w.rstrip(":").isdigit()]
    person = s.label_summary["people"][n[0].rstrip(":")] if n else None
    assert person is not None and person["cameras"][cam]["disagrees with the other views"] > 20
    assert s.label_summary["median_reproj_px_per_camera"][cam] < 10   # the views used are fine
    capsys.readouterr()
    # inspect shows it per person: cam missing person 1 (refused as disagreeing), not the others
    assert main(["inspect", out, "--json"]) == 0
    people = {p["id"]: p["cameras"] for p in
              json.loads(capsys.readouterr().out)["sessions"][0]["people"]}
    off = int(n[0].rstrip(":"))
    assert people[off][cam]["detected"] <= 0.2 and people[off][cam]["refused"] >= 0.7
    assert people[off][cam]["used"] <= 0.1
    for pid, cams in people.items():
        if pid != off:
            assert cams[cam]["detected"] >= 0.8 and cams[cam]["refused"] <= 0.1, (pid, cams)


def test_person_camera_quality_shows_a_camera_off_for_one_person(crowd):
    """On the true 3D and the true association, person 1's detections in one camera shifted
    200 px: that person and camera show a ~200 px median error, every other pair a few px; the
    detected share is the crowd's; used is the views' share of the labelled joints."""
    from epiflow.pipeline.triangulate import person_camera_quality, person_slots
    from epiflow.store import Labels

    det = crowd.detections.copy()
    det[:, 2][crowd.slot_person[:, 2] == 1, :, 0] += 200.0
    T, N = crowd.truth.shape[:2]
    slots = person_slots(crowd.slot_person, N)                             # (T, N, C)
    views = np.repeat((slots >= 0)[..., None], crowd.truth.shape[2], -1)   # (T, N, C, J)
    weight = np.ones(crowd.truth.shape[:3], np.float32)
    labels = Labels(crowd.truth.astype(np.float32), weight, np.zeros_like(weight), views,
                    np.arange(N), slots)
    quality = person_camera_quality(crowd.rig, labels, det)
    assert [q["id"] for q in quality] == list(range(N))
    for n, q in enumerate(quality):
        for c, name in enumerate(crowd.rig.names):
            cam = q["cameras"][name]
            assert cam["detected"] == pytest.approx(crowd.detected[:, n, c].mean())
            assert cam["used"] == pytest.approx(cam["detected"])
            if (n, c) == (1, 2):
                assert 150 < cam["reproj_px"] < 250, cam
            else:
                assert cam["reproj_px"] < 10, (n, name, cam)


def test_several_people_without_cameras(ray_head, tmp_path, crowd, capsys):
    """No cameras given: run solves them from both people (association without cameras), then
    labels each person with them."""
    from epiflow.models.metrics import rig_errors
    args = _inputs(tmp_path, crowd)
    out = str(tmp_path / "S.zarr")
    assert main(["run", args[0], args[1], "--out", out, "--session", "free",
                 "--address", ray_head["address"], "--quiet"]) == 0
    s = PoseStore.open(out).session("free")
    assert rig_errors(s.rig, crowd.rig)["rotation_deg_max"] < 1.0
    pelvis = s.labels().pseudo3d[:, :, 0]                               # (T, N, 3)
    labelled = np.isfinite(pelvis).all(-1).mean(0)
    assert (np.sort(labelled)[-2:] >= 0.9).all(), labelled
    capsys.readouterr()


def test_a_p_axis_of_size_zero_is_refused(tmp_path, crowd, capsys):
    args = _inputs(tmp_path, crowd)
    T, C = crowd.detections.shape[:2]
    empty = np.zeros((C, T, 0, 17, 3), np.float32)          # a P axis of size 0
    np.savez(tmp_path / "empty.npz", keypoints=empty, joint_set="h36m17",
             camera_names=np.array(crowd.rig.names), image_size=crowd.rig.sizes)
    assert main(["run", "--keypoints", str(tmp_path / "empty.npz"), "--cameras",
                 args[3], "--out", str(tmp_path / "S.zarr")]) == 2
    err = capsys.readouterr().err
    assert "empty.npz" in err and "P axis" in err and not (tmp_path / "S.zarr").exists()
