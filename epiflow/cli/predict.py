"""``epiflow predict CHECKPOINT (--video FILE | --keypoints NPZ --camera NAME) --out pred.npz``:
3D poses from one camera's footage with a trained model.

The npz gets ``points3d (T, J, 3)``: root-relative metres in that camera's frame, canonical
joints (``joint_set``), NaN where the person was not seen; a PNG of a few frames is written
beside it. ``--video`` detects the person with MediaPipe first. ``--calibration`` gives the
camera's intrinsics (any calibration file ``epiflow triangulate`` reads); without it a centred
pinhole is assumed (and said). By default the prediction is adapted to the footage's own 2D
(the person's position aligned to the training data's, then test-time optimisation: reprojection,
constant bone lengths, smooth motion, weighted by the model's per-joint uncertainty);
``--no-adapt`` gives the model's plain prediction, faster. An adapted prediction also stores
``uncertainty (T, J)``, the model's per-joint uncertainty in metres, and prints its summary.
"""
from __future__ import annotations

from pathlib import Path

from epiflow.outputs import check_file_outputs, check_outputs_not_inputs

__all__ = ["register", "run", "uncertainty_summary"]


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="3D poses from one camera's video or 2D keypoints",
                              description=__doc__)
    p.add_argument("checkpoint", help="checkpoint.pt written by `epiflow train`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", help="a video file of one camera")
    src.add_argument("--keypoints", help="2D keypoints of one person, in any form calibrate "
                                         "reads: a keypoints npz (C, T, J, 3), an OpenPose "
                                         "folder (one JSON folder per camera) or a caliscope "
                                         "xy csv; --camera picks the camera")
    p.add_argument("--camera", help="which camera of --keypoints (required with it); with "
                                    "--video, its name in --calibration (default: file stem)")
    p.add_argument("--calibration", help="calibration file with that camera's intrinsics (camera "
                                         "TOML, Qualisys, caliscope or Shelf; checked when read)")
    p.add_argument("--out", required=True, help="output npz (a PNG is written beside it)")
    p.add_argument("--no-adapt", action="store_true",
                   help="the model's plain prediction: no alignment of the person's position, no "
                        "test-time optimisation on the video's own 2D (faster)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.set_defaults(func=run)


def run(args) -> int:
    from epiflow.models.checkpoint import check_input, load_checkpoint
    from epiflow.models.predict import predict_npz, predict_video, save_prediction
    picture = None if args.no_plot else Path(args.out).with_suffix(".png")
    outputs = {"--out": args.out, "the picture beside --out": picture}
    check_file_outputs(outputs, "pred.npz")
    check_outputs_not_inputs(
        outputs,
        {"CHECKPOINT": args.checkpoint, "--video": args.video, "--keypoints": args.keypoints,
         "--calibration": args.calibration})
    checkpoint = load_checkpoint(args.checkpoint)  # a bad file is refused before any work
    if args.keypoints:
        if not args.camera:
            raise ValueError("--keypoints needs --camera NAME (which camera's keypoints to lift)")
        check_input(checkpoint, f"--keypoints {args.keypoints}", has_images=False)
        pred = predict_npz(checkpoint, args.keypoints, args.camera, args.calibration,
                           adapt=not args.no_adapt)
    else:
        pred = predict_video(checkpoint, args.video, args.calibration, args.camera,
                             adapt=not args.no_adapt)
    from epiflow.cli import print_warnings
    print_warnings("predict", pred.warnings, args.video or args.keypoints)
    for note in pred.notes:
        print(f"note: {note}")
    npz, png = save_prediction(pred, args.out, plot=not args.no_plot)
    seen = int((pred.points3d == pred.points3d).all((1, 2)).sum())
    print(f"{seen}/{len(pred.points3d)} frames predicted ({pred.joint_set}, camera "
          f"{pred.camera}): {npz}" + (f", {png}" if png else ""))
    if pred.uncertainty is not None and seen:
        print(uncertainty_summary(pred.uncertainty, pred.joint_set))
    return 0


def uncertainty_summary(sigma, joint_set: str, worst: int = 3) -> str:
    """One line on the model's per-joint uncertainty (T, J) metres: its median over the joints
    and frames seen and the ``worst`` least certain joints (their medians), millimetres."""
    import numpy as np

    from epiflow.skeleton import get_joint_set
    names = get_joint_set(joint_set).joints
    sigma = np.where(np.isfinite(sigma), sigma, np.nan)
    head = "per-joint uncertainty (the model's spread, mm; 'uncertainty' in the npz): "
    if not np.isfinite(sigma).any():  # nothing to summarise (no warning about all-NaN slices)
        return head + "none (no frame has it)"
    seen = np.isfinite(sigma).any(0)                                                # (J,)
    per_joint = np.full(sigma.shape[1], np.nan)
    per_joint[seen] = np.nanmedian(sigma[:, seen], axis=0)
    order = [j for j in np.argsort(-np.nan_to_num(per_joint, nan=-1.0)) if per_joint[j] > 0]
    least = ", ".join(f"{names[j]} {1000 * per_joint[j]:.0f}" for j in order[:worst])
    return (head + f"median {1000 * np.nanmedian(sigma):.0f}"
            + (f"; least certain: {least}" if least else ""))
