"""The report of a run: one self-contained HTML page with its PNGs beside it in a folder.

Give :func:`write_report` what a run has (:class:`ReportInputs`; every field optional) and it
draws what can be drawn from it:

==========================  ====================================  ==============================
section                     needs                                 file
==========================  ====================================  ==============================
camera layout               ``rig`` (+ ``reference_rig``,          ``cameras.png``
                            ``pseudo3d``, ``truth3d``)
2D reprojections            ``rig``, ``keypoints``, ``pseudo3d``   ``reprojections.png``
reprojection error          ``rig``, ``keypoints``, ``pseudo3d``   ``reprojection_errors.png``
3D skeletons                ``pseudo3d`` and/or ``predictions3d``  ``skeletons.png``
                            (+ ``truth3d``)
training curves             ``metrics_csv``                       ``training.png``
metrics tables              ``metrics``                           (in the page)
==========================  ====================================  ==============================

The page references the PNGs by relative path, so the folder can be moved or served as is.

Example::

    write_report(ReportInputs(rig=est, reference_rig=true, keypoints=kp, pseudo3d=labels,
                              truth3d=gt, metrics={"cameras": {"rotation error (deg)": 0.4}}),
                 "demo_report")        # -> demo_report/index.html
"""
from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from epiflow import __version__, viz
from epiflow.calibration.camera import CameraRig
from epiflow.keypoints import Keypoints
from epiflow.outputs import atomic_write_text
from epiflow.skeleton import get_joint_set

__all__ = ["ReportInputs", "ReportFigure", "write_report", "make_figures", "render_html"]


@dataclass(frozen=True, eq=False)
class ReportInputs:
    """What a run has to show; every field may be None / empty.

    Attributes:
        title: the page's title. summary: a paragraph under it (plain text).
        rig: the cameras used (e.g. recovered from people); their world is that of ``pseudo3d``.
        reference_rig: the true cameras, same order; the layout is drawn after aligning ``rig``
            onto them by a similarity (the gauge cameras from people are free in).
        keypoints: the observed 2D keypoints (T, C, J, 3); mapped to ``joint_set`` when needed.
        pseudo3d: (T, J, 3) 3D pseudo-labels, metres, in ``rig``'s world.
        truth3d: (T, J, 3) ground truth, metres, in ``reference_rig``'s world (Z up).
        predictions3d: (T, J, 3) a model's predictions, metres, Z up, oriented like the world
            they are compared in; shown root-relative (pelvis placed on the truth's, when given).
        joint_set: joint set of ``pseudo3d``, ``truth3d`` and ``predictions3d``.
        metrics_csv: the trainer's metrics log (columns step/epoch, train_loss, val metrics).
        metrics: table title -> {metric name (with its unit) -> value}, or -> {row -> {column
            -> value}} for a grid (e.g. one row per session).
        images: the C images (H, W, 3) uint8 RGB of frame ``frame``, or a function of a frame
            index returning them (videos), drawn under the reprojections.
        frame: the frame shown in the reprojections (default: the one most joints are seen in).
        n_skeleton_frames: how many frames (evenly spaced) the 3D skeleton figure shows.
    """

    title: str = "epiflow report"
    summary: str = ""
    rig: CameraRig | None = None
    reference_rig: CameraRig | None = None
    keypoints: Keypoints | None = None
    pseudo3d: np.ndarray | None = None
    truth3d: np.ndarray | None = None
    predictions3d: np.ndarray | None = None
    joint_set: str = "h36m17"
    metrics_csv: Path | str | None = None
    metrics: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    images: Sequence[np.ndarray] | Callable[[int], Sequence[np.ndarray]] | None = None
    frame: int | None = None
    n_skeleton_frames: int = 4


@dataclass(frozen=True)
class ReportFigure:
    """One PNG of the report: its file name (in the report folder), heading and caption."""

    file: str
    heading: str
    caption: str


# -- the figures ---------------------------------------------------------------------------------
def _keypoints_in(inputs: ReportInputs) -> Keypoints:
    kp = inputs.keypoints
    if kp.joint_set != inputs.joint_set:
        if inputs.joint_set != "h36m17":
            raise ValueError(f"keypoints are {kp.joint_set!r} but the 3D points are "
                             f"{inputs.joint_set!r}; give both in one joint set")
        kp = kp.to_h36m()
    return kp


def _shown_frame(inputs: ReportInputs, kp: Keypoints) -> int:
    if inputs.frame is not None:
        if not 0 <= inputs.frame < kp.n_frames:
            raise ValueError(f"frame {inputs.frame} is outside the {kp.n_frames} frames")
        return inputs.frame
    seen = (kp.confidence > 0).sum(axis=(1, 2)) + np.isfinite(inputs.pseudo3d).all(-1).sum(-1)
    return int(np.argmax(seen))


def _images(inputs: ReportInputs, frame: int) -> Sequence[np.ndarray] | None:
    return inputs.images(frame) if callable(inputs.images) else inputs.images


def _reprojection_figures(inputs: ReportInputs, out: Path) -> list[ReportFigure]:
    kp = _keypoints_in(inputs)
    rig, labels = inputs.rig, np.asarray(inputs.pseudo3d, np.float64)
    if kp.camera_names != tuple(rig.names) or labels.shape[0] != kp.n_frames:
        raise ValueError(f"keypoints ({kp.n_frames} frames, cameras {kp.camera_names}) and "
                         f"rig/pseudo3d ({labels.shape[0]} frames, cameras {rig.names}) disagree")
    f = _shown_frame(inputs, kp)
    reproj = rig.project(labels[f])  # (C, J, 2)
    viz.save_png(viz.plot_reprojections(kp.data[f], reproj, kp.image_size, kp.camera_names,
                                        inputs.joint_set, _images(inputs, f), crop=True,
                                        title=f"frame {f}"), out / "reprojections.png")
    errors = rig.reprojection_error(labels, kp.xy.transpose(1, 0, 2, 3)).transpose(1, 0, 2)
    viz.save_png(viz.plot_reprojection_errors(errors, kp.camera_names, kp.fps),
                 out / "reprojection_errors.png")
    return [ReportFigure("reprojections.png", "2D reprojections",
                   f"Frame {f} in every camera: the observed 2D keypoints (blue) and the 3D "
                   f"pseudo-labels projected back (orange); grey segments join the two."),
            ReportFigure("reprojection_errors.png", "Reprojection error over frames",
                   "Per camera, the median over joints of the distance between each observed "
                   "keypoint and its reprojected pseudo-label, pixels.")]


def _aligned_to_truth(points: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``points`` moved onto ``truth`` by the one similarity that fits the whole sequence."""
    s, R, t = viz.similarity_from_points(points.reshape(-1, 3), truth.reshape(-1, 3))
    return s * points @ R.T + t


def _root_placed(points: np.ndarray, truth: np.ndarray | None) -> np.ndarray:
    root = points[:, :1]
    anchor = truth[:, :1] if truth is not None else np.zeros_like(root)
    return points - root + anchor


def _skeleton_rows(inputs: ReportInputs) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    truth = None if inputs.truth3d is None else np.asarray(inputs.truth3d, np.float64)
    rows = {}
    if inputs.pseudo3d is not None:
        labels = np.asarray(inputs.pseudo3d, np.float64)
        rows["pseudo-labels" + (" (aligned)" if truth is not None else "")] = (
            _aligned_to_truth(labels, truth) if truth is not None else labels)
    if inputs.predictions3d is not None:
        rows["model (root-relative)"] = _root_placed(np.asarray(inputs.predictions3d, np.float64),
                                                     truth)
    return rows, truth


def _skeleton_figure(inputs: ReportInputs, out: Path) -> list[ReportFigure]:
    rows, truth = _skeleton_rows(inputs)
    T = len(next(iter(rows.values())))
    for name, pts in rows.items():
        if len(pts) != T or (truth is not None and pts.shape != truth.shape):
            raise ValueError(f"3D skeletons: {name} has shape {pts.shape}, expected "
                             f"{(T, *pts.shape[1:]) if truth is None else truth.shape}")
    shown = np.unique(np.linspace(0, T - 1, min(inputs.n_skeleton_frames, T)).round().astype(int))
    frames = {k: v[shown] for k, v in rows.items()}
    viz.save_png(viz.plot_skeletons_3d(frames, None if truth is None else truth[shown],
                                       inputs.joint_set, [f"frame {i}" for i in shown]),
                 out / "skeletons.png")
    what = ("beside the ground truth (grey, dashed); pseudo-labels are moved onto the truth by "
            "one similarity for the whole sequence" if truth is not None else "(no ground truth)")
    return [ReportFigure("skeletons.png", "3D skeletons",
                         f"Frames {', '.join(map(str, shown))}, {what}. Metres, Z up, equal "
                         f"scale on all axes.")]


def _check_joints(inputs: ReportInputs) -> None:
    J = len(get_joint_set(inputs.joint_set))
    for name in ("pseudo3d", "truth3d", "predictions3d"):
        value = getattr(inputs, name)
        if value is not None and (np.ndim(value) != 3 or np.shape(value)[1:] != (J, 3)):
            raise ValueError(f"{name} must be (T, J={J}, 3) for joint set {inputs.joint_set!r}; "
                             f"got {np.shape(value)}; give all 3D points in one joint set")


def make_figures(inputs: ReportInputs, out_dir) -> list[ReportFigure]:
    """Draw every figure the inputs allow into ``out_dir``; returns them in page order."""
    _check_joints(inputs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = []
    if inputs.rig is not None:
        viz.save_png(viz.plot_camera_layout(inputs.rig, inputs.reference_rig, inputs.pseudo3d,
                                            inputs.truth3d, inputs.joint_set), out / "cameras.png")
        figures.append(ReportFigure("cameras.png", "Camera layout", (
            "Estimated cameras (coloured) against the true ones (grey, dashed), after moving the "
            "estimate onto the truth by a similarity; " if inputs.reference_rig is not None
            else "The cameras; ") + "each pyramid opens towards what its camera sees, its thick "
            "edge is the top of the image; the person's path and one pose are in the middle."))
    if inputs.rig is not None and inputs.keypoints is not None and inputs.pseudo3d is not None:
        figures += _reprojection_figures(inputs, out)
    if inputs.pseudo3d is not None or inputs.predictions3d is not None:
        figures += _skeleton_figure(inputs, out)
    if inputs.metrics_csv is not None:
        viz.save_png(viz.plot_training_curves(inputs.metrics_csv), out / "training.png")
        figures.append(ReportFigure("training.png", "Training", "The training loss per step "
                                    "and the validation metrics as the trainer logged them."))
    return figures


# -- the page ------------------------------------------------------------------------------------
_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}h1{margin-bottom:.2em}figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}
figcaption{color:#555;font-size:.92em;margin-top:.4em}table{border-collapse:collapse;margin:.5em 0
1.5em}td,th{border:1px solid #ccc;padding:.25em .7em;text-align:left}td.num{text-align:right;
font-variant-numeric:tabular-nums}.meta{color:#777;font-size:.85em}"""


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f'<td class="num">{"n/a" if not np.isfinite(value) else f"{float(value):.4g}"}</td>'
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f'<td class="num">{int(value)}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def _table(title: str, rows: Mapping[str, object]) -> list[str]:
    """One table: ``{name: value}`` as two columns, or ``{row: {column: value}}`` as a grid."""
    parts = [f"<h3>{html.escape(title)}</h3><table>"]
    if rows and all(isinstance(v, Mapping) for v in rows.values()):
        cols = list(dict.fromkeys(c for v in rows.values() for c in v))
        parts.append("<tr><th></th>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
                     + "</tr>")
        parts += [f"<tr><th>{html.escape(str(r))}</th>"
                  + "".join(_cell(v.get(c, "")) for c in cols) + "</tr>" for r, v in rows.items()]
    else:
        parts += [f"<tr><th>{html.escape(str(k))}</th>{_cell(v)}</tr>" for k, v in rows.items()]
    return parts + ["</table>"]


def _tables(metrics: Mapping[str, Mapping[str, object]]) -> list[str]:
    return [line for title, rows in metrics.items() for line in _table(title, rows)]


def render_html(title: str, summary: str, figures: Sequence[ReportFigure],
                metrics: Mapping[str, Mapping[str, object]]) -> str:
    """The page: title, summary, the metrics tables, then each figure with its caption."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p class='meta'>epiflow {__version__}, {time.strftime('%Y-%m-%d %H:%M')}</p>"]
    if summary:
        parts.append(f"<p>{html.escape(summary)}</p>")
    if metrics:
        parts.append("<h2>Metrics</h2>")
        parts += _tables(metrics)
    for fig in figures:
        parts.append(f"<h2>{html.escape(fig.heading)}</h2><figure><img src='{fig.file}' "
                     f"alt='{html.escape(fig.heading)}'><figcaption>{html.escape(fig.caption)}"
                     f"</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(inputs: ReportInputs, out_dir) -> Path:
    """Draw the figures and write ``out_dir/index.html``; returns the page's path."""
    out = Path(out_dir)
    figures = make_figures(inputs, out)
    if not figures and not inputs.metrics:
        raise ValueError("nothing to report: give at least cameras, 3D points, a metrics log or "
                         "a metrics table")
    page = out / "index.html"
    atomic_write_text(page, render_html(inputs.title, inputs.summary, figures, inputs.metrics))
    return page
