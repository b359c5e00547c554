"""Synthetic crowds: several people of real CMU motion seen by a virtual rig, detections unmatched.

:func:`make_crowd` builds what a multi-person 2D detector gives a multi-view system, with the truth:

- **people**: the packaged CMU clips (02_01 walk, 02_03 walk, 02_04 in place; :mod:`.cmu`) taken
  in turn, each centred, turned about the vertical and moved on the floor, started at its own
  time; a clip shorter than the capture is played forth and back. People 0 and 1 walk paths at
  right angles through the floor's centre, passing the crossing ``cross_gap_frames`` apart, so
  their pelvises come within about half a metre (:attr:`Crowd.closest`); the others stand at
  random places at least ``min_separation_m`` from everyone at every frame.
- **detector errors** per person, from :func:`~.synthetic.synthesize` with ``corruption``
  (noise, gross outliers, self-occlusion, left/right swaps, out of frame).
- **hidden from views**: a person behind another one (farther from the camera, its clean joints
  inside the nearer one's box shrunk by 10 %) loses those joints with probability 0.7, and the
  whole detection when fewer than ``min_joints`` remain; each camera-frame-person is also missed
  with probability ``miss_fraction``, and every person loses one camera for a run of
  ``hidden_run`` frames.
- **ghosts**: in each camera-frame a ghost starts with probability ``ghost_rate``: a real pose
  (a random clip, frame and heading) at a random place, seen by that camera only, for 1 to
  ``ghost_length`` frames, with 2 px noise and confidence U(0.5, 0.9).
- **shuffled**: each camera-frame's detections are put in random slots of the P axis
  (P = the most of any camera-frame), empty slots NaN with confidence 0.

Deterministic for a seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from epiflow.calibration.relative_pose import quiet_nan_warnings
from epiflow.calibration.camera import CameraRig
from epiflow.datasets.cmu import Motion, load_packaged_clip
from epiflow.datasets.synthetic import Corruption, make_rig, synthesize

__all__ = ["CrowdOptions", "Crowd", "make_crowd", "score_people", "naive_slot_order",
           "CROWD_CLIPS"]

#: the packaged clips people are taken from, in turn
CROWD_CLIPS = ("02_01", "02_03", "02_04")


@dataclass(frozen=True)
class CrowdOptions:
    """What :func:`make_crowd` builds (module docstring). Distances in metres, times in frames."""

    n_people: int = 4
    n_cameras: int = 6
    n_frames: int = 90
    area_m: float = 2.0
    radius_m: float = 6.0
    layout: str = "ring"
    corruption: Corruption = field(default_factory=lambda: Corruption(
        noise_px=2.0, outlier_fraction=0.03, drop_fraction=0.05, swap_fraction=0.02))
    ghost_rate: float = 0.05
    ghost_length: int = 15
    miss_fraction: float = 0.03
    hidden_run: int = 20
    min_joints: int = 6
    cross_gap_frames: int = 10
    min_separation_m: float = 0.6

    def __post_init__(self):
        if not 2 <= self.n_people <= 8 or self.n_cameras < 2 or self.n_frames < 2:
            raise ValueError(f"CrowdOptions: n_people must be in 2..8, n_cameras >= 2 and "
                             f"n_frames >= 2; got {self.n_people}, {self.n_cameras}, "
                             f"{self.n_frames}")


@dataclass(frozen=True, eq=False)
class Crowd:
    """A synthetic crowd and its truth.

    Attributes:
        detections: (T, C, P, J, 3) x, y pixels, confidence; empty slots NaN, conf 0; shuffled.
        truth: (T, N, J, 3) true joints, metres, world frame (h36m17).
        rig: the true cameras.
        slot_person: (T, C, P) int, the true person of each slot; -1 = ghost or empty.
        ghost: (T, C, P) bool, the slot holds a ghost.
        detected: (T, N, C) bool, the person has a detection in that camera-frame.
        closest: (a, b, frame, metres): the closest approach of two people's pelvises.
        joint_set, fps, seed, options.
    """

    detections: np.ndarray
    truth: np.ndarray
    rig: CameraRig
    slot_person: np.ndarray
    ghost: np.ndarray
    detected: np.ndarray
    closest: tuple
    joint_set: str = "h36m17"
    fps: float = 30.0
    seed: int = 0
    options: CrowdOptions = field(default_factory=CrowdOptions)


# -- people ----------------------------------------------------------------------------------------
def _ping_pong(length: int, n: int, start: int) -> np.ndarray:
    """(n,) clip frame indices played forth and back from ``start``."""
    if length < 2:
        return np.zeros(n, int)
    k = np.mod(np.arange(n) + start, 2 * (length - 1))
    return np.where(k < length, k, 2 * (length - 1) - k)


def _yaw(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _placed(points: np.ndarray, angle: float, where) -> np.ndarray:
    """Clip points (T, J, 3) centred on their pelvis' mean floor position, turned, moved."""
    centre = np.nanmean(points[:, 0], axis=0) * [1, 1, 0]
    return (points - centre) @ _yaw(angle).T + [where[0], where[1], 0.0]


def _clips() -> list[np.ndarray]:
    return [load_packaged_clip(c).to_h36m().points for c in CROWD_CLIPS]


def _crossing_pair(clips, o: CrowdOptions, rng) -> list[np.ndarray]:
    """People 0 and 1: walks at right angles through the centre, ``cross_gap_frames`` apart."""
    angle = rng.uniform(0, 2 * np.pi)
    out = []
    for i, (clip, gap) in enumerate(((clips[0], 0), (clips[1], o.cross_gap_frames))):
        mid = int(np.argmin(np.linalg.norm(clip[:, 0, :2] - clip[:, 0, :2].mean(0), axis=1)))
        idx = _ping_pong(len(clip), o.n_frames, mid - o.n_frames // 2 - gap)
        out.append(_placed(clip[idx], angle + i * np.pi / 2, (0.0, 0.0)))
    return out


def _others(clips, o: CrowdOptions, people: list, rng) -> list[np.ndarray]:
    """People 2..N-1 at random places at least min_separation_m from everyone, every frame."""
    for i in range(2, o.n_people):
        clip = clips[i % len(clips)]
        for _ in range(200):
            idx = _ping_pong(len(clip), o.n_frames, int(rng.integers(0, 2 * len(clip))))
            pts = _placed(clip[idx], rng.uniform(0, 2 * np.pi), rng.uniform(-o.area_m, o.area_m, 2))
            gaps = [np.linalg.norm(pts[:, 0, :2] - q[:, 0, :2], axis=1).min() for q in people]
            if min(gaps) >= o.min_separation_m:
                break
        people.append(pts)
    return people


# -- what each camera sees -------------------------------------------------------------------------
def _occluded(rig: CameraRig, truth: np.ndarray, clean: np.ndarray, rng) -> np.ndarray:
    """(T, N, C, J) bool: joints hidden behind a nearer person (module docstring)."""
    T, N = truth.shape[:2]
    depth = np.einsum("cj,tnj->tnc", rig.R[:, 2], truth[:, :, 0]) + rig.t[None, None, :, 2]
    with quiet_nan_warnings():
        lo, hi = np.nanmin(clean, axis=3), np.nanmax(clean, axis=3)       # (T, N, C, 2)
    pad = 0.1 * (hi - lo)
    lo, hi = lo + pad, hi - pad
    hidden = np.zeros(clean.shape[:4], bool)
    for a in range(N):
        for b in range(N):
            if a == b:
                continue
            nearer = depth[:, a] < depth[:, b]                               # (T, C)
            inside = ((clean[:, b] >= lo[:, a, :, None]) & (clean[:, b] <= hi[:, a, :, None])
                      ).all(-1)                                              # (T, C, J)
            hidden[:, b] |= nearer[..., None] & inside
    return hidden & (rng.random(hidden.shape) < 0.7)


def _person_detections(rig, truth, o: CrowdOptions, seed: int) -> np.ndarray:
    """(T, N, C, J, 3) each person's detections in every camera, hidden ones NaN."""
    T, N = truth.shape[:2]
    caps = [synthesize(Motion(truth[:, n], "h36m17", 30.0, f"person{n}"), rig, o.corruption,
                       seed=seed + 7 * n) for n in range(N)]
    det = np.stack([c.keypoints.data for c in caps], 1)                     # (T, N, C, J, 3)
    clean = np.stack([c.clean2d for c in caps], 1)
    rng = np.random.default_rng(seed)
    hidden = _occluded(rig, truth, clean, rng)
    det[hidden] = (np.nan, np.nan, 0.0)
    C = len(rig)
    gone = rng.random((T, N, C)) < o.miss_fraction
    for n in range(N):
        start = int(rng.integers(0, max(T - o.hidden_run, 1)))
        gone[start:start + o.hidden_run, n, int(rng.integers(0, C))] = True
    gone |= (np.nan_to_num(det[..., 2]) > 0).sum(-1) < o.min_joints
    det[gone] = (np.nan, np.nan, 0.0)
    return det


def _ghosts(rig, clips, o: CrowdOptions, rng) -> list[tuple[int, int, np.ndarray]]:
    """(frame, camera, (J, 3) detection) of every ghost."""
    out = []
    T, C = o.n_frames, len(rig)
    for t, c in zip(*np.nonzero(rng.random((T, C)) < o.ghost_rate)):
        clip = clips[int(rng.integers(0, len(clips)))]
        length = int(rng.integers(1, o.ghost_length + 1))
        idx = _ping_pong(len(clip), length, int(rng.integers(0, len(clip))))
        pts = _placed(clip[idx], rng.uniform(0, 2 * np.pi),
                      rng.uniform(-o.area_m - 1, o.area_m + 1, 2))
        uv = rig.subset([int(c)]).project(pts)[0]                           # (L, J, 2)
        w, h = rig[int(c)].size
        uv = uv + rng.normal(0, 2.0, uv.shape)
        inside = np.isfinite(uv).all(-1) & (uv[..., 0] >= 0) & (uv[..., 0] < w) \
            & (uv[..., 1] >= 0) & (uv[..., 1] < h)
        conf = np.where(inside, rng.uniform(0.5, 0.9, inside.shape), 0.0)
        kp = np.concatenate([np.where(inside[..., None], uv, np.nan), conf[..., None]], -1)
        for k in range(length):
            if t + k < T and inside[k].sum() >= o.min_joints:
                out.append((int(t + k), int(c), kp[k]))
    return out


def _shuffled(person_det, ghosts, rng):
    """(detections (T, C, P, J, 3), slot_person (T, C, P), ghost (T, C, P))."""
    T, N, C, J, _ = person_det.shape
    items = [[[] for _ in range(C)] for _ in range(T)]
    for t, n, c in zip(*np.nonzero((np.nan_to_num(person_det[..., 2]) > 0).any(-1))):
        items[t][c].append((int(n), person_det[t, n, c]))
    for t, c, kp in ghosts:
        items[t][c].append((-2, kp))
    P = max(1, max(len(items[t][c]) for t in range(T) for c in range(C)))
    det = np.full((T, C, P, J, 3), np.nan)
    det[..., 2] = 0.0
    who = np.full((T, C, P), -1)
    ghost = np.zeros((T, C, P), bool)
    for t in range(T):
        for c in range(C):
            for slot, (n, kp) in zip(rng.permutation(P), items[t][c]):
                det[t, c, slot] = kp
                who[t, c, slot] = max(n, -1)
                ghost[t, c, slot] = n == -2
    return det, who, ghost


def _closest(truth: np.ndarray) -> tuple:
    """(a, b, frame, metres): the closest approach of two people's pelvises."""
    d = np.linalg.norm(truth[:, :, None, 0, :2] - truth[:, None, :, 0, :2], axis=-1)
    d[:, np.arange(d.shape[1]), np.arange(d.shape[1])] = np.inf
    t, a, b = np.unravel_index(np.argmin(d), d.shape)
    return int(min(a, b)), int(max(a, b)), int(t), float(d[t, a, b])


def make_crowd(options: CrowdOptions = CrowdOptions(), seed: int = 0, **rig_options) -> Crowd:
    """A synthetic crowd (module docstring).

    Args:
        options: what to build. seed: the seed of everything.
        **rig_options: passed to :func:`~.synthetic.make_rig` (height, focal_px, size,
            distortion); the rig looks at (0, 0, 1) from ``options.radius_m``.

    Returns:
        :class:`Crowd`.
    """
    o = options
    rng = np.random.default_rng(seed)
    clips = _clips()
    people = _others(clips, o, _crossing_pair(clips, o, rng), rng)
    truth = np.stack(people, 1)                                            # (T, N, J, 3)
    rig_options = {"height": (1.2, 2.8), "focal_px": (1000.0, 1500.0), **rig_options}
    rig = make_rig(o.n_cameras, o.layout, radius=o.radius_m, target=(0.0, 0.0, 1.0), seed=seed,
                   **rig_options)
    person_det = _person_detections(rig, truth, o, seed + 1)
    det, who, ghost = _shuffled(person_det, _ghosts(rig, clips, o, rng), rng)
    detected = (np.nan_to_num(person_det[..., 2]) > 0).any(-1)
    return Crowd(det, truth, rig, who, ghost, detected, _closest(truth), seed=seed, options=o)


# -- scoring ---------------------------------------------------------------------------------------
def _frame_matches(points3d: np.ndarray, truth: np.ndarray, gate_m: float) -> np.ndarray:
    """(T, N_true) index of the result person matched to each true person (-1 none): Hungarian
    on the mean joint distance per frame, within ``gate_m``."""
    T, M = truth.shape[:2]
    out = np.full((T, M), -1)
    for t in range(T):
        with quiet_nan_warnings():
            d = np.nanmean(np.linalg.norm(points3d[t][:, None] - truth[t][None], axis=-1), -1)
        d = np.where(np.isfinite(d), d, 1e6)
        r, c = linear_sum_assignment(d)
        keep = d[r, c] <= gate_m
        out[t, c[keep]] = r[keep]
    return out


def score_people(crowd: Crowd, points3d: np.ndarray, assignment: np.ndarray,
                 gate_m: float = 0.3) -> dict:
    """How well people were found in a crowd.

    Args:
        crowd: the truth. points3d: (T, N, J, 3) metres, the result's people.
        assignment: (T, C, P) int, the result person of each slot, -1 none.
        gate_m: a result person within this mean joint distance of a true one finds it.

    Returns:
        dict: ``found`` (share of the people-frames with a detection in two cameras or more that
        a result person matches), ``mpjpe_mm`` (over the matched joints), ``swaps`` (times a true
        person's matched result changes, over all people), ``ghosts_rejected`` (share of ghost
        slots left unassigned), ``assignment_accuracy`` (share of real detections given the
        result person that most of their person's detections went to).
    """
    match = _frame_matches(np.asarray(points3d, float), crowd.truth, gate_m)
    findable = crowd.detected.sum(-1) >= 2                                  # (T, M)
    T, M = match.shape
    errs = []
    swaps = 0
    for m in range(M):
        seq = match[:, m][match[:, m] >= 0]
        swaps += int((np.diff(seq) != 0).sum())
        for t in np.nonzero(match[:, m] >= 0)[0]:
            e = np.linalg.norm(points3d[t, match[t, m]] - crowd.truth[t, m], axis=-1)
            errs.append(e[np.isfinite(e)])
    err = np.concatenate(errs) if errs else np.zeros(0)
    real = crowd.slot_person >= 0
    true, got = crowd.slot_person[real], np.asarray(assignment)[real]
    table = _majority(true, got)
    correct = (got >= 0) & (np.array([table.get(int(r), -1) for r in got]) == true)
    return dict(found=float(((match >= 0) & findable).sum() / max(findable.sum(), 1)),
                mpjpe_mm=float(1000 * err.mean()) if err.size else float("nan"),
                swaps=swaps,
                ghosts_rejected=float((assignment[crowd.ghost] < 0).mean())
                if crowd.ghost.any() else float("nan"),
                assignment_accuracy=float(correct.mean()) if real.any() else float("nan"))


def _majority(true: np.ndarray, result: np.ndarray) -> dict[int, int]:
    """Each result person's true person: the one most of its detections (n,) belong to."""
    table = {}
    for r in np.unique(result[result >= 0]):
        vals, counts = np.unique(true[result == r], return_counts=True)
        table[int(r)] = int(vals[counts.argmax()])
    return table


def naive_slot_order(det: np.ndarray) -> np.ndarray:
    """The naive association: slot p of every camera is person p. (T, C, P) assignment."""
    T, C, P = det.shape[:3]
    present = (np.nan_to_num(det[..., 2]) > 0).any(-1)
    return np.where(present, np.broadcast_to(np.arange(P), (T, C, P)), -1)
