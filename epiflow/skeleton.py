"""Joint sets and the rules that map each of them onto the canonical Human3.6M 17 joints.

Every array of keypoints in epiflow has joints on its second-to-last axis. A joint set is named
by a short string used everywhere (files, configs, npz): ``h36m17`` (canonical), ``blazepose33``,
``coco17``, ``body25``, ``body25b``, ``shelf14``, ``cmu31``.

Mapping rules (:data:`TO_H36M`): each canonical joint is the mean of one or more source joints,
looked up by name. A synthesized joint (pelvis = mid-hips, thorax = mid-shoulders, ...) is NaN when
any of its sources is NaN and takes the *lowest* confidence of its sources. Where a detector has
no head-top, ``head`` is the mid-point of the ears; ``neck`` is Human3.6M's "neck/nose" joint and
maps to the nose for face-aware detectors.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["JointSet", "JOINT_SETS", "H36M17", "get_joint_set", "map_to_h36m", "mapping_matrix"]


@dataclass(frozen=True)
class JointSet:
    """A named list of joints.

    Attributes:
        name: the short name (``"h36m17"``, ...).
        joints: joint names, in array order.
        parents: for sets with a kinematic tree, the parent index of each joint (-1 for the root).
    """

    name: str
    joints: tuple[str, ...]
    parents: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.joints)

    def index(self, joint: str) -> int:
        """Position of ``joint`` in this set; a clear error when the name is not in it."""
        try:
            return self.joints.index(joint)
        except ValueError:
            raise KeyError(f"joint {joint!r} is not in joint set {self.name!r}; "
                           f"it has: {', '.join(self.joints)}") from None

    @property
    def bones(self) -> tuple[tuple[int, int], ...]:
        """(parent, child) index pairs of the kinematic tree; empty without one."""
        if self.parents is None:
            return ()
        return tuple((p, c) for c, p in enumerate(self.parents) if p >= 0)

    @property
    def left_right(self) -> tuple[tuple[int, int], ...]:
        """(left, right) index pairs of joints that mirror each other, matched by name."""
        pairs = []
        for i, name in enumerate(self.joints):
            for lp, rp in (("l_", "r_"), ("left_", "right_"), ("L", "R"), ("l", "r")):
                if name.startswith(lp) and name[len(lp):]:
                    other = rp + name[len(lp):]
                    if other in self.joints:
                        pairs.append((i, self.joints.index(other)))
                    break
            if name.endswith("_left") and name[:-5] + "_right" in self.joints:  # mouth_left
                pairs.append((i, self.joints.index(name[:-5] + "_right")))
        return tuple(pairs)

    @property
    def flip_permutation(self) -> np.ndarray:
        """(J,) index array that swaps every left joint with its right twin (a mirror image)."""
        perm = np.arange(len(self.joints))
        for left, right in self.left_right:
            perm[left], perm[right] = right, left
        return perm


H36M17 = JointSet(
    "h36m17",
    ("pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine", "thorax",
     "neck", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist"),
    (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
)

BLAZEPOSE33 = JointSet("blazepose33", (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index"))

COCO17 = JointSet("coco17", (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle"))

BODY25 = JointSet("body25", (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip",
    "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
    "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel"))

BODY25B = JointSet("body25b", (
    "Nose", "LEye", "REye", "LEar", "REar", "LShoulder", "RShoulder", "LElbow", "RElbow",
    "LWrist", "RWrist", "LHip", "RHip", "LKnee", "RKnee", "LAnkle", "RAnkle", "UpperNeck",
    "HeadTop", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel"))

SHELF14 = JointSet("shelf14", (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow",
    "r_shoulder", "l_shoulder", "l_elbow", "l_wrist", "neck", "head_top"))

# CMU ASF bones in file order after the root; a joint's position is the distal end of its bone.
CMU31 = JointSet("cmu31", (
    "root", "lhipjoint", "lfemur", "ltibia", "lfoot", "ltoes", "rhipjoint", "rfemur", "rtibia",
    "rfoot", "rtoes", "lowerback", "upperback", "thorax", "lowerneck", "upperneck", "head",
    "lclavicle", "lhumerus", "lradius", "lwrist", "lhand", "lfingers", "lthumb", "rclavicle",
    "rhumerus", "rradius", "rwrist", "rhand", "rfingers", "rthumb"),
    (-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 15, 13, 17, 18, 19, 20, 21, 20, 13,
     24, 25, 26, 27, 28, 27),
)

JOINT_SETS: dict[str, JointSet] = {s.name: s for s in
                                   (H36M17, BLAZEPOSE33, COCO17, BODY25, BODY25B, SHELF14, CMU31)}

_L, _R = "left_", "right_"
_MEDIAPIPE_LIKE = {  # BlazePose and COCO share joint names
    "pelvis": (_L + "hip", _R + "hip"), "r_hip": (_R + "hip",), "r_knee": (_R + "knee",),
    "r_ankle": (_R + "ankle",), "l_hip": (_L + "hip",), "l_knee": (_L + "knee",),
    "l_ankle": (_L + "ankle",),
    "spine": (_L + "hip", _R + "hip", _L + "shoulder", _R + "shoulder"),
    "thorax": (_L + "shoulder", _R + "shoulder"), "neck": ("nose",),
    "head": (_L + "ear", _R + "ear"),
    "l_shoulder": (_L + "shoulder",), "l_elbow": (_L + "elbow",), "l_wrist": (_L + "wrist",),
    "r_shoulder": (_R + "shoulder",), "r_elbow": (_R + "elbow",), "r_wrist": (_R + "wrist",),
}
_OPENPOSE = {
    "pelvis": ("LHip", "RHip"), "r_hip": ("RHip",), "r_knee": ("RKnee",), "r_ankle": ("RAnkle",),
    "l_hip": ("LHip",), "l_knee": ("LKnee",), "l_ankle": ("LAnkle",),
    "spine": ("LHip", "RHip", "LShoulder", "RShoulder"), "thorax": ("LShoulder", "RShoulder"),
    "neck": ("Nose",), "head": ("LEar", "REar"),
    "l_shoulder": ("LShoulder",), "l_elbow": ("LElbow",), "l_wrist": ("LWrist",),
    "r_shoulder": ("RShoulder",), "r_elbow": ("RElbow",), "r_wrist": ("RWrist",),
}

#: For each source set, the source joints averaged into each canonical joint.
TO_H36M: dict[str, dict[str, tuple[str, ...]]] = {
    "h36m17": {j: (j,) for j in H36M17.joints},
    "blazepose33": _MEDIAPIPE_LIKE,
    "coco17": _MEDIAPIPE_LIKE,
    "body25": _OPENPOSE,
    "body25b": {**_OPENPOSE, "head": ("HeadTop",)},
    "shelf14": {
        "pelvis": ("l_hip", "r_hip"), "r_hip": ("r_hip",), "r_knee": ("r_knee",),
        "r_ankle": ("r_ankle",), "l_hip": ("l_hip",), "l_knee": ("l_knee",),
        "l_ankle": ("l_ankle",), "spine": ("l_hip", "r_hip", "l_shoulder", "r_shoulder"),
        "thorax": ("l_shoulder", "r_shoulder"), "neck": ("neck",), "head": ("head_top",),
        "l_shoulder": ("l_shoulder",), "l_elbow": ("l_elbow",), "l_wrist": ("l_wrist",),
        "r_shoulder": ("r_shoulder",), "r_elbow": ("r_elbow",), "r_wrist": ("r_wrist",),
    },
    "cmu31": {
        "pelvis": ("lhipjoint", "rhipjoint"), "r_hip": ("rhipjoint",), "r_knee": ("rfemur",),
        "r_ankle": ("rtibia",), "l_hip": ("lhipjoint",), "l_knee": ("lfemur",),
        "l_ankle": ("ltibia",), "spine": ("upperback",), "thorax": ("thorax",),
        "neck": ("upperneck",), "head": ("head",), "l_shoulder": ("lclavicle",),
        "l_elbow": ("lhumerus",), "l_wrist": ("lradius",), "r_shoulder": ("rclavicle",),
        "r_elbow": ("rhumerus",), "r_wrist": ("rradius",),
    },
}


def get_joint_set(name: str) -> JointSet:
    """The joint set called ``name``; a ``ValueError`` listing the known names otherwise."""
    try:
        return JOINT_SETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown joint set {name!r}; expected one of: "
                         f"{', '.join(JOINT_SETS)}") from None


def mapping_matrix(source: str) -> np.ndarray:
    """(17, J_src) averaging matrix from joint set ``source`` onto ``h36m17``; rows sum to 1."""
    src = get_joint_set(source)
    rules = TO_H36M[source]
    M = np.zeros((len(H36M17), len(src)))
    for i, joint in enumerate(H36M17.joints):
        idx = [src.index(s) for s in rules[joint]]
        M[i, idx] = 1.0 / len(idx)
    return M


def map_to_h36m(points: np.ndarray, source: str, *, confidence: bool) -> np.ndarray:
    """Map keypoints of joint set ``source`` onto the canonical 17 joints.

    Args:
        points: (..., J_src, D) array.
        source: name of the joint set of ``points``.
        confidence: whether the last channel is a confidence (2D keypoints ``(x, y, c)``). It takes
            the minimum over the sources of each joint; the other channels are averaged. A joint
            whose confidence is 0 or whose sources are NaN comes out NaN with confidence 0.

    Returns:
        (..., 17, D) array in ``h36m17`` order, float64.
    """
    points = np.asarray(points, dtype=np.float64)
    src = get_joint_set(source)
    if points.ndim < 2 or points.shape[-2] != len(src):
        raise ValueError(f"keypoints for joint set {source!r} must have shape (..., {len(src)}, D); "
                         f"got {points.shape}")
    M = mapping_matrix(source)
    n_coord = points.shape[-1] - 1 if confidence else points.shape[-1]
    values = points[..., :n_coord]
    coords = np.einsum("ij,...jd->...id", M, np.nan_to_num(values))
    source_nan = ~np.isfinite(values).all(-1)                       # (..., J_src)
    coords[np.einsum("ij,...j->...i", (M > 0).astype(float), source_nan) > 0] = np.nan
    if not confidence:
        return coords
    conf = np.stack([np.min(points[..., M[i] > 0, -1], axis=-1) for i in range(M.shape[0])], -1)
    conf = np.where(np.isfinite(conf) & np.isfinite(coords).all(-1), conf, 0.0)
    coords[conf <= 0] = np.nan
    return np.concatenate([coords, conf[..., None]], axis=-1)
