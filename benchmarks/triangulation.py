"""Triangulation: speed against aniposelib, pseudo-label accuracy, and real-data reprojection.

    python benchmarks/triangulation.py [--points 100000] [--repeats 5] [--skip speed,synthetic,real]

(a) Speed. One 4-camera rig (H1's ``make_rig``, lens distortion 0.05), 100,000 random points in a
    2 × 2 × 2 m volume, projected with distortion, 2 px Gaussian noise. Peer: aniposelib's
    ``CameraGroup.triangulate`` (undistorts with OpenCV, then a JAX-vectorised DLT per point). Its
    first call in a process compiles with JAX ("cold"); later calls reuse it ("warm"). Ours:
    ``triangulate(robust=False)`` (plain) and ``triangulate()`` (robust), full results (points,
    weights, reprojection errors, views), with torch's default threads and with one. Time: best
    of ``--repeats`` runs; the ratio of points per second and the median 3D error are printed.
    ``OMP_WAIT_POLICY`` defaults to PASSIVE here (set it to override): on a shared machine with
    more runnable processes than cores, OpenMP's spinning threads made every torch operation
    5-10x slower (measured: plain 2.6 s with 2 threads vs 0.33 s with 1, at load 9 on 2 CPUs).
(b) Synthetic CMU captures (H1's ``cmu_capture``: the packaged clips 02_01, 02_03, 02_04 × seeds
    0-2, 4 cameras, 3 px noise, 5 % outliers, 2 % left/right swaps): MPJPE of the pseudo-labels
    (``triangulate_sequence`` with the true cameras: as is, and Butterworth-smoothed), of
    plain triangulation, of the EpipolarPose two-view baseline (cameras 0 and 1, world frame),
    and with cameras from people (H3's ``calibrate_from_people``; one global similarity aligns its
    world to the true one). Spearman's ρ between weight and true error (negative = a higher
    weight goes with a lower error).
(c) Real data: the Pose2Sim single-person demo, lab cameras (``Calib_qualisys.toml``) and the
    shipped OpenPose BODY_25B 2D. Per camera, the median reprojection error of our triangulation
    and of Pose2Sim's own (``reference_pose2sim_triangulated.trc``, 21 markers, Y up: Pose2Sim's
    ``zup2yup`` wrote world (X, Y, Z) as (Y, Z, X)), over the 21 joints both have and the
    keypoints of confidence > 0.3 (Pose2Sim's likelihood threshold), and over all keypoints.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP (docstring)

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EPIFLOW_DATA", REPO.parent / "shared" / "data"))


def _best_time(fn, repeats: int):
    """(best wall time in seconds, last result) over ``repeats`` calls."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _anipose_group(rig):
    from aniposelib.cameras import Camera, CameraGroup
    return CameraGroup([Camera(name=c.name, size=c.size, matrix=c.K, rvec=c.rvec, tvec=c.t,
                               dist=c.dist) for c in rig])


# -- (a) speed ----------------------------------------------------------------------------------
def speed(n_points: int, repeats: int) -> None:
    import torch
    from epiflow.calibration.triangulation import triangulate
    from epiflow.datasets.synthetic import make_rig
    rig = make_rig(4, distortion=0.05, seed=0)
    rng = np.random.default_rng(0)
    X = rng.uniform([-1, -1, 0], [1, 1, 2], (n_points, 3))
    uv = rig.project(X) + rng.normal(0, 2.0, (4, n_points, 2))
    group = _anipose_group(rig)
    t0 = time.perf_counter()
    ref = group.triangulate(uv, progress=False)
    cold = time.perf_counter() - t0
    warm, ref = _best_time(lambda: group.triangulate(uv, progress=False), repeats)
    rows = [("aniposelib triangulate (cold)", cold, ref), ("aniposelib triangulate (warm)", warm,
                                                          ref)]
    threads = torch.get_num_threads()
    for n in sorted({threads, 1}, reverse=True):
        torch.set_num_threads(n)
        t, plain = _best_time(lambda: triangulate(rig, uv, robust=False), repeats)
        rows.append((f"epiflow plain ({n} torch thread{'s' * (n > 1)})", t, plain.points))
        t, robust = _best_time(lambda: triangulate(rig, uv), repeats)
        rows.append((f"epiflow robust ({n} torch thread{'s' * (n > 1)})", t, robust.points))
    torch.set_num_threads(threads)

    def med_mm(points):
        return 1000 * float(np.nanmedian(np.linalg.norm(points - X, axis=1)))
    print(f"\n(a) speed: {n_points:,} points, 4 cameras (distortion 0.05, 2 px noise), best of "
          f"{repeats}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    print(f"{'method':36s} {'time ms':>9s} {'points/s':>12s} {'x aniposelib warm':>18s} "
          f"{'x cold':>8s} {'median err mm':>14s}")
    for name, t, pts in rows:
        print(f"{name:36s} {1000 * t:9.1f} {n_points / t:12,.0f} {warm / t:18.1f} "
              f"{cold / t:8.1f} {med_mm(pts):14.3f}")
    print(f"median error, plain / aniposelib: {med_mm(rows[2][2]) / med_mm(ref):.4f}")


# -- (b) synthetic --------------------------------------------------------------------------------
def _aligned(points: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """points moved by the one similarity that best maps them onto truth (a gauge choice)."""
    from epiflow.calibration.similarity import umeyama
    ok = np.isfinite(points).all(-1) & np.isfinite(truth).all(-1)
    s, R, t = umeyama(points[ok], truth[ok])
    return s * points @ R.T + t


def _from_people(cap):
    """Points triangulated with cameras from people, aligned to the true world; None if n/a."""
    try:
        from epiflow.calibration.from_people import calibrate_from_people
    except ImportError:
        return None
    from epiflow.calibration.triangulation import triangulate_sequence
    rig = calibrate_from_people(cap.keypoints, intrinsics=cap.rig).rig
    return _aligned(triangulate_sequence(rig, cap.keypoints).points, cap.points3d)


def _synthetic_rows(cap) -> dict[str, np.ndarray]:
    """Per method, the (T, J) errors in metres on one capture, plus weights."""
    from epiflow.calibration.triangulation import (triangulate, triangulate_sequence,
                                                   triangulate_two_view)
    kp, truth = cap.keypoints, cap.points3d
    seq = triangulate_sequence(cap.rig, kp)
    smooth = triangulate_sequence(cap.rig, kp, smooth="butterworth", cutoff_hz=6.0)
    plain = triangulate(cap.rig, kp.xy.transpose(1, 0, 2, 3), kp.confidence.transpose(1, 0, 2),
                        robust=False)
    two = triangulate_two_view(cap.rig, kp, pair=(0, 1), frame="world")
    people = _from_people(cap)

    def err(points):
        return np.linalg.norm(points - truth, axis=-1)
    return {"robust": err(seq.points), "robust + Butterworth 6 Hz": err(smooth.points),
            "plain (all views)": err(plain.points),
            "two-view baseline (cams 0, 1)": err(two.points),
            "cameras from people (robust)": None if people is None else err(people),
            "weight": seq.weight, "swaps found": (seq.flipped & cap.swapped).sum(),
            "swaps": cap.swapped.sum(), "false flips": (seq.flipped & ~cap.swapped).sum()}


def synthetic() -> None:
    from scipy.stats import spearmanr
    from epiflow.datasets.synthetic import Corruption, cmu_capture
    corruption = Corruption(noise_px=3.0, outlier_fraction=0.05, swap_fraction=0.02)
    caps = [cmu_capture(clip, n_cameras=4, corruption=corruption, seed=seed)
            for seed in range(3) for clip in ("02_01", "02_03", "02_04")]
    rows = [_synthetic_rows(cap) for cap in caps]
    print(f"\n(b) synthetic CMU captures: {len(caps)} (3 clips x 3 seeds), 4 cameras, 3 px noise, "
          f"5% outliers, 2% left/right swaps; {sum(len(c.points3d) for c in caps)} frames")
    print(f"{'labels':36s} {'MPJPE mm':>9s} {'median mm':>10s} {'labelled %':>11s}")
    for name in ("robust", "robust + Butterworth 6 Hz", "plain (all views)",
                 "two-view baseline (cams 0, 1)", "cameras from people (robust)"):
        if rows[0][name] is None:
            print(f"{name:36s} {'n/a (calibration not available)':>32s}")
            continue
        e = np.concatenate([r[name].ravel() for r in rows])
        print(f"{name:36s} {1000 * np.nanmean(e):9.2f} {1000 * np.nanmedian(e):10.2f} "
              f"{100 * np.isfinite(e).mean():11.1f}")
    e = np.concatenate([r["robust"].ravel() for r in rows])
    w = np.concatenate([r["weight"].ravel() for r in rows])
    ok = np.isfinite(e)
    rho = spearmanr(w[ok], e[ok]).statistic
    print(f"Spearman rho(weight, error) = {rho:.3f} over {ok.sum()} labels "
          f"(negative: higher weight, lower error)")
    print(f"left/right swaps found {sum(r['swaps found'] for r in rows)} of "
          f"{sum(r['swaps'] for r in rows)}, false flips {sum(r['false flips'] for r in rows)}")


# -- (c) real data --------------------------------------------------------------------------------
def read_trc(path: Path) -> tuple[list[str], np.ndarray]:
    """Marker names and (T, M, 3) positions of a TRC file (as written, metres)."""
    lines = path.read_text().splitlines()
    names = [n for n in lines[3].split("\t")[2:] if n.strip()]
    rows = [list(map(float, ln.split("\t")[2:2 + 3 * len(names)]))
            for ln in lines[5:] if ln.strip()]
    return names, np.asarray(rows).reshape(len(rows), len(names), 3)


#: Pose2Sim's BODY_25B marker names → ours (its Neck and Head are BODY_25B's UpperNeck, HeadTop)
_TRC_TO_BODY25B = {"Neck": "UpperNeck", "Head": "HeadTop"}


def real() -> None:
    from epiflow.calibration.formats import load_rig
    from epiflow.calibration.camera import match_rig
    from epiflow.calibration.triangulation import triangulate_sequence
    from epiflow.datasets.openpose import read_openpose
    from epiflow.skeleton import get_joint_set
    demo = DATA / "pose2sim_demo"
    if not demo.is_dir():
        print(f"\n(c) real data: skipped, {demo} not found (set EPIFLOW_DATA)")
        return
    kp = read_openpose(demo / "openpose_body25b_single_person", joint_set="body25b")
    rig = match_rig(load_rig(demo / "calibration" / "Calib_qualisys.toml"), kp.camera_names)[0]
    names, trc = read_trc(demo / "reference_pose2sim_triangulated.trc")
    js = get_joint_set("body25b")
    idx = [js.index(_TRC_TO_BODY25B.get(n, n)) for n in names]
    theirs = trc[..., [2, 0, 1]]  # TRC (Y, Z, X) of the world → world (X, Y, Z), Z up
    t0 = time.perf_counter()
    ours = triangulate_sequence(rig, kp).points[:, idx]
    elapsed = time.perf_counter() - t0
    xy, conf = kp.xy[:, :, idx].transpose(1, 0, 2, 3), kp.confidence[:, :, idx].transpose(1, 0, 2)
    T = min(len(theirs), len(ours))
    err_ours = rig.reprojection_error(ours[:T], xy[:, :T])
    err_theirs = rig.reprojection_error(theirs[:T], xy[:, :T])
    print(f"\n(c) Pose2Sim demo, {T} frames, lab cameras, OpenPose BODY_25B, {len(idx)} joints "
          f"both have; ours in {elapsed:.2f} s")
    print(f"{'camera':8s} {'ours px':>8s} {'Pose2Sim px':>12s} {'ours/P2S':>9s}   "
          f"{'(all keypoints: ours':>21s} {'Pose2Sim)':>10s}")
    for c, name in enumerate(rig.names):
        sel = conf[c, :T] > 0.3
        a, b = np.nanmedian(err_ours[c][sel]), np.nanmedian(err_theirs[c][sel])
        a_all, b_all = np.nanmedian(err_ours[c]), np.nanmedian(err_theirs[c])
        print(f"{name:8s} {a:8.2f} {b:12.2f} {a / b:9.2f}   {a_all:21.2f} {b_all:10.2f}")
    print("sensitivity to the gate (default 20 px), median px per camera, confidence > 0.3:")
    for gate in (15.0, 20.0, 25.0, 30.0):
        err = rig.reprojection_error(triangulate_sequence(rig, kp, gate_px=gate).points[:T, idx],
                                     xy[:, :T])
        print(f"  gate {gate:4.0f} px: " + "  ".join(
            f"{np.nanmedian(err[c][conf[c, :T] > 0.3]):6.2f}" for c in range(len(rig))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip", default="", help="comma-separated: speed, synthetic, real")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if "speed" not in skip:
        speed(args.points, args.repeats)
    if "synthetic" not in skip:
        synthetic()
    if "real" not in skip:
        real()


if __name__ == "__main__":
    main()
