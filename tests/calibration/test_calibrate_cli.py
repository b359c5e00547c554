"""``epiflow calibrate``: keypoints in, a cameras TOML and its report out; clean errors."""
from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from epiflow.calibration.camera import CameraRig
from epiflow.calibration.compare import camera_distances
from epiflow.calibration.formats import load_toml, save_toml
from epiflow.calibration.world_frame import estimate_height
from epiflow.cli import main
from epiflow.datasets.cmu import load_packaged_clip
from epiflow.keypoints import save_npz
from epiflow.datasets.synthetic import Corruption, capture_center, make_rig, synthesize
from epiflow.models.metrics import rig_errors
from epiflow.calibration.from_people import BODY_AXIS_WARNING, SCALE_WARNING


def _others(warnings: list[str]) -> list[str]:
    """The warnings besides the note that up came from the body axis and the one on a scale from
    body proportions (said whenever they do)."""
    return [w for w in warnings if w != BODY_AXIS_WARNING and not w.startswith(SCALE_WARNING)]


@pytest.fixture(scope="module")
def capture():
    """The CMU walk seen by 4 cameras of different focal lengths (900-1500 px), 2 px noise."""
    motion = load_packaged_clip("02_01")
    rig = make_rig(4, focal_px=(900, 1500), target=capture_center(motion), seed=0)
    return synthesize(motion, rig, Corruption(noise_px=2.0), seed=1)


@pytest.fixture
def npz(tmp_path, capture):
    path = tmp_path / "kp.npz"
    save_npz(capture.keypoints, path)
    return path


def _report(out):
    return json.loads(out.with_name(out.stem + ".report.json").read_text())


def test_writes_cameras_and_report(tmp_path, npz, capture, capsys):
    """No intrinsics: focal lengths from a guess (1920 px, 38-111 % off)."""
    out = tmp_path / "calib" / "cameras.toml"
    assert main(["calibrate", "--keypoints", str(npz), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rig = load_toml(out)
    assert rig.names == capture.rig.names
    err = rig_errors(rig, capture.rig)
    assert err["rotation_deg_max"] < 0.5  # 0.23° measured
    assert err["focal_rel_max"] < 0.025  # 1.1 % measured
    report = _report(out)
    assert report["method"] == "pooled" and report["intrinsics_refined"] == ["focal"]
    assert report["source"] == str(npz) and report["intrinsics_file"] is None
    assert report["cameras_file"] == str(out) and report["scale_source"] == "body_proportions"
    assert _others(report["warnings"]) == [] and report["rejected_pairs"] == {}
    for name, cam in report["cameras"].items():
        assert 0.5 < cam["reprojection_error_px_median"] < 2.5  # 1.2-1.5 px measured
        assert cam["observations_used"] > 1000
        assert cam["focal_px"] == pytest.approx(rig[name].K[0, 0])
        assert f"{name}: median reprojection error" in printed
    assert "from people (pooled)" in out.read_text()
    assert f"4 cameras (pooled, scale from body_proportions) -> {out}" in printed


def test_intrinsics_matched_by_name_and_the_subject_height(tmp_path, npz, capture, capsys):
    """The intrinsics file lists the cameras in another order, under cam01-style names: each
    camera still gets its own focal length, and the subject's height gives true distances."""
    shuffled = CameraRig(c.replace(name=c.name.replace("_", ""), R=np.eye(3), t=np.zeros(3))
                         for c in capture.rig.subset([3, 1, 0, 2]))
    save_toml(shuffled, tmp_path / "intrinsics.toml")
    out = tmp_path / "cameras.toml"
    H = estimate_height(capture.points3d)
    assert main(["calibrate", "--keypoints", str(npz), "--out", str(out), "--intrinsics",
                 str(tmp_path / "intrinsics.toml"), "--subject-height", f"{H:.4f}"]) == 0
    rig = load_toml(out)
    assert rig.names == capture.rig.names
    np.testing.assert_allclose(rig.K, capture.rig.K, rtol=1e-9)
    err = rig_errors(rig, capture.rig)
    assert err["rotation_deg_max"] < 0.25  # 0.11° measured
    ratio = camera_distances(rig) / camera_distances(capture.rig)
    assert np.abs(ratio - 1).max() < 0.005  # 0.22 % measured
    report = _report(out)
    assert report["intrinsics_refined"] == [] and _others(report["warnings"]) == []
    assert report["scale_source"] == "subject_height"
    assert report["intrinsics_file"] == str(tmp_path / "intrinsics.toml")


def test_per_frame_and_intrinsics_matched_in_order(tmp_path, capture, capsys):
    """Names that match nothing, counts that agree: matched in order, with a warning."""
    kp = replace(capture.keypoints, camera_names=("north", "east", "south", "west"))
    save_npz(kp, tmp_path / "kp.npz")
    save_toml(capture.rig, tmp_path / "intrinsics.toml")
    out = tmp_path / "baseline.toml"
    assert main(["calibrate", "--keypoints", str(tmp_path / "kp.npz"), "--out", str(out),
                 "--intrinsics", str(tmp_path / "intrinsics.toml"), "--method",
                 "per_frame"]) == 0
    printed = capsys.readouterr().err
    rig = load_toml(out)
    assert rig.names == ["north", "east", "south", "west"]
    np.testing.assert_allclose(rig.K, capture.rig.K, rtol=1e-9)
    report = _report(out)
    assert report["method"] == "per_frame" and "from people (per_frame)" in out.read_text()
    assert "matched in order" in report["warnings"][0]
    # printed to stderr, one line, naming the input and saying what to do
    line = next(x for x in printed.splitlines() if "matched in order" in x)
    assert line.startswith(f"epiflow calibrate: warning: {tmp_path / 'kp.npz'}: "
                           f"{tmp_path / 'intrinsics.toml'} cameras ['cam_01'")
    assert "rename the cameras" in line
    # the baseline, on the same keypoints: 39° off (median, measured; pooled: 0.11° at most)
    assert np.median(rig_errors(rig, capture.rig)["rotation_deg"]) > 10


class TestBadArguments:
    def _fails(self, argv, capsys, *needles, out=None):
        assert main(["calibrate", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("epiflow calibrate: error:")
        for needle in needles:
            assert needle in err, err
        if out is not None:
            assert not out.exists() and not out.with_name(out.stem + ".report.json").exists()
        return err

    def test_missing_keypoints(self, tmp_path, capsys):
        out = tmp_path / "c.toml"
        self._fails(["--keypoints", str(tmp_path / "nope.npz"), "--out", str(out)], capsys,
                    "nope.npz", "does not exist", out=out)

    def test_missing_intrinsics_file(self, tmp_path, npz, capsys):
        out = tmp_path / "c.toml"
        self._fails(["--keypoints", str(npz), "--out", str(out), "--intrinsics",
                     str(tmp_path / "lab.toml")], capsys, "lab.toml", "does not exist", out=out)

    def test_intrinsics_for_other_cameras(self, tmp_path, npz, capture, capsys):
        save_toml(capture.rig.subset([0, 1, 2]), tmp_path / "three.toml")
        out = tmp_path / "c.toml"
        self._fails(["--keypoints", str(npz), "--out", str(out), "--intrinsics",
                     str(tmp_path / "three.toml")], capsys, "no camera for ['cam_04']",
                    "here 3 vs 4", out=out)

    def test_unknown_and_mistyped_options(self, tmp_path, npz, capsys):
        out = tmp_path / "c.toml"
        self._fails(["--keypoints", str(npz), "--out", str(out), "--set", "round=2"], capsys,
                    "unknown config key(s) ['round']", "rounds", out=out)
        self._fails(["--keypoints", str(npz), "--out", str(out), "--set", "rounds=two"], capsys,
                    "'rounds': expected int", out=out)
        self._fails(["--keypoints", str(npz), "--out", str(out), "--joint-set", "body25"], capsys,
                    "holds joint set 'h36m17'", out=out)

    def test_height_in_centimetres(self, tmp_path, npz, capsys):
        out = tmp_path / "c.toml"
        self._fails(["--keypoints", str(npz), "--out", str(out), "--subject-height", "178"],
                    capsys, "in centimetres? give 1.78", out=out)

    @pytest.mark.parametrize("argv, expected", [
        (["--subject-height", "0"], "argument --subject-height: expected a number > 0, got '0'"),
        (["--image-size", "0", "0"], "argument --image-size: expected an integer >= 1, got '0'")])
    def test_numbers_are_checked_when_parsed(self, tmp_path, npz, capsys, argv, expected):
        with pytest.raises(SystemExit) as exit_:
            main(["calibrate", "--keypoints", str(npz), "--out", str(tmp_path / "c.toml"), *argv])
        assert exit_.value.code == 2 and expected in capsys.readouterr().err
        assert not (tmp_path / "c.toml").exists()

    def test_argument_errors(self, tmp_path, npz, capsys):
        for argv in (["--keypoints", str(npz)],  # no --out
                     ["--keypoints", str(npz), "--videos", str(tmp_path), "--out", "c.toml"],
                     ["--keypoints", str(npz), "--out", "c.toml", "--method", "epipolar"]):
            with pytest.raises(SystemExit) as exit_:
                main(["calibrate", *argv])
            assert exit_.value.code == 2
        assert "invalid choice: 'epipolar'" in capsys.readouterr().err

    def test_videos_of_different_lengths(self, tmp_path, capsys):
        """Refused before any detection runs, naming each file's frame count."""
        videos = tmp_path / "videos"
        videos.mkdir()
        for name, n in (("cam1.mp4", 6), ("cam2.mp4", 6), ("cam3.mp4", 9)):
            writer = cv2.VideoWriter(str(videos / name), cv2.VideoWriter_fourcc(*"mp4v"), 30,
                                     (64, 48))
            for i in range(n):
                writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
            writer.release()
        out = tmp_path / "c.toml"
        self._fails(["--videos", str(videos), "--sync", "off", "--out", str(out)], capsys,
                    "frame counts {'cam1.mp4': 6, 'cam2.mp4': 6, 'cam3.mp4': 9}",
                    "drop --sync off", out=out)


class TestOpenPose:
    def test_json_folders_need_an_image_size(self, shared_data, tmp_path, capsys):
        root = shared_data / "pose2sim_demo" / "openpose_body25b_single_person"
        out = tmp_path / "c.toml"
        assert main(["calibrate", "--keypoints", str(root), "--joint-set", "body25b", "--out",
                     str(out)]) == 2
        err = capsys.readouterr().err
        assert "image size of cameras ['cam01', 'cam02', 'cam03', 'cam04'] is unknown" in err
        assert "--intrinsics" in err and not out.exists()

    def test_pose2sim_demo(self, shared_data, tmp_path):
        """The shipped OpenPose BODY_25B folders with the lab intrinsics (cam01 matched to
        [cam_01] by name), shortened to 50 frames and 2 rounds (~3 s)."""
        demo = shared_data / "pose2sim_demo"
        lab_file = demo / "calibration" / "Calib_qualisys.toml"
        out = tmp_path / "cameras.toml"
        assert main(["calibrate", "--keypoints", str(demo / "openpose_body25b_single_person"),
                     "--joint-set", "body25b", "--intrinsics", str(lab_file), "--out", str(out),
                     "--set", "max_frames=50", "--set", "rounds=2"]) == 0
        rig, lab = load_toml(out), load_toml(lab_file)
        assert rig.names == ["cam01", "cam02", "cam03", "cam04"]
        np.testing.assert_allclose(rig.K, lab.K)
        err = rig_errors(rig, lab)
        assert err["rotation_deg_max"] < 3.0 and err["baseline_deg_max"] < 2.2  # 1.59°, 1.08°
        report = _report(out)
        assert _others(report["warnings"]) == []
        assert max(c["reprojection_error_px_median"] for c in report["cameras"].values()) < 8.0


def test_stored_warnings_are_printed(tmp_path, capture, capsys):
    """The vertical taken from the body axis and image sizes that differ from the intrinsics'
    (1080 vs 1088 rows, as H.264 pads) are printed to stderr, one line each, as stored."""
    size = capture.keypoints.image_size.copy()
    size[1, 1] -= 8
    save_npz(replace(capture.keypoints, image_size=size), tmp_path / "kp.npz")
    save_toml(capture.rig, tmp_path / "intrinsics.toml")
    out = tmp_path / "cameras.toml"
    assert main(["calibrate", "--keypoints", str(tmp_path / "kp.npz"), "--out", str(out),
                 "--intrinsics", str(tmp_path / "intrinsics.toml")]) == 0
    lines = capsys.readouterr().err.splitlines()
    report = _report(out)
    prefix = f"epiflow calibrate: warning: {tmp_path / 'kp.npz'}: "
    assert report["up_source"] == "body axis"
    assert lines == [prefix + w for w in report["warnings"]] and len(lines) == 3
    w, h = capture.rig.sizes[1]
    assert lines[0].startswith(prefix + f"cam_02: the calibration is for {w}x{h} images, the "
                                        f"keypoints' are {w}x{h - 8}")
    assert lines[1] == prefix + BODY_AXIS_WARNING and "record a few steps" in lines[1]
    assert lines[2].startswith(prefix + SCALE_WARNING) and "--known-distance" in lines[2]


def test_a_failed_verdict_exits_3_and_no_command_is_a_usage_error(tmp_path, capsys):
    """Cameras written with a ``failed`` verdict must not look like success to a script chaining
    ``calibrate && triangulate`` (exit 3, the reason on stderr); ``good`` / ``doubtful`` exit 0.
    ``epiflow`` with no command prints its usage to stderr and exits 2, as argparse's errors do."""
    from epiflow.cli import calibrate as calibrate_cli
    from epiflow.cli import main

    out = tmp_path / "cams.toml"
    assert calibrate_cli._exit_status("failed", out) == 3
    err = capsys.readouterr().err
    assert "FAILED" in err and str(out) in err
    assert [calibrate_cli._exit_status(v, out) for v in ("good", "doubtful")] == [0, 0]
    assert main([]) == 2
    assert "usage: epiflow" in capsys.readouterr().err
