"""The diffusion lifter (D3DP): N hypotheses from seeded noise, whose spread shrinks as it
learns; JPMA picks per joint the hypothesis that reprojects nearest the 2D (a constructed case);
the bound calibration; training through the trainer with the labels' weights; config errors;
a checkpoint round trip with the calibrated bound."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from epiflow.config import ConfigError, from_dict
from epiflow.models.checkpoint import load_model, save_checkpoint
from epiflow.models.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from epiflow.models.data import PoseDataset, normalize_keypoints, prepare_session
from epiflow.models.diffusion import (DiffusionConfig, DiffusionLifter, cosine_alpha_bar, jpma,
                                      uv_from_input)
from epiflow.models.train import build_data, compute_loss, fit


def _model(**kw) -> DiffusionLifter:
    torch.manual_seed(0)
    cfg = dict(dim=32, depth=2, heads=4, hypotheses=6, steps=4)
    return DiffusionLifter(DiffusionConfig(**{**cfg, **kw}), n_joints=17)


@pytest.fixture(scope="module")
def tiny(oracle):
    """60 frames of CMU 02_01 seen by camera 0: inputs (60, 1, 17, 2), true poses (60, 17, 3)."""
    ds = PoseDataset([prepare_session(oracle("02_01"), "gt")], window=1)
    batch = ds.__getitems__(np.flatnonzero(ds.index[:, 2] == 0)[:60])
    return batch["x"][:, 0], batch["y"][:, 0]


class TestSampler:
    def test_hypotheses_shapes_root_and_repeatability(self, tiny):
        model, x = _model().eval(), tiny[0][:4]
        out = model.sample(x)
        assert out.hypotheses.shape == (4, 6, 17, 3) and out.pose.shape == (4, 17, 3)
        assert out.sigma.shape == out.bound.shape == out.choice.shape == (4, 17)
        assert out.hypotheses[:, :, 0].abs().max() == 0          # root-relative
        assert torch.equal(model(x), model(x))                    # seeded draws
        assert model.hypotheses(x, 3).shape == (4, 3, 17, 3)

    def test_sequence_uncertainty_for_adaptation(self, tiny):
        """What test-time adaptation asks of a model (``predict_with_uncertainty``): a pose and
        the hypotheses' RMS distance from their mean per frame and joint, each frame in its
        window (here 3 frames; edges repeated)."""
        from epiflow.models.adapt import predict_with_uncertainty
        model = _model(window=3).eval()
        seq = tiny[0][:, 0].numpy()                                # (60, 17, 2)
        pose, spread = predict_with_uncertainty(model, seq)
        assert pose.shape == (60, 17, 3) and spread.shape == (60, 17)
        idx = np.clip(np.arange(5)[:, None] + np.arange(3) - 1, 0, 59)
        out = model.sample(torch.from_numpy(seq[idx]))
        assert np.allclose(pose[:5], out.pose.numpy(), atol=1e-5)
        assert np.allclose(spread[:5], out.sigma.numpy() * 3 ** 0.5, atol=1e-5)
        assert spread[:, 1:].min() > 0

    def test_schedule_runs_from_noise_to_signal(self):
        a = cosine_alpha_bar(1000)
        assert a[0] > 0.999 and a[-1] < 1e-3 and bool((a[1:] <= a[:-1]).all())

    def test_spread_shrinks_and_error_falls_when_trained(self, tiny, one_thread):
        x, y = tiny
        model = _model()
        before = model.eval().sample(x)
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
        model.train()
        for _ in range(250):
            loss = (model(x, target=y) - y).norm(dim=-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        after = model.eval().sample(x)
        spread = lambda o: 1000 * float(o.sigma[:, 1:].mean())  # noqa: E731
        err = lambda o: 1000 * float((o.pose - y).norm(dim=-1).mean())  # noqa: E731
        assert spread(after) < 0.3 * spread(before), (spread(before), spread(after))
        assert err(after) < 60 < err(before), (err(before), err(after))
        # the calibrated bound holds on the data it was fitted on with the stated probability
        model.calibrate_bound(x, y, torch.ones(y.shape[:2]))
        out = model.sample(x)
        inside = ((out.pose - y).norm(dim=-1) <= out.bound)[:, 1:].float().mean()
        assert abs(float(inside) - 0.9) < 0.02


class TestJPMA:
    def _scene(self):
        """A real pose 4 m in front of the camera, two hypotheses each wrong on other joints
        (moved 15 cm sideways, which the 2D sees)."""
        from tests.models.conftest import oracle_session
        truth = torch.as_tensor(oracle_session("02_01").gt3d[10], dtype=torch.float32)
        pose = truth - truth[0]
        uv = (pose + torch.tensor([0.2, -0.1, 4.0]))
        uv = uv[:, :2] / uv[:, 2:]
        a, b = pose.clone(), pose.clone()
        wrong_a, wrong_b = [3, 6, 13, 16], [2, 5, 11, 14]
        a[wrong_a, 0] += 0.15
        b[wrong_b, 0] -= 0.15
        return pose, uv, torch.stack([a, b])[None], wrong_a, wrong_b

    def test_picks_the_hypothesis_that_reprojects_nearest(self):
        pose, uv, hyps, wrong_a, wrong_b = self._scene()
        chosen, choice = jpma(hyps, uv[None], torch.ones(1, 17))
        assert choice[0, wrong_a].tolist() == [1] * 4 and choice[0, wrong_b].tolist() == [0] * 4
        assert float((chosen[0] - pose).norm(dim=-1).max()) < 1e-5
        assert float((hyps.mean(1)[0] - pose).norm(dim=-1).max()) > 0.07  # the mean is off

    def test_the_same_from_the_models_normalised_input(self):
        pose, uv, hyps, wrong_a, wrong_b = self._scene()
        x = torch.from_numpy(normalize_keypoints(uv.numpy()))[None]
        uv2, seen = uv_from_input(x, root=0)
        _, choice = jpma(hyps, uv2, seen)
        assert choice[0, wrong_a].tolist() == [1] * 4 and choice[0, wrong_b].tolist() == [0] * 4

    def test_an_unseen_joint_takes_the_mean(self):
        pose, uv, hyps, wrong_a, _ = self._scene()
        seen = torch.ones(1, 17)
        seen[0, wrong_a[0]] = 0
        chosen, _ = jpma(hyps, uv[None], seen)
        assert torch.allclose(chosen[0, wrong_a[0]], hyps[0, :, wrong_a[0]].mean(0))


def test_trains_through_the_trainer_with_label_weights(oracle, tmp_path, one_thread):
    """The trainer hands the labels to the model and, at the end, fits the bound on the
    validation labels; a label with weight 0 (NaN here) neither breaks the loss nor reaches the
    gradients; the checkpoint keeps the calibrated bound."""
    cfg = ExperimentConfig(data=DataConfig(store="unused", val_sessions=("02_04",)),
                           model=ModelConfig(name="diffusion", diffusion=DiffusionConfig(
                               dim=16, depth=1, heads=2, hypotheses=3, steps=2)),
                           train=TrainConfig(epochs=1, max_steps=4, batch_size=64, threads=1,
                                             progress=False, device="cpu"))
    data = build_data(cfg, [oracle("02_01", label_noise_m=0.01), oracle("02_04", seed=1)])
    result = fit(cfg, tmp_path / "run", data)
    last = result.history[-1]
    assert np.isfinite(last["val_gt_mm"])
    model = load_model(result.checkpoint).train()
    # the bound was fitted on the validation labels at the end and kept in the checkpoint
    assert last["bound_scale"] > 1.5 and float(model.bound_scale) == pytest.approx(
        last["bound_scale"])
    batch = data.train.__getitems__(np.arange(32))
    batch["y"][:, :, 5] = float("nan")
    batch["w"][:, :, 5] = 0.0
    pred = model(batch["x"].flatten(0, 1), target=batch["y"].flatten(0, 1))[:, None]
    loss, _ = compute_loss(pred, batch, cfg)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all()
                                        for p in model.parameters() if p.grad is not None)
    model.eval().bound_scale.fill_(1.7)
    save_checkpoint(tmp_path / "c.pt", model, cfg)
    again = load_model(tmp_path / "c.pt")
    x = batch["x"][:4, 0]
    assert float(again.bound_scale) == pytest.approx(1.7)
    assert torch.equal(again(x), model(x))


@pytest.mark.parametrize("section, key, message", [
    ({"steps": 20, "timesteps": 10}, "model.diffusion.steps", "at most"),
    ({"window": 2}, "model.diffusion.window", "odd number"),
    ({"hypotheses": 0}, "model.diffusion.hypotheses", ">= 1"),
    ({"bound": 1.5}, "model.diffusion.bound", "<= 0.999"),
    ({"aggregation": "median"}, "model.diffusion.aggregation", "'jpma', 'mean'"),
])
def test_bad_option_names_its_key(section, key, message):
    with pytest.raises(ConfigError) as err:
        from_dict(ExperimentConfig, {"model": {"name": "diffusion", "diffusion": section}})
    assert key in str(err.value) and message in str(err.value), str(err.value)


def test_bound_fit_on_an_empty_validation_set_warns_instead_of_crashing(capsys):
    """A validation loader with no windows used to end a finished diffusion training with
    torch.cat([]) raising; now the bound stays uncalibrated and the user is told."""
    from epiflow.models.train import calibrate_uncertainty

    class _Bounded(torch.nn.Module):
        def calibrate_bound(self, x, y, w):
            raise AssertionError("must not be called without samples")

    assert calibrate_uncertainty(_Bounded(), [], torch.device("cpu")) is None
    assert "no validation samples" in capsys.readouterr().err
