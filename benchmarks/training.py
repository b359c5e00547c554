"""Monocular 3D pose without 3D ground truth: self-supervised vs supervised vs EpipolarPose labels.

    python benchmarks/training.py [--data ../shared/data] [--out benchmarks/out/training]
                                  [--seeds 1] [--epochs N] [--cameras from_people|true]

Training data: the recipes ``configs/cmu_selfsup_mlp.toml`` and ``configs/cmu_supervised_mlp.toml``
as they are (CMU subject 02, ten clips, synthetic 4-camera captures, 2D corrupted like a
detector's), built by the pipeline (``epiflow run``'s stages, in this process) into two stores:
each clip's cameras recovered from the person (H3's ``calibrate_from_people``), then two label
sets:

- **self-supervised**: robust weighted triangulation over all views (H4's
  ``triangulate_sequence``), the recipe as written;
- **two-view**: EpipolarPose's labels (H4's ``triangulate_two_view``: cameras 0 and 1, plain
  linear triangulation, unweighted), the same model and training otherwise;
- **supervised**: the ground truth (``data.labels = "gt"``), the upper bound.

Evaluation: CMU subject 03 (both clips, never seen in training) captured by a *different* rig
(other seed, radius 4 m, focal 1000 px, 3 px noise), every camera, its true intrinsics;
root-relative poses in each camera's frame. Printed: MPJPE, N-MPJPE, P-MPJPE, PSS@50 (mm, per
model, the mean over ``--seeds`` training seeds with P-MPJPE's range) with P-MPJPE's ratio to
the supervised model's, the labels' own MPJPE on the training data, and the times (building the
store: cameras + labels; training). Runs already in ``--out`` are reused (delete it to retrain). Targets: self-supervised
P-MPJPE within 1.2x of supervised and below the two-view model's; the CPU recipe (store + self-
supervised training) within 10 minutes.
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


def build_stores(source, out: Path) -> dict:
    """Subject 02 through the pipeline (in this process) twice, into two stores: the robust
    multi-view labels and EpipolarPose's two-view labels; each run recovers the cameras from
    the person (the same cameras: the same input). Returns the stores, the labels' MPJPE
    against the truth (mm, in the cameras' frames) and the times (s)."""
    from epiflow.models.config import run_config
    from epiflow.models.data import load_sessions, prepare_session
    from epiflow.pipeline.orchestrate import run_pipeline
    stores, label_mm, times = {}, {}, {}
    for kind in ("robust", "two_view"):
        url = str(out / f"cmu02_{kind}.zarr")
        t0 = time.perf_counter()
        report = run_pipeline(run_config(replace(source, labels=kind), url), progress=True,
                              in_process=True)
        times[f"{kind}_s"] = time.perf_counter() - t0
        times.setdefault("cameras_s", report.stages.get("calibrate", {}).get("busy_s", 0.0))
        errors = []
        for session in load_sessions(url):
            p = prepare_session(session, "pseudo")
            errors.append(np.linalg.norm(p.y - p.gt, axis=-1)[p.w > 0])
        label_mm[kind] = 1000 * float(np.concatenate(errors).mean())
        stores[kind] = url
    return {"stores": stores, "label_mpjpe_mm": label_mm, **times}


def test_sessions(data_dir: Path) -> list:
    """Subject 03's clips seen by a rig unlike the training one (true cameras, ground truth)."""
    from epiflow.datasets.synthetic import Corruption, cmu_capture
    from epiflow.models.data import SessionArrays
    return [SessionArrays.from_capture(cmu_capture(clip, 4, Corruption(noise_px=3.0), seed=7,
                                                   data_dir=data_dir, radius=4.0, focal_px=1000.0))
            for clip in ("03_01", "03_02")]


def train_and_evaluate(name: str, cfg, out: Path, sessions: list) -> dict:
    """Train ``cfg`` into ``out/name`` (resuming a finished run is instant) and evaluate it."""
    from epiflow.models.evaluate import evaluate_checkpoint
    from epiflow.models.train import train
    t0 = time.perf_counter()
    result = train(cfg, out / name)
    seconds = time.perf_counter() - t0
    metrics = evaluate_checkpoint(result.checkpoint, sessions)
    return {"train_s": seconds, "epochs": result.history[-1]["epoch"],
            "samples_per_s": float(np.mean([r["samples_per_s"] for r in result.history])),
            **metrics}


def over_seeds(name: str, cfg, out: Path, sessions: list, seeds: int) -> dict:
    """:func:`train_and_evaluate` with ``train.seed`` = 0 .. seeds-1; the overall metrics as
    the mean over seeds, with each seed's P-MPJPE kept."""
    runs = [train_and_evaluate(f"{name}_seed{k}", replace(cfg, train=replace(cfg.train, seed=k)),
                               out, sessions) for k in range(seeds)]
    keys = runs[0]["overall"].keys()
    overall = {k: float(np.mean([r["overall"][k] for r in runs])) for k in keys}
    return {"overall": overall, "p_mpjpe_per_seed": [r["overall"]["p_mpjpe_mm"] for r in runs],
            "train_s": float(np.mean([r["train_s"] for r in runs])), "runs": runs}


def main() -> None:
    from epiflow.models.config import load_experiment
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "training")
    parser.add_argument("--epochs", type=int, default=0, help="override train.epochs (0: recipe)")
    parser.add_argument("--cameras", default="", help="override data.source.cameras")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds per model")
    args = parser.parse_args()
    if not (args.data / "cmu_mocap" / "02").is_dir():
        raise SystemExit(f"CMU mocap not found under {args.data}; pass --data or set EPIFLOW_DATA")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    overrides = [f"data.source.data_dir={json.dumps(str(args.data.resolve()))}",
                 "train.progress=false"]
    overrides += [f"train.epochs={args.epochs}"] if args.epochs else []
    overrides += [f"data.source.cameras={json.dumps(args.cameras)}"] if args.cameras else []
    selfsup = load_experiment(REPO / "configs" / "cmu_selfsup_mlp.toml", overrides)
    supervised = load_experiment(REPO / "configs" / "cmu_supervised_mlp.toml", overrides)

    t0 = time.perf_counter()
    built = build_stores(selfsup.data.source, out)
    print(f"stores built in {time.perf_counter() - t0:.0f} s (the robust one {built['robust_s']:.0f} s, "
          f"its cameras {built['cameras_s']:.0f} s; the two-view one {built['two_view_s']:.0f} s)")
    sessions = test_sessions(args.data)
    def on(cfg, store):
        return replace(cfg, data=replace(cfg.data, store=built["stores"][store]))
    runs = {"self-supervised": on(selfsup, "robust"), "supervised": on(supervised, "robust"),
            "two-view (EpipolarPose)": on(selfsup, "two_view")}
    results = {name: over_seeds(name.split()[0], cfg, out, sessions, args.seeds)
               for name, cfg in runs.items()}
    report(results, built)
    (out / "results.json").write_text(json.dumps({"build": built, "models": results}, indent=2,
                                                 default=float))


def report(results: dict, built: dict) -> None:
    sup = results["supervised"]["overall"]["p_mpjpe_mm"]
    label_mm = {"self-supervised": built["label_mpjpe_mm"]["robust"], "supervised": 0.0,
                "two-view (EpipolarPose)": built["label_mpjpe_mm"]["two_view"]}
    seeds = len(results["supervised"]["p_mpjpe_per_seed"])
    print(f"\nCMU subject 03 (2 clips, a different rig), every camera, root-relative, mm; "
          f"mean over {seeds} training seed(s)")
    print(f"{'model':<26}{'labels':>8}{'MPJPE':>8}{'N-MPJPE':>9}{'P-MPJPE':>9}{'(range)':>14}"
          f"{'PSS@50':>8}{'P / sup':>9}{'train s':>9}")
    for name, r in results.items():
        m, per = r["overall"], r["p_mpjpe_per_seed"]
        spread = f"{min(per):.1f}-{max(per):.1f}" if len(per) > 1 else "-"
        print(f"{name:<26}{label_mm[name]:>8.1f}{m['mpjpe_mm']:>8.1f}{m['n_mpjpe_mm']:>9.1f}"
              f"{m['p_mpjpe_mm']:>9.1f}{spread:>14}{m['pss50']:>8.3f}{m['p_mpjpe_mm'] / sup:>9.2f}"
              f"{r['train_s']:>9.0f}")
    print("(labels: the training labels' own MPJPE against the truth, per camera, mm; "
          "train s: per run)")
    ss = results["self-supervised"]["overall"]["p_mpjpe_mm"]
    tv = results["two-view (EpipolarPose)"]["overall"]["p_mpjpe_mm"]
    recipe = built["robust_s"] + results["self-supervised"]["train_s"]  # cameras inside
    print(f"\nself-supervised / supervised P-MPJPE: {ss / sup:.2f} (target <= 1.20): "
          f"{'met' if ss / sup <= 1.2 else 'NOT met'}")
    print(f"self-supervised vs two-view P-MPJPE: {ss:.1f} vs {tv:.1f} mm (target: lower): "
          f"{'met' if ss < tv else 'NOT met'}")
    print(f"self-supervised recipe on this machine (cameras + labels + training): {recipe:.0f} s "
          f"(target <= 600 s): {'met' if recipe <= 600 else 'NOT met'}")


if __name__ == "__main__":
    main()
