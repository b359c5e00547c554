"""Unsynchronized cameras: time offsets and frame rates from the person (issue #12 item 1).

    python benchmarks/sync.py [--skip synthetic,real,videos] [--clips 02_05,02_06]

Offsets come from :func:`epiflow.calibration.sync.synchronize` (coarse: every lag tried by a
fitted fundamental matrix; fine: Sampson distance with each view interpolated in time). Beside
them, the baseline: the peak of the cross-correlation of the 2D keypoint speeds, to one sample
(what Pose2Sim's synchronization does, :func:`~epiflow.calibration.sync.speed_offsets`).

(a) Synthetic: CMU subject 02 clips at 120 fps seen by a 4-camera ring (the true cameras), the
    cameras at 30/60/25/30 fps, fractional offsets and different lengths, 2 px noise and the
    library's detector error model. Offset error in frames of each camera (max over cameras;
    target <= 1/4), offsets found with the cameras unknown and given, and one capture with
    exact 2D (the method's own limit, without the noise); rotation error of the
    cameras from people (true intrinsics given) on the synchronized 2D against the same
    calibration on the truly synchronized capture of the same motion (camera 0's frames).
(b) Real: the Pose2Sim demo's MediaPipe 2D (4 x 100 frames at 60 fps, cached by
    ``benchmarks/mediapipe_cache.py``) cut unsynchronized: late starts, early stops, one camera
    at half rate (every other frame dropped). Offsets (target: within 1/2 frame), cameras from
    people with the lab intrinsics against the lab calibration (target: rotation within 1.5 deg;
    beside it the synchronized, uncut run), and the labels: both runs' 2D on camera 0's frames
    triangulated with the lab cameras, the distance between the two (mm; the labels of the
    synchronized run are the reference).
(c) Videos: the demo's mp4 files cut the same way (OpenCV writes the copies to a temporary
    folder) through ``epiflow calibrate --videos DIR`` with no extra word: offsets read back
    from the written camera TOML.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EPIFLOW_DATA", ROOT.parent / "shared" / "data")).resolve()
DEMO = DATA / "pose2sim_demo"
OUT = ROOT / "benchmarks" / "out" / "calibration"

#: (a) each camera's rate (fps), offset (frames of its own rate) and duration (seconds)
SYN_FPS = (30.0, 60.0, 25.0, 30.0)
SYN_OFFSETS_FRAMES = (0.0, 7.4, -3.25, 2.6)
SYN_SECONDS = (4.0, 3.5, 4.2, 3.0)
#: (b, c) per camera: first frame, stop, step of the 60 fps, 100-frame demo videos
PLANS = {"late starts, early stop, half rate": {"cam01": (5, 100, 1), "cam02": (12, 100, 1),
                                                 "cam03": (0, 80, 1), "cam04": (3, 100, 2)},
         "cam01 late by 20, cam03 half rate": {"cam01": (20, 100, 1), "cam02": (0, 90, 1),
                                               "cam03": (1, 100, 2), "cam04": (10, 100, 1)}}


def _frames(found, truth, fps) -> np.ndarray:
    return np.abs(np.asarray(found) - np.asarray(truth)) * np.asarray(fps)


# -- (a) ------------------------------------------------------------------------------------------
def synthetic(clips: list[str]) -> list[dict]:
    from epiflow.calibration.from_people import calibrate_from_people
    from epiflow.calibration.sync import SyncConfig, speed_offsets, synchronize, to_first_camera
    from epiflow.datasets.cmu import load_cmu_clip
    from epiflow.datasets.synthetic import (Corruption, capture_center, cmu_clip_path, make_rig,
                                            unsynchronized_capture)
    from epiflow.models.metrics import rig_errors
    rows = []
    fps = np.array(SYN_FPS)
    offsets = np.array(SYN_OFFSETS_FRAMES) / fps
    n = np.round(np.array(SYN_SECONDS) * fps).astype(int)
    cases = [(clip, Corruption(noise_px=2.0)) for clip in clips]
    cases.append((clips[-1], Corruption.none()))  # exact 2D: the method's own limit
    for clip, corruption in cases:
        motion = load_cmu_clip(cmu_clip_path(clip, DATA)).to_h36m()
        rig = make_rig(4, target=capture_center(motion), seed=0)
        streams = unsynchronized_capture(motion, rig, fps, offsets, n, corruption, seed=1,
                                         start=1.0)
        synced = unsynchronized_capture(motion, rig, [fps[0]] * 4, [0.0] * 4, [n[0]] * 4,
                                        corruption, seed=1, start=1.0)
        t0 = time.perf_counter()
        found = synchronize(streams)
        seconds = time.perf_counter() - t0
        given = synchronize(streams, rig)
        base = speed_offsets(streams)
        rot = _rotation(to_first_camera(streams, found.offsets), rig)
        ref = _rotation(to_first_camera(synced, [0.0] * 4), rig)
        noise = f"{corruption.noise_px:g} px" if corruption.noise_px else "exact 2D"
        rows.append({"case": f"CMU {clip}, {noise}", "ours": _frames(found.offsets,
                     offsets, fps).max(), "ms": 1000 * np.abs(found.offsets - offsets).max(),
                     "given": _frames(given.offsets, offsets, fps).max(),
                     "baseline": _frames(base, offsets, fps).max(), "rot": rot, "rot_ref": ref,
                     "seconds": seconds})
        print(f"  {clip}: errors (frames) ours {np.round(_frames(found.offsets, offsets, fps), 3)}"
              f", cameras given {np.round(_frames(given.offsets, offsets, fps), 3)}, speeds "
              f"{np.round(_frames(base, offsets, fps), 2)}", flush=True)
    return rows


def _rotation(kp, rig) -> float:
    """Max relative-rotation error (deg) of the cameras from people (true intrinsics given);
    NaN when the calibration refuses the capture (printed)."""
    from epiflow.calibration.camera import CalibrationError
    from epiflow.calibration.from_people import calibrate_from_people
    from epiflow.models.metrics import rig_errors
    try:
        return rig_errors(calibrate_from_people(kp, rig).rig, rig)["rotation_deg_max"]
    except CalibrationError as err:
        print(f"  calibration refused: {str(err)[:120]}")
        return float("nan")


def print_synthetic(rows: list[dict]) -> None:
    print("\n(a) synthetic, 4 cameras at 30/60/25/30 fps, offsets 0/7.4/-3.25/2.6 frames, "
          "lengths 4.0/3.5/4.2/3.0 s; errors in frames of each camera's own rate")
    print(f"| {'capture':22} | offset error, frames (max): ours | ms | cameras given | speeds "
          f"(Pose2Sim-like) | target | rotation deg: ours | synchronized input | ratio | sync s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ok = "PASS" if r["ours"] <= 0.25 else "FAIL"
        print(f"| {r['case']:22} | {r['ours']:.3f} | {r['ms']:.1f} | {r['given']:.3f} | "
              f"{r['baseline']:.2f} | "
              f"<= 0.25 {ok} | {r['rot']:.3f} | {r['rot_ref']:.3f} | "
              f"{r['rot'] / max(r['rot_ref'], 1e-9):.2f} | {r['seconds']:.0f} |")


# -- (b) ------------------------------------------------------------------------------------------
def cut(kp, plan: dict):
    """The demo's (T, C, J, 3) detections cut by ``plan``: CameraStreams and true offsets."""
    from epiflow.calibration.sync import CameraStreams
    cuts = [plan[n] for n in kp.camera_names]
    tracks = tuple(kp.data[a:b:s, c] for c, (a, b, s) in enumerate(cuts))
    fps = [kp.fps / s for _, _, s in cuts]
    truth = np.array([(a - cuts[0][0]) / kp.fps for a, _, _ in cuts])
    return CameraStreams(tracks, fps, kp.camera_names, kp.joint_set, kp.image_size), truth


def labels_mm(lab, kp_a, kp_b) -> tuple[float, float]:
    """Median and 95th percentile distance (mm) between the labels of two (T, C, J, 3) 2D
    sequences, both triangulated with the lab cameras."""
    from epiflow.calibration.triangulation import triangulate_sequence
    a = triangulate_sequence(lab, kp_a, joint_set=kp_a.joint_set).points
    b = triangulate_sequence(lab, kp_b, joint_set=kp_b.joint_set).points
    d = np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1) * 1000
    d = d[np.isfinite(d)]
    return float(np.median(d)), float(np.percentile(d, 95))


def real() -> list[dict]:
    from epiflow.calibration.camera import match_rig
    from epiflow.calibration.formats import load_rig
    from epiflow.calibration.from_people import calibrate_from_people
    from epiflow.calibration.sync import speed_offsets, synchronize, to_first_camera
    from epiflow.models.metrics import rig_errors
    from mediapipe_cache import mediapipe_keypoints
    kp = mediapipe_keypoints(DEMO / "single_person" / "videos", OUT / "pose2sim_mediapipe.npz")
    lab = match_rig(load_rig(DEMO / "calibration" / "Calib_qualisys.toml"), kp.camera_names)[0]
    rows = []
    for name, plan in PLANS.items():
        streams, truth = cut(kp, plan)
        t0 = time.perf_counter()
        found = synchronize(streams)
        seconds = time.perf_counter() - t0
        base = speed_offsets(streams)
        moved = to_first_camera(streams, found.offsets)
        first = plan[kp.camera_names[0]]
        reference = kp.frames(first[0], first[0] + moved.n_frames)   # synchronized, same frames
        rot = rig_errors(calibrate_from_people(moved, lab).rig, lab)["rotation_deg_max"]
        rot_ref = rig_errors(calibrate_from_people(reference, lab).rig, lab)["rotation_deg_max"]
        med, p95 = labels_mm(lab, moved, reference)
        rows.append({"case": name, "ours": _frames(found.offsets, truth, streams.fps).max(),
                     "baseline": np.nanmax(_frames(base, truth, streams.fps)), "rot": rot,
                     "rot_ref": rot_ref, "labels_med": med, "labels_p95": p95,
                     "seconds": seconds})
        print(f"  {name}: errors (frames) ours "
              f"{np.round(_frames(found.offsets, truth, streams.fps), 3)}, speeds "
              f"{np.round(_frames(base, truth, streams.fps), 2)}", flush=True)
    return rows


def print_real(rows: list[dict]) -> None:
    print("\n(b) Pose2Sim demo, MediaPipe 2D cut unsynchronized (lab intrinsics for the cameras)")
    print("| cut | offset error, frames (max): ours | speeds (Pose2Sim-like) | target | "
          "rotation deg vs lab: ours | synchronized run | target | labels vs synchronized run,"
          " mm (median / 95th pct) | sync s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ok = "PASS" if r["ours"] <= 0.5 else "FAIL"
        ok_rot = "PASS" if r["rot"] <= 1.5 else "FAIL"
        print(f"| {r['case']} | {r['ours']:.3f} | {r['baseline']:.1f} | <= 0.5 {ok} | "
              f"{r['rot']:.2f} | {r['rot_ref']:.2f} | <= 1.5 {ok_rot} | "
              f"{r['labels_med']:.1f} / {r['labels_p95']:.1f} | {r['seconds']:.0f} |")


# -- (c) ------------------------------------------------------------------------------------------
def write_cut_videos(folder: Path, plan: dict) -> None:
    """mp4 copies of the demo's videos cut by ``plan`` (OpenCV, mp4v)."""
    import cv2
    folder.mkdir(parents=True, exist_ok=True)
    for name, (a, b, step) in plan.items():
        cap = cv2.VideoCapture(str(DEMO / "single_person" / "videos" / f"{name}.mp4"))
        fps, frames = cap.get(cv2.CAP_PROP_FPS), []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        keep = frames[a:b:step]
        h, w = keep[0].shape[:2]
        out = cv2.VideoWriter(str(folder / f"{name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                              fps / step, (w, h))
        for frame in keep:
            out.write(frame)
        out.release()


def videos() -> dict:
    from epiflow.calibration.formats import time_offsets_from_toml
    name, plan = next(iter(PLANS.items()))
    with tempfile.TemporaryDirectory() as tmp:
        folder, out = Path(tmp) / "videos", Path(tmp) / "cameras.toml"
        write_cut_videos(folder, plan)
        t0 = time.perf_counter()
        command = [shutil.which("epiflow") or "epiflow", "calibrate", "--videos", str(folder),
                   "--out", str(out)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(command, capture_output=True, text=True, cwd=tmp, env=env)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            return {"case": name, "rc": proc.returncode, "error": proc.stderr[-500:]}
        found = time_offsets_from_toml(out.read_text())
    cuts = list(plan.values())
    truth = np.array([(a - cuts[0][0]) / 60 for a, _, _ in cuts])
    fps = np.array([60 / s for _, _, s in cuts])
    return {"case": name, "rc": 0, "offsets": found, "seconds": seconds,
            "errors": _frames(list(found.values()), truth, fps)}


def print_videos(r: dict) -> None:
    print(f"\n(c) epiflow calibrate --videos DIR on the demo's mp4 files cut ({r['case']}), no "
          f"extra word")
    if r["rc"]:
        print(f"FAILED, exit {r['rc']}: {r['error']}")
        return
    print("| camera | time_offset in the TOML, s | error, frames | target |")
    print("|---|---|---|---|")
    for (cam, off), err in zip(r["offsets"].items(), r["errors"]):
        print(f"| {cam} | {off:+.4f} | {err:.3f} | <= 0.5 {'PASS' if err <= 0.5 else 'FAIL'} |")
    print(f"({r['seconds']:.0f} s, MediaPipe detection included)")


def main() -> None:
    import torch
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--skip", default="", help="comma-separated: synthetic, real, videos")
    p.add_argument("--clips", default="02_06,02_07,02_08")
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if "synthetic" not in skip:
        if (DATA / "cmu_mocap").is_dir():
            print_synthetic(synthetic(args.clips.split(",")))
        else:
            print(f"(a) skipped: {DATA / 'cmu_mocap'} not found (set EPIFLOW_DATA)")
    if not DEMO.is_dir():
        print(f"(b, c) skipped: {DEMO} not found (set EPIFLOW_DATA)")
        return
    if "real" not in skip:
        print_real(real())
    if "videos" not in skip:
        print_videos(videos())


if __name__ == "__main__":
    main()
