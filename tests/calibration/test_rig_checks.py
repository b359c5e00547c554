"""Cameras are checked when they are loaded (:func:`epiflow.calibration.input_checks.check_rig`):
a calibration that cannot be a real one is blamed by file, camera and field, with exit code 2 and
nothing written, instead of `triangulate` blaming the keypoints ("no joint was seen...")."""
from __future__ import annotations

import json

import numpy as np
import pytest

from epiflow.calibration.camera import CalibrationError, CameraRig
from epiflow.calibration.formats import load_rig, load_toml, save_toml
from epiflow.calibration.input_checks import check_rig
from epiflow.cli import main
from epiflow.datasets.synthetic import Corruption, cmu_capture
from epiflow.keypoints import save_npz


@pytest.fixture(scope="module")
def capture():
    """20 frames of the CMU walk seen by the synthetic 4-camera rig (1920x1080 pixels)."""
    cap = cmu_capture("02_01", corruption=Corruption(noise_px=1.0), seed=0)
    return cap.keypoints.frames(0, 20), cap.rig


def _edit(text: str, camera: str, field: str, value: str) -> str:
    """``text`` (a camera TOML) with ``field`` of table ``[camera]`` set to ``value``."""
    head, body = text.split(f"[{camera}]\n", 1)
    lines = [f"{field} = {value}" if line.startswith(f"{field} =") else line
             for line in body.split("\n")]
    return head + f"[{camera}]\n" + "\n".join(lines)


# (field, TOML value, words the message must hold besides the file, camera and field)
BAD_FIELDS = {
    "zero focal (singular K)": ("matrix", "[[0.0, 0, 960], [0, 0.0, 540], [0, 0, 1]]",
                                ["fx", "0"]),
    "normalised K": ("matrix", "[[1.2, 0, 0.5], [0, 1.2, 0.5], [0, 0, 1]]", ["fx", "1.2"]),
    "K last row": ("matrix", "[[1000.0, 0, 960], [0, 1000.0, 540], [0, 1, 1]]", ["[0, 0, 1]"]),
    "principal point far outside": ("matrix", "[[1000.0, 0, 1e7], [0, 1000.0, 540], [0, 0, 1]]",
                                    ["cx", "1e+07"]),
    "translation 1e300": ("translation", "[1e300, 0.0, 3.0]", ["metres", "1e+300"]),
    "translation in millimetres": ("translation", "[100.0, -300.0, 4500.0]", ["divide by 1000"]),
    "translation NaN": ("translation", "[nan, 0.0, 3.0]", ["NaN"]),
    "rotation not a rotation": ("rotation", "[[2.0, 0, 0], [0, 0.5, 0], [0, 0, 1.0]]",
                                ["orthonormal"]),
    "zero image size": ("size", "[0.0, 1080.0]", ["(0, 1080)", "> 0"]),
    "negative image size": ("size", "[-1920.0, 1080.0]", ["(-1920, 1080)", "> 0"]),
    "distortion inf": ("distortions", "[inf, 0.0, 0.0, 0.0]", ["inf"]),
    "distortion absurd": ("distortions", "[1e9, 0.0, 0.0, 0.0]", ["1000000000"]),
}


class TestTriangulateBlamesTheCameras:
    @pytest.mark.parametrize("case", list(BAD_FIELDS))
    def test_bad_field(self, case, capture, tmp_path, capsys):
        field, value, words = BAD_FIELDS[case]
        kp, rig = capture
        save_npz(kp, tmp_path / "kp.npz")
        save_toml(rig, tmp_path / "cameras.toml")
        path = tmp_path / "cameras.toml"
        path.write_text(_edit(path.read_text(), "cam_03", field, value))
        out = tmp_path / "poses.npz"
        code = main(["triangulate", "--keypoints", str(tmp_path / "kp.npz"), "--cameras",
                     str(path), "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2, err
        assert str(path) in err and "cam_03" in err and field in err, err
        assert "kp.npz" not in err and "no joint was seen" not in err
        assert all(w in err for w in words), (words, err)
        assert not out.exists()

    def test_good_rig_still_triangulates(self, capture, tmp_path, capsys):
        kp, rig = capture
        save_npz(kp, tmp_path / "kp.npz")
        save_toml(rig, tmp_path / "cameras.toml")
        code = main(["triangulate", "--keypoints", str(tmp_path / "kp.npz"), "--cameras",
                     str(tmp_path / "cameras.toml"), "--out", str(tmp_path / "poses.npz")])
        assert code == 0 and (tmp_path / "poses.npz").is_file()


_CALISCOPE_CAM = """
[cam_0]
port = 0
size = [ 1280, 720,]
matrix = [ [ 900.0, 0.0, 640.0,], [ 0.0, 900.0, 360.0,], [ 0.0, 0.0, 1.0,],]
distortions = [ 0.0, 0.0, 0.0, 0.0, 0.0,]
translation = [ 0.0, 0.0, 2.0,]
rotation = [ [ 1.0, 0.0, 0.0,], [ 0.0, 1.0, 0.0,], [ 0.0, 0.0, 1.0,],]
"""
_QCA = """<?xml version='1.0' encoding='ASCII'?>
<calibration><cameras>
<camera active="1" model="none" serial="camA" viewrotation="0">
<fov_video bottom="719" left="0" right="1279" top="0"/>
<transform r11="1" r12="0" r13="0" r21="0" r22="1" r23="0" r31="0" r32="0" r33="1" x="0" y="0"
 z="2000"/>
<intrinsic centerPointU="40960" centerPointV="23040" focalLengthU="64000" focalLengthV="64000"
 radialDistortion1="0" radialDistortion2="0" tangentalDistortion1="0" tangentalDistortion2="0"/>
</camera></cameras></calibration>
"""


class TestEveryReader:
    """The check sits in load_rig, so every format it reads gets it."""

    def test_shelf_json_zero_focal(self, tmp_path):
        good = {"K": [1000, 0, 500, 0, 1000, 400, 0, 0, 1],
                "RT": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3], "imgSize": [1032, 776]}
        path = tmp_path / "calibration.json"
        bad = {**good, "K": [0, 0, 500, 0, 0, 400, 0, 0, 1]}
        path.write_text(json.dumps({"0": good, "1": bad}))
        with pytest.raises(CalibrationError, match=r"calibration\.json: camera '1': .*fx is 0"):
            load_rig(path)

    def test_shelf_json_translation_1e300(self, tmp_path):
        RT = [1, 0, 0, 1e300, 0, 1, 0, 0, 0, 0, 1, 3]
        path = tmp_path / "calibration.json"
        path.write_text(json.dumps({"0": {"K": [1000, 0, 500, 0, 1000, 400, 0, 0, 1], "RT": RT,
                                          "imgSize": [1032, 776]}}))
        with pytest.raises(CalibrationError, match=r"calibration\.json: camera '0': translation"):
            load_rig(path)

    def test_qualisys_zero_focal(self, tmp_path):
        path = tmp_path / "a.qca.txt"
        path.write_text(_QCA.replace('focalLengthU="64000"', 'focalLengthU="0"'))
        with pytest.raises(CalibrationError, match=r"a\.qca\.txt: camera 'camA': .*fx is 0"):
            load_rig(path)

    def test_caliscope_zero_size(self, tmp_path):
        path = tmp_path / "config.toml"
        path.write_text(_CALISCOPE_CAM.replace("size = [ 1280, 720,]", "size = [ 0, 0,]"))
        with pytest.raises(CalibrationError,
                           match=r"config\.toml: camera 'cam_0': size is \(0, 0\)"):
            load_rig(path)

    def test_camera_toml_read_directly(self, capture, tmp_path):
        path = tmp_path / "cameras.toml"
        save_toml(capture[1], path)
        path.write_text(_edit(path.read_text(), "cam_01", "translation", "[1e300, 0.0, 3.0]"))
        with pytest.raises(CalibrationError, match=r"cameras\.toml: camera 'cam_01': translation"):
            load_toml(path)

    @pytest.mark.parametrize("name", ["cameras.toml", "config.toml", "a.qca.txt",
                                      "calibration.json"])
    def test_random_bytes_name_the_file(self, name, tmp_path):
        path = tmp_path / name
        path.write_bytes(np.random.default_rng(1).bytes(500))
        with pytest.raises(ValueError) as err:
            load_rig(path)
        assert str(err.value).startswith(f"{path} is not a text file (byte 0x")
        assert "codec" not in str(err.value)

    def test_real_calibrations_pass(self, shared_data):
        for name in ("pose2sim_demo/calibration/Calib.qca.txt",
                     "pose2sim_demo/calibration/Calib_qualisys.toml", "shelf/calibration.json",
                     "caliscope_4cam/config.toml"):
            rig = load_rig(shared_data / name)
            check_rig(rig, name)  # no error
            assert len(rig) >= 4 and np.all(rig.sizes > 0)


def test_predict_blames_the_calibration_not_the_camera_name(capture, tmp_path, capsys):
    from epiflow.models.checkpoint import save_checkpoint
    from epiflow.models.config import ExperimentConfig, build_model
    kp, rig = capture
    save_npz(kp, tmp_path / "kp.npz")
    cfg = ExperimentConfig()
    save_checkpoint(tmp_path / "checkpoint.pt", build_model(cfg.model, 17), cfg)
    path = tmp_path / "cameras.toml"
    save_toml(rig, path)
    path.write_text(_edit(path.read_text(), "cam_01", "matrix",
                          "[[0.0, 0, 960], [0, 0.0, 540], [0, 0, 1]]"))
    out = tmp_path / "pred.npz"
    code = main(["predict", str(tmp_path / "checkpoint.pt"), "--keypoints",
                 str(tmp_path / "kp.npz"), "--camera", "cam_01", "--calibration", str(path),
                 "--out", str(out), "--no-plot"])
    err = capsys.readouterr().err
    assert code == 2 and f"{path}: camera 'cam_01': matrix (K) focal fx is 0" in err, err
    assert "pass --camera" not in err and not out.exists()


def test_triangulate_random_bytes_calibration(capture, tmp_path, capsys):
    kp, _ = capture
    save_npz(kp, tmp_path / "kp.npz")
    cams = tmp_path / "cams.toml"
    cams.write_bytes(np.random.default_rng(2).bytes(400))
    out = tmp_path / "out.npz"
    assert main(["triangulate", "--keypoints", str(tmp_path / "kp.npz"), "--cameras", str(cams),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{cams} is not a text file" in err and "codec" not in err and not out.exists()


def test_a_calibration_of_other_image_sizes_is_blamed_by_file(capture, tmp_path, capsys):
    """Another capture's calibration (portrait 1080x1920 images for the keypoints' 1920x1080):
    triangulate and calibrate --intrinsics name the calibration file, not only the camera."""
    kp, rig = capture
    save_npz(kp, tmp_path / "kp.npz")
    other = tmp_path / "other_lab.toml"
    save_toml(type(rig)(c.replace(size=(1080, 1920)) for c in rig), other)
    for argv in (["triangulate", "--keypoints", str(tmp_path / "kp.npz"), "--cameras",
                  str(other), "--out", str(tmp_path / "p.npz")],
                 ["calibrate", "--keypoints", str(tmp_path / "kp.npz"), "--intrinsics",
                  str(other), "--out", str(tmp_path / "c.toml")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"{other}: camera cam_01: intrinsics are for 1080x1920 images" in err, err
        assert "1920x1080" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kp.npz", "other_lab.toml"]


class TestPredictChecksTheCameraFirst:
    """``predict --calibration``: the camera is looked up and its image size compared with the
    video's or keypoints' by the rule every command uses, before detection (was: a missing camera
    refused after 30 s of MediaPipe, and a 1920x1080 calibration used on a 1080x1920 video
    without a word)."""

    @pytest.fixture
    def checkpoint(self, tmp_path):
        from epiflow.models.checkpoint import save_checkpoint
        from epiflow.models.config import ExperimentConfig, build_model
        cfg = ExperimentConfig()
        return save_checkpoint(tmp_path / "checkpoint.pt", build_model(cfg.model, 17), cfg)

    @staticmethod
    def _video(path, size):
        import cv2
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
        for i in range(3):
            writer.write(np.full((size[1], size[0], 3), 40 * i, np.uint8))
        writer.release()
        return path

    @staticmethod
    def _never(frames):
        raise AssertionError("the detector ran before the calibration was checked")

    def test_video_camera_missing_or_of_another_size(self, capture, checkpoint, tmp_path):
        from epiflow.models.predict import predict_video
        _, rig = capture  # 1920x1080 cameras cam_01..cam_04
        save_toml(rig, tmp_path / "lab.toml")
        video = self._video(tmp_path / "cam_01.mp4", (64, 48))
        with pytest.raises(KeyError, match=r"lab\.toml: no camera for \['cam_07'\]"):
            predict_video(checkpoint, video, tmp_path / "lab.toml", "cam_07", detector=self._never)
        with pytest.raises(CalibrationError) as err:
            predict_video(checkpoint, video, tmp_path / "lab.toml", detector=self._never)
        assert (f"--video {video}: {tmp_path / 'lab.toml'}: camera cam_01: intrinsics are for "
                f"1920x1080 images but the keypoints are from 64x48 images") in str(err.value)

    def test_keypoints_transposed_size_is_an_error_a_crop_a_warning(self, capture, checkpoint,
                                                                     tmp_path, capsys):
        kp, rig = capture
        save_npz(kp, tmp_path / "kp.npz")
        argv = ["predict", str(checkpoint), "--keypoints", str(tmp_path / "kp.npz"), "--camera",
                "cam_02", "--calibration", str(tmp_path / "c.toml"), "--out",
                str(tmp_path / "pred.npz"), "--no-plot"]
        save_toml(CameraRig(c.replace(size=(1080, 1920)) for c in rig), tmp_path / "c.toml")
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "1080x1920" in err and "1920x1080" in err and "c.toml" in err and "kp.npz" in err
        assert not (tmp_path / "pred.npz").exists()
        save_toml(CameraRig(c.replace(size=(1920, 1088)) for c in rig), tmp_path / "c.toml")
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert "epiflow predict: warning:" in err and "1920x1088" in err and "1920x1080" in err
        assert (tmp_path / "pred.npz").exists()


def test_predict_reads_openpose_folders_and_needs_their_camera(shared_data, tmp_path, capsys):
    """``predict --keypoints`` reads any one-person input (here the Pose2Sim demo's OpenPose
    folders): with the lab calibration it lifts the frames; without one the image size is
    unknown (OpenPose stores none), which gave a focal length of 0 px, a NaN field of view and
    0 frames predicted with exit 0: now refused, naming the file and --calibration."""
    from epiflow.models.checkpoint import save_checkpoint
    from epiflow.models.config import ExperimentConfig, build_model
    cfg = ExperimentConfig()
    ckpt = save_checkpoint(tmp_path / "checkpoint.pt", build_model(cfg.model, 17), cfg)
    folder = shared_data / "pose2sim_demo" / "openpose_body25b_single_person"
    argv = ["predict", str(ckpt), "--keypoints", str(folder), "--camera", "cam01", "--no-plot",
            "--no-adapt"]
    assert main(argv + ["--out", str(tmp_path / "bare.npz")]) == 2
    err = capsys.readouterr().err
    assert str(folder) in err and "image size of camera 'cam01' is unknown" in err
    assert "--calibration" in err and not (tmp_path / "bare.npz").exists()
    lab = shared_data / "pose2sim_demo" / "calibration" / "Calib_qualisys.toml"
    assert main(argv + ["--calibration", str(lab), "--out", str(tmp_path / "p.npz")]) == 0
    points = np.load(tmp_path / "p.npz")["points3d"]
    assert points.shape[1:] == (17, 3) and np.isfinite(points).all((1, 2)).mean() > 0.9
