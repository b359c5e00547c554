"""``epiflow evaluate CHECKPOINT (--store STORE | --config CONFIG.toml) [--out metrics.json]``:
accuracy of a trained model against 3D ground truth, per clip and overall (MPJPE, N-MPJPE,
P-MPJPE in mm; PCK3D at 150 mm; AUC; PSS@50 and @100).

The sessions come from a store (all with ground truth, or ``--session`` ones) or from a recipe
whose ``[data.source]`` builds them (``--config``; its store is built when it does not exist).
"""
from __future__ import annotations

import json
import sys

from epiflow.outputs import check_file_outputs, check_outputs_not_inputs

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate a checkpoint against 3D ground truth",
                              description=__doc__)
    p.add_argument("checkpoint", help="checkpoint.pt written by `epiflow train`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--store", help="a pose store whose sessions have gt3d")
    src.add_argument("--config", help="a recipe whose data section names the evaluation data")
    p.add_argument("--session", action="append", default=[], metavar="ID",
                   help="evaluate only this session (repeatable)")
    p.add_argument("--out", help="write the metrics as JSON here")
    p.set_defaults(func=run)


def _sessions(args, need_crops: bool):
    """The sessions to evaluate on (with ground truth); ``need_crops``: with their person crops
    (an image model's input)."""
    from epiflow.models.data import load_sessions
    store = args.store
    if args.config:
        from epiflow.models.config import load_experiment
        from epiflow.models.train import ensure_store
        store = ensure_store(load_experiment(args.config))
    sessions = load_sessions(store, args.session or None, need_crops=need_crops)
    with_gt = [s for s in sessions if s.gt3d is not None]
    if not with_gt:
        raise ValueError(f"no session of {store!r} has ground truth gt3d; evaluation needs it")
    return with_gt


def run(args) -> int:
    from epiflow.models.checkpoint import check_input, load_checkpoint
    from epiflow.models.evaluate import evaluate_checkpoint, write_json
    check_file_outputs({"--out": args.out}, "metrics.json")
    check_outputs_not_inputs({"--out": args.out}, {"CHECKPOINT": args.checkpoint,
                                                   "--store": args.store, "--config": args.config})
    from epiflow.models.train import StoreBuildError
    checkpoint = load_checkpoint(args.checkpoint)  # a bad file is refused before any data loads
    image = checkpoint.data["model"].get("input_kind") == "image"
    if image:  # a store without crops is refused by the model's needs, before they are read
        from epiflow.models.data import ready_sessions
        for s in ready_sessions(args.store, args.session or None) if args.store else []:
            check_input(checkpoint, f"session {s.id!r} of {args.store}",
                        has_images=s.crop_size > 0)
    try:
        sessions = _sessions(args, need_crops=image)
    except StoreBuildError as err:  # a stage failed, not the input: exit 1, no traceback
        print(f"epiflow evaluate: error: {err}", file=sys.stderr)
        return 1
    for s in sessions:
        check_input(checkpoint, f"session {s.name!r} of {args.store or args.config}",
                    joint_set=s.joint_set, has_images=s.crops is not None,
                    n_frames=len(s.keypoints2d),
                    crop_size=None if s.crops is None else int(s.crops.shape[2]))
    result = evaluate_checkpoint(checkpoint, sessions)
    rows = [("overall", result["overall"])] + list(result["clips"].items())
    print(f"{'clip':<16}{'poses':>7}{'MPJPE':>8}{'N-MPJPE':>9}{'P-MPJPE':>9}{'PCK3D':>7}"
          f"{'AUC':>7}{'PSS@50':>8}{'PSS@100':>9}")
    for name, m in rows:
        print(f"{name:<16}{m['n_poses']:>7}{m['mpjpe_mm']:>8.1f}{m['n_mpjpe_mm']:>9.1f}"
              f"{m['p_mpjpe_mm']:>9.1f}{m['pck3d']:>7.3f}{m['auc']:>7.3f}{m['pss50']:>8.3f}"
              f"{m['pss100']:>9.3f}")
    if args.out:
        print(f"metrics: {write_json(result, args.out)}")
    else:
        print(json.dumps(result["overall"]))
    return 0
