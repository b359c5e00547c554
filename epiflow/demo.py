"""``epiflow demo``: the whole story on a small capture, end to end, into one report folder.

Synthetic (the default; nothing to download): the CMU clips shipped in ``epiflow/data`` (walk,
run, jump) are each seen by a virtual ring of cameras with detector-like 2D errors. Then, as a
user would run them:

1. ``epiflow run`` on a local Ray into ``OUT/store.zarr``: cameras recovered from the people
   (``calibrate.method = "people"``; the true cameras are kept only to compare with), robust
   weighted triangulation into 3D pseudo-labels;
2. ``epiflow train``: a small MLP lifter trained on the pseudo-labels (``OUT/train``), the last
   clip held out for validation;
3. evaluation of the lifter against the ground truth, and of the cameras and pseudo-labels
   against the true ones;
4. ``OUT/report/index.html``: camera layout estimated against true, 2D reprojections,
   reprojection errors over frames, 3D skeletons beside the truth, training curves, the metrics.

With ``videos``: the same on a folder of synchronized videos (one per camera; MediaPipe 2D) with
no ground truth; ``reference_cameras`` (a calibration file) adds the camera comparison.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from epiflow.report import ReportInputs, write_report

__all__ = ["DemoConfig", "DemoResult", "DemoError", "run_demo", "demo_sessions", "held_out",
           "pipeline_config", "experiment_config", "camera_tables", "label_tables",
           "model_tables", "video_frames", "report_inputs"]

#: the packaged clips, the held-out (validation) one last
DEMO_CLIPS = ("02_03", "02_04", "02_01")


class DemoError(RuntimeError):
    """A stage of the demo failed; the message says which and why."""


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs.

    Attributes:
        out: the folder that receives the store, the training run and the report.
        videos: a folder of videos, one per camera, instead of the synthetic capture.
        reference_cameras: a calibration file to compare the cameras from people with (videos).
        intrinsics: a calibration file whose K and distortion are known (videos; optional).
        clips: packaged CMU clips, one synthetic session each; the last one validates.
        n_cameras: cameras of the synthetic rig.
        epochs: training epochs of the lifter.
        num_cpus: CPUs of the local Ray (0 = all of the machine's).
        quick: a smaller run for tests: two clips, few frames and epochs.
        progress: progress bars.
    """

    out: str = "epiflow_demo"
    videos: str = ""
    reference_cameras: str = ""
    intrinsics: str = ""
    clips: tuple[str, ...] = DEMO_CLIPS
    n_cameras: int = 4
    epochs: int = 60
    num_cpus: int = 0
    quick: bool = False
    progress: bool = True


@dataclass
class DemoResult:
    """Where the demo's outputs are, its metrics tables and its stage times (seconds)."""

    report: Path
    store: Path
    checkpoint: Path
    metrics: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)


@contextlib.contextmanager
def _timed(seconds: dict, stage: str):
    t0 = time.perf_counter()
    yield
    seconds[stage] = round(time.perf_counter() - t0, 1)


# -- configs of the stages ------------------------------------------------------------------------
def demo_sessions(cfg: DemoConfig) -> tuple:
    """The sessions the demo runs (``SessionConfig``): the videos folder, or one synthetic
    capture per clip, each by its own rig (seed); the last one is held out."""
    from epiflow.pipeline.config import SessionConfig, SyntheticConfig
    if cfg.videos:
        return (SessionConfig(videos=str(Path(cfg.videos).resolve())),)  # named by the run
    clips = cfg.clips[-2:] if cfg.quick else cfg.clips
    return tuple(SessionConfig(name=f"clip_{clip}", synthetic=SyntheticConfig(
        clip=clip, n_cameras=cfg.n_cameras, frames=40 if cfg.quick else 0, seed=i))
        for i, clip in enumerate(clips))


def pipeline_config(cfg: DemoConfig, store: Path):
    """The ``epiflow run`` config: the demo's sessions, cameras from people, a local Ray."""
    from epiflow.pipeline.config import CalibrateConfig, RayConfig, RunConfig
    intrinsics = str(Path(cfg.intrinsics).resolve()) if cfg.intrinsics else ""
    return RunConfig(out=str(store), report=str(store.parent / "run_report.json"),
                     sessions=demo_sessions(cfg), ray=RayConfig(num_cpus=cfg.num_cpus),
                     calibrate=CalibrateConfig(method="people", intrinsics=intrinsics))


def held_out(cfg: DemoConfig, sessions: list[str]) -> str | None:
    """The session that validates (and that the report shows): the last clip's; None with one
    session (videos), which then trains and is shown."""
    if len(sessions) < 2:
        return None
    name = demo_sessions(cfg)[-1].name
    return name if name in sessions else sessions[-1]


def experiment_config(cfg: DemoConfig, store: Path, sessions: list[str]):
    """The ``epiflow train`` recipe: a small MLP lifter on the pseudo-labels of ``store``,
    validated on the :func:`held_out` session."""
    from epiflow.models.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
    from epiflow.models.lifters import MLPConfig
    val = held_out(cfg, sessions)
    return ExperimentConfig(
        data=DataConfig(store=str(store), labels="pseudo", val_sessions=(val,) if val else (),
                        val_fraction=0.0),
        model=ModelConfig(name="mlp", mlp=MLPConfig(hidden=256, blocks=2, dropout=0.1)),
        # one torch thread: this MLP is tiny, and more threads only contend with each other
        # (10x slower on a busy 2-core machine, measured)
        train=TrainConfig(epochs=3 if cfg.quick else cfg.epochs, batch_size=32, lr=1e-3,
                          device="auto", progress=cfg.progress, threads=1))


# -- the metrics tables --------------------------------------------------------------------------
def camera_tables(sessions, reference=None) -> dict[str, dict]:
    """Per session, how far the cameras from people are from the true ones (``gt_rig``, else
    ``reference``): the Metrics table ``{session: {metric: value}}``."""
    from epiflow.models.metrics import rig_errors
    rows = {}
    for s in sessions:
        truth = s.gt_rig or reference
        if truth is None:
            continue
        e = rig_errors(s.rig, truth)
        rows[s.name] = {"relative rotation, max (deg)": e["rotation_deg_max"],
                        "baseline direction, max (deg)": e["baseline_deg_max"],
                        "position after similarity, max (m)": e["position_m_max"],
                        "focal length, max error (%)": 100 * e["focal_rel_max"],
                        "metric scale error (%)": 100 * abs(e["scale"] - 1)}
    return rows


def _label_row(s) -> dict:
    from epiflow.models.metrics import mpjpe
    from epiflow.viz import similarity_from_points
    labels = np.asarray(s.pseudo3d, np.float64)
    seen = np.isfinite(labels).all(-1)
    err = s.rig.reprojection_error(labels, np.moveaxis(s.keypoints2d[..., :2], 1, 0))
    row = {"joints labelled (%)": 100 * float(seen.mean()),
           "median weight": float(np.median(s.pseudo3d_weight[seen])) if seen.any() else np.nan,
           "median reprojection error (px)": float(np.nanmedian(err)) if seen.any() else np.nan}
    if s.gt3d is not None and seen.any():
        gt = np.asarray(s.gt3d, np.float64)
        sim, R, t = similarity_from_points(labels.reshape(-1, 3), gt.reshape(-1, 3))
        row["MPJPE vs truth, one similarity (mm)"] = 1000 * mpjpe(sim * labels @ R.T + t, gt)
    return row


def label_tables(sessions) -> dict[str, dict]:
    """Per session: labelled joints, weights, reprojection error and, with ground truth, the
    pseudo-labels' MPJPE after one similarity for the sequence (the world's gauge)."""
    return {s.name: _label_row(s) for s in sessions if s.pseudo3d is not None}


_MODEL_KEYS = {"mpjpe_mm": "MPJPE (mm)", "p_mpjpe_mm": "P-MPJPE (mm)",
               "n_mpjpe_mm": "N-MPJPE (mm)", "pck3d": "PCK3D @150 mm", "auc": "AUC",
               "n_poses": "poses"}


def model_tables(evaluation: dict, held: str | None = None) -> dict[str, dict]:
    """The lifter's metrics per clip (root-relative, each camera's frame) from an evaluation;
    the ``held`` out session's row says so."""
    rows = {name + (" (held out)" if name == held else ""):
            {v: m[k] for k, v in _MODEL_KEYS.items() if k in m}
            for name, m in evaluation["clips"].items()}
    rows["all"] = {v: evaluation["overall"][k] for k, v in _MODEL_KEYS.items()
                   if k in evaluation["overall"]}
    return rows


# -- the stages ----------------------------------------------------------------------------------
def _run_pipeline(cfg: DemoConfig, store: Path) -> None:
    from epiflow.pipeline.orchestrate import run_pipeline
    report = run_pipeline(pipeline_config(cfg, store), progress=cfg.progress, overwrite=True)
    if cfg.progress:
        print(report.table())
    if report.failures:
        reasons = "; ".join(f"{f['session']} at {f['stage']}: {f['reason']}"
                            for f in report.failures)
        raise DemoError(f"the pipeline failed for some sessions: {reasons}")


def _train(cfg: DemoConfig, store: Path, names: list[str], out: Path):
    from epiflow.models.train import train
    return train(experiment_config(cfg, store, names), out, resume=False)


def _predictions(checkpoint: Path, session) -> np.ndarray:
    """(T, J, 3) the lifter's root-relative poses from camera 0, turned into the world's
    orientation (the true camera's when known) so they stand Z up beside the truth."""
    from epiflow.models.checkpoint import load_model
    from epiflow.models.data import prepare_session
    from epiflow.models.evaluate import predict_sessions
    pred = predict_sessions(load_model(checkpoint), [prepare_session(session, None,
                                                                      session.joint_set)])[0]
    R = (session.gt_rig or session.rig).R[0]
    return pred[:, 0].astype(np.float64) @ R  # camera -> world rotation (Rᵀ x, row-wise)


def video_frames(folder, camera_names) -> Callable[[int], list[np.ndarray]]:
    """A function of a frame index returning that frame of each camera's video (RGB), the
    videos of ``folder`` matched to the cameras by file stem."""
    from epiflow.detection.detectors import list_videos, read_frames
    videos = {v.stem: v for v in list_videos(folder)}
    missing = [c for c in camera_names if c not in videos]
    if missing:
        raise DemoError(f"no video in {folder} for cameras {missing}; it has {sorted(videos)}")
    return lambda f: [read_frames(videos[c], f, f + 1)[0] for c in camera_names]


def report_inputs(cfg: DemoConfig, session, train_dir: Path, predictions: np.ndarray | None,
                  metrics: dict, reference=None) -> ReportInputs:
    """The report of one session: its cameras against the truth, labels, predictions, metrics."""
    from epiflow.keypoints import Keypoints
    kp = Keypoints(session.keypoints2d, session.joint_set, tuple(session.rig.names),
                   session.rig.sizes, session.fps)
    what = "real videos, no ground truth" if cfg.videos else \
        "a synthetic capture of real CMU motion with detector-like 2D errors"
    return ReportInputs(
        title=f"epiflow demo: {session.name}",
        summary=f"{what}; {kp.n_cameras} cameras, {kp.n_frames} frames. Cameras recovered "
                f"from the person, 3D pseudo-labels by robust triangulation, an MLP lifter "
                f"trained on them. The pictures show session {session.name!r}.",
        rig=session.rig, reference_rig=session.gt_rig or reference, keypoints=kp,
        pseudo3d=session.pseudo3d, truth3d=session.gt3d, predictions3d=predictions,
        joint_set=session.joint_set, metrics_csv=train_dir / "metrics.csv", metrics=metrics,
        images=video_frames(cfg.videos, session.rig.names) if cfg.videos else None)


def run_demo(cfg: DemoConfig = DemoConfig()) -> DemoResult:
    """Run the demo into ``cfg.out`` (see the module docstring); returns where things are."""
    from epiflow.models.data import load_sessions
    from epiflow.models.evaluate import evaluate_checkpoint
    out = Path(cfg.out).resolve()
    store, train_dir, seconds, t0 = out / "store.zarr", out / "train", {}, time.perf_counter()
    with _timed(seconds, "pipeline (run: 2D, cameras, labels)"):
        _run_pipeline(cfg, store)
    sessions = load_sessions(str(store))
    reference = _reference(cfg)
    with _timed(seconds, "training"):
        result = _train(cfg, store, [s.name for s in sessions], train_dir)
    val = held_out(cfg, [s.name for s in sessions])
    shown = next((s for s in sessions if s.name == val), sessions[-1])
    metrics = {"cameras from people vs true": camera_tables(sessions, reference),
               "pseudo-labels": label_tables(sessions)}
    with _timed(seconds, "evaluation"):
        truth = [s for s in sessions if s.gt3d is not None]
        if truth:
            metrics["lifter trained on pseudo-labels, vs ground truth"] = model_tables(
                evaluate_checkpoint(result.checkpoint, truth), val)
        predictions = _predictions(result.checkpoint, shown)
    with _timed(seconds, "report"):
        metrics = {k: v for k, v in metrics.items() if v}
        seconds_table = dict(seconds, total=round(time.perf_counter() - t0, 1))
        page = write_report(report_inputs(cfg, shown, train_dir, predictions,
                                          {**metrics, "time (s)": seconds_table}, reference),
                            out / "report")
    seconds["total"] = round(time.perf_counter() - t0, 1)
    return DemoResult(page, store, result.checkpoint, metrics, seconds)


def _reference(cfg: DemoConfig):
    if not cfg.reference_cameras:
        return None
    from epiflow.calibration.formats import load_rig
    return load_rig(cfg.reference_cameras)
