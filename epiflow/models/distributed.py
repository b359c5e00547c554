"""Training on several workers (GPUs or nodes) with Ray Train's ``TorchTrainer``.

Each worker runs the training loop it is given (:func:`epiflow.models.train.fit`, passed in by
:func:`epiflow.models.train.train`) with ``distributed=True``: it reads the sessions whole into its
own memory, Ray wraps the model in DistributedDataParallel (``prepare_model``) and
shards the loader (``prepare_data_loader``). Rank 0 writes the checkpoint, metrics log and plot
into the output folder, which must therefore be on storage every node sees (like the store).
Locally a Ray runtime is started on 127.0.0.1 (:func:`~epiflow.ray_setup.init_local_ray`);
``train.ray_address`` joins an existing cluster.

This module is the Ray plumbing only: it imports nothing of the training loop, so ``train`` can
call it without an import cycle.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from epiflow.config import from_dict, to_dict
from epiflow.models.config import ExperimentConfig
from epiflow.ray_setup import init_local_ray, use_cluster_token
from epiflow.store import storage_env

__all__ = ["train_with_ray"]


def _worker_loop(loop_config: dict) -> None:
    """What every Ray Train worker runs: ``loop_config["loop"]`` (the training loop) on its shard."""
    cfg = from_dict(ExperimentConfig, loop_config["config"])
    loop_config["loop"](cfg, Path(loop_config["out_dir"]), resume=loop_config["resume"],
                        distributed=True)


def _init_ray(cfg: ExperimentConfig) -> bool:
    """Start or join Ray unless it is running; True when this call started it."""
    import ray
    if ray.is_initialized():
        return False
    if cfg.train.ray_address:
        use_cluster_token()
        env = storage_env(cfg.data.store)   # an s3:// store: the workers need the credentials
        ray.init(address=cfg.train.ray_address,
                 **({"runtime_env": {"env_vars": env}} if env else {}))
        return True
    # A local runtime with one logical CPU per worker plus one for the controller, on
    # 127.0.0.1 only and without the dashboard.
    init_local_ray(max(os.cpu_count() or 1, cfg.train.ray_workers + 1))
    return True


def train_with_ray(cfg: ExperimentConfig, out_dir, resume: bool, loop) -> None:
    """Run ``loop(cfg, out_dir, resume=..., distributed=True)`` on ``cfg.train.ray_workers`` Ray
    Train workers; rank 0 writes the run's files into ``out_dir``.

    The store must exist already (the workers only read it): :func:`epiflow.models.train.train`
    builds it first. ``loop`` is a module-level function, so Ray sends it to the workers by name.
    """
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if "://" not in cfg.data.store:  # workers run in other folders: give them an absolute path
        cfg = replace(cfg, data=replace(cfg.data, store=str(Path(cfg.data.store).resolve())))
    started = _init_ray(cfg)
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"config": to_dict(cfg), "out_dir": str(out_dir), "resume": resume,
                           "loop": loop},
        scaling_config=ScalingConfig(num_workers=cfg.train.ray_workers,
                                     use_gpu=cfg.train.ray_use_gpu,
                                     resources_per_worker={"CPU": 1}),
        run_config=RunConfig(name="epiflow-train", storage_path=str(out_dir / "ray")))
    try:
        trainer.fit()
    finally:
        if started:
            import ray
            ray.shutdown()
