"""Torch datasets over the pose store: one camera's 2D keypoints in, its 3D label out.

A session (:class:`SessionArrays`, read whole from the store or built in memory) is turned once
into per-camera arrays (:func:`prepare_session`):

- ``x (T, C, J, 2)``: the lifter input (:func:`normalize_keypoints`), always finite;
- ``uv (T, C, J, 2)``: undistorted normalised image coordinates (x/z, y/z); NaN = missing;
- ``conf (T, C, J)``: 2D confidences;
- ``y (T, C, J, 3)`` and ``w (T, C, J)``: the training label in each camera's frame,
  root-relative, metres, and its per-joint weight (pseudo-label weight, or 1 for ground truth);
  NaN labels have weight 0;
- ``gt (T, C, J, 3)``: ground truth likewise, when the session has it (for evaluation);
- ``R (C, 3, 3)``: the world->camera rotations (the relative rotation between views i and j is
  ``R_j R_i^T``, which is what :meth:`CameraRig.relative_pose` gives);
- ``level (C, 3, 3)`` or None: with ``level=True`` every camera is replaced by its level camera
  (:mod:`epiflow.models.level`): ``uv``, ``x``, ``y``, ``gt`` and ``R`` are all in that frame,
  and ``level`` holds the camera -> level camera rotations.

:class:`PoseDataset` indexes every (session, frame, camera) with a label (or every instant, with
all views, when ``views=True``) and answers a whole batch of indices at once (``__getitems__``),
so data loading costs a few array gathers per batch. Split by session: :func:`split_sessions`.

Several people: each labelled person of a store session is a sequence of its own
(:meth:`SessionArrays.people_from_store`: the person's 2D detections gathered by the store's
``person_slots``, its labels and, where the ground truth has several people, the nearest true
person); they share the session's :attr:`SessionArrays.session_id`, so a split never puts one
session's people on both sides.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch

from epiflow.calibration.camera import CameraRig
from epiflow.calibration.relative_pose import quiet_nan_warnings
from epiflow.models.level import body_up, level_rotation, rotate_rays
from epiflow.skeleton import get_joint_set, map_to_h36m

__all__ = ["SessionArrays", "PreparedSession", "DataError", "load_sessions", "ready_sessions",
           "normalize_keypoints", "labels_in_cameras", "prepare_session", "PoseDataset",
           "split_sessions", "collate_batch", "mirror_batch"]

Labels = Literal["pseudo", "gt"]


class DataError(ValueError):
    """Training data that cannot be used as asked (no labels, wrong joint set, ...)."""


@dataclass(frozen=True, eq=False)
class SessionArrays:
    """One person of one capture session, in memory.

    Attributes:
        name: the sequence's name: the session id (one person), or ``<session id>:p<person id>``.
        joint_set: joint set of every array below.
        keypoints2d: (T, C, J, 3) pixels (distorted image) and confidence; NaN / 0 = missing.
        rig: the session's cameras (world frame of ``pseudo3d``).
        pseudo3d: (T, J, 3) metres, world frame, or None. pseudo3d_weight: (T, J) or None.
        gt3d: (T, J, 3) metres, or None; in the world frame of ``gt_rig`` (``rig`` when None).
        crops: (T, C, S, S, 3) uint8 person crops, or None. fps: frames per second or None.
        session_id: the store session it comes from (default: ``name``); person_id: the
            person's stable id in that session.
    """

    name: str
    keypoints2d: np.ndarray
    rig: CameraRig
    joint_set: str
    pseudo3d: np.ndarray | None = None
    pseudo3d_weight: np.ndarray | None = None
    gt3d: np.ndarray | None = None
    gt_rig: CameraRig | None = None
    crops: np.ndarray | None = None
    fps: float | None = None
    session_id: str = ""
    person_id: int = 0

    def __post_init__(self):
        if not self.session_id:
            object.__setattr__(self, "session_id", self.name)
        T, C, J = self.keypoints2d.shape[:3]
        checks = {"keypoints2d": (self.keypoints2d, (T, C, len(get_joint_set(self.joint_set)), 3)),
                  "pseudo3d": (self.pseudo3d, (T, J, 3)),
                  "pseudo3d_weight": (self.pseudo3d_weight, (T, J)), "gt3d": (self.gt3d, (T, J, 3))}
        for what, (value, shape) in checks.items():
            if value is not None and value.shape != shape:
                raise DataError(f"session {self.name!r}: {what} must have shape {shape} "
                                f"(joint set {self.joint_set}); got {value.shape}")
        if len(self.rig) != C:
            raise DataError(f"session {self.name!r}: {C} cameras of keypoints but a rig of "
                            f"{len(self.rig)} ({self.rig.names})")

    @classmethod
    def people_from_store(cls, session, need_crops: bool = False, frames: slice = slice(None)
                          ) -> list["SessionArrays"]:
        """Each labelled person of a store session (read whole through its typed readers, or
        only ``frames``) as a sequence; a session without labels yet is one sequence of its
        slot-0 detections.

        Args:
            session: an :class:`epiflow.store.Session` whose cameras are written.
            need_crops: also read the person crops (an error when the session has none, or
                several people: crops are kept for detection slot 0 only).
            frames: a slice along T (a chunk, for :mod:`epiflow.models.streaming`); the
                true person matched to each labelled one is then the nearest over these frames.
        """
        labels = session.labels(frames) if session.has_labels else None
        people = labels.people() if labels is not None else []
        if need_crops and (session.crops is None or len(people) > 1):
            why = ("has no person crops" if session.crops is None else
                   f"has {len(people)} people and the store keeps crops of one (slot 0)")
            raise DataError(f"session {session.id!r} of {session.url!r} {why}; the image model "
                            f"trains on crops (one person's: detection slot 0): re-run the "
                            f"pipeline with store.crop_size > 0 and detect.max_people = 1, or "
                            f"leave the session out of data.sessions")
        truth = session.ground_truth(frames)
        usable = truth is not None and truth.frame != "source"  # a frame the cameras relate to
        detections = np.asarray(session.keypoints2d[frames], np.float32)
        common = dict(rig=session.rig, joint_set=session.joint_set, fps=session.fps,
                      gt_rig=truth.rig if usable else None, session_id=session.id,
                      crops=np.asarray(session.crops[frames]) if need_crops else None)
        if not people:
            return [cls(name=session.id, keypoints2d=detections[:, :, 0],
                        gt3d=truth.points[:, 0] if usable else None, **common)]
        return [cls(name=session.id if len(people) == 1 else f"{session.id}:p{p.person_id}",
                    keypoints2d=p.keypoints(detections), pseudo3d=p.pseudo3d,
                    pseudo3d_weight=p.weight, person_id=p.person_id,
                    gt3d=_nearest_truth(truth.points, p.pseudo3d) if usable else None, **common)
                for p in people]

    @classmethod
    def from_capture(cls, capture, name: str | None = None) -> "SessionArrays":
        """A synthetic capture (:class:`epiflow.datasets.synthetic.SyntheticCapture`) as an
        unlabelled session with its true cameras and ground truth: test data for evaluation,
        never written to a store (the pipeline writes stores)."""
        kp = capture.keypoints
        return cls(name or capture.name, kp.data.astype(np.float32), capture.rig, kp.joint_set,
                   gt3d=capture.points3d.astype(np.float32), gt_rig=capture.rig, fps=kp.fps)


def load_sessions(store, ids: Sequence[str] | None = None, need_crops: bool = False
                  ) -> list[SessionArrays]:
    """Read sessions of a store (a path, URL or open :class:`PoseStore`) whole into memory,
    each labelled person a :class:`SessionArrays` of its own
    (:meth:`SessionArrays.people_from_store`).

    Args:
        ids: the sessions to read; each must have its cameras. None: every session that has
            them; those without (calibration pending or failed) are left out with a warning
            naming them, as the pipeline's report does.
    """
    return [person for s in ready_sessions(store, ids)
            for person in SessionArrays.people_from_store(s, need_crops)]


def ready_sessions(store, ids: Sequence[str] | None = None) -> list:
    """The store's sessions (:class:`epiflow.store.Session`) that have cameras, of ``ids`` or
    of all (then those without are left out with a warning naming them); what
    :func:`load_sessions` reads and :mod:`epiflow.models.streaming` streams."""
    from epiflow.store import PoseStore
    store = store if hasattr(store, "session_ids") else PoseStore.open(store, "r")
    sessions = [store.session(sid) for sid in (store.session_ids() if ids is None else ids)]
    has_cameras = [s.has_cameras for s in sessions]
    ready = [s for s, ok in zip(sessions, has_cameras) if ok]
    skipped = [f"{s.id} (calibrate: {s.status.get('calibrate')})"
               for s, ok in zip(sessions, has_cameras) if not ok]
    if skipped and ids is not None:
        raise DataError(f"sessions of {store.url!r} without cameras: {', '.join(skipped)}; "
                        f"finish them with `epiflow run` or leave them out of data.sessions")
    if skipped:
        warnings.warn(f"{store.url}: left out {len(skipped)} session(s) without cameras: "
                      f"{', '.join(skipped)}", stacklevel=2)
    if not ready:
        raise DataError(f"pose store {store.url!r} has no session with cameras to train on; "
                        f"fill it with `epiflow run`")
    return ready


def _nearest_truth(truth: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The true person (T, J, 3) of ``truth`` (T, N, J, 3) nearest to one person's labels
    (T, J, 3) by median joint distance (the only one when N = 1)."""
    if truth.shape[1] == 1:
        return truth[:, 0]
    with np.errstate(invalid="ignore"):
        dist = np.linalg.norm(truth - labels[:, None], axis=-1)          # (T, N, J)
    seen = np.isfinite(dist)
    median = [np.median(dist[:, n][seen[:, n]]) if seen[:, n].any() else np.inf
              for n in range(truth.shape[1])]
    return truth[:, int(np.argmin(median))]


def _tree_root(joint_set: str) -> int:
    js = get_joint_set(joint_set)
    if js.parents is None:
        raise DataError(f"joint set {joint_set!r} has no kinematic tree, so no root joint for "
                        f"root-relative poses; train on h36m17 (data.joint_set = 'h36m17')")
    return js.parents.index(-1)


def convert_joint_set(session: SessionArrays, joint_set: str) -> SessionArrays:
    """The session on ``joint_set``: unchanged, or mapped onto the canonical ``h36m17``."""
    if session.joint_set == joint_set:
        return session
    if joint_set != "h36m17":
        raise DataError(f"session {session.name!r} has joint set {session.joint_set!r}; the config "
                        f"asks for {joint_set!r}, which it cannot be mapped to (only onto "
                        f"'h36m17'). Set data.joint_set = {session.joint_set!r}"
                        + ("" if session.joint_set == "h36m17" else " or 'h36m17'"))

    def pts(a):
        return None if a is None else map_to_h36m(a, session.joint_set, confidence=False)
    weight = None
    if session.pseudo3d is not None:
        both = np.concatenate([session.pseudo3d, session.pseudo3d_weight[..., None]], -1)
        weight = map_to_h36m(both, session.joint_set, confidence=True)[..., 3]
    return SessionArrays(
        session.name, map_to_h36m(session.keypoints2d, session.joint_set, confidence=True),
        session.rig, "h36m17", pts(session.pseudo3d), weight, pts(session.gt3d), session.gt_rig,
        session.crops, session.fps, session.session_id, session.person_id)


def normalize_keypoints(uv: np.ndarray, root: int = 0) -> np.ndarray:
    """The lifters' input: 2D keypoints relative to the root, scaled to unit spread.

    Each pose's root-relative normalised coordinates are divided by their RMS distance from the
    root, so the input does not depend on the person's distance or the focal length; the root's
    own (otherwise zero) slot holds the root's normalised image position, which tells the model
    the direction it is seen from. Missing joints become 0.

    Args:
        uv: (..., J, 2) undistorted normalised image coordinates (x/z, y/z); NaN = missing.

    Returns:
        (..., J, 2) float32, finite (all zeros where the root is missing).
    """
    uv = np.asarray(uv, dtype=np.float64)
    rel = uv - uv[..., root:root + 1, :]
    with quiet_nan_warnings():  # a pose with no joint seen (a person hidden from a camera)
        spread = np.sqrt(np.nanmean(np.square(rel).sum(-1), axis=-1))[..., None, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        x = rel / np.where(spread > 1e-9, spread, np.nan)
    x[..., root, :] = uv[..., root, :]
    return np.nan_to_num(x, nan=0.0).astype(np.float32)


def labels_in_cameras(points3d: np.ndarray, rig: CameraRig, root: int = 0) -> np.ndarray:
    """World poses in every camera's frame, root-relative.

    Args:
        points3d: (T, J, 3) metres, the rig's world frame; NaN = missing.

    Returns:
        (T, C, J, 3) float32 metres; a pose whose root is NaN is NaN throughout.
    """
    rel = points3d - points3d[:, root:root + 1]
    rot = np.einsum("cab,tjb->tcja", rig.R, rel)
    return rot.astype(np.float32)


@dataclass(frozen=True, eq=False)
class PreparedSession:
    """Per-camera training arrays of one session (see the module docstring)."""

    name: str
    x: np.ndarray
    uv: np.ndarray
    conf: np.ndarray
    y: np.ndarray
    w: np.ndarray
    gt: np.ndarray | None
    R: np.ndarray
    crops: np.ndarray | None
    joint_set: str
    root: int = 0
    level: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return self.x.shape[0]

    @property
    def n_cameras(self) -> int:
        return self.x.shape[1]


def _label_arrays(session: SessionArrays, labels: Labels, root: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    if labels == "pseudo":
        if session.pseudo3d is None:
            raise DataError(f"session {session.name!r} has no pseudo-labels (its triangulate stage "
                            f"is not done); run `epiflow run` on the store, or train on ground "
                            f"truth with data.labels = 'gt'")
        y = labels_in_cameras(session.pseudo3d, session.rig, root)
        w = np.broadcast_to(session.pseudo3d_weight[:, None], y.shape[:3])
    elif labels == "gt":
        if session.gt3d is None:
            raise DataError(f"session {session.name!r} has no ground truth gt3d; data.labels = "
                            f"'gt' needs a source with 3D ground truth; use data.labels = 'pseudo'")
        y = labels_in_cameras(session.gt3d, session.gt_rig or session.rig, root)
        w = np.ones(y.shape[:3], np.float32)
    else:
        raise DataError(f"data.labels must be 'pseudo' or 'gt'; got {labels!r}")
    w = np.where(np.isfinite(y).all(-1) & np.isfinite(w), w, 0).astype(np.float32)
    return y, w


def _level_rotations(session: SessionArrays, joint_set: str) -> np.ndarray:
    """(C, 3, 3) camera -> level camera rotations, the vertical taken from the session's 3D
    (pseudo-labels, else ground truth in its own rig's world:
    :func:`~epiflow.models.level.body_up`). A sequence with neither (a person who left the view
    for a whole streamed unit) has no label to learn from: its cameras are kept (identity)."""
    for points, rig in ((session.pseudo3d, session.rig),
                        (session.gt3d, session.gt_rig or session.rig)):
        if points is None:
            continue
        try:
            up = body_up(points, joint_set)
        except ValueError:  # no frame with both the pelvis and the thorax
            continue
        return np.stack([level_rotation(R @ up) for R in rig.R])
    return np.repeat(np.eye(3)[None], len(session.rig), 0)


def prepare_session(session: SessionArrays, labels: Labels | None = "pseudo",
                    joint_set: str = "h36m17", level: bool = False) -> PreparedSession:
    """Turn a session into per-camera lifter inputs and labels (module docstring).

    Args:
        labels: ``"pseudo"`` (the store's pseudo-labels with their weights), ``"gt"`` (ground
            truth, weight 1) or None (no training label; ``y`` NaN, e.g. for evaluation).
        joint_set: the joint set the model works on (the session's, or ``h36m17``).
        level: express everything in each camera's level camera (module docstring).
    """
    session = convert_joint_set(session, joint_set)
    root = _tree_root(joint_set)
    kp = session.keypoints2d
    uv = session.rig.undistort(np.moveaxis(kp[..., :2], 1, 0).astype(np.float64))
    uv = np.moveaxis(uv, 0, 1)
    L = _level_rotations(session, joint_set) if level else None
    if L is not None:
        uv = np.stack([rotate_rays(uv[:, c], L[c]) for c in range(len(L))], 1)
    uv = uv.astype(np.float32)
    if labels is None:
        y = np.full(uv.shape[:3] + (3,), np.nan, np.float32)
        w = np.zeros(uv.shape[:3], np.float32)
    else:
        y, w = _label_arrays(session, labels, root)
    conf = np.nan_to_num(kp[..., 2]).astype(np.float32)
    w = np.where(conf[..., root:root + 1] > 0, w, 0).astype(np.float32)  # no input, no training
    gt = None
    if session.gt3d is not None:
        gt = labels_in_cameras(session.gt3d, session.gt_rig or session.rig, root)
    R = session.rig.R
    if L is not None:
        y = np.einsum("cab,tcjb->tcja", L, y).astype(np.float32)
        gt = None if gt is None else np.einsum("cab,tcjb->tcja", L, gt).astype(np.float32)
        R = L @ R
    return PreparedSession(session.name, normalize_keypoints(uv, root), uv, conf, y, w, gt,
                           R.astype(np.float32), session.crops, joint_set, root,
                           None if L is None else L.astype(np.float32))


def split_sessions(names: Sequence[str], val_fraction: float = 0.2,
                   val_sessions: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """Split session names into (training, validation), never splitting a session.

    ``val_sessions`` when given, else the last ``val_fraction`` of the sessions (at least one when
    there are two or more and the fraction is positive).
    """
    names = list(names)
    if val_sessions:
        unknown = sorted(set(val_sessions) - set(names))
        if unknown:
            raise DataError(f"data.val_sessions names {unknown}, not among the sessions {names}")
        return [n for n in names if n not in val_sessions], [n for n in names if n in val_sessions]
    n_val = int(round(val_fraction * len(names)))
    if val_fraction > 0 and len(names) > 1:
        n_val = min(max(n_val, 1), len(names) - 1)
    return names[:len(names) - n_val], names[len(names) - n_val:]


class PoseDataset(torch.utils.data.Dataset):
    """Samples over prepared sessions.

    A sample is one camera of one frame (``views=False``, ``V = 1``) or all cameras of one frame
    (``views=True``, ``V = C``, for multi-view consistency), as a dict of tensors:

    - ``x (V, W, J, 2)`` lifter input over a window of ``W`` frames centred on the frame (edges
      repeat the first/last frame); ``uv (V, J, 2)``, ``conf (V, J)`` of the centre frame;
    - ``y (V, J, 3)``, ``w (V, J)``: the label and weights; ``gt (V, J, 3)`` when every session
      has ground truth; ``R (V, 3, 3)``: world->camera rotations of the views;
    - ``image (V, 3, S, S)`` uint8 person crops when ``images=True`` (divide by 255 on the device);
    - ``session (,)``, ``frame (,)``, ``camera (V,)`` int64 indices.

    Samples whose root joint is missing in 2D are left out (the lifter input needs it), and so are
    samples without a positive label weight unless ``keep_unlabelled``.
    Index a batch at once with ``dataset.__getitems__(indices)`` (what DataLoader does).
    """

    def __init__(self, sessions: Sequence[PreparedSession], window: int = 1, views: bool = False,
                 images: bool = False, keep_unlabelled: bool = False):
        if not sessions:
            raise DataError("a dataset needs at least one session; got none")
        if window < 1 or window % 2 == 0:
            raise DataError(f"window must be a positive odd number of frames; got {window}")
        if len({s.n_cameras for s in sessions}) > 1 and views:
            raise DataError("multi-view samples need every session to have the same number of "
                            f"cameras; got {[s.n_cameras for s in sessions]}")
        if images and any(s.crops is None for s in sessions):
            raise DataError("image samples need person crops in every session; "
                            f"{[s.name for s in sessions if s.crops is None]} have none")
        self.sessions, self.window, self.views, self.images = list(sessions), window, views, images
        self.names = [s.name for s in sessions]
        self._concat()
        self._index(keep_unlabelled)

    def _concat(self):
        cat = lambda k: np.concatenate([getattr(s, k) for s in self.sessions])  # noqa: E731
        self.x, self.uv, self.conf, self.y, self.w = (cat(k) for k in ("x", "uv", "conf", "y", "w"))
        self.gt = cat("gt") if all(s.gt is not None for s in self.sessions) else None
        self.crops = cat("crops") if self.images else None
        lengths = np.array([s.n_frames for s in self.sessions])
        self.start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.length = lengths
        self.R = np.concatenate([s.R for s in self.sessions])               # (sum C, 3, 3)
        self.cam_start = np.concatenate([[0], np.cumsum([s.n_cameras for s in self.sessions])])

    def _index(self, keep_unlabelled: bool):
        rows = []
        for k, s in enumerate(self.sessions):
            seen = s.conf[..., s.root] > 0                                # (T, C) input usable
            if not keep_unlabelled:
                seen = seen & (s.w > 0).any(-1)
            if self.views:
                t = np.flatnonzero(seen.any(1))
                rows.append(np.stack([np.full_like(t, k), t, np.zeros_like(t)], 1))
            else:
                t, c = np.nonzero(seen)
                rows.append(np.stack([np.full_like(t, k), t, c], 1))
        self.index = np.concatenate(rows).astype(np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        batch = self.__getitems__([i])
        return {k: v[0] for k, v in batch.items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        rows = self.index[np.asarray(indices, dtype=np.int64)]
        k, t = rows[:, 0], rows[:, 1]
        C = self.sessions[0].n_cameras
        cams = np.tile(np.arange(C), (len(rows), 1)) if self.views else rows[:, 2:3]   # (B, V)
        g = self.start[k] + t                                                          # (B,)
        offsets = np.arange(self.window) - self.window // 2
        gw = self.start[k, None] + np.clip(t[:, None] + offsets, 0, self.length[k, None] - 1)
        out = {"x": self.x[gw[:, None, :], cams[:, :, None]],                  # (B, V, W, J, 2)
               "uv": self.uv[g[:, None], cams], "conf": self.conf[g[:, None], cams],
               "y": self.y[g[:, None], cams], "w": self.w[g[:, None], cams],
               "R": self.R[self.cam_start[k, None] + cams],
               "session": k, "frame": t, "camera": cams}
        if self.gt is not None:
            out["gt"] = self.gt[g[:, None], cams]
        if self.images:
            img = self.crops[g[:, None], cams]                                  # (B, V, S, S, 3)
            out["image"] = torch.from_numpy(np.ascontiguousarray(img)).permute(0, 1, 4, 2, 3)
        return {key: v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v))
                for key, v in out.items()}


def collate_batch(batch):
    """DataLoader ``collate_fn`` for :class:`PoseDataset`: batches come whole from
    ``__getitems__``, so this passes them through (and still stacks a list of single samples)."""
    if isinstance(batch, dict):
        return batch
    return torch.utils.data.default_collate(batch)


def mirror_batch(batch: dict, flip_permutation, mask: torch.Tensor) -> dict:
    """Mirror the samples where ``mask`` is True: the scene reflected through each camera's
    y-z plane (x -> -x), so left becomes right (joints swapped by ``flip_permutation``).

    The normalised input, the image coordinates, the labels and the crops are reflected alike,
    and every world->camera rotation R becomes F R F with F = diag(-1, 1, 1), so relative poses
    between views stay consistent. Data augmentation: a mirrored capture is a valid capture.

    Args:
        batch: a :class:`PoseDataset` batch (any device). flip_permutation: (J,) joint indices.
        mask: (B,) bool, the samples to mirror.
    """
    perm = torch.as_tensor(np.asarray(flip_permutation), device=mask.device)
    out = dict(batch)

    def pick(key: str, mirrored: torch.Tensor) -> None:
        m = mask.view(-1, *[1] * (batch[key].ndim - 1))
        out[key] = torch.where(m, mirrored, batch[key])
    sign = torch.tensor([-1.0, 1.0, 1.0], device=mask.device)
    for key in ("x", "uv", "y", "gt"):
        if key in batch:
            v = batch[key]
            pick(key, v[..., perm, :] * sign[:v.shape[-1]].to(v.dtype))
    for key in ("conf", "w"):
        pick(key, batch[key][..., perm])
    F = torch.diag(sign).to(batch["R"].dtype)
    pick("R", F @ batch["R"] @ F)
    if "image" in batch:
        pick("image", batch["image"].flip(-1))
    return out
