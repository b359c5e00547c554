"""One entry point for 2D keypoints already computed: a keypoints npz, a folder of OpenPose JSON,
the Shelf detection folder, or a caliscope ``xy_<TRACKER>.csv``. :func:`keypoints_kind` is the one
place that says which of these a path is; every command reads keypoints through
:func:`load_keypoints`."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from epiflow.datasets.openpose import read_openpose
from epiflow.keypoints import NPZ_LAYOUT, Keypoints, load_npz, normalised_units
from epiflow.skeleton import get_joint_set

__all__ = ["load_keypoints", "is_shelf_folder", "keypoints_kind", "KEYPOINT_SOURCES"]

#: The 2D keypoint inputs :func:`load_keypoints` reads, by :func:`keypoints_kind`, as named in
#: errors.
KEYPOINT_SOURCES = {
    "npz": "a .npz keypoints file",
    "openpose": "a folder of per-camera OpenPose JSON folders",
    "shelf": "a Shelf / 4D-association folder (detection/<camera>.txt)",
    "caliscope": "a caliscope xy_<TRACKER>.csv (sync_index, port, point_id, img_loc_x, img_loc_y)",
}
#: Columns whose presence in a .csv header makes it a caliscope 2D points file.
_CALISCOPE_COLUMNS = ("sync_index", "port", "point_id", "img_loc_x", "img_loc_y")


def is_shelf_folder(path) -> bool:
    """Whether ``path`` is a folder of Shelf / 4D-association bottom-up detections: it holds
    ``detection/*.txt`` (see :mod:`epiflow.datasets.shelf`)."""
    folder = Path(path) / "detection"
    return folder.is_dir() and any(folder.glob("*.txt"))


def _is_caliscope_csv(path: Path) -> bool:
    if not (path.is_file() and path.suffix.lower() == ".csv"):
        return False
    with path.open(errors="replace") as f:
        header = f.readline().strip().split(",")
    return all(c in header for c in _CALISCOPE_COLUMNS)


def keypoints_kind(path) -> str | None:
    """Which 2D keypoints input ``path`` is (a key of :data:`KEYPOINT_SOURCES`), or None.

    A folder holding ``detection/*.txt`` is ``"shelf"``, any other folder ``"openpose"``; a
    ``.npz`` file ``"npz"``; a ``.csv`` whose header has caliscope's 2D columns ``"caliscope"``.
    """
    path = Path(path)
    if path.is_dir():
        return "shelf" if is_shelf_folder(path) else "openpose"
    if path.suffix.lower() == ".npz":
        return "npz"
    if _is_caliscope_csv(path):
        return "caliscope"
    return None


def load_keypoints(path, joint_set: str | None = None, image_size=None,
                   min_cameras: int = 1, people: bool | None = False,
                   calibration=None) -> Keypoints:
    """Read 2D keypoints from ``path``, checked: every command that reads keypoints reads them
    here, so each gets the same refusals, naming the file, what came and what was expected.

    Args:
        path: a keypoints ``.npz`` (see :mod:`epiflow.keypoints`), a folder holding one
            sub-folder of OpenPose JSON files per camera (see :mod:`epiflow.datasets.openpose`),
            a Shelf folder (``detection/*.txt``, :func:`is_shelf_folder`; several people), or a
            caliscope ``xy_<TRACKER>.csv`` (:mod:`epiflow.datasets.caliscope`; one person, the
            33 ``blazepose33`` body landmarks). :func:`keypoints_kind` tells which.
        joint_set: the joint set the data is in. For OpenPose folders it settles 25-joint files
            (``body25`` / ``body25b``); for an npz or a caliscope csv it must match the file's
            (``blazepose33`` for caliscope), else an error; for a Shelf folder ``body25``
            (default) or ``h36m17``.
        image_size: (width, height) or (C, 2) for OpenPose folders and caliscope csv files,
            which do not store it.
        min_cameras: cameras the command needs (2 to calibrate or triangulate).
        people: False: one person, (T, C, J, 3) (an npz P axis of size 1 is dropped; a larger
            one, or a Shelf folder, is refused; OpenPose keeps each file's most confident
            person). True: several people, (T, C, P, J, 3) (one person becomes P = 1; OpenPose
            keeps every person). None: as the source is (an npz as stored; OpenPose and Shelf
            folders with their P axis).
        calibration: for a Shelf folder or a caliscope csv, the calibration file whose cameras
            name the detection files and give the image sizes (any format
            :func:`~epiflow.calibration.formats.load_rig` reads). None: a Shelf folder's
            ``calibration.json``; for a caliscope csv, ``image_size``, else the caliscope
            ``config.toml`` of the session the csv belongs to (the nearest of its parent folders
            holding one: ``<session>/recordings/<recording>/<TRACKER>/xy_<TRACKER>.csv``), else
            unknown (0).

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
                         f"epiflow run --cameras; epiflow calibrate and epiflow run solve the "
                         f"cameras from several people)")
    return Keypoints(kp.data[:, :, 0], kp.joint_set, kp.camera_names, kp.image_size, kp.fps)


def _read(path: Path, joint_set: str | None, image_size, people, calibration) -> Keypoints:
    kind = keypoints_kind(path)
    if kind == "shelf":
        if people is False:
            raise ValueError(f"{path}: a Shelf detection folder holds several people; this "
                             f"command reads one person (epiflow triangulate and epiflow run read "
                             f"several, with --cameras calibration.json)")
        return _read_shelf(path, joint_set, calibration)
    if kind == "openpose":
        return read_openpose(path, joint_set=joint_set, image_size=image_size,
                             people=people is not False)
    if kind == "caliscope":
        return _read_caliscope(path, joint_set, image_size, calibration)
    if kind == "npz":
        kp = load_npz(path)
        if joint_set is not None and kp.joint_set != joint_set:
            raise ValueError(f"{path}: holds joint set {kp.joint_set!r}; joint_set={joint_set!r} "
                             f"was asked for (leave joint_set out, or convert with .to_h36m())")
        return kp
    accepted = "; ".join(KEYPOINT_SOURCES.values())
    if not path.exists():
        raise FileNotFoundError(f"keypoints path {str(path)!r} does not exist; expected "
                                f"{accepted}")
    raise ValueError(f"{path}: not a keypoints source; expected {accepted} (the npz layout: "
                     f"{NPZ_LAYOUT})")


def _read_caliscope(path: Path, joint_set: str | None, image_size, calibration) -> Keypoints:
    """A caliscope csv's body landmarks (:func:`~epiflow.datasets.caliscope.read_caliscope_xy`),
    image sizes from ``calibration``, ``image_size`` or the session's ``config.toml`` (see
    :func:`load_keypoints`)."""
    from epiflow.calibration.camera import match_rig
    from epiflow.calibration.formats import load_rig
    from epiflow.datasets.caliscope import read_caliscope_xy

    if joint_set not in (None, "blazepose33"):
        raise ValueError(f"{path}: caliscope's body landmarks are MediaPipe's 33 (blazepose33); "
                         f"joint_set={joint_set!r} was asked for (leave it out)")
    kp = read_caliscope_xy(path)
    source = calibration if calibration is not None else (
        None if image_size is not None else _caliscope_config(path))
    if source is not None:
        sizes = match_rig(load_rig(source), kp.camera_names, str(source), by_order=True)[0].sizes
    elif image_size is not None:
        sizes = np.broadcast_to(np.asarray(image_size, dtype=np.int64), (kp.n_cameras, 2))
    else:
        return kp
    return Keypoints(kp.data, kp.joint_set, kp.camera_names, np.array(sizes, dtype=np.int64),
                     kp.fps)


#: How many parent folders of a caliscope csv are searched for its session's config.toml.
_CALISCOPE_DEPTH = 4


def _caliscope_config(path: Path) -> Path | None:
    """The caliscope ``config.toml`` nearest above ``path`` (within :data:`_CALISCOPE_DEPTH`
    folders), or None."""
    from epiflow.calibration.camera_tables import parse_toml, read_calibration_text
    from epiflow.calibration.formats_caliscope import is_caliscope

    for folder in list(path.resolve().parents)[:_CALISCOPE_DEPTH]:
        config = folder / "config.toml"
        if config.is_file() and is_caliscope(parse_toml(read_calibration_text(config),
                                                        str(config))):
            return config
    return None


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
