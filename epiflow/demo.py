"""``epiflow demo``: the whole story on a small capture, end to end, into one report folder.

Synthetic (the default; nothing to download): the CMU clips shipped in ``epiflow/data`` (walk,
run, jump) are each seen by a virtual ring of cameras with detector-like 2D errors. Then, as a
user would run them:

1. ``epiflow run`` on a local Ray into ``OUT/store.zarr``: cameras recovered from the people
   (``calibrate.method = "people"``; the true cameras are kept only to compare with), robust
   weighted triangulation into 3D pseudo-labels;
2. ``epiflow train``: a small MLP lifter trained on the pseudo-labels (``OUT/train``), the last
   clip held out for validation;
3. evaluation of the lifter against the ground truth beside two baselines (the pseudo-labels
   themselves, the mean training pose), per session and per joint, and of the cameras and
   pseudo-labels against the true ones (with the rank correlation of the labels' weights and
   their true errors);
4. ``OUT/report/index.html``: for every session, the camera layout estimated against true, 2D
   reprojections, reprojection errors over frames, 3D skeletons beside the truth; the training
   curves, the label weight against the true error, the metrics, and the stage times (which add
   up to the total).

With ``videos``: the same on a folder of synchronized videos (one per camera; MediaPipe 2D) with
no ground truth; ``reference_cameras`` (a calibration file) adds the camera comparison. With
``max_people`` > 1, up to that many people are detected per camera-frame, the cameras are solved
from all of them (:mod:`epiflow.calibration.people_calibration`), every person is labelled and
trained on, and the report draws each person in its own colour.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from epiflow.report import (ReportInputs, SessionView, label_weight_errors, make_figures,
                            spearman_rho, write_page)

__all__ = ["DemoConfig", "DemoResult", "DemoError", "run_demo", "demo_sessions", "held_out",
           "pipeline_config", "experiment_config", "camera_tables", "label_tables",
           "model_tables", "baseline_metrics", "comparison_table", "joint_table", "time_table",
           "video_frames", "report_inputs", "failure_message"]

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
        max_people: people detected per camera-frame in ``videos`` (1: MediaPipe's one person).
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
    max_people: int = 1


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
    from epiflow.pipeline.config import CalibrateConfig, DetectConfig, RayConfig, RunConfig
    intrinsics = str(Path(cfg.intrinsics).resolve()) if cfg.intrinsics else ""
    return RunConfig(out=str(store), report=str(store.parent / "run_report.json"),
                     sessions=demo_sessions(cfg), ray=RayConfig(num_cpus=cfg.num_cpus),
                     calibrate=CalibrateConfig(method="people", intrinsics=intrinsics),
                     detect=DetectConfig(max_people=cfg.max_people))


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
    """Per session (once, whatever its people), how far the cameras from people are from the
    true ones (``gt_rig``, else ``reference``): the Metrics table ``{session: {metric: value}}``."""
    from epiflow.models.metrics import rig_errors
    rows = {}
    for key, (s, *_) in _by_session(sessions).items():
        truth = s.gt_rig or reference
        if truth is None:
            continue
        e = rig_errors(s.rig, truth)
        rows[key] = {"relative rotation, max (deg)": e["rotation_deg_max"],
                        "baseline direction, max (deg)": e["baseline_deg_max"],
                        "position after similarity, max (m)": e["position_m_max"],
                        "focal length, max error (%)": 100 * e["focal_rel_max"],
                        "metric scale error (%)": 100 * abs(e["scale"] - 1)}
    return rows


def verdict_tables(store) -> dict[str, dict]:
    """The calibration verdict of each store session whose cameras came from people (the one
    ``calibrate``, ``run`` and ``inspect`` print): a row for the session's verdict, then one per
    camera with its 95 % bounds and reasons: the Metrics table ``{row: {column: value}}``."""
    from epiflow.store import PoseStore
    rows = {}
    for s in PoseStore.open(str(store)).sessions():
        verdict = (s.calibration.get("report") or {}).get("verdict")
        if not verdict:
            continue
        rows[s.id] = {"verdict": verdict["verdict"].upper(),
                      "why": "; ".join(verdict.get("advice", []))}
        for name, c in verdict.get("cameras", {}).items():
            rows[f"{s.id}: {name}"] = {
                "verdict": c["verdict"], "rotation ± (deg)": _nan(c["rotation_deg"]),
                "position ± (% of rig)": _nan(c["position_of_rig"], 100),
                "focal ± (%)": _nan(c["focal_pct"]), "why": "; ".join(c["reasons"])}
    return rows


def _nan(value, scale: float = 1.0) -> float:
    return float("nan") if value is None else scale * float(value)


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
        row["Spearman's rho, weight vs error"] = spearman_rho(*label_weight_errors(_view(s)))
    return row


def label_tables(sessions) -> dict[str, dict]:
    """Per session: labelled joints, weights, reprojection error and, with ground truth, the
    pseudo-labels' MPJPE after one similarity for the sequence (the world's gauge) and the rank
    correlation of their weights with their errors (negative: heavier labels are better)."""
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


def baseline_metrics(sessions, held: str | None) -> dict[str, dict]:
    """The baselines in the evaluation's terms (:func:`epiflow.models.evaluate.pose_metrics`:
    root-relative poses in each camera's frame, every (frame, camera) whose 2D root is seen):
    the pseudo-labels themselves (multi-view, the lifter's training targets) and the mean pose of
    the training sessions' labels. ``{baseline: {"held": metrics of the held-out session,
    "overall": of all sessions with ground truth}}``."""
    from epiflow.models.data import prepare_session
    from epiflow.models.evaluate import pose_metrics
    prepared = [prepare_session(s, "pseudo", s.joint_set) for s in sessions if s.gt3d is not None]
    if not prepared:
        return {}
    train = [p.y.reshape(-1, *p.y.shape[2:]) for p in prepared if p.name != held] or \
        [p.y.reshape(-1, *p.y.shape[2:]) for p in prepared]
    poses = np.concatenate(train)
    mean_pose = np.mean(poses[np.isfinite(poses).all((1, 2))], axis=0)
    guesses = {"pseudo-labels (multi-view triangulation; the training targets)":
               lambda p: p.y,
               "mean pose of the training labels": lambda p: np.broadcast_to(mean_pose, p.y.shape)}
    out = {}
    for name, guess in guesses.items():
        pred = {p.name: np.where((p.conf[..., p.root] > 0)[..., None, None], guess(p), np.nan)
                for p in prepared}
        gt = {p.name: p.gt for p in prepared}
        out[name] = {"overall": pose_metrics(np.concatenate([pred[k] for k in pred]),
                                             np.concatenate([gt[k] for k in gt]))}
        if held in pred:
            out[name]["held"] = pose_metrics(pred[held], gt[held])
    return out


def _comparison_row(held_m: dict | None, overall: dict, held: str | None) -> dict:
    row = {}
    if held_m is not None:
        row.update({f"{held}: MPJPE (mm)": held_m["mpjpe_mm"],
                    f"{held}: P-MPJPE (mm)": held_m["p_mpjpe_mm"],
                    f"{held}: PCK3D @150 mm": held_m["pck3d"]})
    row.update({"all sessions: MPJPE (mm)": overall["mpjpe_mm"],
                "all sessions: P-MPJPE (mm)": overall["p_mpjpe_mm"], "poses": overall["n_poses"]})
    return row


#: the lifter's row in the comparison and per-joint tables
LIFTER = "MLP lifter, trained on the pseudo-labels"


def comparison_table(evaluation: dict, baselines: dict, held: str | None) -> dict[str, dict]:
    """The lifter and every baseline side by side: on the held-out session (when there is one)
    and on all sessions with ground truth, in one table."""
    rows = {LIFTER: _comparison_row(evaluation["clips"].get(held), evaluation["overall"], held)}
    for name, m in baselines.items():
        rows[name] = _comparison_row(m.get("held"), m["overall"], held)
    return rows


def joint_table(evaluation: dict, baselines: dict, joint_names, held: str | None
                ) -> dict[str, dict]:
    """MPJPE per joint (mm), one column per model / baseline (all sessions, and the lifter on the
    held-out one); the last row, the mean over joints, is each column's MPJPE."""
    columns = {f"{LIFTER}, all sessions": evaluation["overall"]}
    if held in evaluation["clips"]:
        columns[f"{LIFTER}, {held}"] = evaluation["clips"][held]
    columns.update({f"{name.split(' (')[0]}, all sessions": m["overall"]
                    for name, m in baselines.items()})
    rows = {j: {c: m["mpjpe_per_joint_mm"][i] for c, m in columns.items()}
            for i, j in enumerate(joint_names)}
    rows["mean over joints"] = {c: float(np.mean(m["mpjpe_per_joint_mm"]))
                                for c, m in columns.items()}
    return rows


def time_table(seconds: dict, total: float) -> dict:
    """The stage times (s, rounded to 0.1) and ``other`` (what no stage covers: loading the
    store, the camera and label tables), which add up to ``total``."""
    rows = {k: round(v, 1) for k, v in seconds.items()}
    rows["other (loading the store, tables)"] = round(round(total, 1) - sum(rows.values()), 1)
    rows["total"] = round(total, 1)
    return rows


# -- the stages ----------------------------------------------------------------------------------
def _run_pipeline(cfg: DemoConfig, store: Path) -> None:
    from epiflow.pipeline.orchestrate import run_pipeline
    report = run_pipeline(pipeline_config(cfg, store), progress=cfg.progress, overwrite=True,
                          command="demo")
    if cfg.progress:
        print(report.table())
    if report.failures:
        raise DemoError(failure_message(cfg, report.failures))


def failure_message(cfg: DemoConfig, failures: list[dict]) -> str:
    """The demo's error for the pipeline's failed sessions (``failures``: dicts of session,
    stage, reason); videos that fail at calibrate also get what the demo cannot do and which
    commands can: the demo recovers the cameras from one person and takes no camera file."""
    reasons = "; ".join(f"{f['session']} at {f['stage']}: {f['reason']}" for f in failures)
    message = f"the pipeline failed for some sessions: {reasons}"
    if cfg.videos and any(f["stage"] == "calibrate" for f in failures):
        message += ("\nepiflow demo recovers the cameras from the people in view and takes no "
                    "camera file; with several people in view give --max-people N"
                    + (f" (this run detected {cfg.max_people})" if cfg.max_people > 1 else "")
                    + f"; with cameras you already have, use epiflow run --videos {cfg.videos} "
                    "--cameras FILE --out STORE.zarr (with --set detect.max_people=N for N "
                    "people), then epiflow inspect and export")
    return message


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


def _view(session, predictions: np.ndarray | None = None, images=None) -> SessionView:
    """A session (``SessionArrays``) as the report draws it."""
    from epiflow.keypoints import Keypoints
    kp = Keypoints(session.keypoints2d, session.joint_set, tuple(session.rig.names),
                   session.rig.sizes, session.fps)
    return SessionView(name=session.name, rig=session.rig, reference_rig=session.gt_rig,
                       keypoints=kp, pseudo3d=session.pseudo3d, weights=session.pseudo3d_weight,
                       truth3d=session.gt3d, predictions3d=predictions,
                       joint_set=session.joint_set, images=images)


def _people_view(people, images=None) -> SessionView:
    """The people of one store session (``SessionArrays``, one per person) as one view of
    several people, each drawn in its own colour: labels (T, N, J, 3), each person's 2D
    (T, C, N, J, 3)."""
    from epiflow.keypoints import Keypoints
    s = people[0]
    kp = Keypoints(np.stack([p.keypoints2d for p in people], axis=2), s.joint_set,
                   tuple(s.rig.names), s.rig.sizes, s.fps)
    return SessionView(name=s.session_id, rig=s.rig, reference_rig=s.gt_rig, keypoints=kp,
                       pseudo3d=np.stack([p.pseudo3d for p in people], axis=1),
                       weights=np.stack([p.pseudo3d_weight for p in people], axis=1),
                       person_ids=np.array([p.person_id for p in people]),
                       joint_set=s.joint_set, images=images)


def _by_session(sessions) -> dict[str, list]:
    """The people (``SessionArrays``) of each store session, in order: the arrays named
    ``<session id>:p<person id>`` (a session of several people) under their session id, any other
    under its own name."""
    out: dict[str, list] = {}
    for s in sessions:
        several = s.name == f"{s.session_id}:p{s.person_id}"
        out.setdefault(s.session_id if several else s.name, []).append(s)
    return out


def report_inputs(cfg: DemoConfig, sessions, train_dir: Path, predictions: dict,
                  metrics: dict, reference=None) -> ReportInputs:
    """The report of every session: cameras against the truth (``reference`` where a session has
    no true cameras), labels, the lifter's ``predictions`` (session name -> (T, J, 3)), metrics.
    A session of several people is one view with each person in its own colour."""
    views = []
    for people in _by_session(sessions).values():
        s = people[0]
        images = video_frames(cfg.videos, s.rig.names) if cfg.videos else None
        v = _people_view(people, images) if len(people) > 1 else \
            _view(s, predictions.get(s.name), images)
        views.append(v if v.reference_rig is not None else replace(v, reference_rig=reference))
    what = "real videos, no ground truth" if cfg.videos else \
        "synthetic captures of real CMU motion with detector-like 2D errors"
    names = list(_by_session(sessions))
    val = held_out(cfg, names)
    listed = ", ".join(n + (" (held out)" if n == val else "") for n in names)
    plural = "s" if len(names) > 1 else ""
    return ReportInputs(
        title=f"epiflow demo: {len(names)} session{plural} ({listed})",
        summary=f"{what}; sessions {listed}: "
                + "; ".join(f"{sid} {len(people)} "
                            f"{'people' if len(people) > 1 else 'person'}, "
                            f"{people[0].keypoints2d.shape[1]} cameras x "
                            f"{people[0].keypoints2d.shape[0]} frames"
                            for sid, people in _by_session(sessions).items())
                + ". Cameras recovered from the people in view, 3D pseudo-labels by robust "
                  "triangulation, an MLP lifter trained on them"
                + (f", validated on {val}" if val else "") + ". Every session is drawn below.",
        sessions=views, metrics_csv=train_dir / "metrics.csv", metrics=metrics)


def _model_metrics(result, sessions, val) -> tuple[dict, dict]:
    """The lifter's and the baselines' tables (empty without ground truth), and the lifter's
    predictions per session."""
    from epiflow.models.evaluate import evaluate_checkpoint
    from epiflow.skeleton import get_joint_set
    truth = [s for s in sessions if s.gt3d is not None]
    metrics = {}
    if truth:
        evaluation = evaluate_checkpoint(result.checkpoint, truth)
        baselines = baseline_metrics(truth, val)
        metrics["lifter trained on pseudo-labels, vs ground truth"] = model_tables(evaluation, val)
        metrics["models and baselines, vs ground truth"] = comparison_table(evaluation,
                                                                             baselines, val)
        metrics["MPJPE per joint (mm)"] = joint_table(
            evaluation, baselines, get_joint_set(truth[0].joint_set).joints, val)
    predictions = {s.name: _predictions(result.checkpoint, s) for s in sessions}
    return metrics, predictions


def run_demo(cfg: DemoConfig = DemoConfig()) -> DemoResult:
    """Run the demo into ``cfg.out`` (see the module docstring); returns where things are."""
    from epiflow.models.data import load_sessions
    out = Path(cfg.out).resolve()
    store, train_dir, seconds, t0 = out / "store.zarr", out / "train", {}, time.perf_counter()
    with _timed(seconds, "pipeline (run: 2D, cameras, labels)"):
        _run_pipeline(cfg, store)
    sessions = load_sessions(str(store))
    reference = _reference(cfg)
    names = list(_by_session(sessions))
    with _timed(seconds, "training"):
        result = _train(cfg, store, names, train_dir)
    val = held_out(cfg, names)
    metrics = {"calibration verdict (95 % bounds)": verdict_tables(store),
               "cameras from people vs true": camera_tables(sessions, reference),
               "pseudo-labels": label_tables(sessions)}
    with _timed(seconds, "evaluation"):
        models, predictions = _model_metrics(result, sessions, val)
    metrics = {k: v for k, v in {**metrics, **models}.items() if v}
    inputs = report_inputs(cfg, sessions, train_dir, predictions, metrics, reference)
    with _timed(seconds, "report (figures)"):
        figures = make_figures(inputs, out / "report")
    times = time_table(seconds, time.perf_counter() - t0)
    page = write_page(inputs, figures, out / "report", {**metrics, "time (s)": times})
    return DemoResult(page, store, result.checkpoint, metrics, times)


def _reference(cfg: DemoConfig):
    if not cfg.reference_cameras:
        return None
    from epiflow.calibration.formats import load_rig
    return load_rig(cfg.reference_cameras)
