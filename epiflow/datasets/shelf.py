"""The Shelf sequence as the 4D-association repository ships it: detections, ground truth, cameras.

Folder layout (``shared/data/shelf``)::

    calibration.json        cameras "0" ... "4" (read by epiflow.calibration.formats_shelf)
    detection/{0..4}.txt    per camera, OpenPose BODY_25 bottom-up output, 301 frames
    gt.txt                  3D ground truth, 15 joints, metres, Z up

``detection/N.txt``: a header ``<skeleton type> <frames>`` (type 4 = BODY_25 in 4D-association's
numbering), then per frame: for each of the 25 joints a count n and three rows of n values (x, y
normalised to [0, 1], score); then, for each of BODY_25's 26 part-affinity pairs (:data:`PAF_PAIRS`,
4D-association's order), an n_a × n_b matrix of scores between the candidates of the pair's two
joints (nothing when either count is 0). Pixels are ``x · (width - 1), y · (height - 1)``, as
4D-association converts them.

:func:`read_shelf_people` assembles each camera-frame's candidates into people by their part
affinities (:mod:`epiflow.datasets.bottom_up`), with no ground truth: the input of
``epiflow.calibration.people.triangulate_people``. :func:`shelf_person_keypoints` instead picks one
person's candidates with the ground truth (tests and reference rows only).

``gt.txt``: a header ``15 <frames>``, then per frame the number of people and, per person, an id
line and a 4 × 15 block (rows x, y, z, valid). The 15 joints are :data:`SHELF15`: Shelf's usual 14
(epiflow's ``shelf14``) followed by the pelvis.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from epiflow.calibration.camera import CameraRig
from epiflow.calibration.formats_shelf import load_shelf_calibration
from epiflow.datasets.bottom_up import assemble_people
from epiflow.keypoints import Keypoints
from epiflow.skeleton import BODY25, SHELF14, map_to_h36m

__all__ = ["SHELF15", "PAF_PAIRS", "ShelfFrame", "ShelfPerson", "read_shelf_detections",
           "read_shelf_gt", "gt_track", "shelf_person_keypoints", "BODY25_FROM_SHELF15",
           "read_shelf_people"]

#: Joint names of the ground truth: shelf14 then the pelvis.
SHELF15 = SHELF14.joints + ("pelvis",)
#: BODY_25's part-affinity pairs (joint a, joint b), in the order 4D-association writes the matrices.
PAF_PAIRS = ((1, 8), (9, 10), (10, 11), (8, 9), (8, 12), (12, 13), (13, 14), (1, 2), (2, 3), (3, 4),
             (2, 17), (1, 5), (5, 6), (6, 7), (5, 18), (1, 0), (0, 15), (0, 16), (15, 17), (16, 18),
             (14, 19), (19, 20), (14, 21), (11, 22), (22, 23), (11, 24))
_BODY25_TYPE = 4


@dataclass(frozen=True)
class ShelfFrame:
    """One camera's bottom-up detections in one frame.

    Attributes:
        joints: 25 arrays (n_j, 3) of candidates per BODY_25 joint: x, y pixels, score.
        pafs: 26 arrays (n_a, n_b) of part-affinity scores, pair k = :data:`PAF_PAIRS` [k].
    """

    joints: tuple[np.ndarray, ...]
    pafs: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class ShelfPerson:
    """One person of the ground truth in one frame: ``points`` (15, 3) metres, Z up, in
    :data:`SHELF15` order; ``valid`` (15,) bool."""

    id: int
    points: np.ndarray
    valid: np.ndarray


class _Tokens:
    """Numbers of a whitespace-separated text file, consumed in order."""

    def __init__(self, path: Path):
        self.path = path
        self.values = np.array(path.read_text().split(), dtype=np.float64)
        self.pos = 0

    def take(self, n: int) -> np.ndarray:
        if self.pos + n > len(self.values):
            raise ValueError(f"{self.path}: ended after {len(self.values)} numbers while reading "
                             f"{n} more at position {self.pos}; the file is truncated or not this format")
        out = self.values[self.pos:self.pos + n]
        self.pos += n
        return out

    def count(self) -> int:
        value = self.take(1)[0]
        if value < 0 or value != int(value):
            raise ValueError(f"{self.path}: expected a count at position {self.pos - 1}; got {value}")
        return int(value)


def _read_frame(tokens: _Tokens, scale: np.ndarray) -> ShelfFrame:
    joints = []
    for _ in range(len(BODY25)):
        n = tokens.count()
        cand = tokens.take(3 * n).reshape(3, n).T.copy()
        cand[:, :2] *= scale
        joints.append(cand)
    pafs = tuple(tokens.take(len(joints[a]) * len(joints[b])).reshape(len(joints[a]), len(joints[b]))
                 for a, b in PAF_PAIRS)
    return ShelfFrame(tuple(joints), pafs)


def read_shelf_detections(path, image_size: tuple[int, int] = (1032, 776)) -> list[ShelfFrame]:
    """Read one camera's ``detection/N.txt`` (format in the module docstring).

    Args:
        path: the file. image_size: (width, height) of that camera, to turn [0, 1] into pixels.

    Returns:
        One :class:`ShelfFrame` per frame, candidates in pixels.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Shelf detection file {str(path)!r} does not exist")
    tokens = _Tokens(path)
    skel_type, n_frames = tokens.count(), tokens.count()
    if skel_type != _BODY25_TYPE:
        raise ValueError(f"{path}: skeleton type {skel_type}; this reader knows BODY_25 "
                         f"(type {_BODY25_TYPE}) only")
    scale = np.asarray(image_size, dtype=np.float64) - 1.0
    frames = [_read_frame(tokens, scale) for _ in range(n_frames)]
    if tokens.pos != len(tokens.values):
        raise ValueError(f"{path}: {len(tokens.values) - tokens.pos} numbers left after "
                         f"{n_frames} frames; the file is not in the expected format")
    return frames


def read_shelf_gt(path) -> list[list[ShelfPerson]]:
    """Read ``gt.txt``: per frame, the people present (format in the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Shelf ground-truth file {str(path)!r} does not exist")
    tokens = _Tokens(path)
    n_joints, n_frames = tokens.count(), tokens.count()
    if n_joints != len(SHELF15):
        raise ValueError(f"{path}: header says {n_joints} joints; expected {len(SHELF15)}")
    frames = []
    for _ in range(n_frames):
        people = []
        for _ in range(tokens.count()):
            pid = tokens.count()
            block = tokens.take(4 * n_joints).reshape(4, n_joints)
            people.append(ShelfPerson(pid, block[:3].T.copy(), block[3] > 0))
        frames.append(people)
    return frames


def gt_track(gt: list[list[ShelfPerson]], person_id: int) -> np.ndarray:
    """(T, 15, 3) metres of one person over all frames; NaN where absent or not valid."""
    out = np.full((len(gt), len(SHELF15), 3), np.nan)
    for t, people in enumerate(gt):
        for p in people:
            if p.id == person_id:
                out[t] = np.where(p.valid[:, None], p.points, np.nan)
    return out


_S = {name: i for i, name in enumerate(SHELF15)}
#: For each BODY_25 joint, the ground-truth joints whose mean stands in for it; a joint with a
#: proxy of its own (face, feet, neck) is gated at twice the distance in shelf_person_keypoints.
BODY25_FROM_SHELF15: dict[str, tuple[int, ...]] = {
    "Nose": (_S["neck"], _S["head_top"]), "Neck": (_S["l_shoulder"], _S["r_shoulder"]),
    "RShoulder": (_S["r_shoulder"],), "RElbow": (_S["r_elbow"],), "RWrist": (_S["r_wrist"],),
    "LShoulder": (_S["l_shoulder"],), "LElbow": (_S["l_elbow"],), "LWrist": (_S["l_wrist"],),
    "MidHip": (_S["pelvis"],), "RHip": (_S["r_hip"],), "RKnee": (_S["r_knee"],),
    "RAnkle": (_S["r_ankle"],), "LHip": (_S["l_hip"],), "LKnee": (_S["l_knee"],),
    "LAnkle": (_S["l_ankle"],),
    **{j: (_S["neck"], _S["head_top"]) for j in ("REye", "LEye", "REar", "LEar")},
    **{j: (_S["l_ankle"],) for j in ("LBigToe", "LSmallToe", "LHeel")},
    **{j: (_S["r_ankle"],) for j in ("RBigToe", "RSmallToe", "RHeel")},
}
_DIRECT = {"RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip", "RHip",
           "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle"}


def _proxy_points(track: np.ndarray) -> np.ndarray:
    """(T, 25, 3) stand-in 3D point per BODY_25 joint from a (T, 15, 3) ground-truth track."""
    return np.stack([track[:, list(BODY25_FROM_SHELF15[j])].mean(1) for j in BODY25.joints], 1)


def _nearest(cands: np.ndarray, target: np.ndarray, gate: float) -> np.ndarray:
    if len(cands) == 0 or not np.all(np.isfinite(target)):
        return np.array([np.nan, np.nan, 0.0])
    d = np.linalg.norm(cands[:, :2] - target, axis=1)
    i = int(np.argmin(d))
    return cands[i] if d[i] <= gate else np.array([np.nan, np.nan, 0.0])


def shelf_person_keypoints(root, person_id: int, max_distance_px: float = 50.0) -> Keypoints:
    """One person's BODY_25 keypoints in every camera, picked from the bottom-up candidates.

    This uses the ground truth, so it is for tests and reference rows only (people without it:
    :func:`read_shelf_people`): per frame, camera and joint
    it keeps the candidate nearest to the projection of the person's ground-truth joint (or its
    stand-in, :data:`BODY25_FROM_SHELF15`), if within ``max_distance_px`` (twice that for stand-ins).
    Its score, clipped to [0, 1], is the confidence.

    Args:
        root: the Shelf folder (calibration.json, detection/, gt.txt). person_id: a ground-truth id.

    Returns:
        :class:`Keypoints` (T=301, C=5, 25, 3) ``body25``, cameras "0" ... "4"; NaN where the person
        is absent or no candidate is close enough.
    """
    root = Path(root)
    rig = load_shelf_calibration(root / "calibration.json")
    track = gt_track(read_shelf_gt(root / "gt.txt"), person_id)
    if not np.isfinite(track).any():
        raise ValueError(f"{root / 'gt.txt'}: no person with id {person_id}")
    targets = rig.project(_proxy_points(track))  # (C, T, 25, 2)
    gates = np.where([j in _DIRECT for j in BODY25.joints], 1.0, 2.0) * max_distance_px
    data = np.zeros((track.shape[0], len(rig), len(BODY25), 3))
    for c, cam in enumerate(rig):
        frames = read_shelf_detections(root / "detection" / f"{cam.name}.txt", cam.size)
        for t, frame in enumerate(frames[:track.shape[0]]):
            for j, cands in enumerate(frame.joints):
                data[t, c, j] = _nearest(cands, targets[c, t, j], gates[j])
    data[..., 2] = np.clip(data[..., 2], 0.0, 1.0)  # heatmap peaks reach 1.04 now and then
    return Keypoints(data, "body25", tuple(rig.names), rig.sizes)


def _frame_count(path: Path) -> int:
    """The frame count in a detection file's header, read without parsing the frames."""
    with open(path) as f:
        head = f.readline().split()
    if len(head) < 2 or not head[1].isdigit():
        raise ValueError(f"{path}: the first line must be '<skeleton type> <frames>'; got {head!r}")
    return int(head[1])


def _check_frame_counts(paths: list[Path]) -> None:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"Shelf detection files missing: {', '.join(missing)}; expected "
                                f"detection/<camera>.txt for each camera of calibration.json")
    counts = {p.name: _frame_count(p) for p in paths}
    if len(set(counts.values())) > 1:
        listing = ", ".join(f"{name}: {n}" for name, n in counts.items())
        raise ValueError(f"Shelf detection files in {paths[0].parent} hold different frame counts "
                         f"({listing}); the cameras must cover the same frames: re-export them "
                         f"together, or cut them to the same frames")


def read_shelf_people(root, joint_set: str = "body25", *, min_paf: float = 0.0,
                      min_joints: int = 3, rig: CameraRig | None = None) -> np.ndarray:
    """Every camera's people, assembled from the bottom-up detections without the ground truth.

    Each camera-frame's candidates are grouped by their part-affinity scores
    (:func:`~epiflow.datasets.bottom_up.assemble_people`); the people are not associated across
    cameras or frames (slot p of one camera is unrelated to slot p of another).

    Args:
        root: the Shelf folder (calibration.json, detection/<camera>.txt).
        joint_set: ``"body25"`` (as detected) or ``"h36m17"``
            (:func:`~epiflow.skeleton.map_to_h36m`).
        min_paf, min_joints: passed to ``assemble_people``.
        rig: the cameras (their names give the files ``detection/<name>.txt``, their image sizes
            the pixels); None reads ``root/calibration.json``.

    Returns:
        (T, C, P, J, 3) x, y pixels and confidence in [0, 1]; cameras in the rig's order,
        people per camera-frame by summed score; P = the most people of any camera-frame; empty
        slots NaN with confidence 0.

    Raises:
        ValueError: the cameras' files hold different frame counts (each file and count named).
    """
    if joint_set not in ("body25", "h36m17"):
        raise ValueError(f"joint_set must be 'body25' or 'h36m17'; got {joint_set!r}")
    root = Path(root)
    rig = load_shelf_calibration(root / "calibration.json") if rig is None else rig
    paths = [root / "detection" / f"{cam.name}.txt" for cam in rig]
    _check_frame_counts(paths)
    per_cam = [[assemble_people(f.joints, f.pafs, PAF_PAIRS, min_paf=min_paf, min_joints=min_joints)
                for f in read_shelf_detections(path, cam.size)] for path, cam in zip(paths, rig)]
    n_people = max((len(p) for frames in per_cam for p in frames), default=0)
    out = np.full((len(per_cam[0]), len(rig), n_people, len(BODY25), 3), np.nan)
    out[..., 2] = 0.0
    for c, frames in enumerate(per_cam):
        for t, people in enumerate(frames):
            out[t, c, :len(people)] = people
    out[..., 2] = np.clip(out[..., 2], 0.0, 1.0)  # heatmap peaks reach 1.04 now and then
    return out if joint_set == "body25" else map_to_h36m(out, "body25", confidence=True)
