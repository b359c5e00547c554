"""Checkpoints: the model's weights with everything that made them, saved atomically and loaded
with ``torch.load(weights_only=True)`` (no pickled code runs on load).

A checkpoint is a dict of plain data and tensors:

- ``format`` ("epiflow-checkpoint"), ``version`` (:data:`CHECKPOINT_VERSION`);
- ``model``: ``name``, ``n_joints``, ``joint_set``, ``input_window``, ``input_kind``,
  ``state_dict``;
- ``config``: the resolved :class:`ExperimentConfig` as plain data;
- ``optimizer``, ``scheduler``: their state dicts; ``rng``: torch / CUDA / Python / NumPy states;
- ``epoch`` (epochs finished), ``step`` (optimizer steps taken), ``metrics`` (the last row logged).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from epiflow.config import ConfigError, from_dict, to_dict
from epiflow.models.config import ExperimentConfig, build_model
from epiflow.outputs import atomic_open

__all__ = ["CHECKPOINT_VERSION", "CheckpointError", "Checkpoint", "save_checkpoint",
           "load_checkpoint", "load_model", "check_compatible", "check_resumable", "check_input",
           "rng_state", "set_rng_state", "unwrap_model"]

CHECKPOINT_VERSION = 1
_FORMAT = "epiflow-checkpoint"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked."""


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A loaded checkpoint: its config, the raw dict (``data``) and where it came from."""

    path: Path
    config: ExperimentConfig
    data: dict

    @property
    def model_name(self) -> str:
        return self.data["model"]["name"]

    @property
    def epoch(self) -> int:
        return int(self.data.get("epoch", 0))

    @property
    def step(self) -> int:
        return int(self.data.get("step", 0))


def rng_state() -> dict:
    """The random generators' states as tensors and plain data (loadable weights-only)."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    np_state = np.random.get_state()
    state["numpy"] = {"keys": torch.from_numpy(np_state[1].astype(np.int64)),
                      "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                      "cached": float(np_state[4])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare model inside DDP / torch.compile wrappers (itself when unwrapped)."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def save_checkpoint(path, model: nn.Module, config: ExperimentConfig, *, optimizer=None,
                    scheduler=None, epoch: int = 0, step: int = 0, metrics: dict | None = None
                    ) -> Path:
    """Write a checkpoint to ``path`` atomically (a temporary file, then a rename)."""
    path = Path(path)
    bare = unwrap_model(model)
    data = {"format": _FORMAT, "version": CHECKPOINT_VERSION,
            "model": {"name": bare.kind, "n_joints": bare.n_joints,
                      "joint_set": config.data.joint_set, "input_window": bare.input_window,
                      "input_kind": bare.input_kind,
                      "state_dict": {k: v.detach().cpu() for k, v in bare.state_dict().items()}},
            "config": to_dict(config), "epoch": int(epoch), "step": int(step),
            "metrics": dict(metrics or {}), "rng": rng_state(),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None}
    with atomic_open(path, "wb") as f:
        torch.save(data, f)
    return path


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint weights-only; errors say what the file is and what to give instead."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist or is not a file; give "
                                f"the checkpoint.pt that `epiflow train` wrote into its --out "
                                f"folder")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes), not a checkpoint: a copy or a run was "
                              f"cut short; give the checkpoint.pt that `epiflow train` wrote")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not ours"
        raise CheckpointError(f"{path} ({size} bytes) is not a loadable checkpoint "
                              f"({_first_line(err)}): damaged, cut short or another kind of file; "
                              f"give the checkpoint.pt that `epiflow train` wrote") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        keys = sorted(data)[:8] if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path} is not an epiflow checkpoint (found {keys}); give the "
                              f"checkpoint.pt that `epiflow train` wrote")
    if data.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} has checkpoint version {data.get('version')}; this epiflow "
                              f"reads version {CHECKPOINT_VERSION}: retrain with `epiflow train`")
    try:
        config = from_dict(ExperimentConfig, data["config"])
    except ConfigError as err:
        raise CheckpointError(f"{path} holds a config this epiflow cannot read ({err}): it was "
                              f"written by another version of epiflow (a model or option this "
                              f"one does not have); retrain it with `epiflow train`, or use that "
                              f"version") from None
    return Checkpoint(path, config, data)


def _first_line(err: BaseException) -> str:
    """``Type: first sentence of the message`` (at most 200 characters), for any exception;
    torch's advice to retry with ``weights_only=False`` (it would run the file's code) is cut."""
    lines = str(err).strip().splitlines()
    first = lines[0].split(". ")[0].rstrip(".")[:200] if lines else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def check_compatible(checkpoint: Checkpoint, config: ExperimentConfig, *,
                     elsewhere: bool = True) -> None:
    """Refuse to continue ``checkpoint`` with a ``config`` whose model or joints differ.

    Args:
        elsewhere: also advise training anew into another --out folder (False where the caller
            gives its own advice: resuming, starting from --init).

    Raises:
        CheckpointError naming the differing keys with both values and what to do.
    """
    hint = ", or train anew into another --out folder" if elsewhere else ""
    saved, wanted = checkpoint.config, config
    if saved.model.name != wanted.model.name:
        raise CheckpointError(
            f"checkpoint {checkpoint.path} holds a {saved.model.name!r} model; the config asks for "
            f"{wanted.model.name!r} (set model.name = '{saved.model.name}' to use it){hint}")
    diffs = [(k, a, b) for k, a, b in _diff(to_dict(saved.model), to_dict(wanted.model), "model")
             if k.startswith(f"model.{wanted.model.name}")]
    if saved.data.joint_set != wanted.data.joint_set:
        diffs.append(("data.joint_set", saved.data.joint_set, wanted.data.joint_set))
    if diffs:
        said = ", ".join(f"{k} = {a!r} (the config: {b!r})" for k, a, b in diffs)
        raise CheckpointError(f"checkpoint {checkpoint.path} was trained with {said}; the config "
                              f"does not fit the model (set those keys to the checkpoint's "
                              f"values to use it){hint}")


def check_resumable(path, config: ExperimentConfig) -> Checkpoint:
    """The checkpoint at ``path`` that a training run of ``config`` would resume from, checked
    before any work starts (loadable, an epiflow checkpoint, same model and joints).

    Raises:
        CheckpointError naming the file and saying what to do: ``--fresh`` to start over in
        that folder, or another ``--out``.
    """
    try:
        ckpt = load_checkpoint(path)
        check_compatible(ckpt, config, elsewhere=False)
    except CheckpointError as err:
        raise CheckpointError(f"cannot resume: {err}. To start over in this folder give --fresh "
                              f"(the new run replaces its checkpoint.pt, metrics.csv and "
                              f"curves.png), or train into another --out") from None
    return ckpt


def check_input(checkpoint: Checkpoint, source: str, *, joint_set: str | None = None,
                has_images: bool | None = None, n_frames: int | None = None,
                crop_size: int | None = None) -> None:
    """Refuse, before any work, data the checkpoint's model cannot read.

    Args:
        source: names the data in the error (``"session '02_04' of s.zarr"``, ``"--keypoints"``).
        joint_set: the data's joint set; it must be the model's, or map onto the model's
            ``h36m17``. None: not checked.
        has_images: whether the data has what an image model reads (person crops, a video);
            False with an image model is refused. None: not checked.
        n_frames: the data's length in frames; fewer than the model's input window is refused
            (every window would be mostly copies of the end frames). None: not checked.
        crop_size: the side of the data's person crops, pixels; another size than the image
            model's ``image_size`` is refused. None: not checked.

    Raises:
        CheckpointError naming the checkpoint, its model and joint set, the data and what to do.
    """
    name, model_js = checkpoint.model_name, checkpoint.config.data.joint_set
    what = f"checkpoint {checkpoint.path} holds the {name!r} model on joint set {model_js!r}"
    if joint_set is not None and joint_set != model_js and model_js != "h36m17":
        raise CheckpointError(f"{what}; {source} is in joint set {joint_set!r}, which cannot be "
                              f"mapped onto it (epiflow maps other joint sets only onto "
                              f"'h36m17'): give {model_js!r} keypoints, or a checkpoint trained "
                              f"with data.joint_set = 'h36m17'")
    image = checkpoint.data["model"].get("input_kind") == "image"
    size = checkpoint.config.model.image.image_size
    if has_images is False and image:
        raise CheckpointError(f"{what}, which reads images (person crops of {size} px); {source} "
                              f"has none: give a video (epiflow predict --video), a store with "
                              f"person crops (epiflow run --set store.crop_size={size}), or a "
                              f"lifter's checkpoint")
    if crop_size is not None and image and crop_size != size:
        raise CheckpointError(f"{what}, which reads person crops of {size} px; {source} has "
                              f"crops of {crop_size} px: rebuild it with store.crop_size = "
                              f"{size}, or give an image model trained on {crop_size} px crops "
                              f"(model.image.image_size = {crop_size})")
    _check_window(checkpoint, what, source, n_frames)


def _check_window(checkpoint: Checkpoint, what: str, source: str, n_frames: int | None) -> None:
    """Refuse ``n_frames`` of data (None: not checked) shorter than the model's input window."""
    window = int(checkpoint.data["model"].get("input_window", 1))
    if n_frames is None or n_frames >= window:
        return
    fits = n_frames if n_frames % 2 else n_frames - 1  # windows are odd
    shorter = (f"a model trained with a window of at most {fits} frames "
               f"(model.{checkpoint.model_name}.window = {fits}), or " if fits >= 1 else "")
    raise CheckpointError(f"{what}, which reads a {window}-frame window; {source} has only "
                          f"{n_frames} frame(s): give footage of at least {window} frames, or "
                          f"{shorter}a per-frame model (model.name = 'mlp', model.mlp.window = 1)")


def _diff(a, b, prefix: str):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from _diff(a.get(key), b.get(key), f"{prefix}.{key}")
    elif a != b:
        yield prefix, a, b


def load_model(checkpoint: Checkpoint | str | Path, expect: str | None = None,
               device: torch.device | str = "cpu") -> nn.Module:
    """The model of a checkpoint, weights loaded, in eval mode on ``device``.

    Args:
        expect: the model name the caller needs (``"mlp"``...); another one is an error.
    """
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    if expect is not None and ckpt.model_name != expect:
        raise CheckpointError(f"checkpoint {ckpt.path} holds a {ckpt.model_name!r} model, not "
                              f"{expect!r}; give a checkpoint trained with model.name = '{expect}'")
    model = build_model(ckpt.config.model, int(ckpt.data["model"]["n_joints"]))
    try:
        model.load_state_dict(ckpt.data["model"]["state_dict"])
    except RuntimeError as err:
        lines = [ln.strip() for ln in str(err).splitlines()[1:4]]
        raise CheckpointError(f"checkpoint {ckpt.path}: its weights do not fit the "
                              f"{ckpt.model_name!r} model its config describes "
                              f"({'; '.join(lines)}); the file is damaged or was edited: retrain "
                              f"it") from None
    return model.to(device).eval()
