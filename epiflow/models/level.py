"""The level camera: a camera turned about its own centre until its y axis is the scene's vertical.

A monocular lifter sees a person in one camera's frame. Whether the body leans towards the camera
or away from it is all but invisible in one image, and so is the camera's own pitch and roll: a
lifter trained on upright mocap then predicts an upright body *in the camera's frame*, so a
camera looking down 20° gets a body tilted 20° (and a person who leans gets straightened).

Turning a camera about its centre maps rays to rays, so any footage can be re-expressed as seen by
the *level* camera at the same place (optical axis horizontal, no roll) once the vertical is known
in the camera's frame (:func:`level_rotation`). A lifter trained and applied in the level frame
(``data.level = true``) knows which way is up: its input's root slot holds the ray's elevation
(how far above or below the person the camera is), and its output's y axis is the vertical.
Training labels give the vertical (:func:`body_up`, the mean torso direction of the 3D labels);
at prediction time it comes from the scene (vertical vanishing lines of the video,
:mod:`epiflow.calibration.vanishing`) or, lacking that, from the calibration's world axis or the
image edge nearest the person's torso (:func:`upright_up`).
"""
from __future__ import annotations

import numpy as np

from epiflow.skeleton import get_joint_set

__all__ = ["body_up", "level_rotation", "rotate_rays", "torso_prior", "upright_up", "level_note",
           "scene_up", "IMAGE_UP"]

#: the level camera's up direction in its own frame (image y points down)
IMAGE_UP = np.array([0.0, -1.0, 0.0])


def body_up(points: np.ndarray, joint_set: str = "h36m17") -> np.ndarray:
    """The sequence's up direction (3,), unit: the mean pelvis -> thorax direction (the world
    frame of pseudo-labels is the calibration's, not necessarily Z up).

    Args:
        points: (T, J, 3) metres, any frame; NaN = missing.
    """
    js = get_joint_set(joint_set)
    torso = points[:, js.index("thorax")] - points[:, js.index("pelvis")]
    torso = torso[np.isfinite(torso).all(-1)]
    if not len(torso):
        raise ValueError("body_up: no frame has both the pelvis and the thorax")
    up = (torso / np.linalg.norm(torso, axis=-1, keepdims=True)).mean(0)
    return up / np.linalg.norm(up)


def level_rotation(up: np.ndarray) -> np.ndarray:
    """(3, 3) the smallest rotation L with ``L @ up = (0, -1, 0)``: camera frame -> the level
    camera's frame (same centre, optical axis horizontal, image x horizontal).

    Args:
        up: (3,) the scene's vertical in the camera's frame (any length > 0).
    """
    a = np.asarray(up, np.float64) / np.linalg.norm(up)
    axis = np.cross(a, IMAGE_UP)
    s, c = np.linalg.norm(axis), float(a @ IMAGE_UP)
    if s < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])  # upside down: turn about x
    k = axis / s
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * K + (1 - c) * K @ K


def rotate_rays(uv: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Normalised image coordinates (..., 2) seen by the camera turned by R (3, 3) (a point X of
    the old camera's frame is R X in the new one): (..., 2); NaN where a ray ends up behind."""
    rays = np.concatenate([uv, np.ones_like(uv[..., :1])], -1) @ np.asarray(R).T
    with np.errstate(invalid="ignore", divide="ignore"):
        out = rays[..., :2] / rays[..., 2:3]
    return np.where(rays[..., 2:3] > 1e-6, out, np.nan)


def torso_prior(uv: np.ndarray, joint_set: str = "h36m17") -> np.ndarray | None:
    """(3,) a rough up in the camera's frame from the person's 2D: the median image direction
    from the pelvis to the thorax, taken as a direction in the image plane (right for a level
    camera and an upright person; 20–40° off for a camera looking down or a leaning person).

    Args:
        uv: (T, J, 2) undistorted normalised image coordinates of ``joint_set``; NaN = missing.

    Returns:
        the unit vector, or None when no frame has both joints.
    """
    js = get_joint_set(joint_set)
    torso = uv[:, js.index("thorax")] - uv[:, js.index("pelvis")]
    torso = torso[np.isfinite(torso).all(-1) & (np.linalg.norm(torso, axis=-1) > 1e-9)]
    if not len(torso):
        return None
    d = np.median(torso / np.linalg.norm(torso, axis=-1, keepdims=True), 0)
    if np.linalg.norm(d) < 1e-9:
        return None
    return np.array([d[0], d[1], 0.0]) / np.linalg.norm(d)


#: the image's four edges as ups in the camera's frame, and how a user would name each
_EDGES = ((np.array([0.0, -1.0, 0.0]), "the image's top edge"),
          (np.array([1.0, 0.0, 0.0]), "the image's right edge"),
          (np.array([0.0, 1.0, 0.0]), "the image's bottom edge"),
          (np.array([-1.0, 0.0, 0.0]), "the image's left edge"))


#: a rotation this close to the identity (about 0.6°) is a calibration whose world is this
#: camera's own frame (caliscope's first camera after bundle adjustment: R = I within 0.2°)
_WORLD_IS_CAMERA = 1e-2


def upright_up(uv: np.ndarray, joint_set: str = "h36m17", R: np.ndarray | None = None
               ) -> tuple[np.ndarray, str]:
    """The vertical for footage without images to find it in: of the candidate ups, the one
    nearest the person's median torso direction in the image (:func:`torso_prior`).

    Without ``R`` the candidates are the image's four edges (top, right, bottom, left): footage
    stored sideways or upside down (a portrait webcam mounted on its side, a phone video without
    its rotation flag) is taken as level once turned upright, a lean under 45° stays the
    person's, and the camera's pitch is not known (a camera looking down tilts the prediction).
    With ``R`` (3, 3), the world-to-camera rotation of a calibration, the candidates are the
    calibration's six world axis directions seen from the camera (``±R[:, k]``): calibration
    worlds are level with one axis up (Z for Qualisys and Shelf, Y for Pose2Sim), so the pitch
    and roll come from the calibration (an R within about 0.6° of the identity, a world that is
    this camera's own frame as caliscope's first camera has, gives the image's edges again).
    Either way the candidate nearest the torso in the image plane wins, so a camera pitched
    more than 45° takes the horizontal world axis along its view as up (both point up the
    image, and the torso's direction alone cannot tell them apart).

    Args:
        uv: (T, J, 2) undistorted normalised image coordinates of ``joint_set``; NaN = missing.

    Returns:
        (3,) unit up in the camera's frame, and what it is, for the user (``"the image's top
        edge"`` also when no torso is seen).
    """
    prior = torso_prior(uv, joint_set)
    if prior is None:
        return IMAGE_UP.copy(), _EDGES[0][1]
    candidates = list(_EDGES)
    if R is not None and not np.allclose(R, np.eye(3), atol=_WORLD_IS_CAMERA):
        candidates = [(sign * np.asarray(R, np.float64)[:, k], f"the calibration's "
                       f"{'+' if sign > 0 else '-'}{'XYZ'[k]} axis")
                      for k in range(3) for sign in (1.0, -1.0)]
    up, what = max(candidates, key=lambda c: float(prior @ c[0]))
    return up / np.linalg.norm(up), what


def level_note(what: str) -> str:
    """What the user is told when the vertical came from :func:`upright_up` (``what``)."""
    if what == _EDGES[0][1]:
        return "the camera is taken as level (its image y axis vertical)"
    if what.startswith("the calibration"):
        return (f"the vertical is taken as {what}, the one nearest the person's torso (if the "
                f"calibration's world is not level, the prediction tilts with it)")
    return (f"the person's torso points to {what}: the footage is taken as turned "
            f"{'upside down' if 'bottom' in what else 'by a quarter turn'}, level once that "
            f"edge is up")


def scene_up(frames: np.ndarray, camera, keypoints: np.ndarray, joint_set: str = "h36m17",
             count: int = 6) -> tuple[np.ndarray, str, bool]:
    """The scene's vertical in ``camera``'s frame from the video's own vertical edges
    (:func:`~epiflow.calibration.vanishing.vertical_from_lines` on ``count`` frames spread over
    the video, the person's box masked, the person's torso as the prior), or the level camera's
    up when too few vertical edges are seen (:func:`upright_up`: the calibration's world axis
    or the image edge nearest the person's torso).

    Args:
        frames: (T, H, W, 3) uint8 RGB. camera: the :class:`~epiflow.calibration.camera.Camera`
            that filmed them (intrinsics and distortion used; its rotation only for the
            fallback, :func:`upright_up`'s calibration axes).
        keypoints: (T, J, 3) pixels and confidence of ``joint_set``.

    Returns:
        (3,) unit up in the camera's frame, a sentence for the user saying where it came from, and
        whether it was found (False: the level camera's up was assumed).
    """
    from dataclasses import replace

    from epiflow.calibration.camera import CameraRig
    from epiflow.calibration.vanishing import vertical_from_lines
    cam = replace(camera, R=np.eye(3), t=np.zeros(3))
    rig = CameraRig([cam])
    uv = rig.undistort(keypoints[None, ..., :2].astype(np.float64))[0]
    prior = torso_prior(uv, joint_set)
    fallback, what = upright_up(uv, joint_set, camera.R)
    level = level_note(what)
    if prior is None:
        return IMAGE_UP.copy(), f"no torso seen to start from: {level}", False
    picks = np.unique(np.linspace(0, len(frames) - 1, count).round().astype(int))
    boxes = [_box(keypoints[t]) for t in picks]
    found = vertical_from_lines(rig, [[frames[t] for t in picks]], prior, [boxes],
                                max_image_deg=30.0, max_prior_deg=40.0)
    if found is None:
        tilts = "" if what.startswith("the calibration") else \
            "; a tilted camera tilts the prediction"
        return fallback, (f"too few vertical edges in the video to find the scene's "
                          f"vertical: {level}{tilts}"), False
    tilt = np.degrees(np.arccos(np.clip(found.up @ IMAGE_UP, -1, 1)))
    return found.up, (f"the scene's vertical from {found.inliers} vertical edges of the video: "
                      f"the camera is tilted {tilt:.0f} deg from level"), True


def _box(kp: np.ndarray) -> tuple | None:
    seen = kp[np.nan_to_num(kp[:, 2]) > 0.3, :2]
    seen = seen[np.isfinite(seen).all(-1)]
    if not len(seen):
        return None
    return (*seen.min(0), *seen.max(0))
