"""Camera and CameraRig: projection against OpenCV, undistortion, poses, gauge changes, errors."""
import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from epiflow.calibration import CalibrationError, Camera, CameraRig


def _rig(dist=(0.0, 0.0, 0.0, 0.0, 0.0), n=3, seed=0, skew=0.0):
    """n cameras about 4 m from the origin; OpenCV ignores skew, so it is 0 unless asked."""
    rng = np.random.default_rng(seed)
    cams = []
    for i in range(n):
        R = Rotation.from_rotvec(rng.normal(0, 0.3, 3)).as_matrix()
        K = [[900 + 50 * i, skew, 640 + i], [0, 905 + 50 * i, 360 - i], [0, 0, 1]]
        cams.append(Camera(f"cam{i}", K, dist, R, [0.1 * i, -0.2, 4.0], (1280, 720)))
    return CameraRig(cams)


STRONG = (-0.338, 0.0967, -0.00135, 0.00316, -0.00375)  # caliscope cam_0, a real wide lens


@pytest.mark.parametrize("dist", [(0, 0, 0, 0, 0), (0.1, -0.05, 0.001, -0.002, 0.01), STRONG])
def test_project_matches_opencv(dist):
    rig = _rig(dist)
    X = np.random.default_rng(1).normal(0, 0.5, (200, 3))
    uv = rig.project(X)
    assert uv.shape == (3, 200, 2)
    for c, cam in enumerate(rig):
        ref, _ = cv2.projectPoints(X, cam.rvec, cam.t, cam.K, cam.dist)
        assert np.abs(ref[:, 0] - uv[c]).max() < 1e-6


@pytest.mark.parametrize("dist", [(0.1, -0.05, 0.001, -0.002, 0.01), STRONG])
def test_undistort_inverts_distortion_and_matches_opencv(dist):
    rig = _rig(dist)
    X = np.random.default_rng(2).normal(0, 0.6, (500, 3))
    uv = rig.project(X)
    xy = rig.undistort(uv)
    truth = rig.points_in_cameras(X)
    truth = truth[..., :2] / truth[..., 2:]
    assert np.abs(xy - truth).max() < 1e-9
    cam = rig[0]
    ref = cv2.undistortPointsIter(uv[0][:, None], cam.K, cam.dist, None, None,
                                  (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12))
    assert np.abs(ref[:, 0] - xy[0]).max() < 1e-6


def test_torch_in_torch_out_and_gradients():
    rig = _rig(STRONG)
    X = torch.randn(5, 7, 3, dtype=torch.float64, requires_grad=True)
    uv = rig.project(X)
    assert isinstance(uv, torch.Tensor) and uv.shape == (3, 5, 7, 2)
    assert torch.autograd.gradcheck(lambda p: rig.project(p), (X[:1, :2].detach().requires_grad_(),))
    assert np.allclose(uv.detach().numpy(), rig.project(X.detach().numpy()))


def test_points_behind_a_camera_are_nan():
    rig = _rig()
    behind = rig[0].center - 2.0 * rig[0].R[2]  # two metres behind cam0's image plane
    assert np.isnan(rig.project(behind[None])[0]).all()


def test_poses_centres_and_projection_matrices():
    rig = _rig(skew=0.5)
    R01, t01 = rig.relative_pose(0, 1)
    X = np.random.default_rng(3).normal(0, 1, (10, 3))
    cams = rig.points_in_cameras(X)
    assert np.allclose(cams[0] @ R01.T + t01, cams[1])
    assert np.allclose(rig.centers[1], -rig[1].R.T @ rig[1].t)
    assert np.allclose(rig.points_in_cameras(rig.centers[2][None])[2], 0, atol=1e-12)
    Xh = np.hstack([X, np.ones((10, 1))])
    p = Xh @ rig.projection_matrices()[1].T
    assert np.allclose(p[:, :2] / p[:, 2:], rig.project(X)[1])


def test_changing_the_world_frame_keeps_the_images():
    rig = _rig(STRONG, skew=0.5)
    X = np.random.default_rng(4).normal(0, 0.5, (50, 3))
    s, R, t = 2.5, Rotation.from_rotvec([0.3, -1.0, 0.2]).as_matrix(), np.array([1.0, -2.0, 0.5])
    moved = rig.transformed(s, R, t)
    assert np.abs(moved.project(s * X @ R.T + t) - rig.project(X)).max() < 1e-8
    assert np.allclose(moved.centers, s * rig.centers @ R.T + t)


def test_rig_container_and_errors():
    rig = _rig()
    assert rig.names == ["cam0", "cam1", "cam2"] and rig["cam1"] is rig[1]
    assert rig.subset(["cam2", "cam0"]).names == ["cam2", "cam0"]
    with pytest.raises(KeyError, match="no camera 'cam9'.*cam0, cam1, cam2"):
        rig["cam9"]
    with pytest.raises(CalibrationError, match="unique"):
        CameraRig([rig[0], rig[0]])
    with pytest.raises(CalibrationError, match=r"'bad': K must have shape \(3, 3\)"):
        Camera("bad", np.eye(2))
    with pytest.raises(CalibrationError, match="'nan': t contains NaN"):
        Camera("nan", np.eye(3), t=[0, np.nan, 0])
    with pytest.raises(CalibrationError, match="not a rotation"):
        Camera("skew", np.eye(3), R=2 * np.eye(3))
    with pytest.raises(ValueError, match=r"\(C=3, \.\.\., 2\)"):
        rig.undistort(np.zeros((2, 5, 2)))
    assert np.allclose(Camera("four", np.eye(3), dist=[0.1, 0.2, 0.3, 0.4]).dist,
                       [0.1, 0.2, 0.3, 0.4, 0.0])
