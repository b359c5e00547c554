"""Human3.6M files in VideoPose3D's layout (epiflow.datasets.h36m), on tiny files written here."""
from __future__ import annotations

import numpy as np
import pytest

from epiflow.datasets.h36m import (H36M_CAMERA_IDS, H36M_KEPT_JOINTS, h36m32_to_h36m17, load_h36m_2d,
                                   load_h36m_3d)
from epiflow.skeleton import H36M17

# VideoPose3D's 32-joint names at the kept indices, to check the order lands on h36m17's
_KEPT_NAMES = {0: "pelvis", 1: "r_hip", 2: "r_knee", 3: "r_ankle", 6: "l_hip", 7: "l_knee",
               8: "l_ankle", 12: "spine", 13: "thorax", 14: "neck", 15: "head", 17: "l_shoulder",
               18: "l_elbow", 19: "l_wrist", 25: "r_shoulder", 26: "r_elbow", 27: "r_wrist"}


def _mocap_mm(T: int, seed: int = 0) -> np.ndarray:
    """(T, 32, 3) millimetres; joint i sits at height 100·i mm so each index is recognisable."""
    pos = np.random.default_rng(seed).normal(0, 200, (T, 32, 3))
    pos[..., 2] = 100.0 * np.arange(32)
    return pos


def test_kept_joints_are_h36m17_in_order():
    assert [_KEPT_NAMES[i] for i in H36M_KEPT_JOINTS] == list(H36M17.joints)


@pytest.mark.parametrize("stored_in", ["mm", "m"])
def test_3d_file_mapped_and_in_metres(tmp_path, stored_in):
    mm = {"S1": {"Walking": _mocap_mm(5), "Eating 2": _mocap_mm(3, 1)}, "S9": {"Sitting": _mocap_mm(4, 2)}}
    stored = {s: {a: (p if stored_in == "mm" else p / 1000).astype("float32") for a, p in acts.items()}
              for s, acts in mm.items()}
    np.savez_compressed(tmp_path / "data_3d_h36m.npz", positions_3d=stored)
    data = load_h36m_3d(tmp_path / "data_3d_h36m.npz")
    assert sorted(data) == ["S1", "S9"] and sorted(data["S1"]) == ["Eating 2", "Walking"]
    walk = data["S1"]["Walking"]
    assert walk.shape == (5, 17, 3)
    np.testing.assert_allclose(walk[..., 2], np.tile(np.array(H36M_KEPT_JOINTS) / 10.0, (5, 1)), atol=1e-5)
    np.testing.assert_allclose(walk, mm["S1"]["Walking"][:, list(H36M_KEPT_JOINTS)] / 1000, atol=1e-5)


def test_units_can_be_forced_and_are_checked():
    pos = _mocap_mm(2)
    np.testing.assert_allclose(h36m32_to_h36m17(pos, units="m"), pos[:, list(H36M_KEPT_JOINTS)])
    with pytest.raises(ValueError, match="units must be 'm', 'mm' or 'auto'; got 'cm'"):
        h36m32_to_h36m17(pos, units="cm")
    with pytest.raises(ValueError, match=r"my clip.*\(T, 32, 3\).*\(2, 17, 3\)"):
        h36m32_to_h36m17(pos[:, :17], source="my clip")


def test_2d_file_to_keypoints(tmp_path):
    rng = np.random.default_rng(3)
    views = [rng.uniform(0, 1000, (6 + (c == 2), 17, 2)).astype("float32") for c in range(4)]
    meta = {"layout_name": "h36m", "num_joints": 17,
            "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    np.savez_compressed(tmp_path / "data_2d_h36m_cpn.npz", positions_2d={"S11": {"Posing": views}},
                        metadata=meta)
    kp = load_h36m_2d(tmp_path / "data_2d_h36m_cpn.npz")["S11"]["Posing"]
    assert kp.joint_set == "h36m17" and kp.data.shape == (6, 4, 17, 3)  # the shortest camera
    assert kp.camera_names == H36M_CAMERA_IDS and kp.fps == 50.0
    assert kp.image_size.tolist() == [[1000, 1002], [1000, 1000], [1000, 1000], [1000, 1002]]
    np.testing.assert_allclose(kp.xy[:, 1], views[1], rtol=1e-6)
    assert np.all(kp.confidence == 1)
    # the symmetry VideoPose3D stores is h36m17's own left/right
    assert sorted(meta["keypoints_symmetry"][0]) == sorted(l for l, _ in H36M17.left_right)

    meta["layout_name"] = "coco"
    np.savez_compressed(tmp_path / "coco.npz", positions_2d={"S1": {"A": views}}, metadata=meta)
    assert load_h36m_2d(tmp_path / "coco.npz")["S1"]["A"].joint_set == "coco17"


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        load_h36m_3d(tmp_path / "nothing.npz")
    np.savez(tmp_path / "other.npz", positions=np.zeros(3))
    with pytest.raises(ValueError, match=r"other\.npz.*no 'positions_3d'"):
        load_h36m_3d(tmp_path / "other.npz")
    views = [np.zeros((4, 17, 2))] * 3
    np.savez_compressed(tmp_path / "three.npz", positions_2d={"S1": {"A": views}}, metadata={})
    with pytest.raises(ValueError, match=r"three\.npz\[S1\]\[A\].*4 arrays.*got \[\(4, 17, 2\)"):
        load_h36m_2d(tmp_path / "three.npz")
    np.savez_compressed(tmp_path / "wide.npz", positions_2d={"S1": {"A": [np.zeros((4, 16, 2))] * 4}},
                        metadata={"layout_name": "mpii"})
    with pytest.raises(ValueError, match=r"wide\.npz.*layout 'mpii' with 16 joints"):
        load_h36m_2d(tmp_path / "wide.npz")
