"""Does the calibration verdict ever call bad cameras good? (issue #12, item 5)

    python benchmarks/calibration_verdict.py [--seeds 3] [--skip real,synthetic]

Every case is calibrated from people with :func:`epiflow.calibration.from_people.
calibrate_from_people` (its default verdict: 95 % bounds from the bundle adjustment's covariance and
a 20-refit bootstrap over frames; :mod:`epiflow.calibration.verdict`), and its cameras compared with
the truth (or, for the real captures, with the lab's or the dataset's calibration):

- true rot: per camera the largest error of its rotation relative to another camera (degrees;
  gauge-free, :func:`epiflow.calibration.compare.rig_errors`), worst camera of the case;
- true pos: camera centre error after the best similarity, as a fraction of the rig's size
  (largest distance between two true centres), worst camera;
- bound rot / bound pos: the verdict's 95 % bounds on the same camera (the one with the worst
  true rotation error);
- verdict: the rig's (good / doubtful / failed), and "bad" when the truth is a large error
  (rotation over 2 deg or position over 5 % of the rig: ``verdict.LARGE_ROTATION_DEG``,
  ``LARGE_POSITION``).

Cases. Synthetic: CMU clips (the packaged 30 fps copies) seen by a ring of cameras at 5 m (f =
1200 px, 1920x1080), the library's detector-error model (:class:`~epiflow.datasets.synthetic.
Corruption`), ``--seeds`` rigs each:
``walk`` (02_01, 4 cameras, 2 px noise, intrinsics given: the good family), ``run 5 cams`` (02_03,
3 px), ``K unknown`` (02_01, focal lengths estimated), ``heavy noise`` (02_01, 8 px), ``few
frames`` (02_01, 12 frames), ``little motion`` (02_04 jump in place, 15 frames), ``standing
still`` (one pose of 02_01 held for 60 frames with 1 cm of sway; motion check relaxed), ``wrong
K`` (02_01, focal lengths given 15 % long) and ``distortion ignored`` (02_01, lenses with k1 =
-0.25 given as distortion-free).
Real: the Pose2Sim demo (MediaPipe 2D, cached by ``benchmarks/calibration.py``) with the lab's
intrinsics and with none, and its shipped OpenPose BODY_25B 2D with the lab's intrinsics, against
the lab calibration; caliscope's 4-webcam session (MediaPipe
Holistic, a person nearly still: motion check relaxed) with caliscope's own intrinsics and with
none, against caliscope's ChArUco calibration; Shelf (person 0's BODY_25 detections picked with
the ground truth) with the dataset's intrinsics and with none, against its calibration.

Summary: bad calibrations called good (target 0), good ones called doubtful or failed, and the
coverage of the 95 % bounds: the fraction of (case, camera) whose true error is within its bound,
over the synthetic cases (rotation and position). Results also in
``benchmarks/out/calibration_verdict/results.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EPIFLOW_DATA", REPO.parent / "shared" / "data"))
OUT = REPO / "benchmarks" / "out" / "calibration_verdict"


@dataclass
class Case:
    """One calibration and how it did."""

    name: str
    family: str
    synthetic: bool
    true_rot: np.ndarray = field(default_factory=lambda: np.zeros(0))
    true_pos: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bound_rot: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bound_pos: np.ndarray = field(default_factory=lambda: np.zeros(0))
    verdict: str = "failed"
    reasons: list = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0
    verdict_seconds: float = 0.0

    @property
    def refused(self) -> bool:
        """No cameras: calibration refused the input (a CalibrationError)."""
        return bool(self.error)

    @property
    def bad(self) -> bool:
        """Cameras with a large error (verdict.LARGE_ROTATION_DEG, LARGE_POSITION)."""
        from epiflow.calibration.verdict import LARGE_POSITION, LARGE_ROTATION_DEG
        if self.refused:
            return False
        return bool(self.true_rot.max() > LARGE_ROTATION_DEG or
                    self.true_pos.max() > LARGE_POSITION)


def per_camera_truth(rig, truth) -> tuple[np.ndarray, np.ndarray]:
    """(rotation_deg (C,), position (C,)): per camera the largest relative-rotation error against
    another camera, and its centre's error after the best similarity / the rig's size."""
    from epiflow.calibration.verdict import rig_size
    from epiflow.models.metrics import rig_errors
    e = rig_errors(rig, truth)
    C = len(truth)
    rot = np.zeros(C)
    for (i, j), r in zip([(i, j) for i in range(C) for j in range(i + 1, C)], e["rotation_deg"]):
        rot[i], rot[j] = max(rot[i], r), max(rot[j], r)
    return rot, np.asarray(e["position_m"]) / rig_size(truth)


def calibrate_case(case: Case, keypoints, truth, intrinsics=None, **options) -> Case:
    """Calibrate ``keypoints`` and fill ``case`` (a CalibrationError is a ``failed`` case);
    keypoints with a P axis (several people) through :func:`epiflow.calibration.
    people_calibration.calibrate_from_several_people`, as ``epiflow calibrate`` does."""
    from epiflow.calibration.camera import CalibrationError
    from epiflow.calibration.from_people import CalibrationConfig
    from epiflow.calibration.people_calibration import calibrate_from_several_people
    from epiflow.calibration.verdict import assess
    t0 = time.perf_counter()
    try:
        result = calibrate_from_several_people(keypoints, intrinsics, None,
                                               CalibrationConfig(**options))
    except CalibrationError as err:
        case.error = str(err)
        case.reasons = [f"refused: {str(err)[:90]}"]
        return case
    case.seconds = time.perf_counter() - t0
    if not case.synthetic:  # the verdict alone, timed again on the same adjustment
        t1 = time.perf_counter()
        assess(result.adjustment, list(result.rig.names), intrinsics_given=intrinsics is not None)
        case.verdict_seconds = time.perf_counter() - t1
    v = result.verdict
    case.true_rot, case.true_pos = per_camera_truth(result.rig, truth)
    case.bound_rot = np.array([c.rotation_deg for c in v.cameras])
    case.bound_pos = np.array([c.position for c in v.cameras])
    case.verdict = v.verdict
    case.reasons = sorted({r.split(":")[0] for c in v.cameras for r in c.reasons})
    return case


# -- synthetic ------------------------------------------------------------------------------------
def _still_motion(clip: str, frames: int, sway_m: float, seed: int):
    """One pose of ``clip`` held for ``frames`` frames, each joint swaying ``sway_m`` (std)."""
    from epiflow.datasets.cmu import load_packaged_clip
    motion = load_packaged_clip(clip)
    rng = np.random.default_rng(seed)
    pose = motion.points[len(motion.points) // 2]
    points = pose[None] + rng.normal(scale=sway_m, size=(frames,) + pose.shape)
    return replace(motion, points=points, name=f"{clip} still")


def _capture(clip, n_cameras, corruption, seed, frames=None, still=False, **rig_options):
    from epiflow.datasets.cmu import load_packaged_clip
    from epiflow.datasets.synthetic import capture_center, make_rig, synthesize
    motion = _still_motion(clip, 60, 0.01, seed) if still else load_packaged_clip(clip)
    if frames:
        motion = motion.frames(0, frames)
    rig = make_rig(n_cameras, target=capture_center(motion), seed=seed, **rig_options)
    return synthesize(motion, rig, corruption, seed=seed + 1)


def _scaled_focal(rig, factor: float):
    from epiflow.calibration.camera import CameraRig
    return CameraRig(c.replace(K=np.diag([factor, factor, 1.0]) @ c.K) for c in rig)


def _no_distortion(rig):
    from epiflow.calibration.camera import CameraRig
    return CameraRig(c.replace(dist=np.zeros(5)) for c in rig)


#: family: (clip, cameras, noise px, frames, still, rig options, intrinsics given as, options)
FAMILIES = {
    "walk": ("02_01", 4, 2.0, None, False, {}, "true", {}),
    "run 5 cams": ("02_03", 5, 3.0, None, False, {}, "true", {}),
    "K unknown": ("02_01", 4, 2.0, None, False, {}, None, {}),
    "heavy noise": ("02_01", 4, 8.0, None, False, {}, "true", {}),
    "few frames": ("02_01", 4, 2.0, 12, False, {}, "true", {}),
    "little motion": ("02_04", 4, 2.0, 15, False, {}, "true", {"min_motion": 0.0}),
    "standing still": ("02_01", 4, 2.0, None, True, {}, "true", {"min_motion": 0.0}),
    "wrong K": ("02_01", 4, 2.0, None, False, {}, "focal x1.15", {}),
    "distortion ignored": ("02_01", 4, 2.0, None, False,
                           {"distortion": [-0.25, 0.0, 0.0, 0.0, 0.0]}, "no distortion", {}),
}


#: the families whose cameras are biased by wrong intrinsics (no spread of the data shows a bias)
MODEL_ERROR = ("wrong K", "distortion ignored")


def synthetic_cases(seeds: int, families: list[str]) -> list[Case]:
    from epiflow.datasets.synthetic import Corruption
    cases = []
    for family in families:
        clip, C, noise, frames, still, rig_options, given, options = FAMILIES[family]
        for seed in range(seeds):
            cap = _capture(clip, C, Corruption(noise_px=noise), seed, frames, still, **rig_options)
            intr = {None: None, "true": cap.rig, "focal x1.15": _scaled_focal(cap.rig, 1.15),
                    "no distortion": _no_distortion(cap.rig)}[given]
            case = Case(f"{family} s{seed}", family, True)
            cases.append(calibrate_case(case, cap.keypoints, cap.rig, intr, **options))
            print_case(cases[-1])
    return cases


# -- real -----------------------------------------------------------------------------------------
def real_cases() -> list[Case]:
    cases = []
    for make in (_pose2sim, _caliscope, _shelf, _shelf_people, _two_person):
        cases += make()
    return cases


def _pose2sim() -> list[Case]:
    from epiflow.calibration.formats import load_rig
    from epiflow.keypoints import load_npz
    cache = REPO / "benchmarks" / "out" / "calibration" / "pose2sim_mediapipe.npz"
    demo = DATA / "pose2sim_demo"
    if not demo.is_dir():
        print(f"Pose2Sim: skipped, {demo} not found")
        return []
    if cache.is_file():
        kp = load_npz(cache)
    else:
        from mediapipe_cache import mediapipe_keypoints
        kp = mediapipe_keypoints(demo / "single_person" / "videos", cache)
    lab = load_rig(demo / "calibration" / "Calib_qualisys.toml")
    cases = [_real(Case("Pose2Sim, lab K", "real", False), kp, lab, lab),
             _real(Case("Pose2Sim, K unknown", "real", False), kp, lab, None)]
    openpose = demo / "openpose_body25b_single_person"
    if openpose.is_dir():  # the 2D shipped with the demo (OpenPose BODY_25B)
        from epiflow.datasets.openpose import read_openpose
        cases.append(_real(Case("Pose2Sim, OpenPose 2D, lab K", "real", False),
                           read_openpose(openpose, joint_set="body25b"), lab, lab))
    return cases


def _caliscope() -> list[Case]:
    from epiflow.calibration.formats import load_rig
    from epiflow.datasets.caliscope import read_caliscope_xy
    root = DATA / "caliscope_4cam"
    if not root.is_dir():
        print(f"caliscope: skipped, {root} not found")
        return []
    rig = load_rig(root / "config.toml")
    kp = read_caliscope_xy(root / "recordings" / "recording_1" / "HOLISTIC" / "xy_HOLISTIC.csv",
                           rig.sizes)
    return [_real(Case("caliscope, own K, motion check relaxed", "real", False), kp, rig, rig,
                  min_motion=0.0),
            _real(Case("caliscope, K unknown, motion check relaxed", "real", False), kp, rig,
                  None, min_motion=0.0)]


def _shelf() -> list[Case]:
    from epiflow.calibration.formats import load_rig
    from epiflow.datasets.shelf import shelf_person_keypoints
    root = DATA / "shelf"
    if not root.is_dir():
        print(f"Shelf: skipped, {root} not found")
        return []
    rig = load_rig(root / "calibration.json")
    kp = shelf_person_keypoints(root, 0)
    return [_real(Case("Shelf person 0, dataset K", "real", False), kp, rig, rig),
            _real(Case("Shelf person 0, K unknown", "real", False), kp, rig, None)]


def _shelf_people() -> list[Case]:
    """Shelf's detections of everyone (several people, unassociated), as ``epiflow calibrate
    --keypoints shelf`` reads them."""
    from epiflow.calibration.formats import load_rig
    from epiflow.datasets.io import load_keypoints
    root = DATA / "shelf"
    if not root.is_dir():
        return []
    rig = load_rig(root / "calibration.json")
    kp = load_keypoints(root, min_cameras=2, people=None)
    return [_real(Case("Shelf several people, dataset K", "real", False), kp, rig, rig),
            _real(Case("Shelf several people, K unknown", "real", False), kp, rig, None)]


def _two_person() -> list[Case]:
    """The Pose2Sim two-person videos' MediaPipe detections, two per camera-frame (cached from
    ``epiflow calibrate --videos pose2sim_demo/multi_person/videos --max-people 2
    --save-keypoints benchmarks/out/two_person/max2_keypoints.npz``)."""
    from epiflow.calibration.formats import load_rig
    from epiflow.datasets.io import load_keypoints
    cache = REPO / "benchmarks" / "out" / "two_person" / "max2_keypoints.npz"
    demo = DATA / "pose2sim_demo"
    if not cache.is_file() or not demo.is_dir():
        print(f"two-person: skipped, {cache} or {demo} not found (make the cache with epiflow "
              f"calibrate --videos {demo}/multi_person/videos --max-people 2 --save-keypoints "
              f"{cache})")
        return []
    lab = load_rig(demo / "calibration" / "Calib_qualisys.toml")
    kp = load_keypoints(cache, people=None)
    return [_real(Case("two-person videos, lab K", "real", False), kp, lab, lab),
            _real(Case("two-person videos, K unknown", "real", False), kp, lab, None)]


def _real(case: Case, kp, truth, intrinsics, **options) -> Case:
    calibrate_case(case, kp, truth, intrinsics, **options)
    print_case(case)
    return case


# -- the table ------------------------------------------------------------------------------------
def _worst(case: Case) -> int:
    return int(np.argmax(case.true_rot)) if len(case.true_rot) else -1


def print_case(case: Case) -> None:
    verdict = f", the verdict alone {case.verdict_seconds:.1f} s" if case.verdict_seconds else ""
    print(f"  {case.name}: {case.verdict} ({case.seconds:.1f} s{verdict})", flush=True)


def row(case: Case) -> str:
    c = _worst(case)
    if c < 0:
        return f"| {case.name} | – | – | – | – | refused (no cameras) | – | {case.reasons[0]} |"
    return (f"| {case.name} | {case.true_rot[c]:.2f} | ±{case.bound_rot[c]:.2f} | "
            f"{100 * case.true_pos.max():.1f} | ±{100 * case.bound_pos.max():.1f} | "
            f"{case.verdict} | {'yes' if case.bad else 'no'} | {', '.join(case.reasons) or '–'} |")


def coverage(cases: list[Case]) -> tuple[float, float, int]:
    """(rotation, position, cameras): the share of cameras whose true error is within its bound."""
    cases = [c for c in cases if len(c.true_rot)]
    if not cases:
        return float("nan"), float("nan"), 0
    rot = np.concatenate([c.true_rot <= c.bound_rot for c in cases])
    pos = np.concatenate([c.true_pos <= c.bound_pos for c in cases])
    return float(rot.mean()), float(pos.mean()), int(len(rot))


def summary(cases: list[Case]) -> dict:
    syn = [c for c in cases if c.synthetic]
    rot, pos, n = coverage(syn)
    done = [c for c in cases if not c.refused]
    return {"cases": len(cases), "refused": [c.name for c in cases if c.refused],
            "bad": sum(c.bad for c in done),
            "bad_called_good": [c.name for c in done if c.bad and c.verdict == "good"],
            "good_called_not_good": [c.name for c in done if not c.bad and c.verdict != "good"],
            "good": sum(not c.bad for c in done),
            "rotation_coverage": rot, "position_coverage": pos, "camera_count": n,
            "coverage_by_family": {f: coverage([c for c in syn if c.family == f])
                                   for f in dict.fromkeys(c.family for c in syn)},
            "coverage_right_intrinsics": coverage([c for c in syn if c.family not in MODEL_ERROR]),
            "verdict_seconds_pose2sim": [round(c.verdict_seconds, 2) for c in cases
                                         if c.name.startswith("Pose2Sim")],
            "calibration_seconds_pose2sim": [round(c.seconds, 2) for c in cases
                                             if c.name.startswith("Pose2Sim")]}


def print_table(cases: list[Case]) -> dict:
    print("\n| case | true rot ° (worst cam) | its 95 % bound ° | true pos % rig (worst) | "
          "bound pos % (max) | verdict | bad (truth) | reasons |")
    print("|---|---|---|---|---|---|---|---|")
    for case in cases:
        print(row(case))
    s = summary(cases)
    n_bad_good, n_good_doubt = len(s["bad_called_good"]), len(s["good_called_not_good"])
    print(f"\nrefused by the input checks (no cameras, nothing to judge): {len(s['refused'])}")
    print(f"bad calibrations (true rotation > 2° or position > 5 % of the rig): {s['bad']} of "
          f"{s['cases'] - len(s['refused'])}; called good: {n_bad_good} (target 0) "
          f"{s['bad_called_good']}")
    print(f"good calibrations called doubtful or failed: {n_good_doubt} of {s['good']} "
          f"{s['good_called_not_good']}")
    print(f"coverage of the 95 % bounds over the synthetic cases ({s['camera_count']} cameras): "
          f"rotation {100 * s['rotation_coverage']:.0f} %, position "
          f"{100 * s['position_coverage']:.0f} % (target 95 %)")
    r, p, n = s["coverage_right_intrinsics"]
    print(f"  without the families whose intrinsics are wrong ({', '.join(MODEL_ERROR)}; {n} "
          f"cameras): rotation {100 * r:.0f} %, position {100 * p:.0f} %")
    print("coverage by synthetic family (rotation / position): " + "; ".join(
        f"{f} {100 * r:.0f} / {100 * p:.0f} %" for f, (r, p, _) in s["coverage_by_family"].items()))
    print(f"verdict time on the Pose2Sim demo (covariance, 20 bootstrap refits, intrinsics check; "
          f"lab K, K unknown, OpenPose lab K): {s['verdict_seconds_pose2sim']} s, beside the whole "
          f"calibration "
          f"with it {s['calibration_seconds_pose2sim']} s in the same run")
    return s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--skip", default="", help="comma-separated: real, synthetic")
    parser.add_argument("--families", default=",".join(FAMILIES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    skip = set(filter(None, args.skip.split(",")))
    cases = []
    if "real" not in skip:
        cases += real_cases()
    if "synthetic" not in skip:
        cases += synthetic_cases(args.seeds, args.families.split(","))
    s = print_table(cases)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps({"summary": s, "cases": [
        {"name": c.name, "verdict": c.verdict, "bad": c.bad, "true_rot": c.true_rot.tolist(),
         "bound_rot": c.bound_rot.tolist(), "true_pos": c.true_pos.tolist(),
         "bound_pos": c.bound_pos.tolist(), "reasons": c.reasons, "error": c.error}
        for c in cases]}, indent=1))


if __name__ == "__main__":
    main()
