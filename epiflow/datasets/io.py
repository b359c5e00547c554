"""One entry point for 2D keypoints already computed: a keypoints npz or a folder of OpenPose JSON."""
from __future__ import annotations

from pathlib import Path

from epiflow.datasets.openpose import read_openpose
from epiflow.keypoints import Keypoints, load_npz
from epiflow.skeleton import get_joint_set

__all__ = ["load_keypoints"]


def load_keypoints(path, joint_set: str | None = None, image_size=None) -> Keypoints:
    """Read 2D keypoints from ``path``.

    Args:
        path: a keypoints ``.npz`` (see :mod:`epiflow.keypoints`) or a folder holding one
            sub-folder of OpenPose JSON files per camera (see :mod:`epiflow.datasets.openpose`).
        joint_set: the joint set the data is in. For OpenPose folders it settles 25-joint files
            (``body25`` / ``body25b``); for an npz it must match the file's, else an error.
        image_size: (width, height) or (C, 2) for OpenPose folders, which do not store it.

    Returns:
        :class:`Keypoints` (T, C, J, 3), pixels.
    """
    path = Path(path)
    if joint_set is not None:
        try:
            get_joint_set(joint_set)
        except ValueError as err:
            raise ValueError(f"joint_set: {err}") from None
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
    raise ValueError(f"{path}: not a keypoints source; expected a .npz file (keypoints (C, T, J, 3), "
                     f"joint_set, camera_names, image_size) or a folder of per-camera OpenPose JSON "
                     f"folders")
