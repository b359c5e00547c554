"""Fine-tuning on a user's own captures: what training on some sessions of a rig buys on other
sessions of the same rig.

    python benchmarks/finetune.py [--data ../shared/data] [--out benchmarks/out/finetune]
                                  [--base-epochs 20] [--epochs 20]

- **base**: the label-free recipe ``configs/cmu_selfsup_mlp.toml`` (CMU subject 02, ten clips,
  a 4-camera ring of radius 5 m, focal 1200 px, cameras from the person, pseudo-labels),
  ``--base-epochs`` epochs.
- **the user's rig**: subject 03 (held back from the base: never seen) captured by another rig
  (4 cameras, radius 4 m, focal 1000 px, rig seed 7, 3 px 2D noise), built by the pipeline like
  a user's store (cameras from the person, pseudo-labels; no ground truth is used by the
  label-free rows). Its two clips are the user's two sessions; two folds: fine-tune on one,
  evaluate on the other.
- **fine-tuned**: ``epiflow train`` with ``train.init`` = the base checkpoint on the fine-tune
  session's pseudo-labels (``--epochs``, lr 3e-4); **supervised fine-tune**: the same on its
  ground truth (the upper bound); **scratch**: the same epochs from a random start on that
  session alone (what the base contributes).

Evaluation on the held-out session of the same rig: every camera, root-relative in each camera's
frame, mm (MPJPE, P-MPJPE, PSS@50), with the ratio to the base and the gap closed towards the
supervised fine-tune. Runs already in ``--out`` are reused (delete it to retrain).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EPIFLOW_DATA", REPO.parent / "shared" / "data"))
CLIPS = ("03_01", "03_02")


def user_store(out: Path, data: Path) -> str:
    """Subject 03 seen by the user's rig, through the pipeline (in this process)."""
    from epiflow.models.config import SourceConfig, run_config
    from epiflow.pipeline.orchestrate import run_pipeline
    url = str(out / "rig03.zarr")
    source = SourceConfig(kind="cmu_synthetic", clips=CLIPS, data_dir=str(data), n_cameras=4,
                          radius=4.0, focal_px=1000.0, seed=7, noise_px=3.0)
    report = run_pipeline(run_config(source, url), progress=False, in_process=True)
    if report.failures:
        raise SystemExit(f"building {url} failed: {report.failures}")
    return url


def run(cfg, out: Path) -> tuple[Path, float]:
    from epiflow.models.train import train
    t0 = time.perf_counter()
    return train(cfg, out).checkpoint, time.perf_counter() - t0


def evaluate(ckpt: Path, store: str, session: str) -> dict:
    from epiflow.models.data import load_sessions
    from epiflow.models.evaluate import evaluate_checkpoint
    return evaluate_checkpoint(ckpt, load_sessions(store, [session]))["overall"]


def main() -> None:
    from epiflow.models.config import load_experiment
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "finetune")
    parser.add_argument("--base-epochs", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20, help="fine-tuning epochs")
    args = parser.parse_args()
    if not (args.data / "cmu_mocap" / "03").is_dir():
        raise SystemExit(f"CMU mocap not found under {args.data}; pass --data or set EPIFLOW_DATA")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    base_cfg = load_experiment(REPO / "configs" / "cmu_selfsup_mlp.toml", [
        f"data.source.data_dir={json.dumps(str(args.data.resolve()))}", "train.progress=false",
        f"train.epochs={args.base_epochs}"])
    base_ckpt, base_s = run(base_cfg, out / "base")
    t0 = time.perf_counter()
    store = user_store(out, args.data.resolve())
    store_s = time.perf_counter() - t0
    rows, times = {}, {"base_train_s": base_s, "user_store_s": store_s}
    for tune, held in (CLIPS, CLIPS[::-1]):
        data = replace(base_cfg.data, store=store, source=replace(base_cfg.data.source,
                                                                  kind="store"),
                       sessions=(tune,), val_sessions=(), val_fraction=0.0)
        train = replace(base_cfg.train, epochs=args.epochs, lr=3e-4)
        fold = {"base": base_ckpt}
        for name, labels, init in (("fine-tuned (pseudo-labels)", "pseudo", str(base_ckpt)),
                                   ("fine-tuned (ground truth)", "gt", str(base_ckpt)),
                                   ("scratch (pseudo-labels)", "pseudo", "")):
            cfg = replace(base_cfg, data=replace(data, labels=labels),
                          train=replace(train, init=init, lr=3e-4 if init else 1e-3))
            tag = f"{name.split()[0]}_{labels}_{tune}"
            fold[name], times[tag + "_s"] = run(cfg, out / tag)
        rows[f"tune {tune}, test {held}"] = {name: evaluate(ckpt, store, held)
                                             for name, ckpt in fold.items()}
    report(rows, times, args)
    (out / "results.json").write_text(json.dumps({"rows": rows, "times": times}, indent=2,
                                                 default=float))


def report(rows: dict, times: dict, args) -> None:
    names = list(next(iter(rows.values())))
    print(f"\nSubject 03 on the user's rig (radius 4 m, focal 1000 px), base: subject 02 on a "
          f"5 m ring, {args.base_epochs} epochs; fine-tune: {args.epochs} epochs on one "
          f"session; tested on the other session; mm, every camera")
    print(f"{'fold':<24}{'model':<28}{'MPJPE':>8}{'P-MPJPE':>9}{'PSS@50':>8}{'P / base':>9}"
          f"{'gap closed':>11}")
    mean = {n: {k: [] for k in ("mpjpe_mm", "p_mpjpe_mm", "pss50")} for n in names}
    for fold, res in rows.items():
        base, sup = res["base"]["p_mpjpe_mm"], res["fine-tuned (ground truth)"]["p_mpjpe_mm"]
        for name, m in res.items():
            for k in mean[name]:
                mean[name][k].append(m[k])
            closed = (base - m["p_mpjpe_mm"]) / (base - sup) if base != sup else float("nan")
            print(f"{fold:<24}{name:<28}{m['mpjpe_mm']:>8.1f}{m['p_mpjpe_mm']:>9.1f}"
                  f"{m['pss50']:>8.3f}{m['p_mpjpe_mm'] / base:>9.2f}{closed:>11.2f}")
    print("mean of the folds:")
    base = np.mean(mean["base"]["p_mpjpe_mm"])
    sup = np.mean(mean["fine-tuned (ground truth)"]["p_mpjpe_mm"])
    for name, m in mean.items():
        p = np.mean(m["p_mpjpe_mm"])
        print(f"{'':<24}{name:<28}{np.mean(m['mpjpe_mm']):>8.1f}{p:>9.1f}"
              f"{np.mean(m['pss50']):>8.3f}{p / base:>9.2f}"
              f"{(base - p) / (base - sup) if base != sup else float('nan'):>11.2f}")
    print("(gap closed: the share of the base-to-supervised-fine-tune P-MPJPE gap a row closes)")
    print("times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))


if __name__ == "__main__":
    main()
