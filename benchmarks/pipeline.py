"""Speed of the whole pipeline against MediaPipe alone in one plain process, same frames.

    python benchmarks/pipeline.py [--videos DIR] [--config configs/pose2sim_demo.toml]
                                  [--set detect.max_side=0 ...]

Peer: MediaPipe's pose model (``MediaPipeDetector``, the same model settings) in one plain
process on the Pose2Sim demo's 4 x 100 frames, timed on frames decoded beforehand (``detector
only``) and with the decoding (``decode + detect``). Ours:
``run_pipeline`` with the config's [detect] settings, from ingest to the complete store
(detector actors started, frames decoded and detected in them, cameras, pseudo-labels), on a
Ray runtime started beforehand (its start-up is printed apart), twice: with the lab cameras
given, and with cameras from the people. Ratios are printed against both peer rates:
``x detect`` (frames decoded beforehand, the stricter) and ``x dec+det`` (the peer reading the
same videos, as the pipeline does). Printed beside: the time after the last detection
unit, and how far the pipeline's 2D is from the peer's (it may shrink frames before the
detector, ``detect.max_side``, and decode faster, ``detect.decode_options``).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EPIFLOW_DATA", REPO.parent / "shared" / "data"))


def baseline(videos: Path, cfg) -> dict:
    """MediaPipe alone, one process: decode every frame, then detect camera by camera."""
    from epiflow.detection.detectors import MediaPipeDetector, list_videos, read_frames
    from epiflow.skeleton import map_to_h36m
    detector = MediaPipeDetector(cfg.model_complexity, cfg.min_confidence, cfg.video_mode)
    t0, c0 = time.perf_counter(), time.process_time()
    frames = [read_frames(v) for v in list_videos(videos)]
    t_decode, c_decode = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    kp = np.stack([detector(f) for f in frames], axis=1)           # (T, C, 33, 3)
    t_detect, c_detect = time.perf_counter() - t0, time.process_time() - c0
    n = sum(len(f) for f in frames)
    return {"frames": n, "decode_s": t_decode, "detect_s": t_detect, "decode_cpu_s": c_decode,
            "detect_cpu_s": c_detect,
            "h36m": map_to_h36m(kp, detector.joint_set, confidence=True)}


def pipeline(videos: Path, cameras: str, detect) -> dict:
    """The whole pipeline into a fresh store (on the Ray runtime already started)."""
    from epiflow.pipeline.config import RunConfig, SessionConfig
    from epiflow.pipeline.orchestrate import run_pipeline
    from epiflow.store import PoseStore
    out = Path(tempfile.mkdtemp()) / "bench.zarr"
    cfg = RunConfig(out=str(out), detect=detect,
                    sessions=(SessionConfig(name="demo", videos=str(videos), cameras=cameras),))
    t0 = time.time()
    report = run_pipeline(cfg, progress=False)
    wall = time.time() - t0
    s = PoseStore.open(out).session("demo")
    return {"report": report, "wall_s": wall, "cfg": cfg,
            "kp": np.asarray(s.keypoints2d[:]), "complete": s.is_complete,
            "labelled": float((np.asarray(s.pseudo3d_weight[:]) > 0).mean())}


def steady_cpu(videos: Path, cfg) -> float:
    """CPU seconds per frame of our detection unit (decode, shrink, detect, write) once warm:
    one camera's frames run through :class:`DetectWorker` in this process."""
    from epiflow.pipeline.detect import DetectUnit, DetectWorker
    from epiflow.detection.detectors import list_videos, video_info
    from epiflow.store import PoseStore
    video = list_videos(videos)[0]
    T = video_info(video).n_frames
    store = PoseStore.open(Path(tempfile.mkdtemp()) / "cpu.zarr", "a")
    for sid, n in (("warm", 10), ("s", T)):
        store.create_session(sid, n_frames=n, camera_names=["c"], joint_set="h36m17",
                             image_size=[video_info(video).size], fps=None, chunk_frames=n)
    worker = DetectWorker(cfg, "h36m17")
    worker.run(DetectUnit(store.url, "warm", 0, 0, str(video), 0, 10))
    res = worker.run(DetectUnit(store.url, "s", 0, 0, str(video), 0, T))
    return res.cpu_s / res.frames


def _row(name: str, wall: float, n: int, refs: tuple[float, float], extra: str = "") -> str:
    """One line: wall s, frames/s and the ratio to each reference rate (frames/s)."""
    fps = n / wall
    return (f"{name:<46}{wall:>8.2f}{fps:>10.1f}{fps / refs[0]:>10.2f}{fps / refs[1]:>10.2f}"
            f"  {extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", default=str(DATA / "pose2sim_demo/single_person/videos"))
    ap.add_argument("--cameras", default=str(DATA / "pose2sim_demo/calibration/"
                                             "Calib_qualisys.toml"),
                    help="the camera file of the 'cameras given' run")
    ap.add_argument("--config", default=str(REPO / "configs/pose2sim_demo.toml"),
                    help="run config whose [detect] settings both sides use")
    ap.add_argument("--set", action="append", default=[], help="run config override")
    args = ap.parse_args()
    import ray
    from epiflow.config import apply_overrides, to_dict
    from epiflow.pipeline.config import load_run_config
    from epiflow.ray_setup import init_local_ray
    detect_cfg = apply_overrides(load_run_config(args.config), args.set).detect
    peer = baseline(Path(args.videos), detect_cfg)
    ours_steady = steady_cpu(Path(args.videos), detect_cfg)
    t0 = time.perf_counter()
    init_local_ray(os.cpu_count(), logging_level="ERROR", log_to_driver=False)  # as `epiflow run`
    ray_start = time.perf_counter() - t0
    given = pipeline(Path(args.videos), args.cameras, detect_cfg)
    people = pipeline(Path(args.videos), "", detect_cfg)
    ray.shutdown()

    n = peer["frames"]
    peer_fps = (n / peer["detect_s"], n / (peer["decode_s"] + peer["detect_s"]))
    print(f"{n} frames ({args.videos}); {os.cpu_count()} CPUs; load average now "
          f"{os.getloadavg()[0]:.1f}; detect: {to_dict(detect_cfg)}")
    print(f"{'':<46}{'wall s':>8}{'frames/s':>10}{'x detect':>10}{'x dec+det':>10}  "
          f"after detection")
    print(_row("MediaPipe alone, one process: detector only", peer["detect_s"], n, peer_fps))
    print(_row("MediaPipe alone, one process: decode + detect",
               peer["decode_s"] + peer["detect_s"], n, peer_fps))
    for name, ours in (("epiflow run, cameras given", given),
                       ("epiflow run, cameras from people", people)):
        rep = ours["report"]
        share = f"{rep.after_detect_s:.2f} s = {100 * rep.after_detect_s / ours['wall_s']:.1f}%"
        print(_row(name, ours["wall_s"], n, peer_fps, share))
        det = rep.stages["detect"]
        print(_row("  of which the detect stage", det["wall_s"], n, peer_fps,
                   f"{rep.ray.get('detect_pool_size')} actors"))
    print(f"(Ray start-up, once per machine, apart: {ray_start:.1f} s)")
    ms = 1e3 / n
    peer_cpu = peer["detect_cpu_s"] * ms
    ours_cpu = given["report"].stages["detect"]["cpu_s"] * ms
    print(f"CPU per frame (load-independent): peer detector {peer_cpu:.1f} ms + decode "
          f"{peer['decode_cpu_s'] * ms:.1f} ms; ours (decode + shrink + detect + write) "
          f"{1e3 * ours_steady:.1f} ms warm, {ours_cpu:.1f} ms in the run (imports, tracker "
          f"starts) -> on 2 idle cores {2 * peer_cpu / (1e3 * ours_steady):.2f}x (warm) / "
          f"{2 * peer_cpu / ours_cpu:.2f}x (run) the peer's detector rate")
    for name, ours in (("given", given), ("people", people)):
        diff = np.linalg.norm(ours["kp"][..., :2] - peer["h36m"][..., :2], axis=-1)
        print(f"2D of the '{name}' run vs the peer: median {np.nanmedian(diff):.2f} px, 95th pct "
              f"{np.nanpercentile(diff, 95):.2f} px; complete {ours['complete']}, labelled "
              f"{100 * ours['labelled']:.1f}% of joints")
    print(people["report"].table())


if __name__ == "__main__":
    main()
