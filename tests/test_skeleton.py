"""Joint sets and their mapping onto h36m17 (epiflow.skeleton), on real poses where there are some."""
from __future__ import annotations

import numpy as np
import pytest

from epiflow.skeleton import H36M17, JOINT_SETS, get_joint_set, map_to_h36m, mapping_matrix

J = H36M17.index
#: left/right pairs each set must have (a mirror swaps them all; the rest stay put)
N_PAIRS = {"h36m17": 6, "blazepose33": 16, "coco17": 8, "body25": 11, "body25b": 11, "shelf14": 6,
           "cmu31": 12}


def _mirror(name: str) -> str:
    for a, b in (("left", "right"), ("right", "left"), ("l_", "r_"), ("r_", "l_"), ("L", "R"),
                 ("R", "L"), ("l", "r"), ("r", "l")):
        if name.startswith(a):
            return b + name[len(a):]
        if name.endswith("_" + a):
            return name[:-len(a)] + b
    return name


def _forward(h: np.ndarray) -> np.ndarray:
    """(..., 3) the direction a body faces, from its h36m17 pose in a right-handed frame."""
    up = h[..., J("thorax"), :] - h[..., J("pelvis"), :]
    return np.cross(h[..., J("l_hip"), :] - h[..., J("r_hip"), :], up)


_BONES = {"thigh": ("hip", "knee"), "shin": ("knee", "ankle"), "upper arm": ("shoulder", "elbow"),
          "forearm": ("elbow", "wrist")}


def _check_plausible_3d(h: np.ndarray, up_axis: int | None, bones=tuple(_BONES)):
    """Bone lengths (metres) of an adult, left ≈ right, and the vertical order head to feet."""
    bones = {b: _BONES[b] for b in bones}
    bounds = {"thigh": (0.3, 0.6), "shin": (0.3, 0.6), "upper arm": (0.2, 0.42), "forearm": (0.18, 0.35)}
    for bone, (a, b) in bones.items():
        left = np.nanmedian(np.linalg.norm(h[:, J("l_" + a)] - h[:, J("l_" + b)], axis=-1))
        right = np.nanmedian(np.linalg.norm(h[:, J("r_" + a)] - h[:, J("r_" + b)], axis=-1))
        lo, hi = bounds[bone]
        assert lo < left < hi and lo < right < hi, (bone, left, right)
        assert abs(left - right) / (left + right) < 0.1, (bone, left, right)
    if up_axis is not None:
        z = np.nanmedian(h[..., up_axis], axis=0)
        order = ["head", "neck", "thorax", "spine", "pelvis", "l_knee", "l_ankle"]
        assert all(z[J(a)] > z[J(b)] for a, b in zip(order, order[1:])), dict(zip(order, z[[J(o) for o in order]]))


class TestJointSets:
    @pytest.mark.parametrize("name", list(JOINT_SETS))
    def test_flip_is_an_involution_swapping_left_and_right(self, name):
        js = get_joint_set(name)
        perm = js.flip_permutation
        np.testing.assert_array_equal(perm[perm], np.arange(len(js)))
        assert sorted(perm.tolist()) == list(range(len(js)))
        assert len(js.left_right) == N_PAIRS[name] == int((perm != np.arange(len(js))).sum() // 2)
        for i, k in enumerate(perm):
            if k != i:
                assert js.joints[k] == _mirror(js.joints[i])
            else:
                assert _mirror(js.joints[i]) not in js.joints or _mirror(js.joints[i]) == js.joints[i]

    @pytest.mark.parametrize("name", list(JOINT_SETS))
    def test_mapping_commutes_with_mirroring(self, name):
        """Mirroring the source then mapping equals mapping then mirroring: every rule has its twin."""
        js = get_joint_set(name)
        pts = np.random.default_rng(0).normal(size=(4, len(js), 3))
        a = map_to_h36m(pts[:, js.flip_permutation], name, confidence=False)
        b = map_to_h36m(pts, name, confidence=False)[:, H36M17.flip_permutation]
        np.testing.assert_allclose(a, b, atol=1e-12)

    @pytest.mark.parametrize("name", list(JOINT_SETS))
    def test_rows_average(self, name):
        M = mapping_matrix(name)
        assert M.shape == (17, len(get_joint_set(name)))
        np.testing.assert_allclose(M.sum(1), 1.0)

    def test_unknown_set_and_wrong_shape(self):
        with pytest.raises(ValueError, match="unknown joint set 'smpl24'; expected one of: h36m17, "):
            get_joint_set("smpl24")
        with pytest.raises(ValueError, match="unknown joint set 'smpl24'"):
            map_to_h36m(np.zeros((2, 24, 3)), "smpl24", confidence=True)
        with pytest.raises(ValueError, match=r"'coco17' must have shape \(\.\.\., 17, D\); got \(2, 25, 3\)"):
            map_to_h36m(np.zeros((2, 25, 3)), "coco17", confidence=True)
        with pytest.raises(KeyError, match="'tail' is not in joint set 'coco17'"):
            get_joint_set("coco17").index("tail")


class TestConfidenceRule:
    def test_synthesized_joint_takes_the_lowest_confidence(self):
        js = get_joint_set("coco17")
        pts = np.column_stack([np.arange(17.0), np.arange(17.0) * 2, np.linspace(0.3, 0.9, 17)])
        out = map_to_h36m(pts, "coco17", confidence=True)
        lh, rh = js.index("left_hip"), js.index("right_hip")
        np.testing.assert_allclose(out[J("pelvis"), :2], (pts[lh, :2] + pts[rh, :2]) / 2)
        assert out[J("pelvis"), 2] == min(pts[lh, 2], pts[rh, 2])
        four = [js.index(n) for n in ("left_hip", "right_hip", "left_shoulder", "right_shoulder")]
        assert out[J("spine"), 2] == pts[four, 2].min()
        assert out[J("l_knee"), 2] == pts[js.index("left_knee"), 2]  # a copied joint keeps its own

    def test_missing_source_makes_only_its_joints_missing(self):
        js = get_joint_set("body25")
        pts = np.random.default_rng(1).uniform(10, 500, (25, 3))
        pts[:, 2] = 0.8
        pts[js.index("LHip")] = (np.nan, np.nan, 0.0)
        pts[js.index("RKnee"), 2] = 0.0  # zero confidence counts as missing too
        out = map_to_h36m(pts, "body25", confidence=True)
        missing = {H36M17.joints[i] for i in np.flatnonzero(out[:, 2] == 0)}
        assert missing == {"pelvis", "l_hip", "spine", "r_knee"}
        assert np.isnan(out[out[:, 2] == 0, :2]).all() and np.isfinite(out[out[:, 2] > 0, :2]).all()


class TestRealPoses:
    def test_cmu31_packaged_clip(self):
        from epiflow.datasets.cmu import load_packaged_clip
        motion = load_packaged_clip("02_01")
        h = map_to_h36m(motion.points, "cmu31", confidence=False)
        _check_plausible_3d(h, up_axis=2)
        src = get_joint_set("cmu31")
        toes = motion.points[:, src.index("ltoes")] - motion.points[:, src.index("lfoot")]
        assert np.median(np.einsum("ti,ti->t", toes, _forward(h))) > 0  # l_ is the subject's left
        hips = (h[:, J("l_hip")] + h[:, J("r_hip")]) / 2
        assert np.median(np.linalg.norm(h[:, J("pelvis")] - hips, axis=-1)) < 0.05

    def test_shelf14_ground_truth(self, shared_data):
        from epiflow.datasets.shelf import gt_track, read_shelf_gt
        track = gt_track(read_shelf_gt(shared_data / "shelf" / "gt.txt"), 0)
        h = map_to_h36m(track[:, :14], "shelf14", confidence=False)
        _check_plausible_3d(h, up_axis=2)
        np.testing.assert_allclose(h[:, J("pelvis")], (track[:, 2] + track[:, 3]) / 2)  # mid-hips
        face = h[:, J("head")] - h[:, J("neck")]  # Shelf's head top sits in front of its neck
        assert np.nanmedian(np.einsum("ti,ti->t", face, _forward(h))) > 0

    def test_blazepose33_and_coco17_caliscope(self, shared_data):
        from epiflow.datasets.caliscope import read_caliscope_xyz
        X = read_caliscope_xyz(shared_data / "caliscope_4cam" / "recordings" / "recording_1"
                               / "HOLISTIC" / "xyz_HOLISTIC.csv")
        blaze, coco = get_joint_set("blazepose33"), get_joint_set("coco17")
        h = map_to_h36m(X, "blazepose33", confidence=False)
        # caliscope's world is a camera's frame, not Z up; its leg points are often hidden and unreliable
        _check_plausible_3d(h, up_axis=None, bones=("upper arm", "forearm"))
        nose = h[:, J("neck")] - h[:, J("head")]  # nose in front of the mid-ears
        assert np.nanmedian(np.einsum("ti,ti->t", nose, _forward(h))) > 0
        ears = X[:, [blaze.index("left_ear"), blaze.index("right_ear")]].mean(1)
        np.testing.assert_allclose(h[:, J("head")], ears)
        X_coco = X[:, [blaze.index(n) for n in coco.joints]]  # COCO's names are BlazePose's
        np.testing.assert_allclose(map_to_h36m(X_coco, "coco17", confidence=False), h)

    def test_body25b_and_body25_pose2sim_demo(self, shared_data):
        from epiflow.datasets.openpose import read_openpose
        kp = read_openpose(shared_data / "pose2sim_demo" / "openpose_body25b_single_person")
        src = get_joint_set("body25b")
        h = map_to_h36m(kp.data, "body25b", confidence=True)  # (T, C, 17, 3), image y down
        y = np.nanmedian(h[..., 1], axis=(0, 1))
        order = ["head", "neck", "thorax", "spine", "pelvis", "l_knee", "l_ankle"]
        assert all(y[J(a)] < y[J(b)] for a, b in zip(order, order[1:]))
        both = (kp.data[..., src.index("LHip"), 2] > 0) & (kp.data[..., src.index("RHip"), 2] > 0)
        mid = (kp.data[..., src.index("LHip"), :2] + kp.data[..., src.index("RHip"), :2]) / 2
        np.testing.assert_allclose(h[..., J("pelvis"), :2][both], mid[both])
        # the same detections named as BODY_25 (Neck = mid-shoulders, MidHip = mid-hips) map alike,
        # except the head: BODY_25 has no head top and uses the mid-ears
        b25 = get_joint_set("body25")
        data = np.full(kp.data.shape, np.nan)
        data[..., 2] = 0
        for i, name in enumerate(b25.joints):
            if name in src.joints:
                data[..., i, :] = kp.data[..., src.index(name), :]
        h25 = map_to_h36m(data, "body25", confidence=True)
        same = [i for i, n in enumerate(H36M17.joints) if n != "head"]
        np.testing.assert_allclose(h25[..., same, :], h[..., same, :])
        ears = (h25[..., J("head"), 1] - h[..., J("head"), 1])
        assert np.nanmedian(ears) > 0  # mid-ears sit below the head top in the image
