"""The temporal lifter (spatial-temporal attention + skeleton graph): shapes, which frames the
centre pose depends on (the whole window, or none after it when causal), that it fits a short
real-motion sequence, its config errors naming the key, and its checkpoints through
``epiflow train`` / ``evaluate`` / ``predict``."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from epiflow.cli import main
from epiflow.config import ConfigError, from_dict
from epiflow.models.checkpoint import CheckpointError, load_checkpoint, load_model
from epiflow.models.config import ExperimentConfig
from epiflow.models.data import PoseDataset, prepare_session
from epiflow.models.predict import predict_keypoints
from epiflow.models.temporal import TemporalConfig, TemporalLifter, skeleton_adjacency


def _model(**kw) -> TemporalLifter:
    torch.manual_seed(0)
    cfg = dict(window=7, dim=16, depth=2, heads=2)
    return TemporalLifter(TemporalConfig(**{**cfg, **kw}), n_joints=17).eval()


class TestShapes:
    def test_shapes_and_backward(self):
        model = _model().train()
        x = torch.randn(3, 7, 17, 2, requires_grad=True)
        y = model(x)
        assert y.shape == (3, 17, 3)
        y.sum().backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0

    def test_wrong_window_is_refused(self):
        with pytest.raises(ValueError, match=r"\(B, 7, 17, 2\); got \(3, 5, 17, 2\)"):
            _model()(torch.zeros(3, 5, 17, 2))

    def test_adjacency_is_the_skeleton(self):
        a = skeleton_adjacency(17)
        assert torch.allclose(a, a.T)
        # h36m17: pelvis (0) has three neighbours (right hip, left hip, spine) and itself
        assert int((a[0] > 0).sum()) == 4 and a[0, 4] > 0 and a[0, 6] == 0
        with pytest.raises(ValueError, match="kinematic tree has 20 joints"):
            skeleton_adjacency(20)


def _perturbed(x: torch.Tensor, frame: int) -> torch.Tensor:
    y = x.clone()
    y[:, frame] += 0.5
    return y


class TestWhichFramesCount:
    @pytest.mark.parametrize("graph", [True, False])
    def test_non_causal_reads_the_whole_window(self, graph):
        model, x = _model(graph=graph), torch.randn(2, 7, 17, 2)
        base = model(x)
        for frame in (0, 6):
            assert (model(_perturbed(x, frame)) - base).abs().max() > 1e-3

    @pytest.mark.parametrize("graph", [True, False])
    def test_causal_never_reads_later_frames(self, graph):
        model, x = _model(graph=graph, causal=True), torch.randn(2, 7, 17, 2)
        base = model(x)
        for frame in (4, 5, 6):   # after the centre (3)
            assert (model(_perturbed(x, frame)) - base).abs().max() < 1e-6
        for frame in (0, 3):
            assert (model(_perturbed(x, frame)) - base).abs().max() > 1e-3


def test_overfits_a_short_sequence(oracle, one_thread):
    """40 windows of real motion (CMU 02_01, one camera) with the true poses as labels: the
    error falls from about 800 mm (untrained) to under 45 mm in 150 full-batch steps."""
    session = prepare_session(oracle("02_01"), "gt")
    ds = PoseDataset([session], window=5)
    batch = ds.__getitems__(np.flatnonzero(ds.index[:, 2] == 0)[:40])
    x, y = batch["x"][:, 0], batch["y"][:, 0]
    torch.manual_seed(0)
    model = TemporalLifter(TemporalConfig(window=5, dim=24, depth=1, heads=4), 17)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    err = lambda: 1000 * float((model(x) - y).detach().norm(dim=-1).mean())  # noqa: E731
    before = err()
    for _ in range(150):
        loss = (model(x) - y).norm(dim=-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert before > 300 and err() < 45, (before, err())


class TestConfig:
    @pytest.mark.parametrize("section, key, message", [
        ({"window": 8}, "model.temporal.window", "odd number of frames"),
        ({"window": 0}, "model.temporal.window", ">= 1"),
        ({"dim": 30, "heads": 4}, "model.temporal.dim", "multiple of 'model.temporal.heads'"),
        ({"dropout": 1.5}, "model.temporal.dropout", "<= 0.9"),
        ({"widow": 9}, "model.temporal.widow", "did you mean 'model.temporal.window'"),
        ({"graph": "yes"}, "model.temporal.graph", "expected bool"),
    ])
    def test_bad_option_names_its_key(self, section, key, message):
        with pytest.raises(ConfigError) as err:
            from_dict(ExperimentConfig, {"model": {"name": "temporal", "temporal": section}})
        assert key in str(err.value) and message in str(err.value), str(err.value)

    def test_unknown_model_lists_the_choices(self):
        with pytest.raises(ConfigError, match="'temporal', 'diffusion'"):
            from_dict(ExperimentConfig, {"model": {"name": "agformer"}})


RECIPE = """\
[data]
store = "s.zarr"
val_sessions = []
[data.source]
kind = "cmu_synthetic"
clips = ["02_04"]
cameras = "true"
[model]
name = "temporal"
[model.temporal]
window = 5
dim = 16
depth = 1
heads = 2
[train]
epochs = 1
max_steps = 3
batch_size = 64
threads = 1
progress = false
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("temporal")
    (root / "recipe.toml").write_text(RECIPE)
    assert main(["train", str(root / "recipe.toml"), "--out", str(root / "run")]) == 0
    return root


def test_checkpoint_round_trip_through_the_commands(run, capsys, oracle):
    ckpt = load_checkpoint(run / "run" / "checkpoint.pt")
    assert ckpt.model_name == "temporal" and ckpt.data["model"]["input_window"] == 5
    model = load_model(ckpt)
    assert isinstance(model, TemporalLifter) and model.config.window == 5
    capsys.readouterr()
    assert main(["evaluate", str(run / "run" / "checkpoint.pt"), "--store",
                 str(run / "s.zarr"), "--out", str(run / "eval.json")]) == 0
    session = oracle("02_04")
    points = predict_keypoints(model, session.keypoints2d[:, 0], session.joint_set,
                               session.rig[0])
    assert points.shape == (len(session.keypoints2d), 17, 3) and np.isfinite(points).all()
    with pytest.raises(CheckpointError, match="holds a 'temporal' model, not 'diffusion'"):
        load_model(ckpt, expect="diffusion")


def test_resuming_with_another_model_is_refused(run, capsys):
    text = RECIPE.replace('name = "temporal"', 'name = "diffusion"').replace(
        "[model.temporal]\nwindow = 5\ndim = 16\ndepth = 1\nheads = 2\n", "")
    (run / "other.toml").write_text(text)
    assert main(["train", str(run / "other.toml"), "--out", str(run / "run")]) == 2
    err = capsys.readouterr().err
    assert "holds a 'temporal' model" in err and "'diffusion'" in err and "--fresh" in err


def test_a_checkpoint_of_an_unknown_model_names_the_file(run, tmp_path):
    data = torch.load(run / "run" / "checkpoint.pt", weights_only=True)
    data["config"]["model"]["name"] = "motionagformer_xl"
    torch.save(data, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match=r"future\.pt holds a config this epiflow cannot "
                                              r"read .*'model\.name'.*another version"):
        load_checkpoint(tmp_path / "future.pt")
