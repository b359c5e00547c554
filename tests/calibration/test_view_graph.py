"""The view graph: connected groups, a split graph named in the error, the maximum spanning tree,
and cameras chained from exact pair poses with consistent baseline scales."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from epiflow.calibration.camera import CalibrationError, CameraRig
from epiflow.calibration.from_people import calibrate_from_people
from epiflow.calibration.relative_pose import PairPose
from epiflow.calibration.view_graph import (chain_poses, check_connected, connected_components,
                                            invert, scale_from_points, spanning_tree)
from epiflow.datasets.synthetic import Corruption, cmu_capture, make_rig
from epiflow.models.metrics import rig_errors
from epiflow.skeleton import H36M17

NAMES = ["north", "east", "south", "west", "top"]


def _pair(rig: CameraRig, i: int, j: int, inliers: int, T: int = 1) -> PairPose:
    """The exact relative pose i → j of ``rig`` (unit baseline), as the pooled fit gives it."""
    R, t = rig.relative_pose(i, j)
    return PairPose(i, j, R, t / np.linalg.norm(t), np.zeros((3, 3)), np.zeros(T, bool), inliers,
                    inliers, 0.5)


def _observations(rig: CameraRig, T: int = 20, seed: int = 0):
    """Exact normalised observations (C, T, 17, 2) of random points near the rig's target."""
    rng = np.random.default_rng(seed)
    X = rng.uniform([-0.8, -0.8, 0.1], [0.8, 0.8, 1.9], (T, 17, 3))
    xn = rig.undistort(rig.project(X))
    return xn, np.ones(xn.shape[:3], bool)


class TestComponents:
    def test_groups_largest_first(self):
        assert connected_components(5, [(0, 1), (3, 4), (1, 2)]) == [[0, 1, 2], [3, 4]]
        assert connected_components(4, []) == [[0], [1], [2], [3]]
        assert connected_components(3, [(2, 0), (1, 2)]) == [[0, 1, 2]]

    def test_connected_graph_passes(self):
        check_connected(NAMES[:3], [(0, 1), (1, 2)])

    def test_split_graph_names_the_groups_and_the_rejected_pairs(self):
        reasons = {(0, 3): "12 shared observations (< 60)", (2, 4): "9 essential-matrix inliers "
                                                                    "(< 40)"}
        with pytest.raises(CalibrationError) as err:
            check_connected(NAMES, [(0, 1), (1, 2), (3, 4)], reasons)
        msg = str(err.value)
        assert "2 groups" in msg and "{north, east, south}; {west, top}" in msg
        assert "north–west: 12 shared observations (< 60)" in msg
        assert "south–top: 9 essential-matrix inliers (< 40)" in msg
        assert "at the same time" in msg  # what to record instead

    def test_a_lone_camera_is_its_own_group(self):
        with pytest.raises(CalibrationError, match=r"3 groups .*\{north, east\}; \{south\}; "
                                                   r"\{west\}"):
            check_connected(NAMES[:4], [(0, 1)])


class TestSpanningTree:
    def test_keeps_the_strongest_pairs_oriented_away_from_the_root(self):
        rig = make_rig(4, seed=1)
        pairs = [_pair(rig, 0, 1, 500), _pair(rig, 0, 2, 90), _pair(rig, 1, 2, 400),
                 _pair(rig, 2, 3, 60), _pair(rig, 1, 3, 50), _pair(rig, 0, 3, 45)]
        tree = spanning_tree(4, pairs)
        assert [(e.i, e.j) for e in tree] == [(0, 1), (1, 2), (2, 3)]
        tree = spanning_tree(4, pairs, root=3)
        assert [(e.i, e.j) for e in tree] == [(3, 2), (2, 1), (1, 0)]
        # an inverted edge is the same pose seen from the other camera
        R, t = rig.relative_pose(3, 2)
        np.testing.assert_allclose(tree[0].R, R, atol=1e-12)
        np.testing.assert_allclose(tree[0].t, t / np.linalg.norm(t), atol=1e-12)

    def test_invert_twice_is_the_same_pair(self):
        rig = make_rig(3, seed=2)
        p = _pair(rig, 0, 2, 100)
        q = invert(invert(p))
        assert (q.i, q.j) == (0, 2)
        np.testing.assert_allclose(q.R, p.R, atol=1e-12)
        np.testing.assert_allclose(q.t, p.t, atol=1e-12)

    def test_disconnected_pairs_are_refused(self):
        rig = make_rig(4, seed=1)
        with pytest.raises(CalibrationError, match="disconnected"):
            spanning_tree(4, [_pair(rig, 0, 1, 100), _pair(rig, 2, 3, 100)])


class TestChaining:
    def test_scale_from_points_is_exact(self):
        rig = make_rig(2, seed=3)
        (R, t), X = rig.relative_pose(0, 1), np.random.default_rng(1).uniform(-1, 1, (30, 3))
        X[:, 2] += 5.0  # in front of camera 0 (its frame is the world here)
        x = (X @ R.T + t)[:, :2] / (X @ R.T + t)[:, 2:]
        a = np.zeros(3)  # camera 1 = R X + 0 + s d
        assert scale_from_points(R, a, t / np.linalg.norm(t), X, x) == pytest.approx(
            np.linalg.norm(t), rel=1e-9)
        assert np.isnan(scale_from_points(R, a, t, X[:0], x[:0]))

    def test_chained_rig_equals_the_truth_up_to_a_similarity(self):
        """Exact pair poses along a tree that is not a star (0→1→2, 1→3, 3→4): every camera
        after the first edge gets its baseline length from the points, and the chained rig equals
        the true one up to a similarity (errors ~1e-10)."""
        rig = make_rig(5, layout="random", seed=4, radius=4.0)
        xn, valid = _observations(rig)
        tree = [_pair(rig, 0, 1, 9), _pair(rig, 1, 2, 9), _pair(rig, 1, 3, 9),
                _pair(rig, 3, 4, 9)]
        init = chain_poses(tree, xn, valid, H36M17.flip_permutation)
        chained = CameraRig(c.replace(R=init.R[k], t=init.t[k]) for k, c in enumerate(rig))
        err = rig_errors(chained, rig)
        assert err["rotation_deg_max"] < 1e-6 and err["baseline_deg_max"] < 1e-6
        assert err["distance_ratio_max_dev"] < 1e-8  # one scale for all baselines
        # camera 0 is the world; the first edge's baseline has unit length
        np.testing.assert_allclose(init.R[0], np.eye(3), atol=1e-12)
        assert np.linalg.norm(init.t[1]) == pytest.approx(1.0, abs=1e-12)
        assert not init.flips.any()

    def test_flips_propagate_along_the_tree(self):
        rig = make_rig(3, seed=5)
        xn, valid = _observations(rig, T=6)
        e01, e12 = _pair(rig, 0, 1, 9, T=6), _pair(rig, 1, 2, 9, T=6)
        e01.flipped[[1, 4]] = True  # camera 1 mirrored relative to camera 0 at frames 1 and 4
        e12.flipped[[4, 5]] = True  # camera 2 mirrored relative to camera 1 at frames 4 and 5
        perm = H36M17.flip_permutation
        xn[1, [1, 4]] = xn[1, [1, 4]][:, perm]
        xn[2, [1, 5]] = xn[2, [1, 5]][:, perm]
        init = chain_poses([e01, e12], xn, valid, perm)
        assert init.flips[:, 1].nonzero()[0].tolist() == [1, 4]
        assert init.flips[:, 2].nonzero()[0].tolist() == [1, 5]  # 1 from camera 1, 4 cancels
        assert rig_errors(CameraRig(c.replace(R=init.R[k], t=init.t[k]) for k, c in
                                    enumerate(rig)), rig)["distance_ratio_max_dev"] < 1e-8

    def test_a_camera_with_no_shared_points_cannot_be_scaled(self):
        rig = make_rig(3, seed=6)
        xn, valid = _observations(rig, T=5)
        valid[2] = False  # camera 2 sees none of the points cameras 0 and 1 triangulate
        with pytest.raises(CalibrationError, match="baseline scale of camera 2"):
            chain_poses([_pair(rig, 0, 1, 9), _pair(rig, 1, 2, 9)], xn, valid,
                        H36M17.flip_permutation)


class TestFromPeople:
    """The view graph inside calibrate_from_people."""

    @pytest.fixture(scope="class")
    def capture(self):
        return cmu_capture("02_01", corruption=Corruption(noise_px=2.0), seed=0)

    def test_two_groups_that_never_see_the_person_together(self, capture):
        kp = capture.keypoints
        data = kp.data.copy()
        data[:43, 2:] = (np.nan, np.nan, 0.0)  # cam_03, cam_04 see the second half only,
        data[43:, :2] = (np.nan, np.nan, 0.0)  # cam_01, cam_02 the first half
        with pytest.raises(CalibrationError) as err:
            calibrate_from_people(replace(kp, data=data), capture.rig)
        msg = str(err.value)
        assert "{cam_01, cam_02}; {cam_03, cam_04}" in msg
        assert "cam_01–cam_03: 0 shared observations (< 60)" in msg

    def test_a_pair_that_shares_too_little_is_left_out_and_reported(self, capture):
        """cam_03 and cam_04 overlap in 3 frames only: their pair is rejected with the count, and
        the other pairs still place both cameras."""
        kp = capture.keypoints
        data = kp.data.copy()
        data[:40, 2] = (np.nan, np.nan, 0.0)
        data[43:, 3] = (np.nan, np.nan, 0.0)
        res = calibrate_from_people(replace(kp, data=data), capture.rig)
        (pair, reason), = res.report["rejected_pairs"].items()
        shared = int(((data[:, 2, :, 2] >= 0.5) & (data[:, 3, :, 2] >= 0.5)).sum())
        assert pair == "cam_03-cam_04" and 0 < shared < 60
        assert reason.endswith("shared observations (< 60)") and int(reason.split()[0]) <= shared
        assert {tuple(p["cameras"]) for p in res.report["pairs"]} == {
            ("cam_01", "cam_02"), ("cam_01", "cam_03"), ("cam_01", "cam_04"),
            ("cam_02", "cam_03"), ("cam_02", "cam_04")}
        err = rig_errors(res.rig, capture.rig)
        assert err["rotation_deg_max"] < 0.45  # 0.22° measured (0.11° with every frame)
        # the cameras whose detections stop or start halfway are warned about, by name
        assert any(w.startswith("cam_04: no detections after frame 42") for w in
                   res.report["warnings"])
        assert any(w.startswith("cam_03: no detections before frame 40") for w in
                   res.report["warnings"])
