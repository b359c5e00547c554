"""triangulate(): accuracy, robustness, weights, types, every bad input, and OpenCV agreement."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from epiflow.calibration.camera import Camera, CameraRig
from epiflow.calibration.triangulation import Reason, triangulate, triangulate_linear
from epiflow.datasets.synthetic import make_rig


def _scene(n=2000, n_cameras=4, noise_px=0.0, distortion=0.0, seed=0):
    """(rig, true points (N, 3), observations (C, N, 2)) in a 2 m cube at the rig's target."""
    rig = make_rig(n_cameras, distortion=distortion, seed=seed)
    rng = np.random.default_rng(seed)
    X = rng.uniform([-1, -1, 0], [1, 1, 2], (n, 3))
    uv = rig.project(X) + rng.normal(0, noise_px, (n_cameras, n, 2))
    return rig, X, uv


def _err(points, X):
    return np.linalg.norm(points - X, axis=-1)


class TestAccuracy:
    @pytest.mark.parametrize("robust", [False, True])
    def test_exact_observations_give_exact_points(self, robust):
        rig, X, uv = _scene(distortion=0.3)  # strong lens distortion (k1 up to ±0.3)
        tri = triangulate(rig, uv, robust=robust)
        assert _err(tri.points, X).max() < 1e-9
        assert np.nanmax(tri.reproj_error) < 1e-6
        assert (tri.reason == Reason.OK).all() and tri.views.all() and (tri.n_views == 4).all()

    def test_noise_gives_the_error_geometry_predicts(self):
        rig, X, uv = _scene(noise_px=1.0, distortion=0.05)
        tri = triangulate(rig, uv, robust=False)
        # 1 px at ~5 m with f = 1200 px is ~4 mm per view; four views: a few mm
        assert np.median(_err(tri.points, X)) < 0.004
        # the reprojection error of the fit stays below the noise (it absorbs 3 of 8 dof)
        assert 0.5 < np.median(tri.reproj_error) < 1.2

    def test_shapes_follow_the_input(self):
        rig, X, uv = _scene(n=60)
        tri = triangulate(rig, uv.reshape(4, 3, 20, 2), np.ones((4, 3, 20)))
        assert tri.points.shape == (3, 20, 3) and tri.views.shape == (4, 3, 20)
        assert tri.weight.shape == tri.reproj_error.shape == tri.reason.shape == (3, 20)
        assert _err(tri.points.reshape(-1, 3), X).max() < 1e-9

    def test_refine_lowers_the_weighted_pixel_error(self):
        rig, X, uv = _scene(n=500, noise_px=3.0, distortion=0.3, seed=1)
        conf = np.random.default_rng(1).uniform(0.2, 1.0, (4, 500))
        plain = triangulate(rig, uv, conf, robust=False)
        refined = triangulate(rig, uv, conf, robust=False, refine=True)

        def cost(t):
            return (conf * t.view_error ** 2).sum(0)
        assert (cost(refined) <= cost(plain) + 1e-9).all()
        assert cost(refined).sum() < cost(plain).sum()

    def test_matches_opencv_for_two_views(self):
        rig, X, uv = _scene(n=300, noise_px=0.5)
        rig, uv = rig.subset([0, 1]), uv[:2]  # neighbours on the ring: 90 degrees apart
        P = rig.projection_matrices()
        h = cv2.triangulatePoints(P[0], P[1], uv[0].T.copy(), uv[1].T.copy())
        ref = (h[:3] / h[3]).T
        ours = triangulate(rig, uv, robust=False)
        # two linear methods with different costs: they differ far less than either errs
        differ = _err(ours.points, ref)
        assert np.median(differ) < 0.1 * np.median(_err(ours.points, X)) and differ.max() < 0.0015
        ref_error = np.linalg.norm(rig.project(ref) - uv, axis=-1).mean()
        assert ours.view_error.mean() <= ref_error + 1e-6  # ours minimises the pixel error
        exact_uv = rig.project(X)
        h = cv2.triangulatePoints(P[0], P[1], exact_uv[0].T.copy(), exact_uv[1].T.copy())
        exact = triangulate(rig, exact_uv, robust=False)
        assert _err(exact.points, (h[:3] / h[3]).T).max() < 1e-7


class TestTypes:
    def test_numpy_in_numpy_out(self):
        rig, X, uv = _scene(n=50)
        tri = triangulate(rig, uv)
        assert isinstance(tri.points, np.ndarray) and tri.points.dtype == np.float64
        assert tri.views.dtype == bool and tri.reason.dtype == np.int8

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_torch_in_torch_out(self, dtype):
        rig, X, uv = _scene(n=200, distortion=0.1)
        tri = triangulate(rig, torch.as_tensor(uv, dtype=dtype))
        assert isinstance(tri.points, torch.Tensor) and tri.points.dtype == dtype
        assert isinstance(tri.views, torch.Tensor) and tri.views.dtype == torch.bool
        bound = 1e-9 if dtype == torch.float64 else 2e-3  # float32 pixels: ~1e-4 px rounding
        assert _err(tri.points.double().numpy(), X).max() < bound

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    def test_cuda(self):
        rig, X, uv = _scene(n=200, distortion=0.1)
        tri = triangulate(rig, torch.as_tensor(uv, device="cuda"))
        assert tri.points.device.type == "cuda"
        assert _err(tri.points.cpu().numpy(), X).max() < 1e-9


class TestRobust:
    def test_robust_beats_plain_under_outliers(self):
        rig, X, uv = _scene(n=3000, n_cameras=5, noise_px=2.0, seed=2)
        clean = np.median(_err(triangulate(rig, uv).points, X))
        rng = np.random.default_rng(2)
        outlier = rng.random((5, 3000)) < 0.15  # 60-300 px off, in 15% of the views
        shift = rng.uniform(60, 300, (5, 3000, 1)) * _unit(rng.normal(size=(5, 3000, 2)))
        uv = np.where(outlier[..., None], uv + shift, uv)
        plain = triangulate(rig, uv, robust=False)
        robust = triangulate(rig, uv)
        e_plain, e_robust = _err(plain.points, X), _err(robust.points, X)
        assert np.nanmean(e_robust) < 0.2 * np.nanmean(e_plain)
        assert np.nanmedian(e_robust) < 1.15 * clean
        # with at most two bad views of five the good ones always outnumber them
        assert np.nanmean(e_robust[outlier.sum(0) <= 2]) < 1.6 * clean
        # the outliers are the views left out (where they are a minority)
        few = outlier.sum(0) <= 2
        assert (robust.views & outlier)[:, few].sum() < 0.01 * outlier[:, few].sum()
        assert (~robust.views & ~outlier)[:, few].sum() < 0.01 * (~outlier[:, few]).sum()

    def test_weight_tracks_the_true_error(self):
        rig, X, uv = _scene(n=3000, noise_px=2.0, seed=3)
        rng = np.random.default_rng(3)
        drop = rng.random((4, 3000)) < 0.3  # points seen by 2, 3 or 4 views
        uv[drop] = np.nan
        tri = triangulate(rig, uv)
        ok = np.isfinite(tri.points).all(-1)
        rho = spearmanr(tri.weight[ok], _err(tri.points, X)[ok]).statistic
        assert rho < -0.4
        two, four = ok & (tri.n_views == 2), ok & (tri.n_views == 4)
        assert np.median(tri.weight[two]) < np.median(tri.weight[four])
        assert ((tri.weight >= 0) & (tri.weight <= 1)).all() and (tri.weight[~ok] == 0).all()


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class TestBadInput:
    def test_nan_keypoints_give_nan_points_with_a_reason(self):
        rig, X, uv = _scene(n=100)
        uv[1:, :30] = np.nan   # only camera 0 sees points 0-29
        uv[2:, 30:60] = np.nan  # cameras 0 and 1 see points 30-59
        tri = triangulate(rig, uv)
        assert np.isnan(tri.points[:30]).all() and (tri.reason[:30] == Reason.TOO_FEW_VIEWS).all()
        assert (tri.weight[:30] == 0).all() and np.isnan(tri.reproj_error[:30]).all()
        assert _err(tri.points[30:], X[30:]).max() < 1e-9
        assert (tri.n_views[30:60] == 2).all()

    def test_zero_confidence_everywhere(self):
        rig, X, uv = _scene(n=50)
        tri = triangulate(rig, uv, np.zeros((4, 50)))
        assert np.isnan(tri.points).all() and (tri.reason == Reason.TOO_FEW_VIEWS).all()
        assert (tri.weight == 0).all() and not tri.views.any()

    def test_a_camera_without_observations_changes_nothing(self):
        rig, X, uv = _scene(n=200, noise_px=2.0)
        uv[2] = np.nan
        full = triangulate(rig, uv)
        sub = triangulate(rig.subset([0, 1, 3]), uv[[0, 1, 3]])
        np.testing.assert_allclose(full.points, sub.points, atol=1e-9)
        assert not full.views[2].any() and np.isnan(full.view_error[2]).all()

    def test_camera_count_mismatch_is_a_clear_error(self):
        rig, X, uv = _scene(n=20)
        with pytest.raises(ValueError, match=r"C=4.*cam_01"):
            triangulate(rig, uv[:3])
        with pytest.raises(ValueError, match="confidence must have shape"):
            triangulate(rig, uv, np.ones((4, 19)))
        with pytest.raises(ValueError, match="numeric"):
            triangulate(rig, [["a"]])

    def test_coincident_cameras_are_degenerate_not_guessed(self):
        cam = make_rig(1, seed=4)[0]
        rig = CameraRig([cam, cam.replace(name="twin")])  # the same centre: parallel rays
        X = np.array([[0.1, 0.2, 1.0], [0.3, -0.2, 1.2]])
        tri = triangulate(rig, rig.project(X), robust=False)
        assert np.isnan(tri.points).all() and (tri.reason == Reason.DEGENERATE).all()

    def test_disagreeing_views_have_no_consensus(self):
        rig, X, uv = _scene(n=10)
        uv[1] += 300.0  # two views, far apart: no pair of them agrees
        tri = triangulate(rig.subset([0, 1]), uv[:2])
        assert np.isnan(tri.points).all() and (tri.reason == Reason.NO_CONSENSUS).all()

    def test_empty_input(self):
        rig = make_rig(3)
        tri = triangulate(rig, np.zeros((3, 0, 2)))
        assert tri.points.shape == (0, 3) and tri.weight.shape == (0,)


class TestLinear:
    def test_weights_matter_and_missing_views_are_left_out(self):
        rig, X, uv = _scene(n=100, n_cameras=3)
        P = torch.as_tensor(rig.projection_matrices())
        xy = torch.as_tensor(uv).clone()
        xy[2] += 20.0  # camera 2 is off
        full = triangulate_linear(P, xy, torch.ones(3, 100, dtype=torch.float64))
        light = triangulate_linear(P, xy, torch.tensor([1.0, 1.0, 0.01])[:, None].expand(3, 100)
                                   .double())
        assert _err(light.numpy(), X).mean() < 0.2 * _err(full.numpy(), X).mean()
        xy[1:, :10] = float("nan")
        out = triangulate_linear(P, xy, torch.ones(3, 100, dtype=torch.float64))
        assert torch.isnan(out[:10]).all() and torch.isfinite(out[10:]).all()

    @pytest.mark.parametrize("noise_px", [2.0, 100.0])
    def test_the_dlt_minimiser_as_eigh_finds_it(self, noise_px):
        """The smallest eigenvector comes from the adjugate (no per-point LAPACK call); it must
        be eigh's, also where the noise is as large as the geometry (those go to eigh)."""
        from epiflow.calibration.triangulation import _smallest_eigenvector
        rig, X, uv = _scene(n=2000, n_cameras=4)
        rng = np.random.default_rng(1)
        xy = torch.as_tensor(uv + rng.normal(0, noise_px, uv.shape))
        w = torch.as_tensor((rng.uniform(size=(4, 2000)) > 0.3).astype(float))
        P = torch.as_tensor(rig.projection_matrices())
        x = torch.nan_to_num(xy)
        rows = torch.cat([x[..., 0, None] * P[:, None, 2] - P[:, None, 0],
                          x[..., 1, None] * P[:, None, 2] - P[:, None, 1]]).transpose(0, 1)
        A = rows / rows.norm(dim=-1, keepdim=True) * w.repeat(2, 1).T[..., None]
        M = A.transpose(-1, -2) @ A
        ours, ref = _smallest_eigenvector(M), torch.linalg.eigh(M)[1][..., 0]
        sign = torch.sign((ours * ref).sum(-1, keepdim=True))
        enough = (w > 0).sum(0) >= 2
        assert (ours * sign - ref)[enough].abs().max() < 1e-6
        # a rank-deficient matrix (one view) gives eigh's answer, not zeros
        one = torch.zeros(1, 4, 4, dtype=torch.float64)
        one[0, 0, 0] = one[0, 1, 1] = 1.0
        assert torch.allclose(_smallest_eigenvector(one).abs(), torch.linalg.eigh(one)[1][..., 0]
                              .abs())


def test_a_camera_far_from_the_origin():
    """World coordinates around 1 km: the solver works in a frame centred on the cameras."""
    rig, X, uv = _scene(n=200, noise_px=0.0)
    far = rig.transformed(t=np.array([1000.0, -500.0, 0.0]))
    tri = triangulate(far, uv)
    assert _err(tri.points, X + [1000.0, -500.0, 0.0]).max() < 1e-6


def test_principal_point_and_skew_are_honoured():
    K = np.array([[900.0, 3.0, 400.0], [0, 950.0, 310.0], [0, 0, 1]])
    rig = make_rig(3, seed=5)
    rig = CameraRig(Camera(c.name, K, c.dist, c.R, c.t, c.size) for c in rig)
    X = np.random.default_rng(5).uniform(-0.5, 0.5, (50, 3)) + [0, 0, 1]
    tri = triangulate(rig, rig.project(X))
    assert _err(tri.points, X).max() < 1e-9
