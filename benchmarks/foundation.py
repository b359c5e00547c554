"""The foundation's reference figures, measured on the shared real data.

    python benchmarks/foundation.py [--data ../shared/data]

1. The Pose2Sim demo's two calibration files (Qualisys ``Calib.qca.txt``, camera-to-world in mm
   with pixels x 64, and the converted ``Calib_qualisys.toml``): camera centres (mm), rotations
   (deg), focal lengths and principal points (px) between the two readings of each camera.
2. CMU subject 02's walk (``02_01.amc``) through forward kinematics: the spread (max - min over
   frames) of every bone's length, and the distance the root travels on the floor.
3. PSS@50 and PSS@100 of noisy predictions against their ground truth (the CMU walk and run in
   h36m17, Gaussian noise per joint of 10, 30 and 60 mm), beside MPJPE and P-MPJPE.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EPIFLOW_DATA", REPO.parent / "shared" / "data"))


def calibration_files(data: Path) -> None:
    """Agreement of the two Pose2Sim calibration files, camera by camera."""
    from epiflow.calibration.formats import load_rig
    calib = data / "pose2sim_demo" / "calibration"
    qca, toml = load_rig(calib / "Calib.qca.txt"), load_rig(calib / "Calib_qualisys.toml")
    print(f"\n1. {calib.name}/Calib.qca.txt vs Calib_qualisys.toml")
    print(f"{'camera':8s} {'centre mm':>10s} {'rotation deg':>13s} {'focal px':>9s} {'pp px':>7s}")
    for a, b in zip(qca, toml):
        rot = np.degrees(Rotation.from_matrix(a.R @ b.R.T).magnitude())
        print(f"{a.name:8s} {1000 * np.linalg.norm(a.center - b.center):10.2e} {rot:13.2e} "
              f"{np.abs(a.K[[0, 1], [0, 1]] - b.K[[0, 1], [0, 1]]).max():9.2e} "
              f"{np.abs(a.K[:2, 2] - b.K[:2, 2]).max():7.2e}")


def cmu_bones(data: Path) -> None:
    """Bone-length spread over the CMU walk, and how far it walks."""
    from epiflow.datasets.cmu import load_cmu_clip
    from epiflow.skeleton import CMU31
    walk = load_cmu_clip(data / "cmu_mocap" / "02" / "02_01.amc")
    P = walk.points
    L = np.stack([np.linalg.norm(P[:, a] - P[:, b], axis=-1) for a, b in CMU31.bones], 1)
    spread = np.ptp(L, axis=0)
    travel = np.linalg.norm(P[-1, 0, :2] - P[0, 0, :2])
    print(f"\n2. CMU 02_01 ({len(P)} frames at {walk.fps:g} fps, {len(CMU31.bones)} bones): "
          f"bone-length spread max {spread.max():.1e} m (median {np.median(spread):.1e} "
          f"m); bones {1000 * L[0].min():.0f}-{1000 * L[0].max():.0f} mm; the root travels "
          f"{travel:.2f} m")


def pss_figures(data: Path) -> None:
    """PSS of noisy predictions against the truth."""
    from epiflow.datasets.cmu import load_cmu_clip
    from epiflow.models.metrics import mpjpe, p_mpjpe, pss
    clips = [load_cmu_clip(data / "cmu_mocap" / "02" / f"02_{i:02d}.amc").to_h36m()
             for i in (1, 3)]
    gt = np.concatenate([c.points for c in clips])
    gt = gt - gt[:, :1]
    rng = np.random.default_rng(0)
    print(f"\n3. PSS on {len(gt)} poses of CMU 02_01 + 02_03 (h36m17, root-relative)")
    print(f"{'noise mm':>8s} {'MPJPE mm':>9s} {'P-MPJPE mm':>11s} {'PSS@50':>7s} {'PSS@100':>8s}")
    for sigma in (0.0, 0.01, 0.03, 0.06):
        pred = gt + rng.normal(0, sigma, gt.shape)
        print(f"{1000 * sigma:8.0f} {1000 * mpjpe(pred, gt):9.1f} {1000 * p_mpjpe(pred, gt):11.1f} "
              f"{pss(pred, gt, k=50):7.3f} {pss(pred, gt, k=100):8.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"no shared data at {args.data}: pass --data or set EPIFLOW_DATA")
    calibration_files(args.data)
    cmu_bones(args.data)
    pss_figures(args.data)


if __name__ == "__main__":
    main()
