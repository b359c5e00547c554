"""``epiflow train CONFIG.toml [--out DIR] [key=value ...]``: train a monocular 3D pose model.

DIR (default ``runs/<config name>``) gets ``checkpoint.pt`` (the one to use; training resumes
from it when it is there, ``--fresh`` starts over), ``metrics.csv`` and ``curves.png``. When the
config's store does not exist and ``[data.source]`` says how, the store is built first.
Overrides are TOML values for dotted keys: ``train.epochs=5 model.name="transformer"``.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a monocular 3D pose model on a pose store",
                              description=__doc__)
    p.add_argument("config", help="the training recipe (TOML), e.g. configs/cmu_selfsup_mlp.toml")
    _options(p)
    p.add_argument("overrides", nargs=argparse.REMAINDER, metavar="KEY=VALUE",
                   help="config overrides, e.g. train.epochs=5 (options may come among them)")
    p.set_defaults(func=run)


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="output folder (default: runs/<config file stem>)")
    p.add_argument("--fresh", action="store_true",
                   help="start over: delete DIR's checkpoint and metrics instead of resuming")


def _split(args) -> tuple[str | None, bool, list[str]]:
    """(--out, --fresh, overrides) from options given before the config or among the overrides."""
    extra = argparse.ArgumentParser(prog="epiflow train", add_help=False)
    _options(extra)
    late, overrides = extra.parse_known_args(args.overrides)
    unknown = [o for o in overrides if o.startswith("-")]
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; epiflow train takes --out DIR, --fresh and "
                         f"KEY=VALUE overrides")
    return late.out or args.out, late.fresh or args.fresh, overrides


def run(args) -> int:
    from epiflow.models.config import load_experiment
    from epiflow.models.train import CHECKPOINT_FILE, METRICS_FILE, train
    out, fresh, overrides = _split(args)
    cfg = load_experiment(args.config, overrides)
    out = Path(out or Path("runs") / Path(args.config).stem)
    if fresh:
        for name in (CHECKPOINT_FILE, METRICS_FILE):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "ray", ignore_errors=True)
    result = train(cfg, out)
    last = result.history[-1] if result.history else {}
    shown = ", ".join(f"{k} {last[k]:.1f}" for k in ("val_label_mm", "val_gt_mm", "val_gt_p_mm") if k in last)
    print(f"trained {cfg.model.name} for {int(last.get('epoch', 0))} epochs "
          f"({int(last.get('step', 0))} steps){': ' + shown if shown else ''}")
    print(f"checkpoint: {result.checkpoint}")
    return 0
