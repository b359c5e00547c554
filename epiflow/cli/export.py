"""``epiflow export``: 3D poses and cameras out to TRC, CSV, JSON, npz or the camera TOML.

The source is a store (one of its sessions: pseudo-labels, ground truth or predictions, and its
cameras) or a poses file (npz, TRC, CSV or JSON, see :mod:`epiflow.export`)::

    epiflow export store/ --session s01 --out s01.trc              # pseudo-labels, Y up, OpenSim
    epiflow export store/ --session s01 --array gt3d --out gt.csv --layout wide
    epiflow export store/ --session s01 --out cameras.toml         # Pose2Sim / Anipose cameras
    epiflow export predictions.npz --out predictions.json
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from epiflow import export as ex
from epiflow.outputs import check_outputs_not_inputs

POSE_READERS = {".npz": ex.load_poses_npz, ".trc": ex.read_trc, ".csv": ex.read_csv,
                ".json": ex.read_json}
FORMATS = ("trc", "csv", "json", "npz", "toml")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="write 3D poses (TRC, CSV, JSON, npz) or cameras (TOML) of a session",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a store folder/URL, or a poses file (.npz, .trc, .csv, .json)")
    p.add_argument("--out", required=True, help="the file to write")
    p.add_argument("--format", choices=FORMATS, help="default: from the suffix of --out")
    p.add_argument("--session", help="the store session (default: the only one)")
    p.add_argument("--array", choices=("pseudo3d", "gt3d"), default="pseudo3d",
                   help="the store array of 3D poses to export (default: the pseudo-labels)")
    p.add_argument("--layout", choices=("long", "wide"), default="long", help="CSV layout")
    p.add_argument("--z-up", action="store_true",
                   help="TRC: keep epiflow's Z-up world instead of OpenSim's Y up")
    p.add_argument("--fps", type=float, help="frame rate, when the source does not carry one")
    p.set_defaults(func=run)


def _format(args) -> str:
    fmt = args.format or {".toml": "toml", **ex.FORMATS}.get(Path(args.out).suffix.lower())
    if fmt is None:
        raise ValueError(f"--out {args.out!r}: cannot tell the format from the suffix; give "
                         f"--format {'|'.join(FORMATS)}")
    return fmt


def _is_pose_file(source: str) -> bool:
    return Path(source).suffix.lower() in POSE_READERS and Path(source).is_file()


def _session(source: str, name: str | None):
    from epiflow.store import PoseStore
    store = PoseStore.open(source, mode="r")
    if name is None:
        ids = store.session_ids()
        if len(ids) != 1:
            raise ValueError(f"store {source!r} holds {len(ids)} sessions "
                             f"({', '.join(ids) or 'none'}); choose one with --session")
        name = ids[0]
    return store.session(name)


def poses_from_session(session, array: str = "pseudo3d", fps: float | None = None) -> ex.Poses3D:
    """The 3D poses ``array`` (T, J, 3) of a store session (``pseudo3d`` with its weights, or
    ``gt3d``), named by the session's joint set, at its frame rate unless ``fps`` is given."""
    data = getattr(session, array, None) if array in ("pseudo3d", "gt3d") else None
    if data is None:
        raise KeyError(f"session {session.id!r} has no 3D array {array!r}; export pseudo3d, or "
                       f"gt3d where the source had ground truth")
    weights = np.asarray(session.pseudo3d_weight[:]) if array == "pseudo3d" else None
    return ex.Poses3D.from_joint_set(np.asarray(data[:]), session.joint_set,
                                     fps or session.fps, weights)


def run(args) -> int:
    fmt = _format(args)
    check_outputs_not_inputs({"--out": args.out}, {"the source": args.source})
    if _is_pose_file(args.source):
        if fmt == "toml":
            raise ValueError(f"{args.source}: a poses file holds no cameras; export the camera "
                             f"TOML from a store session")
        poses = POSE_READERS[Path(args.source).suffix.lower()](args.source)
        if args.fps:
            poses = ex.Poses3D(poses.points, poses.joint_names, args.fps, poses.weights,
                               poses.joint_set)
    else:
        if not Path(args.source).exists() and "://" not in args.source:
            raise FileNotFoundError(f"{args.source!r} is neither a poses file "
                                    f"({', '.join(POSE_READERS)}) nor a store folder")
        session = _session(args.source, args.session)
        if fmt == "toml":
            from epiflow.calibration.formats import save_toml
            save_toml(session.rig, args.out)
            print(f"wrote {len(session.rig)} cameras to {args.out}")
            return 0
        poses = poses_from_session(session, args.array, args.fps)
    options = {"trc": {"y_up": not args.z_up}, "csv": {"layout": args.layout}}.get(fmt, {})
    path = ex.write_poses(poses, args.out, fmt, **options)
    print(f"wrote {poses.n_frames} frames x {len(poses.joint_names)} joints to {path}")
    return 0
