"""Cameras and camera rigs: the one object that owns a group of calibrated cameras.

A :class:`Camera` is an OpenCV pinhole camera with Brown–Conrady distortion and world→camera
extrinsics (``x_cam = R · X_world + t``, metres). A :class:`CameraRig` is an ordered group of them;
its methods are batched over cameras in torch (float64) and accept numpy or torch arrays, answering
in the same kind. The order of cameras is the order they were given or written in a file, never
re-sorted by name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from epiflow.calibration import projection as P

__all__ = ["Camera", "CameraRig", "CalibrationError", "CAMERA_NAME_RULE", "match_camera_names",
           "match_rig", "loose_camera_name"]


class CalibrationError(ValueError):
    """A calibration that cannot be used: a missing field, a NaN, an inconsistent rig."""


def _as_tensor(x) -> tuple[torch.Tensor, bool]:
    """(tensor float64 unless already floating torch, whether the input was numpy)."""
    if isinstance(x, torch.Tensor):
        return (x if x.is_floating_point() else x.double()), False
    return torch.as_tensor(np.asarray(x, dtype=np.float64)), True


def _back(x: torch.Tensor, to_numpy: bool):
    return x.detach().cpu().numpy() if to_numpy else x


@dataclass(frozen=True, eq=False)
class Camera:
    """One calibrated camera.

    Attributes:
        name: the camera's name (a video's file stem, a keypoint folder's name, ``cam_01``...).
        K: (3, 3) intrinsic matrix, pixels.
        dist: (5,) distortion ``(k1, k2, p1, p2, k3)``.
        R: (3, 3) world→camera rotation. t: (3,) world→camera translation, metres.
        size: (width, height) of the image, pixels.
    """

    name: str
    K: np.ndarray
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    size: tuple[int, int] = (0, 0)

    def __post_init__(self):
        def arr(value, shape, what):
            a = np.asarray(value, dtype=np.float64)
            if what == "dist" and a.shape == (4,):  # (k1, k2, p1, p2): k3 = 0
                a = np.append(a, 0.0)
            if a.shape != shape:
                raise CalibrationError(f"camera {self.name!r}: {what} must have shape {shape}; "
                                       f"got {a.shape}")
            if not np.all(np.isfinite(a)):
                raise CalibrationError(f"camera {self.name!r}: {what} contains NaN or inf: {a}")
            return a
        object.__setattr__(self, "K", arr(self.K, (3, 3), "K"))
        object.__setattr__(self, "dist", arr(self.dist, (5,), "dist"))
        object.__setattr__(self, "R", arr(self.R, (3, 3), "R"))
        object.__setattr__(self, "t", arr(self.t, (3,), "t"))
        object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))
        if abs(np.linalg.det(self.R) - 1) > 1e-3:
            raise CalibrationError(f"camera {self.name!r}: R is not a rotation "
                                   f"(det = {np.linalg.det(self.R):.4f})")

    @property
    def rvec(self) -> np.ndarray:
        """(3,) Rodrigues vector of R (axis × angle, radians)."""
        return Rotation.from_matrix(self.R).as_rotvec()

    @property
    def center(self) -> np.ndarray:
        """(3,) camera centre in the world frame, metres: ``-Rᵀ t``."""
        return -self.R.T @ self.t

    @property
    def P(self) -> np.ndarray:
        """(3, 4) projection matrix ``K [R | t]`` (distortion not included)."""
        return self.K @ np.hstack([self.R, self.t[:, None]])

    def replace(self, **changes) -> "Camera":
        """A copy with some fields changed."""
        return replace(self, **changes)


class CameraRig:
    """An ordered group of cameras, with everything one does with them together.

    Index it by position or name; iterate over its cameras. Batched properties stack the cameras'
    parameters: ``K (C, 3, 3)``, ``dist (C, 5)``, ``R (C, 3, 3)``, ``t (C, 3)``, ``sizes (C, 2)``.
    """

    def __init__(self, cameras: Iterable[Camera]):
        self.cameras: tuple[Camera, ...] = tuple(cameras)
        if not self.cameras:
            raise CalibrationError("a camera rig needs at least one camera; got none")
        names = [c.name for c in self.cameras]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise CalibrationError(f"camera names must be unique in a rig; repeated: {dupes}")

    # -- container -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.cameras)

    def __iter__(self):
        return iter(self.cameras)

    def __getitem__(self, key: int | str) -> Camera:
        if isinstance(key, str):
            return self.cameras[self.index(key)]
        return self.cameras[key]

    def __repr__(self) -> str:
        return f"CameraRig({', '.join(self.names)})"

    def index(self, name: str) -> int:
        """Position of the camera called ``name``."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no camera {name!r} in this rig; it has: {', '.join(self.names)}") from None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def subset(self, keys: Sequence[int | str]) -> "CameraRig":
        """A rig of some of these cameras, in the order given."""
        return CameraRig(self[k] for k in keys)

    # -- batched parameters ------------------------------------------------------------------
    @property
    def K(self) -> np.ndarray:
        return np.stack([c.K for c in self.cameras])

    @property
    def dist(self) -> np.ndarray:
        return np.stack([c.dist for c in self.cameras])

    @property
    def R(self) -> np.ndarray:
        return np.stack([c.R for c in self.cameras])

    @property
    def t(self) -> np.ndarray:
        return np.stack([c.t for c in self.cameras])

    @property
    def sizes(self) -> np.ndarray:
        """(C, 2) int image sizes (width, height), pixels."""
        return np.array([c.size for c in self.cameras], dtype=np.int64)

    @property
    def centers(self) -> np.ndarray:
        """(C, 3) camera centres in the world frame, metres."""
        return np.stack([c.center for c in self.cameras])

    def projection_matrices(self) -> np.ndarray:
        """(C, 3, 4) projection matrices ``K [R | t]`` (distortion not included)."""
        return np.stack([c.P for c in self.cameras])

    def tensors(self, device=None, dtype=torch.float64) -> dict[str, torch.Tensor]:
        """The batched parameters as tensors: keys K, dist, R, t (shapes as the properties)."""
        return {k: torch.as_tensor(getattr(self, k), dtype=dtype, device=device)
                for k in ("K", "dist", "R", "t")}

    def relative_pose(self, i: int | str, j: int | str) -> tuple[np.ndarray, np.ndarray]:
        """(R_ij (3, 3), t_ij (3,)) that map camera i's frame to camera j's: x_j = R_ij x_i + t_ij."""
        a, b = self[i], self[j]
        R_ij = b.R @ a.R.T
        return R_ij, b.t - R_ij @ a.t

    # -- geometry ------------------------------------------------------------------------------
    def _params_like(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.tensors(device=x.device, dtype=x.dtype)

    def project(self, points3d):
        """Project world points into every camera.

        Args:
            points3d: (..., 3) metres, world frame; numpy or torch.

        Returns:
            (C, ..., 2) pixels, distortion applied; NaN where a point is behind a camera.
        """
        X, np_in = _as_tensor(points3d)
        if X.shape[-1] != 3:
            raise ValueError(f"points3d must have shape (..., 3); got {tuple(X.shape)}")
        lead = X.shape[:-1]
        p = self._params_like(X)
        flat = X.reshape(1, -1, 3)
        uv = P.project(flat, p["K"], p["dist"], p["R"], p["t"])
        return _back(uv.reshape(len(self), *lead, 2), np_in)

    def points_in_cameras(self, points3d):
        """World points (..., 3) in every camera's frame: (C, ..., 3) metres."""
        X, np_in = _as_tensor(points3d)
        lead = X.shape[:-1]
        p = self._params_like(X)
        cam = P.world_to_camera(X.reshape(1, -1, 3), p["R"], p["t"])
        return _back(cam.reshape(len(self), *lead, 3), np_in)

    def _check_per_camera(self, points, name: str):
        if points.ndim < 2 or points.shape[0] != len(self) or points.shape[-1] != 2:
            raise ValueError(f"{name} must have shape (C={len(self)}, ..., 2) for cameras "
                             f"{self.names}; got {tuple(points.shape)}")

    def undistort(self, points2d, normalized: bool = True):
        """Remove lens distortion from pixel coordinates.

        Args:
            points2d: (C, ..., 2) pixels, one slice per camera of this rig.
            normalized: return normalised image coordinates (x/z, y/z) when True, else
                undistorted pixels (the same K without distortion).

        Returns:
            (C, ..., 2), NaN where the input is NaN.
        """
        uv, np_in = _as_tensor(points2d)
        self._check_per_camera(uv, "points2d")
        shape = uv.shape
        p = self._params_like(uv)
        flat = uv.reshape(len(self), -1, 2)
        xy = P.undistort(P.remove_intrinsics(flat, p["K"]), p["dist"])
        if not normalized:
            xy = P.apply_intrinsics(xy, p["K"])
        return _back(xy.reshape(shape), np_in)

    def reprojection_error(self, points3d, points2d):
        """Pixel distance between projected world points and observations.

        Args:
            points3d: (..., 3) metres. points2d: (C, ..., 2) pixels.

        Returns:
            (C, ...) pixels; NaN where either side is missing.
        """
        proj = self.project(points3d)
        if isinstance(proj, np.ndarray):
            return np.linalg.norm(proj - np.asarray(points2d, dtype=np.float64), axis=-1)
        return torch.linalg.norm(proj - points2d, dim=-1)

    def transformed(self, scale: float = 1.0, R: np.ndarray | None = None,
                    t: np.ndarray | None = None) -> "CameraRig":
        """The same cameras after moving the world by ``X_new = scale · R · X_old + t``.

        Camera translations are scaled too, so the rig stays consistent with the new world.
        """
        R = np.eye(3) if R is None else np.asarray(R, dtype=np.float64)
        t = np.zeros(3) if t is None else np.asarray(t, dtype=np.float64)
        return CameraRig(c.replace(R=c.R @ R.T, t=scale * c.t - c.R @ R.T @ t) for c in self)


# -- camera names ----------------------------------------------------------------------------------
#: How a camera name of one input (keypoints, videos, ``--camera``) finds its camera in another (a
#: calibration file, keypoints), in every command: the one rule.
CAMERA_NAME_RULE = ("exactly; else the one camera equal ignoring case; else the one camera equal "
                    "ignoring case, separators and leading zeros: cam1 = cam_01 = Cam01 = CAM-1")


def loose_camera_name(name: str) -> str:
    """``name`` without case, separators or leading zeros of its numbers: ``Cam_01`` -> ``cam1``."""
    return re.sub(r"(?<!\d)0+(?=\d)", "", re.sub(r"[^0-9a-z]", "", str(name).lower()))


_NAME_LEVELS = (str, str.lower, loose_camera_name)  # exact, then ignoring case, then loose


def _candidates(name: str, available: list[str]) -> list[int]:
    """Positions of the cameras ``name`` matches at the first level where it matches any."""
    for key in _NAME_LEVELS:
        hits = [i for i, a in enumerate(available) if key(a) == key(name)]
        if hits:
            return hits
    return []


def match_camera_names(names: Sequence[str], available: Sequence[str],
                       where: str = "the calibration") -> list[int]:
    """Position in ``available`` of the camera each of ``names`` means, by
    :data:`CAMERA_NAME_RULE`.

    Args:
        names: the names looked for (e.g. the keypoints' cameras).
        available: the names looked in (e.g. a calibration's cameras), unique.
        where: what ``available`` belongs to (a file name, ``"intrinsics"``), named in errors.

    Raises:
        CalibrationError: a name matching no camera (all such names and the cameras are listed),
            a name matching several cameras at its first matching level (the candidates are
            listed), or two names matching one camera.
    """
    available, names = [str(a) for a in available], [str(n) for n in names]
    found, missing = [], []
    for name in names:
        hits = _candidates(name, available)
        if len(hits) > 1:
            raise CalibrationError(f"{where}: camera name {name!r} is ambiguous, it matches "
                                   f"{[available[i] for i in hits]}; rename the cameras so that "
                                   f"each name matches one ({CAMERA_NAME_RULE})")
        if hits:
            found.append(hits[0])
        else:
            missing.append(name)
    if missing:
        raise CalibrationError(f"{where}: no camera for {missing} among {available} (names match "
                               f"{CAMERA_NAME_RULE}); rename the cameras so that they match")
    twice = sorted({available[i] for i in found if found.count(i) > 1})
    if twice:
        raise CalibrationError(f"{where}: cameras {twice} are each matched by several of the "
                               f"names {names}; rename the cameras so that each matches one")
    return found


def match_rig(rig: CameraRig, names: Sequence[str], where: str = "the calibration",
              by_order: bool = False) -> tuple[CameraRig, list[str]]:
    """The cameras of ``rig`` that ``names`` mean (:data:`CAMERA_NAME_RULE`), in that order and
    renamed to them, and warnings.

    With ``by_order`` (for commands that print the warning), a rig none of whose cameras any
    name matches, with as many cameras as there are names, is taken in order, first to first,
    with a warning saying so; without it, that is an error like any name matching nothing.

    Raises:
        CalibrationError: see :func:`match_camera_names`.
    """
    names = [str(n) for n in names]
    if by_order and len(rig) == len(names) and not any(_candidates(n, rig.names) for n in names):
        return CameraRig(c.replace(name=n) for c, n in zip(rig, names)), [
            f"{where} cameras {rig.names} match none of the names {names}; matched in order "
            f"(first to first): if the orders differ, each camera gets another's calibration; "
            f"rename the cameras in the {where} file to these names"]
    try:
        found = match_camera_names(names, rig.names, where)
    except CalibrationError as err:
        if not by_order:
            raise
        raise CalibrationError(f"{err}; cameras are matched in order only when no name matches "
                               f"and the counts agree (here {len(rig)} vs {len(names)})") from None
    return CameraRig(rig[i].replace(name=n) for i, n in zip(found, names)), []
