"""People from bottom-up 2D detections: joint candidates joined by their part-affinity scores.

A bottom-up detector (OpenPose) finds, per joint type, every candidate in the image, and per
connected joint pair (a "part affinity" pair) a score for each pair of candidates. Grouping them
into people is a greedy maximum spanning forest, as OpenPose's ``connectBodyPartsCpu`` and
4D-association's ``OpenposeDetection::Associate`` do it:

1. every connection (pair k, candidate a, candidate b) with a positive score, both candidates
   scored above 0, is sorted by score, best first;
2. a connection whose two candidates are both free starts a person; one whose one candidate
   belongs to a person adds the other, unless that person already has a candidate of that joint;
   one that joins two people merges them when they share no joint type; else it is skipped;
3. people with fewer than ``min_joints`` joints are dropped.

Each candidate ends in at most one person, each person holds at most one candidate per joint.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["assemble_people"]


def _connections(joints, pafs, pairs, min_paf: float) -> np.ndarray:
    """(M, 4) rows (score, pair, a, b), sorted by score, best first (ties: pair order)."""
    rows = []
    for k, ((ja, jb), paf) in enumerate(zip(pairs, pafs)):
        if paf.size == 0:
            continue
        ok = (paf > min_paf) & (joints[ja][:, 2, None] > 0) & (joints[jb][None, :, 2] > 0)
        a, b = np.nonzero(ok)
        rows.append(np.stack([paf[a, b], np.full(len(a), k), a, b], 1))
    if not rows:
        return np.zeros((0, 4))
    rows = np.concatenate(rows)
    return rows[np.lexsort((rows[:, 1], -rows[:, 0]))]


def _check(joints, pafs, pairs) -> None:
    if len(pafs) != len(pairs):
        raise ValueError(f"pafs must hold one matrix per pair: {len(pairs)} pairs, got {len(pafs)}")
    for k, ((ja, jb), paf) in enumerate(zip(pairs, pafs)):
        want = (len(joints[ja]), len(joints[jb]))
        if paf.shape != want:
            raise ValueError(f"pafs[{k}] (joints {ja}-{jb}) must be {want} (candidates of joint "
                             f"{ja} × of joint {jb}); got {paf.shape}")


def _group(joints, pairs, connections: np.ndarray) -> list[np.ndarray]:
    """Candidate index per joint (J,) of each person, -1 where none (steps 2 of the docstring)."""
    owner = [np.full(len(c), -1) for c in joints]  # person of each candidate
    people: list[np.ndarray | None] = []
    for _, k, a, b in connections:
        (ja, jb), a, b = pairs[int(k)], int(a), int(b)
        pa, pb = owner[ja][a], owner[jb][b]
        if pa < 0 and pb < 0:
            person = np.full(len(joints), -1)
            person[ja], person[jb] = a, b
            owner[ja][a] = owner[jb][b] = len(people)
            people.append(person)
        elif (pa < 0) != (pb < 0):
            p, j, c = (pa, jb, b) if pa >= 0 else (pb, ja, a)
            if people[p][j] < 0:
                people[p][j], owner[j][c] = c, p
        elif pa != pb and not ((people[pa] >= 0) & (people[pb] >= 0)).any():
            keep, gone = min(pa, pb), max(pa, pb)
            for j in np.flatnonzero(people[gone] >= 0):
                people[keep][j] = people[gone][j]
                owner[j][people[gone][j]] = keep
            people[gone] = None
    return [p for p in people if p is not None]


def assemble_people(joints: Sequence[np.ndarray], pafs: Sequence[np.ndarray],
                    pairs: Sequence[tuple[int, int]], *, min_paf: float = 0.0,
                    min_joints: int = 3) -> np.ndarray:
    """Group one image's bottom-up joint candidates into people (method in the module docstring).

    Args:
        joints: J arrays (n_j, 3) of candidates per joint type: x, y pixels, score.
        pafs: one (n_a, n_b) score matrix per pair, between the candidates of its two joints.
        pairs: (joint a, joint b) of each matrix, e.g. BODY_25's 26 pairs
            (:data:`epiflow.datasets.shelf.PAF_PAIRS`).
        min_paf: connections scoring at most this are never used.
        min_joints: people with fewer joints are dropped.

    Returns:
        (P, J, 3) x, y pixels and score, NaN/NaN/0 where a person lacks a joint; people ordered by
        their summed candidate score, highest first; P = 0 when nobody is found.

    Example:
        >>> people = assemble_people(frame.joints, frame.pafs, PAF_PAIRS)   # (P, 25, 3)
    """
    _check(joints, pafs, pairs)
    groups = [g for g in _group(joints, pairs, _connections(joints, pafs, pairs, min_paf))
              if (g >= 0).sum() >= min_joints]
    out = np.full((len(groups), len(joints), 3), np.nan)
    out[..., 2] = 0.0
    for p, group in enumerate(groups):
        for j in np.flatnonzero(group >= 0):
            out[p, j] = joints[j][group[j]]
    return out[np.argsort(-out[..., 2].sum(1), kind="stable")]
