"""Shelf: several people from 5 calibrated cameras' bottom-up detections, scored as the papers do.

    python benchmarks/shelf.py [--repeats 3] [--skip reference]

Data: ``../shared/data/shelf`` (4D-association's copy: calibration.json, detection/{0..4}.txt
with OpenPose BODY_25 candidates and part-affinity scores, gt.txt), 301 frames = frames 300-600,
the published test range.

Rows:

- **ours**: each camera-frame's candidates assembled into people by their part affinities
  (``read_shelf_people``, no ground truth), then associated across cameras, tracked and
  triangulated by ``epiflow.calibration.people.triangulate_people`` (points3d (T, N, 25, 3)):
  with its defaults, and with gaps of up to 5 frames (0.2 s) interpolated (``fill_gaps=5``; the
  protocol scores a missing joint as wrong, and the published methods output every joint).
- **GT-picked reference**: per ground-truth person, the candidate nearest to the projection of its
  ground-truth joints (``shelf_person_keypoints``: the ground truth chooses who is who, so this is
  a cheat and an upper reference for association), triangulated with ``triangulate_sequence``,
  ``fill_gaps=5`` as well.
- **MVPose** (Dong et al., CVPR 2019) 98.8 / 94.1 / 97.8, average 96.9, and **VoxelPose** (Tu et
  al., ECCV 2020) 99.3 / 94.1 / 97.6, average 97.0: PCP from their papers, not run here.

Scoring (``epiflow.models.shelf_eval``, VoxelPose's ``evaluate``): actors 1-3, each matched per
frame to the predicted person of lowest mean joint error, 10 limbs at alpha 0.5 (neck and head top
derived from the nose, ears and shoulders); limb-only PCP over the 8 arm and leg segments; MPJPE
over the 14 joints of matches within 500 mm, and MPJPE12 over their 12 limb joints (the derived
neck and head top left out). MPJPE and MPJPE12 are the mean of the three actors'.

Speed: frames per second of association + triangulation of all 5 cameras, one torch thread, best
of ``--repeats``; the assembly (parsing the files excluded) is timed on its own, in milliseconds
per camera-frame. Times are the process's CPU time (``time.process_time``), which with one thread
is the time on one core, and which other work on a shared machine does not inflate as much as
wall time (measured here at load 4-6 on 2 cores: wall-clock frames/s varied from 92 to 173 between
runs, CPU-time frames/s from 121 to 155). A second table
gives the 2D assembly's quality: the share of ground-truth actors in a camera's view that an
assembled person matches within 25 px (median over the 12 limb joints, at least 6 found), beside
the same share for the nearest candidate of each joint (what any grouping could reach).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/triangulation.py

import numpy as np  # noqa: E402
import torch  # noqa: E402

from epiflow.calibration.formats_shelf import load_shelf_calibration  # noqa: E402
from epiflow.calibration.people import triangulate_people  # noqa: E402
from epiflow.calibration.triangulation import triangulate_sequence  # noqa: E402
from epiflow.datasets.shelf import (read_shelf_detections, read_shelf_gt,  # noqa: E402
                                    read_shelf_people, shelf_person_keypoints)
from epiflow.models.shelf_eval import (SHELF_LIMB_NAMES, evaluate_shelf,  # noqa: E402
                                       shelf14_from_body25)
from epiflow.skeleton import BODY25  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EPIFLOW_DATA", REPO.parent / "shared" / "data"))
FILL_GAPS = 5
PUBLISHED = {"MVPose (paper)": (98.8, 94.1, 97.8, 96.9),
             "VoxelPose (paper)": (99.3, 94.1, 97.6, 97.0)}
_LIMB_JOINTS = [BODY25.index(n) for n in ("RAnkle", "RKnee", "RHip", "LHip", "LKnee", "LAnkle",
                                          "RWrist", "RElbow", "RShoulder", "LShoulder", "LElbow",
                                          "LWrist")]


def _best_time(fn, repeats: int):
    """(best CPU seconds of this process, last result) over ``repeats`` calls (docstring: Speed)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, out


def _assemble(root: Path, rig, repeats: int):
    """(T, C, P, 25, 3) people per camera-frame, and the assembly's seconds (parsing excluded)."""
    files = [(root / "detection" / f"{c.name}.txt", c.size) for c in rig]
    parse, _ = _best_time(lambda: [read_shelf_detections(f, size) for f, size in files], 1)
    total, people = _best_time(lambda: read_shelf_people(root), repeats)
    return people, max(total - parse, 0.0)


def ours(rig, people: np.ndarray, repeats: int, **options):
    """(points3d (T, N, 25, 3), seconds) of association + triangulation (on one thread: main)."""
    seconds, result = _best_time(lambda: triangulate_people(rig, people, "body25", **options),
                                 repeats)
    return result.points3d, seconds


def reference(root: Path, rig, gt):
    """(points3d (T, 4, 25, 3), seconds): the ground-truth-picked people, triangulated."""
    ids = sorted({p.id for frame in gt for p in frame})
    keypoints = [shelf_person_keypoints(root, i) for i in ids]
    t0 = time.process_time()
    points = [triangulate_sequence(rig, kp, "body25", fill_gaps=FILL_GAPS).points
              for kp in keypoints]
    return np.stack(points, 1), time.process_time() - t0


def _row(name: str, scores, fps: str, assembly: str) -> str:
    pcp = scores.pcp
    return (f"{name:<34} {pcp[0]:6.1f} {pcp[1]:6.1f} {pcp[2]:6.1f} {pcp.mean():7.1f} "
            f"{scores.pcp_limbs_only.mean():7.1f} {np.nanmean(scores.mpjpe_mm):7.1f} "
            f"{np.nanmean(scores.mpjpe12_mm):7.1f} {fps:>9} {assembly:>12}")


def _print_table(rows: list[str]) -> None:
    print(f"{'':<34} {'PCP A1':>6} {'A2':>6} {'A3':>6} {'average':>7} {'limbs8':>7} "
          f"{'MPJPE':>7} {'MPJPE12':>7} {'frames/s':>9} {'assembly':>12}")
    print(f"{'':<34} {'%':>6} {'%':>6} {'%':>6} {'%':>7} {'%':>7} {'mm':>7} {'mm':>7} "
          f"{'1 core':>9} {'ms/cam-frame':>12}")
    print("\n".join(rows))


def _per_limb(name: str, scores) -> None:
    print(f"\n{name}: PCP per limb (%), actors 1/2/3")
    for i, limb in enumerate(SHELF_LIMB_NAMES):
        print(f"  {limb:<12} " + " ".join(f"{100 * v:6.1f}" for v in scores.limb_correct[:, i]))


def _actors_in_view(rig, gt):
    """Yield (t, c, (12, 2) projected limb joints) of each ground-truth actor inside camera c."""
    for t, actors in enumerate(gt):
        for actor in actors:
            uv = rig.project(actor.points[:12])
            for c in range(len(rig)):
                if ((uv[c] >= 0) & (uv[c] <= rig.sizes[c])).all():
                    yield t, c, uv[c]


def assembly_quality(root: Path, rig, gt, people: np.ndarray) -> None:
    dets = [read_shelf_detections(root / "detection" / f"{c.name}.txt", c.size) for c in rig]
    ours_px, nearest_px = [], []
    for t, c, uv in _actors_in_view(rig, gt):
        d = np.linalg.norm(people[t, c][:, _LIMB_JOINTS, :2] - uv, axis=-1)
        ours_px.append(min((np.nanmedian(r) for r in d if np.isfinite(r).sum() >= 6),
                           default=np.inf))
        near = [np.linalg.norm(dets[c][t].joints[j][:, :2] - uv[k], axis=1).min()
                if len(dets[c][t].joints[j]) else np.inf for k, j in enumerate(_LIMB_JOINTS)]
        nearest_px.append(np.median(near))
    ours_px, nearest_px = np.array(ours_px), np.array(nearest_px)
    print(f"\n2D assembly, {len(ours_px)} actor-views in camera: share within 25 px / 50 px, "
          f"median px")
    for name, px in (("assembled people (ours)", ours_px),
                     ("nearest candidate per joint", nearest_px)):
        print(f"  {name:<30} {100 * np.mean(px < 25):5.1f} % {100 * np.mean(px < 50):5.1f} % "
              f"{np.median(px):6.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", default="", help="comma list of: reference, quality")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    torch.set_num_threads(1)
    root = DATA / "shelf"
    rig, gt = load_shelf_calibration(root / "calibration.json"), read_shelf_gt(root / "gt.txt")
    people, t_assembly = _assemble(root, rig, args.repeats)
    n_frames = len(people)
    print(f"Shelf: {n_frames} frames x {len(rig)} cameras, up to {people.shape[2]} people per "
          f"camera-frame; one torch thread\n")
    rows, details = [], []
    assembly_ms = f"{1000 * t_assembly / n_frames / len(rig):.2f}"
    for name, options in (("ours, defaults", {}), (f"ours, gaps <= {FILL_GAPS} frames filled",
                                                    {"fill_gaps": FILL_GAPS})):
        points, seconds = ours(rig, people, args.repeats, **options)
        scores = evaluate_shelf(shelf14_from_body25(points), gt)
        rows.append(_row(name, scores, f"{n_frames / seconds:.0f}", assembly_ms))
        details.append((name, scores))
    if "reference" not in skip:
        points, seconds = reference(root, rig, gt)
        scores = evaluate_shelf(shelf14_from_body25(points), gt)
        rows.append(_row("GT-picked people (cheat, reference)", scores,
                         f"{n_frames / seconds:.0f}*", "-"))
        details.append(("GT-picked reference", scores))
    for name, (a1, a2, a3, avg) in PUBLISHED.items():
        rows.append(f"{name:<34} {a1:6.1f} {a2:6.1f} {a3:6.1f} {avg:7.1f} "
                    + " ".join(f"{'-':>{w}}" for w in (7, 7, 7, 9, 12)))
    _print_table(rows)
    print("* per-person triangulate_sequence over the 4 ground-truth people, no association")
    for name, scores in details:
        _per_limb(name, scores)
    if "quality" not in skip:
        assembly_quality(root, rig, gt, people)


if __name__ == "__main__":
    main()
