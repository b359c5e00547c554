"""Loader throughput: the training data read whole into memory vs streamed from the store, beside
the models' own step time.

    python benchmarks/loader.py [--sessions 16] [--batch 256] [--buffer 4] [--out DIR] [--no-s3]

A store of ``--sessions`` synthetic 4-camera captures of the packaged CMU clips (the pipeline, in
this process, true cameras; 100-frame chunks) is written under ``--out`` (kept for the next run).
Measured, each on one thread, one epoch each (samples = (frame, camera) pairs with a label):

- **in memory** (``data.streaming = "off"``): reading every session, preparing and indexing it
  (once per run), then an epoch of shuffled batches from RAM;
- **streamed, local folder** (:class:`~epiflow.models.streaming.StreamingPoseDataset`,
  ``--buffer`` units of 300 frames shuffled together);
- **streamed, S3**: the same store copied to a moto S3 server started here, read over HTTP by
  s3fs (the server is Python on the same cores: a pessimistic stand-in for object storage);
  and **S3, serial**: the same read as it was before each unit's arrays and a group's units
  were read concurrently (:func:`serial_stream`), the baseline of that change;
- the peak of Python allocations (tracemalloc, a second pass) of each way;
- each model's training step (forward, backward, AdamW) on a batch, in samples/s, CPU.

The ratio loader / model says whether the loader keeps the model fed (> 1: it does) on this CPU.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CLIPS = ("02_01", "02_03", "02_04")   # packaged with epiflow: no data folder needed


def build_store(url: str, n: int) -> None:
    """``n`` synthetic sessions (the packaged clips, rigs of seeds 0..n-1) in one pipeline run."""
    from epiflow.pipeline.config import (CalibrateConfig, DetectConfig, RunConfig, SessionConfig,
                                         SyntheticConfig)
    from epiflow.pipeline.orchestrate import run_pipeline
    sessions = tuple(SessionConfig(name=f"s{k:03d}", synthetic=SyntheticConfig(
        clip=CLIPS[k % len(CLIPS)], seed=k)) for k in range(n))
    report = run_pipeline(RunConfig(out=url, sessions=sessions,
                                    calibrate=CalibrateConfig(method="given"),
                                    detect=DetectConfig(chunk_frames=100)),
                          progress=True, in_process=True)
    assert not report.failures, report.failures


def in_memory(url: str, batch: int) -> dict:
    from epiflow.models.data import PoseDataset, collate_batch, load_sessions, prepare_session
    t0 = time.perf_counter()
    data = PoseDataset([prepare_session(s, "pseudo") for s in load_sessions(url)])
    load = time.perf_counter() - t0
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True,
                                         collate_fn=collate_batch)
    t0 = time.perf_counter()
    n = sum(len(b["y"]) for b in loader)
    return {"samples": n, "load_s": load, "epoch_s": time.perf_counter() - t0}


def serial_stream(url: str, **kwargs):
    """A :class:`StreamingPoseDataset` reading as it did before units were read concurrently:
    each unit through the store's :class:`~epiflow.store.Session` (its metadata looked up
    again, its arrays one after the other, s3fs's size request before each file), one unit at
    a time. The same samples: the baseline of the "serial" rows."""
    import threading
    from epiflow.models.data import SessionArrays
    from epiflow.models.streaming import StreamingPoseDataset
    from epiflow.store import PoseStore

    class Serial(StreamingPoseDataset):
        def _unit_people(self, unit):
            with lock:
                if unit.session_id not in sessions:
                    sessions[unit.session_id] = store.session(unit.session_id)
                session, half = sessions[unit.session_id], self.window // 2
                lo, hi = max(unit.start - half, 0), min(unit.stop + half, session.n_frames)
                return SessionArrays.people_from_store(session, self.images, slice(lo, hi)), lo
    store, sessions, lock = PoseStore.open(url, "r"), {}, threading.Lock()
    return Serial(store, **kwargs)


def streamed(url: str, batch: int, buffer: int, serial: bool = False) -> dict:
    from epiflow.models.streaming import StreamingPoseDataset
    t0 = time.perf_counter()
    data = (serial_stream if serial else StreamingPoseDataset)(url, buffer_chunks=buffer)
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = sum(len(b["y"]) for b in data.epoch(batch, shuffle=True))
    return {"samples": n, "load_s": load, "epoch_s": time.perf_counter() - t0,
            "units": len(data.units)}


def peak_mb(fn, *args) -> float:
    """The peak of Python allocations while ``fn(*args)`` runs, MB."""
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def model_steps(batch: int, seconds: float = 4.0) -> dict[str, float]:
    """Training samples/s of each model (a step: forward, backward, AdamW) on random inputs of
    the recipe's shapes, CPU, one thread: steps for about ``seconds`` after a first one."""
    from epiflow.models.config import MODELS, ModelConfig, build_model
    out = {}
    for name in MODELS:
        if name == "image":
            continue  # reads person crops, not this store's keypoints
        model = build_model(ModelConfig(name=name), 17)
        W = model.input_window
        x = torch.randn(batch, W, 17, 2)
        y = torch.randn(batch, 17, 3)
        opt = torch.optim.AdamW(model.parameters(), 1e-4)
        model.train()

        def step():
            kwargs = {"target": y} if getattr(model, "reads_target", False) else {}
            loss = (model(x, **kwargs) - y).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        step()
        t0, steps = time.perf_counter(), 0
        while steps < 2 or time.perf_counter() - t0 < seconds:
            step()
            steps += 1
        out[name] = batch * steps / (time.perf_counter() - t0)
        print(f"  {name}: {out[name]:.0f} samples/s", file=sys.stderr)
    return out


def s3_copy(local: str):
    """A moto S3 server with the store copied to ``s3://bench/store.zarr``; (server, url)."""
    from moto.server import ThreadedMotoServer
    import s3fs
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=f"http://{host}:{port}")
    fs = s3fs.S3FileSystem()
    fs.mkdir("bench")
    fs.put(local, "bench/store.zarr", recursive=True)
    return server, "s3://bench/store.zarr"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--buffer", type=int, default=4)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "loader")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 (moto) row")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    url = str((args.out / f"store_{args.sessions}.zarr").resolve())
    if not Path(url).is_dir():
        t0 = time.perf_counter()
        build_store(url, args.sessions)
        print(f"store of {args.sessions} sessions built in {time.perf_counter() - t0:.0f} s")
    print("measuring the loaders, then the models' steps", file=sys.stderr)
    rows = {"in memory": in_memory(url, args.batch),
            "streamed, local": streamed(url, args.batch, args.buffer)}
    mem = {"in memory": peak_mb(in_memory, url, args.batch),
           "streamed, local": peak_mb(streamed, url, args.batch, args.buffer)}
    if not args.no_s3:
        server, s3_url = s3_copy(url)
        try:
            rows["S3 (moto), serial"] = streamed(s3_url, args.batch, args.buffer, serial=True)
            rows["streamed, S3 (moto)"] = streamed(s3_url, args.batch, args.buffer)
        finally:
            server.stop()
        mem["streamed, S3 (moto)"] = mem["S3 (moto), serial"] = float("nan")
    models = model_steps(args.batch)
    report(rows, mem, models, args)


def report(rows: dict, mem: dict, models: dict, args) -> None:
    n = rows["in memory"]["samples"]
    print(f"\n{args.sessions} sessions, {n} samples, batch {args.batch}, one thread")
    print(f"{'loader':<22}{'start s':>9}{'epoch s':>9}{'samples/s':>11}{'peak MB':>9}"
          f"{'same samples':>14}")
    for name, r in rows.items():
        rate = r["samples"] / r["epoch_s"]
        print(f"{name:<22}{r['load_s']:>9.2f}{r['epoch_s']:>9.2f}{rate:>11.0f}"
              f"{mem[name]:>9.1f}{'yes' if r['samples'] == n else 'NO':>14}")
    rates = {name: r["samples"] / r["epoch_s"] for name, r in rows.items()}
    print("\nloader samples/s over the model step's (> 1: the loader keeps it fed)")
    print(f"{'model step (CPU)':<18}{'samples/s':>10}" + "".join(f"{k:>21}" for k in rates))
    for name, rate in models.items():
        print(f"{name:<18}{rate:>10.0f}" + "".join(f"{r / rate:>21.2f}" for r in rates.values()))
    ratio = mem["streamed, local"] / mem["in memory"]
    print(f"\npeak memory streamed / in memory: {ratio:.2f} (the in-memory path grows with the "
          f"store, the streamed one with --buffer)")


if __name__ == "__main__":
    main()
