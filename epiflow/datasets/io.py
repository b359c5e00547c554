"""One entry point for 2D keypoints already computed: a keypoints npz or a folder of OpenPose JSON."""
from __future__ import annotations

from pathlib import Path

from epiflow.datasets.openpose import read_openpose
from epiflow.keypoints import NPZ_LAYOUT, Keypoints, load_npz, normalised_units
from epiflow.skeleton import get_joint_set

__all__ = ["load_keypoints"]


def load_keypoints(path, joint_set: str | None = None, image_size=None,
                   min_cameras: int = 1) -> Keypoints:
    """Read 2D keypoints from ``path``, checked: every command that reads keypoints reads them
    here, so each gets the same refusals, naming the file, what came and what was expected.

    Args:
        path: a keypoints ``.npz`` (see :mod:`epiflow.keypoints`) or a folder holding one
            sub-folder of OpenPose JSON files per camera (see :mod:`epiflow.datasets.openpose`).
        joint_set: the joint set the data is in. For OpenPose folders it settles 25-joint files
            (``body25`` / ``body25b``); for an npz it must match the file's, else an error.
        image_size: (width, height) or (C, 2) for OpenPose folders, which do not store it.
        min_cameras: cameras the command needs (2 to calibrate or triangulate).

    Returns:
        :class:`Keypoints` (T, C, J, 3), pixels.

    Raises:
        FileNotFoundError: nothing at ``path``. ValueError: not a keypoints source, a file that
        is not an npz, arrays missing or of the wrong shape or dtype, no frames, fewer than
        ``min_cameras`` cameras, confidences outside [0, 1], NaN coordinates with a confidence,
        coordinates in normalised units (:func:`epiflow.keypoints.normalised_units`), broken
        OpenPose JSON.
    """
    path = Path(path)
    if joint_set is not None:
        try:
            get_joint_set(joint_set)
        except ValueError as err:
            raise ValueError(f"joint_set: {err}") from None
    kp = _read(path, joint_set, image_size)
    if kp.n_cameras < min_cameras:
        raise ValueError(f"{path}: holds {kp.n_cameras} camera(s) {list(kp.camera_names)}; this "
                         f"needs at least {min_cameras} synchronized cameras")
    problem = normalised_units(kp.xy, kp.image_size)
    if problem:
        raise ValueError(f"{path}: {problem}")
    return kp


def _read(path: Path, joint_set: str | None, image_size) -> Keypoints:
    if path.is_dir():
        return read_openpose(path, joint_set=joint_set, image_size=image_size)
    if path.suffix.lower() == ".npz":
        kp = load_npz(path)
        if joint_set is not None and kp.joint_set != joint_set:
            raise ValueError(f"{path}: holds joint set {kp.joint_set!r}; joint_set={joint_set!r} "
                             f"was asked for (leave joint_set out, or convert with .to_h36m())")
        return kp
    if not path.exists():
        raise FileNotFoundError(f"keypoints path {str(path)!r} does not exist; expected a keypoints "
                                f".npz or a folder of per-camera OpenPose JSON folders")
    raise ValueError(f"{path}: not a keypoints source; expected a .npz file ({NPZ_LAYOUT}) or a "
                     f"folder of per-camera OpenPose JSON folders")
