"""Training throughput on a GPU: samples per second and GPU utilisation for each model.

    python benchmarks/gpu_training.py [--seconds 25] [--compile] [--cpu] [--smoke]

Self-contained (no shared data): synthetic captures of the packaged CMU clips by 24 rigs (H1's
``cmu_capture``, seeds 0-23), written by the pipeline (in this process, the true cameras) into
a temporary store, about 24,000 camera-frames; the image model trains on the 64 px crops the
pipeline draws from the 2D skeletons. Each model runs the real
trainer (:func:`epiflow.models.train.fit`: bf16 autocast, pinned memory, non-blocking copies)
for about ``--seconds`` seconds; samples/s is the median over epochs after the first (which
includes CUDA start-up), the GPU utilisation the mean of ``torch.cuda.utilization`` (or
``nvidia-smi``) sampled every 0.2 s while it trains. On a machine without CUDA it prints why and
exits; ``--cpu`` runs the same measurement on the CPU (a dry run of the script; no utilisation);
``--smoke`` is the check that the script runs (3 rigs, 3 steps of 256 samples per model, on the
CPU when there is no GPU). Every model of :data:`epiflow.models.config.MODELS` is measured, and the MLP once more
with its data streamed from the store (``mlp, streamed``: :mod:`epiflow.models.streaming`, the
path for stores larger than memory). The whole run takes under three minutes.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

BATCH = {"mlp": 4096, "image": 256}   # per model; the others (windowed lifters): 1024
STREAMED = "mlp, streamed"


def models() -> dict:
    """name -> (model section overrides, batch size, streamed?) for every model epiflow has."""
    from epiflow.models.config import MODELS
    rows = {name: ({"name": name}, BATCH.get(name, 1024), False) for name in MODELS}
    rows[STREAMED] = ({"name": "mlp"}, BATCH["mlp"], True)
    return rows


def gpu_utilisation() -> float | None:
    """Current GPU utilisation in percent, or None when it cannot be read."""
    try:
        return float(torch.cuda.utilization())
    except Exception:  # noqa: BLE001 - pynvml missing: ask nvidia-smi
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu",
                                  "--format=csv,noheader,nounits"], capture_output=True,
                                 text=True, timeout=5)
            return float(out.stdout.split()[0])
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            return None


class Sampler(threading.Thread):
    """Samples GPU utilisation every ``period`` seconds until stopped."""

    def __init__(self, period: float = 0.2):
        super().__init__(daemon=True)
        self.period, self.values, self.stop = period, [], threading.Event()

    def run(self):
        while not self.stop.wait(self.period):
            value = gpu_utilisation()
            if value is not None:
                self.values.append(value)


def sessions(crops: bool, rigs: int = 24) -> tuple[list, str]:
    """3 packaged clips x ``rigs`` rigs written by the pipeline with the true cameras (and 64 px
    crops drawn from the 2D skeleton), read back whole from the store; and the store's path."""
    from epiflow.models.data import load_sessions
    from epiflow.pipeline.config import (CalibrateConfig, RunConfig, SessionConfig, StoreConfig,
                                         SyntheticConfig)
    from epiflow.pipeline.orchestrate import run_pipeline
    store = Path(tempfile.mkdtemp(prefix="epiflow_gpu_")) / "sessions.zarr"
    run_pipeline(RunConfig(
        out=str(store), calibrate=CalibrateConfig(method="given"),
        store=StoreConfig(crop_size=64 if crops else 0),
        sessions=tuple(SessionConfig(name=f"{clip}_{seed}",
                                     synthetic=SyntheticConfig(clip=clip, seed=seed))
                       for seed in range(rigs) for clip in ("02_01", "02_03", "02_04"))),
        progress=False, in_process=True)
    return load_sessions(str(store), need_crops=crops), str(store)


def measure(name: str, seconds: float, compile_: bool, device: str, data_cache: dict,
            rigs: int = 24, smoke: bool = False) -> dict:
    from epiflow.config import from_dict, to_dict
    from epiflow.models.config import ExperimentConfig
    from epiflow.models.train import build_data, fit
    section, batch, streamed = models()[name]
    batch = min(batch, 256) if smoke else batch
    base = ExperimentConfig()
    cfg = from_dict(ExperimentConfig, {
        **to_dict(base), "model": {**to_dict(base.model), **section},
        "data": {**to_dict(base.data), "store": "synthetic", "val_fraction": 0.0},
        "train": {**to_dict(base.train), "epochs": 10_000, "batch_size": batch, "device": device,
                  "compile": compile_, "progress": False}})
    key = name == "image"
    if key not in data_cache:
        data_cache[key] = sessions(crops=key, rigs=rigs)
    loaded, store = data_cache[key]
    if streamed:
        cfg = replace(cfg, data=replace(cfg.data, store=store, streaming="on"))
        data = build_data(cfg)
    else:
        data = build_data(cfg, loaded)
    # a short first run to find the epoch time, then one of about `seconds`
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        probe = replace(cfg.train, epochs=1, max_steps=3) if smoke else \
            replace(cfg.train, epochs=2)
        fit(replace(cfg, train=probe), Path(tmp) / "probe", data)
        epoch_s = (time.perf_counter() - t0) / 2
        epochs = max(3, int(seconds / max(epoch_s, 1e-3)))
        if smoke:   # a few steps: that every model trains here, not how fast
            cfg = replace(cfg, train=replace(cfg.train, max_steps=3))
        sampler = Sampler()
        sampler.start()
        history = fit(replace(cfg, train=replace(cfg.train, epochs=epochs)), Path(tmp) / "run",
                      data).history
        sampler.stop.set()
        sampler.join()
    rates = [r["samples_per_s"] for r in history[1:]] or [history[0]["samples_per_s"]]
    n = data.train.n_samples_bound if streamed else len(data.train)
    return {"samples": n, "batch": batch, "epochs": len(history),
            "samples_per_s": statistics.median(rates),
            "gpu_util": float(np.mean(sampler.values)) if sampler.values else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=25.0, help="training time per model")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models")
    parser.add_argument("--cpu", action="store_true", help="measure on the CPU (dry run)")
    parser.add_argument("--smoke", action="store_true",
                        help="a check that the script runs: 3 rigs, 3 steps per model (CPU if no GPU)")
    args = parser.parse_args()
    rigs = 24
    if args.smoke:
        args.seconds, rigs, args.cpu = 2.0, 3, args.cpu or not torch.cuda.is_available()
    if not torch.cuda.is_available() and not args.cpu:
        print("gpu_training: skipped: torch sees no CUDA device on this machine "
              f"(torch {torch.__version__}); run it on a GPU machine, or pass --cpu for a dry run")
        return
    device = "cpu" if args.cpu else "cuda"
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    print(f"device: {name}; bf16 autocast, pinned memory, non-blocking copies"
          f"{', torch.compile' if args.compile else ''}")
    cache, rows = {}, {}
    for model in models():
        rows[model] = measure(model, args.seconds, args.compile, device, cache, rigs, args.smoke)
        print(f"  {model}: {rows[model]['samples_per_s']:.0f} samples/s", file=sys.stderr)
    print(f"\n{'model':<15}{'batch':>7}{'samples':>9}{'epochs':>8}{'samples/s':>12}"
          f"{'GPU util %':>12}")
    for model, r in rows.items():
        print(f"{model:<15}{r['batch']:>7}{r['samples']:>9}{r['epochs']:>8}"
              f"{r['samples_per_s']:>12.0f}{r['gpu_util']:>12.0f}")


if __name__ == "__main__":
    main()
