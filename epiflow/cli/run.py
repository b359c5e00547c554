"""``epiflow run``: sessions in, a pose store out (detect 2D, calibrate, triangulate) on Ray.

Two forms::

    epiflow run configs/pose2sim_demo.toml [--set detect.chunk_frames=25 ...]
    epiflow run --videos DIR --out STORE.zarr [--session NAME] [--cameras FILE]

Running the same command again after an interruption finishes the store, redoing only what was
not written. The exit code is 0 when every session completed, 1 when some failed (the report
says why), 2 on bad input.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from epiflow.cli import non_negative_float, positive_int
from epiflow.config import apply_overrides
from epiflow.outputs import check_outputs_not_inputs

__all__ = ["register", "run", "config_from_args", "check_paths", "print_verdicts"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="videos or 2D keypoints -> cameras and 3D pseudo-labels in a Zarr store",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="run config TOML (see configs/pose2sim_demo.toml)")
    src = p.add_argument_group("a session given on the command line (instead of or beside a config)")
    src.add_argument("--videos", metavar="DIR", help="folder of videos, one per camera")
    src.add_argument("--frames", metavar="DIR", help="folder of per-camera image folders")
    src.add_argument("--keypoints", metavar="PATH",
                     help="2D keypoints: a keypoints .npz, a folder of OpenPose JSON folders, a "
                          "Shelf folder (detection/<camera>.txt) or a caliscope xy_<TRACKER>.csv")
    src.add_argument("--synthetic", type=positive_int, metavar="N",
                     help="N synthetic sessions of CMU motion (keypoints, true cameras, gt3d)")
    src.add_argument("--cameras", metavar="FILE", help="calibration file for the session")
    src.add_argument("--board", metavar="DIR",
                     help="per-camera folders of checkerboard images (intrinsics; with "
                          "--set calibrate.method=\"board\")")
    src.add_argument("--session", metavar="NAME", help="session id (default: the folder's name)")
    p.add_argument("--out", metavar="STORE", help="the store: a folder or an fsspec URL")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--num-cpus", type=positive_int, help="CPUs of the local Ray (default: all)")
    p.add_argument("--known-distance", nargs=3, default=None, metavar=("CAM_A", "CAM_B", "METRES"),
                   help="metres between two cameras' centres: fixes the metric scale of cameras "
                        "calibrated from people (calibrate.known_distance)")
    p.add_argument("--max-people", type=positive_int, default=None, metavar="N",
                   help="detect up to N people per camera-frame (several people: the cameras "
                        "are calibrated from all of them, each gets labels); shorthand for "
                        "--set detect.max_people=N (default 1: one person)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set detect.chunk_frames=25")
    p.add_argument("--overwrite", action="store_true",
                   help="redo this run's sessions even when the store has them complete")
    p.add_argument("--wait-lease", type=non_negative_float, default=0.0, metavar="SECONDS",
                   help="when another run is writing the store, wait up to this long for it "
                        "(default: refuse at once)")
    p.add_argument("--sync", nargs="?", const="on", default=None, choices=("auto", "on", "off"),
                   help="recover each camera's time offset from the person (ingest.sync): "
                        "'auto' (default) for videos of different lengths or rates; --sync "
                        "alone forces it on equal-length videos; --sync off never")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _abs(path: str | None) -> str:
    return str(Path(path).resolve()) if path and "://" not in path else (path or "")


def config_from_args(args):
    """The run config: the file (if any), then the command-line session and options."""
    from epiflow.pipeline.config import RunConfig, SessionConfig, load_run_config
    from epiflow.store import check_session_id
    if args.session is not None:
        check_session_id(args.session, "--session")
    cfg = load_run_config(args.config) if args.config else RunConfig()
    given = {k: _abs(getattr(args, k)) for k in ("videos", "frames", "keypoints")
             if getattr(args, k)}
    if given:
        session = SessionConfig(name=args.session or "", cameras=_abs(args.cameras),
                                board=_abs(args.board), **given)
        cfg = replace(cfg, sessions=cfg.sessions + (session,))
    elif args.cameras or args.session or args.board:
        raise ValueError("--cameras, --board and --session describe a session given with "
                         "--videos, --frames or --keypoints")
    elif not (args.config or args.synthetic):
        raise ValueError("nothing to run: give a run config (epiflow run "
                         "configs/pose2sim_demo.toml) or a session and a store (epiflow run "
                         "--videos DIR --out STORE.zarr; or --keypoints PATH, --frames DIR, "
                         "--synthetic N instead of --videos)")
    if args.synthetic:
        cfg = replace(cfg, synthetic_sessions=args.synthetic)
    ray = replace(cfg.ray, address=args.address or cfg.ray.address,
                  num_cpus=args.num_cpus or cfg.ray.num_cpus)
    cfg = replace(cfg, out=_abs(args.out) or cfg.out, ray=ray)
    if args.sync:
        cfg = replace(cfg, ingest=replace(cfg.ingest, sync=args.sync))
    people = getattr(args, "max_people", None)   # before --set, which names it in full
    cfg = apply_overrides(cfg, ([f"detect.max_people={people}"] if people else []) + args.set)
    if getattr(args, "known_distance", None):
        cfg = replace(cfg, calibrate=replace(cfg.calibrate,
                                             known_distance=tuple(args.known_distance)))
    _check_known_distance(cfg)
    return cfg


def _check_known_distance(cfg) -> None:
    """``calibrate.known_distance`` checked before anything runs: its form, and its cameras
    against each video session's videos (other sessions' cameras are checked when they are
    calibrated)."""
    from epiflow.pipeline.calibrate import known_distance
    known = known_distance(cfg.calibrate)
    if known is None:
        return
    from epiflow.detection.detectors import list_videos
    for session in cfg.sessions:
        if session.videos and "://" not in session.videos:
            known.indices([p.stem for p in list_videos(session.videos)],
                          f"--known-distance (session {session.name or session.videos})")


def _inputs(args, cfg) -> dict[str, str]:
    """``{what: path}`` of every file or folder the run reads: the config and each session's."""
    inputs = {"the config": args.config}
    for i, session in enumerate(cfg.sessions):
        for key in ("videos", "frames", "keypoints", "cameras", "board"):
            inputs[f"session {session.name or i + 1}'s {key}"] = getattr(session, key)
    return inputs


#: What each path argument must be: (a folder?, what it holds). None: a file or a folder.
_PATHS = {"config": (False, "a run config TOML"),
          "videos": (True, "a folder of videos, one per camera"),
          "frames": (True, "a folder of per-camera image folders"),
          "keypoints": (None, "a keypoints .npz, a folder of OpenPose JSON folders, a Shelf "
                              "folder or a caliscope xy_<TRACKER>.csv"),
          "cameras": (False, "a calibration file"),
          "board": (True, "a folder of per-camera checkerboard image folders")}


def check_paths(args) -> None:
    """Every file or folder named on the command line exists and is of the right kind: checked
    first, before torch or Ray are imported, so a typo is refused in a moment. Their contents
    are checked next, still before Ray starts (:func:`epiflow.pipeline.ingest.check_sources`)."""
    for key, (folder, what) in _PATHS.items():
        value = getattr(args, key)
        if not value or "://" in value:
            continue
        flag, path = (key if key == "config" else f"--{key}"), Path(value)
        if not path.exists():
            raise FileNotFoundError(f"{flag} {value!r} does not exist; expected {what}")
        if folder is not None and path.is_dir() != folder:
            raise ValueError(f"{flag} {value!r} is a {'folder' if path.is_dir() else 'file'}; "
                             f"expected {what}")


def print_verdicts(store_url: str, sessions) -> None:
    """Each session's time offsets (unsynchronized cameras) and the verdict on its cameras
    calibrated from people in this run."""
    from epiflow.cli.inspect import sync_summary, verdict_summary
    from epiflow.store import PoseStore
    store = PoseStore.open(store_url)
    for sid, info in sessions.items():
        if sid in store and sync_summary(store.session(sid)):
            print("\n".join(sync_summary(store.session(sid))))
        if info.get("status") != "failed":
            print("\n".join(verdict_summary(store.session(sid))) or
                  f"session {sid}: cameras not from people: no verdict")


def run(args) -> int:
    check_paths(args)
    from epiflow.cli import print_warnings
    from epiflow.pipeline.orchestrate import run_pipeline
    from epiflow.pipeline.report import report_url
    cfg = config_from_args(args)
    check_outputs_not_inputs({"the store (--out)": cfg.out,
                              "the report": report_url(cfg.out, cfg.report)}, _inputs(args, cfg))
    try:
        report = run_pipeline(cfg, progress=not args.quiet, overwrite=args.overwrite,
                              lease_wait_s=args.wait_lease)
    except FileNotFoundError as err:
        if not args.config:
            raise
        folder = Path(args.config).resolve().parent
        raise FileNotFoundError(f"{err} (relative paths in {args.config} are taken from its "
                                f"folder, {folder}, not from where the command runs)") from None
    print(report.table())
    print_verdicts(cfg.out, report.sessions)
    print_warnings("run", report.warnings)
    print(f"store: {cfg.out}\nreport: {report_url(cfg.out, cfg.report)}")
    return 1 if report.failures else 0
