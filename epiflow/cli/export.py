"""``epiflow export``: 3D poses and cameras out to TRC, CSV, JSON, npz or the camera TOML.

The source is a store (one of its sessions: pseudo-labels, ground truth or predictions, and its
cameras) or a poses file (npz, TRC, CSV or JSON, see :mod:`epiflow.export`)::

    epiflow export store/ --session s01 --out s01.trc              # pseudo-labels, Y up, OpenSim
    epiflow export store/ --session s01 --out s01.trc --person 1   # one person of several
    epiflow export store/ --session s01 --array gt3d --out gt.csv --layout wide
    epiflow export store/ --session s01 --out cameras.toml         # Pose2Sim / Anipose cameras
    epiflow export predictions.npz --out predictions.json

A session of several people writes one file per person, named by its id: ``--out poses.trc``
gives ``poses_p0.trc``, ``poses_p1.trc``... (one person: ``poses.trc`` itself); ``--person ID``
writes that person only, to ``--out``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from epiflow import export as ex
from epiflow.cli import non_negative_int, positive_float
from epiflow.outputs import check_file_outputs, check_outputs_not_inputs

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
    p.add_argument("--person", type=non_negative_int, metavar="ID",
                   help="a store session's person id to export (default: every person, one "
                        "file each; see `epiflow inspect` for the ids)")
    p.add_argument("--layout", choices=("long", "wide"), default="long", help="CSV layout")
    p.add_argument("--z-up", action="store_true",
                   help="TRC: keep epiflow's Z-up world instead of OpenSim's Y up")
    p.add_argument("--fps", type=positive_float,
                   help="frame rate, when the source does not carry one")
    p.set_defaults(func=run)


def _format(args) -> str:
    fmt = args.format or {".toml": "toml", **ex.FORMATS}.get(Path(args.out).suffix.lower())
    if fmt is None:
        raise ValueError(f"--out {args.out!r}: cannot tell the format from the suffix; give "
                         f"--format {'|'.join(FORMATS)}")
    return fmt


def _is_pose_file(source: str) -> bool:
    return Path(source).suffix.lower() in POSE_READERS and Path(source).is_file()


def unexportable(session, what: str, source: str) -> str | None:
    """Why ``session`` has no ``what`` to export (``pseudo3d`` needs its triangulate stage done,
    ``toml`` its calibrate stage; ``gt3d`` is checked when read), or None when it has."""
    stage = {"pseudo3d": "triangulate", "toml": "calibrate"}.get(what)
    if stage is None or session.status.get(stage) == "done":
        return None
    failure = session.failure
    cause = (f"failed at its {failure['stage']} stage ({failure['reason']})" if failure else
             f"has its {stage} stage {session.status.get(stage)!r} (an interrupted run)")
    return (f"session {session.id!r} of {source!r} {cause}, so it has no "
            f"{'cameras' if what == 'toml' else 'pseudo-labels'} to export; see `epiflow inspect "
            f"{source}`, fix the cause and re-run `epiflow run` on the store")


def _session(source: str, name: str | None, what: str):
    """The store session to export ``what`` from: ``name``, else the only one that has it
    (sessions without it are skipped with a warning); refused, saying why, when it has none."""
    from epiflow.cli import print_warnings
    from epiflow.store import PoseStore
    store = PoseStore.open(source, mode="r")
    if name is not None:
        session = store.session(name)
        if why := unexportable(session, what, source):
            raise ValueError(why)
        return session
    sessions = [store.session(i) for i in store.session_ids()]
    whys = [unexportable(s, what, source) for s in sessions]  # each reads the session's attrs
    good = [s for s, why in zip(sessions, whys) if not why]
    skipped = [why for why in whys if why]
    if len(good) == 1:
        print_warnings("export", [f"skipped: {why}" for why in skipped], source)
        return good[0]
    if not good and len(sessions) == 1:
        raise ValueError(skipped[0])
    raise ValueError(f"store {source!r} holds {len(good)} sessions with {what} to export "
                     f"({', '.join(s.id for s in good) or 'none'}) of {len(sessions)}; choose one "
                     f"with --session" + "".join(f"; {why}" for why in skipped))


def poses_from_session(session, array: str = "pseudo3d", fps: float | None = None,
                       person: int | None = None) -> dict[int, ex.Poses3D]:
    """The 3D poses ``array`` of a store session (``pseudo3d`` with its weights, or ``gt3d``),
    ``{person id: Poses3D (T, J, 3)}`` for every person or for id ``person``, named by the
    session's joint set, at its frame rate unless ``fps`` is given. Ground-truth people are
    numbered 0..N-1 in their stored order."""
    if array == "pseudo3d":
        labels = session.labels()
        people = {p.person_id: (p.pseudo3d, p.weight) for p in labels.people()}
    elif array == "gt3d" and (truth := session.ground_truth()) is not None:
        people = {n: (truth.points[:, n], None) for n in range(truth.points.shape[1])}
    else:
        raise KeyError(f"session {session.id!r} has no 3D array {array!r}; export pseudo3d, or "
                       f"gt3d where the source had ground truth")
    if person is not None:
        if person not in people:
            raise ValueError(f"--person {person}: session {session.id!r} has no person "
                             f"{person} in {array}; its person ids: {sorted(people)}")
        people = {person: people[person]}
    return {i: ex.Poses3D.from_joint_set(np.asarray(xyz), session.joint_set, fps or session.fps,
                                         None if w is None else np.asarray(w))
            for i, (xyz, w) in people.items()}


def person_paths(out, ids: list[int], chosen: bool) -> dict[int, Path]:
    """The file of each person: ``out`` itself for one person (or one ``chosen`` with
    --person), else ``<stem>_p<id><suffix>`` beside it."""
    out = Path(out)
    if chosen or len(ids) == 1:
        return {ids[0]: out}
    return {i: out.with_name(f"{out.stem}_p{i}{out.suffix}") for i in ids}


def run(args) -> int:
    fmt = _format(args)
    check_file_outputs({"--out": args.out}, "cameras.toml" if fmt == "toml" else f"poses.{fmt}")
    check_outputs_not_inputs({"--out": args.out}, {"the source": args.source})
    if _is_pose_file(args.source):
        if args.person is not None:
            raise ValueError(f"--person {args.person}: a poses file holds one person; --person "
                             f"chooses among a store session's people")
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
        session = _session(args.source, args.session, "toml" if fmt == "toml" else args.array)
        if fmt == "toml":
            from epiflow.calibration.formats import save_toml
            offsets = (session.time_sync or {}).get("time_offset")
            save_toml(session.rig, args.out, time_offsets=offsets)
            print(f"wrote {len(session.rig)} cameras to {args.out}"
                  + (" with each camera's time_offset" if offsets else ""))
            return 0
        people = poses_from_session(session, args.array, args.fps, args.person)
        paths = person_paths(args.out, list(people), args.person is not None)
        outputs = {f"--out (person {i})": p for i, p in paths.items()}
        check_file_outputs(outputs, f"poses.{fmt}")
        check_outputs_not_inputs(outputs, {"the source": args.source})
        for i, poses in people.items():
            _write(poses, paths[i], fmt, args, f" (person {i})" if len(paths) > 1 else "")
        return 0
    _write(poses, args.out, fmt, args, "")
    return 0


def _write(poses: ex.Poses3D, out, fmt: str, args, who: str) -> None:
    """Write one person's poses and say so."""
    options = {"trc": {"y_up": not args.z_up}, "csv": {"layout": args.layout}}.get(fmt, {})
    path = ex.write_poses(poses, out, fmt, **options)
    print(f"wrote {poses.n_frames} frames x {len(poses.joint_names)} joints{who} to {path}")
