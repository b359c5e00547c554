"""People through time: linking each frame's 3D groups into tracks with stable identities.

:func:`link_tracks` takes the groups of :func:`~epiflow.calibration.association.associate` (one
rough 3D pose per person and frame) and walks forward in time. Each live track predicts where its
person is now with a constant velocity (the median step of its joints, smoothed over frames);
the tracks and the frame's groups are matched by the Hungarian algorithm on the median distance
of the joints both have (:func:`pose_distances`), within a gate that widens with the frames a
track has been unseen (``gate_m`` + ``gap_gate_m`` per frame missed). A group left over starts a
track; a track unseen for more than ``max_gap`` frames ends. So an identity survives a person
hidden for a few frames, and two people crossing keep theirs even when each moves farther in a
frame than the gap between them: the velocity carries each on its way. Tracks shorter than
``min_length`` frames are dropped (two ghosts that happened to agree for an instant).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["link_tracks", "pose_distances"]


def pose_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(K, G) median distance, metres, over the joints placed in both, of poses a (K, J, 3) and
    b (G, J, 3) (the median: a few misplaced joints of a group seen by few views must not part
    it from its track); inf where they share no joint."""
    d = np.linalg.norm(a[:, None] - b[None], axis=-1)                      # (K, G, J)
    ok = np.isfinite(d)
    d = np.sort(np.where(ok, d, np.inf), axis=-1)
    n = ok.sum(-1)
    lo = np.take_along_axis(d, np.maximum((n - 1) // 2, 0)[..., None], -1)[..., 0]
    hi = np.take_along_axis(d, np.maximum(n // 2, 0)[..., None], -1)[..., 0]
    return np.where(n > 0, 0.5 * (lo + hi), np.inf)


class _Track:
    """A track's last pose, time and centroid velocity (metres per frame)."""

    def __init__(self, pose: np.ndarray, t: int):
        self.pose, self.t, self.velocity, self.length = pose, t, np.zeros(3), 1

    def predicted(self, t: int) -> np.ndarray:
        return self.pose + self.velocity * (t - self.t)

    def update(self, pose: np.ndarray, t: int, gate_m: float) -> None:
        """Take the pose of frame t; joints missing or farther than gate_m from the prediction
        keep the prediction, and the velocity follows the median joint step."""
        pred = self.predicted(t)
        dist = np.linalg.norm(pose - pred, axis=-1)
        near = dist <= gate_m
        if near.any():
            step = np.median(pose[near] - self.pose[near], axis=0)
            self.velocity = 0.5 * self.velocity + 0.5 * step / (t - self.t)
        self.pose = np.where((dist > gate_m)[:, None] | ~np.isfinite(pose), pred, pose)
        self.pose = np.where(np.isfinite(self.pose), self.pose, pose)
        self.t = t
        self.length += 1


def _check(points3d: np.ndarray) -> np.ndarray:
    p = np.asarray(points3d, dtype=np.float64)
    if p.ndim != 4 or p.shape[-1] != 3:
        raise ValueError(f"points3d must have shape (T, G, J, 3): frames, groups, joints, xyz "
                         f"metres; got {p.shape}")
    return p


def link_tracks(points3d, *, gate_m: float = 0.35, gap_gate_m: float = 0.05, max_gap: int = 15,
                min_length: int = 5) -> np.ndarray:
    """Link per-frame groups into tracks (module docstring).

    Args:
        points3d: (T, G, J, 3) metres, world frame: each frame's groups (a group with no placed
            joint is absent).
        gate_m: the largest median joint distance, metres, between a track's prediction and a group
            of the next frame; ``gap_gate_m`` more for each frame the track went unseen.
        max_gap: a track unseen for more frames than this ends.
        min_length: tracks with fewer frames are dropped (their groups get -1).

    Returns:
        (T, G) int track of each group, numbered 0.. in order of first appearance; -1 = none.

    Example:
        >>> track = link_tracks(assoc.points3d)      # (T, G)
    """
    p = _check(points3d)
    T, G = p.shape[:2]
    track = np.full((T, G), -1)
    tracks: list[_Track] = []
    for t in range(T):
        present = np.flatnonzero(np.isfinite(p[t]).all(-1).any(-1))
        live = [k for k, tr in enumerate(tracks) if t - tr.t <= max_gap]
        matched = set()
        if live and present.size:
            pred = np.stack([tracks[k].predicted(t) for k in live])
            cost = pose_distances(pred, p[t, present])
            gate = gate_m + gap_gate_m * np.array([t - tracks[k].t - 1 for k in live])
            cost = np.where(cost <= gate[:, None], cost, 1e6)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if cost[r, c] < 1e6:
                    tracks[live[r]].update(p[t, present[c]], t, gate[r])
                    track[t, present[c]] = live[r]
                    matched.add(c)
        for c in range(present.size):
            if c not in matched:
                track[t, present[c]] = len(tracks)
                tracks.append(_Track(p[t, present[c]], t))
    # tracks of at least min_length frames, numbered 0.. by first appearance; others -1
    lengths = np.array([tr.length for tr in tracks], int)
    return renumbered(track, np.flatnonzero(lengths >= min_length), len(lengths))


def renumbered(ids: np.ndarray, keep: np.ndarray, n: int) -> np.ndarray:
    """``ids`` (any shape) of ``n`` tracks or people, -1 = none, with only the sorted ids
    ``keep`` left, numbered 0.. in that order; the others become -1."""
    new = np.full(n + 1, -1)
    new[keep] = np.arange(len(keep))
    return new[ids]
