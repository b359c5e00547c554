"""Fine-tuning (``train.init`` / ``epiflow train --init CKPT``): the run starts from the given
checkpoint's weights (not a random start) and moves them; a checkpoint that does not fit the
recipe is refused before anything is written, naming it."""
from __future__ import annotations

from dataclasses import replace

import torch

from epiflow.cli import main
from epiflow.models.checkpoint import load_checkpoint
from epiflow.models.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from epiflow.models.lifters import MLPConfig
from epiflow.models.train import build_data, fit


def _flat(state: dict) -> torch.Tensor:
    """The weights (not batch-norm statistics, which every step in training mode moves)."""
    return torch.cat([v.flatten().float() for k, v in state.items()
                      if "running_" not in k and "num_batches" not in k])


def test_init_loads_the_checkpoint_then_changes_it(oracle, tmp_path):
    sessions = [oracle("02_01", seed=0, n_cameras=3), oracle("02_03", seed=1, n_cameras=3)]
    cfg = ExperimentConfig(data=DataConfig(labels="gt", val_fraction=0.5),
                           model=ModelConfig(mlp=MLPConfig(hidden=64, blocks=1)),
                           train=TrainConfig(epochs=3, batch_size=64, lr=2e-3,
                                             device="cpu", progress=False, threads=1))
    data = build_data(cfg, sessions)
    base = fit(cfg, tmp_path / "base", data)
    w_base = _flat(load_checkpoint(base.checkpoint).data["model"]["state_dict"])

    tuned_cfg = replace(cfg, train=replace(cfg.train, init=str(base.checkpoint), lr=1e-4,
                                           epochs=1, max_steps=2, seed=7))
    tuned = fit(tuned_cfg, tmp_path / "tuned", data)
    w_tuned = _flat(load_checkpoint(tuned.checkpoint).data["model"]["state_dict"])
    fresh = fit(replace(tuned_cfg, train=replace(tuned_cfg.train, init="")),
                tmp_path / "fresh", data)
    w_fresh = _flat(load_checkpoint(fresh.checkpoint).data["model"]["state_dict"])
    moved, apart = (w_tuned - w_base).norm(), (w_fresh - w_base).norm()
    assert 0 < moved < 0.05 * apart, (moved, apart)     # started from the base, then trained
    # the fine-tuned model starts where the base ended: its first loss is the base's, not a
    # random model's
    assert tuned.history[0]["train_loss"] < 0.7 * fresh.history[0]["train_loss"]
    assert tuned.history[0]["val_gt_mm"] < 0.7 * fresh.history[0]["val_gt_mm"]


def test_init_of_another_model_is_refused_first(oracle, tmp_path, capsys):
    sessions = [oracle("02_01", seed=0, n_cameras=3)]
    cfg = ExperimentConfig(data=DataConfig(labels="gt", val_fraction=0.0),
                           model=ModelConfig(mlp=MLPConfig(hidden=32, blocks=1)),
                           train=TrainConfig(epochs=1, max_steps=1, device="cpu",
                                             progress=False))
    base = fit(cfg, tmp_path / "base", build_data(cfg, sessions))
    recipe = tmp_path / "r.toml"
    recipe.write_text('[data]\nstore = "missing.zarr"\n[model.mlp]\nhidden = 64\n')
    out = tmp_path / "run"
    assert main(["train", str(recipe), "--init", str(base.checkpoint), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot start from --init" in err and "model.mlp.hidden" in err
    assert not out.exists()                             # refused before anything was written
    # the base run's own folder as --out would overwrite the checkpoint it starts from
    assert main(["train", str(recipe), "--init", str(base.checkpoint),
                 "--out", str(tmp_path / "base")]) == 2
    assert "--init (train.init)" in capsys.readouterr().err
