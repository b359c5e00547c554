"""Regenerate the CMU clips shipped in ``epiflow/data/`` from the shared CMU ASF/AMC files.

Usage: ``python scripts/make_packaged_clips.py [--data ../shared/data]``. Each clip is read with
:func:`epiflow.datasets.cmu.load_cmu_clip` (cmu31 joints, metres, Z up, floor at z = 0), resampled
from 120 to 30 fps and written as a float32 npz by :func:`epiflow.datasets.cmu.save_motion`.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from epiflow.datasets.cmu import DATA_DIR, load_cmu_clip, save_motion

#: clip -> what it shows (CMU subject 02)
CLIPS = {"02_01": "walk", "02_03": "run/jog", "02_04": "jump, balance"}
FPS = 30.0


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("EPIFLOW_DATA", repo.parent / "shared" / "data")),
                        help="the shared real-data folder holding cmu_mocap/")
    args = parser.parse_args()
    for clip, what in CLIPS.items():
        amc = args.data / "cmu_mocap" / clip.split("_")[0] / f"{clip}.amc"
        motion = load_cmu_clip(amc).resample(FPS)
        out = DATA_DIR / f"{clip}.npz"
        save_motion(motion, out)
        print(f"{clip} ({what}): {motion.n_frames} frames at {FPS:g} fps -> {out} "
              f"({out.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main()
