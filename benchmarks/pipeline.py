"""Speed of the whole pipeline against MediaPipe alone in one plain process, same frames.

    python benchmarks/pipeline.py [--videos DIR] [--cameras FILE] [--set detect.max_side=0]

Peer: MediaPipe's pose model (``MediaPipeDetector``, same settings) in one process on the
Pose2Sim demo's 4 x 100 frames, decoded beforehand (``detector only``) and decoding as it goes
(``decode + detect``, what ``detect_videos`` does). Ours: ``run_pipeline`` on a Ray runtime
started beforehand (its start-up is printed apart; a cluster is up before work arrives), from
ingest to the complete store: detector actors started, frames decoded and detected in them,
cameras, pseudo-labels. Also printed: the share of the run's wall time after the last
detection unit (calibrate, triangulate, write) and how far the pipeline's 2D is from the
peer's (the pipeline may shrink frames before the detector: ``detect.max_side``).
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
    from epiflow.pipeline.detectors import MediaPipeDetector, list_videos, read_frames
    from epiflow.skeleton import map_to_h36m
    detector = MediaPipeDetector(cfg.model_complexity, cfg.min_confidence, cfg.video_mode)
    t0 = time.perf_counter()
    frames = [read_frames(v) for v in list_videos(videos)]
    t_decode = time.perf_counter() - t0
    t0 = time.perf_counter()
    kp = np.stack([detector(f) for f in frames], axis=1)           # (T, C, 33, 3)
    t_detect = time.perf_counter() - t0
    n = sum(len(f) for f in frames)
    return {"frames": n, "decode_s": t_decode, "detect_s": t_detect,
            "h36m": map_to_h36m(kp, detector.joint_set, confidence=True)}


def pipeline(videos: Path, cameras: str, overrides: list[str]) -> dict:
    """The whole pipeline into a fresh store, on a Ray runtime started first."""
    import ray
    from epiflow.config import apply_overrides
    from epiflow.pipeline.config import RunConfig, SessionConfig
    from epiflow.pipeline.orchestrate import run_pipeline
    from epiflow.store import PoseStore
    out = Path(tempfile.mkdtemp()) / "bench.zarr"
    cfg = RunConfig(out=str(out), sessions=(SessionConfig(name="demo", videos=str(videos),
                                                          cameras=cameras),))
    cfg = apply_overrides(cfg, overrides)
    t0 = time.perf_counter()
    ray.init(num_cpus=cfg.ray.num_cpus or os.cpu_count(), include_dashboard=False,
             logging_level="ERROR", log_to_driver=False)
    ray_start = time.perf_counter() - t0
    t0 = time.time()
    report = run_pipeline(cfg, progress=False)
    wall = time.time() - t0
    ray.shutdown()
    s = PoseStore.open(out).session("demo")
    return {"report": report, "wall_s": wall, "ray_start_s": ray_start, "cfg": cfg,
            "kp": np.asarray(s.keypoints2d[:]), "complete": s.is_complete,
            "labelled": float((np.asarray(s.pseudo3d_weight[:]) > 0).mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", default=str(DATA / "pose2sim_demo/single_person/videos"))
    ap.add_argument("--cameras", default="", help="a camera file (else cameras from people)")
    ap.add_argument("--set", action="append", default=[], help="run config override")
    args = ap.parse_args()
    from epiflow.pipeline.config import RunConfig
    from epiflow.config import apply_overrides
    detect_cfg = apply_overrides(RunConfig(), args.set).detect
    peer = baseline(Path(args.videos), detect_cfg)
    ours = pipeline(Path(args.videos), args.cameras, args.set)
    n = peer["frames"]
    peer_fps, peer_dec_fps = n / peer["detect_s"], n / (peer["decode_s"] + peer["detect_s"])
    fps = n / ours["wall_s"]
    diff = np.linalg.norm(ours["kp"][..., :2] - peer["h36m"][..., :2], axis=-1)
    print(f"{n} frames ({args.videos}); {os.cpu_count()} CPUs; load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'':<38}{'wall s':>8}{'frames/s':>10}{'ratio':>8}")
    print(f"{'MediaPipe alone, detector only':<38}{peer['detect_s']:>8.2f}{peer_fps:>10.1f}"
          f"{1.0:>8.2f}")
    print(f"{'MediaPipe alone, decode + detect':<38}{peer['decode_s'] + peer['detect_s']:>8.2f}"
          f"{peer_dec_fps:>10.1f}{peer_dec_fps / peer_fps:>8.2f}")
    print(f"{'epiflow pipeline (Ray up), all stages':<38}{ours['wall_s']:>8.2f}{fps:>10.1f}"
          f"{fps / peer_fps:>8.2f}")
    print(f"Ray start-up (apart): {ours['ray_start_s']:.1f} s; pool "
          f"{ours['report'].ray.get('detect_pool_size')} actors, chunk "
          f"{ours['cfg'].detect.chunk_frames}, max_side {ours['cfg'].detect.max_side}")
    print(f"after detection (calibrate + triangulate + write): "
          f"{100 * ours['report'].after_detect_s / ours['wall_s']:.1f}% of the run's wall time")
    print(f"2D vs the peer: median {np.nanmedian(diff):.2f} px, 95th pct "
          f"{np.nanpercentile(diff, 95):.2f} px; complete {ours['complete']}, labelled "
          f"{100 * ours['labelled']:.1f}% of joints")
    print(ours["report"].table())


if __name__ == "__main__":
    main()
