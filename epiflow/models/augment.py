"""Training data that generalises to the cameras and detectors users film with (issue 14).

Every training sequence (a :class:`~epiflow.models.data.SessionArrays` with its 3D labels) is
turned into ``copies`` new sequences filmed by virtual cameras (:func:`augment_sessions`), which go
through :func:`~epiflow.models.data.prepare_session` like any other, so the augmentation serves
every model (the MLP, temporal and diffusion lifters) and every window length:

- **local pose augmentation** (:func:`perturb_bones`, as PoseDA's LPA / PoseAug): each bone of
  the kinematic tree is rotated about its parent joint by a slowly varying angle of at most
  ``bone_angle_deg`` (about an axis fixed in the body's own frame) and scaled by a factor in
  ``1 ± bone_length`` that is constant over the sequence (another person's proportions);
  positions are rebuilt by forward kinematics, so every bone keeps one length over time;
- **compositional pose augmentation** (:func:`swap_limbs`): each arm and leg of a copy may take
  its motion from another training sequence (its bones' directions in the torso's frame, kept at
  the copy's own lengths): the mocap's walks, jumps and reaches recombine into poses none of them
  holds (a kick with the arms spread, a reach on one leg), each limb still moving as a person's
  limb moves;
- **virtual cameras** (:func:`sample_camera`): portrait or landscape images, 35-mm equivalent
  focal lengths of phones and action cameras, barrel distortion growing with the field of view,
  heights from the floor to the ceiling, distances of 2–10 m, a person off the image centre, a
  small roll; resampled until the person stays in view;
- **2D corruption** by a detector error model learned from real residuals
  (:class:`DetectorErrorModel`, :mod:`epiflow.models.detector_error`).

The lifter input is intrinsics-aware already: :func:`~epiflow.models.data.normalize_keypoints`
works on undistorted normalised image coordinates (``K^-1`` applied, distortion removed), so a
portrait phone and a landscape action camera give the same input for the same rays; the root's
slot keeps the ray direction (the perspective encoding of PersPose).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from epiflow.calibration.camera import Camera, CameraRig
from epiflow.models.data import SessionArrays, convert_joint_set
from epiflow.models.detector_error import DetectorErrorModel
from epiflow.models.level import body_up
from epiflow.skeleton import get_joint_set

__all__ = ["AugmentConfig", "perturb_bones", "tilt_body", "swap_limbs", "LIMB_CHAINS", "body_up",
           "sample_camera", "project_corrupted", "augment_session", "augment_sessions",
           "FULL_FRAME_DIAGONAL_MM", "LIMB_JOINTS"]

#: the diagonal of a 35 mm film frame: 35-mm equivalent focal lengths are relative to it
FULL_FRAME_DIAGONAL_MM = 43.27

_SIZES = ((1920, 1080), (1280, 720), (1440, 1080), (3840, 2160))  # landscape; portrait = swapped


@dataclass(frozen=True)
class AugmentConfig:
    """The augmentation of a recipe (``[data.augment]``); ``copies = 0`` turns it off.

    Attributes:
        copies: new sequences made from each training sequence (each filmed by as many virtual
            cameras as the sequence has).
        bone_angle_deg: largest rotation of a bone about its parent joint, degrees.
        limb_angle_deg: the same for the upper arms and thighs (:data:`LIMB_JOINTS`).
        bone_length: largest relative change of a bone's length (0.1 = ±10 %).
        distance_m: (low, high) horizontal camera distance from the person's path, metres.
        height_m: (low, high) camera height above the floor, metres.
        focal_35mm: (low, high) 35-mm equivalent focal length, mm (action cameras ~14,
            phones' main cameras 24–28, a short tele 50).
        portrait: share of portrait images.
        max_k1: barrel distortion k1 of the widest lens (scaled down for longer ones).
        roll_deg: largest camera roll, degrees (a phone held askew).
        body_tilt_deg: largest lean of the whole body about a horizontal axis through the
            pelvis, degrees (:func:`tilt_body`: leaning, balancing on one leg, bending).
        limb_swap: chance that an arm or leg of a copy moves as the same limb of another
            training sequence (:func:`swap_limbs`; 0: off).
        detector: the 2D error model: ``"learned"`` (Shelf's OpenPose and caliscope's MediaPipe
            residuals, :mod:`epiflow.models.detector_error`) or ``"none"`` (exact 2D).
        seed: the random seed (the same seed gives the same sequences).
    """

    copies: int = 0
    bone_angle_deg: float = 12.0
    limb_angle_deg: float = 12.0
    bone_length: float = 0.1
    distance_m: tuple[float, float] = (2.0, 10.0)
    height_m: tuple[float, float] = (0.2, 2.8)
    focal_35mm: tuple[float, float] = (14.0, 50.0)
    portrait: float = 0.5
    max_k1: float = 0.25
    roll_deg: float = 5.0
    body_tilt_deg: float = 0.0
    limb_swap: float = 0.0
    detector: Literal["learned", "none"] = "learned"
    seed: int = 0


# -- local pose augmentation ----------------------------------------------------------------------
def _rodrigues(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations by ``angle`` (...) radians about unit ``axis`` (..., 3)."""
    x, y, z = np.moveaxis(axis, -1, 0)
    zero = np.zeros_like(x)
    Kx = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1),
                   np.stack([-y, x, zero], -1)], -2)
    s, c = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + s * Kx + (1 - c) * Kx @ Kx


def _body_frames(points: np.ndarray, js, up: np.ndarray) -> np.ndarray:
    """(T, 3, 3) per-frame body axes as rows (left, up, forward); identity-like where unknown."""
    across = points[:, js.index("l_hip")] - points[:, js.index("r_hip")]
    across = across - (across @ up)[:, None] * up
    n = np.linalg.norm(across, axis=-1, keepdims=True)
    across = np.where(n > 1e-6, across / np.where(n > 1e-6, n, 1), np.nan)
    fallback = np.cross(up, [1.0, 0, 0]) if abs(up[0]) < 0.9 else np.cross(up, [0, 1.0, 0])
    across = np.where(np.isfinite(across), across, fallback / np.linalg.norm(fallback))
    forward = np.cross(across, up)
    return np.stack([across, np.broadcast_to(up, across.shape), forward], 1)


#: joints whose bone (from the shoulder, from the hip) is a whole limb: ``limb_angle_deg``
LIMB_JOINTS = ("l_elbow", "r_elbow", "l_knee", "r_knee")


def perturb_bones(points: np.ndarray, joint_set: str, rng: np.random.Generator,
                  max_angle_deg: float = 12.0, max_length: float = 0.1,
                  fps: float = 30.0, limb_angle_deg: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """PoseDA's local pose augmentation on a sequence: rotate and rescale every bone.

    Each bone (parent -> child of the kinematic tree) gets a length factor ``s ~ U(1 - max_length,
    1 + max_length)`` for the whole sequence and a rotation about its parent joint by
    ``max_angle_deg · sin(2π f t + φ)`` (f in 0.1–0.5 Hz) about an axis fixed in the body's
    frame
    (the upper arms and thighs, :data:`LIMB_JOINTS`, by up to ``limb_angle_deg`` instead, when
    given: arms raised, legs lifted, poses a walk never shows);
    positions are rebuilt from the root by forward kinematics, so each new bone length is exactly
    ``s`` times the old one in every frame.

    Args:
        points: (T, J, 3) metres, any frame; NaN = missing (its subtree stays NaN).
        joint_set: a joint set with a kinematic tree (``h36m17``).

    Returns:
        (T, J, 3) the perturbed sequence (root unchanged) and (J,) the length factor of the bone
        ending at each joint (1 at the root).
    """
    js = get_joint_set(joint_set)
    if js.parents is None:
        raise ValueError(f"perturb_bones needs a kinematic tree; joint set {joint_set!r} has none")
    T, J = points.shape[:2]
    frames = _body_frames(points, js, body_up(points, joint_set))
    scale = np.ones(J)
    out = np.array(points, dtype=np.float64)
    t = np.arange(T) / fps
    for j in _topological(js.parents):
        p = js.parents[j]
        if p < 0:
            continue
        scale[j] = rng.uniform(1 - max_length, 1 + max_length)
        axis_body = rng.normal(size=3)
        axis_body /= np.linalg.norm(axis_body)
        axis = np.einsum("tij,i->tj", frames, axis_body)              # body -> world, (T, 3)
        most = limb_angle_deg if limb_angle_deg is not None and js.joints[j] in LIMB_JOINTS \
            else max_angle_deg
        angle = np.deg2rad(most) * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t
                                                    + rng.uniform(0, 2 * np.pi))
        bone = points[:, j] - points[:, p]
        out[:, j] = out[:, p] + scale[j] * np.einsum("tab,tb->ta", _rodrigues(axis, angle), bone)
    return out, scale


def tilt_body(points: np.ndarray, joint_set: str, rng: np.random.Generator,
              max_angle_deg: float, fps: float = 30.0) -> np.ndarray:
    """Lean the whole body: rotate each frame about the pelvis, about a horizontal axis (fixed in
    the sequence's frame, random direction) by ``max_angle_deg · sin(2π f t + φ)`` (f in
    0.05–0.3 Hz): the walks and runs of mocap are upright, people who balance, lunge or bend are
    not, and a lifter that only saw upright bodies straightens them.

    Args:
        points: (T, J, 3) metres, any frame; NaN = missing.

    Returns:
        (T, J, 3) the leaning sequence (pelvis unchanged; bone lengths unchanged).
    """
    if max_angle_deg <= 0:
        return np.array(points, dtype=np.float64)
    js = get_joint_set(joint_set)
    root = js.parents.index(-1)
    up = body_up(points, joint_set)
    e1 = np.cross(up, [1.0, 0, 0]) if abs(up[0]) < 0.9 else np.cross(up, [0, 1.0, 0])
    e1 /= np.linalg.norm(e1)
    phi = rng.uniform(0, 2 * np.pi)
    axis = np.cos(phi) * e1 + np.sin(phi) * np.cross(up, e1)          # horizontal, unit
    t = np.arange(len(points)) / fps
    angle = np.deg2rad(max_angle_deg) * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t
                                               + rng.uniform(0, 2 * np.pi))
    R = _rodrigues(np.broadcast_to(axis, (len(points), 3)), angle)    # (T, 3, 3)
    pelvis = points[:, root:root + 1]
    return pelvis + np.einsum("tab,tjb->tja", R, points - pelvis)


#: the chains a limb swap moves: each bone (parent -> child) along the chain takes the donor's
#: direction in the torso's frame
LIMB_CHAINS = (("l_shoulder", "l_elbow", "l_wrist"), ("r_shoulder", "r_elbow", "r_wrist"),
               ("l_hip", "l_knee", "l_ankle"), ("r_hip", "r_knee", "r_ankle"))


def _torso_frames(points: np.ndarray, js) -> np.ndarray:
    """(T, 3, 3) the torso's axes as rows: across the hips (right to left), up the spine
    (pelvis to thorax, made orthogonal), and their cross product; NaN where a joint is missing."""
    across = points[:, js.index("l_hip")] - points[:, js.index("r_hip")]
    across = across / np.linalg.norm(across, axis=-1, keepdims=True)
    spine = points[:, js.index("thorax")] - points[:, js.index("pelvis")]
    spine = spine - (spine * across).sum(-1, keepdims=True) * across
    spine = spine / np.linalg.norm(spine, axis=-1, keepdims=True)
    return np.stack([across, spine, np.cross(across, spine)], 1)


def _donor_frames(n_donor: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) frame indices into a donor of ``n_donor`` frames: from a random start, forwards then
    backwards at its ends (a segment as long as the copy without a jump)."""
    if n_donor == 1:
        return np.zeros(n, dtype=int)
    period = 2 * (n_donor - 1)
    k = (rng.integers(period) + np.arange(n)) % period
    return np.where(k < n_donor, k, period - k)


def swap_limbs(points: np.ndarray, donors: Sequence[np.ndarray], joint_set: str,
               rng: np.random.Generator, share: float) -> np.ndarray:
    """Compositional pose augmentation: each limb (:data:`LIMB_CHAINS`) moves, with chance
    ``share``, as the same limb of a random donor sequence.

    The donor's bone directions along the chain are taken in its torso's frame
    (:func:`_torso_frames`) over a segment as long as the sequence (:func:`_donor_frames`) and
    put into this sequence's torso frame at this sequence's bone lengths: the torso, root and
    bone lengths stay, so does every limb not swapped. A frame where the donor's bone is missing
    keeps its own direction. The copy keeps its own label weights (a donor's unreliable joints
    are not marked: the labels of a limb swapped in weigh as the limb they replace).

    Args:
        points: (T, J, 3) metres, any frame; NaN = missing.
        donors: sequences (Td, J, 3) of the same joint set (this one among them is fine: another
            moment of the same motion).
        joint_set: a joint set with the joints of :data:`LIMB_CHAINS`, ``pelvis`` and ``thorax``.

    Returns:
        (T, J, 3) the new sequence.
    """
    js = get_joint_set(joint_set)
    missing = {"pelvis", "thorax", *(j for chain in LIMB_CHAINS for j in chain)} - set(js.joints)
    if missing:
        raise ValueError(f"swap_limbs needs the limb chains, pelvis and thorax; joint set "
                         f"{joint_set!r} lacks {sorted(missing)}: train on h36m17")
    out = np.array(points, dtype=np.float64)
    own = _torso_frames(out, js)
    for chain in LIMB_CHAINS:
        if share <= 0 or rng.random() >= share or not donors:
            continue
        donor = np.asarray(donors[rng.integers(len(donors))], dtype=np.float64)
        donor = donor[_donor_frames(len(donor), len(out), rng)]
        theirs = _torso_frames(donor, js)
        for a, b in zip(chain[:-1], chain[1:]):
            ia, ib = js.index(a), js.index(b)
            d = np.einsum("tij,tj->ti", theirs, donor[:, ib] - donor[:, ia])    # torso frame
            d = np.einsum("tji,tj->ti", own, d / np.linalg.norm(d, axis=-1, keepdims=True))
            bone = points[:, ib] - points[:, ia]
            length = np.linalg.norm(bone, axis=-1, keepdims=True)
            new = np.where(np.isfinite(d).all(-1, keepdims=True), length * d, bone)
            shift = out[:, ia] + new - out[:, ib]
            for j in _subtree(js.parents, ib):           # hands, feet: carried along
                out[:, j] += shift
    return out


def _subtree(parents: Sequence[int], j: int) -> list[int]:
    """``j`` and every joint below it in the kinematic tree."""
    out = [j]
    for k in _topological(parents):
        if parents[k] in out:
            out.append(k)
    return out


def _topological(parents: Sequence[int]) -> list[int]:
    """Joint indices with every parent before its children."""
    order, placed = [], set()
    while len(order) < len(parents):
        for j, p in enumerate(parents):
            if j not in placed and (p < 0 or p in placed):
                order.append(j)
                placed.add(j)
    return order


# -- virtual cameras ------------------------------------------------------------------------------
def _focal_px(size: tuple[int, int], focal_35mm: float) -> float:
    return focal_35mm / FULL_FRAME_DIAGONAL_MM * float(np.hypot(*size))


def _camera_at(center: np.ndarray, target: np.ndarray, up: np.ndarray, roll: float,
               K: np.ndarray, dist: np.ndarray, size, name: str) -> Camera:
    forward = (target - center) / np.linalg.norm(target - center)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])
    c, s = np.cos(roll), np.sin(roll)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ R
    return Camera(name, K, dist, R, -R @ center, (int(size[0]), int(size[1])))


def sample_camera(points: np.ndarray, joint_set: str, cfg: AugmentConfig,
                  rng: np.random.Generator, name: str = "virtual", tries: int = 30) -> Camera:
    """A random camera of the kind users film with, looking at the person of ``points``.

    The floor is the lowest ankle height along :func:`body_up`; the camera stands
    ``cfg.distance_m`` from the person's mean position at ``cfg.height_m`` above the floor, aims
    at a random point of the body's height with the person off centre by up to a fifth of the
    field of view, and is redrawn (up to ``tries`` times, then the draw that saw most of the
    person is kept) until at least 97 % of the joint-frames project inside the image.

    Args:
        points: (T, J, 3) metres, the sequence's frame.

    Returns:
        a :class:`Camera` in that frame: ``size`` portrait or landscape, focal length from
        ``cfg.focal_35mm``, distortion ``k1 = -max_k1 · (14 / f35)²``-ish (barrel), roll.
    """
    js = get_joint_set(joint_set)
    up = body_up(points, joint_set)
    ankles = points[:, [js.index("l_ankle"), js.index("r_ankle")]].reshape(-1, 3)
    ankles = ankles[np.isfinite(ankles).all(-1)]
    floor = float(np.min(ankles @ up)) - 0.08 if len(ankles) else float(
        np.nanmin(points.reshape(-1, 3) @ up))
    mean = np.nanmean(points.reshape(-1, 3), axis=0)
    mean_h = mean - (mean @ up) * up                                 # on the plane through 0
    e1 = np.cross(up, [1.0, 0, 0]) if abs(up[0]) < 0.9 else np.cross(up, [0, 1.0, 0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    best, best_in = None, -1.0
    for _ in range(tries):
        cam = _draw_camera(points, up, floor, mean_h, e1, e2, cfg, rng, name)
        inside = _share_in_view(cam, points)
        if inside >= 0.97:
            return cam
        if inside > best_in:
            best, best_in = cam, inside
    return best


def _draw_camera(points, up, floor, mean_h, e1, e2, cfg, rng, name) -> Camera:
    size = _SIZES[rng.integers(len(_SIZES))]
    if rng.random() < cfg.portrait:
        size = (size[1], size[0])
    f35 = rng.uniform(*cfg.focal_35mm)
    f = _focal_px(size, f35)
    K = np.array([[f, 0, (size[0] - 1) / 2], [0, f, (size[1] - 1) / 2], [0, 0, 1]])
    k1 = -cfg.max_k1 * min(1.0, (14.0 / f35) ** 2) * rng.uniform(0.3, 1.0)
    dist = np.array([k1, 0.2 * k1 * k1 * rng.uniform(-1, 1), 0, 0, 0])
    azimuth = rng.uniform(0, 2 * np.pi)
    d = rng.uniform(*cfg.distance_m)
    h = rng.uniform(*cfg.height_m)
    center = mean_h + d * (np.cos(azimuth) * e1 + np.sin(azimuth) * e2) + (floor + h) * up
    target = mean_h + (floor + rng.uniform(0.4, 1.4)) * up
    view = np.cross(up, target - center)
    view /= np.linalg.norm(view)
    half_fov = np.arctan(0.5 * min(size) / f)
    target = target + np.tan(rng.uniform(-0.2, 0.2) * half_fov) * np.linalg.norm(
        target - center) * view
    return _camera_at(center, target, up, np.deg2rad(rng.uniform(-1, 1) * cfg.roll_deg), K,
                      dist, size, name)


def _share_in_view(cam: Camera, points: np.ndarray) -> float:
    uv = CameraRig([cam]).project(points)[0]
    depth = CameraRig([cam]).points_in_cameras(points)[0][..., 2]
    w, h = cam.size
    ok = (depth > 0.5) & (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h)
    seen = np.isfinite(points).all(-1)
    return float(ok[seen].mean()) if seen.any() else 0.0


# -- projection and 2D corruption -----------------------------------------------------------------
def project_corrupted(points: np.ndarray, camera: Camera, joint_set: str, error_model,
                      rng: np.random.Generator) -> np.ndarray:
    """Project a sequence into ``camera`` and corrupt the 2D like a detector.

    Args:
        points: (T, J, 3) metres. error_model: a :class:`DetectorErrorModel` or None (exact 2D).

    Returns:
        (T, J, 3) pixels (lens distortion applied) and confidence: 1 where seen, 0 and NaN where
        the joint is missing, behind the camera or outside the image, or dropped by the model.
    """
    rig = CameraRig([camera])
    uv = rig.project(points)[0]
    depth = rig.points_in_cameras(points)[0][..., 2]
    if error_model is not None:
        uv, dropped = error_model.corrupt(uv, joint_set, rng)
    else:
        dropped = np.zeros(uv.shape[:2], bool)
    w, h = camera.size
    ok = (np.isfinite(uv).all(-1) & (depth > 0.1) & ~dropped & (uv[..., 0] >= 0)
          & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h))
    out = np.concatenate([uv, ok[..., None].astype(np.float64)], -1)
    out[~ok, :2] = np.nan
    return out


# -- sessions -------------------------------------------------------------------------------------
def augment_session(session, cfg: AugmentConfig, labels: str, error_model,
                    rng: np.random.Generator, donors: Sequence[np.ndarray] | None = None):
    """``cfg.copies`` new sequences made from one training sequence.

    Each copy swaps limbs with the donors (:func:`swap_limbs`, when ``cfg.limb_swap``),
    perturbs the 3D once (:func:`perturb_bones`) and films it with as many virtual
    cameras as the session has (each drawn alone, :func:`sample_camera`), so the copies stack
    with the session's own arrays.

    Args:
        session: a :class:`~epiflow.models.data.SessionArrays` in the training joint set (with a
            kinematic tree), holding the labels named by ``labels``.
        labels: ``"pseudo"`` (its pseudo-labels, with their weights) or ``"gt"``.
        donors: (Td, J, 3) label sequences whose limbs a copy may take (None: this sequence's
            own, at other moments).

    Returns:
        list of ``SessionArrays`` named ``<name>~aug<k>``, labels the perturbed 3D
        (pseudo-labels keep their weights), the same ``session_id`` (a split keeps them on the
        side of their source).
    """
    points = session.pseudo3d if labels == "pseudo" else session.gt3d
    if points is None or not np.isfinite(points).any():
        return []
    weight = session.pseudo3d_weight if labels == "pseudo" else None
    fps = session.fps or 30.0
    out = []
    for k in range(cfg.copies):
        moved = points
        if cfg.limb_swap > 0:
            moved = swap_limbs(points, [points] if donors is None else donors,
                               session.joint_set, rng, cfg.limb_swap)
        moved, _ = perturb_bones(moved, session.joint_set, rng, cfg.bone_angle_deg,
                                 cfg.bone_length, fps, cfg.limb_angle_deg)
        if cfg.body_tilt_deg > 0:
            moved = tilt_body(moved, session.joint_set, rng, cfg.body_tilt_deg, fps)
        cams = [sample_camera(moved, session.joint_set, cfg, rng, name=f"aug{k}_{c}")
                for c in range(len(session.rig))]
        kp = np.stack([project_corrupted(moved, cam, session.joint_set, error_model, rng)
                       for cam in cams], 1)
        rig = CameraRig(cams)
        common = dict(name=f"{session.name}~aug{k}", keypoints2d=kp.astype(np.float32),
                      rig=rig, joint_set=session.joint_set, fps=session.fps,
                      session_id=session.session_id, person_id=session.person_id)
        if labels == "pseudo":
            out.append(SessionArrays(pseudo3d=moved.astype(np.float32), pseudo3d_weight=weight,
                                     **common))
        else:
            out.append(SessionArrays(gt3d=moved.astype(np.float32), gt_rig=rig, **common))
    return out


def augment_sessions(sessions: Sequence, cfg: AugmentConfig, labels: str, joint_set: str,
                     progress: bool = False) -> list:
    """The training sequences followed by their augmented copies (:func:`augment_session`,
    whose limb swaps draw on every training sequence's labels); the sequences unchanged when
    ``cfg.copies`` is 0."""
    if cfg.copies <= 0:
        return list(sessions)
    from tqdm.auto import tqdm
    model = DetectorErrorModel.packaged() if cfg.detector == "learned" else None
    rng = np.random.default_rng(cfg.seed)
    converted = [convert_joint_set(s, joint_set) for s in sessions]
    donors = [d for d in (s.pseudo3d if labels == "pseudo" else s.gt3d for s in converted)
              if d is not None and np.isfinite(d).any()]
    out = list(sessions)
    for s in tqdm(converted, desc="augment", unit="sequence", disable=not progress):
        out += augment_session(s, cfg, labels, model, rng, donors)
    return out
