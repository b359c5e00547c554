"""The metric scale: a known distance between two cameras fixes it exactly; without one, the
scale's uncertainty is reported (and printed); a known distance naming an unknown camera is bad
input (exit 2); one focal length for cameras of one model (``same_focal``)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from epiflow.calibration.camera import CalibrationError
from epiflow.calibration.compare import camera_distances
from epiflow.calibration.from_people import (SCALE_WARNING, CalibrationConfig,
                                             calibrate_from_people)
from epiflow.calibration import world_frame as wf
from epiflow.cli import main
from epiflow.datasets.cmu import load_packaged_clip
from epiflow.datasets.synthetic import Corruption, capture_center, make_rig, synthesize
from epiflow.keypoints import save_npz

CONFIG = CalibrationConfig()


@pytest.fixture(scope="module")
def capture():
    """The CMU walk (subject 02: the limbs imply 1.638 m) seen by 4 cameras, 2 px noise."""
    motion = load_packaged_clip("02_01")
    rig = make_rig(4, focal_px=(900, 1500), target=capture_center(motion), seed=0)
    return synthesize(motion, rig, Corruption(noise_px=2.0), seed=1)


@pytest.fixture(scope="module")
def results(capture):
    """Calibrations with the true intrinsics (150 frames): without a height, and with a known
    distance between cam_01 and cam_03."""
    truth = capture.rig
    d13 = float(np.linalg.norm(truth.centers[0] - truth.centers[2]))
    known = wf.KnownDistance("cam1", "CAM_03", d13)  # loose names, as the command line takes
    kp = capture.keypoints.frames(0, 150)
    return {"none": calibrate_from_people(kp, truth, None, CONFIG),
            "known": calibrate_from_people(kp, truth, None, CONFIG, known_distance=known),
            "d13": d13}


class TestKnownDistance:
    def test_sets_the_scale_exactly(self, capture, results):
        rig, report = results["known"].rig, results["known"].report
        d = np.linalg.norm(rig.centers[0] - rig.centers[2])
        assert d == pytest.approx(results["d13"], rel=1e-9)
        # the other distances follow from the geometry alone (0.3 % measured)
        rel = camera_distances(rig) / camera_distances(capture.rig) - 1
        assert np.abs(rel).max() < 0.01
        assert report["scale_source"] == "known_distance"
        assert report["known_distance"] == ["cam1", "CAM_03", pytest.approx(results["d13"])]
        assert report["scale_relative_sd"] is None
        assert not any(w.startswith(SCALE_WARNING) for w in report["warnings"])
        # without it the scale is the 1.70 m default's: 3.8 % long for this 1.64 m subject
        far = np.abs(camera_distances(results["none"].rig) / camera_distances(capture.rig) - 1).max()
        assert far > 0.025

    def test_parse_and_cameras(self):
        kd = wf.KnownDistance.parse(["cam01", "cam02", "3.20"])
        assert kd == wf.KnownDistance("cam01", "cam02", 3.2)
        assert kd.indices(["cam_02", "cam_01", "cam_03"]) == (1, 0)
        centers = np.array([[0, 0, 0], [0, 0.5, 0], [1, 0, 0.0]])
        assert kd.scale(centers, ["cam01", "cam02", "cam03"]) == pytest.approx(6.4)
        for bad, needle in ((["a", "b"], "CAMERA_A CAMERA_B METRES"),
                            (["a", "b", "x"], "a number of metres"),
                            (["a", "b", "0"], "> 0 metres"), (["a", "a", "2"], "twice")):
            with pytest.raises(ValueError, match=needle):
                wf.KnownDistance.parse(bad)
        with pytest.raises(CalibrationError) as err:
            kd.indices(["cam01", "cam03"])
        assert "camera 'cam02' is not one of" in str(err.value)
        assert "['cam01', 'cam03']" in str(err.value)

    def test_unknown_camera_exits_2_before_anything_is_written(self, tmp_path, capture,
                                                                capsys):
        npz = tmp_path / "kp.npz"
        save_npz(capture.keypoints, npz)
        out = tmp_path / "cams.toml"
        assert main(["calibrate", "--keypoints", str(npz), "--out", str(out),
                     "--known-distance", "cam_01", "cam_09", "3.2"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("epiflow calibrate: error: --known-distance: camera 'cam_09'")
        assert "['cam_01', 'cam_02', 'cam_03', 'cam_04']" in err and "--known-distance" in err
        assert not out.exists() and not out.with_name("cams.report.json").exists()


def test_run_refuses_an_unknown_camera_before_anything_runs(tmp_path, capsys):
    """``epiflow run --known-distance`` with a camera that is not among the videos: exit 2,
    naming it and the cameras, before Ray starts or the store is made."""
    import cv2
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("cam1.mp4", "cam2.mp4"):
        writer = cv2.VideoWriter(str(videos / name), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48))
        for i in range(3):
            writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
        writer.release()
    store = tmp_path / "s.zarr"
    assert main(["run", "--videos", str(videos), "--out", str(store), "--known-distance", "cam1",
                 "cam3", "2.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("epiflow run: error: --known-distance (session")
    assert "camera 'cam3' is not one of this capture's cameras ['cam1', 'cam2']" in err
    assert not store.exists()


class TestScaleUncertainty:
    def test_reported_and_it_covers_the_error(self, capture, results):
        report = results["none"].report
        sd = report["scale_relative_sd"]
        # adults' spread (0.09 / 1.70 = 5.3 %) and the limbs' fit, in quadrature
        assert 0.053 <= sd < 0.08
        err = np.abs(camera_distances(results["none"].rig) / camera_distances(capture.rig) - 1).max()
        assert err < 2 * sd  # 3.8 % off
        note = next(w for w in report["warnings"] if w.startswith(SCALE_WARNING))
        assert f"±{100 * sd:.1f} %" in note and "--subject-height" in note
        # with the height given, the limbs' fit alone (3.0 % on the true joints)
        assert 0 < wf.scale_uncertainty(results["none"].points, True) < 0.035

    def test_from_exact_proportions(self):
        person = np.zeros((1, 17, 3))
        J = wf.H36M17.index
        for k, (a, b, r) in enumerate(wf.BONE_RATIOS):  # each limb along its own axis
            if a.startswith("mid"):
                continue
            person[0, J(b)] = person[0, J(a)] + [0, 0, -r * 1.8]
        person[0, J("l_shoulder")] = person[0, J("r_shoulder")] = [0, 0, 0.288 * 1.8]
        person[0, J("l_elbow")] = [0, 0, (0.288 - 0.186) * 1.8]
        person[0, J("r_elbow")] = person[0, J("l_elbow")]
        person[0, J("l_wrist")] = person[0, J("r_wrist")] = [0, 0, (0.288 - 0.332) * 1.8]
        person[0, J("l_knee")] = person[0, J("r_knee")] = [0, 0, -0.245 * 1.8]
        person[0, J("l_ankle")] = person[0, J("r_ankle")] = [0, 0, -0.491 * 1.8]
        assert wf.estimate_height(person) == pytest.approx(1.8, rel=1e-9)
        assert wf.scale_uncertainty(person, True) == pytest.approx(0, abs=1e-9)
        assert wf.scale_uncertainty(person, False) == pytest.approx(0.09 / 1.70, rel=1e-9)


def test_calibrate_prints_the_world_line(tmp_path, capture, capsys):
    npz = tmp_path / "kp.npz"
    save_npz(capture.keypoints.frames(0, 100), npz)
    out = tmp_path / "cams.toml"
    assert main(["calibrate", "--keypoints", str(npz), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.with_name("cams.report.json").read_text())
    line = next(x for x in printed.splitlines() if x.startswith("world: "))
    assert f"uncertain by ±{100 * report['scale_relative_sd']:.1f} % (1 sd)" in line
    assert "up from the body axis" in line and report["up_source"] == "body axis"


class TestSameFocal:
    def test_one_focal_for_cameras_of_one_model(self):
        """Four cameras of one focal length (1200 px), intrinsics unknown (guess: 1920 px, 60 %
        off): ``same_focal`` ties the four into one, which comes back within 1 %."""
        from dataclasses import replace
        from epiflow.models.metrics import rig_errors
        motion = load_packaged_clip("02_01")
        truth = make_rig(4, focal_px=1200.0, target=capture_center(motion), seed=3)
        kp = synthesize(motion, truth, Corruption(noise_px=2.0), seed=4).keypoints.frames(0, 150)
        result = calibrate_from_people(kp, None, None, replace(CONFIG, same_focal=True))
        f = result.rig.K[:, 0, 0]
        assert np.ptp(f) < 1e-6 * f[0]  # one focal length
        assert abs(f[0] / 1200 - 1) < 0.01
        assert result.report["intrinsics_refined"] == ["shared_focal"]
        assert rig_errors(result.rig, truth)["rotation_deg_max"] < 0.5


class TestSceneUpInTheAlignment:
    def test_scene_vertical_replaces_the_body_axis_within_its_limit(self):
        """A jump in place (no floor plane) turned 20° about x: the scene's vertical (the turned
        Z) becomes the world's up, exactly; one 60° off the body is refused for the body axis."""
        from scipy.spatial.transform import Rotation
        P = load_packaged_clip("02_04").to_h36m().points
        turn = Rotation.from_rotvec([np.radians(20), 0, 0])
        Q = turn.apply(P.reshape(-1, 3)).reshape(P.shape)
        up = turn.apply([0, 0, 1.0])
        a = wf.world_alignment(Q, 1.7, scene_up=-up)  # either sign
        assert a.up_source == "scene lines"
        np.testing.assert_allclose(a.R[2], up, atol=1e-12)
        body = wf.world_alignment(Q, 1.7)
        assert body.up_source == "body axis" and a.up_tilt_deg == pytest.approx(
            np.degrees(np.arccos(np.clip(body.R[2] @ up, -1, 1))), abs=1e-6)
        off = Rotation.from_rotvec([np.radians(60), 0, 0]).apply(up)
        assert wf.world_alignment(Q, 1.7, scene_up=off).up_source == "body axis"
        # a known scale replaces the body's
        assert wf.world_alignment(Q, 1.7, scale=2.5).scale == 2.5
