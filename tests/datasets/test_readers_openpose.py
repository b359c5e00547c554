"""OpenPose JSON folders and the keypoints entry point (epiflow.datasets.openpose, .io)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from epiflow.calibration.formats import load_rig
from epiflow.calibration.triangulation import triangulate_linear
from epiflow.datasets.io import load_keypoints
from epiflow.keypoints import Keypoints, save_npz
from epiflow.datasets.openpose import guess_body25_variant, read_openpose


def _write(folder, name, people):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(
        {"version": 1.3, "people": [{"pose_keypoints_2d": np.asarray(p).ravel().tolist()} for p in people]}))


def _person(n_joints, x0, conf, rng):
    pts = np.column_stack([x0 + rng.uniform(0, 100, n_joints), rng.uniform(100, 900, n_joints),
                           np.full(n_joints, conf)])
    return pts


def _body(variant: str) -> np.ndarray:
    """A standing person in BODY_25 / BODY_25B order, pixels, all joints seen."""
    p = np.zeros((25, 3))
    p[:, 2] = 0.9
    p[:, 0] = 500 + np.linspace(-40, 40, 25)
    p[:, 1] = np.linspace(200, 900, 25)
    p[0, :2] = (500, 150)  # nose
    if variant == "body25":  # 15, 16 = eyes next to the nose
        p[15, :2], p[16, :2] = (490, 140), (510, 140)
    else:  # 15, 16 = ankles
        p[15, :2], p[16, :2] = (470, 950), (530, 950)
    return p


@pytest.fixture(scope="module")
def demo(shared_data):
    return read_openpose(shared_data / "pose2sim_demo" / "openpose_body25b_single_person")


class TestPose2SimDemo:
    def test_shape_names_and_joint_set(self, demo):
        assert demo.joint_set == "body25b"  # told from body25 by the data, not by an argument
        assert demo.camera_names == ("cam01", "cam02", "cam03", "cam04")
        assert demo.data.shape == (100, 4, 25, 3)
        assert np.all(demo.image_size == 0)  # OpenPose JSON has no image size

    def test_detection_numbers(self, demo):
        seen = demo.confidence > 0
        assert seen.any(-1).all()  # the person is found in every frame of every camera
        per_cam = seen.mean(axis=(0, 2))
        assert per_cam.min() > 0.9 and seen.mean() > 0.95  # measured 0.924..0.998, 0.959
        xy = demo.xy[seen]
        assert xy[:, 0].min() > 0 and xy[:, 0].max() < 1088
        assert xy[:, 1].min() > 0 and xy[:, 1].max() < 1920
        assert np.isnan(demo.xy[~seen]).all()

    def test_consistent_with_the_lab_calibration(self, demo, shared_data):
        rig = load_rig(shared_data / "pose2sim_demo" / "calibration" / "Calib.qca.txt")
        xy = demo.xy.transpose(1, 0, 2, 3)  # (C, T, J, 2)
        uv = rig.undistort(xy, normalized=False).reshape(4, -1, 2)
        w = (demo.confidence.transpose(1, 0, 2).reshape(4, -1) > 0.3).astype(float)
        X = triangulate_linear(torch.tensor(rig.projection_matrices()),
                               torch.nan_to_num(torch.tensor(uv)), torch.tensor(w)).numpy()
        X[(w > 0).sum(0) < 2] = np.nan
        X = X.reshape(100, 25, 3)
        err = rig.reprojection_error(X, xy)
        assert np.nanmedian(err) < 20  # measured 12.8 px; a wrong camera order is far off
        height = np.nanmedian(np.nanmax(X[..., 2], 1) - np.nanmin(X[..., 2], 1))
        assert 1.3 < height < 2.0  # measured 1.57 m, head top to toes


class TestReadOpenpose:
    def test_rules_on_a_written_folder(self, tmp_path):
        rng = np.random.default_rng(0)
        big, small = _person(17, 0, 0.9, rng), _person(17, 300, 0.5, rng)
        for cam in ("c_2_json", "c_10_json"):
            _write(tmp_path / cam, f"{cam[:-5]}_000000000000_keypoints.json", [small, big])
            _write(tmp_path / cam, f"{cam[:-5]}_000000000001_keypoints.json", [])
            _write(tmp_path / cam, f"{cam[:-5]}_000000000003_keypoints.json", [big])
        zeroed = big.copy()
        zeroed[4] = 0.0
        _write(tmp_path / "c_2_json", "c_2_000000000003_keypoints.json", [zeroed])
        kp = read_openpose(tmp_path, image_size=(640, 480), fps=30)
        assert kp.camera_names == ("c_2", "c_10")  # natural order
        assert kp.joint_set == "coco17" and kp.data.shape == (4, 2, 17, 3)
        np.testing.assert_allclose(kp.data[0, 1], big)  # the higher total confidence wins
        assert np.all(kp.confidence[[1, 2]] == 0) and np.isnan(kp.xy[[1, 2]]).all()  # empty, absent
        assert kp.confidence[3, 0, 4] == 0 and np.isnan(kp.xy[3, 0, 4]).all()  # 0, 0, 0 joint
        assert kp.image_size.tolist() == [[640, 480], [640, 480]] and kp.fps == 30

    @pytest.mark.parametrize("variant", ["body25", "body25b"])
    def test_body25_variant_from_data(self, tmp_path, variant):
        for t in range(6):
            _write(tmp_path / "cam1", f"cam1.{t:04d}.json", [_body(variant)])
        assert guess_body25_variant(_body(variant)[None].repeat(6, 0)) == variant
        assert read_openpose(tmp_path).joint_set == variant

    def test_25_joints_too_few_to_tell_asks_for_joint_set(self, tmp_path):
        _write(tmp_path / "cam1", "cam1.0000.json", [_body("body25")])
        with pytest.raises(ValueError, match="body25 or body25b.*joint_set"):
            read_openpose(tmp_path)
        assert read_openpose(tmp_path, joint_set="body25b").joint_set == "body25b"

    def test_joint_set_with_other_count(self, tmp_path):
        _write(tmp_path / "cam1", "cam1.0000.json", [_body("body25")])
        with pytest.raises(ValueError, match=re.escape(str(tmp_path)) + r".*joint_set='coco17' has 17 joints.*hold 25"):
            read_openpose(tmp_path, joint_set="coco17")

    def test_missing_folder_and_no_json(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="nowhere"):
            read_openpose(tmp_path / "nowhere")
        (tmp_path / "empty_cam").mkdir()
        with pytest.raises(ValueError, match="no sub-folders holding"):
            read_openpose(tmp_path)


class TestLoadKeypoints:
    def _kp(self, joint_set="h36m17", J=17):
        data = np.random.default_rng(1).uniform(0, 500, (5, 2, J, 3))
        data[..., 2] = 0.8
        return Keypoints(data, joint_set, ("a", "b"), [[640, 480], [640, 480]], 25.0)

    def test_npz_round_trip(self, tmp_path):
        kp = self._kp()
        save_npz(kp, tmp_path / "k.npz")
        back = load_keypoints(tmp_path / "k.npz")
        np.testing.assert_allclose(back.data, kp.data, rtol=1e-6)
        assert back.camera_names == kp.camera_names and back.fps == 25.0

    def test_folder_goes_to_openpose(self, tmp_path):
        for t in range(6):
            _write(tmp_path / "cam1_json", f"cam1.{t:04d}.json", [_body("body25b")])
        kp = load_keypoints(tmp_path, image_size=(1000, 1000))
        assert kp.joint_set == "body25b" and kp.camera_names == ("cam1",) and kp.n_frames == 6

    def test_bad_inputs(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="absent.npz"):
            load_keypoints(tmp_path / "absent.npz")
        with pytest.raises(FileNotFoundError, match="absent.txt"):
            load_keypoints(tmp_path / "absent.txt")
        (tmp_path / "k.csv").write_text("1,2")
        with pytest.raises(ValueError, match=r"k\.csv.*expected a \.npz"):
            load_keypoints(tmp_path / "k.csv")
        save_npz(self._kp(), tmp_path / "k.npz")
        with pytest.raises(ValueError, match="joint_set.*unknown joint set 'smpl24'.*h36m17"):
            load_keypoints(tmp_path / "k.npz", joint_set="smpl24")
        with pytest.raises(ValueError, match=r"k\.npz.*holds joint set 'h36m17'.*'coco17'"):
            load_keypoints(tmp_path / "k.npz", joint_set="coco17")

    def test_wrong_shapes_name_file_expected_and_got(self, tmp_path):
        common = dict(joint_set=np.str_("body25"), camera_names=np.array(["a", "b"]),
                      image_size=np.array([[640, 480], [640, 480]]))
        np.savez(tmp_path / "three.npz", keypoints=np.zeros((2, 5, 25)), **common)
        with pytest.raises(ValueError, match=r"three\.npz.*\(C, T, J, 3\).*\(2, 5, 25\)"):
            load_keypoints(tmp_path / "three.npz")
        np.savez(tmp_path / "j20.npz", keypoints=np.zeros((2, 5, 20, 3)), **common)
        with pytest.raises(ValueError, match=r"j20\.npz.*J=25 for body25.*\(5, 2, 20, 3\)"):
            load_keypoints(tmp_path / "j20.npz")
