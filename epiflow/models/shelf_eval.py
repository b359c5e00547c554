"""The Shelf multi-person protocol: PCP per actor and per limb, and MPJPE, as the papers score it.

Followed line by line from VoxelPose's ``lib/dataset/shelf.py`` ``evaluate`` (itself MVPose's):

- the test frames are 300–600 of the sequence: the 301 frames of 4D-association's ``gt.txt``;
- actors 1, 2 and 3 are scored (ids 0, 1, 2 of ``gt.txt``; id 3, the fourth person, is not);
- in each frame, each actor present is matched to the predicted person with the lowest mean
  joint error over the 14 Shelf joints (no one-to-one constraint), and every one of its
  10 limbs (:data:`SHELF_LIMBS`: 8 arm and leg segments, the head, the torso from the hips'
  midpoint to the neck) is scored with :func:`~epiflow.models.metrics.pcp` at alpha 0.5; a frame
  with nobody predicted scores all 10 limbs wrong;
- an actor's PCP is its share of correct limbs over its frames, the average is the mean of the
  three actors'.

A BODY_25 prediction is turned into the 14 Shelf joints by :func:`shelf14_from_body25`: the
12 limb joints as they are, the neck and head top derived from the nose, ears and shoulders as
VoxelPose's ``coco2shelf3D`` does (Z up, metres).

The limb-only PCP (the 8 arm and leg segments) leaves out the two derived segments. MPJPE is
over the 14 joints of the matched person (and over its 12 limb joints, without the derived neck
and head top), in frames where the match is within 500 mm (VoxelPose's recall threshold).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from epiflow.datasets.shelf import ShelfPerson
from epiflow.models.metrics import pcp
from epiflow.skeleton import BODY25, SHELF14

__all__ = ["SHELF_LIMBS", "SHELF_LIMB_NAMES", "SHELF_ACTORS", "shelf14_from_body25",
           "ShelfScores", "evaluate_shelf"]

_HIPS = len(SHELF14)  # index of the hips' midpoint appended to the 14 joints
#: The 10 scored limbs, on the 14 Shelf joints plus the hips' midpoint (index 14).
SHELF_LIMBS = ((0, 1), (1, 2), (3, 4), (4, 5), (6, 7), (7, 8), (9, 10), (10, 11), (12, 13),
               (_HIPS, 12))
SHELF_LIMB_NAMES = ("r_lower_leg", "r_upper_leg", "l_upper_leg", "l_lower_leg", "r_lower_arm",
                    "r_upper_arm", "l_upper_arm", "l_lower_arm", "head", "torso")
_LIMB_ONLY = slice(0, 8)
#: gt.txt ids of the protocol's actors 1, 2, 3.
SHELF_ACTORS = (0, 1, 2)
_MATCH_MM = 500.0
_B = {name: i for i, name in enumerate(BODY25.joints)}
_LIMB_JOINTS = [_B[n] for n in ("RAnkle", "RKnee", "RHip", "LHip", "LKnee", "LAnkle", "RWrist",
                                "RElbow", "RShoulder", "LShoulder", "LElbow", "LWrist")]


def _head_centre(points: np.ndarray) -> np.ndarray:
    """(..., 3) the ears' midpoint; the eyes' where an ear is missing, the nose where both are."""
    ears = (points[..., _B["LEar"], :] + points[..., _B["REar"], :]) / 2
    eyes = (points[..., _B["LEye"], :] + points[..., _B["REye"], :]) / 2
    out = np.where(np.isfinite(ears).all(-1, keepdims=True), ears, eyes)
    return np.where(np.isfinite(out).all(-1, keepdims=True), out, points[..., _B["Nose"], :])


def shelf14_from_body25(points) -> np.ndarray:
    """The 14 Shelf joints (:data:`~epiflow.skeleton.SHELF14` order) from BODY_25 3D points.

    Args:
        points: (..., 25, 3) metres, world frame with Z up (Shelf's).

    Returns:
        (..., 14, 3): the 12 limb joints copied; the neck and head top derived from the nose, the
        head centre (:func:`_head_centre`) and the shoulders with VoxelPose's ``coco2shelf3D``
        weights. NaN where a source is NaN.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim < 2 or points.shape[-2:] != (len(BODY25), 3):
        raise ValueError(f"points must be (..., {len(BODY25)}, 3) BODY_25 metres; "
                         f"got {points.shape}")
    out = np.empty(points.shape[:-2] + (len(SHELF14), 3))
    out[..., :12, :] = points[..., _LIMB_JOINTS, :]
    nose, centre = points[..., _B["Nose"], :], _head_centre(points)
    mid_shoulder = (out[..., 8, :] + out[..., 9, :]) / 2
    head_bottom = (mid_shoulder + centre) / 2
    head_top = head_bottom + (centre - head_bottom) * 2
    top = mid_shoulder + (nose - mid_shoulder) * np.array([0.75, 0.75, 1.5])
    neck = mid_shoulder + (nose - mid_shoulder) * 0.5
    out[..., 13, :] = 0.75 * top + 0.25 * head_top
    out[..., 12, :] = 0.75 * neck + 0.25 * head_bottom
    return out


def _with_hips(shelf14: np.ndarray) -> np.ndarray:
    return np.concatenate([shelf14, (shelf14[..., 2:3, :] + shelf14[..., 3:4, :]) / 2], -2)


@dataclass(frozen=True)
class ShelfScores:
    """Scores per actor (rows in ``actors`` order).

    Attributes:
        actors: gt.txt ids scored. frames: (A,) frames each actor is present.
        limb_correct: (A, 10) share of frames each limb (:data:`SHELF_LIMB_NAMES`) is correct.
        mpjpe_mm: (A,) over matched frames, 14 joints. mpjpe12_mm: (A,) the same over the 12 limb
            joints (no derived neck and head top). matched: (A,) share of frames matched within
            500 mm.
    """

    actors: tuple[int, ...]
    frames: np.ndarray
    limb_correct: np.ndarray
    mpjpe_mm: np.ndarray
    mpjpe12_mm: np.ndarray
    matched: np.ndarray

    @property
    def pcp(self) -> np.ndarray:
        """(A,) percent of the 10 limbs correct, per actor."""
        return 100 * self.limb_correct.mean(1)

    @property
    def pcp_limbs_only(self) -> np.ndarray:
        """(A,) percent of the 8 arm and leg segments correct, per actor."""
        return 100 * self.limb_correct[:, _LIMB_ONLY].mean(1)


def _match(pred: np.ndarray, gt14: np.ndarray) -> tuple[int, float]:
    """The predicted person (N, 14, 3) with the lowest mean error (over its finite joints) to
    gt14 (14, 3), and that error in metres; (-1, inf) when nobody is predicted."""
    err = np.linalg.norm(pred - gt14, axis=-1)
    seen = np.isfinite(err)
    n = seen.sum(1)
    mean = np.where(n > 0, np.where(seen, err, 0.0).sum(1) / np.maximum(n, 1), np.inf)
    i = int(np.argmin(mean)) if len(mean) else -1
    return i, (float(mean[i]) if i >= 0 else np.inf)


def _score_actor(pred14: np.ndarray, gt: list[list[ShelfPerson]], actor: int):
    limbs, errors, matched = [], [], 0
    for t, people in enumerate(gt):
        person = next((p for p in people if p.id == actor), None)
        if person is None:
            continue
        gt14 = person.points[:len(SHELF14)]
        i, mean_m = _match(pred14[t], gt14)
        if i < 0:
            limbs.append(np.zeros(len(SHELF_LIMBS)))
            continue
        limbs.append(np.nan_to_num(pcp(_with_hips(pred14[t, i]), _with_hips(gt14), SHELF_LIMBS)))
        if 1000 * mean_m < _MATCH_MM:
            matched += 1
            errors.append(np.linalg.norm(pred14[t, i] - gt14, axis=-1))
    limbs = np.array(limbs).reshape(-1, len(SHELF_LIMBS))
    errors = np.array(errors).reshape(-1, len(SHELF14))
    with np.errstate(invalid="ignore"):
        mpjpe = 1000 * np.nanmean(errors) if errors.size else np.nan
        mpjpe12 = 1000 * np.nanmean(errors[:, :12]) if errors.size else np.nan
    return len(limbs), limbs.mean(0), mpjpe, mpjpe12, matched / max(len(limbs), 1)


def evaluate_shelf(pred14, gt: list[list[ShelfPerson]],
                   actors: tuple[int, ...] = SHELF_ACTORS) -> ShelfScores:
    """Score predicted people against the Shelf ground truth (protocol in the module docstring).

    Args:
        pred14: (T, N, 14, 3) metres, Z up, :data:`~epiflow.skeleton.SHELF14` order (see
            :func:`shelf14_from_body25`); N predicted people per frame in any order, NaN rows for
            empty slots. gt: :func:`~epiflow.datasets.shelf.read_shelf_gt` of the same T frames.
        actors: gt.txt ids to score.

    Returns:
        :class:`ShelfScores`; ``scores.pcp.mean()`` is the published average PCP.
    """
    pred14 = np.asarray(pred14, dtype=np.float64)
    if pred14.ndim != 4 or pred14.shape[2:] != (len(SHELF14), 3) or len(pred14) != len(gt):
        raise ValueError(f"pred14 must be (T={len(gt)}, N, 14, 3) for the {len(gt)} ground-truth "
                         f"frames; got {pred14.shape}")
    rows = list(zip(*(_score_actor(pred14, gt, a) for a in actors)))
    return ShelfScores(tuple(actors), *(np.array(r) for r in rows))
