"""Monocular 3D on real video: the four Pose2Sim demo videos, each predicted alone (issue 14).

    python benchmarks/real_video.py [--configs configs/real_video_mlp.toml ...] [--redetect]
                                    [--retrain] [--json out.json]

For every recipe given (default: the label-free ``configs/cmu_selfsup_mlp.toml`` as it was, and
``configs/real_video_mlp.toml``, the recipe ``predict`` should use), the model is trained (on CMU
pseudo-labels only: never on the demo videos, their 2D or anything triangulated from them; cached
under ``benchmarks/out/real_video/<recipe>/``, ``--retrain`` redoes it) and then applied the way
``epiflow predict --video camXX.mp4 --calibration Calib_qualisys.toml`` applies it
(:func:`epiflow.models.predict.predict_video`), to each video alone, with adaptation (the
default: global position alignment and test-time optimisation on the video's own 2D) and without
(``--no-adapt``). MediaPipe's 2D is detected once and cached (``--redetect``).

The reference: the shipped OpenPose BODY_25B 2D of the same trial triangulated with the lab's
marker-based calibration (``triangulate_sequence``), mapped to the canonical joints. Scored per
camera in that camera's frame, root-relative at the mid-hip, on the 12 arm and leg joints
(shoulders, elbows, wrists, hips, knees, ankles), over the frames both have: MPJPE and P-MPJPE
(Procrustes: rotation, scale, translation per frame), millimetres.

Floor: MediaPipe's 2D of all four videos triangulated together with the lab calibration
(:func:`multiview_floor`), scored alike: not a monocular result but about the best a model of
MediaPipe's 2D can be expected to reach against an OpenPose reference (the two detectors place
hips, shoulders and knees differently, and MediaPipe errs on this fast motion).

Peer: MediaPipe's own 3D (``pose_world_landmarks``: metres, origin at the mid-hip, axes of the
camera) on the same videos, scored alike.

A second table scores the same models on real 2D that is not the test (``--demo-only`` skips
it): Shelf's OpenPose detections against its 3D ground truth (actors 1-3, each of the 5 cameras
alone) and caliscope's MediaPipe 2D against caliscope's own triangulation (the two cameras that
see the whole body), so that a change made for the demo shows whether it holds elsewhere. Published context: EpipolarPose's self-supervised
model, 76.6 mm MPJPE on Human3.6M, in its own domain (not this data).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EPIFLOW_DATA", REPO.parent / "shared" / "data"))
DEMO = DATA / "pose2sim_demo"
VIDEOS = DEMO / "single_person" / "videos"
LAB = DEMO / "calibration" / "Calib_qualisys.toml"
OUT = REPO / "benchmarks" / "out" / "real_video"
CAMERAS = ("cam01", "cam02", "cam03", "cam04")
LIMBS = ("l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
         "l_hip", "l_knee", "l_ankle", "r_hip", "r_knee", "r_ankle")
DEFAULT_CONFIGS = ("configs/cmu_selfsup_mlp.toml", "configs/real_video_mlp.toml")
PUBLISHED_EPIPOLARPOSE_MM = 76.6
TARGET_MPJPE, TARGET_PMPJPE = 70.0, 50.0


def detections(camera: str, redetect: bool = False) -> dict:
    """MediaPipe on one demo video, cached: ``keypoints (T, 33, 3)`` pixels + visibility (what
    ``predict_video``'s detector returns) and ``world (T, 33, 3)`` its 3D world landmarks."""
    cache = OUT / f"{camera}_mediapipe.npz"
    if cache.is_file() and not redetect:
        return dict(np.load(cache))
    import mediapipe as mp

    from epiflow.detection.detectors import read_frames
    frames = read_frames(VIDEOS / f"{camera}.mp4")
    h, w = frames.shape[1:3]
    kp = np.full((len(frames), 33, 3), np.nan)
    kp[..., 2] = 0
    world = np.full((len(frames), 33, 3), np.nan)
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1,
                                min_detection_confidence=0.5,
                                min_tracking_confidence=0.5) as model:
        for i, frame in enumerate(frames):
            r = model.process(frame)
            if r.pose_landmarks is None:
                continue
            kp[i] = [(p.x * w, p.y * h, p.visibility) for p in r.pose_landmarks.landmark]
            world[i] = [(p.x, p.y, p.z) for p in r.pose_world_landmarks.landmark]
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(cache, keypoints=kp, world=world, size=np.array([w, h]))
    return {"keypoints": kp, "world": world, "size": np.array([w, h])}


class CachedDetector:
    """A detector for ``predict_video`` that answers with cached MediaPipe keypoints."""

    joint_set = "blazepose33"

    def __init__(self, keypoints: np.ndarray):
        self.keypoints = keypoints

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        if len(frames) != len(self.keypoints):
            raise ValueError(f"cached keypoints have {len(self.keypoints)} frames, the video "
                             f"{len(frames)}: rerun with --redetect")
        return self.keypoints


def reference() -> dict[str, np.ndarray]:
    """The lab reference per camera: (T, 17, 3) h36m17, metres, root-relative at the mid-hip,
    in that camera's frame (OpenPose BODY_25B triangulated with the lab calibration)."""
    from epiflow.calibration.formats import load_rig
    from epiflow.calibration.triangulation import triangulate_sequence
    from epiflow.datasets.openpose import read_openpose
    from epiflow.skeleton import map_to_h36m
    rig = load_rig(LAB)
    kp = read_openpose(DEMO / "openpose_body25b_single_person")
    tri = triangulate_sequence(rig, kp, joint_set=kp.joint_set)
    X = map_to_h36m(tri.points, kp.joint_set, confidence=False)             # (T, 17, 3) world
    out = {}
    for name, cam in zip(kp.camera_names, rig.subset(["cam_01", "cam_02", "cam_03", "cam_04"])):
        Xc = X @ cam.R.T
        out[name] = Xc - _midhip(Xc)
    return out


def _midhip(points: np.ndarray) -> np.ndarray:
    from epiflow.skeleton import get_joint_set
    js = get_joint_set("h36m17")
    return 0.5 * (points[:, [js.index("l_hip")]] + points[:, [js.index("r_hip")]])


def score(pred: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(MPJPE, P-MPJPE) in mm on the 12 limb joints, root-relative at the mid-hip, over the frames
    both have."""
    from epiflow.models.metrics import mpjpe, p_mpjpe
    from epiflow.skeleton import get_joint_set
    idx = [get_joint_set("h36m17").index(j) for j in LIMBS]
    pred = pred - _midhip(pred)
    ok = np.isfinite(pred[:, idx]).all((1, 2)) & np.isfinite(ref[:, idx]).all((1, 2))
    return (1000 * mpjpe(pred[ok][:, idx], ref[ok][:, idx]),
            1000 * p_mpjpe(pred[ok][:, idx], ref[ok][:, idx]))


def multiview_points(dets: dict) -> dict[str, np.ndarray]:
    """Per camera (T, 17, 3): MediaPipe's 2D of all four videos triangulated together with the
    lab calibration (robust, with the swap test), in that camera's frame, metres: the same
    detector's joints seen from four views, no depth guessed."""
    from epiflow.calibration.formats import load_rig
    from epiflow.calibration.triangulation import triangulate_sequence
    from epiflow.skeleton import map_to_h36m
    rig = load_rig(LAB).subset(["cam_01", "cam_02", "cam_03", "cam_04"])
    kp = np.nan_to_num(np.stack([dets[c]["keypoints"] for c in CAMERAS], 1), nan=0.0)
    pts = triangulate_sequence(rig, kp, joint_set="blazepose33").points
    X = map_to_h36m(pts, "blazepose33", confidence=pts.shape[-1] == 4)[..., :3]
    return {c: X @ cam.R.T - _midhip(X @ cam.R.T) for c, cam in zip(CAMERAS, rig)}


def multiview_floor(points: dict, refs: dict) -> dict[str, tuple[float, float]]:
    """Per camera (MPJPE, P-MPJPE) of :func:`multiview_points` against the reference, scored
    like a model: not monocular, it is what four calibrated views of MediaPipe's 2D reach, what
    the detector's joints (placed unlike OpenPose's) and errors cost before any depth is
    guessed; a model of one view of that 2D is unlikely to beat it (not a strict bound:
    smoothing the triangulation moves it by about 1 mm)."""
    return {c: score(points[c], refs[c]) for c in CAMERAS}


def mediapipe_world_h36m(world: np.ndarray) -> np.ndarray:
    """MediaPipe's world landmarks (T, 33, 3) on the canonical joints."""
    from epiflow.skeleton import map_to_h36m
    conf = np.where(np.isfinite(world).all(-1), 1.0, 0.0)[..., None]
    return map_to_h36m(np.concatenate([world, conf], -1), "blazepose33", confidence=True)[..., :3]


def train_recipe(config: str, retrain: bool) -> Path:
    """The recipe's checkpoint, trained into benchmarks/out/real_video/<stem>/ unless there."""
    from dataclasses import replace

    from epiflow.models.config import load_experiment
    from epiflow.models.train import StoreBuildError, ensure_store, train
    from epiflow.store import StoreError
    out = OUT / Path(config).stem
    ckpt = out / "checkpoint.pt"
    if ckpt.is_file() and not retrain:
        return ckpt
    t0 = time.perf_counter()
    cfg = load_experiment(REPO / config)
    try:
        ensure_store(cfg)
    except (StoreError, StoreBuildError) as err:  # the pipeline's settings grew since it was built
        if "other settings" not in str(err):
            raise
        print(f"note: {err}; training on the store as it is")
    cfg = replace(cfg, data=replace(cfg.data, source=replace(cfg.data.source, kind="store")))
    train(cfg, out, resume=False)
    print(f"trained {config} in {time.perf_counter() - t0:.0f} s -> {ckpt}")
    return ckpt


def evaluate(checkpoint, refs: dict, dets: dict, adapt: bool, same: dict | None = None
             ) -> dict[str, tuple[float, ...]]:
    """Per camera (MPJPE, P-MPJPE): ``predict_video`` on each video alone; with ``same``
    (:func:`multiview_points`) also (MPJPE, P-MPJPE) against it: the monocular error alone,
    without the two detectors' different joints."""
    from epiflow.models.checkpoint import load_checkpoint
    from epiflow.models.predict import predict_video
    ckpt = load_checkpoint(checkpoint)
    out = {}
    for cam in CAMERAS:
        pred = predict_video(ckpt, VIDEOS / f"{cam}.mp4", LAB, cam,
                             detector=CachedDetector(dets[cam]["keypoints"]), adapt=adapt)
        for warning in pred.warnings:  # what epiflow predict would print (e.g. a size mismatch)
            print(f"warning: {cam}: {warning}")
        out[cam] = score(pred.points3d, refs[cam])
        if same is not None:
            out[cam] += score(pred.points3d, same[cam])
    return out


def video_up(camera: str, dets: dict) -> np.ndarray:
    """(3,) the scene's vertical in the camera's frame as ``predict --video`` finds it in the
    video's own vertical edges (:func:`epiflow.models.level.scene_up`)."""
    from epiflow.detection.detectors import read_frames, video_info
    from epiflow.models.predict import _camera, _canonical, scene_up
    video = VIDEOS / f"{camera}.mp4"
    cam, _ = _camera(LAB, camera, video_info(video).size, f"--video {video}")
    kp = _canonical(dets["keypoints"], "blazepose33", "h36m17")
    return scene_up(read_frames(video), cam, kp, "h36m17")[0]


def evaluate_openpose(checkpoint, refs: dict, ups: dict, adapt: bool
                      ) -> dict[str, tuple[float, float]]:
    """Per camera (MPJPE, P-MPJPE) from the shipped OpenPose BODY_25B 2D of that camera alone
    (the detector the reference was triangulated from), the way ``epiflow predict --keypoints``
    lifts it, a model of level cameras given the vertical ``ups[camera]`` that ``--video``
    finds (:func:`video_up`)."""
    from epiflow.calibration.formats import load_rig
    from epiflow.datasets.openpose import read_openpose
    from epiflow.models.adapt import AdaptConfig
    from epiflow.models.checkpoint import load_checkpoint, load_model
    from epiflow.models.predict import predict_keypoints, training_stride
    ckpt = load_checkpoint(checkpoint)
    model, level = load_model(ckpt, device="cpu"), ckpt.config.data.level
    kp = read_openpose(DEMO / "openpose_body25b_single_person")
    rig = load_rig(LAB)
    out = {}
    for c, cam in enumerate(CAMERAS):
        pred = predict_keypoints(model, kp.data[:, c], kp.joint_set, rig[f"cam_{cam[-2:]}"],
                                 "h36m17", AdaptConfig() if adapt else None, 60.0,
                                 ups[cam] if level else None, training_stride(ckpt, 60.0))
        out[cam] = score(pred, refs[cam])
    return out


def shelf_sequences() -> list[tuple]:
    """Shelf (real OpenPose 2D, 3D ground truth): per actor 0-2 and camera, ``(camera, (T, 25, 3)
    body25 keypoints, (T, 17, 3) ground truth in the camera's frame, root-relative)`` for every
    camera that sees the actor in at least 30 frames. The keypoints are the bottom-up candidates
    nearest the actor's projected ground truth (:func:`shelf_person_keypoints`)."""
    from epiflow.calibration.formats import load_rig
    from epiflow.datasets.shelf import (SHELF15, gt_track, read_shelf_gt,
                                        shelf_person_keypoints)
    from epiflow.skeleton import get_joint_set
    root = DATA / "shelf"
    rig, gt = load_rig(root / "calibration.json"), read_shelf_gt(root / "gt.txt")
    order = [(i, list(SHELF15).index(j)) for i, j in enumerate(get_joint_set("h36m17").joints)
             if j in SHELF15]
    out = []
    for actor in (0, 1, 2):
        kp, track = shelf_person_keypoints(root, actor), gt_track(gt, actor)
        ref = np.full((len(track), 17, 3), np.nan)
        ref[:, [i for i, _ in order]] = track[:, [k for _, k in order]]
        for c, cam in enumerate(rig):
            if (kp.data[:, c, :, 2] > 0).any(-1).sum() >= 30:
                Xc = ref @ cam.R.T
                out.append((cam, kp.data[:, c], Xc - _midhip(Xc)))
    return out


def caliscope_sequences() -> list[tuple]:
    """caliscope (real MediaPipe 2D of 4 webcams with strong distortion; reference: caliscope's
    own triangulation, not ground truth): ``(camera, (T, 33, 3) keypoints, (T, 17, 3) reference)``
    for the two cameras that see the whole body (cam_1, cam_2; the others see the upper body)."""
    from epiflow.datasets.caliscope import read_caliscope_recording
    from epiflow.skeleton import map_to_h36m
    rig, kp, xyz = read_caliscope_recording(DATA / "caliscope_4cam")
    seen = np.isfinite(xyz).all(-1)[..., None].astype(float)
    X = map_to_h36m(np.concatenate([xyz, seen], -1), "blazepose33", confidence=True)[..., :3]
    out = []
    for name in ("cam_1", "cam_2"):
        c = list(kp.camera_names).index(name)
        Xc = X @ rig[name].R.T
        out.append((rig[name], kp.data[:, c], Xc - _midhip(Xc), X))
    return out


def other_real(checkpoint, shelf: list, caliscope: list, adapt: bool) -> dict[str, tuple]:
    """(MPJPE, P-MPJPE) means on Shelf and caliscope (:func:`shelf_sequences`,
    :func:`caliscope_sequences`), the number of sequences scored, the worst sequence's MPJPE and
    its camera, and how many could not be scored; each sequence predicted alone from its camera's
    2D, as ``epiflow predict --keypoints --calibration`` does: these have no video, so a model
    of level cameras takes the calibration's world axis nearest the person's torso as up
    (:func:`epiflow.models.level.upright_up`: Shelf's Z; caliscope's X, its whole-body webcams
    being mounted sideways)."""
    from epiflow.models.adapt import AdaptConfig
    from epiflow.models.checkpoint import load_checkpoint, load_model
    from epiflow.models.predict import keypoints_up, predict_keypoints, training_stride
    ckpt = load_checkpoint(checkpoint)
    model, level = load_model(ckpt, device="cpu"), ckpt.config.data.level
    cfg = AdaptConfig() if adapt else None
    out = {}
    for name, seqs, js, fps in (("Shelf", shelf, "body25", 25.0),
                                ("caliscope", caliscope, "blazepose33", 30.0)):
        scores, cams = [], []
        for cam, kp, ref, *_ in seqs:
            up = keypoints_up(kp, js, cam)[0] if level else None
            pred = predict_keypoints(model, kp, js, cam, "h36m17", cfg, fps, up,
                                     training_stride(ckpt, fps))
            m, p = score(pred, ref)
            if np.isfinite(m):
                scores.append((m, p))
                cams.append(cam.name)
        worst = int(np.argmax([m for m, _ in scores]))
        out[name] = (*np.mean(scores, 0), len(scores), scores[worst][0], cams[worst],
                     len(seqs) - len(scores))
    return out


def plot_against_reference(checkpoint, refs: dict, dets: dict, path: Path,
                           cameras=("cam01", "cam04"), frames=(10, 50, 90)) -> Path:
    """A picture of the adapted prediction (red) over the lab reference (black) for a few frames
    of two cameras, each seen from the camera (x-y) and from its side (z-y), metres,
    root-relative; the left side drawn thicker. Saved as PNG to ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from epiflow.models.checkpoint import load_checkpoint
    from epiflow.models.predict import predict_video
    from epiflow.skeleton import get_joint_set
    js, ckpt = get_joint_set("h36m17"), load_checkpoint(checkpoint)
    fig, axes = plt.subplots(len(cameras), 2 * len(frames), figsize=(3 * len(frames) * 2,
                                                                     3.6 * len(cameras)))
    for row, cam in zip(axes, cameras):
        pred = predict_video(ckpt, VIDEOS / f"{cam}.mp4", LAB, cam,
                             detector=CachedDetector(dets[cam]["keypoints"])).points3d
        pred = pred - _midhip(pred)
        for k, t in enumerate(frames):
            err = 1000 * np.linalg.norm(pred[t] - refs[cam][t], axis=-1).mean()
            for v, (a, b, view) in enumerate(((0, 1, "from the camera"), (2, 1, "from the side"))):
                ax = row[2 * k + v]
                for X, colour in ((refs[cam][t], "k"), (pred[t], "tab:red")):
                    for i, j in js.bones:
                        ax.plot(X[[i, j], a], X[[i, j], b], color=colour,
                                lw=2.2 if js.joints[j].startswith("l_") else 1.2)
                ax.set_aspect("equal")
                ax.invert_yaxis()
                ax.set_title(f"{cam} frame {t}, {view}\n(mean joint error {err:.0f} mm)",
                             fontsize=8)
                ax.tick_params(labelsize=6)
    fig.suptitle(f"{Path(checkpoint).parent.name} with adaptation (red) against the lab "
                 f"reference (black), camera frame, metres", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _row(name: str, scores: dict) -> dict:
    m = np.mean([v[0] for v in scores.values()])
    p = np.mean([v[1] for v in scores.values()])
    row = {"name": name, "per_camera": scores, "mpjpe": float(m), "p_mpjpe": float(p)}
    if all(len(v) == 4 for v in scores.values()):  # also against the same detector's 4 views
        row["same_detector"] = [float(np.mean([v[k] for v in scores.values()])) for k in (2, 3)]
    return row


def print_table(rows: list[dict], peer: dict, floor: dict | None = None) -> None:
    cams = " | ".join(f"{c} MPJPE / P" for c in CAMERAS)
    print(f"\n| model | adaptation | {cams} | mean MPJPE | mean P-MPJPE | MPJPE / peer | "
          f"P-MPJPE / peer | against MediaPipe's 4 views |")
    print("|" + "---|" * (len(CAMERAS) + 7))
    for r in rows + [peer] + ([floor] if floor is not None else []):
        per = " | ".join(f"{r['per_camera'][c][0]:.0f} / {r['per_camera'][c][1]:.0f}"
                         for c in CAMERAS)
        ratio = ("- | -" if r is floor else f"{r['mpjpe'] / peer['mpjpe']:.2f} | "
                                             f"{r['p_mpjpe'] / peer['p_mpjpe']:.2f}")
        same = " / ".join(f"{v:.1f}" for v in r["same_detector"]) if "same_detector" in r \
            else "-"
        print(f"| {r['name']} | {r.get('adapt', '-')} | {per} | {r['mpjpe']:.1f} | "
              f"{r['p_mpjpe']:.1f} | {ratio} | {same} |")
    print(f"| EpipolarPose (published, Human3.6M, own domain) | - | " + " | ".join(
        "-" for _ in CAMERAS) + f" | {PUBLISHED_EPIPOLARPOSE_MM} | - | - | - | - |")
    print(f"\ntarget: mean MPJPE <= {TARGET_MPJPE:.0f} mm and mean P-MPJPE <= "
          f"{TARGET_PMPJPE:.0f} mm")
    if floor is not None:
        print(f"floor: MediaPipe's own 2D of all four views, triangulated with the lab's "
              f"calibration, is {floor['mpjpe']:.1f} / {floor['p_mpjpe']:.1f} mm from this "
              f"reference: what four calibrated views of that 2D reach, which one view of "
              f"it is unlikely to beat (a floor in that sense, not a bound). The "
              f"last column scores each model against that triangulation instead (the same "
              f"detector's joints): what is left is the monocular model's own error")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS),
                    help="training recipes (relative to the repository)")
    ap.add_argument("--redetect", action="store_true", help="rerun MediaPipe, ignore the cache")
    ap.add_argument("--retrain", action="store_true", help="retrain the recipes")
    ap.add_argument("--json", help="also write the table here")
    ap.add_argument("--figure", help="draw the first recipe's adapted prediction against the "
                                     "reference into this PNG")
    ap.add_argument("--demo-only", action="store_true",
                    help="skip the second table (Shelf and caliscope, not the test)")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    if not VIDEOS.is_dir():
        print(f"no Pose2Sim demo under {DEMO} (set EPIFLOW_DATA)")
        return 1
    dets = {c: detections(c, args.redetect) for c in CAMERAS}
    refs = reference()
    same = multiview_points(dets)
    world = {c: mediapipe_world_h36m(dets[c]["world"]) for c in CAMERAS}
    peer = _row("MediaPipe world landmarks (peer)",
                {c: score(world[c], refs[c]) + score(world[c], same[c]) for c in CAMERAS})
    floor = _row("MediaPipe 2D of all 4 views, triangulated (floor, not monocular)",
                 multiview_floor(same, refs))
    ups = {c: video_up(c, dets[c]) for c in CAMERAS}
    others = (shelf_sequences(), caliscope_sequences()) if not args.demo_only else None
    rows = []
    for config in args.configs:
        ckpt = train_recipe(config, args.retrain)
        for adapt in (False, True):
            t0 = time.perf_counter()
            row = _row(Path(config).stem, evaluate(ckpt, refs, dets, adapt, same))
            row["adapt"] = "yes" if adapt else "no"
            row["seconds"] = time.perf_counter() - t0
            row["openpose"] = _row("", evaluate_openpose(ckpt, refs, ups, adapt))
            if others is not None:
                row["other"] = other_real(ckpt, *others, adapt)
            rows.append(row)
            print(f"{row['name']} adapt={row['adapt']}: {row['mpjpe']:.1f} / "
                  f"{row['p_mpjpe']:.1f} mm ({row['seconds']:.1f} s for 4 videos)", flush=True)
    print_table(rows, peer, floor)
    print_openpose_table(rows)
    if args.figure:
        print(f"figure: {plot_against_reference(train_recipe(args.configs[0], False), refs, dets, Path(args.figure))}")
    if others is not None:
        print_other_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "peer": peer, "floor": floor},
                                              indent=1))
    return 0


def print_openpose_table(rows: list[dict]) -> None:
    """The same recipes given the OpenPose 2D the reference was triangulated from
    (:func:`evaluate_openpose`)."""
    cams = " | ".join(CAMERAS)
    print(f"\nThe same models given each camera's shipped OpenPose 2D instead of MediaPipe's (the "
          f"reference's own detector; epiflow predict --keypoints), MPJPE / P-MPJPE, mm\n\n"
          f"| model | adaptation | {cams} | mean |\n|" + "---|" * (len(CAMERAS) + 3))
    for r in rows:
        o = r["openpose"]
        per = " | ".join(f"{o['per_camera'][c][0]:.0f} / {o['per_camera'][c][1]:.0f}"
                         for c in CAMERAS)
        print(f"| {r['name']} | {r['adapt']} | {per} | {o['mpjpe']:.1f} / {o['p_mpjpe']:.1f} |")


def print_other_table(rows: list[dict]) -> None:
    """The same recipes on real 2D that is not the demo (:func:`other_real`)."""
    n = rows[0]["other"]
    print(f"\nOther real 2D, not the test (each sequence alone; MPJPE / P-MPJPE, mm): Shelf "
          f"(OpenPose, ground truth; {n['Shelf'][2]} actor-cameras), caliscope (MediaPipe, "
          f"caliscope's own triangulation; {n['caliscope'][2]} cameras)\n")
    print("| model | adaptation | Shelf | Shelf worst MPJPE | caliscope | caliscope worst MPJPE |"
          "\n|---|---|---|---|---|---|")
    for r in rows:
        cells = []
        for m, p, _, worst, cam, unscored in (r["other"]["Shelf"], r["other"]["caliscope"]):
            cells += [f"{m:.1f} / {p:.1f}", f"{worst:.1f} (camera {cam})"
                      + (f"; {unscored} not scored" if unscored else "")]
        print(f"| {r['name']} | {r['adapt']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
