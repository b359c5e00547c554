"""Several people: association across views and through time, and per-person triangulation, on
synthetic crowds (issue 11, "Synthetic crowds").

    python benchmarks/multi_person.py [--seeds 0,1,2] [--frames 90] [--hard]

Crowds from ``epiflow.datasets.crowds.make_crowd``: the packaged CMU clips (02_01, 02_03, 02_04)
as 3-5 people (two of them crossing paths, pelvises within about 0.4 m), rigs of 4-8 cameras
(ring or random layout, heights 1.2-2.8 m, focal 1000-1500 px), each person's 2D from the
synthetic detector (2 px noise, 3 % outliers, 5 % self-occlusion, 2 % left/right swaps), people
hidden by each other and for 20-frame runs, ghosts (a pose seen by one camera only, 1-15 frames,
5 % of camera-frames start one), detections shuffled across the P axis.

Methods, both followed by the same ``triangulate_sequence`` per person:
- ours: ``triangulate_people`` (epipolar grouping, reprojection checks, Hungarian tracking);
- naive: slot order (slot p of every camera is person p), ``people_from_assignment``;
- truth: the true assignment (ghosts left out), ``people_from_assignment``: what triangulation
  alone reaches on these detections, the floor of the association's MPJPE.

Columns: people-frames found (% of those detected by two cameras or more, a result person within
0.3 m mean joint distance, Hungarian per frame), MPJPE (mm, over the matched joints), identity
swaps (changes of the result matched to a true person, all people), ghosts rejected (% of ghost
slots left unassigned), frames/s of association + triangulation on one torch thread (``ours``
includes everything from raw detections). Targets (issue 11): found >= 97 %, MPJPE <= 20 mm,
zero swaps.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from epiflow.calibration.people import people_from_assignment, triangulate_people
from epiflow.datasets.crowds import CrowdOptions, make_crowd, naive_slot_order, score_people
from epiflow.datasets.synthetic import Corruption

#: (people, cameras, layout) of the rigs measured
RIGS = ((3, 4, "ring"), (4, 6, "ring"), (5, 8, "ring"), (5, 5, "random"), (4, 4, "random"))


def _run(method: str, crowd) -> tuple[dict, float]:
    t0 = time.perf_counter()
    if method == "ours":
        res = triangulate_people(crowd.rig, crowd.detections, crowd.joint_set)
    else:
        assignment = crowd.slot_person if method == "truth" else naive_slot_order(crowd.detections)
        res = people_from_assignment(crowd.rig, crowd.detections, crowd.joint_set, assignment)
    dt = time.perf_counter() - t0
    return score_people(crowd, res.points3d, res.assignment), crowd.detections.shape[0] / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--hard", action="store_true",
                    help="3 px noise, 5 %% outliers, 10 %% dropped joints, 15 %% of camera-frames "
                         "start a ghost, 5 %% missed detections, the crossing 8 frames apart")
    args = ap.parse_args()
    extra = dict(corruption=Corruption(noise_px=3.0, outlier_fraction=0.05, drop_fraction=0.10,
                                       swap_fraction=0.02),
                 ghost_rate=0.15, miss_fraction=0.05, cross_gap_frames=8) if args.hard else {}
    torch.set_num_threads(1)
    rows = []
    print(f"{'people':>6} {'cams':>4} {'layout':>6} {'seed':>4} {'closest':>7} {'method':>6} "
          f"{'found %':>8} {'MPJPE mm':>9} {'swaps':>5} {'ghosts rej %':>12} {'assign %':>8} "
          f"{'frames/s':>8}")
    for n_people, n_cams, layout in RIGS:
        for seed in (int(s) for s in args.seeds.split(",")):
            crowd = make_crowd(CrowdOptions(n_people=n_people, n_cameras=n_cams, layout=layout,
                                            n_frames=args.frames, **extra), seed=seed)
            for method in ("ours", "naive", "truth"):
                s, fps = _run(method, crowd)
                rows.append((method, s, fps))
                print(f"{n_people:>6} {n_cams:>4} {layout:>6} {seed:>4} "
                      f"{crowd.closest[3]:>6.2f}m {method:>6} {100 * s['found']:>8.1f} "
                      f"{s['mpjpe_mm']:>9.1f} {s['swaps']:>5d} {100 * s['ghosts_rejected']:>12.1f} "
                      f"{100 * s['assignment_accuracy']:>8.1f} {fps:>8.0f}")
    print()
    print(f"{'method':>6} {'found %':>8} {'MPJPE mm':>9} {'swaps':>5} {'ghosts rej %':>12} "
          f"{'assign %':>8} {'frames/s':>8}   (all rigs and seeds; found: min, MPJPE: max)")
    for method in ("ours", "naive", "truth"):
        r = [(s, f) for m, s, f in rows if m == method]
        found = [s["found"] for s, _ in r]
        mpjpe = [s["mpjpe_mm"] for s, _ in r]
        print(f"{method:>6} {100 * np.mean(found):>8.1f} {np.nanmean(mpjpe):>9.1f} "
              f"{sum(s['swaps'] for s, _ in r):>5d} "
              f"{100 * np.nanmean([s['ghosts_rejected'] for s, _ in r]):>12.1f} "
              f"{100 * np.mean([s['assignment_accuracy'] for s, _ in r]):>8.1f} "
              f"{np.median([f for _, f in r]):>8.0f}   (min {100 * min(found):.1f} %, "
              f"max {np.nanmax(mpjpe):.1f} mm)")
    print("targets: found >= 97 %, MPJPE <= 20 mm, zero swaps")


if __name__ == "__main__":
    main()
