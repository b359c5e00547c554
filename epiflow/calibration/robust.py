"""Which views to trust: consensus over camera pairs, reprojection gating, left/right swap test.

Consensus (:func:`consensus_views`), for all points at once: first all the observed views of a
point are solved together; where every one of them falls within ``gate_px`` of that solution no
proposal can have more inliers, and the point is done (most points, at a fraction of the cost).
For the others, every pair of cameras that both see a point proposes it (a two-view linear
triangulation); the proposal is projected into every view
and scored by how many observed views fall within ``gate_px`` of it (ties broken by the squared
residuals of those inliers); each point keeps its best proposal's inliers, which are then
re-triangulated, re-gated and re-triangulated until the inlier sets stop changing. A view far from
the others' agreement (a gross detector error, another person, a mirrored joint) is left out; a
point that no two views agree on has no consensus.

Swap test (:func:`detect_swaps`), for a whole skeleton in one camera-frame: the joints triangulated
from all views are projected into the view and compared with its keypoints as labelled and with
its keypoints mirrored (every left joint exchanged with its right twin). A view whose mirrored
labels fit clearly better was mirrored by the detector.
"""
from __future__ import annotations

from dataclasses import fields
from itertools import combinations

import torch

from epiflow.calibration.multiview import (Observations, Solution, features, in_cameras,
                                           normal_equation_matrix, solve_normal_equations,
                                           solve_reweighted)

__all__ = ["consensus", "consensus_views", "detect_swaps", "temporal_reference", "mirrored_frames"]

#: score bonus of the prior proposal: above any tie-break among equal counts (< 0.99), below one
PRIOR_BONUS = 0.995


def _gate(obs: Observations, points: torch.Tensor, g2: torch.Tensor, relative: bool = False
          ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The observed views within the gate of points (3, N): ``‖(X/Z, Y/Z) - (x, y)‖² < g2`` and
    in front (Z > 0), tested as ``‖(X, Y) - Z (x, y)‖² < g2 Z²`` (no division).

    Args:
        g2: (C, 1) the squared gate in normalised units, ``(gate_px / f)²``.
        relative: also return each view's squared error relative to the gate, clamped at 1.

    Returns:
        (inliers (C, N) bool, relative squared error (C, N) or None).
    """
    cam = in_cameras(obs, points)
    z = cam[:, 2]
    ex = torch.addcmul(cam[:, 0], obs.x, z, value=-1)
    ey = torch.addcmul(cam[:, 1], obs.y, z, value=-1)
    e2 = ex.mul_(ex).addcmul_(ey, ey)
    limit = (z * z).mul_(g2)
    inliers = (e2 < limit) & (z > 0) & obs.observed
    if not relative:
        return inliers, None
    return inliers, e2.div_(limit).nan_to_num_(1.0, 1.0, 1.0).clamp_(max=1.0)


def _score(sol: Solution, inliers: torch.Tensor, r_rel2: torch.Tensor, conf: torch.Tensor
           ) -> torch.Tensor:
    """(N,) a proposal's score: its number of inliers plus a tie-break in [0, 0.99): between
    proposals with as many inliers, prefer the better-conditioned one (rays far from parallel),
    then more confident and closer inliers."""
    n = inliers.sum(0)
    mask = inliers.to(conf.dtype)
    scale = 0.99 / n.clamp(min=1).to(conf.dtype)
    tie = (0.4 * 0.99) * sol.isotropy + scale * (0.4 * (conf * mask).sum(0)
                                                  + 0.2 * (mask - r_rel2 * mask).sum(0))
    return tie.add_(n)


def _pair_proposals(obs: Observations, g2: torch.Tensor, G: torch.Tensor,
                    prior: torch.Tensor | None = None) -> torch.Tensor:
    """(C, N) bool: the inliers of each point's best proposal (all False if none): the two-view
    proposals, and ``prior`` (3, N) (NaN where none) when given."""
    C, N = obs.x.shape
    F = features(obs, obs.conf * obs.focal ** 2).reshape(C, 4, N)
    m = G.reshape(9, C, 4).permute(1, 0, 2) @ F  # (C, 9, N): each view's normal equations
    conf = obs.conf.clamp(0, 1)
    best = torch.zeros(N, dtype=obs.x.dtype, device=obs.x.device)  # a valid score is >= 2
    best_in = torch.zeros_like(obs.observed)
    for i, j in combinations(range(C), 2):
        sol = solve_normal_equations(m[i] + m[j])
        inl, r_rel2 = _gate(obs, sol.points, g2, relative=True)
        valid = sol.ok & inl[i] & inl[j]
        score = _score(sol, inl, r_rel2, conf).mul_(valid.to(best.dtype)).nan_to_num_(0.0)
        better = score > best
        best = torch.maximum(best, score)
        best_in = (best_in & ~better) | (inl & better)
    if prior is not None:  # one more proposal, winning ties: as many inliers and the prior
        inl, _ = _gate(obs, prior, g2)
        n = inl.sum(0)
        better = (n >= 2) & (n + PRIOR_BONUS > best)
        best_in = (best_in & ~better) | (inl & better)
    return best_in


def _resolved(obs: Observations, use: torch.Tensor, sol: Solution, changed: torch.Tensor,
              G: torch.Tensor) -> Solution:
    """``sol`` with the points ``changed`` (N,) bool re-solved with their views ``use``."""
    if int(changed.sum()) * 2 > changed.numel():
        return solve_reweighted(obs, use, G)
    idx = changed.nonzero()[:, 0]
    return _put(sol, idx, solve_reweighted(obs.columns(idx), use[:, idx], G))


def _put(sol: Solution, idx: torch.Tensor, sub: Solution) -> Solution:
    """``sol`` with its points ``idx`` (M,) replaced, in place, by those of ``sub`` (M points)."""
    for f in fields(Solution):
        getattr(sol, f.name)[..., idx] = getattr(sub, f.name)
    return sol


def consensus(obs: Observations, gate_px: float = 20.0, max_rounds: int = 4,
              prior: torch.Tensor | None = None, G: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, Solution]:
    """The views that agree with each other, for every point, and the points they give.

    Args:
        obs: observations of N points by C cameras.
        gate_px: a view is an inlier when its reprojection error (undistorted pixels) is below this.
        max_rounds: re-triangulate / re-gate rounds after the best proposal (each re-solves only
            the points whose views changed).
        prior: (3, N) expected positions (observations' frame; NaN where none), e.g. from the
            neighbouring frames (:func:`temporal_reference`). The views within the gate of the
            prior are one more proposal, which wins against two-view proposals with as many
            inliers, and loses against proposals with more.
        G: the cameras' :func:`~epiflow.calibration.multiview.normal_equation_matrix`, or None.

    Returns:
        (use (C, N) bool: a point with fewer than two True views has no consensus; the
        :func:`~epiflow.calibration.multiview.solve_reweighted` solution with those views).
    """
    if gate_px <= 0:
        raise ValueError(f"gate_px must be positive (pixels); got {gate_px}")
    G = normal_equation_matrix(obs.R, obs.t) if G is None else G
    g2 = (gate_px / obs.focal) ** 2
    # first every observed view at once: where they all agree no proposal can have more inliers,
    # and the search below (a solve and a gate per camera pair) is left to the other points
    use = obs.observed
    sol = solve_reweighted(obs, use, G)
    inl, _ = _gate(obs, sol.points, g2)
    rest = (~((inl == use).all(0) & sol.ok)).nonzero()[:, 0]
    if not len(rest):
        return use, sol
    sub_use, sub = _search(obs.columns(rest), g2, G, max_rounds,
                           None if prior is None else prior[:, rest])
    use = use.clone()
    use[:, rest] = sub_use
    return use, _put(sol, rest, sub)


def _search(obs: Observations, g2: torch.Tensor, G: torch.Tensor, max_rounds: int,
            prior: torch.Tensor | None) -> tuple[torch.Tensor, Solution]:
    """:func:`consensus` for points whose views disagree: the best of the camera pairs' (and the
    prior's) proposals, then re-solve / re-gate rounds."""
    use = _pair_proposals(obs, g2, G, prior)
    sol = solve_reweighted(obs, use, G)
    for _ in range(max_rounds):
        inl, _ = _gate(obs, sol.points, g2)
        new = inl & (use.sum(0) >= 2)
        changed = (new ^ use).sum(0) > 0
        if not bool(changed.any()):
            break
        use = new
        sol = _resolved(obs, use, sol, changed, G)
    return use, sol


def consensus_views(obs: Observations, gate_px: float = 20.0, max_rounds: int = 4,
                    prior: torch.Tensor | None = None) -> torch.Tensor:
    """(C, N) bool: the views of :func:`consensus` (its docstring has the arguments)."""
    return consensus(obs, gate_px, max_rounds, prior)[0]


def detect_swaps(obs: Observations, reference: torch.Tensor, n_frames: int, flip: torch.Tensor,
                 gate_px: float = 20.0, ratio: float = 0.6) -> torch.Tensor:
    """Camera-frames whose left/right labels are mirrored.

    Args:
        obs: observations of T × J points (frame-major: point ``t J + j``).
        reference: (C, 3, T J) for each camera, the points triangulated *without* that camera
            (:func:`~epiflow.calibration.multiview.leave_one_out`), so a mirrored view cannot
            vouch for itself.
        n_frames: T. flip: (J,) long, the joint set's left/right permutation.
        gate_px: residuals are truncated at this (pixels) so one gross error cannot decide.
        ratio: mirrored when the truncated squared cost of the mirrored labels is below
            ``ratio`` × that of the labels as given, and lower by at least ``gate_px²`` (one
            joint's worth of disagreement).

    Returns:
        (T, C) bool, True where the camera-frame's labels should be mirrored.
    """
    C, T, J = obs.n_cameras, n_frames, flip.numel()
    cam = obs.R @ reference + obs.t[..., None]
    z = cam[:, 2].reshape(C, T, J)
    px, py = (cam[:, 0] / cam[:, 2]).reshape(C, T, J), (cam[:, 1] / cam[:, 2]).reshape(C, T, J)
    ox, oy = obs.x.reshape(C, T, J), obs.y.reshape(C, T, J)
    seen = obs.observed.reshape(C, T, J)
    placed = torch.isfinite(px) & torch.isfinite(py) & (z > 0)
    paired = flip != torch.arange(J, device=flip.device)
    valid = seen & seen[..., flip] & placed & placed[..., flip] & paired
    f = obs.focal[:, :, None]

    def cost(x, y):
        e = (f * torch.hypot(px - x, py - y)).clamp(max=gate_px)
        return torch.where(valid, e * e, 0).sum(-1)
    keep, swap = cost(ox, oy), cost(ox[..., flip], oy[..., flip])
    mirrored = (valid.sum(-1) >= 2) & (swap < ratio * keep) & (keep - swap > gate_px ** 2)
    return mirrored.T


def temporal_reference(points: torch.Tensor, min_predictions: int = 1) -> torch.Tensor:
    """Where each joint should be, judging by its neighbouring frames only.

    The median (per coordinate) of up to three predictions: the midpoint of frames t - 1 and
    t + 1, and the linear extrapolations from t - 2, t - 1 and from t + 2, t + 1; missing
    neighbours leave their predictions out.

    Args:
        points: (T, J, 3) metres, NaN where missing.
        min_predictions: NaN where fewer of the three predictions are possible.

    Returns:
        (T, J, 3); NaN where fewer than ``min_predictions`` predictions are possible.
    """
    T = points.shape[0]
    nan = torch.full((2, *points.shape[1:]), float("nan"), dtype=points.dtype,
                     device=points.device)
    padded = torch.cat([nan, points, nan])
    p2, p1, n1, n2 = (padded[2 + k:2 + k + T] for k in (-2, -1, 1, 2))
    guesses = torch.stack([(p1 + n1) / 2, 2 * p1 - p2, 2 * n1 - n2])
    enough = torch.isfinite(guesses).all(-1).sum(0) >= min_predictions
    return torch.where(enough[..., None], guesses.nanmedian(0).values, float("nan"))


def mirrored_frames(points: torch.Tensor, flip: torch.Tensor, ratio: float = 0.5,
                    margin_m: float = 0.1) -> torch.Tensor:
    """Frames whose whole skeleton came out mirrored (most of their views were).

    When most views of a frame label left as right, the consensus is the mirrored skeleton and
    the per-view test flags the good views instead. The neighbouring frames
    (:func:`temporal_reference`, at least two predictions) tell: a frame is mirrored when its
    skeleton with left and right exchanged is closer to the reference, below ``ratio`` × the
    distance as labelled and by more than ``margin_m`` metres summed over the paired joints.

    Args:
        points: (T, J, 3) metres. flip: (J,) long, the left/right permutation.

    Returns:
        (T,) bool.
    """
    reference = temporal_reference(points, min_predictions=2)
    paired = flip != torch.arange(flip.numel(), device=flip.device)
    keep = (points - reference).norm(dim=-1)
    swap = (points[:, flip] - reference).norm(dim=-1)
    valid = torch.isfinite(keep) & torch.isfinite(swap) & paired
    keep, swap = torch.where(valid, keep, 0).sum(-1), torch.where(valid, swap, 0).sum(-1)
    return (valid.sum(-1) >= 4) & (swap < ratio * keep) & (keep - swap > margin_m)
