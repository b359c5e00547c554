"""Typed configs: unknown keys and wrong types are refused with the key named."""
from dataclasses import dataclass, field
from typing import Literal

import pytest

from epiflow.config import (ConfigError, apply_overrides, check_limits, from_dict, limits,
                            load_config, to_dict)


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


@dataclass(frozen=True)
class Bounded:
    fraction: float = field(default=0.5, metadata=limits(ge=0, le=1))
    count: int = field(default=1, metadata=limits(gt=0))
    scale: float | None = field(default=None, metadata=limits(gt=0))
    name: str = "a"

    def __post_init__(self):
        if self.name == "bad":
            raise ValueError("name must not be 'bad'")


@pytest.mark.parametrize("data, match", [
    ({"fraction": 1.01}, r"'b.fraction': expected a number >= 0 and <= 1, got 1.01"),
    ({"fraction": -0.0001}, r"'b.fraction': expected a number >= 0 and <= 1"),
    ({"count": 0}, r"'b.count': expected a number > 0, got 0"),
    ({"scale": -2}, r"'b.scale': expected a number > 0, got -2.0"),
    ({"scale": "x"}, r"'b.scale': expected float or nothing \(leave the key out\), got 'x'"),
    ({"name": "bad"}, r"config section 'b': name must not be 'bad'"),
    ({"fractoin": 0.2}, r"\['b.fractoin'\]; did you mean 'b.fraction' for 'b.fractoin'\?"),
    ({"zzz": 0.2}, r"\['b.zzz'\]; accepted keys in b: \['count', 'fraction', 'name', 'scale'\]$"),
])
def test_limits_post_init_and_close_matches(data, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(Bounded, data, "b")


def test_limits_hold_at_the_edges_and_in_code():
    assert from_dict(Bounded, {"fraction": 1, "count": 1, "scale": 1e-9}, "b").fraction == 1.0
    assert from_dict(Bounded, {"fraction": 0}, "b").fraction == 0.0
    check_limits(Bounded())
    with pytest.raises(ConfigError, match=r"'x.count': expected a number > 0, got -1"):
        check_limits(Bounded(count=-1), "x")
