"""The run configuration of ``epiflow run``: frozen dataclasses filled from TOML.

A run reads sessions (``[[sessions]]`` tables, a ``sessions_dir`` of session folders, or
``[synthetic]`` captures) and writes one store (``out``). Relative paths in a config file are
resolved against the file's folder. Resources per stage (``num_cpus``, ``num_gpus``, pool size,
chunk size) live in their stage's table; nothing in the library hard-codes them. Example:
``configs/pose2sim_demo.toml``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from epiflow.calibration.from_people import CalibrationConfig
from epiflow.calibration.triangulation import TriangulationOptions
from epiflow.config import ConfigError, load_config, to_dict
from epiflow.store import StoreError, check_session_id

__all__ = ["RunConfig", "SessionConfig", "SyntheticConfig", "RayConfig", "IngestConfig",
           "WorkersConfig",
           "DetectConfig", "CalibrateConfig", "TriangulateConfig", "StoreConfig",
           "load_run_config", "resolve_paths", "run_settings", "session_fingerprint"]


@dataclass(frozen=True)
class SyntheticConfig:
    """A synthetic capture of a CMU clip (see :func:`epiflow.datasets.synthetic.cmu_capture`).

    ``frames`` = 0 keeps the whole clip; the corruption fields follow
    :class:`epiflow.datasets.synthetic.Corruption`. ``data_dir``: the folder holding
    ``cmu_mocap/<subject>/<clip>.amc`` ("" = the clips packaged with epiflow); ``fps``: the
    motion resampled to this rate; ``radius`` (metres from the capture centre) and ``focal_px``:
    the virtual rig (:func:`epiflow.datasets.synthetic.make_rig`).
    """

    clip: str = "02_01"
    n_cameras: int = 4
    frames: int = 0
    seed: int = 0
    layout: Literal["ring", "random"] = "ring"
    data_dir: str = ""
    fps: float = 30.0
    radius: float = 5.0
    focal_px: float = 1200.0
    noise_px: float = 2.0
    outlier_fraction: float = 0.02
    drop_fraction: float = 0.05
    swap_fraction: float = 0.01


@dataclass(frozen=True)
class SessionConfig:
    """One capture session: exactly one source (``videos``, ``frames``, ``keypoints``,
    ``synthetic``) and optionally the cameras.

    Attributes:
        name: the session id in the store (default: the source folder's name).
        videos: a folder of videos, one per camera (camera name = file stem, natural order).
        frames: a folder of per-camera folders of images (camera name = folder name).
        keypoints: a keypoints ``.npz`` or a folder of per-camera OpenPose JSON folders.
        synthetic: a synthetic capture (its true cameras are the session's given cameras).
        cameras: a calibration file (any format of :func:`epiflow.calibration.formats.load_rig`).
        board: a folder of per-camera checkerboard image folders (intrinsics only).
        fps: frames per second where the source does not say (frame folders, keypoints).
        joint_set: the joint set of keypoint files where their size is ambiguous (``body25b``).
    """

    name: str = ""
    videos: str = ""
    frames: str = ""
    keypoints: str = ""
    synthetic: SyntheticConfig | None = None
    cameras: str = ""
    board: str = ""
    fps: float = 0.0
    joint_set: str = ""

    @property
    def kind(self) -> str:
        """Which source the session has (``videos`` / ``frames`` / ``keypoints`` / ``synthetic``)."""
        given = [k for k in ("videos", "frames", "keypoints") if getattr(self, k)]
        given += ["synthetic"] if self.synthetic is not None else []
        if len(given) != 1:
            raise ConfigError(f"session {self.name or '(unnamed)'!r}: give exactly one of videos, "
                              f"frames, keypoints, synthetic; got {given or 'none'}")
        return given[0]

    @property
    def path(self) -> str:
        return "" if self.kind == "synthetic" else getattr(self, self.kind)


@dataclass(frozen=True)
class RayConfig:
    """Where to run: ``address`` of an existing cluster ("" starts a local Ray); ``num_cpus`` of
    the local Ray (0 = the machine's count)."""

    address: str = ""
    num_cpus: int = 0
    log_to_driver: bool = False


@dataclass(frozen=True)
class IngestConfig:
    """Reading sessions: ``sync`` (``auto``: videos of different lengths or frame rates are
    synchronized from the person, :mod:`epiflow.calibration.sync`; ``on``: always; ``off``:
    never, ``epiflow run --sync off``); ``trim`` (with ``sync = "off"``, or equal rates) cuts
    cameras of different lengths to the shortest (with a warning in the report) instead of
    synchronizing them or failing the session; ``max_frames`` keeps only the first frames of
    every session (0 = all; for previews and tests)."""

    trim: bool = False
    max_frames: int = 0
    sync: Literal["auto", "on", "off"] = "auto"


@dataclass(frozen=True)
class WorkersConfig:
    """The session workers: Ray actors that ingest, calibrate and triangulate sessions (all but
    detection). ``pool_size`` 0 = one per CPU; ``num_cpus`` / ``num_gpus`` reserved per worker.
    The default reserves no CPU, so sessions finish while the detector actors hold the CPUs."""

    pool_size: int = 0
    num_cpus: float = 0.0
    num_gpus: float = 0.0


@dataclass(frozen=True)
class DetectConfig:
    """2D detection on a Ray actor pool (one detector loaded per actor).

    Attributes:
        backend: ``mediapipe``.
        pool_size: actors (0 = as many as the CPUs allow at ``num_cpus`` each).
        num_cpus, num_gpus: resources reserved per actor.
        chunk_frames: frames per work unit (one camera) and per store chunk along T.
        inflight: units queued on each actor at once (keeps it busy between units).
        model_complexity, min_confidence, video_mode: MediaPipe settings; the tracker restarts
            at each unit, so results do not depend on which actor ran which unit.
        max_side: shrink frames so their longer side is at most this many pixels before the
            detector (0 = full size); keypoints are given in full-size pixels.
        decode_options: FFmpeg options for reading videos, ``key;value|...``
            (``skip_loop_filter;all``: H.264 decodes about a third faster, slightly softer).
        max_people: P, the detection slots per camera-frame the store keeps. 1 (one person)
            runs MediaPipe's single-person detector; > 1 runs
            :class:`~epiflow.detection.tracking.MultiPersonPoseDetector`; several people are
            associated across cameras with the given cameras, or, without them, the cameras
            are solved from everyone first (:mod:`epiflow.calibration.people_calibration`).
            Keypoint inputs with a P axis are stored with their own P.
        detect_every: with ``max_people`` > 1, frames between person-detector runs while fewer
            than ``max_people`` are tracked.
    """

    backend: Literal["mediapipe"] = "mediapipe"
    pool_size: int = 0
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    chunk_frames: int = 100
    inflight: int = 2
    model_complexity: int = 1
    min_confidence: float = 0.5
    video_mode: bool = True
    max_side: int = 0
    decode_options: str = ""
    max_people: int = 1
    detect_every: int = 10


@dataclass(frozen=True)
class CalibrateConfig:
    """Cameras for each session.

    Attributes:
        method: ``auto`` (the session's given cameras when it has them, else from people),
            ``people``, ``given`` (the session's ``cameras`` file or a synthetic capture's true
            rig), ``board`` (intrinsics from the session's board images, extrinsics from people).
        intrinsics: a calibration file whose K and distortion are used for calibration from
            people (cameras matched by name, else in order); ``given``: those of the session's
            given cameras (its ``cameras`` file, or a synthetic capture's true rig); "" =
            estimate them.
        subject_height: the person's height, metres, for the metric scale (0 = from body
            proportions).
        known_distance: ``["cam01", "cam02", 3.20]``: metres between two cameras' centres,
            which fixes the scale exactly (empty = none; ``epiflow run --known-distance``).
        board_pattern, board_square_size: inner corners (columns, rows) and square side,
            metres, of the checkerboard of ``board`` sessions.
        people: the ``[calibrate.people]`` table: the options of calibration from people
            (:class:`~epiflow.calibration.from_people.CalibrationConfig`), checked when the
            config is read.
    """

    method: Literal["auto", "people", "given", "board"] = "auto"
    intrinsics: str = ""
    subject_height: float = 0.0
    known_distance: tuple[str | float, ...] = ()
    board_pattern: tuple[int, ...] = (4, 7)
    board_square_size: float = 0.06
    people: CalibrationConfig = CalibrationConfig()


@dataclass(frozen=True)
class TriangulateConfig:
    """How the pseudo-labels are made. ``method``: ``multiview``
    (:func:`epiflow.calibration.triangulation.triangulate_sequence`, every camera, robust,
    weighted) or ``two_view`` (EpipolarPose's labels,
    :func:`~epiflow.calibration.triangulation.triangulate_two_view`: cameras 0 and 1 only, plain
    linear triangulation, every label weighted 1; a baseline). ``options``: the
    ``[triangulate.options]`` table, the keyword options of ``triangulate_sequence`` (``robust``,
    ``refine``, ``gate_px``, ``swap``, ``smooth``, ...:
    :class:`~epiflow.calibration.triangulation.TriangulationOptions`), checked when the config
    is read."""

    method: Literal["multiview", "two_view"] = "multiview"
    options: TriangulationOptions = TriangulationOptions()


@dataclass(frozen=True)
class StoreConfig:
    """What the store keeps: ``joint_set`` of keypoints2d / pseudo3d (``h36m17``, the canonical
    set, or ``source`` to keep the detector's); ``crop_size`` of person crops (0 = none)."""

    joint_set: str = "h36m17"
    crop_size: int = 0


@dataclass(frozen=True)
class RunConfig:
    """The whole run. ``out``: the store (folder or fsspec URL); ``report``: the run report's
    JSON path ("" = ``<out>.report.json`` beside a local store)."""

    out: str = ""
    report: str = ""
    sessions: tuple[SessionConfig, ...] = ()
    sessions_dir: str = ""
    synthetic_sessions: int = 0
    synthetic: SyntheticConfig = SyntheticConfig()
    ray: RayConfig = RayConfig()
    ingest: IngestConfig = IngestConfig()
    workers: WorkersConfig = WorkersConfig()
    detect: DetectConfig = DetectConfig()
    calibrate: CalibrateConfig = CalibrateConfig()
    triangulate: TriangulateConfig = TriangulateConfig()
    store: StoreConfig = StoreConfig()

    def __post_init__(self):
        for s in self.sessions:
            _ = s.kind   # exactly one source each
            if s.name:   # checked before anything is written (the store checks it again)
                try:
                    check_session_id(s.name, "config key 'sessions.name'")
                except StoreError as err:
                    raise ConfigError(str(err)) from None
        if self.detect.chunk_frames <= 0 or self.detect.inflight <= 0:
            raise ConfigError(f"detect.chunk_frames and detect.inflight must be > 0; got "
                              f"{self.detect.chunk_frames}, {self.detect.inflight}")
        if self.detect.max_people < 1 or self.detect.detect_every < 1:
            raise ConfigError(f"detect.max_people and detect.detect_every must be >= 1; got "
                              f"{self.detect.max_people}, {self.detect.detect_every}")
        if self.store.joint_set != "source":
            from epiflow.skeleton import get_joint_set
            try:
                get_joint_set(self.store.joint_set)
            except (KeyError, ValueError) as err:
                raise ConfigError(f"config key 'store.joint_set': {err}") from None


def _resolve(path: str, base: Path) -> str:
    if not path or "://" in path or Path(path).is_absolute():
        return path
    return str((base / path).resolve())


def resolve_paths(cfg: RunConfig, base) -> RunConfig:
    """The config with its relative paths made absolute against the folder ``base``."""
    base = Path(base)
    sessions = tuple(replace(s, **{k: _resolve(getattr(s, k), base) for k in
                                   ("videos", "frames", "keypoints", "cameras", "board")},
                             synthetic=s.synthetic and replace(
                                 s.synthetic, data_dir=_resolve(s.synthetic.data_dir, base)))
                     for s in cfg.sessions)
    return replace(cfg, out=_resolve(cfg.out, base), report=_resolve(cfg.report, base),
                   sessions=sessions, sessions_dir=_resolve(cfg.sessions_dir, base),
                   synthetic=replace(cfg.synthetic,
                                     data_dir=_resolve(cfg.synthetic.data_dir, base)),
                   calibrate=replace(cfg.calibrate,
                                     intrinsics=cfg.calibrate.intrinsics if
                                     cfg.calibrate.intrinsics == "given" else
                                     _resolve(cfg.calibrate.intrinsics, base)))


def load_run_config(path) -> RunConfig:
    """Read a run config TOML; relative paths are taken from the file's folder."""
    cfg = load_config(RunConfig, path)
    return resolve_paths(cfg, Path(path).resolve().parent)


#: Fields that change where or how fast a run goes, not what it writes.
_RESOURCE_KEYS = {"num_cpus", "num_gpus", "pool_size", "inflight"}


def run_settings(cfg: RunConfig, session: SessionConfig) -> dict:
    """The resolved settings a session was written with: its source and every stage's table."""
    return {"session": to_dict(session),
            **{k: to_dict(getattr(cfg, k)) for k in
               ("ingest", "detect", "calibrate", "triangulate", "store", "workers", "ray")}}


def session_fingerprint(cfg: RunConfig, session: SessionConfig) -> str:
    """A hash of everything that decides a session's stored result (source and stage settings,
    not resources nor where Ray runs): a store resumes a session only when this matches."""
    def strip(d):
        return {k: strip(v) if isinstance(v, dict) else v for k, v in d.items()
                if k not in _RESOURCE_KEYS}
    data = {k: v for k, v in run_settings(cfg, session).items() if k not in ("workers", "ray")}
    return hashlib.sha1(json.dumps(strip(data), sort_keys=True).encode()).hexdigest()[:16]
