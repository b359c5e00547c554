"""Training: one loop that runs on a CPU, a GPU, or several GPUs / nodes through Ray Train.

:func:`train` is the entry point (``epiflow train``). It reads (or first builds) the store, picks
the device, and either runs :func:`fit` in this process or hands it to Ray Train's
``TorchTrainer`` with ``train.ray_workers`` workers, each of which reads the sessions whole into
its memory and trains on its shard (``prepare_model``, ``prepare_data_loader``). A store larger
than ``data.stream_above_mb`` (or ``data.streaming = "on"``) is streamed instead, chunk by chunk,
each rank and DataLoader worker reading its own units (:mod:`epiflow.models.streaming`);
``train.init`` starts from a trained checkpoint's weights (fine-tuning).

The output folder gets ``checkpoint.pt`` (written after every epoch; training resumes from it
when it is there), ``metrics.csv`` (one row per epoch) and ``curves.png``. On CUDA: bf16
autocast, pinned memory, non-blocking copies and, when asked, ``torch.compile``.
"""
from __future__ import annotations

import contextlib
import csv
import itertools
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from epiflow.models import losses as L
from epiflow.models import metrics as M
from epiflow.models.checkpoint import (Checkpoint, CheckpointError, check_compatible,
                                       load_checkpoint, save_checkpoint, set_rng_state,
                                       unwrap_model)
from epiflow.models.augment import augment_sessions
from epiflow.models.config import ExperimentConfig, build_model
from epiflow.models.data import (PoseDataset, collate_batch, load_sessions, mirror_batch,
                                 prepare_session, ready_sessions, split_sessions)
from epiflow.models.distributed import train_with_ray
from epiflow.models.streaming import StreamingPoseDataset, use_streaming
from epiflow.outputs import atomic_open
from epiflow.skeleton import get_joint_set

__all__ = ["TrainData", "TrainResult", "resolve_device", "ensure_store", "StoreBuildError",
           "build_data", "init_checkpoint",
           "make_loader", "compute_loss", "validate", "calibrate_uncertainty", "fit", "train",
           "METRICS_FILE", "CHECKPOINT_FILE"]

CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.csv"
CURVES_FILE = "curves.png"


@dataclass
class TrainData:
    """The datasets of one run: ``train`` and ``val`` (None without validation sessions)."""

    train: PoseDataset | StreamingPoseDataset
    val: PoseDataset | StreamingPoseDataset | None
    joint_set: str


@dataclass
class TrainResult:
    """What a run left: its folder, checkpoint and the metrics rows (one per epoch)."""

    out_dir: Path
    checkpoint: Path
    history: list[dict] = field(default_factory=list)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device = 'cuda' but torch sees no CUDA device; use 'auto' or 'cpu'")
    return torch.device(name)


#: seconds ``epiflow train`` waits for another run holding its recipe's store (then LeaseError)
STORE_WAIT_S = 900.0


class StoreBuildError(RuntimeError):
    """Building a recipe's store from its ``data.source`` failed for some sessions (the input was
    readable; a stage failed); the message names each session, stage and reason."""


def ensure_store(cfg: ExperimentConfig) -> str:
    """The store's path/URL; with a ``data.source``, the pipeline first builds what the store
    lacks of it (:func:`~epiflow.models.config.run_config`, in this process: a complete store
    costs a check per session, an interrupted build resumes)."""
    from epiflow.store import PoseStore
    if not cfg.data.store:
        raise ValueError("config key 'data.store' is empty; name the pose store to train on")
    if cfg.data.source.kind == "store":
        try:
            PoseStore.open(cfg.data.store, "r")
        except FileNotFoundError:
            raise FileNotFoundError(
                f"pose store {cfg.data.store!r} does not exist; fill it with `epiflow run`, or "
                f"give a [data.source] (kind = 'cmu_synthetic') to build it") from None
        return cfg.data.store
    from epiflow.models.config import run_config
    from epiflow.pipeline.orchestrate import run_pipeline
    # another training checking or building the same store holds its lease for that long: wait
    # for it (a complete store is a check per session) rather than fail
    report = run_pipeline(run_config(cfg.data.source, cfg.data.store),
                          progress=cfg.train.progress, in_process=True, command="train",
                          lease_wait_s=STORE_WAIT_S)
    if report.failures:
        reasons = "; ".join(f"{f['session']} at {f['stage']}: {f['reason']}"
                            for f in report.failures)
        raise StoreBuildError(f"building the store {cfg.data.store!r} from data.source failed for "
                           f"some sessions: {reasons}; see `epiflow inspect {cfg.data.store}`; "
                           f"to build it afresh, delete it or name another data.store")
    return cfg.data.store


def build_data(cfg: ExperimentConfig, sessions=None) -> TrainData:
    """Training and validation datasets for ``cfg``.

    Args:
        sessions: in-memory :class:`SessionArrays` to use instead of the store (tests, benchmarks).
    """
    image = cfg.model.name == "image"
    window = build_model(cfg.model, len(get_joint_set(cfg.data.joint_set))).input_window
    if sessions is None:
        ensure_store(cfg)
        stream, why = use_streaming(cfg.data.streaming, cfg.data.store, cfg.data.sessions or None,
                                    cfg.data.joint_set, cfg.data.stream_above_mb)
        if stream:
            return _streaming_data(cfg, window, image, why)
        sessions = load_sessions(cfg.data.store, cfg.data.sessions or None, need_crops=image)
    names = list(dict.fromkeys(s.session_id for s in sessions))  # a session's people go together
    train_ids, val_ids = split_sessions(names, cfg.data.val_fraction, cfg.data.val_sessions)

    def dataset(ids, augment=False):
        chosen = [s for s in sessions if s.session_id in ids]
        if augment:  # new sequences from the training labels, virtual cameras (models.augment)
            chosen = augment_sessions(chosen, cfg.data.augment, cfg.data.labels,
                                      cfg.data.joint_set, cfg.train.progress)
        prepared = [prepare_session(s, cfg.data.labels, cfg.data.joint_set, cfg.data.level)
                    for s in chosen]
        return PoseDataset(prepared, window, cfg.data.views, images=image)
    return TrainData(dataset(train_ids, augment=not image), dataset(val_ids) if val_ids else None,
                     cfg.data.joint_set)


def _streaming_data(cfg: ExperimentConfig, window: int, image: bool, why: str) -> TrainData:
    """Training and validation sets read from the store chunk by chunk
    (:class:`~epiflow.models.streaming.StreamingPoseDataset`), split by session."""
    names = [s.id for s in ready_sessions(cfg.data.store, cfg.data.sessions or None)]
    train_ids, val_ids = split_sessions(names, cfg.data.val_fraction, cfg.data.val_sessions)
    if cfg.train.progress:
        print(f"streaming the store {cfg.data.store} ({why}), "
              f"{cfg.data.shuffle_buffer} chunks at a time")

    def dataset(ids, augment=None):   # the training sessions augmented as in memory
        return StreamingPoseDataset(cfg.data.store, ids, labels=cfg.data.labels,
                                    joint_set=cfg.data.joint_set, window=window,
                                    views=cfg.data.views, images=image,
                                    buffer_chunks=cfg.data.shuffle_buffer, augment=augment,
                                    level=cfg.data.level)
    return TrainData(dataset(train_ids, cfg.data.augment), dataset(val_ids) if val_ids else None,
                     cfg.data.joint_set)


def make_loader(dataset: PoseDataset | StreamingPoseDataset, cfg: ExperimentConfig,
                device: torch.device, shuffle: bool, epoch: int = 0
                ) -> torch.utils.data.DataLoader:
    """A DataLoader whose order depends only on (seed, epoch): resumable, reproducible."""
    if isinstance(dataset, StreamingPoseDataset):   # batches come whole, sharded by the dataset
        return torch.utils.data.DataLoader(
            dataset.epoch(cfg.train.batch_size, shuffle, cfg.train.seed, epoch,
                          cfg.train.num_workers),
            batch_size=None, collate_fn=collate_batch, num_workers=cfg.train.num_workers,
            pin_memory=device.type == "cuda")
    generator = torch.Generator().manual_seed(cfg.train.seed * 100_003 + epoch)
    return torch.utils.data.DataLoader(
        dataset, batch_size=cfg.train.batch_size, shuffle=shuffle, generator=generator,
        collate_fn=collate_batch, num_workers=cfg.train.num_workers,
        pin_memory=device.type == "cuda", drop_last=False,
        persistent_workers=False)


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _forward(model: nn.Module, batch: dict) -> torch.Tensor:
    """Predictions (B, V, J, 3) for a batch of V-view samples. A model that ``reads_target``
    (the diffusion lifter: it denoises the noised label) gets the labels in training mode."""
    B, V = batch["y"].shape[:2]
    if "image" in batch:
        inp = batch["image"].flatten(0, 1).float() / 255.0
    else:
        inp = batch["x"].flatten(0, 1)
    if model.training and getattr(unwrap_model(model), "reads_target", False):
        return model(inp, target=batch["y"].flatten(0, 1)).view(B, V, *batch["y"].shape[2:])
    return model(inp).view(B, V, *batch["y"].shape[2:])


def compute_loss(pred: torch.Tensor, batch: dict, cfg: ExperimentConfig
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted sum of the configured loss terms and each term's value.

    Args:
        pred: (B, V, J, 3) predictions, root-relative metres in each view's camera frame.
        batch: a :class:`PoseDataset` batch on the same device.
    """
    w, parts = cfg.loss, {}
    flat = pred.flatten(0, 1)
    label_fn = L.scale_invariant_loss if w.scale_invariant else L.pseudo_label_loss
    parts["label"] = label_fn(flat, batch["y"].flatten(0, 1), batch["w"].flatten(0, 1))
    if w.multiview > 0 and pred.shape[1] > 1:
        parts["multiview"] = _multiview(pred, batch)
    if w.reprojection > 0:
        parts["reprojection"] = L.reprojection_loss(flat, batch["uv"].flatten(0, 1),
                                                    batch["conf"].flatten(0, 1))
    if w.symmetry > 0:
        parts["symmetry"] = L.bone_symmetry_loss(flat, get_joint_set(cfg.data.joint_set))
    weights = {"label": w.label, "multiview": w.multiview, "reprojection": w.reprojection,
               "symmetry": w.symmetry}
    total = sum(weights[k] * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}


def _multiview(pred: torch.Tensor, batch: dict) -> torch.Tensor:
    """Consistency of each view with the next one (ring), rotated by the relative pose."""
    V, R, conf = pred.shape[1], batch["R"].float(), batch["conf"]
    terms = []
    for i in range(V):
        j = (i + 1) % V
        R_ij = R[:, j] @ R[:, i].transpose(-1, -2)
        terms.append(L.multiview_consistency_loss(pred[:, i], pred[:, j], R_ij,
                                                  torch.minimum(conf[:, i], conf[:, j])))
    return torch.stack(terms).mean()


@torch.no_grad()
def validate(model: nn.Module, loader, device: torch.device, amp: bool = False
             ) -> dict[str, float]:
    """Mean per-joint error of the model on a loader, millimetres: against the labels
    (``val_label_mm``, labelled joints only) and ground truth (``val_gt_mm``) when present, and
    against ground truth after Procrustes alignment (``val_gt_p_mm``, P-MPJPE, on the device:
    :func:`~epiflow.models.metrics.p_mpjpe_torch`)."""
    model.eval()
    sums = {"val_label_mm": [0.0, 0.0], "val_gt_mm": [0.0, 0.0], "val_gt_p_mm": [0.0, 0.0]}
    for batch in loader:
        batch = _to_device(batch, device)
        with _autocast(device, amp):
            pred = _forward(model, batch).float().flatten(0, 1)
        for key, target in (("val_label_mm", "y"), ("val_gt_mm", "gt")):
            if target not in batch:
                continue
            tgt = batch[target].flatten(0, 1)
            mask = (batch["w"].flatten(0, 1) > 0) if target == "y" else torch.isfinite(tgt).all(-1)
            t, m = L.masked_target(tgt, mask.float())
            err = (pred - t).norm(dim=-1)
            sums[key][0] += float((err * m).sum()) * 1000
            sums[key][1] += float(m.sum())
        if "gt" in batch:
            per_pose = M.p_mpjpe_torch(pred.double(), batch["gt"].flatten(0, 1).double(),
                                       reduction="none")
            done = torch.isfinite(per_pose)
            sums["val_gt_p_mm"][0] += float(per_pose[done].sum()) * 1000
            sums["val_gt_p_mm"][1] += float(done.sum())
    model.train()
    return {k: s / n for k, (s, n) in sums.items() if n > 0}


def _autocast(device: torch.device, amp: bool):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


def _scheduler(optimizer, cfg: ExperimentConfig, total_steps: int):
    lo = cfg.train.lr_min_ratio
    kind = cfg.train.scheduler

    def factor(step: int) -> float:
        progress = min(step / max(total_steps, 1), 1.0)
        if kind == "cosine":
            return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * progress))
        if kind == "exponential":
            return lo ** progress
        return 1.0
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@contextlib.contextmanager
def _threads(n: int):
    """torch's CPU thread count set to ``n`` (> 0) for the block, restored after it."""
    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class _Run:
    """The mutable state of a training run (model, optimiser, counters)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    history: list = field(default_factory=list)
    plotted: float = 0.0  # time.monotonic() of the last curves plot
    bar: object = None  # the run's one progress bar (steps), or None when hidden


def _setup(cfg: ExperimentConfig, data: TrainData, device: torch.device, out_dir: Path,
           resume: bool, steps_per_epoch: int, wrap=None) -> _Run:
    _seed_everything(cfg.train.seed)
    model = build_model(cfg.model, len(get_joint_set(data.joint_set)))
    ckpt_path = out_dir / CHECKPOINT_FILE
    ckpt = load_checkpoint(ckpt_path) if resume and ckpt_path.is_file() else None
    if ckpt is not None:
        check_compatible(ckpt, cfg)
        model.load_state_dict(ckpt.data["model"]["state_dict"])
    elif cfg.train.init:   # fine-tuning: a trained model's weights, a fresh optimiser
        model.load_state_dict(init_checkpoint(cfg).data["model"]["state_dict"])
    model = wrap(model) if wrap else model.to(device)
    if cfg.train.compile:
        model = torch.compile(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr,
                                  weight_decay=cfg.train.weight_decay)
    total = cfg.train.max_steps or cfg.train.epochs * steps_per_epoch
    run = _Run(model, optimizer, _scheduler(optimizer, cfg, total))
    if ckpt is not None:
        optimizer.load_state_dict(ckpt.data["optimizer"])
        run.scheduler.load_state_dict(ckpt.data["scheduler"])
        set_rng_state(ckpt.data["rng"])
        run.epoch, run.step = ckpt.epoch, ckpt.step
        run.batch_in_epoch = int(ckpt.data["metrics"].get("batch_in_epoch", 0))
        run.history = _read_history(out_dir / METRICS_FILE, run.epoch, run.batch_in_epoch > 0)
    return run


def init_checkpoint(cfg: ExperimentConfig) -> Checkpoint:
    """The checkpoint ``train.init`` names, checked to fit ``cfg`` (the same model, settings and
    joint set): a :class:`CheckpointError` naming it and what to do otherwise."""
    try:
        ckpt = load_checkpoint(cfg.train.init)
        check_compatible(ckpt, cfg, elsewhere=False)  # the advice is this function's
    except (CheckpointError, FileNotFoundError) as err:
        raise CheckpointError(f"cannot start from --init / train.init: {err}. Give a checkpoint "
                              f"of the recipe's model (model.name = {cfg.model.name!r}) trained "
                              f"with the same model settings, or none") from None
    return ckpt


def _read_history(path: Path, epochs: int, partial: bool) -> list[dict]:
    """Metric rows of the epochs a checkpoint covers (rows written after it are dropped)."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = [{k: float(v) if v not in ("", None) else math.nan for k, v in r.items()}
                for r in csv.DictReader(f)]
    return rows[:epochs + (1 if partial else 0)]


def _write_history(out_dir: Path, history: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    with atomic_open(out_dir / METRICS_FILE, "w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(history)


def _train_epoch(run: _Run, loader, cfg: ExperimentConfig, device: torch.device
                 ) -> tuple[dict, bool]:
    """One pass (resuming at ``run.batch_in_epoch``), advancing the run's progress bar; returns
    (mean terms, stopped early)."""
    run.model.train()
    sums, n, samples, t0 = {}, 0, 0, time.perf_counter()
    batches = itertools.islice(iter(loader), run.batch_in_epoch, None)
    if run.bar is not None:
        run.bar.set_description(f"epoch {run.epoch + 1}/{cfg.train.epochs}")
    flip = torch.as_tensor(get_joint_set(cfg.data.joint_set).flip_permutation, device=device)
    for batch in batches:
        batch = _to_device(batch, device)
        if cfg.data.mirror:
            batch = mirror_batch(batch, flip, torch.rand(len(batch["y"])).to(device) < 0.5)
        with _autocast(device, cfg.train.amp):
            pred = _forward(run.model, batch)
        loss, parts = compute_loss(pred.float(), batch, cfg)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.train.grad_clip > 0:
            nn.utils.clip_grad_norm_(run.model.parameters(), cfg.train.grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        run.step, run.batch_in_epoch = run.step + 1, run.batch_in_epoch + 1
        for k, v in {"loss": float(loss.detach()), **parts}.items():
            sums[k] = sums.get(k, 0.0) + v
        n, samples = n + 1, samples + batch["y"].shape[0]
        if run.bar is not None:
            run.bar.update(1)
            run.bar.set_postfix(loss=f"{float(loss.detach()):.4f}", refresh=False)
        if cfg.train.max_steps and run.step >= cfg.train.max_steps:
            break
    else:  # the loader ran out: the epoch is whole (a streamed one's len is only a bound)
        return _epoch_means(sums, n, samples, t0), False
    return _epoch_means(sums, n, samples, t0), run.batch_in_epoch < len(loader)


def _epoch_means(sums: dict, n: int, samples: int, t0: float) -> dict:
    """Each term's mean over the epoch's batches, and the samples per second."""
    means = {f"train_{k}": v / max(n, 1) for k, v in sums.items()}
    means["samples_per_s"] = samples / max(time.perf_counter() - t0, 1e-9)
    return means


def fit(cfg: ExperimentConfig, out_dir, data: TrainData | None = None, resume: bool = True,
        distributed: bool = False) -> TrainResult:
    """Train ``cfg`` into ``out_dir`` in this process (or as one Ray Train worker).

    Args:
        data: datasets to use (built from the config when None).
        resume: continue from ``out_dir/checkpoint.pt`` when it exists.
        distributed: running inside Ray Train (model and loaders prepared by it; rank 0 writes).
    """
    with _threads(cfg.train.threads):
        return _fit(cfg, Path(out_dir), data, resume, distributed)


def _fit(cfg: ExperimentConfig, out_dir: Path, data: TrainData | None, resume: bool,
         distributed: bool) -> TrainResult:
    data = data or build_data(cfg)
    rank, wrap = 0, None
    if distributed:
        import ray.train
        import ray.train.torch as rtt
        device, rank, wrap = rtt.get_device(), ray.train.get_context().get_world_rank(), \
            rtt.prepare_model
    else:
        device = resolve_device(cfg.train.device)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    loader = _prepare(make_loader(data.train, cfg, device, True), distributed)
    run = _setup(cfg, data, device, out_dir, resume, len(loader), wrap)
    show = cfg.train.progress and rank == 0
    run.plotted = time.monotonic()
    total = cfg.train.max_steps or cfg.train.epochs * len(loader)
    run.bar = tqdm(total=total, initial=min(run.step, total), unit="step", dynamic_ncols=True,
                   desc=f"epoch {run.epoch + 1}/{cfg.train.epochs}") if show else None
    try:
        while not _finished(run, cfg):
            row = _run_epoch(run, cfg, data, device, distributed)
            if rank == 0:
                _save(run, cfg, out_dir, row, last=_finished(run, cfg))
            if distributed:
                import ray.train
                ray.train.report({k: v for k, v in row.items() if math.isfinite(v)})
    finally:
        if run.bar is not None:
            run.bar.close()
    return TrainResult(out_dir, out_dir / CHECKPOINT_FILE, run.history)


def _finished(run: _Run, cfg: ExperimentConfig) -> bool:
    return run.epoch >= cfg.train.epochs or bool(cfg.train.max_steps
                                                 and run.step >= cfg.train.max_steps)


def _prepare(loader, distributed: bool):
    if not distributed:
        return loader
    import ray.train.torch as rtt
    return rtt.prepare_data_loader(loader)


def _run_epoch(run: _Run, cfg: ExperimentConfig, data: TrainData, device: torch.device,
               distributed: bool) -> dict:
    """Train one epoch (or up to max_steps), validate, and return the metrics row."""
    t0 = time.perf_counter()
    loader = _prepare(make_loader(data.train, cfg, device, True, run.epoch), distributed)
    if distributed and hasattr(getattr(loader, "sampler", None), "set_epoch"):
        loader.sampler.set_epoch(run.epoch)
    means, stopped = _train_epoch(run, loader, cfg, device)
    row = {"epoch": run.epoch + (0 if stopped else 1), "step": run.step,
           "lr": run.optimizer.param_groups[0]["lr"], **means}
    if data.val is not None:
        row.update(validate(run.model, make_loader(data.val, cfg, device, False), device,
                            cfg.train.amp))
    if stopped:
        row["batch_in_epoch"] = run.batch_in_epoch
    else:
        run.epoch, run.batch_in_epoch = run.epoch + 1, 0
    if data.val is not None and _finished(run, cfg):
        scale = calibrate_uncertainty(run.model, make_loader(data.val, cfg, device, False),
                                      device)
        if scale is not None:
            row["bound_scale"] = scale
    row["seconds"] = time.perf_counter() - t0
    return row


def calibrate_uncertainty(model: nn.Module, loader, device: torch.device,
                          max_samples: int = 20_000) -> float | None:
    """Fit the per-joint error bound of a model that states one (``calibrate_bound``: the
    diffusion lifter) on the validation labels (pseudo-labels in the label-free setting), so
    that the bound ``predict`` reports holds there as often as it says; at most ``max_samples``
    samples. Returns the fitted scale, or None for a model without a bound."""
    bare = unwrap_model(model)
    if not hasattr(bare, "calibrate_bound"):
        return None
    xs, ys, ws, n = [], [], [], 0
    for batch in loader:
        xs.append(batch["x"].flatten(0, 1))
        ys.append(batch["y"].flatten(0, 1))
        ws.append(batch["w"].flatten(0, 1))
        n += len(xs[-1])
        if n >= max_samples:
            break
    if not xs:  # a validation set with no windows: say so rather than crash at the end of training
        print("epiflow train: warning: no validation samples to fit the error bound on; the "
              "model's stated bound stays uncalibrated", file=sys.stderr)
        return None
    bare.eval()
    try:
        x, y, w = (torch.cat(a)[:max_samples].to(device) for a in (xs, ys, ws))
        return bare.calibrate_bound(x, y, w)
    finally:
        model.train()


def _save(run: _Run, cfg: ExperimentConfig, out_dir: Path, row: dict, last: bool) -> None:
    """Checkpoint and metrics log after every epoch; the curves plot at the end and at most
    every 30 s on the way (drawing costs about a second)."""
    if run.history and run.history[-1].get("batch_in_epoch"):
        run.history.pop()  # a partial epoch's row is replaced by the row that completes it
    run.history.append(row)
    save_checkpoint(out_dir / CHECKPOINT_FILE, run.model, cfg, optimizer=run.optimizer,
                    scheduler=run.scheduler, epoch=run.epoch, step=run.step, metrics=row)
    _write_history(out_dir, run.history)
    if last or time.monotonic() - run.plotted > 30:
        from epiflow import viz  # matplotlib: imported when the first plot is drawn
        fig = viz.plot_training_curves(out_dir / METRICS_FILE, title=f"training: {out_dir.name}")
        viz.save_png(fig, out_dir / CURVES_FILE)
        run.plotted = time.monotonic()


def train(cfg: ExperimentConfig, out_dir, resume: bool = True) -> TrainResult:
    """Train ``cfg`` into ``out_dir``: in this process, or with Ray Train when
    ``train.ray_workers`` > 0. Returns the run's folder, checkpoint and metrics rows."""
    out_dir = Path(out_dir)
    if cfg.train.ray_workers > 0:
        ensure_store(cfg)  # before the workers start, so they only read it
        out_dir = out_dir.resolve()
        train_with_ray(cfg, out_dir, resume, loop=fit)
        return TrainResult(out_dir, out_dir / CHECKPOINT_FILE,
                           _read_history(out_dir / METRICS_FILE, 10**9, False))
    return fit(cfg, out_dir, resume=resume)
