"""The training experiment's configuration (frozen dataclasses filled from TOML) and the model
it names.

A TOML recipe has the sections ``[data]`` (with ``[data.source]``), ``[model]`` (with
``[model.mlp]``, ``[model.transformer]``, ``[model.temporal]``, ``[model.diffusion]``
or ``[model.image]``), ``[loss]`` and ``[train]``; every
key has a default (see the classes). Load with :func:`load_experiment`, which checks the file
once and names a wrong key and the accepted values.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from torch import nn

from epiflow.config import ConfigError, apply_overrides, check_limits, limits, load_config
from epiflow.models.diffusion import DiffusionConfig, DiffusionLifter
from epiflow.models.augment import AugmentConfig
from epiflow.models.image_model import EpipolarImageModel, ImageModelConfig
from epiflow.models.lifters import (MLPConfig, ResidualMLPLifter, TemporalTransformerLifter,
                                    TransformerConfig)
from epiflow.models.temporal import TemporalConfig, TemporalLifter
from epiflow.pipeline.config import (CalibrateConfig, RunConfig, SessionConfig, StoreConfig,
                                     SyntheticConfig, TriangulateConfig)
from epiflow.skeleton import JOINT_SETS

__all__ = ["SourceConfig", "DataConfig", "ModelConfig", "LossConfig", "TrainConfig",
           "ExperimentConfig", "MODELS", "build_model", "load_experiment", "run_config"]

#: Model name -> class; each class takes (its config section, n_joints).
MODELS: dict[str, type[nn.Module]] = {"mlp": ResidualMLPLifter,
                                      "transformer": TemporalTransformerLifter,
                                      "temporal": TemporalLifter,
                                      "diffusion": DiffusionLifter,
                                      "image": EpipolarImageModel}


@dataclass(frozen=True)
class SourceConfig:
    """How the pipeline builds the store when the recipe names one it does not have
    (``kind = "store"``: never build); :func:`run_config` is the run it becomes.

    ``cmu_synthetic``: synthetic captures of CMU ``clips`` (``02_01``...; read from
    ``data_dir/cmu_mocap`` when given, else the packaged clips) by a virtual rig of ``n_cameras``;
    2D corrupted with ``noise_px`` and ``outlier_fraction``; cameras ``from_people``
    (:func:`calibrate_from_people`, given the true intrinsics when ``intrinsics = "known"``) or
    ``true``; pseudo-labels by robust multi-view triangulation (``robust``) or EpipolarPose's two
    views (``two_view``: cameras 0 and 1, unweighted; every camera's 2D still trains).
    ``crop_size`` > 0 also stores person crops (rendered from the 2D skeleton) for the image
    model. Every clip is captured by the same rig (``seed``).
    """

    kind: Literal["store", "cmu_synthetic"] = "store"
    clips: tuple[str, ...] = ()
    data_dir: str = ""
    n_cameras: int = 4
    layout: Literal["ring", "random"] = "ring"
    radius: float = 5.0
    focal_px: float = 1200.0
    seed: int = 0
    fps: float = 30.0
    noise_px: float = 2.0
    outlier_fraction: float = 0.02
    cameras: Literal["from_people", "true"] = "from_people"
    intrinsics: Literal["known", "unknown"] = "known"
    labels: Literal["robust", "two_view"] = "robust"
    crop_size: int = 0


@dataclass(frozen=True)
class DataConfig:
    """What to train on: the store, which sessions, which labels.

    ``store``: a path or URL (in a recipe file, relative to the file's folder);
    ``labels``: ``pseudo`` (the pseudo-labels, the self-supervised setting) or ``gt`` (ground
    truth, the supervised upper bound); ``val_sessions`` or else the last ``val_fraction`` of the
    sessions validate; ``views``: give the model every camera of an instant (needed by
    ``loss.multiview``); ``mirror``: mirror half of the training samples left/right
    (:func:`epiflow.models.data.mirror_batch`); ``level``: train and predict in each camera's level
    camera (:mod:`epiflow.models.level`: the model learns which way is up; ``predict`` then needs
    the scene's vertical, from the video's vertical lines); ``augment``: new training sequences
    from each one's 3D labels, filmed by virtual cameras
    (:class:`epiflow.models.augment.AugmentConfig`, off by default).
    ``streaming``: read the store chunk by chunk while training
    (:mod:`epiflow.models.streaming`) instead of whole into memory: ``on``, ``off``, or ``auto``
    (on when the sessions' training arrays would take more than ``stream_above_mb`` MB);
    ``shuffle_buffer``: chunks held (and shuffled together) at a time when streaming.
    """

    store: str = ""
    source: SourceConfig = field(default_factory=SourceConfig)
    sessions: tuple[str, ...] = ()
    val_sessions: tuple[str, ...] = ()
    val_fraction: float = 0.2
    labels: Literal["pseudo", "gt"] = "pseudo"
    joint_set: str = "h36m17"
    views: bool = False
    mirror: bool = False
    level: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    streaming: Literal["auto", "on", "off"] = "auto"
    stream_above_mb: float = field(default=2048.0, metadata=limits(ge=0))
    shuffle_buffer: int = field(default=16, metadata=limits(ge=1))


@dataclass(frozen=True)
class ModelConfig:
    """Which model (``name``) and its settings (the section of that name): ``mlp`` (the fast
    baseline), ``transformer``, ``temporal`` (spatial-temporal attention + skeleton graph,
    :mod:`epiflow.models.temporal`), ``diffusion`` (multi-hypothesis D3DP with JPMA,
    :mod:`epiflow.models.diffusion`), ``image``."""

    name: Literal["mlp", "transformer", "temporal", "diffusion", "image"] = "mlp"
    mlp: MLPConfig = field(default_factory=MLPConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    image: ImageModelConfig = field(default_factory=ImageModelConfig)


@dataclass(frozen=True)
class LossConfig:
    """Weights of the loss terms (0 = off); ``scale_invariant`` swaps the label loss for its
    scale-invariant variant."""

    label: float = 1.0
    scale_invariant: bool = False
    multiview: float = 0.0
    reprojection: float = 0.0
    symmetry: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and hardware.

    ``device``: ``auto`` (CUDA when available), ``cpu`` or ``cuda``; ``amp``: bf16 autocast on
    CUDA; ``compile``: ``torch.compile`` the model; ``num_workers``: DataLoader processes;
    ``threads`` > 0: torch's CPU threads (1 is fastest on a busy machine; 0 keeps torch's
    choice); ``max_steps`` > 0 stops early (tests);
    ``ray_workers`` > 0 trains with Ray Train's TorchTrainer on that many workers
    (``ray_use_gpu``: one GPU each; ``ray_address``: an existing cluster, empty = local);
    ``init``: a checkpoint whose weights start the run (fine-tuning a model on a rig's own
    captures; the same model and settings; its optimiser state is not used), "" = random.
    """

    epochs: int = field(default=20, metadata=limits(ge=1))
    batch_size: int = field(default=256, metadata=limits(ge=1))
    lr: float = field(default=1e-3, metadata=limits(gt=0))
    weight_decay: float = field(default=1e-4, metadata=limits(ge=0))
    scheduler: Literal["cosine", "exponential", "none"] = "cosine"
    lr_min_ratio: float = field(default=0.01, metadata=limits(ge=0, le=1))
    grad_clip: float = field(default=1.0, metadata=limits(ge=0))
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True
    compile: bool = False
    num_workers: int = field(default=0, metadata=limits(ge=0))
    threads: int = field(default=0, metadata=limits(ge=0))
    max_steps: int = field(default=0, metadata=limits(ge=0))
    progress: bool = True
    ray_workers: int = field(default=0, metadata=limits(ge=0))
    ray_use_gpu: bool = False
    ray_address: str = ""
    init: str = ""

    def __post_init__(self):
        # recipes and overrides are checked by from_dict under their keys; this also covers a
        # TrainConfig built in code (the demo's), before a run folder is made
        check_limits(self, "train")


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole training recipe."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        if self.data.joint_set not in JOINT_SETS:
            raise ConfigError(f"config key 'data.joint_set': expected one of {list(JOINT_SETS)}, "
                              f"got {self.data.joint_set!r}")
        if self.data.augment.copies > 0 and self.data.views:
            raise ConfigError("config key 'data.augment.copies' > 0 films each copy with "
                              "unrelated virtual cameras, which multi-view samples (data.views = "
                              "true) cannot use; set one of them off")
        if self.data.level and self.model.name == "image":
            raise ConfigError("config key 'data.level' = true turns the rays a lifter reads; the "
                              "image model reads pixels, which cannot be turned so: set "
                              "data.level = false for model.name = 'image'")
        if self.data.level and self.data.joint_set != "h36m17":
            raise ConfigError(f"config key 'data.level' = true finds the vertical from the "
                              f"pelvis and the thorax, which data.joint_set = "
                              f"{self.data.joint_set!r} does not have: set data.joint_set = "
                              f"'h36m17' (every set maps onto it) or data.level = false")
        if self.loss.multiview > 0 and not self.data.views:
            raise ConfigError("config key 'loss.multiview' > 0 needs data.views = true (samples "
                              "with every camera of an instant)")


def run_config(source: SourceConfig, store: str) -> RunConfig:
    """The pipeline run (``epiflow run``) that builds the store ``store`` from ``source``: one
    synthetic session per clip, named after it; cameras from people (with the true intrinsics
    when ``intrinsics = "known"``) or the true ones (``calibrate.method = "given"``); labels by
    the multi-view or the two-view triangulation; crops drawn from the 2D skeleton."""
    if source.kind != "cmu_synthetic":
        raise ConfigError(f"config key 'data.source.kind': only 'cmu_synthetic' builds a store; "
                          f"got {source.kind!r}")
    if not source.clips:
        raise ConfigError("config key 'data.source.clips' is empty; name the CMU clips to "
                          "capture, e.g. clips = ['02_01', '02_02']")
    sessions = tuple(SessionConfig(name=clip, synthetic=SyntheticConfig(
        clip=clip, n_cameras=source.n_cameras, seed=source.seed, layout=source.layout,
        noise_px=source.noise_px, outlier_fraction=source.outlier_fraction,
        data_dir=source.data_dir, fps=source.fps, radius=source.radius,
        focal_px=source.focal_px)) for clip in source.clips)
    calibrate = CalibrateConfig(method="given") if source.cameras == "true" else \
        CalibrateConfig(method="people", intrinsics="given" if source.intrinsics == "known" else "")
    return RunConfig(out=str(store), sessions=sessions, calibrate=calibrate,
                     triangulate=TriangulateConfig(
                         method="multiview" if source.labels == "robust" else "two_view"),
                     store=StoreConfig(crop_size=source.crop_size))


def build_model(config: ModelConfig, n_joints: int) -> nn.Module:
    """The model ``config.name`` built from its section, for ``n_joints`` joints."""
    if config.name not in MODELS:
        raise ConfigError(f"config key 'model.name': expected one of {list(MODELS)}, "
                          f"got {config.name!r}")
    return MODELS[config.name](getattr(config, config.name), n_joints=n_joints)


def _relative_to(folder: Path, value: str) -> str:
    if not value or "://" in value or Path(value).is_absolute():
        return value
    return str((folder / value).resolve())


def load_experiment(path, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read a recipe TOML and apply ``key=value`` overrides (``train.epochs=5``).

    Relative paths in the file (``data.store``, ``data.source.data_dir``, ``train.init``) are
    taken from the file's folder; those given as overrides from the working directory.
    """
    path = Path(path)
    cfg = load_config(ExperimentConfig, path)
    folder = path.resolve().parent
    source = replace(cfg.data.source, data_dir=_relative_to(folder, cfg.data.source.data_dir))
    cfg = replace(cfg, data=replace(cfg.data, store=_relative_to(folder, cfg.data.store),
                                    source=source),
                  train=replace(cfg.train, init=_relative_to(folder, cfg.train.init)))
    return apply_overrides(cfg, list(overrides)) if overrides else cfg
