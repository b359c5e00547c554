"""The training losses: values against independent computations, NaN masking, gradients."""
import numpy as np
import pytest
import torch

from epiflow.datasets.synthetic import cmu_capture
from epiflow.models import losses as L
from epiflow.models.metrics import mpjpe, n_mpjpe
from epiflow.skeleton import H36M17


@pytest.fixture(scope="module")
def capture():
    return cmu_capture("02_01", n_cameras=3, seed=1)


def _camera_poses(capture, frames=slice(0, 20)):
    """(C, T, J, 3) true poses in each camera's frame (absolute and root-relative)."""
    X = capture.points3d[frames]
    cam = np.einsum("cab,tjb->ctja", capture.rig.R, X) + capture.rig.t[:, None, None]
    return cam, cam - cam[:, :, :1]


class TestPseudoLabelLoss:
    def test_equals_mpjpe_with_unit_weights(self):
        rng = np.random.default_rng(0)
        pred, gt = rng.normal(size=(2, 16, 17, 3)) * 0.3
        loss = L.pseudo_label_loss(torch.tensor(pred), torch.tensor(gt), torch.ones(16, 17))
        assert float(loss) == pytest.approx(mpjpe(pred, gt), rel=1e-5)

    def test_nan_labels_are_masked_in_value_and_gradient(self):
        rng = np.random.default_rng(1)
        pred = torch.tensor(rng.normal(size=(4, 17, 3)), requires_grad=True)
        target = torch.tensor(rng.normal(size=(4, 17, 3)))
        target[0, 3] = float("nan")
        target[2, :, 1] = float("nan")  # a whole pose without labels
        weight = torch.ones(4, 17)
        loss = L.pseudo_label_loss(pred, target, weight)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()
        assert float(pred.grad[0, 3].abs().max()) == 0 and float(pred.grad[2].abs().max()) == 0
        keep = torch.isfinite(target).all(-1)
        expected = (pred - target).norm(dim=-1)[keep].mean()
        assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)

    def test_weights(self):
        pred = torch.zeros(1, 3, 3)
        target = torch.tensor([[[1.0, 0, 0], [0, 2.0, 0], [0, 0, 4.0]]])
        loss = L.pseudo_label_loss(pred, target, torch.tensor([[1.0, 3.0, 0.0]]))
        assert float(loss) == pytest.approx((1 * 1 + 3 * 2) / 4)
        assert float(L.pseudo_label_loss(pred, target, torch.zeros(1, 3))) == 0.0

    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match="weight must have shape"):
            L.pseudo_label_loss(torch.zeros(2, 17, 3), torch.zeros(2, 17, 3), torch.ones(2, 16))


def test_scale_invariant_loss_ignores_scale(capture):
    _, rel = _camera_poses(capture)
    gt = torch.tensor(rel[0])
    assert float(L.scale_invariant_loss(1.3 * gt, gt)) < 1e-5
    assert float(L.pseudo_label_loss(1.3 * gt, gt)) > 0.05
    noisy = 1.3 * gt + 0.02 * torch.randn_like(gt)
    assert float(L.scale_invariant_loss(noisy, gt)) == pytest.approx(
        n_mpjpe(noisy.numpy(), gt.numpy()), rel=1e-3)


def test_multiview_consistency_with_the_rig(capture):
    _, rel = _camera_poses(capture)
    p0, p1 = torch.tensor(rel[0]), torch.tensor(rel[1])
    R01, _ = capture.rig.relative_pose(0, 1)
    R = torch.tensor(R01).expand(len(p0), 3, 3)
    assert float(L.multiview_consistency_loss(p0, p1, R)) < 1e-5  # float32, sqrt guard: µm
    wrong = L.multiview_consistency_loss(p0, p1, torch.eye(3, dtype=p0.dtype).expand(len(p0), 3, 3))
    assert float(wrong) > 0.1


def test_reprojection_loss(capture):
    cam, rel = _camera_poses(capture)
    uv = torch.tensor(cam[0, ..., :2] / cam[0, ..., 2:])
    gt = torch.tensor(rel[0], requires_grad=True)
    assert float(L.reprojection_loss(gt.detach(), uv)) < 1e-5
    # a pose bent out of the rays: the right arm moved 20 cm along x
    bent = gt.detach().clone()
    bent[:, 14:17, 0] += 0.2
    assert float(L.reprojection_loss(bent, uv)) > 0.02
    uv_missing = uv.clone()
    uv_missing[:, 5] = float("nan")
    loss = L.reprojection_loss(gt, uv_missing)
    loss.backward()
    assert float(loss.detach()) < 1e-5 and torch.isfinite(gt.grad).all()


def test_bone_symmetry(capture):
    pairs = L.symmetric_bone_pairs(H36M17)
    assert len(pairs) == 6  # hip, thigh, shin; shoulder, upper arm, forearm
    _, rel = _camera_poses(capture)
    pose = torch.tensor(rel[0])
    base = float(L.bone_symmetry_loss(pose, H36M17))
    assert base < 0.01  # mocap skeletons are near symmetric
    longer = pose.clone()
    longer[:, 6] += 0.1 * (pose[:, 6] - pose[:, 5]) / (pose[:, 6] - pose[:, 5]).norm(dim=-1,
                                                                                      keepdim=True)
    assert float(L.bone_symmetry_loss(longer, H36M17)) == pytest.approx(base + 0.1 / 6, abs=2e-3)
