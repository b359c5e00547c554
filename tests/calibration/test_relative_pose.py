"""Pooled relative pose: Sampson error, robust E with cheirality, left/right flips, reliable joints."""
from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from epiflow.calibration.relative_pose import (correspondence_joints, fit_essential, frame_flips,
                                               pair_pose, reliable_mask, sampson_error)
from epiflow.datasets.synthetic import make_rig
from epiflow.skeleton import H36M17


def _angle(R):
    return np.degrees(Rotation.from_matrix(R).magnitude())


def _dir_angle(a, b):
    return np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1)))


def _pair_frames(T=60, noise=0.0, seed=0):
    """Two neighbouring cameras (90° apart) of a ring rig seeing a jittering 17-joint 'person':
    normalised (T, 17, 2) each, and the true relative pose (R, t) of camera 1 in camera 0's frame."""
    rig = make_rig(4, radius=4.0, seed=seed).subset([0, 1])
    rng = np.random.default_rng(seed)
    centre = rng.uniform([-1, -1, 0.9], [1, 1, 1.1], (T, 1, 3))
    X = centre + rng.normal(0, 0.35, (T, 17, 3))
    uv = rig.project(X) + rng.normal(0, noise, (2, T, 17, 2))
    xn = rig.undistort(uv)
    return xn[0], xn[1], rig.relative_pose(0, 1), rig.K[0, 0, 0]


class TestSampsonError:
    def test_zero_on_the_epipolar_geometry(self):
        x0, x1, (R, t), f = _pair_frames()
        E = np.cross(np.eye(3), t / np.linalg.norm(t)) @ R  # [t]x R
        assert sampson_error(E, x0, x1).max() < 1e-12

    def test_matches_opencv_and_grows_with_the_move(self):
        x0, x1, (R, t), f = _pair_frames()
        E = np.cross(np.eye(3), t / np.linalg.norm(t)) @ R
        rng = np.random.default_rng(4)
        a, b = x0[0], x1[0] + rng.normal(0, 3 / f, (17, 2))
        ours = sampson_error(E, a, b)
        ref = [cv2.sampsonDistance(np.append(p, 1)[:, None], np.append(q, 1)[:, None], E)
               for p, q in zip(a, b)]  # OpenCV returns the squared distance
        assert np.allclose(ours ** 2, ref, rtol=1e-9)
        # moving a point d across its epipolar line gives a Sampson distance of at most d (it
        # is the smallest joint move of both points), here more than half of it
        line = E @ np.append(a[0], 1.0)
        normal = line[:2] / np.linalg.norm(line[:2])
        for d in (1.0, 4.0):
            e = sampson_error(E, a[0], x1[0, 0] + normal * d / f) * f
            assert 0.5 * d < e <= d + 1e-9


class TestFitEssential:
    def test_recovers_pose_with_noise_and_outliers(self):
        x0, x1, (R, t), f = _pair_frames(T=80, noise=1.0)
        p0, p1 = x0.reshape(-1, 2).copy(), x1.reshape(-1, 2).copy()
        rng = np.random.default_rng(1)
        bad = rng.random(len(p1)) < 0.2
        p1[bad] += rng.normal(0, 0.1, (bad.sum(), 2))  # 20 % gross outliers (~120 px)
        E, R_est, t_est, inl = fit_essential(p0, p1, 2.0 / f)
        assert _angle(R_est @ R.T) < 0.3  # 0.14° measured; 0.56° without the polish
        assert _dir_angle(t_est, t) < 0.5
        assert (inl & bad).sum() < 0.05 * bad.sum()  # outliers rejected
        assert (inl & ~bad).sum() > 0.9 * (~bad).sum()

    def test_too_few_points_gives_none(self):
        x0, x1, _, f = _pair_frames(T=1)
        assert fit_essential(x0[0, :7], x1[0, :7], 1.0 / f) is None


class TestFlips:
    def test_mirrored_frames_are_found_and_the_pose_kept(self):
        x0, x1, (R, t), f = _pair_frames(T=60, noise=1.0, seed=2)
        perm = H36M17.flip_permutation
        mirrored = np.zeros(60, bool)
        mirrored[10:30] = True  # a third of the frames seen "from behind"
        x1m = np.where(mirrored[:, None, None], x1[:, perm], x1)
        valid = np.ones((60, 17), bool)
        p = pair_pose(x0, x1m, valid, valid, perm, f, threshold_px=3.0)
        assert (p.flipped == mirrored).mean() > 0.95
        assert _angle(p.R @ R.T) < 0.3 and _dir_angle(p.t, t) < 1.0
        assert p.n_inliers > 0.8 * 60 * 17

    def test_frame_flips_against_the_true_geometry(self):
        x0, x1, (R, t), f = _pair_frames(T=20, noise=0.5, seed=3)
        perm = H36M17.flip_permutation
        E = np.cross(np.eye(3), t / np.linalg.norm(t)) @ R
        mirrored = np.arange(20) % 3 == 0
        x1m = np.where(mirrored[:, None, None], x1[:, perm], x1)
        valid = np.ones((20, 17), bool)
        assert (frame_flips(E, x0, x1m, valid, valid, perm, 10 / f) == mirrored).all()


class TestReliableJoints:
    def test_face_points_are_left_out(self):
        from epiflow.skeleton import get_joint_set
        js = get_joint_set("blazepose33")
        keep = correspondence_joints("blazepose33")
        assert keep.sum() == 22
        assert not any(keep[js.index(n)] for n in ("nose", "left_eye", "right_ear", "mouth_left"))
        assert all(keep[js.index(n)] for n in ("left_wrist", "right_heel", "left_foot_index"))
        assert correspondence_joints("h36m17").all()

    def test_confidence_and_one_frame_jumps(self):
        T, C, J = 30, 2, 17
        t = np.arange(T)[:, None, None, None]
        xy = np.broadcast_to(np.stack([500.0 + 3 * t, 300.0 + 0 * t], -1)[..., 0, :],
                             (T, C, J, 2)).copy()
        xy += np.random.default_rng(0).normal(0, 40, (1, 1, J, 2))  # a person ~150 px across
        conf = np.full((T, C, J), 0.9)
        conf[5, 0, 3] = 0.2
        xy[12, 1, 7] += 80  # one frame's jump of ~half the person's size
        mask = reliable_mask(xy, conf, np.ones(J, bool), min_confidence=0.5, max_jump=0.15)
        assert not mask[5, 0, 3] and not mask[12, 1, 7]
        assert mask.sum() == T * C * J - 2  # smooth motion (3 px per frame) is kept
