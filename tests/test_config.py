"""Typed configs: unknown keys and wrong types are refused with the key named."""
from dataclasses import dataclass, field
from typing import Literal

import pytest

from epiflow.config import ConfigError, apply_overrides, from_dict, load_config, to_dict


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    model: Literal["mlp", "transformer"] = "mlp"


@dataclass(frozen=True)
class Outer:
    name: str = "run"
    epochs: int = 10
    layers: tuple[int, ...] = (1024, 1024)
    train: Inner = field(default_factory=Inner)


def test_fills_nested_sections_and_coerces_numbers():
    cfg = from_dict(Outer, {"epochs": 3, "layers": [5, 6], "train": {"lr": 1}})
    assert cfg == Outer(epochs=3, layers=(5, 6), train=Inner(lr=1.0))
    assert to_dict(cfg)["train"] == {"lr": 1.0, "model": "mlp"}


@pytest.mark.parametrize("data, match", [
    ({"epoch": 3}, r"unknown config key.*'epoch'.*accepted keys.*'epochs'"),
    ({"train": {"lrate": 1}}, r"'train.lrate'"),
    ({"epochs": "ten"}, r"'epochs': expected int, got 'ten'"),
    ({"epochs": True}, r"'epochs': expected int"),
    ({"train": {"model": "resnet"}}, r"'train.model': expected one of \['mlp', 'transformer'\]"),
    ({"layers": 3}, r"'layers': expected a list"),
])
def test_refuses_bad_keys_and_types(data, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(Outer, data)


def test_file_errors_and_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('name = "x"\n[train]\nlr = 0.5\n')
    cfg = load_config(Outer, path)
    assert cfg.train.lr == 0.5
    assert apply_overrides(cfg, ["train.model=transformer", "epochs=2"]).epochs == 2
    with pytest.raises(ConfigError, match="train.modl"):
        apply_overrides(cfg, ["train.modl=mlp"])
    path.write_text("name = \n")
    with pytest.raises(ConfigError, match="run.toml: not valid TOML"):
        load_config(Outer, path)
    with pytest.raises(FileNotFoundError, match="missing.toml"):
        load_config(Outer, tmp_path / "missing.toml")
