"""The seed papers' lifters against the MLP baseline: label-free and supervised, on held-out motion
seen by a rig unlike the training one; D3DP's hypotheses, JPMA and uncertainty calibration.

    python benchmarks/lifters.py [--data ../shared/data] [--out benchmarks/out/lifters]
                                 [--models mlp,temporal,diffusion] [--epochs mlp=10,temporal=3]

Training data: the recipes ``configs/cmu_selfsup_{mlp,temporal,diffusion}.toml`` as they are
(CMU subject 02, ten clips, synthetic 4-camera captures, 2D corrupted like a detector's, cameras
recovered from the person, robust weighted pseudo-labels), one store built once by the pipeline
and shared by every run. Each model trains twice: from the pseudo-labels with their weights
(label-free) and from the ground truth (``data.labels = "gt"``, the supervised upper bound).

Evaluation: CMU subject 03 (both clips, never seen) captured by another rig (other seed,
radius 4 m, focal 1000 px, 3 px noise; ``benchmarks/training.py``'s ``test_sessions``), every
camera, root-relative in each camera's frame: MPJPE, P-MPJPE, PSS@50 (mm), P-MPJPE's ratio of
label-free to supervised (target <= 1.1), and the training samples/s on this CPU (the mean over
epochs, 1 thread, the data loading included).

D3DP (label-free model): MPJPE of the best hypothesis per pose (P-Best: the oracle), per joint
(J-Best), of JPMA's choice and of the hypotheses' mean; and how often the true per-joint error
lies within the stated 90 % bound, both the Gaussian bound from the hypotheses' spread and after
:meth:`DiffusionLifter.calibrate_bound` fitted it on the validation clip's pseudo-labels (02_02;
label-free). Runs already in ``--out`` are reused (delete it to retrain).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EPIFLOW_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from training import test_sessions  # noqa: E402  (the held-out subject 03, one definition)

BOUND_TARGET = 1.1  # label-free P-MPJPE / supervised P-MPJPE


def recipes(models: list[str], data_dir: Path, store: Path, epochs: dict[str, int]) -> dict:
    """(model, labels) -> config: each model's recipe, label-free and supervised, one store;
    ``epochs`` overrides a recipe's train.epochs (model name -> epochs)."""
    from epiflow.models.config import load_experiment
    out = {}
    for name in models:
        overrides = [f"data.source.data_dir={json.dumps(str(data_dir.resolve()))}",
                     f"data.store={json.dumps(str(store))}", "train.progress=false",
                     "train.threads=1"]
        cfg = load_experiment(REPO / "configs" / f"cmu_selfsup_{name}.toml", overrides)
        cfg = replace(cfg, train=replace(cfg.train, epochs=epochs.get(name, cfg.train.epochs)))
        out[(name, "pseudo")] = cfg
        out[(name, "gt")] = replace(cfg, data=replace(cfg.data, labels="gt"))
    return out


def train_and_evaluate(cfg, folder: Path, sessions: list) -> dict:
    """Train ``cfg`` into ``folder`` (a finished run is reused) and evaluate it on ``sessions``."""
    from epiflow.models.evaluate import evaluate_checkpoint
    from epiflow.models.train import train
    result = train(cfg, folder)
    metrics = evaluate_checkpoint(result.checkpoint, sessions)["overall"]
    return {"train_s": float(sum(r["seconds"] for r in result.history)),  # also when reused
            "epochs": result.history[-1]["epoch"],
            "samples_per_s": float(np.mean([r["samples_per_s"] for r in result.history])),
            "mpjpe_mm": metrics["mpjpe_mm"], "p_mpjpe_mm": metrics["p_mpjpe_mm"],
            "pss50": metrics["pss50"], "n_poses": metrics["n_poses"]}


def _inputs(sessions, cfg, labels):
    """(x (N, W, J, 2), target (N, J, 3), weight (N, J)) of every labelled sample."""
    from epiflow.models.data import PoseDataset, prepare_session
    prepared = [prepare_session(s, labels, cfg.data.joint_set) for s in sessions]
    ds = PoseDataset(prepared, cfg.model.diffusion.window, keep_unlabelled=labels is None)
    batch = ds.__getitems__(np.arange(len(ds)))
    target = batch["gt"][:, 0] if labels is None else batch["y"][:, 0]
    weight = torch.isfinite(target).all(-1).float() if labels is None else batch["w"][:, 0]
    return batch["x"][:, 0], target, weight


def diffusion_study(checkpoint: Path, cfg, test: list, val: list) -> dict:
    """D3DP's hypotheses on the held-out clips: oracle, JPMA and mean MPJPE (mm) and the 90 %
    bound's coverage before and after calibrating it on the validation pseudo-labels."""
    from epiflow.models.checkpoint import load_model
    model = load_model(checkpoint)
    model.bound_scale.fill_(1.0)  # the Gaussian bound first (training calibrates it)
    x, gt, _ = _inputs(test, cfg, None)
    keep = torch.isfinite(gt).all((1, 2))
    x, gt = x[keep], gt[keep]
    outs = [model.sample(b) for b in x.split(1024)]
    cat = lambda k: torch.cat([getattr(o, k) for o in outs])  # noqa: E731
    hyps, root = cat("hypotheses"), model.root
    err_h = (hyps - gt[:, None]).norm(dim=-1)                                  # (N, H, J)
    mm = lambda e: 1000 * float(e.mean())  # noqa: E731
    res = {"hypotheses": hyps.shape[1], "p_best_mm": mm(err_h.mean(2).min(1).values),
           "j_best_mm": mm(err_h.min(1).values),
           "jpma_mm": mm((cat("jpma") - gt).norm(dim=-1)),
           "mean_mm": mm((cat("mean") - gt).norm(dim=-1)),
           "sigma_mm": mm(cat("sigma")[:, [j for j in range(gt.shape[1]) if j != root]])}
    err = (cat("pose") - gt).norm(dim=-1)
    joints = [j for j in range(gt.shape[1]) if j != root]
    res["coverage_gaussian"] = float((err <= cat("bound"))[:, joints].float().mean())
    xv, yv, wv = _inputs(val, cfg, "pseudo")
    res["bound_scale"] = model.calibrate_bound(xv, yv, wv)
    bound = torch.cat([model.sample(b).bound for b in x.split(1024)])
    res["coverage_calibrated"] = float((err <= bound)[:, joints].float().mean())
    res["bound_mm"] = mm(bound[:, joints])
    return res


def report(results: dict, study: dict | None, bound: float) -> None:
    print("\nCMU subject 03 (2 clips, a rig unlike the training one), every camera, "
          "root-relative, mm")
    print(f"{'model':<11}{'labels':<13}{'MPJPE':>8}{'P-MPJPE':>9}{'PSS@50':>8}"
          f"{'P / sup':>9}{'samples/s':>11}{'train s':>9}{'epochs':>8}")
    for (name, labels), r in results.items():
        sup = results.get((name, "gt"), r)["p_mpjpe_mm"]
        who = "label-free" if labels == "pseudo" else "supervised"
        print(f"{name:<11}{who:<13}{r['mpjpe_mm']:>8.1f}{r['p_mpjpe_mm']:>9.1f}{r['pss50']:>8.3f}"
              f"{r['p_mpjpe_mm'] / sup:>9.2f}{r['samples_per_s']:>11.0f}{r['train_s']:>9.0f}"
              f"{r['epochs']:>8.0f}")
    for name in dict.fromkeys(n for n, _ in results):
        if (name, "pseudo") in results and (name, "gt") in results:
            ratio = results[(name, "pseudo")]["p_mpjpe_mm"] / results[(name, "gt")]["p_mpjpe_mm"]
            print(f"{name}: label-free / supervised P-MPJPE {ratio:.2f} (target <= "
                  f"{BOUND_TARGET}): {'met' if ratio <= BOUND_TARGET else 'NOT met'}")
    if study:
        s = study
        print(f"\nD3DP (label-free), {s['hypotheses']} hypotheses, MPJPE mm: best hypothesis per "
              f"pose (oracle) {s['p_best_mm']:.1f}, per joint {s['j_best_mm']:.1f}; JPMA "
              f"{s['jpma_mm']:.1f}; mean {s['mean_mm']:.1f}; hypotheses' spread {s['sigma_mm']:.1f}")
        print(f"{bound:.0%} bound holds for {s['coverage_gaussian']:.1%} of joints (Gaussian "
              f"from the spread); calibrated on the validation pseudo-labels (x "
              f"{s['bound_scale']:.2f}, mean bound {s['bound_mm']:.0f} mm): "
              f"{s['coverage_calibrated']:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "lifters")
    parser.add_argument("--models", default="mlp,temporal,diffusion")
    parser.add_argument("--epochs", default="",
                        help="override recipes' train.epochs, e.g. mlp=10,temporal=3")
    args = parser.parse_args()
    if not (args.data / "cmu_mocap" / "02").is_dir():
        raise SystemExit(f"CMU mocap not found under {args.data}; pass --data or set EPIFLOW_DATA")
    torch.set_num_threads(1)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    epochs = {k: int(v) for k, v in (item.split("=") for item in args.epochs.split(",") if item)}
    configs = recipes(args.models.split(","), args.data, out / "cmu02.zarr", epochs)
    from epiflow.models.data import load_sessions
    from epiflow.models.train import ensure_store
    t0 = time.perf_counter()
    if not (out / "cmu02.zarr").exists():
        ensure_store(next(iter(configs.values())))
    print(f"store ready in {time.perf_counter() - t0:.0f} s")
    # built once; the runs read it as it is (no per-run check against the pipeline's settings)
    configs = {key: replace(cfg, data=replace(cfg.data, source=replace(cfg.data.source,
                                                                       kind="store")))
               for key, cfg in configs.items()}
    test = test_sessions(args.data)
    results = {}
    for (name, labels), cfg in configs.items():
        results[(name, labels)] = train_and_evaluate(cfg, out / f"{name}_{labels}", test)
        print(name, labels, {k: round(v, 3) for k, v in results[(name, labels)].items()},
              flush=True)
    study = None
    if ("diffusion", "pseudo") in configs:
        cfg = configs[("diffusion", "pseudo")]
        val = load_sessions(cfg.data.store, cfg.data.val_sessions)
        study = diffusion_study(out / "diffusion_pseudo" / "checkpoint.pt", cfg, test, val)
    report(results, study, next(iter(configs.values())).model.diffusion.bound)
    (out / "results.json").write_text(json.dumps(
        {"models": {f"{n}/{lab}": r for (n, lab), r in results.items()}, "diffusion": study},
        indent=2))


if __name__ == "__main__":
    main()
