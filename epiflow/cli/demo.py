"""``epiflow demo``: the whole pipeline on a small capture, and a report folder to open.

    epiflow demo                         # synthetic capture of the packaged CMU clips
    epiflow demo --out my_demo           # somewhere else than ./epiflow_demo
    epiflow demo --videos DIR            # real synchronized videos, one per camera
    epiflow demo --videos DIR --reference-cameras lab.toml   # compare the cameras with a lab's
    epiflow demo --videos DIR --max-people 2     # two people in view: cameras from both

Writes OUT/store.zarr (2D keypoints, cameras, pseudo-labels), OUT/train (the lifter's
checkpoint and metrics) and OUT/report/index.html (open it in a browser).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from epiflow.cli import non_negative_int, positive_int
from epiflow.outputs import check_file_outputs, check_outputs_not_inputs

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="run everything on a small capture and write an HTML report",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="epiflow_demo", help="output folder (default: %(default)s)")
    p.add_argument("--videos", metavar="DIR", help="folder of synchronized videos, one per camera")
    p.add_argument("--reference-cameras", metavar="FILE",
                   help="a calibration to compare the cameras from people with (videos)")
    p.add_argument("--intrinsics", metavar="FILE",
                   help="a calibration whose intrinsics (K, distortion) are known (videos)")
    p.add_argument("--max-people", type=positive_int, default=1, metavar="N",
                   help="people detected per camera-frame in --videos (default 1: MediaPipe's "
                        "one person); the cameras are solved from all of them and each is "
                        "labelled and drawn in its own colour")
    p.add_argument("--epochs", type=positive_int, default=60,
                   help="training epochs (default: %(default)s)")
    p.add_argument("--num-cpus", type=non_negative_int, default=0,
                   help="CPUs for Ray (default: all)")
    p.add_argument("--quick", action="store_true",
                   help="a small, fast run (two short clips, three epochs): checks the set-up")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from epiflow.demo import DemoConfig, DemoError, run_demo
    out = Path(args.out)
    check_file_outputs({}, "", folders={"--out": args.out})
    check_outputs_not_inputs(
        {f"--out (its {name})": out / name for name in ("store.zarr", "run_report.json", "train",
                                                    "report")},
        {"--videos": args.videos, "--reference-cameras": args.reference_cameras,
         "--intrinsics": args.intrinsics})
    if args.max_people > 1 and not args.videos:
        raise ValueError(f"--max-people {args.max_people}: detects people in --videos; the "
                         f"synthetic demo (no --videos) has one person per capture: give "
                         f"--videos DIR, or leave --max-people out")
    from epiflow.calibration.formats import load_rig
    for flag in ("intrinsics", "reference_cameras"):  # read and checked before minutes of work
        if getattr(args, flag):
            load_rig(getattr(args, flag))
    cfg = DemoConfig(out=args.out, videos=args.videos or "",
                     reference_cameras=args.reference_cameras or "",
                     intrinsics=args.intrinsics or "", epochs=args.epochs,
                     num_cpus=args.num_cpus, quick=args.quick, progress=not args.quiet,
                     max_people=args.max_people)
    try:
        result = run_demo(cfg)
    except DemoError as err:
        print(f"epiflow demo: {err}", file=sys.stderr)
        return 1
    from epiflow.cli.inspect import verdict_summary
    from epiflow.store import PoseStore
    for session in PoseStore.open(str(result.store)).sessions():  # as run and inspect print it
        for line in verdict_summary(session):
            print(line)
    width = max(len(k) for k in result.seconds)
    print("\n".join(f"  {k:<{width}}  {v:7.1f} s" for k, v in result.seconds.items()))
    print(f"report: {result.report}")
    return 0
