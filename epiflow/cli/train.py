"""``epiflow train CONFIG.toml [--out DIR] [key=value ...]``: train a monocular 3D pose model.

DIR (default ``runs/<config name>``) gets ``checkpoint.pt`` (the one to use; training resumes
from it when it is there, ``--fresh`` starts over), ``metrics.csv`` and ``curves.png``; nothing
else in DIR is written or deleted. A checkpoint that cannot be resumed (damaged, or of another
model) is refused before anything runs. When the
config's store does not exist and ``[data.source]`` says how, the store is built first.
Overrides are TOML values for dotted keys: ``train.epochs=5 model.name="transformer"``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from epiflow.outputs import OutputError, check_outputs_not_inputs

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
    p.add_argument("--init", metavar="CKPT",
                   help="start from this checkpoint's weights (fine-tune a trained model on this "
                        "store, e.g. a rig's own captures); sets train.init")
    p.add_argument("--fresh", action="store_true",
                   help="start over instead of resuming: DIR's checkpoint is not read, and the "
                        "new run's checkpoint.pt, metrics.csv and curves.png replace the old ones "
                        "as they are written (nothing else in DIR is touched)")


def _split(args) -> tuple[str | None, bool, list[str]]:
    """(--out, --fresh, overrides) from options given before the config or among the overrides;
    ``--init CKPT`` becomes the override ``train.init`` (its path made absolute)."""
    extra = argparse.ArgumentParser(prog="epiflow train", add_help=False)
    _options(extra)
    late, overrides = extra.parse_known_args(args.overrides)
    unknown = [o for o in overrides if o.startswith("-")]
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; epiflow train takes --out DIR, --init "
                         f"CKPT, --fresh and KEY=VALUE overrides")
    init = late.init or args.init
    if init:
        overrides = [*overrides, f"train.init={json.dumps(str(Path(init).resolve()))}"]
    return late.out or args.out, late.fresh or args.fresh, overrides


def _check_out(out: Path, cfg, config: str, fresh: bool) -> None:
    """Refuse, before any work, an --out that is a file, whose files would land on an input, or
    whose checkpoint cannot be resumed (unless ``fresh``)."""
    from epiflow.models.checkpoint import check_resumable
    from epiflow.models.train import CHECKPOINT_FILE, CURVES_FILE, METRICS_FILE
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {str(out)!r} is a file; training writes {CHECKPOINT_FILE}, "
                          f"{METRICS_FILE} and {CURVES_FILE} into a folder: give a new folder or "
                          f"a previous run's")
    check_outputs_not_inputs({f"--out (its {n})": out / n for n in (CHECKPOINT_FILE, METRICS_FILE,
                                                                     CURVES_FILE)},
                             {"the config": config, "its data.store": cfg.data.store,
                              "--init (train.init)": cfg.train.init})
    if not fresh and (out / CHECKPOINT_FILE).exists():
        check_resumable(out / CHECKPOINT_FILE, cfg)
    if cfg.train.init:
        from epiflow.models.train import init_checkpoint
        init_checkpoint(cfg)
    _check_store_fits(cfg)


def _check_store_fits(cfg) -> None:
    """Refuse, before any work, a store (when it exists already) the model cannot learn from: a
    temporal window longer than every session (each window mostly copies of the end frames),
    or an image model whose ``image_size`` is not the side of the store's person crops."""
    name = cfg.model.name
    window = int(getattr(getattr(cfg.model, name), "window", 1))
    if (window <= 1 and name != "image") or not cfg.data.store:
        return
    import warnings

    from epiflow.models.data import DataError, ready_sessions
    try:
        with warnings.catch_warnings():  # sessions left out are said when training loads them
            warnings.simplefilter("ignore")
            sessions = ready_sessions(cfg.data.store, cfg.data.sessions or None)
    except (DataError, FileNotFoundError, ValueError, KeyError):
        return  # no store yet (built from data.source) or a bad one: training says which
    where = f"data.store {cfg.data.store!r}"
    longest = max(sessions, key=lambda s: s.n_frames)
    if window > longest.n_frames:
        fits = longest.n_frames - (1 - longest.n_frames % 2)
        raise ValueError(f"model.{name}.window = {window} frames is longer than every session of "
                         f"{where} (the longest, {longest.id!r}, has {longest.n_frames}): each "
                         f"window would be mostly copies of the end frames; set "
                         f"model.{name}.window = {fits} or less (odd), or train on longer "
                         f"sessions")
    size = cfg.model.image.image_size
    for s in sessions if name == "image" else []:
        crop = s.crop_size
        if crop and crop != size:
            raise ValueError(f"model.image.image_size = {size} px, but session {s.id!r} of "
                             f"{where} holds person crops of {crop} px (store.crop_size): set "
                             f"model.image.image_size = {crop}, or rebuild the store with "
                             f"--set store.crop_size={size}")


def run(args) -> int:
    from epiflow.models.config import load_experiment
    from epiflow.models.train import StoreBuildError, train
    out, fresh, overrides = _split(args)
    cfg = load_experiment(args.config, overrides)
    out = Path(out or Path("runs") / Path(args.config).stem)
    _check_out(out, cfg, args.config, fresh)
    try:
        result = train(cfg, out, resume=not fresh)
    except StoreBuildError as err:  # a stage failed, not the input: exit 1, no traceback
        print(f"epiflow train: error: {err}", file=sys.stderr)
        return 1
    last = result.history[-1] if result.history else {}
    shown = ", ".join(f"{k} {last[k]:.1f}" for k in ("val_label_mm", "val_gt_mm", "val_gt_p_mm") if k in last)
    print(f"trained {cfg.model.name} for {int(last.get('epoch', 0))} epochs "
          f"({int(last.get('step', 0))} steps){': ' + shown if shown else ''}")
    print(f"checkpoint: {result.checkpoint}")
    return 0
