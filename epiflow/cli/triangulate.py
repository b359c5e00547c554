"""``epiflow triangulate``: weighted 3D poses from 2D keypoints and a calibration.

    epiflow triangulate --keypoints kp.npz --cameras cameras.toml --out poses.npz
    epiflow triangulate --keypoints openpose_dir/ --joint-set body25b --cameras Calib.toml \\
        --out poses.npz --smooth butterworth --fill-gaps 3

The keypoints are a keypoints npz or a folder of OpenPose JSON folders (one per camera); the
cameras any calibration :func:`epiflow.calibration.formats.load_rig` reads, matched to the
keypoints' camera names (``cam01`` matches ``cam_01``). The output npz holds ``points3d (T, J, 3)``
metres in the calibration's world frame, ``weight (T, J)`` in [0, 1], ``reproj_error (T, J)``
pixels, ``joint_names (J,)`` in the keypoints' joint order, and also ``sigma (T, J)`` metres,
``n_views (T, J)``, ``reason (T, J)`` (0 ok, 1 fewer than two views, 2 no consensus, 3 degenerate,
4 interpolated), ``views (T, C, J)``, ``flipped (T, C)``, ``camera_names (C,)``, ``joint_set``,
``fps`` (when known).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from epiflow.cli import fraction, non_negative_int, positive_float
from epiflow.outputs import atomic_open, check_file_outputs, check_outputs_not_inputs

__all__ = ["register", "run", "write_poses"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "triangulate", help="3D poses with a weight per joint from 2D keypoints and cameras",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keypoints", required=True, metavar="NPZ_OR_DIR",
                   help="keypoints npz, or a folder of OpenPose JSON folders (one per camera)")
    p.add_argument("--cameras", required=True, metavar="FILE",
                   help="calibration (camera TOML, Qualisys .qca.txt, Shelf / caliscope files)")
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
    from epiflow.datasets.io import load_keypoints
    from epiflow.skeleton import get_joint_set

    check_file_outputs({"--out": args.out}, "poses.npz")
    check_outputs_not_inputs({"--out": args.out},
                             {"--keypoints": args.keypoints, "--cameras": args.cameras})
    kp = load_keypoints(args.keypoints, joint_set=args.joint_set, min_cameras=2)
    rig, warnings = match_rig(load_rig(args.cameras), kp.camera_names, args.cameras,
                              by_order=True)
    rig, sized = fit_sizes(rig, kp.image_size, args.cameras)
    warnings += sized
    smooth = None if args.smooth == "none" else args.smooth
    fps = args.fps if args.fps is not None else kp.fps
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
