"""MediaPipe's single-person 2D of a folder of videos, detected once and cached as a keypoints
npz: the benchmarks that compare against it (calibration.py, two_person.py) share this."""
from __future__ import annotations

import time
from pathlib import Path


def mediapipe_keypoints(videos: Path, cache: Path, redetect: bool = False):
    """Keypoints (T, C, 33, 3), blazepose33, pixels: MediaPipe on every frame of every video in
    ``videos``, read from ``cache`` unless ``redetect`` (then detected and written there)."""
    from epiflow.detection.detectors import detect_videos
    from epiflow.keypoints import load_npz, save_npz
    if cache.is_file() and not redetect:
        return load_npz(cache)
    t0 = time.perf_counter()
    kp = detect_videos(videos, progress=False)
    print(f"MediaPipe on {kp.n_frames} frames x {kp.n_cameras} cameras: "
          f"{time.perf_counter() - t0:.1f} s; cached in {cache}")
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_npz(kp, cache)
    return kp
