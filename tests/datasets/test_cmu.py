"""CMU ASF/AMC reader: forward kinematics checked on a real clip (bone lengths, travel, floor)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from epiflow.datasets.cmu import (Motion, euler_matrix, load_cmu_clip, load_packaged_clip,
                                  packaged_clips)
from epiflow.skeleton import CMU31, H36M17


def bone_lengths(points: np.ndarray) -> np.ndarray:
    """(T, n_bones) lengths of the cmu31 bones."""
    b = np.array(CMU31.bones)
    return np.linalg.norm(points[:, b[:, 1]] - points[:, b[:, 0]], axis=-1)


@pytest.fixture(scope="module")
def walk(shared_data) -> Motion:
    return load_cmu_clip(shared_data / "cmu_mocap" / "02" / "02_01.amc")


class TestEulerMatrix:
    def test_xyz_is_rz_ry_rx(self):
        angles = np.array([[10.0, -35.0, 70.0], [123.0, 4.0, -80.0]])
        expected = Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
        assert np.abs(euler_matrix("XYZ", angles) - expected).max() < 1e-12

    def test_dof_order_is_respected(self):
        angles = np.array([[30.0, 50.0]])
        expected = Rotation.from_euler("zx", angles, degrees=True).as_matrix()
        assert np.abs(euler_matrix(("rz", "rx"), angles) - expected).max() < 1e-12
        assert np.abs(euler_matrix(("rx", "rz"), angles[:, ::-1]) - expected).max() > 0.1


class TestLoadCmuClip:
    def test_shape_and_rate(self, walk):
        assert walk.points.shape == (343, 31, 3)
        assert walk.fps == 120 and walk.name == "02_01" and walk.joint_set == "cmu31"

    def test_bone_lengths_constant(self, walk):
        L = bone_lengths(walk.points)
        assert np.ptp(L, axis=0).max() < 1e-3
        # femur: 7.59371 file units × 0.0254 / 0.45 m
        femur = L[0, CMU31.bones.index((CMU31.index("lfemur") - 1, CMU31.index("lfemur")))]
        assert abs(femur - 7.59371 * 0.0254 / 0.45) < 1e-6

    def test_walk_travels_about_3_4_m(self, walk):
        travel = np.linalg.norm(walk.points[-1, 0, :2] - walk.points[0, 0, :2])
        assert 3.0 < travel < 3.8

    def test_feet_on_floor_and_z_up(self, walk):
        j = CMU31.joints
        feet = walk.points[:, [j.index("ltoes"), j.index("rtoes"), j.index("lfoot"),
                               j.index("rfoot")], 2]
        assert feet.min() == pytest.approx(0.0, abs=1e-9)
        assert np.all(feet.min(axis=1) < 0.08)  # one foot near the floor in every frame of a walk
        head, root = walk.points[:, j.index("head"), 2], walk.points[:, 0, 2]
        assert np.all(head - root > 0.4) and 0.8 < root.mean() < 1.1

    def test_left_is_left(self, walk):
        """Right-handed Z up: the left hip lies to the left of the walking direction."""
        fwd = walk.points[-1, 0, :2] - walk.points[0, 0, :2]
        left = np.array([-fwd[1], fwd[0]]) / np.linalg.norm(fwd)
        j = CMU31.joints
        knees = walk.points[:, [j.index("lfemur"), j.index("rfemur")], :2]
        side = (knees[:, 0] - knees[:, 1]) @ left
        assert np.all(side > 0.03)

    def test_planted_foot_does_not_slide(self, walk):
        """Rotations composed in the wrong order make the stance foot skate; here it stays put."""
        foot = walk.points[:, CMU31.index("rfoot")]
        speed = np.linalg.norm(np.diff(foot, axis=0), axis=1) * walk.fps
        low = foot[:-1, 2] < np.percentile(foot[:, 2], 20)
        assert np.median(speed[low]) < 0.2 and np.median(speed) > 0.4

    def test_bad_line_names_file_and_line(self, shared_data, tmp_path):
        src = shared_data / "cmu_mocap" / "02"
        lines = (src / "02_01.amc").read_text().splitlines()
        lines[10] = "rhumerus -9.4 oops -82.1"
        bad = tmp_path / "02_01.amc"
        bad.write_text("\n".join(lines))
        with pytest.raises(ValueError, match=r"02_01\.amc:11: rhumerus"):
            load_cmu_clip(bad, src / "02.asf")

    def test_missing_bone_names_frame(self, shared_data, tmp_path):
        src = shared_data / "cmu_mocap" / "02"
        lines = [s for i, s in enumerate((src / "02_01.amc").read_text().splitlines()) if i != 40]
        bad = tmp_path / "02_01.amc"
        bad.write_text("\n".join(lines))
        with pytest.raises(ValueError, match=r"02_01\.amc:\d+: frame 2"):
            load_cmu_clip(bad, src / "02.asf")

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="nope.amc"):
            load_cmu_clip(tmp_path / "nope.amc", tmp_path / "x.asf")


class TestMotion:
    def test_to_h36m_maps_joints(self, walk):
        h = walk.to_h36m()
        assert h.points.shape == (343, 17, 3) and h.joint_set == "h36m17"
        np.testing.assert_allclose(h.points[:, H36M17.index("r_knee")],
                                   walk.points[:, CMU31.index("rfemur")])

    def test_resample_integer_ratio_picks_frames(self, walk):
        r = walk.resample(30)
        assert r.fps == 30 and r.n_frames == 86
        np.testing.assert_allclose(r.points, walk.points[::4])

    def test_resample_interpolates(self):
        pts = np.zeros((3, 17, 3))
        pts[:, :, 0] = np.array([0.0, 1.0, 2.0])[:, None]
        m = Motion(pts, "h36m17", fps=1.0).resample(4)
        assert m.n_frames == 9
        np.testing.assert_allclose(m.points[:, 0, 0], np.arange(9) / 4)

    def test_shape_checked(self):
        with pytest.raises(ValueError, match=r"\(T, 31, 3\)"):
            Motion(np.zeros((5, 17, 3)), "cmu31")


class TestPackagedClips:
    def test_walk_ships_at_30_fps(self):
        assert "02_01" in packaged_clips()
        m = load_packaged_clip("02_01")
        assert m.fps == 30 and m.joint_set == "cmu31" and m.points.shape[1:] == (31, 3)
        assert np.ptp(bone_lengths(m.points), axis=0).max() < 1e-3
        assert 3.0 < np.linalg.norm(m.points[-1, 0, :2] - m.points[0, 0, :2]) < 3.8

    def test_matches_the_reader(self, walk):
        np.testing.assert_allclose(load_packaged_clip("02_01").points, walk.points[::4], atol=1e-5)

    def test_unknown_name(self):
        with pytest.raises(KeyError, match="02_01"):
            load_packaged_clip("99_99")
