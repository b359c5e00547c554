"""Two people, four lab cameras: labels per person against today's single-person path (issue 11).

    python benchmarks/two_person.py [--redetect] [--frames N] [--skip-cameras]
                                    [--picture docs/images/two_person.png] [--picture-frame 50]

The Pose2Sim two-person demo (``multi_person/videos/cam01..04.mp4``, 100 frames, portrait, two
people moving around each other) with the lab's marker-based calibration ``Calib_qualisys.toml``
(``cam_01..04``, matched by name). The calibration is for 1088x1920 images; these four videos
decode at 1088x1920 (the single-person ones' cam01/cam02 at 1080x1920); the cameras are fitted to
the videos' sizes by the rule ``run`` and ``triangulate`` use (``fit_sizes``: a codec's crop of
up to 16 px keeps K, with a warning, which is printed).

(a) Ours: ``MultiPersonPoseDetector(max_people=4)`` on every frame of every camera (BlazePose
    33, mapped to h36m17 as the pipeline's labels are), then ``triangulate_people`` with the
    lab cameras. (b) Today's path: MediaPipe's single-person pose (``detect_videos``) and
    ``triangulate_sequence`` with the lab cameras. Both detections are cached under
    ``benchmarks/out/two_person/`` (``--redetect`` redoes them; about a minute of CPU).

One row per person (for (b), the one person it has), columns:

- labelled: share of the frames with a 3D label (pelvis placed), %;
- jump: the largest pelvis displacement between consecutive labelled frames, metres, and the
  number of those steps above 0.25 m (an identity swap moves a pelvis by the people's distance);
- per camera: the median reprojection error of the person's detections in that camera (the
  person's 2D in that view against the 3D label projected, over the joints used, pixels; for
  (b) the one detection of the camera, whoever MediaPipe followed) and the share of the labelled
  joints whose label used the view, %.

(c) Cameras from the two people (no calibration given): the library path,
    ``calibrate_from_several_people`` (``epiflow.calibration.people_calibration``, what
    ``epiflow calibrate`` and ``epiflow run`` do without cameras) on the detector's slots: per
    camera pair an essential matrix from all pairings of the two cameras' detections pooled,
    per-frame groups under those, people linked through time, then the bundle adjustment on both
    people stacked as frames; with the lab intrinsics and with intrinsics unknown. Rotation
    error per camera pair against the lab (degrees; ``epiflow.models.metrics.rig_errors``, the
    comparison ``benchmarks/calibration.py`` uses); target <= 1.5 deg. Reference rows (not
    methods): the same calibration on the people of the lab association (which used the lab
    cameras), on each person alone, and on the detector's one person in the single-person demo
    videos (the same cameras; cached, ``--redetect``): the detector's 2D against the scene's.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/triangulation.py

import numpy as np  # noqa: E402

from epiflow.calibration.people import person_detections  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EPIFLOW_DATA", REPO.parent / "shared" / "data"))
DEMO = DATA / "pose2sim_demo"
VIDEOS = DEMO / "multi_person" / "videos"
LAB = DEMO / "calibration" / "Calib_qualisys.toml"
OUT = REPO / "benchmarks" / "out" / "two_person"
#: the issue's limits
MIN_LABELLED_PCT = 90.0
MAX_JUMP_M = 0.25
MAX_ROTATION_DEG = 1.5


# -- detections ---------------------------------------------------------------------------------
def detect_people(videos: Path, frames: int | None = None, max_people: int = 4):
    """(detections (T, C, P, 33, 3) blazepose33 pixels + confidence, camera names, sizes (C, 2)
    (w, h) pixels): ``MultiPersonPoseDetector`` on frames ``0:frames`` of every video, tracks
    reset per camera."""
    from epiflow.detection.detectors import list_videos, read_frames, video_info
    from epiflow.detection.tracking import MultiPersonPoseDetector
    detector = MultiPersonPoseDetector(max_people=max_people)
    paths = list_videos(videos)
    out = []
    for path in paths:
        detector.reset()
        out.append(detector(read_frames(path, 0, frames)))
    return (np.stack(out, axis=1), tuple(p.stem for p in paths),
            np.array([video_info(p).size for p in paths]))


def cached_people(redetect: bool):
    """:func:`detect_people` on all frames, from ``OUT/people.npz`` unless ``redetect``."""
    cache = OUT / "people.npz"
    if cache.is_file() and not redetect:
        z = np.load(cache)
        return z["detections"], tuple(z["camera_names"].tolist()), z["sizes"]
    t0 = time.perf_counter()
    det, names, sizes = detect_people(VIDEOS)
    print(f"multi-person detector on {det.shape[0]} frames x {det.shape[1]} cameras: "
          f"{time.perf_counter() - t0:.1f} s; cached in {cache}")
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(cache, detections=det, camera_names=np.array(names), sizes=sizes)
    return det, names, sizes


def cached_single(redetect: bool):
    """MediaPipe's single-person :class:`Keypoints` (T, C, 33, 3) of the videos, cached."""
    from mediapipe_cache import mediapipe_keypoints
    return mediapipe_keypoints(VIDEOS, OUT / "mediapipe.npz", redetect)


def cached_one_person(redetect: bool):
    """:class:`Keypoints` (T, C, 33, 3) of ``MultiPersonPoseDetector(max_people=1)`` on the
    single-person demo videos (for the reference row of (c)), cached in ``OUT/one_person.npz``."""
    from epiflow.keypoints import Keypoints, load_npz, save_npz
    cache = OUT / "one_person.npz"
    if cache.is_file() and not redetect:
        return load_npz(cache)
    det, names, sizes = detect_people(DEMO / "single_person" / "videos", max_people=1)
    kp = Keypoints(det[:, :, 0], "blazepose33", names, sizes, None)
    OUT.mkdir(parents=True, exist_ok=True)
    save_npz(kp, cache)
    return kp


# -- labels and their table ----------------------------------------------------------------------
def lab_rig(names, sizes):
    """(the lab cameras matched to ``names`` and fitted to the videos' ``sizes`` (C, 2), the
    warnings), by the rules ``triangulate`` and ``run`` use."""
    from epiflow.calibration.camera import match_rig
    from epiflow.calibration.formats import load_rig
    from epiflow.calibration.from_people import fit_sizes
    rig, warnings = match_rig(load_rig(LAB), names, str(LAB), by_order=True)
    rig, more = fit_sizes(rig, sizes, str(LAB))
    return rig, warnings + more


def label_people(rig, detections):
    """:func:`triangulate_people` of detections (T, C, P, 33, 3) blazepose33, mapped to h36m17
    (the pipeline's label joints)."""
    from epiflow.calibration.people import triangulate_people
    from epiflow.skeleton import map_to_h36m
    return triangulate_people(rig, map_to_h36m(detections, "blazepose33", confidence=True),
                              "h36m17")


def pelvis_jumps(points3d: np.ndarray) -> np.ndarray:
    """(S,) metres: the pelvis displacement between consecutive labelled frames of one person's
    h36m17 labels (T, 17, 3) (across gaps too: a swap during a gap still shows)."""
    pelvis = points3d[:, 0]
    pelvis = pelvis[np.isfinite(pelvis).all(-1)]
    return np.linalg.norm(np.diff(pelvis, axis=0), axis=-1)


def person_row(name: str, rig, points3d, keypoints, views) -> dict:
    """The table's numbers for one person: labels (T, 17, 3) metres, its 2D (T, C, 17, 3)
    pixels, views (T, C, 17) bool used by each label."""
    from epiflow.calibration.triangulation import camera_shares
    T = len(points3d)
    labelled = np.isfinite(points3d).all(-1)                               # (T, J)
    proj = np.moveaxis(rig.project(np.nan_to_num(points3d, nan=1e6)), 0, 1)  # (T, C, J, 2)
    seen = np.nan_to_num(keypoints[..., 2]) > 0
    err = np.linalg.norm(keypoints[..., :2] - proj, axis=-1)
    err = np.where(seen & labelled[:, None], err, np.nan)
    with np.errstate(all="ignore"):
        median = [float(np.nanmedian(e)) if np.isfinite(e).any() else np.nan
                  for e in np.moveaxis(err, 1, 0)]
    jumps = pelvis_jumps(points3d)
    return {"name": name, "labelled_pct": 100 * np.isfinite(points3d[:, 0]).all(-1).mean(),
            "frames": T, "max_jump_m": float(jumps.max(initial=0)),
            "jumps_over": int((jumps > MAX_JUMP_M).sum()), "median_px": median,
            "used_pct": (100 * camera_shares(views, seen, labelled)).tolist()}


def people_rows(rig, detections):
    """(rows, warnings, PeopleResult) of ours: one row per person found."""
    from epiflow.skeleton import map_to_h36m
    res = label_people(rig, detections)
    h36m = map_to_h36m(detections, "blazepose33", confidence=True)
    rows = [person_row(f"ours, person {pid}", rig, res.points3d[:, n],
                       person_detections(h36m, res.assignment, n), res.views[:, n])
            for n, pid in enumerate(res.person_ids)]
    return rows, list(res.warnings), res


def single_row(rig, keypoints):
    """(row, warnings) of today's path: MediaPipe single-person + ``triangulate_sequence``."""
    from epiflow.calibration.triangulation import (camera_shares, dropped_camera_warnings,
                                                   triangulate_sequence)
    kp = keypoints.to_h36m()
    tri = triangulate_sequence(rig, kp)
    row = person_row("today: MediaPipe 1 person", rig, tri.points, kp.data, tri.views)
    labelled = np.isfinite(tri.points).all(-1)
    shares = camera_shares(tri.views, kp.data[..., 2] > 0, labelled)
    return row, dropped_camera_warnings(rig.names, shares)


def print_table(rows: list[dict], names) -> None:
    cams = "".join(f" {n:>15s}" for n in names)
    print(f"\n{'who':28s} {'labelled':>8s} {'max jump':>8s} {'>0.25m':>6s}{cams}")
    print(f"{'':28s} {'%':>8s} {'m':>8s} {'steps':>6s}"
          + " {:>15s}".format("median px/used%") * len(names))
    for r in rows:
        cells = "".join(f" {px:8.1f} /{u:4.0f}%" for px, u in zip(r["median_px"], r["used_pct"]))
        print(f"{r['name']:28s} {r['labelled_pct']:8.1f} {r['max_jump_m']:8.3f} "
              f"{r['jumps_over']:6d}{cells}")


def verdict(rows: list[dict]) -> str:
    ours = [r for r in rows if r["name"].startswith("ours")]
    two = sorted(ours, key=lambda r: -r["labelled_pct"])[:2]
    ok = (len(two) == 2 and all(r["labelled_pct"] >= MIN_LABELLED_PCT and r["jumps_over"] == 0
                                for r in two))
    return (f"target (two people labelled in >= {MIN_LABELLED_PCT:.0f} % of frames, no pelvis "
            f"step > {MAX_JUMP_M} m): {'PASS' if ok else 'FAIL'}")


# -- the picture --------------------------------------------------------------------------------
def draw_picture(path: Path, rig, detections, res, names, frame: int) -> None:
    """Frame ``frame`` of the four videos: each person's 2D and reprojected 3D in its colour."""
    from epiflow.detection.detectors import list_videos, read_frames
    from epiflow.skeleton import map_to_h36m
    from epiflow.viz import plot_people_reprojections, save_png
    h36m = map_to_h36m(detections[frame], "blazepose33", confidence=True)   # (C, P, J, 3)
    N = len(res.person_ids)
    obs = np.stack([person_detections(h36m[None], res.assignment[frame:frame + 1], n)[0]
                    for n in range(N)], axis=1)                               # (C, N, J, 3)
    rep = rig.project(res.points3d[frame])                                    # (C, N, J, 2)
    images = [read_frames(p, frame, frame + 1)[0] for p in list_videos(VIDEOS)]
    fig = plot_people_reprojections(obs, rep, rig.sizes, names, res.person_ids, "h36m17",
                                    images, title=f"two people, lab cameras, frame {frame}: "
                                    f"2D (solid) and 3D reprojected (dashed), one colour each")
    print(f"picture: {save_png(fig, path, dpi=80)}")


# -- (c) cameras from the two people -------------------------------------------------------------
def library_association(detections, lab) -> tuple[np.ndarray, object]:
    """(order (T, C, 2): the slot of each of the two people the library found without cameras
    in every camera-frame, -1 none; the :class:`PeopleWithoutCameras`), from the 2D alone (the
    lab's intrinsics only turn pixels into rays)."""
    from epiflow.calibration.people_calibration import associate_without_cameras
    found = associate_without_cameras(lab, detections, "blazepose33")
    T, C, P = found.assignment.shape
    order = np.full((T, C, 2), -1)
    for n in range(min(2, found.n_people)):
        t, c, p = np.nonzero(found.assignment == n)
        order[t, c, n] = p
    return order, found


def agreement(order: np.ndarray, assignment: np.ndarray) -> tuple[float, float]:
    """(share (%) of the camera-frames where the lab association (``assignment`` (T, C, P),
    people 0 and 1) has both people in which ``order`` (T, C, 2; -1 none) places both too; the
    share (%) of those where the two put both people in the same slots, up to which person is
    called 0)."""
    T, C, _ = order.shape
    lab = np.full((T, C, 2), -1)
    for n in range(2):
        t, c, p = np.nonzero(assignment == n)
        lab[t, c, n] = p
    both = (lab >= 0).all(-1)
    placed = both & (order >= 0).all(-1)
    same = (lab == order).all(-1)
    flipped = (lab == order[..., ::-1]).all(-1)
    k = int(flipped[placed].sum() > same[placed].sum())
    return 100 * float(placed.sum() / max(both.sum(), 1)), \
        100 * float([same, flipped][k][placed].mean())


def _calibration_row(label: str, keypoints, lab, intrinsics=None, several: bool = False) -> None:
    """Calibrate ``keypoints`` (``intrinsics``: the lab's, or None = unknown; ``several``: the
    library's cameras-from-several-people path on a P axis) and print the rotation errors of
    every camera pair against the lab."""
    from epiflow.calibration.camera import CalibrationError
    from epiflow.calibration.from_people import calibrate_from_people
    from epiflow.calibration.people_calibration import calibrate_from_several_people
    from epiflow.models.metrics import rig_errors
    t0 = time.perf_counter()
    try:
        solve = calibrate_from_several_people if several else calibrate_from_people
        rig = solve(keypoints, intrinsics).rig
    except CalibrationError as err:
        print(f"  {label:40s} failed:\n      {err}")
        return
    e = rig_errors(rig, lab)
    pairs = " ".join(f"{d:5.2f}" for d in e["rotation_deg"])
    verdict = "PASS" if e["rotation_deg_max"] <= MAX_ROTATION_DEG else "FAIL"
    print(f"  {label:40s} {pairs}  {e['rotation_deg_max']:5.2f} {e['baseline_deg_max']:6.2f} "
          f"{time.perf_counter() - t0:5.1f}  {verdict}")


def cameras_from_people(detections, names, lab, assignment, redetect: bool = False) -> None:
    """(c): cameras recovered from both people without the lab's extrinsics, against the lab:
    the library path (``calibrate_from_several_people`` on the detections' P axis, as
    ``epiflow calibrate`` and ``epiflow run`` without cameras), with the lab's intrinsics and
    without; beside them, for reference, the same calibration on the lab association's people
    (``assignment`` (T, C, P) of :func:`triangulate_people`, which used the lab cameras), on
    each person alone, and on the detector's one person in the one-person videos."""
    from epiflow.keypoints import Keypoints
    T, C = detections.shape[:2]
    order, found = library_association(detections, lab)
    print(f"\n(c) cameras from the two people ({T} frames; extrinsics unknown)")
    for p in found.pairs:
        print(f"  {p['cameras'][0]}-{p['cameras'][1]}: {p['pooled']} observations pooled over "
              f"all pairings of the two cameras' detections, {p['inliers']} essential-matrix "
              f"inliers ({100 * p['inlier_share']:.0f} %)")
    placed, agree = agreement(order, assignment)
    print(f"  people found without cameras: {found.n_people} (frames each "
          f"{found.frames.tolist()}); of the camera-frames where the lab association has both "
          f"people, this one places both in {placed:.0f} %, in the same slots in {agree:.0f} %")
    lab_people = np.stack([person_detections(detections, assignment, n) for n in range(2)], 2)

    def kp(data):
        return Keypoints(data, "blazepose33", tuple(names), lab.sizes, None)
    pairs = " ".join(f"{names[i][-2:]}-{names[j][-2:]}" for i in range(C) for j in range(i + 1, C))
    print(f"  {'2D used':40s} {pairs}  max   basel.  sec   target <= {MAX_ROTATION_DEG} deg")
    _calibration_row("library, lab intrinsics", kp(detections), lab, lab, several=True)
    _calibration_row("library, intrinsics unknown", kp(detections), lab, None, several=True)
    _calibration_row("ref: both, lab association, lab intr.", kp(np.concatenate(
        [lab_people[:, :, 0], lab_people[:, :, 1]])), lab, lab)
    for n in range(2):
        _calibration_row(f"ref: person {n} alone, lab association", kp(lab_people[:, :, n]),
                         lab, lab)
    one = cached_one_person(redetect).frames(0, T)
    rig, _ = lab_rig(one.camera_names, one.image_size)
    _calibration_row("ref: one-person videos (same cameras)", one, rig, rig)


def main(argv=None) -> None:
    from epiflow.cli import non_negative_int, positive_int
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redetect", action="store_true", help="redo the cached detections")
    ap.add_argument("--frames", type=positive_int, default=None, help="only the first N frames")
    ap.add_argument("--skip-cameras", action="store_true", help="skip (c)")
    ap.add_argument("--picture", type=Path, default=None, help="write the picture here (png)")
    ap.add_argument("--picture-frame", type=non_negative_int, default=50)
    args = ap.parse_args(argv)
    if not VIDEOS.is_dir():
        raise SystemExit(f"{VIDEOS} not found (set EPIFLOW_DATA to the shared data folder)")
    det, names, sizes = cached_people(args.redetect)
    single = cached_single(args.redetect)
    det, single = det[:args.frames], single.frames(0, args.frames)
    if args.picture and args.picture_frame >= len(det):
        ap.error(f"--picture-frame: expected a frame below {len(det)}, got {args.picture_frame}")
    rig, warnings = lab_rig(names, sizes)
    for w in warnings:
        print("lab cameras:", w)
    t0 = time.process_time()
    rows, people_warnings, res = people_rows(rig, det)
    seconds = time.process_time() - t0
    row, single_warnings = single_row(rig, single)
    print(f"\n{det.shape[0]} frames x {det.shape[1]} cameras, lab calibration; association + "
          f"triangulation {seconds:.1f} s CPU")
    print_table(rows + [row], names)
    print(verdict(rows))
    for w in people_warnings:
        print("ours:", w)
    for w in single_warnings:
        print("today:", w)
    if args.picture:
        draw_picture(args.picture, rig, det, res, names, args.picture_frame)
    if not args.skip_cameras:
        cameras_from_people(det, names, rig, res.assignment, args.redetect)


if __name__ == "__main__":
    main()
