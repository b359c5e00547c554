"""Pose and rig metrics on cases whose answer is known by hand."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from epiflow.calibration.camera import CameraRig
from epiflow.datasets.cmu import load_packaged_clip
from epiflow.datasets.synthetic import make_rig
from epiflow.models.evaluate import pose_metrics
from epiflow.models.metrics import (auc, mpjpe, mpjpe_per_joint, n_mpjpe, p_mpjpe, p_mpjpe_torch,
                                    pck3d, procrustes_align, procrustes_align_torch, pss,
                                    rig_errors)


@pytest.fixture(scope="module")
def poses() -> np.ndarray:
    """(T, 17, 3) root-relative poses of the packaged CMU walk and jump, metres."""
    p = np.concatenate([load_packaged_clip(c).to_h36m().points for c in ("02_01", "02_04")])
    return p - p[:, :1]


def rotate(poses: np.ndarray, seed: int = 0) -> np.ndarray:
    R = Rotation.random(len(poses), random_state=seed).as_matrix()
    return np.einsum("nij,nkj->nki", R, poses)


class TestMpjpe:
    def test_shift_of_10_mm(self, poses):
        assert mpjpe(poses + [0.0, 0.006, 0.008], poses) == pytest.approx(0.010, abs=1e-12)

    def test_nan_joints_are_left_out(self, poses):
        pred = poses.copy()
        pred[:, 3] += [0.0, 0.0, 0.1]  # one joint 100 mm off ...
        assert mpjpe(pred, poses) == pytest.approx(0.1 / 17)
        pred[:, 3] = np.nan  # ... then missing
        assert mpjpe(pred, poses) == pytest.approx(0.0, abs=1e-12)

    def test_torch_in(self, poses):
        assert mpjpe(torch.tensor(poses) + 0.01, torch.tensor(poses)) == pytest.approx(
            0.01 * np.sqrt(3))

    def test_shape_mismatch(self, poses):
        with pytest.raises(ValueError, match=r"\(\.\.\., J, 3\)"):
            mpjpe(poses[:, :16], poses)


class TestMpjpePerJoint:
    def test_one_joint_off_and_one_missing(self, poses):
        pred = poses.copy()
        pred[:, 3] += [0.0, 0.06, 0.08]  # 100 mm off
        pred[::2, 5] = np.nan            # seen in half the poses
        pred[1::2, 5] += [0.03, 0.0, 0.04]  # and there 50 mm off
        per = mpjpe_per_joint(pred, poses)
        assert per.shape == (17,) and per[3] == pytest.approx(0.1) and per[5] == pytest.approx(0.05)
        assert np.delete(per, [3, 5]) == pytest.approx(0.0, abs=1e-12)
        pred[:, 7] = np.nan
        assert np.isnan(mpjpe_per_joint(pred, poses)[7])

    def test_its_mean_is_the_mpjpe_over_complete_poses(self, poses):
        pred = poses + np.random.default_rng(0).normal(0, 0.02, poses.shape)
        m = pose_metrics(pred, poses)
        assert np.mean(m["mpjpe_per_joint_mm"]) == pytest.approx(m["mpjpe_mm"], rel=1e-12)
        assert len(m["mpjpe_per_joint_mm"]) == 17


class TestNMpjpe:
    def test_scale_is_free(self, poses):
        assert n_mpjpe(2 * poses, poses) == pytest.approx(0.0, abs=1e-12)
        assert mpjpe(2 * poses, poses) > 0.1

    def test_shift_is_not(self, poses):
        assert n_mpjpe(poses + 0.05, poses) > 0.01


class TestPMpjpe:
    def test_similarity_is_free(self, poses):
        pred = 1.7 * rotate(poses) + [0.3, -1.0, 2.0]
        assert p_mpjpe(pred, poses) < 1e-9
        assert p_mpjpe(poses + [0.01, 0, 0], poses) < 1e-9

    def test_reflection_is_not(self, poses):
        assert p_mpjpe(poses * [1, 1, -1], poses) > 0.02

    def test_against_noise(self, poses):
        """Alignment absorbs a little of isotropic noise, never adds to it."""
        noisy = poses + np.random.default_rng(0).normal(0, 0.02, poses.shape)
        assert 0.7 * mpjpe(noisy, poses) < p_mpjpe(noisy, poses) < mpjpe(noisy, poses)

    def test_nan_joint(self, poses):
        pred = 1.3 * rotate(poses, 1)
        pred[:, [2, 9]] = np.nan
        pred[:, 5] += 5.0  # far off before the alignment ...
        pred[:, 5] = np.nan  # ... but missing
        assert p_mpjpe(pred, poses) < 1e-9


class TestPMpjpeTorch:
    """The roma (torch) Procrustes gives the numpy one's numbers, on the tensors' device."""

    @staticmethod
    def holed(seed: int = 0, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        pred, gt = rng.normal(0, 0.3, (n, 17, 3)), rng.normal(0, 0.3, (n, 17, 3))
        pred[5:][rng.random((n - 5, 17)) < 0.25] = np.nan
        gt[5:][rng.random((n - 5, 17)) < 0.25] = np.nan
        pred[0, 3:] = gt[1, :14] = np.nan  # exactly 3 joints
        pred[2, 2:] = gt[3, 1:] = np.nan  # too few: NaN
        pred[4] = 0.0  # collapsed to a point: scale 0, every joint at gt's centroid
        return pred, gt

    def test_random_poses_match_numpy(self):
        rng = np.random.default_rng(1)
        pred, gt = rng.normal(0, 0.3, (2, 500, 17, 3))
        ours = p_mpjpe_torch(torch.tensor(pred), torch.tensor(gt))
        assert ours.dtype == torch.float64 and ours.ndim == 0
        assert float(ours) == pytest.approx(p_mpjpe(pred, gt), abs=1e-6)
        assert np.allclose(procrustes_align_torch(torch.tensor(pred), torch.tensor(gt)).numpy(),
                           procrustes_align(pred, gt), atol=1e-6)

    def test_nan_holed_poses_match_numpy(self):
        pred, gt = self.holed()
        ours = procrustes_align_torch(torch.tensor(pred), torch.tensor(gt)).numpy()
        ref = procrustes_align(pred, gt)
        assert np.array_equal(np.isnan(ours), np.isnan(ref))
        assert np.isnan(ours[[2, 3]]).all() and not np.isnan(ours[[0, 1, 4]]).any()
        assert np.nanmax(np.abs(ours - ref)) < 1e-6
        assert float(p_mpjpe_torch(torch.tensor(pred), torch.tensor(gt))) == pytest.approx(
            p_mpjpe(pred, gt), abs=1e-6)

    def test_per_pose_and_valid_mask(self):
        pred, gt = self.holed(2)
        per_pose = p_mpjpe_torch(torch.tensor(pred), torch.tensor(gt), reduction="none").numpy()
        assert per_pose.shape == (len(pred),) and np.isnan(per_pose[[2, 3]]).all()
        for i in (0, 1, 4, 5):
            assert per_pose[i] == pytest.approx(p_mpjpe(pred[i], gt[i]), abs=1e-6)
        # ``valid`` leaves joints out as NaN does; leading dimensions are kept
        valid = np.random.default_rng(3).random(pred.shape[:2]) < 0.8
        masked = np.where(valid[..., None], pred, np.nan)
        ours = p_mpjpe_torch(torch.tensor(pred).reshape(3, 100, 17, 3),
                             torch.tensor(gt).reshape(3, 100, 17, 3),
                             torch.tensor(valid).reshape(3, 100, 17), reduction="none")
        assert ours.shape == (3, 100)
        assert np.allclose(ours.numpy().ravel(), p_mpjpe_torch(
            torch.tensor(masked), torch.tensor(gt), reduction="none").numpy(), equal_nan=True)

    def test_similarity_is_free(self, poses):
        pred = 1.7 * rotate(poses) + [0.3, -1.0, 2.0]
        assert float(p_mpjpe_torch(torch.tensor(pred), torch.tensor(poses))) < 1e-9
        aligned = procrustes_align_torch(torch.tensor(pred), torch.tensor(poses)).numpy()
        assert np.abs(aligned - poses).max() < 1e-9
        # float32 in, float32 out, to float32 precision
        ours = p_mpjpe_torch(torch.tensor(pred).float(), torch.tensor(poses).float())
        assert ours.dtype == torch.float32 and float(ours) < 1e-5

    def test_reflection_is_not(self, poses):
        pose = torch.tensor(poses)
        assert float(p_mpjpe_torch(pose * pose.new_tensor([1, 1, -1]), pose)) > 0.02

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    def test_cuda(self):
        pred, gt = self.holed(4)
        out = p_mpjpe_torch(torch.tensor(pred, device="cuda"), torch.tensor(gt, device="cuda"),
                            reduction="none")
        assert out.device.type == "cuda"
        ref = p_mpjpe_torch(torch.tensor(pred), torch.tensor(gt), reduction="none")
        assert np.allclose(out.cpu().numpy(), ref.numpy(), atol=1e-9, equal_nan=True)


class TestPckAuc:
    def test_pck_counts_joints_within_150_mm(self, poses):
        pred = poses.copy()
        pred[:, :4] += [0.0, 0.2, 0.0]  # 4 of 17 joints 200 mm off
        pred[:, 4:6] += [0.0, 0.0, 0.149]  # 2 joints just inside
        assert pck3d(pred, poses) == pytest.approx(13 / 17)

    def test_auc(self, poses):
        assert auc(poses, poses) == pytest.approx(1.0)
        # every joint 100 mm off: within the thresholds 100, 105, ..., 150 mm: 11 of 31
        assert auc(poses + [0.0, 0.1, 0.0], poses) == pytest.approx(11 / 31)


class TestPss:
    def test_perfect_up_to_scale_and_shift(self, poses):
        assert pss(1.5 * poses + 0.2, poses, k=50) == 1.0

    def test_two_families_swapped(self, poses):
        """Two clearly different pose families, k = 2: predicting the other family scores 0."""
        a, b = poses[:40], rotate(poses[:40], seed=3)
        gt = np.concatenate([np.repeat(a[:1], 40, 0), np.repeat(b[:1], 40, 0)])
        pred = np.concatenate([gt[40:], gt[:40]])
        assert pss(pred, gt, k=2) == 0.0
        assert pss(gt, gt, k=2) == 1.0

    def test_wrong_poses_score_low(self, poses):
        shuffled = poses[np.random.default_rng(0).permutation(len(poses))]
        assert pss(shuffled, poses, k=50) < 0.3

    def test_seeded(self, poses):
        noisy = poses + np.random.default_rng(1).normal(0, 0.03, poses.shape)
        assert pss(noisy, poses, k=50, seed=4) == pss(noisy, poses, k=50, seed=4)

    def test_needs_k_poses(self, poses):
        with pytest.raises(ValueError, match="k=100"):
            pss(poses[:50], poses[:50], k=100)


def yawed(rig: CameraRig, index: int, degrees: float) -> CameraRig:
    """The rig with camera ``index`` turned about its own vertical (image y) axis, same centre."""
    cam = rig[index]
    R = Rotation.from_euler("y", degrees, degrees=True).as_matrix() @ cam.R
    cams = list(rig)
    cams[index] = cam.replace(R=R, t=-R @ cam.center)
    return CameraRig(cams)


class TestRigErrors:
    def test_similarity_is_free(self):
        ref = make_rig(5, layout="random", seed=2)
        R = Rotation.from_euler("zyx", [40, -10, 25], degrees=True).as_matrix()
        est = ref.transformed(scale=0.37, R=R, t=np.array([1.0, -2.0, 0.5]))
        err = rig_errors(est, ref)
        for key in ("rotation_deg_max", "baseline_deg_max", "distance_ratio_max_dev",
                    "focal_rel_max", "position_m_max"):
            assert err[key] < 1e-6, key
        assert err["scale"] == pytest.approx(1 / 0.37)

    def test_one_camera_yawed_by_5_degrees(self):
        ref = make_rig(4, height=1.0, seed=0)  # level cameras: baselines orthogonal to the yaw axis
        err = rig_errors(yawed(ref, 2, 5.0), ref)
        for (i, j), rot, base in zip(err["pairs"], err["rotation_deg"], err["baseline_deg"]):
            assert rot == pytest.approx(5.0 if 2 in (i, j) else 0.0, abs=1e-6)
            # t_ij lives in camera j's frame: it turns with camera j only
            assert base == pytest.approx(5.0 if j == 2 else 0.0, abs=1e-6)
        assert err["position_m_max"] < 1e-9 and err["distance_ratio_max_dev"] < 1e-9

    def test_focal_and_position(self):
        ref = make_rig(4, seed=1)
        cams = list(ref)
        K = cams[1].K.copy()
        K[:2, :2] *= 1.1
        cams[1] = cams[1].replace(K=K)
        c = cams[3].center + [0.3, 0.0, 0.0]
        cams[3] = cams[3].replace(t=-cams[3].R @ c)
        err = rig_errors(CameraRig(cams), ref)
        np.testing.assert_allclose(err["focal_rel"], [0, 0.1, 0, 0], atol=1e-12)
        assert err["position_m"][3] > 0.1 and err["distance_ratio_max_dev"] > 0.02

    def test_camera_count_must_match(self):
        with pytest.raises(ValueError, match="same cameras"):
            rig_errors(make_rig(3), make_rig(4))
