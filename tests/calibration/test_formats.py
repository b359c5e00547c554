"""Calibration file readers: camera TOML round trip, Qualisys vs its Pose2Sim TOML, Shelf, caliscope,
load_rig's dispatch, and the errors on bad files."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from epiflow.calibration.camera import CalibrationError, Camera, CameraRig
from epiflow.calibration.formats import load_rig, load_toml, save_toml
from epiflow.calibration.formats_caliscope import caliscope_rotation_counts, load_caliscope
from epiflow.calibration.formats_qualisys import load_qca, rotate_camera_image
from epiflow.calibration.formats_shelf import load_shelf_calibration


def _random_rig(names, seed=0) -> CameraRig:
    rng = np.random.default_rng(seed)
    cams = []
    for name in names:
        K = np.array([[rng.uniform(500, 2000), 0, rng.uniform(300, 700)],
                      [0, rng.uniform(500, 2000), rng.uniform(200, 500)], [0, 0, 1]])
        cams.append(Camera(name, K, rng.normal(0, 0.05, 5), Rotation.random(random_state=rng).as_matrix(),
                           rng.normal(0, 3, 3), (int(rng.integers(320, 4000)), int(rng.integers(240, 3000)))))
    return CameraRig(cams)


def _angle_deg(Ra, Rb) -> float:
    return float(np.degrees(Rotation.from_matrix(Ra.T @ Rb).magnitude()))


class TestTomlRoundTrip:
    def test_values_and_written_order(self, tmp_path):
        names = ["cam_2", "cam_10", "cam_1", "side"]
        rig = _random_rig(names)
        save_toml(rig, tmp_path / "rig.toml")
        back = load_toml(tmp_path / "rig.toml")
        assert back.names == names  # written order, not string order (cam_10 < cam_2)
        for a, b in zip(rig, back):
            np.testing.assert_allclose(b.K, a.K, rtol=1e-12)
            np.testing.assert_allclose(b.dist, a.dist, atol=1e-15)
            assert _angle_deg(a.R, b.R) < 1e-6
            np.testing.assert_allclose(b.t, a.t, atol=1e-12)
            assert b.size == a.size
        assert load_rig(tmp_path / "rig.toml").names == names

    def test_four_distortions_read_as_k3_zero(self, tmp_path):
        rig = CameraRig([Camera("a", np.diag([800.0, 800.0, 1.0]), [0.1, -0.2, 0.001, 0.002, 0.0],
                                size=(1280, 720))])
        save_toml(rig, tmp_path / "a.toml")
        assert "distortions = [ 0.1, -0.2, 0.001, 0.002]" in (tmp_path / "a.toml").read_text()
        np.testing.assert_allclose(load_toml(tmp_path / "a.toml")[0].dist, [0.1, -0.2, 0.001, 0.002, 0])


class TestQualisys:
    def test_matches_pose2sim_toml(self, shared_data):
        calib = shared_data / "pose2sim_demo" / "calibration"
        qca, toml = load_qca(calib / "Calib.qca.txt"), load_toml(calib / "Calib_qualisys.toml")
        assert qca.names == ["cam01", "cam02", "cam03", "cam04"] and len(toml) == 4
        centre_mm = np.linalg.norm(qca.centers - toml.centers, axis=1) * 1000
        angles = [_angle_deg(a.R, b.R) for a, b in zip(qca, toml)]
        focal = np.abs(qca.K[:, [0, 1], [0, 1]] - toml.K[:, [0, 1], [0, 1]])
        principal = np.abs(qca.K[:, :2, 2] - toml.K[:, :2, 2])
        assert centre_mm.max() < 1.0 and max(angles) < 0.01
        assert focal.max() < 0.1 and principal.max() < 0.1
        np.testing.assert_allclose(qca.dist, toml.dist, atol=1e-9)
        assert qca.sizes.tolist() == [[1088, 1920]] * 4
        # the same world point lands on the same pixel in both
        X = np.array([[0.0, 0.0, 1.0], [0.5, -0.3, 0.2]])
        assert np.abs(qca.project(X) - toml.project(X)).max() < 0.01

    def test_viewrotation_turns_the_camera(self, tmp_path, shared_data):
        text = (shared_data / "pose2sim_demo" / "calibration" / "Calib.qca.txt").read_text()
        turned = tmp_path / "turned.qca.txt"
        turned.write_text(text.replace('viewrotation="0"', 'viewrotation="90"'))
        plain, rot = load_rig(shared_data / "pose2sim_demo" / "calibration" / "Calib.qca.txt"), load_rig(turned)
        assert rot.sizes.tolist() == [[1920, 1088]] * 4
        uv, uv_rot = plain.project(np.array([0.1, 0.2, 1.0])), rot.project(np.array([0.1, 0.2, 1.0]))
        h = plain.sizes[:, 1]
        np.testing.assert_allclose(uv_rot[:, 0], h - 1 - uv[:, 1], atol=1e-6)
        np.testing.assert_allclose(uv_rot[:, 1], uv[:, 0], atol=1e-6)


class TestRotateCameraImage:
    @pytest.mark.parametrize("turns", [1, 2, 3, -1])
    def test_projection_follows_the_turned_pixels(self, turns):
        cam = _random_rig(["c"], seed=3)[0]
        cam = cam.replace(R=np.eye(3), t=np.zeros(3))
        X = np.random.default_rng(1).normal([0, 0, 5], [1, 1, 0.5], (50, 3))
        uv = CameraRig([cam]).project(X)[0]
        w, h = cam.size
        for _ in range(turns % 4):  # turn the pixels clockwise one quarter at a time
            uv, (w, h) = np.stack([h - 1 - uv[:, 1], uv[:, 0]], 1), (h, w)
        turned = rotate_camera_image(cam, turns)
        np.testing.assert_allclose(CameraRig([turned]).project(X)[0], uv, atol=1e-6)
        assert turned.size == (w, h)

    def test_four_turns_are_the_identity(self):
        cam = _random_rig(["c"], seed=4)[0]
        back = rotate_camera_image(cam, 4 + 1)
        back = rotate_camera_image(back, -1)
        np.testing.assert_allclose(back.K, cam.K)
        np.testing.assert_allclose(back.R, cam.R)
        np.testing.assert_allclose(back.dist, cam.dist)


class TestShelfCalibration:
    def test_five_cameras_facing_the_shelf(self, shared_data):
        rig = load_rig(shared_data / "shelf" / "calibration.json")
        assert rig.names == ["0", "1", "2", "3", "4"]
        assert rig.sizes.tolist() == [[1032, 776]] * 5
        assert np.all(rig.dist == 0)
        # every camera looks at the capture area (the people stand within ~1.5 m of the origin)
        target = np.array([0.0, 0.0, 1.0])
        axes = rig.R[:, 2, :]  # optical axes in the world
        to_target = target - rig.centers
        cos = np.einsum("ci,ci->c", axes, to_target) / np.linalg.norm(to_target, axis=1)
        assert np.degrees(np.arccos(cos)).max() < 30
        assert 2.0 < np.linalg.norm(rig.centers[:, :2], axis=1).min()


class TestCaliscope:
    def test_four_cameras(self, shared_data):
        path = shared_data / "caliscope_4cam" / "config.toml"
        rig = load_rig(path)
        assert rig.names == ["cam_0", "cam_1", "cam_2", "cam_3"]
        assert rig.sizes.tolist() == [[1280, 720]] * 4
        assert np.abs(rig.dist[:, 4]).max() > 0.1  # the 5th coefficient (k3) is kept
        assert np.linalg.norm(rig["cam_1"].center) < 0.01  # caliscope's world sits at cam_1
        gaps = np.linalg.norm(rig.centers[:, None] - rig.centers[None], axis=-1)[np.triu_indices(4, 1)]
        assert 0.3 < gaps.min() and gaps.max() < 2.5  # webcams around a desk-sized volume
        assert caliscope_rotation_counts(path) == {"cam_0": 0, "cam_1": -1, "cam_2": 1, "cam_3": 0}

    def test_ignored_camera_left_out(self, tmp_path, shared_data):
        text = (shared_data / "caliscope_4cam" / "config.toml").read_text()
        i = text.index("[cam_2]")
        path = tmp_path / "config.toml"
        path.write_text(text[:i] + text[i:].replace("ignore = false", "ignore = true", 1))
        assert load_caliscope(path).names == ["cam_0", "cam_1", "cam_3"]


_CALISCOPE_CAM = """
[cam_0]
port = 0
size = [ 1280, 720,]
rotation_count = 0
matrix = [ [ 900.0, 0.0, 640.0,], [ 0.0, 900.0, 360.0,], [ 0.0, 0.0, 1.0,],]
distortions = [ 0.0, 0.0, 0.0, 0.0, 0.0,]
translation = [ 0.0, 0.0, 2.0,]
rotation = [ [ 1.0, 0.0, 0.0,], [ 0.0, 1.0, 0.0,], [ 0.0, 0.0, 1.0,],]
"""
_QCA = """<?xml version='1.0' encoding='ASCII'?>
<calibration><cameras>
<camera active="1" model="none" serial="camA" viewrotation="0">
<fov_video bottom="719" left="0" right="1279" top="0"/>
<transform r11="1" r12="0" r13="0" r21="0" r22="1" r23="0" r31="0" r32="0" r33="1" x="0" y="0" z="2000"/>
<intrinsic centerPointU="40960" centerPointV="23040" focalLengthU="64000" focalLengthV="64000"
 radialDistortion1="0" radialDistortion2="0" tangentalDistortion1="0" tangentalDistortion2="0"/>
</camera></cameras></calibration>
"""


class TestErrors:
    @pytest.mark.parametrize("name", ["nothing.toml", "nothing.qca.txt", "nothing.json"])
    def test_missing_file_names_it(self, tmp_path, name):
        with pytest.raises(FileNotFoundError, match="nothing"):
            load_rig(tmp_path / name)

    @pytest.mark.parametrize("loader", [load_toml, load_qca, load_shelf_calibration, load_caliscope])
    def test_each_loader_missing_file(self, tmp_path, loader):
        with pytest.raises(FileNotFoundError, match="gone"):
            loader(tmp_path / "gone")

    def test_unknown_format_lists_the_accepted(self, tmp_path):
        (tmp_path / "rig.yaml").write_text("a: 1")
        with pytest.raises(CalibrationError, match="accepted:.*TOML.*caliscope.*Qualisys.*Shelf"):
            load_rig(tmp_path / "rig.yaml")

    def test_toml_camera_missing_field(self, tmp_path):
        path = tmp_path / "bad.toml"
        save_toml(_random_rig(["left", "right"]), path)
        text = path.read_text().split("[right]")
        path.write_text(text[0] + "[right]" + "\n".join(
            l for l in text[1].splitlines() if not l.startswith("translation")))
        with pytest.raises(CalibrationError, match=r"bad\.toml.*\[right\].*translation"):
            load_rig(path)

    def test_toml_nan(self, tmp_path):
        path = tmp_path / "nan.toml"
        save_toml(_random_rig(["left"]), path)
        text = path.read_text()
        i = text.index("translation = [ ") + len("translation = [ ")
        path.write_text(text[:i] + "nan, " + text[text.index(",", i) + 1:])
        with pytest.raises(CalibrationError, match=r"nan\.toml.*\[left\].*translation.*NaN"):
            load_rig(path)

    def test_qualisys_missing_attribute_and_nan(self, tmp_path):
        path = tmp_path / "a.qca.txt"
        path.write_text(_QCA)
        cam = load_rig(path)[0]
        assert cam.K[0, 0] == 1000 and cam.K[0, 2] == 640 and abs(cam.center[2] - 2.0) < 1e-12
        path.write_text(_QCA.replace('focalLengthV="64000"', ""))
        with pytest.raises(CalibrationError, match=r"a\.qca\.txt.*'camA'.*focalLengthV"):
            load_rig(path)
        path.write_text(_QCA.replace('x="0"', 'x="nan"'))
        with pytest.raises(CalibrationError, match=r"a\.qca\.txt.*'camA'.*transform x"):
            load_rig(path)

    def test_shelf_missing_field_and_nan(self, tmp_path):
        good = {"K": [1000, 0, 500, 0, 1000, 400, 0, 0, 1],
                "RT": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3], "imgSize": [1032, 776]}
        path = tmp_path / "calibration.json"
        path.write_text(json.dumps({"0": good, "1": {k: v for k, v in good.items() if k != "RT"}}))
        with pytest.raises(CalibrationError, match=r"calibration\.json.*camera '1'.*'RT'"):
            load_rig(path)
        path.write_text(json.dumps({"0": {**good, "K": [float("nan")] + good["K"][1:]}}))
        with pytest.raises(CalibrationError, match=r"calibration\.json.*camera '0'.*'K'.*NaN"):
            load_rig(path)

    def test_caliscope_missing_field(self, tmp_path):
        path = tmp_path / "config.toml"
        path.write_text(_CALISCOPE_CAM)
        assert load_rig(path).names == ["cam_0"]
        path.write_text(_CALISCOPE_CAM.replace("matrix =", "not_matrix ="))
        with pytest.raises(CalibrationError, match=r"config\.toml.*\[cam_0\].*matrix"):
            load_rig(path)
