"""``epiflow calibrate``: cameras from the people in view, without a calibration board.

    epiflow calibrate --videos videos/ --out calib/cameras.toml
    epiflow calibrate --keypoints openpose_dir/ --joint-set body25b \\
        --intrinsics Calib.toml --subject-height 1.78 --out calib/cameras.toml
    epiflow calibrate --keypoints kp.npz --method per_frame --out baseline.toml

Input: a folder of videos (one file per camera; when their frame counts or rates differ, or with
``--sync``, each camera's time offset is recovered from the person and written into ``--out`` as
``time_offset``, see :mod:`epiflow.calibration.sync`; ``--sync off`` refuses them; the person is
detected with MediaPipe, which takes a minute or two per 400 frames on a CPU; ``--save-keypoints``
keeps the detections for a rerun; ``--max-people N`` detects up to N people instead), or 2D
keypoints (a keypoints npz, a folder of OpenPose JSON
folders, one per camera, or a caliscope ``xy_<TRACKER>.csv``, its image sizes from --intrinsics or
the session's ``config.toml``).

Several people: keypoints with a P axis (an npz ``(C, T, P, J, 3)``, the Shelf folder, OpenPose
folders with ``--max-people 2`` or more) or videos with ``--max-people N``: the people are
matched across the cameras without a calibration and the cameras are solved from all of them
(:mod:`epiflow.calibration.people_calibration`); ``--subject-height`` is then their mean height.

``--intrinsics`` gives known K and distortion (any calibration file
:func:`epiflow.calibration.formats.load_rig` reads; cameras matched to the inputs by name: a
video's file stem, a keypoint folder's name, the npz's camera names, ignoring case and
punctuation; in order when no name matches and the counts agree; extrinsics ignored). Without
it, focal lengths are estimated from a guess from the image size.

Output: ``--out`` cameras TOML (Pose2Sim / Anipose layout, ``formats.load_toml`` reads it; metres,
world Z up, floor z = 0) and, beside it, ``<stem>.report.json``: per camera the reprojection error
and observations used, the method, which intrinsics were refined, the scale source, warnings, and
the verdict on the cameras (:mod:`epiflow.calibration.verdict`: per camera 95 % bounds on rotation,
position and focal length, ``good`` / ``doubtful`` / ``failed`` with the reasons and what to do),
which is also written to the TOML's ``[metadata]`` and printed.

Exit status: 0; 2 for bad input (nothing written); 3 when the cameras are written but the
verdict is ``failed`` (kept for inspection; do not label with them).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from epiflow.cli import positive_float, positive_int
from epiflow.outputs import atomic_write_text, check_file_outputs, check_outputs_not_inputs

__all__ = ["register", "run", "report_path"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate", help="calibrate cameras from the people they see (no board needed)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--videos", metavar="DIR",
                        help="folder of videos, one per camera (MediaPipe detection; "
                             "unsynchronized ones are synchronized from the person)")
    source.add_argument("--keypoints", metavar="NPZ_OR_DIR",
                        help="keypoints npz, a folder of OpenPose JSON folders (one per "
                             "camera), or a caliscope xy_<TRACKER>.csv")
    p.add_argument("--out", required=True, metavar="TOML", help="cameras file to write")
    p.add_argument("--intrinsics", metavar="FILE",
                   help="known intrinsics (camera TOML or another calibration file); default: "
                        "estimate focal lengths")
    p.add_argument("--known-distance", nargs=3, default=None, metavar=("CAM_A", "CAM_B", "METRES"),
                   help="metres between two cameras' centres (a tape measure): fixes the metric "
                        "scale exactly, e.g. --known-distance cam01 cam02 3.20")
    p.add_argument("--subject-height", type=positive_float, default=None, metavar="METRES",
                   help="the person's height, for the metric scale (default: body proportions "
                        "of a 1.70 m adult)")
    p.add_argument("--method", choices=("pooled", "per_frame"), default="pooled",
                   help="pooled (default) or per_frame, the EpipolarPose baseline")
    p.add_argument("--joint-set", default=None,
                   help="joint set of the keypoints when the files cannot tell (body25/body25b)")
    p.add_argument("--image-size", type=positive_int, nargs=2, default=None, metavar=("W", "H"),
                   help="image size of OpenPose keypoints when no --intrinsics give it")
    p.add_argument("--config", metavar="TOML", default=None,
                   help="a TOML file of CalibrationConfig options")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one CalibrationConfig option (repeatable), e.g. --set rounds=2")
    p.add_argument("--max-people", type=positive_int, default=1, metavar="N",
                   help="several people: with --videos, detect up to N per camera-frame "
                        "and calibrate from all of them (BlazePose person detector and "
                        "tracker; default 1: MediaPipe's one person; as run --max-people); "
                        "with OpenPose folders, N > 1 keeps every person of each file "
                        "(default: the most confident)")
    p.add_argument("--save-keypoints", metavar="NPZ", default=None,
                   help="with --videos: also write the detections as a keypoints npz")
    p.add_argument("--sync", nargs="?", const="on", default="auto",
                   choices=("auto", "on", "off"),  # calibration.sync.SYNC_MODES (torch-free here)
                   help="recover each camera's time offset from the person (written as "
                        "time_offset in --out): default 'auto', for videos of different lengths "
                        "or rates; --sync alone forces it (equal-length videos, keypoints); "
                        "--sync off never")
    p.set_defaults(func=run)


def report_path(out: Path) -> Path:
    """``cameras.toml`` → ``cameras.report.json`` beside it."""
    return out.with_name(out.stem + ".report.json")


def _config(args):
    from epiflow.calibration.from_people import CalibrationConfig
    from epiflow.config import apply_overrides, load_config
    cfg = load_config(CalibrationConfig, args.config) if args.config else CalibrationConfig()
    return apply_overrides(cfg, [*args.set, f'method="{args.method}"'])


def _keypoints(args):
    if args.videos:
        from epiflow.keypoints import save_npz
        from epiflow.detection.detectors import detect_video_streams, detect_videos
        from epiflow.pipeline.ingest import probe_videos
        # two or more readable videos, before minutes of detection
        if _video_sync(probe_videos(args.videos), args):
            from epiflow.calibration.sync import CameraStreams
            from epiflow.pipeline.config import DetectConfig
            # the tracker restarts at each chunk: run's chunks, so both find the same 2D (and
            # offsets: with 64-frame chunks a cut demo camera came out 0.7 frame from run's)
            tracks, infos, joint_set = detect_video_streams(
                args.videos, chunk_frames=DetectConfig().chunk_frames)
            return CameraStreams(tuple(tracks), [i.fps for i in infos],
                                 tuple(i.path.stem for i in infos), joint_set,
                                 np.array([i.size for i in infos]))
        kp = detect_videos(args.videos, _detector(args.max_people))
        if args.save_keypoints:
            save_npz(kp, args.save_keypoints)
        return kp
    from epiflow.datasets.io import load_keypoints
    from epiflow.datasets.io import is_shelf_folder
    path = Path(args.keypoints)
    openpose = path.is_dir() and not is_shelf_folder(path)
    return load_keypoints(args.keypoints, joint_set=args.joint_set, image_size=args.image_size,
                          min_cameras=2, calibration=args.intrinsics,
                          people=args.max_people > 1 if openpose else None)


def _known_distance(args):
    """``--known-distance`` checked (a number of metres > 0; with ``--videos``, cameras among the
    videos' names), before any detection; None when not given."""
    if args.known_distance is None:
        return None
    from epiflow.calibration.world_frame import KnownDistance
    known = KnownDistance.parse(args.known_distance)
    if args.videos:
        from epiflow.detection.detectors import list_videos
        known.indices([p.stem for p in list_videos(args.videos)])
    return known


def _scene(args, synchronized: bool):
    """With ``--videos``: two frames per video, for the scene's vertical lines; else None."""
    if not args.videos:
        return None
    from epiflow.calibration.vanishing import video_scene_frames
    from epiflow.detection.detectors import list_videos
    return video_scene_frames(list_videos(args.videos), with_index=not synchronized)


def world_summary(report: dict) -> str:
    """One line on the world frame of a calibration report: where the scale and up came from,
    and how uncertain the scale is."""
    source, sd = report.get("scale_source"), report.get("scale_relative_sd")
    if source == "known_distance":
        a, b, d = report["known_distance"]
        scale = f"scale from the known distance {a}-{b} = {d:g} m (exact up to the tape)"
    else:
        what = ("the subject's height" if source == "subject_height" else
                "body proportions of an assumed adult")
        scale = (f"scale from {what} ({report.get('subject_height_m', 0):.2f} m): distances "
                 f"uncertain by ±{100 * (sd or 0):.1f} % (1 sd)")
    up = report.get("up_source", "?")
    extra = ""
    if up == "scene lines" and report.get("scene_vertical"):
        v = report["scene_vertical"]
        extra = f", {v['inliers']} vertical segments in {len(v['cameras_used'])} cameras"
    if up != "body axis":
        extra = f" ({report.get('up_angle_to_body_axis_deg', 0):.1f}° from the body axis{extra})"
    return f"world: {scale}; up from the {up}{extra}"


def _video_sync(infos, args) -> bool:
    """Whether the videos (probed) are synchronized from the person; refused, before any
    detection, for several people or ``--sync off`` on videos of different lengths or rates."""
    from epiflow.calibration.sync import needs_sync
    counts = {i.path.name: i.n_frames for i in infos}
    rates = {i.path.name: round(i.fps, 3) for i in infos}
    differ = needs_sync(counts.values(), rates.values(), "auto")
    if differ and args.sync == "off":
        raise ValueError(f"--sync off, but the videos in {args.videos!r} differ: frame counts "
                         f"{counts}, rates {rates} fps; synchronized cameras need equal ones: "
                         f"drop --sync off to recover their time offsets from the person, or "
                         f"trim and re-encode the videos")
    sync = needs_sync(counts.values(), rates.values(), args.sync)
    if sync and args.max_people > 1:
        raise ValueError(f"--max-people {args.max_people} with videos to synchronize (frame "
                         f"counts {counts}, rates {rates}): time offsets are recovered from one "
                         f"person only; use --max-people 1, or synchronized videos")
    return sync


def _streams(kp, args):
    """Keypoints to synchronize (``--sync`` on a keypoints input): each camera up to its last
    frame with a person, at the keypoints' rate."""
    from epiflow.calibration.sync import CameraStreams
    if kp.has_people:
        raise ValueError(f"--sync with keypoints of several people ({args.keypoints!r}): time "
                         f"offsets are recovered from one person only; give one person's "
                         f"keypoints, or drop --sync")
    if not kp.fps:
        raise ValueError(f"--sync: the keypoints {args.keypoints!r} carry no frame rate; "
                         f"expected fps in the npz (time offsets are in seconds): save it there")
    seen = (kp.data[..., 2] > 0).any(-1)                                   # (T, C)
    counts = [int(np.flatnonzero(seen[:, c])[-1]) + 1 if seen[:, c].any() else 0
              for c in range(kp.n_cameras)]
    return CameraStreams.from_padded(kp.data, counts, [kp.fps] * kp.n_cameras,
                                     kp.camera_names, kp.joint_set, kp.image_size)


def _synchronized(streams, calibrate, args):
    """Offsets and cameras together (:func:`~epiflow.calibration.sync.synchronize_with_calibration`):
    (calibration result, keypoints on the first camera's frame times, sync report)."""
    from epiflow.calibration.sync import synchronize_with_calibration
    from epiflow.calibration.sync import offset_lines
    sync, result, kp = synchronize_with_calibration(streams, calibrate)
    report = sync.report(streams.camera_names)
    print("\n".join(offset_lines(report)))
    if args.save_keypoints:
        from epiflow.keypoints import save_npz
        save_npz(kp, args.save_keypoints)
    return result, kp, report


def _check_placed(report: dict, args, synchronized: bool) -> None:
    """Refuse, before anything is written, cameras the calibration could not place (none of
    their keypoints fit the others: no reprojection error); named with those far off."""
    cams = report["cameras"]
    unplaced = [n for n, c in cams.items() if c.get("reprojection_error_px_median") is None]
    if not unplaced:
        return
    errors = [c["reprojection_error_px_median"] for c in cams.values()
              if c.get("reprojection_error_px_median") is not None]
    limit = 5 * float(np.median(errors)) if errors else 0.0
    off = [f"{n} ({c['reprojection_error_px_median']:.1f} px)" for n, c in cams.items()
           if (c.get("reprojection_error_px_median") or 0) > max(limit, 10.0)]
    hint = ("" if synchronized else
            "; if the videos start or stop at different times, --sync recovers their time "
            "offsets")
    raise ValueError(f"{args.videos or args.keypoints}: cameras {unplaced} could not be placed "
                     f"(none of their keypoints fit the other cameras'){' and ' if off else ''}"
                     f"{', '.join(off)}{' fit far worse than the others' if off else ''}; "
                     f"expected every camera to film the same moments of the same person: they "
                     f"may film other moments (time ranges that do not overlap) or another "
                     f"person{hint}; cut the videos to film the same moments, or drop "
                     f"{unplaced}")


def _detector(max_people: int):
    """MediaPipe's one person (None: the default of ``detect_videos``), or the detector of up to
    ``max_people`` people."""
    if max_people == 1:
        return None
    from epiflow.detection.tracking import MultiPersonPoseDetector
    return MultiPersonPoseDetector(max_people)


def _plain(value):
    """JSON-able copy of a report (numpy scalars and arrays to Python)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def run(args) -> int:
    from epiflow.calibration.formats import load_rig, save_toml
    from epiflow.calibration.people_calibration import calibrate_from_several_people
    from epiflow.calibration.sync import CameraStreams
    from epiflow.calibration.verdict import verdict_lines, verdict_metadata
    from epiflow.cli import print_warnings

    outputs = {"--out": args.out, "the report beside --out": report_path(Path(args.out)),
               "--save-keypoints": args.save_keypoints}
    check_file_outputs(outputs, "cameras.toml")
    check_outputs_not_inputs(
        outputs,
        {"--videos": args.videos, "--keypoints": args.keypoints, "--intrinsics": args.intrinsics,
         "--config": args.config})
    config = _config(args)
    known = _known_distance(args)
    intrinsics = load_rig(args.intrinsics) if args.intrinsics else None
    kp = _keypoints(args)
    if args.keypoints and args.sync == "on":
        kp = _streams(kp, args)

    scene = _scene(args, isinstance(kp, CameraStreams))

    def calibrate(keypoints):
        return calibrate_from_several_people(keypoints, intrinsics, args.subject_height, config,
                                             intrinsics_source=args.intrinsics or "intrinsics",
                                             known_distance=known, scene=scene)
    sync = None
    if isinstance(kp, CameraStreams):
        result, kp, sync = _synchronized(kp, calibrate, args)
    else:
        result = calibrate(kp)
    _check_placed(result.report, args, sync is not None)
    out = Path(args.out)
    report = _plain({**result.report, "source": args.videos or args.keypoints,
                     "intrinsics_file": args.intrinsics, "cameras_file": str(out),
                     **({"sync": sync} if sync else {})})
    save_toml(result.rig, out, {"method": f"from people ({config.method})",
                                **verdict_metadata(report["verdict"])},
              time_offsets=None if sync is None else
              [c["time_offset_s"] for c in sync["cameras"].values()])
    atomic_write_text(report_path(out), json.dumps(report, indent=2) + "\n")
    for name, cam in report["cameras"].items():
        print(f"{name}: median reprojection error {cam['reprojection_error_px_median']:.2f} px "
              f"over {cam['observations_used']} observations, focal {cam['focal_px']:.1f} px")
    if "people" in report:
        people = report["people"]
        print(f"{people['found']} people matched across the cameras without a calibration "
              f"(frames each: {people['frames']}); the cameras are solved from all of them")
    print_warnings("calibrate", report["warnings"] + (sync["warnings"] if sync else []),
                   args.videos or args.keypoints)
    print(world_summary(report))
    print("\n".join(verdict_lines(report["verdict"])))
    print(f"{len(result.rig)} cameras ({config.method}, scale from {report['scale_source']}) "
          f"-> {out}, report {report_path(out)}")
    return _exit_status(report["verdict"]["verdict"], out)


def _exit_status(verdict: str, out: Path) -> int:
    """0, or 3 when the cameras were written but their verdict is ``failed``: a script that chains
    ``calibrate && triangulate`` stops there instead of labelling with cameras known to be wrong
    (the file is kept, with the verdict in its metadata, for a person to look at)."""
    if verdict != "failed":
        return 0
    print(f"epiflow calibrate: the verdict on the cameras is FAILED: {out} is written for "
          f"inspection, not for use (exit status 3)", file=sys.stderr)
    return 3
