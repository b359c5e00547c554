"""Why the monocular models miss on the Pose2Sim demo: the figures behind the README's "why".

    python benchmarks/real_video_diagnosis.py [--model real_video_mlp]
                                              [--diffusion real_video_diffusion]

Uses the models and detections that ``benchmarks/real_video.py`` cached under
``benchmarks/out/real_video/`` (run it first). Every figure here reads the test's reference, so
none of it chooses anything; it says where the error is:

1. **coverage**: for every 5th demo frame (cam01's frame; P-MPJPE is frame-free), the nearest pose
   of the training labels (CMU 02 pseudo-labels in ``runs/cmu02_real_video.zarr``), and of 20,000
   poses composed from them by :func:`epiflow.models.augment.swap_limbs`; P-MPJPE on the 12 limb
   joints, mm;
2. **depth**: for the model's adapted prediction, per bone of the arms and legs, how often the far
   end is on the wrong side in depth (frames where the reference's depth change along the bone
   exceeds 10 cm) and the mean depth error of the bone, mm; and predicted against reference bone
   lengths;
3. **hypotheses**: for a diffusion model, the P-MPJPE of its best of 20 hypotheses per frame (an
   oracle: the most any choice among them could give), per camera, mm;
4. **uncertainty**: whether the per-joint uncertainty ``epiflow predict`` stores (``uncertainty``
   in its npz) tells the joints that are off: its rank correlation with each joint's error
   (root-relative, 12 limb joints, every frame), the mean error of the joints in its lowest and
   highest quarter, and its median against the error's, on the demo (4 videos) and on Shelf (its
   actor-cameras, OpenPose 2D, ground truth).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_video as rv  # noqa: E402

BONES = (("l_shoulder", "l_elbow"), ("l_elbow", "l_wrist"), ("r_shoulder", "r_elbow"),
         ("r_elbow", "r_wrist"), ("l_hip", "l_knee"), ("l_knee", "l_ankle"),
         ("r_hip", "r_knee"), ("r_knee", "r_ankle"))


def _limbs() -> list[int]:
    from epiflow.skeleton import get_joint_set
    js = get_joint_set("h36m17")
    return [js.index(j) for j in rv.LIMBS]


def nearest_p_mpjpe(targets: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """(N,) for each target pose (N, J, 3) the P-MPJPE (metres) to its nearest candidate (M, J, 3)
    (rotation, scale and translation fitted per pair)."""
    import torch
    A = torch.from_numpy(targets - targets.mean(1, keepdims=True)).float()
    B = torch.from_numpy(candidates - candidates.mean(1, keepdims=True)).float()
    best = torch.full((len(A),), float("inf"))
    for b in B.split(2000):
        U, S, Vh = torch.linalg.svd(torch.einsum("mji,njk->mnik", b, A))
        d = torch.sign(torch.det(U @ Vh))
        D = torch.ones(*d.shape, 3)
        D[..., 2] = d
        R = U @ torch.diag_embed(D) @ Vh
        s = (S * D).sum(-1) / b.square().sum((1, 2))[:, None]
        fit = torch.einsum("mji,mnik->mnjk", b, R) * s[..., None, None]
        best = torch.minimum(best, (fit - A[None]).norm(dim=-1).mean(-1).min(0).values)
    return best.numpy()


def coverage(refs: dict) -> None:
    from epiflow.models.augment import swap_limbs
    from epiflow.models.data import convert_joint_set, load_sessions
    idx = _limbs()
    demo = refs["cam01"][::5][:, idx]
    demo = demo[np.isfinite(demo).all((1, 2))]
    store = rv.REPO / "runs" / "cmu02_real_video.zarr"
    labels = [convert_joint_set(s, "h36m17").pseudo3d for s in load_sessions(store)]
    labels = [x for x in labels if x is not None]
    poses = np.concatenate([x[::2] for x in labels])
    poses = poses[np.isfinite(poses[:, idx]).all((1, 2))]
    rng = np.random.default_rng(0)
    composed = np.concatenate([swap_limbs(poses[rng.integers(len(poses), size=200)], labels,
                                          "h36m17", rng, 1.0) for _ in range(100)])
    composed = composed[np.isfinite(composed[:, idx]).all((1, 2))]
    print(f"\ncoverage: nearest training pose to {len(demo)} demo poses, P-MPJPE on 12 limb joints")
    for name, cands in (("CMU 02 pseudo-labels", poses), ("composed by swap_limbs", composed)):
        d = 1000 * nearest_p_mpjpe(demo, cands[:, idx])
        print(f"  {name:24s} {len(cands):6d} poses: median {np.median(d):.1f} mm, "
              f"max {d.max():.1f} mm")


def depth(model: str, refs: dict, dets: dict) -> None:
    from epiflow.models.checkpoint import load_checkpoint
    from epiflow.models.predict import predict_video
    from epiflow.skeleton import get_joint_set
    js = get_joint_set("h36m17")
    ckpt = load_checkpoint(rv.OUT / model / "checkpoint.pt")
    preds = {c: predict_video(ckpt, rv.VIDEOS / f"{c}.mp4", rv.LAB, c,
                              detector=rv.CachedDetector(dets[c]["keypoints"])).points3d
             for c in rv.CAMERAS}
    print(f"\ndepth: {model} adapted, 4 cameras; bones whose reference depth change exceeds 10 cm")
    print("| bone | far end on the wrong side | mean depth error mm | length pred / ref mm |\n"
          "|---|---|---|---|")
    for a, b in BONES:
        ia, ib = js.index(a), js.index(b)
        flips = big = 0
        err, lp, lr = [], [], []
        for c in rv.CAMERAS:
            P, R = preds[c], refs[c]
            ok = np.isfinite(P).all((1, 2)) & np.isfinite(R).all((1, 2))
            dzr, dzp = R[ok, ib, 2] - R[ok, ia, 2], P[ok, ib, 2] - P[ok, ia, 2]
            far = np.abs(dzr) > 0.10
            flips += int((far & (np.sign(dzr) != np.sign(dzp))).sum())
            big += int(far.sum())
            err += list(np.abs(dzr - dzp))
            lp += list(np.linalg.norm(P[ok, ib] - P[ok, ia], axis=-1))
            lr += list(np.linalg.norm(R[ok, ib] - R[ok, ia], axis=-1))
        print(f"| {a} - {b} | {flips} / {big} ({100 * flips / max(big, 1):.0f} %) | "
              f"{1000 * np.mean(err):.0f} | {1000 * np.mean(lp):.0f} / {1000 * np.mean(lr):.0f} |")


def hypotheses(model: str, refs: dict, dets: dict, n: int = 20) -> None:
    import torch

    from epiflow.calibration.camera import CameraRig
    from epiflow.detection.detectors import video_info
    from epiflow.models.adapt import AdaptConfig, model_input
    from epiflow.models.checkpoint import load_checkpoint, load_model
    from epiflow.models.data import normalize_keypoints
    from epiflow.models.metrics import p_mpjpe
    from epiflow.models.predict import _camera, _canonical
    ckpt = load_checkpoint(rv.OUT / model / "checkpoint.pt")
    net, idx = load_model(ckpt, device="cpu"), _limbs()
    print(f"\nhypotheses: {model}, best of {n} per frame (oracle), P-MPJPE on 12 limb joints")
    for c in rv.CAMERAS:
        camera, _ = _camera(rv.LAB, c, video_info(rv.VIDEOS / f"{c}.mp4").size, c)
        kp = _canonical(dets[c]["keypoints"], "blazepose33", "h36m17")
        uv = CameraRig([camera]).undistort(kp[None, ..., :2])[0]
        uv_in, R, _, _ = model_input(uv, kp[..., 2], "h36m17", AdaptConfig(),
                                     rv.video_up(c, dets[c]))     # as predict --video does
        x = torch.from_numpy(normalize_keypoints(uv_in, 0)).float()[:, None]
        with torch.no_grad():
            H = net.hypotheses(x, n).numpy().astype(np.float64) @ R        # (T, n, J, 3)
        ref = refs[c]
        ok = np.isfinite(ref[:, idx]).all((1, 2)) & np.isfinite(H[:, 0, idx]).all((1, 2))
        best = [min(p_mpjpe(H[t:t + 1, k][:, idx], ref[t:t + 1, idx]) for k in range(n))
                for t in np.flatnonzero(ok)[::3]]
        print(f"  {c}: {1000 * np.mean(best):.1f} mm")


def _rank_summary(sigma: np.ndarray, error: np.ndarray) -> str:
    """Spearman's rho of (N,) uncertainties against (N,) errors (metres), the mean error of the
    lowest and highest quarter of the uncertainty, and both medians, as one line (mm)."""
    from scipy.stats import spearmanr
    lo, hi = np.quantile(sigma, [0.25, 0.75])
    return (f"rho {spearmanr(sigma, error)[0]:.2f}; error where the uncertainty is in its lowest "
            f"quarter {1000 * error[sigma <= lo].mean():.0f} mm, highest quarter "
            f"{1000 * error[sigma >= hi].mean():.0f} mm; median uncertainty "
            f"{1000 * np.median(sigma):.0f} mm against median error {1000 * np.median(error):.0f}")


def uncertainty(model: str, refs: dict, dets: dict) -> None:
    from epiflow.models.adapt import AdaptConfig
    from epiflow.models.checkpoint import load_checkpoint, load_model
    from epiflow.models.predict import _lift, keypoints_up, predict_video, training_stride
    idx = _limbs()
    ckpt = load_checkpoint(rv.OUT / model / "checkpoint.pt")
    net, level = load_model(ckpt, device="cpu"), ckpt.config.data.level

    def pairs(points, sigma, ref):
        err = np.linalg.norm(points - rv._midhip(points) - ref, axis=-1)[:, idx]
        sig = sigma[:, idx]
        ok = np.isfinite(err) & np.isfinite(sig)
        return sig[ok], err[ok]
    demo, shelf = [], []
    for c in rv.CAMERAS:
        pred = predict_video(ckpt, rv.VIDEOS / f"{c}.mp4", rv.LAB, c,
                             detector=rv.CachedDetector(dets[c]["keypoints"]))
        demo.append(pairs(pred.points3d, pred.uncertainty, refs[c]))
    for cam, kp, ref in rv.shelf_sequences():          # as predict --keypoints lifts them
        up = keypoints_up(kp, "body25", cam)[0] if level else None
        points, sigma = _lift(net, kp, "body25", cam, "h36m17", AdaptConfig(), 25.0, up,
                              training_stride(ckpt, 25.0))
        shelf.append(pairs(points, sigma, ref))
    print(f"\nuncertainty: {model} adapted, per joint and frame")
    for name, got in (("demo", demo), ("Shelf", shelf)):
        print(f"  {name}: " + _rank_summary(np.concatenate([g[0] for g in got]),
                                            np.concatenate([g[1] for g in got])))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="real_video_mlp", help="a model cached by real_video.py")
    ap.add_argument("--diffusion", default="real_video_diffusion",
                    help="a diffusion model cached by real_video.py ('' skips)")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    if not rv.VIDEOS.is_dir():
        print(f"no Pose2Sim demo under {rv.DEMO} (set EPIFLOW_DATA)")
        return 1
    refs = rv.reference()
    dets = {c: rv.detections(c) for c in rv.CAMERAS}
    coverage(refs)
    depth(args.model, refs, dets)
    uncertainty(args.model, refs, dets)
    if args.diffusion:
        hypotheses(args.diffusion, refs, dets)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
