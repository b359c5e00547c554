"""The view graph: which camera pairs see the person together, and initial poses from it.

Nodes are cameras; an edge is a pair whose pooled relative pose
(:class:`~epiflow.calibration.relative_pose.PairPose`) rests on enough inliers. Initial poses
come from chaining relative rotations along a maximum spanning tree (weighted by inliers). Each
edge knows its baseline only up to scale; the scale of a new camera is the one that makes its
rays meet the points already triangulated from the cameras placed before it (a median over
shared points), so all cameras end in one consistent scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from epiflow.calibration.camera import CalibrationError
from epiflow.calibration.mirroring import apply_flips
from epiflow.calibration.relative_pose import PairPose
from epiflow.calibration.triangulation import triangulate_linear

__all__ = ["connected_components", "check_connected", "spanning_tree", "InitialPoses",
           "chain_poses", "scale_from_points", "invert"]


def connected_components(n_cameras: int, edges: list[tuple[int, int]]) -> list[list[int]]:
    """Groups of cameras joined by edges, each sorted, largest group first."""
    parent = list(range(n_cameras))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a
    for i, j in edges:
        parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for c in range(n_cameras):
        groups.setdefault(find(c), []).append(c)
    return sorted(groups.values(), key=lambda g: (-len(g), g))


def check_connected(names: list[str], edges: list[tuple[int, int]], reasons: dict | None = None):
    """Raise :class:`CalibrationError` naming the groups of cameras when the graph is split.

    Args:
        names: camera names by index. edges: usable pairs. reasons: optional ``{(i, j): why}``
            for pairs that were rejected, quoted in the error.
    """
    groups = connected_components(len(names), edges)
    if len(groups) == 1:
        return
    listed = "; ".join("{" + ", ".join(names[c] for c in g) + "}" for g in groups)
    why = ""
    if reasons:
        why = " Rejected pairs: " + "; ".join(f"{names[i]}–{names[j]}: {r}"
                                               for (i, j), r in sorted(reasons.items())) + "."
    raise CalibrationError(
        f"the view graph is disconnected: the cameras fall into {len(groups)} groups that share "
        f"no usable observations: {listed}.{why} Record frames where these groups see the person "
        f"at the same time (the person walking through the overlap of their views).")


def spanning_tree(n_cameras: int, pairs: list[PairPose], root: int = 0) -> list[PairPose]:
    """A maximum spanning tree (by inlier count), as edges oriented parent → child in BFS order.

    Each returned :class:`PairPose` has ``i`` = parent, ``j`` = child (pairs are inverted where
    needed). Assumes the graph is connected (see :func:`check_connected`).
    """
    placed, order = {root}, []
    while len(placed) < n_cameras:
        crossing = [p for p in pairs if (p.i in placed) != (p.j in placed)]
        if not crossing:
            raise CalibrationError("spanning_tree: the view graph is disconnected")
        best = max(crossing, key=lambda p: p.n_inliers)
        edge = best if best.i in placed else invert(best)
        order.append(edge)
        placed.add(edge.j)
    return order


def invert(p: PairPose) -> PairPose:
    """The same pair seen from the other camera: j → i."""
    R = p.R.T
    return PairPose(p.j, p.i, R, -R @ p.t, p.E.T, p.flipped, p.n_shared, p.n_inliers, p.error_px)


@dataclass(frozen=True, eq=False)
class InitialPoses:
    """Cameras placed by chaining: world = camera ``root``'s frame, scale = the first edge's.

    Attributes:
        R: (C, 3, 3), t: (C, 3) world→camera. flips: (T, C) bool, the frames where each
        camera's left/right labels are exchanged relative to the root camera's.
    """

    R: np.ndarray
    t: np.ndarray
    flips: np.ndarray


def scale_from_points(R: np.ndarray, a: np.ndarray, direction: np.ndarray, X: np.ndarray,
                      x: np.ndarray) -> float:
    """Baseline length that makes a camera's rays meet known points (median over points).

    The camera is ``x_cam = R X + a + s · direction``; for each point with normalised
    observation x, ``x̂ × (R X + a + s d) = 0`` is solved for s in least squares.

    Args:
        R: (3, 3). a: (3,). direction: (3,) unit. X: (N, 3) world points. x: (N, 2) normalised.

    Returns:
        The median of the per-point scales (NaN when no point is usable).
    """
    h = np.concatenate([x, np.ones((len(x), 1))], 1)
    b = np.cross(h, X @ R.T + a)
    d = np.cross(h, np.broadcast_to(direction, h.shape))
    s = -(b * d).sum(1) / np.maximum((d * d).sum(1), 1e-12)
    s = s[np.isfinite(s)]
    return float(np.median(s)) if len(s) else float("nan")


def chain_poses(tree: list[PairPose], xn: np.ndarray, valid: np.ndarray, perm: np.ndarray,
                root: int = 0) -> InitialPoses:
    """Place every camera by chaining the tree's relative poses, scales fixed by triangulation.

    Args:
        tree: edges parent → child from :func:`spanning_tree`.
        xn: (C, T, J, 2) normalised coordinates. valid: (C, T, J) bool. perm: (J,) left/right.

    Returns:
        :class:`InitialPoses`.
    """
    C, T = xn.shape[:2]
    R, t = np.zeros((C, 3, 3)), np.zeros((C, 3))
    R[root] = np.eye(3)
    flips = np.zeros((T, C), bool)
    placed = [root]
    for k, edge in enumerate(tree):
        p, c = edge.i, edge.j
        flips[:, c] = flips[:, p] ^ edge.flipped
        R[c] = edge.R @ R[p]
        a = edge.R @ t[p]
        if k == 0:
            t[c] = a + edge.t
        else:
            X, x = _shared_points(R, t, placed, c, xn, valid, flips, perm)
            s = scale_from_points(R[c], a, edge.t, X, x)
            if not np.isfinite(s) or s <= 0:
                raise CalibrationError(f"cannot fix the baseline scale of camera {c}: it shares no "
                                       f"triangulable points with cameras {placed}")
            t[c] = a + s * edge.t
        placed.append(c)
    return InitialPoses(R, t, flips)


def _shared_points(R, t, placed, c, xn, valid, flips, perm):
    """Points triangulated from the placed cameras and camera c's observations of them."""
    x, v = apply_flips(xn, flips, perm), apply_flips(valid, flips, perm)
    P = torch.as_tensor(np.concatenate([R[placed], t[placed][:, :, None]], 2))
    obs = torch.as_tensor(x[placed].reshape(len(placed), -1, 2))
    w = torch.as_tensor(v[placed].reshape(len(placed), -1).astype(np.float64))
    X = triangulate_linear(P, obs, w).numpy()
    xc, vc = x[c].reshape(-1, 2), v[c].reshape(-1)
    ok = np.isfinite(X).all(1) & vc
    return X[ok], xc[ok]
