"""``epiflow triangulate``: weighted 3D poses from 2D keypoints and a calibration.

    epiflow triangulate --keypoints kp.npz --cameras cameras.toml --out poses.npz
    epiflow triangulate --keypoints openpose_dir/ --joint-set body25b --cameras Calib.toml \\
        --out poses.npz --smooth butterworth --fill-gaps 3
    epiflow triangulate --keypoints shelf/ --cameras shelf/calibration.json --out people.npz
    epiflow triangulate --keypoints caliscope/recordings/recording_1/HOLISTIC/xy_HOLISTIC.csv \\
        --cameras caliscope/config.toml --out poses.npz

The keypoints are a keypoints npz, a folder of OpenPose JSON folders (one per camera), a Shelf
folder (``detection/<camera>.txt``, bottom-up candidates assembled into people per view) or a
caliscope ``xy_<TRACKER>.csv`` (one person, MediaPipe's 33 landmarks); the
cameras any calibration :func:`epiflow.calibration.formats.load_rig` reads, matched to the
keypoints' camera names (``cam01`` matches ``cam_01``). The output npz holds ``points3d (T, J, 3)``
metres in the calibration's world frame, ``weight (T, J)`` in [0, 1], ``reproj_error (T, J)``
pixels, ``joint_names (J,)`` in the keypoints' joint order, and also ``sigma (T, J)`` metres,
``n_views (T, J)``, ``reason (T, J)`` (0 ok, 1 fewer than two views, 2 no consensus, 3 degenerate,
4 interpolated), ``views (T, C, J)``, ``flipped (T, C)``, ``camera_names (C,)``, ``joint_set``,
``fps`` (when known).

Several people: the detections of each camera-frame are associated across cameras and through
time (epiflow.calibration.people.triangulate_people) and each person triangulated. This happens
when the input has a P axis of people: a keypoints npz whose ``keypoints`` is (C, T, P, J, 3) (even
P = 1), a Shelf folder; or with ``--people`` (an OpenPose folder keeps every person of each file;
without it, the most confident one, with a warning when many files hold several); or with
``--max-people``. The output npz then holds ``points3d (T, N, J, 3)``, ``weight (T, N, J)``,
``reproj_error (T, N, J)``, ``person_ids (N,)``, ``joint_names``, ``views (T, N, C, J)``,
``assignment (T, C, P)`` (person index of each detection slot, -1 none), ``detection_reason
(T, C, P)`` (codes named by ``detection_reason_names``: empty, assigned, one view = kept in 2D
without 3D, ...), ``camera_reason (T, N, C)`` (``camera_reason_names``: used, not detected,
outside the image, disagrees, no label), ``camera_share (N, C)`` (share of a person's frames the
camera was used in), ``camera_reproj_px (N, C)`` (median reprojection error of the camera's
detections of the person), ``camera_reasons`` (JSON: person -> camera -> frames per reason),
``warnings``, ``camera_names``, ``joint_set``, ``fps``. It prints a line per person (frames
labelled, median reprojection error per camera) and every warning (a camera that disagrees with
the others for a large share of a person's frames, by name; people left out by --max-people).
"""
from __future__ import annotations

import argparse

import numpy as np

from epiflow.cli import fraction, non_negative_int, positive_float, positive_int
from epiflow.outputs import atomic_open, check_file_outputs, check_outputs_not_inputs

__all__ = ["register", "run", "write_poses"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "triangulate", help="3D poses with a weight per joint from 2D keypoints and cameras",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keypoints", required=True, metavar="NPZ_OR_DIR",
                   help="keypoints npz ((C, T, J, 3) one person, (C, T, P, J, 3) several), a "
                        "folder of OpenPose JSON folders (one per camera), a Shelf folder "
                        "(detection/<camera>.txt) or a caliscope xy_<TRACKER>.csv")
    p.add_argument("--people", action="store_true",
                   help="several people: associate and triangulate everyone (automatic for an "
                        "npz with a P axis and a Shelf folder; an OpenPose folder is one person, "
                        "the most confident per file, unless this is given)")
    p.add_argument("--max-people", type=positive_int, default=None, metavar="N",
                   help="of the people the keypoints hold, keep the N most confident "
                        "(implies --people; detects nothing, unlike calibrate/run "
                        "--max-people, which detect up to N in videos); the others are named "
                        "in the report")
    p.add_argument("--cameras", required=True, metavar="FILE",
                   help="calibration: camera TOML, Qualisys .qca.txt, caliscope config.toml or "
                        "Shelf calibration.json")
    p.add_argument("--out", required=True, metavar="NPZ", help="where to write the poses")
    p.add_argument("--joint-set", default=None,
                   help="joint set of the keypoints when the file cannot tell (OpenPose: body25 "
                        "or body25b)")
    p.add_argument("--plain", action="store_true",
                   help="use every view (no consensus, gating or swap test)")
    p.add_argument("--refine", action="store_true",
                   help="refine each point on the pixel error with distortion (LM)")
    p.add_argument("--gate-px", type=positive_float, default=20.0,
                   help="reprojection error above which a view disagrees (default: %(default)s)")
    p.add_argument("--min-confidence", type=fraction, default=0.0,
                   help="keypoints at or below this confidence are ignored (default: %(default)s)")
    p.add_argument("--swap", choices=("flip", "drop", "off"), default="flip",
                   help="what to do with a camera-frame whose left/right labels are mirrored")
    p.add_argument("--smooth", choices=("none", "butterworth", "one_euro"), default="none",
                   help="temporal smoothing (needs the frame rate: --fps or the keypoints')")
    p.add_argument("--cutoff-hz", type=positive_float, default=6.0, help="smoothing cut-off, Hz")
    p.add_argument("--fps", type=positive_float, default=None, help="frames per second")
    p.add_argument("--fill-gaps", type=non_negative_int, default=0, metavar="N",
                   help="interpolate gaps of at most N frames (default: none)")
    p.set_defaults(func=run)


def write_poses(path, tri, joint_names, camera_names, joint_set: str, fps) -> None:
    """Write a sequence :class:`~epiflow.calibration.triangulation.Triangulation` as the poses npz
    (module docstring), atomically."""
    tri = tri.numpy()
    extra = {} if fps is None else {"fps": np.float64(fps)}
    with atomic_open(path, "wb") as f:
        np.savez_compressed(
            f, points3d=tri.points, weight=tri.weight, reproj_error=tri.reproj_error,
            joint_names=np.array(joint_names, dtype=str), sigma=tri.sigma, n_views=tri.n_views,
            reason=tri.reason, views=tri.views, flipped=tri.flipped,
            camera_names=np.array(camera_names, dtype=str), joint_set=np.str_(joint_set), **extra)


def run(args) -> int:
    from epiflow.calibration.camera import match_rig
    from epiflow.calibration.formats import load_rig
    from epiflow.calibration.from_people import fit_sizes
    from epiflow.calibration.triangulation import (camera_shares, dropped_camera_warnings,
                                                   triangulate_sequence)
    from epiflow.cli import print_warnings
    from epiflow.skeleton import get_joint_set

    check_file_outputs({"--out": args.out}, "poses.npz")
    check_outputs_not_inputs({"--out": args.out},
                             {"--keypoints": args.keypoints, "--cameras": args.cameras})
    kp, warnings = _read_keypoints(args)
    rig, matched = match_rig(load_rig(args.cameras), kp.camera_names, args.cameras,
                             by_order=True)
    rig, sized = fit_sizes(rig, kp.image_size, args.cameras)
    warnings += matched + sized
    smooth = None if args.smooth == "none" else args.smooth
    fps = args.fps if args.fps is not None else kp.fps
    if kp.has_people:
        return _run_people(args, kp, rig, warnings, smooth, fps)
    tri = triangulate_sequence(
        rig, kp, swap=args.swap, smooth=smooth, fps=fps, cutoff_hz=args.cutoff_hz,
        fill_gaps=args.fill_gaps, robust=not args.plain, refine=args.refine,
        gate_px=args.gate_px, min_confidence=args.min_confidence)
    summary = tri.summary()
    if summary["ok"] + summary["interpolated"] == 0:
        raise ValueError(f"{args.keypoints}: no joint was seen by two cameras that agree "
                         f"(reasons: {summary}); check the confidence column, the camera names "
                         f"and that the calibration belongs to these videos")
    write_poses(args.out, tri, get_joint_set(kp.joint_set).joints, kp.camera_names,
                kp.joint_set, fps)
    T, J = tri.weight.shape
    print(f"triangulated {T} frames x {J} joints from {len(rig)} cameras: "
          f"{summary['ok']} placed, {summary['interpolated']} interpolated, "
          f"{summary['too_few_views']} seen by fewer than two views, "
          f"{summary['no_consensus']} without consensus, {summary['degenerate']} degenerate; "
          f"median weight {summary['median_weight']:.2f}, median reprojection error "
          f"{summary['median_reproj_px']:.1f} px; {int(tri.flipped.sum())} mirrored "
          f"camera-frames fixed -> {args.out}")
    shares = camera_shares(tri.views, kp.confidence > 0, np.isfinite(tri.points).all(-1))
    print_warnings("triangulate", warnings + dropped_camera_warnings(kp.camera_names, shares),
                   args.keypoints)
    return 0


#: an OpenPose folder read as one person warns when more than this share of its camera-frames
#: with anyone hold several people
SEVERAL_SHARE = 0.1


def _read_keypoints(args):
    """(Keypoints, warnings): with a P axis when the input has one or --people/--max-people asks
    (module docstring); an OpenPose folder otherwise keeps each file's most confident person."""
    from dataclasses import replace

    from epiflow.datasets.io import keypoints_kind, load_keypoints

    wanted = True if args.people or args.max_people is not None else None
    kp = load_keypoints(args.keypoints, joint_set=args.joint_set, min_cameras=2, people=wanted,
                        calibration=args.cameras)
    openpose = keypoints_kind(args.keypoints) == "openpose"
    if wanted or not openpose:
        return kp, []
    present = (kp.confidence > 0).any(-1)                                  # (T, C, P)
    anyone = present.any(-1)
    share = (present.sum(-1) > 1).sum() / max(anyone.sum(), 1)
    warnings = [] if share <= SEVERAL_SHARE else [
        f"{100 * share:.0f}% of the camera-frames with anyone hold several people; read as one "
        f"person (the most confident in each file), which mixes people across cameras if they "
        f"differ: pass --people to associate and triangulate everyone"]
    return replace(kp, data=kp.data[:, :, 0]), warnings


# -- several people ---------------------------
def _run_people(args, kp, rig, warnings, smooth, fps) -> int:
    """Associate, track and triangulate several people (module docstring); write and report."""
    from epiflow.calibration.people import triangulate_people
    from epiflow.cli import print_warnings

    options = dict(swap=args.swap, smooth=smooth, fps=fps, cutoff_hz=args.cutoff_hz,
                   fill_gaps=args.fill_gaps, robust=not args.plain, refine=args.refine,
                   gate_px=args.gate_px)
    if args.min_confidence > 0:  # else associate's own default (it ignores joints at <= 0.1)
        options["min_confidence"] = args.min_confidence
    res = triangulate_people(rig, kp.data, kp.joint_set, max_people=args.max_people, **options)
    counts = _detection_counts(kp.data, res.detection_reason)
    if len(res.person_ids) == 0:
        raise ValueError(f"{args.keypoints}: no person was seen by two cameras that agree "
                         f"({_counts_text(counts)}); check the camera names, the confidence "
                         f"column and that the calibration {args.cameras} belongs to these "
                         f"keypoints")
    camera_px = _camera_reproj_px(rig, kp.data, res)
    write_people(args.out, res, camera_px, warnings, fps, args.max_people)
    for line in _people_report(args, kp, res, camera_px, counts):
        print(line)
    print_warnings("triangulate", warnings + res.warnings, args.keypoints)
    return 0


def write_people(path, res, camera_px, warnings, fps, max_people) -> None:
    """Write a :class:`~epiflow.calibration.people.PeopleResult` as the people npz (module
    docstring), atomically. ``camera_px``: (N, C) median reprojection error per person and
    camera, pixels."""
    import json

    from epiflow.calibration.association import DETECTION_REASON_TEXT
    from epiflow.calibration.people import VIEW_REASON_TEXT
    from epiflow.skeleton import get_joint_set

    extra = {} if fps is None else {"fps": np.float64(fps)}
    if max_people is not None:
        extra["max_people"] = np.int64(max_people)
    with atomic_open(path, "wb") as f:
        np.savez_compressed(
            f, points3d=res.points3d, weight=res.weight, reproj_error=res.reproj_error,
            person_ids=res.person_ids, joint_names=np.array(get_joint_set(res.joint_set).joints),
            views=res.views, assignment=res.assignment, detection_reason=res.detection_reason,
            detection_reason_names=np.array([DETECTION_REASON_TEXT[k]
                                             for k in sorted(DETECTION_REASON_TEXT)]),
            camera_reason=res.camera_reason,
            camera_reason_names=np.array([VIEW_REASON_TEXT[k] for k in sorted(VIEW_REASON_TEXT)]),
            camera_share=res.camera_share, camera_reproj_px=camera_px,
            camera_reasons=np.str_(json.dumps(res.camera_reasons)),
            warnings=np.array([" ".join(str(w).split()) for w in list(warnings) + res.warnings],
                              dtype=str),
            camera_names=np.array(res.camera_names, dtype=str), joint_set=np.str_(res.joint_set),
            **extra)


def _camera_reproj_px(rig, det, res) -> np.ndarray:
    """(N, C) median over frames of how far camera c's detection of person n lies from the
    person's projection, pixels: where the detection is assigned, the median over joints of the
    distance to the projected 3D points; where the camera's detection was refused (DISAGREES),
    the offset to it (``disagree_offset_px``). So a camera the others out-vote shows its
    distance, not the few frames it agreed in. NaN where the camera never saw the person."""
    from epiflow.calibration.relative_pose import quiet_nan_warnings

    proj = np.moveaxis(rig.project(np.nan_to_num(res.points3d, nan=1e6)), 0, 2)  # T, N, C, J, 2
    per_frame = res.disagree_offset_px.copy()                                  # (T, N, C)
    t, c, p = np.nonzero(res.assignment >= 0)
    n = res.assignment[t, c, p]
    d = np.linalg.norm(det[t, c, p, :, :2] - proj[t, n, c], axis=-1)             # (K, J)
    ok = np.isfinite(d) & (det[t, c, p, :, 2] > 0) & np.isfinite(res.points3d[t, n]).all(-1)
    with quiet_nan_warnings():
        per_frame[t, n, c] = np.nanmedian(np.where(ok, d, np.nan), axis=-1)
        return np.nanmedian(per_frame, axis=0)


def _detection_counts(det, reason) -> dict:
    """Counts for the report: camera-frames, those with no person, and detections per
    :class:`~epiflow.calibration.association.DetectionReason` (empty slots left out)."""
    from epiflow.calibration.association import DetectionReason

    present = (np.nan_to_num(det[..., 2]) > 0).any(-1)                   # (T, C, P)
    out = {"camera-frames": int(present.shape[0] * present.shape[1]),
           "camera-frames with no person": int((~present.any(-1)).sum())}
    for k in DetectionReason:
        if k != DetectionReason.EMPTY:
            out[k.name] = int(((reason == k) & present).sum())
    return out


def _counts_text(counts: dict) -> str:
    return ", ".join(f"{k.lower().replace('_', ' ')}: {v}" for k, v in counts.items())


def _camera_text(name, px, share) -> str:
    """One camera of a person's report line."""
    used = f" (used {100 * share:.0f}%)" if np.isfinite(share) else ""
    return f"{name}: {px:.1f} px{used}" if np.isfinite(px) else f"{name}: not seen"


def _people_report(args, kp, res, camera_px, counts) -> list[str]:
    """The printed report: a summary line, then one line per person."""
    T, N, J = res.weight.shape
    lines = [f"triangulated {N} people (ids {', '.join(map(str, res.person_ids))}) in {T} frames "
             f"of {kp.n_cameras} cameras from {kp.data.shape[2]} detection slots per "
             f"camera-frame: {_counts_text(counts)} -> {args.out}"]
    if args.max_people is not None:
        kept = [w for w in res.warnings if w.startswith(f"max_people={args.max_people}")]
        lines.append(kept[0] if kept else f"--max-people {args.max_people}: {N} people found, "
                                          f"none left out")
    labelled = np.isfinite(res.points3d).all(-1).any(-1)                   # (T, N)
    for n, pid in enumerate(res.person_ids):
        cams = "; ".join(_camera_text(name, camera_px[n, c], res.camera_share[n, c])
                         for c, name in enumerate(res.camera_names))
        weight = res.weight[:, n][res.weight[:, n] > 0]
        lines.append(f"person {pid}: labelled in {labelled[:, n].sum()} of {T} frames "
                     f"({100 * labelled[:, n].mean():.0f}%), median weight "
                     f"{np.median(weight) if weight.size else 0:.2f}; median reprojection error "
                     f"per camera: {cams}")
    return lines
