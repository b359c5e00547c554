"""Checkpoints that cannot be used are refused with the file named and what to do: damaged or
foreign files in ``evaluate`` and in a training folder being resumed, an ``--out`` that is a file,
a model of another kind or joint set; a malicious pickle never runs."""
from __future__ import annotations

import os
import zipfile
from dataclasses import replace

import numpy as np
import pytest
import torch

from epiflow.cli import main
from epiflow.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from epiflow.models.config import build_model

RECIPE = """\
[data]
store = "s.zarr"
val_sessions = []
[data.source]
kind = "cmu_synthetic"
clips = ["02_04"]
cameras = "true"
[model.mlp]
hidden = 16
blocks = 1
[train]
epochs = 1
batch_size = 128
threads = 1
progress = false
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A folder with the recipe, the store it builds (one synthetic clip with ground truth) and
    a one-epoch run of a 16-unit MLP in ``run/``."""
    root = tmp_path_factory.mktemp("ckpt")
    (root / "recipe.toml").write_text(RECIPE)
    assert main(["train", str(root / "recipe.toml"), "--out", str(root / "run")]) == 0
    return root


def _bad_files(folder, good: bytes) -> dict[str, bytes]:
    zipped = folder / "zip.pt"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("notes.txt", "not a checkpoint")
    return {"empty.pt": b"", "truncated.pt": good[: len(good) // 2],
            "random.pt": np.random.default_rng(0).bytes(2000), "zip.pt": zipped.read_bytes()}


def _refused(argv, capsys) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_damaged_checkpoints_in_evaluate(run, tmp_path, capsys):
    good = (run / "run" / "checkpoint.pt").read_bytes()
    for name, data in _bad_files(tmp_path, good).items():
        (tmp_path / name).write_bytes(data)
        err = _refused(["evaluate", str(tmp_path / name), "--store", str(run / "s.zarr")], capsys)
        assert str(tmp_path / name) in err and "give the checkpoint.pt" in err, err
        assert "weights_only` set to `False" not in err  # torch's unsafe advice is not passed on
    assert "empty (0 bytes)" in _refused(["evaluate", str(tmp_path / "empty.pt"), "--store",
                                          str(run / "s.zarr")], capsys)


def test_damaged_checkpoint_in_a_resumed_folder_says_fresh(run, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"")
    (out / "notes.txt").write_text("mine")
    (out / "ray").mkdir()
    recipe = str(run / "recipe.toml")
    err = _refused(["train", recipe, "--out", str(out)], capsys)
    assert str(out / "checkpoint.pt") in err and "--fresh" in err and "another --out" in err
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "notes.txt", "ray"]
    assert main(["train", recipe, "--out", str(out), "--fresh"]) == 0
    assert load_checkpoint(out / "checkpoint.pt").epoch == 1
    assert (out / "notes.txt").read_text() == "mine" and (out / "ray").is_dir()
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


def test_resuming_another_model_says_fresh(run, capsys):
    err = _refused(["train", str(run / "recipe.toml"), "--out", str(run / "run"),
                    "model.name='transformer'"], capsys)
    assert "holds a 'mlp' model" in err and "--fresh" in err


def test_out_that_is_a_file_or_inside_the_store(run, tmp_path, capsys):
    out = tmp_path / "notes.txt"
    out.write_text("mine")
    err = _refused(["train", str(run / "recipe.toml"), "--out", str(out)], capsys)
    assert str(out) in err and "is a file" in err and "folder" in err
    assert out.read_text() == "mine"
    store = run / "s.zarr"
    listing = sorted(p.name for p in store.iterdir())
    err = _refused(["train", str(run / "recipe.toml"), "--out", str(store)], capsys)
    assert "lies inside its data.store" in err
    assert sorted(p.name for p in store.iterdir()) == listing


def test_another_model_kind_or_joint_set(run, tmp_path, capsys):
    ckpt = load_checkpoint(run / "run" / "checkpoint.pt")
    coco = replace(ckpt.config, data=replace(ckpt.config.data, joint_set="coco17"))
    save_checkpoint(tmp_path / "coco.pt", build_model(coco.model, 17), coco)
    image = replace(ckpt.config, model=replace(ckpt.config.model, name="image"))
    save_checkpoint(tmp_path / "image.pt", build_model(image.model, 17), image)
    store = str(run / "s.zarr")
    err = _refused(["evaluate", str(tmp_path / "coco.pt"), "--store", store], capsys)
    assert "coco.pt" in err and "joint set 'coco17'" in err and "'h36m17'" in err
    err = _refused(["evaluate", str(tmp_path / "image.pt"), "--store", store], capsys)
    assert "image.pt" in err and "reads images" in err and "session '02_04'" in err


class _Payload:
    """Unpickling this makes a folder: proof that the file's code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_a_malicious_pickle_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"format": "epiflow-checkpoint", "payload": _Payload(marker)},
               tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="evil.pt .*not a loadable checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    assert main(["evaluate", str(tmp_path / "evil.pt"), "--store", str(tmp_path)]) == 2
    assert not marker.exists()


@pytest.mark.parametrize("how", ["override", "file", "code"])
@pytest.mark.parametrize("key, value, expected", [
    ("epochs", 0, "expected a number >= 1, got 0"),
    ("batch_size", 0, "expected a number >= 1, got 0"),
    ("lr", -1e-3, "expected a number > 0, got -0.001")])
def test_training_numbers_are_checked_before_anything_is_written(tmp_path, capsys, how, key,
                                                                  value, expected):
    """``train.epochs=0`` exited 0 with an untrained checkpoint, ``batch_size=0`` got torch's
    message after the run folder was made: TrainConfig's limits refuse both at load, from the
    recipe, an override or code alike, naming the key."""
    from epiflow.config import ConfigError
    from epiflow.models.config import TrainConfig
    if how == "code":
        with pytest.raises(ConfigError, match=rf"'train\.{key}': {expected}"):
            TrainConfig(**{key: value})
        return
    recipe = tmp_path / "recipe.toml"
    lines = [line for line in RECIPE.splitlines() if not line.startswith(f"{key} =")]
    recipe.write_text("\n".join(lines + ([f"{key} = {value}"] if how == "file" else [])) + "\n")
    extra = [f"train.{key}={value}"] if how == "override" else []
    err = _refused(["train", str(recipe), "--out", str(tmp_path / "run"), *extra], capsys)
    assert f"'train.{key}': {expected}" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.toml"]
