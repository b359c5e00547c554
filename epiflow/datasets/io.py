"""One entry point for 2D keypoints already computed: a keypoints npz, a folder of OpenPose JSON, or
the Shelf detection folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from epiflow.datasets.openpose import read_openpose
from epiflow.keypoints import NPZ_LAYOUT, Keypoints, load_npz, normalised_units
from epiflow.skeleton import get_joint_set

__all__ = ["load_keypoints", "is_shelf_folder"]


def is_shelf_folder(path) -> bool:
    """Whether ``path`` is a folder of Shelf / 4D-association bottom-up detections: it holds
    ``detection/*.txt`` (see :mod:`epiflow.datasets.shelf`)."""
    folder = Path(path) / "detection"
    return folder.is_dir() and any(folder.glob("*.txt"))


def load_keypoints(path, joint_set: str | None = None, image_size=None,
                   min_cameras: int = 1, people: bool | None = False,
                   calibration=None) -> Keypoints:
    """Read 2D keypoints from ``path``, checked: every command that reads keypoints reads them
    here, so each gets the same refusals, naming the file, what came and what was expected.

    Args:
        path: a keypoints ``.npz`` (see :mod:`epiflow.keypoints`), a folder holding one
            sub-folder of OpenPose JSON files per camera (see :mod:`epiflow.datasets.openpose`),
            or a Shelf folder (``detection/*.txt``, :func:`is_shelf_folder`; several people).
        joint_set: the joint set the data is in. For OpenPose folders it settles 25-joint files
            (``body25`` / ``body25b``); for an npz it must match the file's, else an error; for
            a Shelf folder ``body25`` (default) or ``h36m17``.
        image_size: (width, height) or (C, 2) for OpenPose folders, which do not store it.
        min_cameras: cameras the command needs (2 to calibrate or triangulate).
        people: False: one person, (T, C, J, 3) (an npz P axis of size 1 is dropped; a larger
            one, or a Shelf folder, is refused; OpenPose keeps each file's most confident
            person). True: several people, (T, C, P, J, 3) (one person becomes P = 1; OpenPose
            keeps every person). None: as the source is (an npz as stored; OpenPose and Shelf
            folders with their P axis).
        calibration: for a Shelf folder, the calibration file whose cameras name the detection
            files and give the image sizes (any format :func:`~epiflow.calibration.formats.
            load_rig` reads); None: the folder's ``calibration.json``.

    Returns:
        :class:`Keypoints` (T, C, J, 3) or (T, C, P, J, 3) (``people``), pixels.

    Raises:
        FileNotFoundError: nothing at ``path``. ValueError: not a keypoints source, a file that
        is not an npz, arrays missing or of the wrong shape or dtype, a P axis of size 0 (or
        more than one person where one is wanted), no frames, fewer than ``min_cameras``
        cameras, confidences outside [0, 1], NaN coordinates with a confidence, coordinates in
        normalised units (:func:`epiflow.keypoints.normalised_units`), broken OpenPose JSON,
        Shelf detection files of different frame counts.
    """
    path = Path(path)
    if joint_set is not None:
        try:
            get_joint_set(joint_set)
        except ValueError as err:
            raise ValueError(f"joint_set: {err}") from None
    kp = _as_asked(_read(path, joint_set, image_size, people, calibration), people, path)
    if kp.n_cameras < min_cameras:
        raise ValueError(f"{path}: holds {kp.n_cameras} camera(s) {list(kp.camera_names)}; this "
                         f"needs at least {min_cameras} synchronized cameras")
    problem = normalised_units(kp.xy, kp.image_size)
    if problem:
        raise ValueError(f"{path}: {problem}")
    return kp


def _as_asked(kp: Keypoints, people: bool | None, path: Path) -> Keypoints:
    """``kp`` with or without its P axis as ``people`` asks (see :func:`load_keypoints`)."""
    if people:
        return kp.with_people()
    if people is None or not kp.has_people:
        return kp
    P = kp.data.shape[2]
    if P > 1:
        raise ValueError(f"{path}: holds several people: {P} detection slots per camera-frame "
                         f"(keypoints (T, C, P, J, 3) = {kp.data.shape}); this command reads one "
                         f"person: give one person's keypoints (C, T, J, 3), or, with the cameras "
                         f"given, a command that reads several (epiflow triangulate, "
                         f"epiflow run --cameras); cameras from several people are not "
                         f"supported yet")
    return Keypoints(kp.data[:, :, 0], kp.joint_set, kp.camera_names, kp.image_size, kp.fps)


def _read(path: Path, joint_set: str | None, image_size, people, calibration) -> Keypoints:
    if path.is_dir() and is_shelf_folder(path):
        if people is False:
            raise ValueError(f"{path}: a Shelf detection folder holds several people; this "
                             f"command reads one person (epiflow triangulate and epiflow run read "
                             f"several, with --cameras calibration.json)")
        return _read_shelf(path, joint_set, calibration)
    if path.is_dir():
        return read_openpose(path, joint_set=joint_set, image_size=image_size,
                             people=people is not False)
    if path.suffix.lower() == ".npz":
        kp = load_npz(path)
        if joint_set is not None and kp.joint_set != joint_set:
            raise ValueError(f"{path}: holds joint set {kp.joint_set!r}; joint_set={joint_set!r} "
                             f"was asked for (leave joint_set out, or convert with .to_h36m())")
        return kp
    if not path.exists():
        raise FileNotFoundError(f"keypoints path {str(path)!r} does not exist; expected a "
                                f"keypoints .npz, a folder of per-camera OpenPose JSON folders "
                                f"or a Shelf detection folder")
    raise ValueError(f"{path}: not a keypoints source; expected a .npz file ({NPZ_LAYOUT}), a "
                     f"folder of per-camera OpenPose JSON folders, or a Shelf folder "
                     f"(detection/<camera>.txt)")


def _read_shelf(path: Path, joint_set: str | None, calibration) -> Keypoints:
    """A Shelf folder's people (:func:`~epiflow.datasets.shelf.read_shelf_people`) as
    :class:`Keypoints` (T, C, P, J, 3), the cameras those of ``calibration`` (or the folder's)."""
    from epiflow.calibration.formats import load_rig
    from epiflow.calibration.formats_shelf import load_shelf_calibration
    from epiflow.datasets.shelf import read_shelf_people

    joint_set = joint_set or "body25"
    if joint_set not in ("body25", "h36m17"):
        raise ValueError(f"{path}: Shelf detections are body25 (or mapped to h36m17); "
                         f"joint_set={joint_set!r} was asked for")
    rig = (load_shelf_calibration(path / "calibration.json") if calibration is None
           else load_rig(calibration))
    data = read_shelf_people(path, joint_set, rig=rig)
    if data.shape[2] == 0:
        raise ValueError(f"{path}: the Shelf detections hold no person in any camera-frame")
    return Keypoints(np.asarray(data), joint_set, tuple(rig.names), rig.sizes)
