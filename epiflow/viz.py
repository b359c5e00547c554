"""Pictures of a capture: camera layouts, 2D reprojections, reprojection errors over frames, 3D
skeletons beside the truth, and training curves.

Every ``plot_*`` function returns a :class:`matplotlib.figure.Figure` built without pyplot (so no
display and no global backend are touched; figures render with Agg); :func:`save_png` writes one.
3D plots draw epiflow's world as it is: metres, Z up, equal scaling on the three axes. Image plots
draw pixels with the origin at the top-left corner and y pointing down, as the image does.

Example::

    from epiflow.viz import plot_camera_layout, save_png
    fig = plot_camera_layout(estimated_rig, reference=true_rig, points3d=pseudo3d)
    save_png(fig, "cameras.png")
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.art3d import Line3DCollection

from epiflow.calibration.camera import Camera, CameraRig
from epiflow.calibration.similarity import umeyama
from epiflow.outputs import atomic_open
from epiflow.skeleton import get_joint_set

__all__ = ["similarity_from_points", "rig_alignment", "camera_frustum", "plot_camera_layout",
           "plot_reprojections", "plot_people_reprojections", "plot_reprojection_errors",
           "plot_skeletons_3d", "plot_people_3d",
           "read_metrics_csv", "plot_training_curves", "plot_weight_vs_error",
           "save_png", "camera_to_display", "plot_prediction"]

CAMERA_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
                 "tab:pink", "tab:olive", "tab:cyan", "tab:gray")
TRUTH_COLOR = "0.25"
#: the true cameras: wide and light, so that the estimated ones drawn over them leave them visible
TRUE_CAMERA_COLOR = "0.55"


def _color(i: int) -> str:
    return CAMERA_COLORS[i % len(CAMERA_COLORS)]


# -- geometry used by the plots -------------------------------------------------------------------
def similarity_from_points(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray,
                                                                             np.ndarray]:
    """The similarity that best maps ``source`` onto ``target``: Umeyama's least squares
    (:func:`epiflow.calibration.similarity.umeyama`) over the rows finite on both sides.

    Args:
        source, target: (N, 3) corresponding points, N >= 3, not all on one line; rows with a NaN
            on either side are left out.

    Returns:
        (scale, R (3, 3) rotation, t (3,)) with ``target ≈ scale · R · source + t``.
    """
    src, dst = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3:
        raise ValueError(f"source and target must both be (N, 3); got {src.shape} and {dst.shape}")
    ok = np.isfinite(src).all(1) & np.isfinite(dst).all(1)
    if ok.sum() < 3:
        raise ValueError(f"a similarity needs >= 3 finite point pairs; got {int(ok.sum())}")
    return umeyama(src[ok], dst[ok])


def _rig_anchor_points(rig: CameraRig) -> np.ndarray:
    """(2C, 3) camera centres and points one rig-size ahead along each optical axis."""
    centers = rig.centers
    size = np.median(np.linalg.norm(centers - centers.mean(0), axis=1)) or 1.0
    ahead = centers + size * rig.R[:, 2, :]  # row 2 of R = optical axis in the world
    return np.concatenate([centers, ahead])


def rig_alignment(rig: CameraRig, reference: CameraRig) -> tuple[float, np.ndarray, np.ndarray]:
    """The similarity (scale, R, t) that moves ``rig``'s world onto ``reference``'s.

    Camera centres and their optical axes are matched camera by camera (same order), so the
    gauge an estimate from people is free in (scale, rotation, translation) is removed. Apply it
    with ``rig.transformed(scale, R, t)`` and to points as ``scale · R · X + t``.
    """
    if len(rig) != len(reference):
        raise ValueError(f"rig has {len(rig)} cameras, reference has {len(reference)}; align rigs "
                         f"of the same cameras in the same order")
    return similarity_from_points(_rig_anchor_points(rig), _rig_anchor_points(reference))


def camera_frustum(camera: Camera, depth: float) -> np.ndarray:
    """(5, 3) world points of a camera's viewing pyramid: the centre, then the image corners
    (top-left, top-right, bottom-right, bottom-left) back-projected to ``depth`` metres."""
    w, h = camera.size if camera.size[0] > 0 else (2 * camera.K[0, 2], 2 * camera.K[1, 2])
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], dtype=np.float64)
    rays = corners @ np.linalg.inv(camera.K).T * depth  # camera frame, z = depth
    world = (rays - camera.t) @ camera.R  # Rᵀ (x - t), row-wise
    return np.concatenate([camera.center[None], world])


def _transform_points(points: np.ndarray, scale: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    return scale * np.asarray(points, np.float64) @ R.T + t


# -- camera layout --------------------------------------------------------------------------------
def _draw_camera(ax, camera: Camera, depth: float, color: str, label: str | None,
                 lw: float = 1.0, alpha: float = 1.0):
    """One pyramid; its thick edge (3 x ``lw``) is the top of the image."""
    f = camera_frustum(camera, depth)
    style = dict(color=color, lw=lw, alpha=alpha, solid_capstyle="round")
    for k in range(1, 5):
        ax.plot(*np.stack([f[0], f[k]]).T, **style)
    ax.plot(*f[[1, 2, 3, 4, 1]].T, **style)
    ax.plot(*f[[1, 2]].T, **{**style, "lw": 3 * lw})
    if label:
        ax.text(*f[0], f" {label}", color=color, fontsize=8)


def _bone_segments(points: np.ndarray, bones) -> np.ndarray:
    """(K, 2, D) the bones of ``points`` (J, D) whose two ends are both finite."""
    if not bones:
        return np.zeros((0, 2, points.shape[-1]))
    segs = points[np.asarray(bones)]
    return segs[np.isfinite(segs).all(axis=(1, 2))]


def _draw_bones(ax, points: np.ndarray, bones, color: str, lw: float = 1.5, style: str = "-"):
    segs = _bone_segments(points, bones)
    if len(segs):
        ax.add_collection3d(Line3DCollection(segs, colors=color, linewidths=lw, linestyles=style))


def _set_equal_3d(ax, points: np.ndarray, min_fraction: float = 0.3) -> None:
    """Limits around ``points`` (N, 3) with one scale on all three axes: each axis spans its own
    range (at least ``min_fraction`` of the largest) and the box is shaped to match."""
    pts = points[np.isfinite(points).all(1)]
    lo, hi = (pts.min(0), pts.max(0)) if len(pts) else (-np.ones(3), np.ones(3))
    span = np.maximum(hi - lo, min_fraction * max((hi - lo).max(), 1e-3)) * 1.1
    mid = (lo + hi) / 2
    ax.set_xlim(mid[0] - span[0] / 2, mid[0] + span[0] / 2)
    ax.set_ylim(mid[1] - span[1] / 2, mid[1] + span[1] / 2)
    ax.set_zlim(mid[2] - span[2] / 2, mid[2] + span[2] / 2)
    ax.set_box_aspect(tuple(span), zoom=0.9)  # room for the z label
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_zlabel("z (m)")


def _draw_person(ax, points3d: np.ndarray, bones, color: str, label: str) -> list[np.ndarray]:
    """Trajectory of the joints' mean over the frames with points, and the skeleton of the
    middle one of those frames; returns what was drawn, for the limits."""
    pts = np.asarray(points3d, np.float64).reshape(-1, *np.shape(points3d)[-2:])
    pts = pts[np.isfinite(pts).all(-1).any(-1)]
    if not len(pts):
        return []
    centre = np.array([p[np.isfinite(p).all(-1)].mean(0) for p in pts])
    ax.plot(*centre.T, color=color, lw=1, alpha=0.6,
            label=f"{label}: path, skeleton at the middle frame")
    middle = pts[len(pts) // 2]
    _draw_bones(ax, middle, bones, color)
    return [centre, middle]


def plot_camera_layout(rig: CameraRig, reference: CameraRig | None = None,
                       points3d: np.ndarray | None = None,
                       reference_points3d: np.ndarray | None = None, joint_set: str = "h36m17",
                       align: bool = True, frustum_depth: float | None = None,
                       title: str | None = None,
                       person_ids: Sequence[int] | None = None) -> Figure:
    """Cameras in 3D, estimated against the truth when a reference is given.

    Args:
        rig: the cameras to draw (e.g. recovered from people).
        reference: the true cameras, same order, drawn as wide light-grey pyramids under the
            estimated ones (thin, coloured), so both show where they coincide; with ``align``,
            ``rig`` (and ``points3d``) are first moved into the reference world by
            :func:`rig_alignment`.
        points3d: (T, J, 3) or (J, 3) people in ``rig``'s world, metres: their trajectory and the
            skeleton of the middle frame are drawn in black; with ``person_ids``, (T, N, J, 3):
            N people, each in its own colour (that of :func:`plot_people_3d`).
        reference_points3d: (T, J, 3) or (J, 3) true people in the reference world, drawn grey.
        joint_set: joint set of the points (for the bones).
        frustum_depth: size of the drawn pyramids, metres (default: a fifth of the rig's radius).
        person_ids: the N ids of a (T, N, J, 3) ``points3d``, for the legend.

    Returns:
        The figure. Each camera is a pyramid from its centre opening towards what it sees; the
        thick edge is the top of its image.
    """
    bones = get_joint_set(joint_set).bones
    shown, pts_world = rig, points3d
    if reference is not None and align:
        s, R, t = rig_alignment(rig, reference)
        shown = rig.transformed(s, R, t)
        pts_world = None if points3d is None else _transform_points(points3d, s, R, t)
    base = reference if reference is not None else shown
    radius = np.median(np.linalg.norm(base.centers - base.centers.mean(0), axis=1)) or 1.0
    depth = frustum_depth or 0.2 * radius
    fig = Figure(figsize=(7, 6.5), dpi=100)
    ax = fig.add_subplot(projection="3d")
    extent = [shown.centers]
    if reference is not None:
        for cam in reference:
            _draw_camera(ax, cam, depth, TRUE_CAMERA_COLOR, None, lw=4.0, alpha=0.55)
            extent.append(camera_frustum(cam, depth))
        ax.plot([], [], color=TRUE_CAMERA_COLOR, lw=4.0, alpha=0.55, label="true cameras")
    for i, cam in enumerate(shown):
        _draw_camera(ax, cam, depth, _color(i), cam.name)
        extent.append(camera_frustum(cam, depth))
    ax.plot([], [], color="tab:blue", label="estimated cameras" if reference is not None
            else "cameras")
    if reference_points3d is not None:
        extent += _draw_person(ax, reference_points3d, bones, TRUTH_COLOR, "true person")
    if pts_world is not None and person_ids is not None:
        for n, pid in enumerate(person_ids):
            extent += _draw_person(ax, np.asarray(pts_world)[:, n], bones, _color(n),
                                   f"person {pid}")
    elif pts_world is not None:
        extent += _draw_person(ax, pts_world, bones, "black", "person")
    _set_equal_3d(ax, np.concatenate(extent))
    ax.view_init(elev=25, azim=-60)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title or ("camera layout, estimated (aligned) vs true" if reference is not None
                           else "camera layout"))
    fig.tight_layout()
    return fig


# -- 2D reprojections ----------------------------------------------------------------------------
def _draw_2d(ax, xy: np.ndarray, bones, color: str, marker: str, style: str, label: str):
    segs = _bone_segments(xy, bones)
    if len(segs):
        ax.add_collection(LineCollection(segs, colors=color, linewidths=1.2, linestyles=style))
    ax.plot(*xy.T, ls="none", marker=marker, ms=4, color=color, label=label)


def plot_reprojections(observed: np.ndarray, reprojected: np.ndarray | None,
                       image_sizes: np.ndarray, camera_names: Sequence[str],
                       joint_set: str = "h36m17", images: Sequence[np.ndarray] | None = None,
                       crop: bool = False, title: str | None = None) -> Figure:
    """One frame in every camera: observed 2D keypoints against reprojected pseudo-labels.

    Args:
        observed: (C, J, 2) or (C, J, 3) pixels (a confidence channel is ignored); NaN = missing.
        reprojected: (C, J, 2) pixels, the 3D pseudo-labels projected into each camera, or None.
        image_sizes: (C, 2) (width, height) pixels.
        camera_names: C names for the panel titles.
        joint_set: joint set of both arrays (for the skeleton lines).
        images: optional C images (H, W, 3) uint8 RGB of that frame, drawn underneath.
        crop: zoom on the person (with a margin) instead of showing the whole image.

    Returns:
        The figure: a panel per camera, image coordinates (y down); grey segments join each
        observation to its reprojection.
    """
    obs = np.asarray(observed, np.float64)[..., :2]
    sizes = np.asarray(image_sizes).reshape(-1, 2)
    C = len(camera_names)
    if obs.ndim != 3 or obs.shape[0] != C or sizes.shape[0] != C:
        raise ValueError(f"observed must be (C={C}, J, 2|3) and image_sizes (C, 2); got "
                         f"{obs.shape} and {sizes.shape}")
    rep = None if reprojected is None else np.asarray(reprojected, np.float64)[..., :2]
    if rep is not None and rep.shape != obs.shape:
        raise ValueError(f"reprojected must match observed {obs.shape}; got {rep.shape}")
    bones = get_joint_set(joint_set).bones
    boxes = [_view_box(obs[c], None if rep is None else rep[c], sizes[c], crop) for c in range(C)]
    cols = min(C, 4)
    rows = -(-C // cols)
    aspect = max((b[3] - b[2]) / max(b[1] - b[0], 1) for b in boxes)
    fig = Figure(figsize=(3.6 * cols, 3.6 * rows * min(max(aspect, 0.6), 1.9) + 0.9), dpi=100)
    for c in range(C):
        ax = fig.add_subplot(rows, cols, c + 1)
        _reprojection_panel(ax, obs[c], None if rep is None else rep[c], sizes[c], bones,
                            None if images is None else images[c], boxes[c])
        ax.set_xlim(boxes[c][0], boxes[c][1])
        ax.set_ylim(boxes[c][3], boxes[c][2])  # y down
        ax.set_title(camera_names[c], fontsize=9)
    fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def plot_people_reprojections(observed: np.ndarray, reprojected: np.ndarray,
                              image_sizes: np.ndarray, camera_names: Sequence[str],
                              person_ids: Sequence[int], joint_set: str = "h36m17",
                              images: Sequence[np.ndarray] | None = None,
                              title: str | None = None) -> Figure:
    """One frame in every camera, several people: each person's 2D (solid, dots) and its 3D
    reprojected (dashed, crosses) in the person's own colour, its id written at its head.

    Args:
        observed: (C, N, J, 2|3) pixels, each person's detection in each camera (a confidence
            channel is ignored); NaN = not seen.
        reprojected: (C, N, J, 2) pixels, each person's 3D projected into each camera; NaN = none.
        image_sizes: (C, 2) (width, height) pixels. camera_names: C panel titles.
        person_ids: N ids, in the order of axis N (colour i goes to the i-th person).
        joint_set: both arrays' joint set. images: optional C (H, W, 3) uint8 RGB underneath.

    Returns:
        The figure: a panel per camera, whole image, image coordinates (y down).
    """
    obs = np.asarray(observed, np.float64)[..., :2]
    rep = np.asarray(reprojected, np.float64)[..., :2]
    sizes = np.asarray(image_sizes).reshape(-1, 2)
    C, N = len(camera_names), len(person_ids)
    if obs.shape[:2] != (C, N) or rep.shape != obs.shape or sizes.shape[0] != C:
        raise ValueError(f"observed and reprojected must be (C={C}, N={N}, J, 2) and image_sizes "
                         f"(C, 2); got {obs.shape}, {rep.shape} and {sizes.shape}")
    bones = get_joint_set(joint_set).bones
    w, h = sizes.max(0)
    fig = Figure(figsize=(3.2 * C, 3.2 * C * h / w / C + 1.0), dpi=100)
    for c in range(C):
        ax = fig.add_subplot(1, C, c + 1)
        if images is not None:
            ax.imshow(images[c], extent=(0, images[c].shape[1], images[c].shape[0], 0))
        else:
            ax.add_patch(_frame_patch(*sizes[c]))
        for n, pid in enumerate(person_ids):
            _draw_person_2d(ax, obs[c, n], rep[c, n], bones, _color(n), int(pid))
        ax.set_xlim(0, sizes[c][0])
        ax.set_ylim(sizes[c][1], 0)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
        ax.set_title(camera_names[c], fontsize=9)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=max(2 * N, 1), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def _draw_person_2d(ax, obs: np.ndarray, rep: np.ndarray, bones, color: str, pid: int) -> None:
    """One person in one panel: 2D, reprojected 3D, and its id above its highest point."""
    _draw_2d(ax, obs, bones, color, "o", "-", f"person {pid}: 2D")
    _draw_2d(ax, rep, bones, color, "x", "--", f"person {pid}: 3D reprojected")
    pts = np.concatenate([obs, rep])
    pts = pts[np.isfinite(pts).all(1)]
    if len(pts):
        top = pts[np.argmin(pts[:, 1])]
        ax.text(top[0], top[1] - 40, str(pid), color="white", fontsize=9, ha="center",
                va="bottom", bbox=dict(facecolor=color, edgecolor="none", pad=1.5))


def _view_box(obs: np.ndarray, rep: np.ndarray | None, size, crop: bool) -> tuple[float, ...]:
    """(x0, x1, y0, y1) pixels shown: the whole image, or around the person with a margin,
    at least 0.6 as wide as tall and the other way round."""
    pts = np.concatenate([obs] + ([rep] if rep is not None else []))
    pts = pts[np.isfinite(pts).all(1)]
    if not crop or not len(pts):
        return 0.0, float(size[0]), 0.0, float(size[1])
    lo, hi = pts.min(0), pts.max(0)
    half = np.maximum((hi - lo) / 2, 0.3 * (hi - lo).max()) * 1.15 + 10
    mid = (lo + hi) / 2
    return mid[0] - half[0], mid[0] + half[0], mid[1] - half[1], mid[1] + half[1]


def _draw_image_part(ax, image: np.ndarray, box) -> None:
    """Only the part of ``image`` inside ``box`` (x0, x1, y0, y1), at its pixel position."""
    H, W = image.shape[:2]
    x0, x1 = int(np.clip(np.floor(box[0]), 0, W)), int(np.clip(np.ceil(box[1]), 0, W))
    y0, y1 = int(np.clip(np.floor(box[2]), 0, H)), int(np.clip(np.ceil(box[3]), 0, H))
    if x1 > x0 and y1 > y0:
        ax.imshow(image[y0:y1, x0:x1], extent=(x0, x1, y1, y0))


def _reprojection_panel(ax, obs, rep, size, bones, image, box) -> None:
    w, h = int(size[0]), int(size[1])
    if image is not None:
        _draw_image_part(ax, image, box)
    else:
        ax.add_patch(_frame_patch(w, h))
    if rep is not None:
        pairs = np.stack([obs, rep], axis=1)  # (J, 2, 2): observation -> reprojection
        ax.add_collection(LineCollection(pairs[np.isfinite(pairs).all(axis=(1, 2))],
                                         colors="0.5", linewidths=0.8))
    _draw_2d(ax, obs, bones, "tab:blue", "o", "-", "observed 2D")
    if rep is not None:
        _draw_2d(ax, rep, bones, "tab:orange", "x", "--", "reprojected 3D")
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)


def _frame_patch(w: int, h: int):
    from matplotlib.patches import Rectangle
    return Rectangle((0, 0), w, h, facecolor="0.96", edgecolor="0.6", lw=1)


# -- reprojection error over frames --------------------------------------------------------------
def plot_reprojection_errors(errors: np.ndarray, camera_names: Sequence[str],
                             fps: float | None = None, title: str | None = None) -> Figure:
    """Reprojection error over frames, one line per camera.

    Args:
        errors: (T, C) or (T, C, J) pixels (NaN = not observed); with joints, the median over the
            joints of each frame is drawn.
        camera_names: C names.
        fps: frames per second; the x axis is in seconds when given, in frames otherwise.

    Returns:
        The figure; the legend gives each camera's median error over the whole sequence.
    """
    err = np.asarray(errors, np.float64)
    if err.ndim not in (2, 3) or err.shape[1] != len(camera_names):
        raise ValueError(f"errors must be (T, C={len(camera_names)}) or (T, C, J); got {err.shape}")
    with np.errstate(all="ignore"):
        per_frame = _nanmedian(err, axis=2) if err.ndim == 3 else err
        overall = [_nanmedian(err[:, c].ravel(), axis=0) for c in range(err.shape[1])]
    x = np.arange(len(err)) / fps if fps else np.arange(len(err))
    fig = Figure(figsize=(8, 3.6), dpi=100)
    ax = fig.add_subplot()
    for c, name in enumerate(camera_names):
        ax.plot(x, per_frame[:, c], color=_color(c), lw=1.2,
                label=f"{name} (median {overall[c]:.2f} px)")
    ax.set_xlabel("time (s)" if fps else "frame")
    ax.set_ylabel("reprojection error (px)" + (", median over joints" if err.ndim == 3 else ""))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title(title or "reprojection error over frames")
    fig.tight_layout()
    return fig


def _nanmedian(a: np.ndarray, axis: int):
    """``np.nanmedian`` that answers NaN (no warning) where a slice is all NaN."""
    a = np.asarray(a, np.float64)
    if a.size == 0 or not np.isfinite(a).any():
        return np.full(np.delete(a.shape, axis), np.nan) if a.ndim > 1 else np.nan
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(a, axis=axis)


# -- 3D skeletons ---------------------------------------------------------------------------------
def plot_skeletons_3d(rows: Mapping[str, np.ndarray], truth: np.ndarray | None = None,
                      joint_set: str = "h36m17", frame_labels: Sequence[str] | None = None,
                      title: str | None = None) -> Figure:
    """3D skeletons beside the truth: one row per estimate, one column per frame.

    Args:
        rows: label -> (F, J, 3) metres, world frame Z up, one skeleton per shown frame. Put
            estimates and truth in the same frame first (e.g. align them with
            :func:`similarity_from_points`, or subtract the pelvis for root-relative poses).
        truth: (F, J, 3) the true skeletons, drawn grey in every row's panels.
        joint_set: joint set of the points (for the bones).
        frame_labels: F column titles (e.g. ``"frame 120"``).

    Returns:
        The figure; each panel has equal scaling on x, y and z, z up.
    """
    if not rows:
        raise ValueError("rows is empty: give at least one label -> (F, J, 3) array")
    arrays = {k: np.asarray(v, np.float64) for k, v in rows.items()}
    F = next(iter(arrays.values())).shape[0]
    for k, v in arrays.items():
        if v.ndim != 3 or v.shape[0] != F or v.shape[2] != 3:
            raise ValueError(f"rows[{k!r}] must be (F={F}, J, 3); got {v.shape}")
    gt = None if truth is None else np.asarray(truth, np.float64)
    if gt is not None and gt.shape != next(iter(arrays.values())).shape:
        raise ValueError(f"truth must match the rows' shape; got {gt.shape}")
    bones = get_joint_set(joint_set).bones
    fig = Figure(figsize=(2.9 * F + 0.4, 3.1 * len(arrays) + 0.4), dpi=100)
    for r, (label, pts) in enumerate(arrays.items()):
        for f in range(F):
            ax = fig.add_subplot(len(arrays), F, r * F + f + 1, projection="3d")
            shown = [pts[f]] + ([gt[f]] if gt is not None else [])
            if gt is not None:
                _draw_bones(ax, gt[f], bones, TRUTH_COLOR, lw=1.2, style="--")
            _draw_bones(ax, pts[f], bones, _color(r + 3), lw=2)
            _set_equal_3d(ax, np.concatenate(shown), min_fraction=0.6)
            _quiet_axes(ax, keep_z=f == 0)
            head = (frame_labels[f] if frame_labels else f"frame {f}")
            ax.set_title(f"{label}: {head}" if f == 0 else head, fontsize=8)
    note = " (grey dashed: truth)" if gt is not None else ""
    fig.suptitle((title or "3D skeletons") + note, fontsize=10)
    fig.tight_layout()
    return fig


def plot_people_3d(frames: np.ndarray, person_ids: Sequence[int], joint_set: str = "h36m17",
                   frame_labels: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """Several people's 3D skeletons, each in its own colour (that of
    :func:`plot_people_reprojections`), one panel per frame, the id written at each head.

    Args:
        frames: (F, N, J, 3) metres, world frame Z up; NaN = no label.
        person_ids: N ids, in the order of axis N. frame_labels: F panel titles.

    Returns:
        The figure; each panel has equal scaling on x, y and z, z up.
    """
    pts = np.asarray(frames, np.float64)
    if pts.ndim != 4 or pts.shape[1] != len(person_ids) or pts.shape[3] != 3:
        raise ValueError(f"frames must be (F, N={len(person_ids)}, J, 3); got {pts.shape}")
    F = pts.shape[0]
    bones = get_joint_set(joint_set).bones
    fig = Figure(figsize=(3.2 * F + 0.4, 3.4), dpi=100)
    for f in range(F):
        ax = fig.add_subplot(1, F, f + 1, projection="3d")
        for n, pid in enumerate(person_ids):
            _draw_bones(ax, pts[f, n], bones, _color(n), lw=2)
            top = pts[f, n][np.isfinite(pts[f, n]).all(1)]
            if len(top):
                head = top[np.argmax(top[:, 2])]
                ax.text(*head, f" {pid}", color=_color(n), fontsize=8)
        _set_equal_3d(ax, pts[f].reshape(-1, 3), min_fraction=0.3)
        _quiet_axes(ax, keep_z=f == 0)
        ax.set_title(frame_labels[f] if frame_labels else f"frame {f}", fontsize=8)
    fig.suptitle((title or "3D skeletons") + f": {len(person_ids)} people, one colour each",
                 fontsize=10)
    fig.tight_layout()
    return fig


def _quiet_axes(ax, keep_z: bool) -> None:
    """A small 3D panel: no x/y tick labels, the height scale kept on the first column."""
    ax.view_init(elev=12, azim=-70)
    ax.set_xticklabels([])
    ax.set_yticklabels([])
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.tick_params(labelsize=6, pad=0)
    if not keep_z:
        ax.set_zticklabels([])
        ax.set_zlabel("")


# -- training curves ------------------------------------------------------------------------------
def read_metrics_csv(path) -> dict[str, np.ndarray]:
    """Read a training metrics log: a CSV with a header row (e.g. ``step, epoch, train_loss,
    val_mpjpe``), one row per logged step; empty cells (a metric not logged that step) -> NaN.

    Returns:
        column name -> (N,) float array; columns that hold text are left out.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics log {str(path)!r} does not exist; expected the CSV the "
                                f"trainer writes (columns step/epoch, train_loss, val metrics)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no rows under the header; was training run?")
    out = {}
    for name in rows[0]:
        try:
            out[name] = np.array([float(r[name]) if r[name] not in ("", None) else np.nan
                                  for r in rows])
        except ValueError:
            continue
    return out


UNIT_SUFFIXES = ("mm", "m", "px", "deg", "pct")


def _curve_groups(metrics: Mapping[str, np.ndarray], x_name: str | None) -> list[list[str]]:
    """Panels: the losses (``*loss*`` and ``train_*`` terms) together, then metrics sharing a
    unit suffix (``val_label_mm`` with ``val_gt_mm``), then each other metric alone."""
    skip = {x_name, "step", "epoch", "time", "seconds", "wall_s", "lr", "batch_in_epoch"}
    names = [k for k in metrics if k not in skip and not k.endswith("_per_s")
             and np.isfinite(metrics[k]).any()]
    losses = [k for k in names if "loss" in k or k.startswith("train_")]
    groups = {}
    for k in names:
        if k not in losses:
            unit = k.rsplit("_", 1)[-1]
            groups.setdefault(unit if unit in UNIT_SUFFIXES else k, []).append(k)
    return ([losses] if losses else []) + list(groups.values())


def _distinct_curves(data: Mapping[str, np.ndarray], names: list[str]) -> dict[str, str]:
    """``{name: legend label}`` of the curves of one panel, each drawn once: a column equal to
    an earlier one (``train_label`` when the label term is the whole ``train_loss``) joins that
    curve's label (``train_loss = train_label``) instead of hiding under it."""
    labels: dict[str, str] = {}
    for name in names:
        same = next((k for k in labels if data[k].shape == data[name].shape and np.allclose(
            data[k], data[name], rtol=1e-6, atol=0.0, equal_nan=True)), None)
        if same is None:
            labels[name] = name
        else:
            labels[same] += f" = {name}"
    return labels


def plot_training_curves(metrics: Mapping[str, np.ndarray] | str | Path,
                         x: str | None = None, title: str | None = None) -> Figure:
    """Training curves: the losses in one panel (log scale when they span a decade), then the
    other metrics, those with the same unit suffix (``_mm``, ``_px``...) sharing a panel; equal
    columns are drawn once, their names joined in the legend.

    Args:
        metrics: a metrics CSV path, or column name -> (N,) values (NaN where not logged).
        x: the column for the x axis (default: ``step``, else ``epoch``, else the row number).

    Returns:
        The figure.
    """
    data = read_metrics_csv(metrics) if isinstance(metrics, (str, Path)) else {
        k: np.asarray(v, np.float64) for k, v in metrics.items()}
    x = x or next((k for k in ("step", "epoch") if k in data), None)
    groups = _curve_groups(data, x)
    if not groups:
        raise ValueError(f"no metric columns with values to plot; columns: {list(data)}")
    n = len(next(iter(data.values())))
    xs = data[x] if x else np.arange(n)
    cols = min(len(groups), 3)
    rows = -(-len(groups) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows), dpi=100)
    for g, names in enumerate(groups):
        ax = fig.add_subplot(rows, cols, g + 1)
        for i, (name, label) in enumerate(_distinct_curves(data, names).items()):
            ok = np.isfinite(data[name])
            ax.plot(xs[ok], data[name][ok], color=_color(i), lw=1.2,
                    marker="o" if ok.sum() <= 30 else None, ms=3, label=label)
        vals = np.concatenate([data[k][np.isfinite(data[k])] for k in names])
        if vals.min() > 0 and vals.max() / vals.min() > 10:
            ax.set_yscale("log")
        ax.set_xlabel(x or "row")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title or "training", fontsize=10)
    fig.tight_layout()
    return fig


# -- label weights -------------------------------------------------------------------------------
def plot_weight_vs_error(weights: np.ndarray, errors_mm: np.ndarray, rho: float | None = None,
                         bins: int = 10, title: str | None = None) -> Figure:
    """Each label's weight against its true 3D error, with the median (and quartiles) per
    weight bin: the claim behind the weights is that the error falls as the weight grows.

    Args:
        weights: (N,) label weights in [0, 1]. errors_mm: (N,) their 3D errors, millimetres.
        rho: Spearman's rank correlation of the two, shown in the title.
        bins: equal-count weight bins of the medians.

    Returns:
        The figure (error on a log axis).
    """
    w, e = np.asarray(weights, np.float64), np.asarray(errors_mm, np.float64)
    if w.shape != e.shape or w.ndim != 1 or not len(w):
        raise ValueError(f"weights and errors_mm must be two (N,) arrays, N > 0; got {w.shape} "
                         f"and {e.shape}")
    fig = Figure(figsize=(6.5, 4.2), dpi=100)
    ax = fig.add_subplot()
    e_shown = np.maximum(e, 0.1)
    step = max(1, len(w) // 20000)  # at most ~20k dots
    ax.scatter(w[::step], e_shown[::step], s=6, alpha=0.3, color="tab:blue", lw=0,
               label="labelled joints")
    edges = np.unique(np.quantile(w, np.linspace(0, 1, bins + 1)))
    idx = np.clip(np.searchsorted(edges, w, side="right") - 1, 0, max(len(edges) - 2, 0))
    centres, q = [], []
    for b in np.unique(idx):
        centres.append(np.median(w[idx == b]))
        q.append(np.percentile(e_shown[idx == b], [25, 50, 75]))
    q = np.array(q)
    ax.fill_between(centres, q[:, 0], q[:, 2], color="tab:orange", alpha=0.25,
                    label="quartiles per weight bin")
    ax.plot(centres, q[:, 1], "o-", color="tab:orange", lw=2, ms=4, label="median per weight bin")
    ax.set_yscale("log")
    ax.set_xlabel("label weight")
    ax.set_ylabel("true 3D error (mm)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper right")
    rho_text = "" if rho is None or not np.isfinite(rho) else f", Spearman's rho = {rho:.2f}"
    ax.set_title(title or f"label weight against true error ({len(w)} joints{rho_text})",
                 fontsize=10)
    fig.tight_layout()
    return fig


def save_png(fig: Figure, path, dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG (parent folders created) and return the path."""
    path = Path(path)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, dpi=dpi, format="png")
    return path


# -- predictions -----------------------------------------------------------------------------------
def camera_to_display(points: np.ndarray) -> np.ndarray:
    """Camera-frame points (x right, y down, z forward) as a Z-up world for drawing:
    ``(x, z, -y)`` (the camera looks along +Y, its up is +Z). Shape (..., 3) kept."""
    points = np.asarray(points, float)
    return np.stack([points[..., 0], points[..., 2], -points[..., 1]], -1)


def plot_prediction(points3d: np.ndarray, joint_set: str = "h36m17", n_frames: int = 4,
                    title: str | None = None) -> Figure:
    """A few evenly spaced frames of a predicted sequence (``epiflow predict``'s picture).

    Args:
        points3d: (T, J, 3) root-relative metres in the camera's frame, T >= 1.
        n_frames: how many frames to draw (all when T is smaller).

    Returns:
        The figure, one column per frame.
    """
    T = points3d.shape[0]
    idx = np.unique(np.linspace(0, T - 1, min(n_frames, T)).round().astype(int))
    return plot_skeletons_3d({"prediction": camera_to_display(points3d[idx])}, joint_set=joint_set,
                             frame_labels=[f"frame {i}" for i in idx], title=title)
