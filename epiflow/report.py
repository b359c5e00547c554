"""The report of a run: one self-contained HTML page with its PNGs beside it in a folder.

Give :func:`write_report` what a run has (:class:`ReportInputs`: the page's title, summary,
metrics tables and training log, and one :class:`SessionView` per session; every field optional)
and it draws what can be drawn, for every session given:

==========================  ====================================  ==============================
section                     needs (of a session)                  file
==========================  ====================================  ==============================
camera layout               ``rig`` (+ ``reference_rig``,          ``cameras{_S}.png``
                            ``pseudo3d``, ``truth3d``)
2D reprojections            ``rig``, ``keypoints``, ``pseudo3d``   ``reprojections{_S}.png``
reprojection error          ``rig``, ``keypoints``, ``pseudo3d``   ``reprojection_errors{_S}.png``
3D skeletons                ``pseudo3d`` and/or ``predictions3d``  ``skeletons{_S}.png``
                            (+ ``truth3d``)
label weight vs true error  ``weights``, ``pseudo3d``, ``truth3d``  ``weight_vs_error.png``
                            (pooled over the sessions that have
                            them, Spearman's rho)
training curves             ``metrics_csv`` (of the page)          ``training.png``
metrics tables              ``metrics`` (of the page)              (in the page)
==========================  ====================================  ==============================

Several people (``pseudo3d`` (T, N, J, 3) with ``person_ids``, ``keypoints`` (T, C, N, J, 3)
each person's own detections): the reprojections and the 3D skeletons draw each person in its
own colour with its id; the camera layout shows person 0; the weight figure and the
reprojection-error curve are one person's and are left out.

``{_S}`` is ``_<session name>`` when the report shows several sessions, empty with one. The page
references the PNGs by relative path, so the folder can be moved or served as is.

Example::

    write_report(ReportInputs(title="walk", sessions=[SessionView(
        name="walk", rig=est, reference_rig=true, keypoints=kp, pseudo3d=labels, truth3d=gt)],
        metrics={"cameras": {"rotation error (deg)": 0.4}}), "demo_report")  # -> index.html
"""
from __future__ import annotations

import html
import re
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

__all__ = ["SessionView", "ReportInputs", "ReportFigure", "write_report", "make_figures",
           "render_html", "write_page", "label_weight_errors", "spearman_rho"]


@dataclass(frozen=True, eq=False)
class SessionView:
    """One session as the report shows it; every field may be None.

    Attributes:
        name: the session's name (headings, file names).
        rig: the cameras used (e.g. recovered from people); their world is that of ``pseudo3d``.
        reference_rig: the true cameras, same order; the layout is drawn after aligning ``rig``
            onto them by a similarity (the gauge cameras from people are free in).
        keypoints: the observed 2D keypoints (T, C, J, 3); mapped to ``joint_set`` when needed.
            Several people: (T, C, N, J, 3), each person's detections in the order of axis N.
        pseudo3d: (T, J, 3) 3D pseudo-labels, metres, in ``rig``'s world; or (T, N, J, 3),
            N people (ids in ``person_ids``), each drawn in its own colour.
        weights: (T, J) the pseudo-labels' weights in [0, 1] (0 = no label); (T, N, J).
        person_ids: the N people's ids, with a (T, N, J, 3) ``pseudo3d``.
        truth3d: (T, J, 3) ground truth, metres, in ``reference_rig``'s world (Z up).
        predictions3d: (T, J, 3) a model's predictions, metres, Z up, oriented like the world
            they are compared in; shown root-relative (pelvis placed on the truth's, when given).
        joint_set: joint set of ``pseudo3d``, ``truth3d`` and ``predictions3d``.
        images: the C images (H, W, 3) uint8 RGB of frame ``frame``, or a function of a frame
            index returning them (videos), drawn under the reprojections.
        frame: the frame shown in the reprojections (default: the one most joints are seen in).
        n_skeleton_frames: how many frames (evenly spaced) the 3D skeleton figure shows.
    """

    name: str = ""
    rig: CameraRig | None = None
    reference_rig: CameraRig | None = None
    keypoints: Keypoints | None = None
    pseudo3d: np.ndarray | None = None
    weights: np.ndarray | None = None
    truth3d: np.ndarray | None = None
    predictions3d: np.ndarray | None = None
    person_ids: Sequence[int] | None = None
    joint_set: str = "h36m17"
    images: Sequence[np.ndarray] | Callable[[int], Sequence[np.ndarray]] | None = None
    frame: int | None = None
    n_skeleton_frames: int = 4


@dataclass(frozen=True, eq=False)
class ReportInputs:
    """What a run has to show.

    Attributes:
        title: the page's title. summary: a paragraph under it (plain text).
        sessions: the sessions to draw, each in its own section (:class:`SessionView`).
        metrics_csv: the trainer's metrics log (columns step/epoch, train_loss, val metrics).
        metrics: table title -> {metric name (with its unit) -> value}, or -> {row -> {column
            -> value}} for a grid (e.g. one row per session).
    """

    title: str = "epiflow report"
    summary: str = ""
    sessions: Sequence[SessionView] = ()
    metrics_csv: Path | str | None = None
    metrics: Mapping[str, Mapping[str, object]] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportFigure:
    """One PNG of the report: its file name (in the report folder), heading and caption."""

    file: str
    heading: str
    caption: str


# -- the figures of one session -------------------------------------------------------------------
def _keypoints_in(view: SessionView) -> Keypoints:
    kp = view.keypoints
    if kp.joint_set != view.joint_set:
        if view.joint_set != "h36m17":
            raise ValueError(f"keypoints are {kp.joint_set!r} but the 3D points are "
                             f"{view.joint_set!r}; give both in one joint set")
        kp = kp.to_h36m()
    return kp


def _shown_frame(view: SessionView, kp: Keypoints) -> int:
    if view.frame is not None:
        if not 0 <= view.frame < kp.n_frames:
            raise ValueError(f"frame {view.frame} is outside the {kp.n_frames} frames")
        return view.frame
    seen = (kp.confidence > 0).sum(axis=(1, 2)) + np.isfinite(view.pseudo3d).all(-1).sum(-1)
    return int(np.argmax(seen))


def _images(view: SessionView, frame: int) -> Sequence[np.ndarray] | None:
    return view.images(frame) if callable(view.images) else view.images


def _name(stem: str, suffix: str) -> str:
    return f"{stem}{suffix}.png"


def _reprojection_figures(view: SessionView, out: Path, suffix: str, of: str
                          ) -> list[ReportFigure]:
    kp = _keypoints_in(view)
    rig, labels = view.rig, np.asarray(view.pseudo3d, np.float64)
    if kp.camera_names != tuple(rig.names) or labels.shape[0] != kp.n_frames:
        raise ValueError(f"keypoints ({kp.n_frames} frames, cameras {kp.camera_names}) and "
                         f"rig/pseudo3d ({labels.shape[0]} frames, cameras {rig.names}) disagree")
    f = _shown_frame(view, kp)
    reproj = rig.project(labels[f])  # (C, J, 2)
    viz.save_png(viz.plot_reprojections(kp.data[f], reproj, kp.image_size, kp.camera_names,
                                        view.joint_set, _images(view, f), crop=True,
                                        title=f"{view.name + ', ' if view.name else ''}frame {f}"),
                 out / _name("reprojections", suffix))
    errors = rig.reprojection_error(labels, kp.xy.transpose(1, 0, 2, 3)).transpose(1, 0, 2)
    viz.save_png(viz.plot_reprojection_errors(errors, kp.camera_names, kp.fps,
                                              title=f"reprojection error over frames{of}"),
                 out / _name("reprojection_errors", suffix))
    return [ReportFigure(_name("reprojections", suffix), "2D reprojections" + of,
                         f"Frame {f} in every camera: the observed 2D keypoints (blue) and the 3D "
                         f"pseudo-labels projected back (orange); grey segments join the two."),
            ReportFigure(_name("reprojection_errors", suffix), "Reprojection error over frames"
                         + of, "Per camera, the median over joints of the distance between each "
                         "observed keypoint and its reprojected pseudo-label, pixels.")]


def _aligned_to_truth(points: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``points`` moved onto ``truth`` by the one similarity that fits the whole sequence (over
    the joints finite in both)."""
    both = (np.isfinite(points).all(-1) & np.isfinite(truth).all(-1)).reshape(-1)
    s, R, t = viz.similarity_from_points(points.reshape(-1, 3)[both], truth.reshape(-1, 3)[both])
    return s * points @ R.T + t


def _root_placed(points: np.ndarray, truth: np.ndarray | None) -> np.ndarray:
    root = points[:, :1]
    anchor = truth[:, :1] if truth is not None else np.zeros_like(root)
    return points - root + anchor


def _skeleton_rows(view: SessionView) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    truth = None if view.truth3d is None else np.asarray(view.truth3d, np.float64)
    rows = {}
    if view.pseudo3d is not None:
        labels = np.asarray(view.pseudo3d, np.float64)
        rows["pseudo-labels" + (" (aligned)" if truth is not None else "")] = (
            _aligned_to_truth(labels, truth) if truth is not None else labels)
    if view.predictions3d is not None:
        rows["model (root-relative)"] = _root_placed(np.asarray(view.predictions3d, np.float64),
                                                     truth)
    return rows, truth


def _skeleton_frames(view: SessionView, T: int) -> np.ndarray:
    """The frames the 3D skeleton figure draws: ``view.n_skeleton_frames`` spread evenly over T."""
    return np.unique(np.linspace(0, T - 1, min(view.n_skeleton_frames, T)).round().astype(int))


def _skeleton_figure(view: SessionView, out: Path, suffix: str, of: str) -> list[ReportFigure]:
    rows, truth = _skeleton_rows(view)
    T = len(next(iter(rows.values())))
    for name, pts in rows.items():
        if len(pts) != T or (truth is not None and pts.shape != truth.shape):
            raise ValueError(f"3D skeletons: {name} has shape {pts.shape}, expected "
                             f"{(T, *pts.shape[1:]) if truth is None else truth.shape}")
    shown = _skeleton_frames(view, T)
    frames = {k: v[shown] for k, v in rows.items()}
    viz.save_png(viz.plot_skeletons_3d(frames, None if truth is None else truth[shown],
                                       view.joint_set, [f"frame {i}" for i in shown],
                                       title=f"3D skeletons{of}" if of else None),
                 out / _name("skeletons", suffix))
    what = ("beside the ground truth (grey, dashed); pseudo-labels are moved onto the truth by "
            "one similarity for the whole sequence" if truth is not None else "(no ground truth)")
    return [ReportFigure(_name("skeletons", suffix), "3D skeletons" + of,
                         f"Frames {', '.join(map(str, shown))}, {what}. Metres, Z up, equal "
                         f"scale on all axes.")]


def _camera_figure(view: SessionView, out: Path, suffix: str, of: str) -> list[ReportFigure]:
    title = ("camera layout, estimated (aligned) vs true" if view.reference_rig is not None
             else "camera layout") + (f": {view.name}" if view.name else "")
    people = view.person_ids if _has_people(view) else None  # each person in their colour
    viz.save_png(viz.plot_camera_layout(view.rig, view.reference_rig, view.pseudo3d,
                                        view.truth3d, view.joint_set, title=title,
                                        person_ids=people),
                 out / _name("cameras", suffix))
    return [ReportFigure(_name("cameras", suffix), "Camera layout" + of, (
        "Estimated cameras (thin, coloured) over the true ones (wide, light grey), after moving "
        "the estimate onto the truth by a similarity; " if view.reference_rig is not None
        else "The cameras; ") + "each pyramid opens towards what its camera sees, its thick "
        "edge is the top of the image; " + (
            "each person's path and one pose, in the person's own colour, are in the middle."
            if people is not None else "the person's path and one pose are in the middle."))]


def _has_people(view: SessionView) -> bool:
    """Whether ``view`` shows several people ((T, N, J, 3) labels)."""
    return view.pseudo3d is not None and np.ndim(view.pseudo3d) == 4


def _check_people(view: SessionView) -> None:
    J = len(get_joint_set(view.joint_set))
    T, N = np.shape(view.pseudo3d)[:2]
    if np.shape(view.pseudo3d)[2:] != (J, 3) or view.person_ids is None or \
            len(view.person_ids) != N:
        raise ValueError(f"pseudo3d of several people must be (T, N, J={J}, 3) with N person_ids; "
                         f"got {np.shape(view.pseudo3d)} and person_ids {view.person_ids}")
    if view.keypoints is not None and (view.keypoints.data.ndim != 5 or
                                       view.keypoints.data.shape[2] != N):
        raise ValueError(f"keypoints of several people must be (T, C, N={N}, J, 3), each "
                         f"person's detections; got {view.keypoints.data.shape}")


def _check_joints(view: SessionView) -> None:
    if _has_people(view):
        return _check_people(view)
    J = len(get_joint_set(view.joint_set))
    for name in ("pseudo3d", "truth3d", "predictions3d"):
        value = getattr(view, name)
        if value is not None and (np.ndim(value) != 3 or np.shape(value)[1:] != (J, 3)):
            raise ValueError(f"{name} must be (T, J={J}, 3) for joint set {view.joint_set!r}; "
                             f"got {np.shape(value)}; give all 3D points in one joint set")
    if view.weights is not None and view.pseudo3d is not None and \
            np.shape(view.weights) != np.shape(view.pseudo3d)[:2]:
        raise ValueError(f"weights must be (T, J) = {np.shape(view.pseudo3d)[:2]} like "
                         f"pseudo3d; got {np.shape(view.weights)}")


def _suffix(name: str, several: bool) -> str:
    return "_" + re.sub(r"[^A-Za-z0-9_.-]", "_", name) if several and name else ""


def _session_figures(view: SessionView, out: Path, several: bool) -> list[ReportFigure]:
    """The figures of one session (checked by :func:`_check_joints`); file names end in
    ``_<name>`` when ``several``."""
    suffix, of = _suffix(view.name, several), (f": {view.name}" if view.name else "")
    if _has_people(view):
        return _people_figures(view, out, suffix, of)
    figures = _camera_figure(view, out, suffix, of) if view.rig is not None else []
    if view.rig is not None and view.keypoints is not None and view.pseudo3d is not None:
        figures += _reprojection_figures(view, out, suffix, of)
    if view.pseudo3d is not None or view.predictions3d is not None:
        figures += _skeleton_figure(view, out, suffix, of)
    return figures


def _people_figures(view: SessionView, out: Path, suffix: str, of: str) -> list[ReportFigure]:
    """The figures of a session of several people: the camera layout, the reprojections and
    the 3D skeletons, each person in its own colour."""
    labels = np.asarray(view.pseudo3d, np.float64)
    ids = [int(i) for i in view.person_ids]
    figures = []
    if view.rig is not None:
        figures += _camera_figure(SessionView(view.name, view.rig, view.reference_rig,
                                              pseudo3d=labels, person_ids=ids,
                                              joint_set=view.joint_set), out, suffix, of)
    if view.rig is not None and view.keypoints is not None:
        kp = view.keypoints if view.keypoints.joint_set == view.joint_set else \
            view.keypoints.to_h36m()
        f = view.frame if view.frame is not None else int(np.argmax(
            np.isfinite(labels).all(-1).sum((1, 2))))
        reproj = view.rig.project(labels[f])                              # (C, N, J, 2)
        viz.save_png(viz.plot_people_reprojections(
            kp.data[f], reproj, kp.image_size, kp.camera_names, ids, view.joint_set,
            _images(view, f), title=f"{view.name + ', ' if view.name else ''}frame {f}"),
            out / _name("reprojections", suffix))
        figures.append(ReportFigure(_name("reprojections", suffix), "2D reprojections" + of,
                                    f"Frame {f} in every camera: each person's 2D detection "
                                    f"(solid) and its 3D label projected back (dashed), in the "
                                    f"person's own colour, id at the head."))
    T = labels.shape[0]
    shown = _skeleton_frames(view, T)
    viz.save_png(viz.plot_people_3d(labels[shown], ids, view.joint_set,
                                    [f"frame {i}" for i in shown],
                                    title=f"3D skeletons{of}" if of else None),
                 out / _name("skeletons", suffix))
    figures.append(ReportFigure(_name("skeletons", suffix), "3D skeletons" + of,
                                f"Frames {', '.join(map(str, shown))}: people {ids}, one colour "
                                f"each. Metres, Z up, equal scale on all axes."))
    return figures


# -- the figures of the page ---------------------------------------------------------------------
def label_weight_errors(view: SessionView) -> tuple[np.ndarray, np.ndarray]:
    """(N,) weights and (N,) true errors (mm) of a session's labelled joints (weight > 0 and
    finite), the labels moved onto the truth by one similarity for the sequence; empty arrays
    without weights, labels or truth."""
    if view.weights is None or view.pseudo3d is None or view.truth3d is None or \
            _has_people(view):
        return np.zeros(0), np.zeros(0)
    labels = np.asarray(view.pseudo3d, np.float64)
    truth = np.asarray(view.truth3d, np.float64)
    w = np.asarray(view.weights, np.float64)
    use = (w > 0) & np.isfinite(labels).all(-1) & np.isfinite(truth).all(-1)
    if not use.any():
        return np.zeros(0), np.zeros(0)
    err = 1000 * np.linalg.norm(_aligned_to_truth(labels, truth) - truth, axis=-1)
    return w[use], err[use]


def spearman_rho(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two (N,) samples (NaN with fewer than 3, or when one of
    them is constant)."""
    from scipy.stats import spearmanr
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _weight_figure(views: Sequence[SessionView], out: Path) -> list[ReportFigure]:
    pairs = [label_weight_errors(v) for v in views]
    if not sum(len(w) for w, _ in pairs):
        return []
    w, e = (np.concatenate(x) for x in zip(*pairs))
    rho = spearman_rho(w, e)
    viz.save_png(viz.plot_weight_vs_error(w, e, rho), out / "weight_vs_error.png")
    n = sum(1 for p in pairs if len(p[0]))
    return [ReportFigure("weight_vs_error.png", "Label weight against the true error", (
        f"Every labelled joint of the {n} session{'s' if n > 1 else ''} with ground truth "
        f"({len(w)} joints): its weight against its 3D error (labels moved onto the truth by "
        f"one similarity per session), and the median error per weight bin. The weights are "
        f"worth their name when the error falls as the weight grows: Spearman's rho = "
        f"{rho:.2f} (-1: the weights order the errors exactly; 0: no relation)."))]


def make_figures(inputs: ReportInputs, out_dir) -> list[ReportFigure]:
    """Draw every figure the inputs allow into ``out_dir``; returns them in page order: the
    page's (training, label weight against error), then each session's."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = []
    if inputs.metrics_csv is not None:
        viz.save_png(viz.plot_training_curves(inputs.metrics_csv), out / "training.png")
        figures.append(ReportFigure("training.png", "Training", "The training loss per step "
                                    "and the validation metrics as the trainer logged them "
                                    "(curves equal to another are drawn once, their names "
                                    "joined)."))
    for view in inputs.sessions:
        _check_joints(view)
    figures += _weight_figure(inputs.sessions, out)
    several = len(inputs.sessions) > 1
    for view in inputs.sessions:
        figures += _session_figures(view, out, several)
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


def write_page(inputs: ReportInputs, figures: Sequence[ReportFigure], out_dir,
               metrics: Mapping[str, Mapping[str, object]] | None = None) -> Path:
    """Write ``out_dir/index.html`` for figures already drawn (:func:`make_figures`), with
    ``metrics`` (default: the inputs'); returns the page's path."""
    metrics = inputs.metrics if metrics is None else metrics
    if not figures and not metrics:
        raise ValueError("nothing to report: give at least cameras, 3D points, a metrics log or "
                         "a metrics table")
    page = Path(out_dir) / "index.html"
    atomic_write_text(page, render_html(inputs.title, inputs.summary, figures, metrics))
    return page


def write_report(inputs: ReportInputs, out_dir) -> Path:
    """Draw the figures and write ``out_dir/index.html``; returns the page's path."""
    return write_page(inputs, make_figures(inputs, out_dir), out_dir)
