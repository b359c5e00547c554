"""2D detector speed: MediaPipe's single-person pose solution against the multi-person detector.

    python benchmarks/detector_speed.py [--frames 100] [--chunk 64] [--threads 1] [--device cuda]

On the Pose2Sim two-person demo (``multi_person/videos/cam01..04.mp4``, 1088x1920, 100 frames
each), all in one run, camera by camera, on the same decoded frames (decoding is not timed):

(a) ``MediaPipeDetector`` as epiflow uses it today (``mp.solutions.pose``, model complexity 1,
    video mode, one graph per chunk of ``--chunk`` frames, as ``detect_videos`` feeds it);
(b) ``MultiPersonPoseDetector(max_people=1)``; (c) the same with ``max_people=4``; both with
    ``--threads`` LiteRT threads per network call, fed the same chunks, tracks carried across
    chunks and reset per camera; (d) with ``--device``: (c) on the torch runtime on that
    device (``cuda`` for a GPU; the first chunk includes its warm-up).

Printed per detector: frames per second of wall time and of the process's CPU time (on a shared
machine the wall clock also counts other people's work; CPU time counts all of this process's
threads, MediaPipe's included), the people found per frame (mean, and the share of frames with
0 / 1 / 2 / 3+), the person detector's runs, and the median distance in pixels from MediaPipe's
person to the nearest person found (median over the 33 joints, then over frames).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EPIFLOW_DATA", REPO.parent / "shared" / "data"))
VIDEOS = DATA / "pose2sim_demo" / "multi_person" / "videos"


def _run(detector, frames: np.ndarray, chunk: int) -> tuple[np.ndarray, float, float]:
    """(keypoints (T, P, 33, 3), wall seconds, CPU seconds) of a detector over chunks."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = [detector(frames[s:s + chunk]) for s in range(0, len(frames), chunk)]
    kp = np.concatenate(out)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return (kp[:, None] if kp.ndim == 3 else kp), wall, cpu


def _to_mediapipe(kp: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per frame: median joint distance (px) from ref's person (T, 33, 3) to the nearest in kp."""
    d = np.linalg.norm(kp[..., :2] - ref[:, None, :, :2], axis=-1)
    return np.median(np.nan_to_num(d, nan=np.inf), -1).min(1)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default=None, help="also time the torch runtime on this device")
    args = ap.parse_args(argv)
    from epiflow.detection.detectors import MediaPipeDetector, list_videos, read_frames
    from epiflow.detection.tracking import MultiPersonPoseDetector
    names = ["(a) MediaPipe single-person", "(b) ours, max_people=1", "(c) ours, max_people=4"]
    dets = [MediaPipeDetector(), MultiPersonPoseDetector(1, num_threads=args.threads),
            MultiPersonPoseDetector(4, num_threads=args.threads)]
    if args.device:
        names.append(f"(d) ours, 4, torch {args.device}")
        dets.append(MultiPersonPoseDetector(4, runtime="torch", device=args.device))
    stats = {n: dict(wall=0.0, cpu=0.0, people=[], runs=0, err=[]) for n in names}
    for video in list_videos(VIDEOS):
        frames = read_frames(video, 0, args.frames)
        ref = None
        for name, det in zip(names, dets):
            if hasattr(det, "reset"):
                det.reset()
            kp, wall, cpu = _run(det, frames, args.chunk)
            ref = kp[:, 0] if ref is None else ref
            s = stats[name]
            s["wall"] += wall
            s["cpu"] += cpu
            s["people"].append(np.isfinite(kp[..., :2]).all((-1, -2)).sum(1))
            s["runs"] += getattr(det, "detector_runs", 0)
            s["err"].append(_to_mediapipe(kp, ref))
        print(f"{video.name}: {len(frames)} frames {frames.shape[2]}x{frames.shape[1]}", flush=True)
    _table(stats, n_frames=sum(len(p) for p in stats[names[0]]["people"]), threads=args.threads)


def _table(stats: dict, n_frames: int, threads: int) -> None:
    print(f"\n{n_frames} frames (4 cameras), LiteRT threads {threads}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'detector':30s} {'fps wall':>8s} {'fps CPU':>8s} {'people':>6s} "
          f"{'0/1/2/3+ people, % of frames':>29s} {'det runs':>8s} {'px to MP':>8s}")
    for name, s in stats.items():
        people = np.concatenate(s["people"])
        share = [np.mean(people == k) * 100 for k in (0, 1, 2)] + [np.mean(people >= 3) * 100]
        err = np.concatenate(s["err"])
        runs = str(s["runs"]) if name[1] != "a" else "-"
        print(f"{name:30s} {n_frames / s['wall']:8.1f} {n_frames / s['cpu']:8.1f} "
              f"{people.mean():6.2f} {' / '.join(f'{x:4.0f}' for x in share):>29s} "
              f"{runs:>8s} {np.median(err[np.isfinite(err)]):8.1f}")


if __name__ == "__main__":
    main()
