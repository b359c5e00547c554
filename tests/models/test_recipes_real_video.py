"""The real-video recipes of the temporal and diffusion lifters (configs/real_video_temporal.toml,
configs/real_video_diffusion.toml, issue 14): they train on exactly the data of
real_video_mlp.toml (its store, labels, validation clip, augmentation and source), on one thread,
with the CPU sizes their comments were measured at; a few steps of each train, and the
checkpoint lifts a sequence."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from epiflow.models.checkpoint import load_checkpoint, load_model
from epiflow.models.config import DataConfig, load_experiment
from epiflow.models.predict import predict_keypoints
from epiflow.models.train import build_data, fit

CONFIGS = Path(__file__).parents[2] / "configs"
RECIPES = {"real_video_temporal": "temporal", "real_video_diffusion": "diffusion"}


def _recipe(name: str):
    return load_experiment(CONFIGS / f"{name}.toml")


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_trains_on_the_data_of_the_mlp_recipe(name):
    cfg, mlp = _recipe(name), _recipe("real_video_mlp")
    assert cfg.model.name == RECIPES[name]
    assert cfg.data == mlp.data                       # same store, augmentation, source
    assert cfg.data.store.endswith("runs/cmu02_real_video.zarr")
    assert cfg.data.labels == "pseudo" and cfg.data.augment.copies == 3
    assert cfg.train.threads == 1 and cfg.loss.label == 1.0


def test_temporal_recipe_is_sized_for_one_cpu_thread():
    t = _recipe("real_video_temporal")
    m = t.model.temporal
    assert 9 <= m.window <= 27 and m.window % 2 == 1
    assert m.dim <= 64 and m.depth <= 4
    # 48,555 augmented windows; the comment's 0.6 s per 128-window step: <= 25 min of steps
    steps = t.train.epochs * -(-48_555 // t.train.batch_size)
    assert steps * 0.6 * t.train.batch_size / 128 <= 25 * 60


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_a_few_steps_train_and_the_checkpoint_lifts_a_sequence(name, oracle, one_thread,
                                                               tmp_path):
    recipe = _recipe(name)
    data = DataConfig(val_sessions=("02_03",), joint_set=recipe.data.joint_set,
                      augment=replace(recipe.data.augment, copies=1))
    cfg = replace(recipe, data=data, train=replace(recipe.train, epochs=1, max_steps=2,
                                                   progress=False))
    sessions = [oracle("02_01", 0, 0.01), oracle("02_03", 1, 0.01)]
    result = fit(cfg, tmp_path, build_data(cfg, sessions))
    row = result.history[-1]
    assert row["step"] == 2 and np.isfinite(row["train_loss"])
    assert 20 < row["val_gt_mm"] < 2000                     # a pose in metres, not garbage
    if name == "real_video_diffusion":                       # its bound fitted on validation
        assert 0 < row["bound_scale"] < 100
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt.config.model == recipe.model
    s = sessions[1]                                          # one camera, 40 frames, pixels
    pose = predict_keypoints(load_model(ckpt), s.keypoints2d[:40, 0], s.joint_set, s.rig[0])
    assert pose.shape == (40, 17, 3) and np.isfinite(pose).all()
    assert torch.get_num_threads() == 1
