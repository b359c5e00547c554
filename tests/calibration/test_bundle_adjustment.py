"""Bundle adjustment: analytic Jacobian, round trips with and without intrinsics, robustness."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize._numdiff import approx_derivative
from scipy.spatial.transform import Rotation

import epiflow.calibration.bundle_adjustment as ba
from epiflow.calibration.camera import CameraRig
from epiflow.datasets.synthetic import make_rig
from epiflow.models.metrics import rig_errors


def _scene(n=400, noise_px=0.5, distortion=0.0, seed=0, n_cameras=4):
    rig = make_rig(n_cameras, distortion=distortion, seed=seed, radius=4.0)
    rng = np.random.default_rng(seed)
    X = rng.uniform([-1, -1, 0], [1, 1, 2], (n, 3))
    uv = rig.project(X) + rng.normal(0, noise_px, (n_cameras, n, 2))
    return rig, X, uv


def _perturbed(rig: CameraRig, deg=2.0, metres=0.1, focal=1.0, seed=1) -> CameraRig:
    """Poses turned by ``deg`` and moved by ``metres`` (camera 0's kept), focal lengths × ``focal``
    (fx and fy alone: the principal point stays)."""
    rng = np.random.default_rng(seed)
    cams = []
    for k, cam in enumerate(rig):
        K = cam.K.copy()
        K[0, 0], K[1, 1] = K[0, 0] * focal, K[1, 1] * focal
        if k == 0:  # the gauge camera stays
            cams.append(cam.replace(K=K))
            continue
        dR = Rotation.from_rotvec(np.radians(deg) * rng.normal(size=3) / np.sqrt(3)).as_matrix()
        cams.append(cam.replace(R=dR @ cam.R, t=cam.t + rng.normal(0, metres, 3), K=K))
    return CameraRig(cams)


class TestJacobian:
    def test_analytic_matches_finite_differences(self):
        rig, X, uv = _scene(n=30, distortion=0.2)
        refine = ("focal", "principal_point", "k1")
        layout = ba._Layout(rig, 30, refine, fix_first=True)
        cam_idx, pt_idx = np.nonzero(np.ones((4, 30), bool))
        problem = ba._Problem(layout, cam_idx, pt_idx, uv[cam_idx, pt_idx])
        rng = np.random.default_rng(3)
        x = layout.pack(X) + rng.normal(0, 1e-3, layout.size)
        sw = rng.uniform(0.5, 1.0, len(cam_idx))
        analytic = problem.jacobian(x, sw).toarray()
        numeric = approx_derivative(lambda p: (problem.errors(p) * sw[:, None]).ravel(), x,
                                    method="3-point")
        assert np.abs(analytic - numeric).max() < 1e-5 * np.abs(numeric).max()
        assert np.abs(analytic[:, :6]).max() == 0  # camera 0's pose is the gauge

    def test_observations_in_any_order(self):
        """The problem sorts its observations by camera (per-camera products); given shuffled,
        it keeps each observation with its own camera and point."""
        rig, X, uv = _scene(n=30, distortion=0.2)
        layout = ba._Layout(rig, 30, ("focal",), fix_first=True)
        cam_idx, pt_idx = np.nonzero(np.ones((4, 30), bool))
        shuffle = np.random.default_rng(5).permutation(len(cam_idx))
        ordered = ba._Problem(layout, cam_idx, pt_idx, uv[cam_idx, pt_idx])
        shuffled = ba._Problem(layout, cam_idx[shuffle], pt_idx[shuffle],
                               uv[cam_idx[shuffle], pt_idx[shuffle]])
        x = layout.pack(X) + np.random.default_rng(6).normal(0, 1e-3, layout.size)
        e1, Jc1, Jp1 = ordered.blocks(x)
        e2, Jc2, Jp2 = shuffled.blocks(x)
        back = np.argsort(shuffled.order)  # shuffled rows back in the shuffled input's order
        assert np.abs(e1).max() > 0.1  # not a trivial comparison
        for a, b in ((e1, e2), (Jc1, Jc2), (Jp1, Jp2)):
            np.testing.assert_allclose(a[shuffle], b[back], rtol=1e-12, atol=1e-12)


class TestRoundTrip:
    def test_poses_and_points_from_a_perturbed_start(self):
        rig, X, uv = _scene()
        start = _perturbed(rig)
        noisy_X = X + np.random.default_rng(2).normal(0, 0.05, X.shape)
        res = ba.bundle_adjust(start, uv, np.ones((4, 400)), noisy_X, loss="linear")
        err = rig_errors(res.rig, rig)
        assert err["rotation_deg_max"] < 0.05 and err["baseline_deg_max"] < 0.1
        assert np.nanmedian(res.errors_px) < 0.7 and res.success  # 0.5 px noise
        # from the start, the errors were ~2° and tens of pixels
        assert rig_errors(start, rig)["rotation_deg_max"] > 1.0

    def test_focal_lengths_from_a_20_percent_wrong_guess(self):
        rig, X, uv = _scene(n=600, seed=4, n_cameras=5)
        start = _perturbed(rig, deg=1.0, metres=0.05, focal=1.2, seed=5)
        res = ba.bundle_adjust(start, uv, np.ones((5, 600)), X, refine=("focal",))
        err = rig_errors(res.rig, rig)
        assert err["focal_rel_max"] < 0.01
        assert err["rotation_deg_max"] < 0.1

    def test_scipy_solver_agrees_with_the_schur_solver(self):
        rig, X, uv = _scene(n=150, seed=6)
        start = _perturbed(rig, deg=1.0, metres=0.05, seed=7)
        lm = ba.bundle_adjust(start, uv, np.ones((4, 150)), X)
        sp = ba.bundle_adjust(start, uv, np.ones((4, 150)), X, solver="scipy",
                              max_iterations=20)
        assert rig_errors(lm.rig, sp.rig)["rotation_deg_max"] < 0.01
        assert rig_errors(lm.rig, rig)["rotation_deg_max"] < 0.05


class TestRobustness:
    def test_cauchy_loss_shrugs_off_gross_outliers_that_spoil_least_squares(self):
        rig, X, uv = _scene(seed=8)
        bad = np.random.default_rng(9).random((4, 400)) < 0.1
        uv = uv.copy()
        uv[bad] += np.random.default_rng(10).uniform(40, 150, (bad.sum(), 2))
        start = _perturbed(rig, seed=11)
        robust = ba.bundle_adjust(start, uv, np.ones((4, 400)), X, loss="cauchy")
        plain = ba.bundle_adjust(start, uv, np.ones((4, 400)), X, loss="linear")
        assert rig_errors(robust.rig, rig)["rotation_deg_max"] < 0.1
        assert rig_errors(plain.rig, rig)["rotation_deg_max"] > \
            3 * rig_errors(robust.rig, rig)["rotation_deg_max"]

    def test_missing_observations_and_lonely_points_are_left_out(self):
        rig, X, uv = _scene(n=100, seed=12)
        w = np.ones((4, 100))
        w[1:, :5] = 0  # points 0..4 seen by camera 0 only
        uv = uv.copy()
        uv[2, 10] = np.nan
        res = ba.bundle_adjust(rig, uv, w, X)
        assert np.isnan(res.points[:5]).all() and np.isfinite(res.points[5:]).all()
        assert np.isnan(res.errors_px[2, 10]) and np.isnan(res.errors_px[:, :5]).all()

    @pytest.mark.parametrize("loss", ["huber", "cauchy", "soft_l1", "linear"])
    def test_weights_are_the_loss_derivative_over_the_error(self, loss):
        e = np.array([0.5, 2.0, 7.0, 30.0])
        h = 1e-6
        slope = (ba.robust_cost(e + h, loss, 3.0) - ba.robust_cost(e - h, loss, 3.0)) / (2 * h)
        assert np.allclose(ba.robust_weights(e, loss, 3.0) * e, slope, rtol=1e-5)

    def test_bad_shapes_and_options_are_refused(self):
        rig, X, uv = _scene(n=10)
        with pytest.raises(ValueError, match="points3d"):
            ba.bundle_adjust(rig, uv, np.ones((4, 10)), X[:9])
        with pytest.raises(ValueError, match="refine"):
            ba.bundle_adjust(rig, uv, np.ones((4, 10)), X, refine=("skew",))
        with pytest.raises(ValueError, match="loss"):
            ba.bundle_adjust(rig, uv, np.ones((4, 10)), X, loss="tukey")
