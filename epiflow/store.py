"""The pose store: one Zarr v3 hierarchy holding many capture sessions' 2D keypoints, cameras
and 3D pseudo-labels. It is the one contract between the pipeline (writer) and the trainer (reader).

Layout (``T`` frames, ``C`` cameras, ``J`` joints of the session's joint set, ``F`` =
``chunk_frames``, the detection work unit; every float array is NaN where a value is missing)::

    <store>/                       root attrs: epiflow = {schema_version, kind, code_version}
      .epiflow-lease.json          the running writer's lease (see :mod:`epiflow.store_lease`)
      sessions/<session_id>/       one group per capture session (attrs: see below; the id
                                   follows :data:`SESSION_ID_RULE`)

+------------------------+----------------+---------+----------------------------------------+------------------+
| array                  | shape          | dtype   | meaning, units                         | chunks           |
+========================+================+=========+========================================+==================+
| keypoints2d            | (T, C, J, 3)   | float32 | x, y pixels (distorted image), conf in | (F, 1, J, 3)     |
|                        |                |         | [0, 1]; missing = NaN with conf 0      |                  |
+------------------------+----------------+---------+----------------------------------------+------------------+
| keypoints2d_source     | (T, C, Js, 3)  | float32 | the same in the 2D source's own joint  | (F, 1, Js, 3)    |
| (optional)             |                |         | set (attr ``source_joint_set``, e.g.   |                  |
|                        |                |         | BlazePose 33) when it differs; the     |                  |
|                        |                |         | cameras are calibrated from these      |                  |
+------------------------+----------------+---------+----------------------------------------+------------------+
| pseudo3d               | (T, J, 3)      | float32 | triangulated joints, metres, the       | (F, J, 3)        |
|                        |                |         | session's world frame (that of the     |                  |
|                        |                |         | cameras below; Z up when calibrated    |                  |
|                        |                |         | from people); NaN = no label           |                  |
+------------------------+----------------+---------+----------------------------------------+------------------+
| pseudo3d_weight        | (T, J)         | float32 | per-label weight in [0, 1] (0 = none)  | (F, J)           |
+------------------------+----------------+---------+----------------------------------------+------------------+
| reproj_error           | (T, J)         | float32 | mean reprojection error over the views | (F, J)           |
|                        |                |         | used, pixels                           |                  |
+------------------------+----------------+---------+----------------------------------------+------------------+
| pseudo3d_views         | (T, C, J)      | bool    | which views the label was built from   | (F, C, J)        |
+------------------------+----------------+---------+----------------------------------------+------------------+
| cameras/K              | (C, 3, 3)      | float64 | intrinsic matrices, pixels             | whole            |
| cameras/dist           | (C, 5)         | float64 | Brown-Conrady k1, k2, p1, p2, k3       | whole            |
| cameras/R              | (C, 3, 3)      | float64 | world->camera rotation                 | whole            |
| cameras/t              | (C, 3)         | float64 | world->camera translation, metres      | whole            |
| cameras/size           | (C, 2)         | int32   | image (width, height), pixels          | whole            |
+------------------------+----------------+---------+----------------------------------------+------------------+
| gt3d (optional)        | (T, J, 3)      | float32 | ground-truth joints, metres, in the    | (F, J, 3)        |
|                        |                |         | frame named by attr ``gt3d_frame``:    |                  |
|                        |                |         | ``gt_cameras`` = world of the true rig |                  |
|                        |                |         | in attr ``gt_cameras_toml``            |                  |
+------------------------+----------------+---------+----------------------------------------+------------------+
| crops (optional)       | (T, C, H, W, 3)| uint8   | square RGB person crops, H = W =       | (F, 1, H, W, 3)  |
|                        |                |         | ``crop_size``; zeros where no person   |                  |
| crop_boxes (optional)  | (T, C, 4)      | float32 | crop square in the image: x0, y0, x1,  | (F, 1, 4)        |
|                        |                |         | y1 pixels; NaN where no crop           |                  |
+------------------------+----------------+---------+----------------------------------------+------------------+
| done/detect            | (T / F, C)     | bool    | detection unit (frame chunk, camera)   | (1, 1)           |
|                        |                |         | written; set only after its data       |                  |
+------------------------+----------------+---------+----------------------------------------+------------------+

Session attributes: ``schema_version``, ``joint_set``, ``joint_names``, ``source_joint_set``,
``fps``, ``n_frames``, ``camera_names`` (the order of axis C), ``image_size`` (C x [w, h]),
``chunk_frames``, ``source`` (kind and path), ``config`` (the resolved run config: the
session's source and every stage's settings), ``fingerprint`` (its hash), ``code_version``,
``status`` (per stage in :data:`STAGES`: ``pending`` / ``done`` / ``failed``), ``failure``
(stage and reason, or None), ``warnings`` (ingest's: a trim...), ``calibration`` (method and
report, with its ``warnings``), ``labels`` (triangulation's summary, with its ``warnings``),
``cameras_toml`` (the camera TOML text, Pose2Sim / Anipose layout), ``gt3d_frame``, ``gt_cameras_toml`` (the true cameras
where a source has them), ``complete`` (set last, once every stage is done).

Work units and resume: a detection unit (frames ``k·F : (k+1)·F`` of camera ``c``) is written
by one worker into its own chunks, then ``done/detect[k, c]`` is set. The other stages run once
per session and set their ``status`` after their data. Stores may be local folders or any URL
that zarr's fsspec support reads (``s3://bucket/data.zarr`` with ``s3fs`` installed).

Every array carries Zarr v3 ``dimension_names`` (:data:`DIMENSIONS`: ``frame``, ``camera``,
``joint``, ...), so ``xarray.open_zarr(store, group="sessions/<id>", consolidated=False)`` reads a
session as a labelled dataset without epiflow.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
import zarr

from epiflow import __version__
from epiflow.keypoints import Keypoints
from epiflow.naming import natural_key
from epiflow.skeleton import get_joint_set

if TYPE_CHECKING:  # the camera code imports torch; detection workers need none of it
    from epiflow.calibration.camera import CameraRig

__all__ = ["SCHEMA_VERSION", "SESSION_ID_RULE", "STAGES", "PoseStore", "Session", "Labels",
           "GroundTruth", "StoreError", "StoreVersionError", "check_session_id"]

SCHEMA_VERSION = 1
#: The pipeline's stages, in order; a session is complete when all are ``done``.
STAGES = ("ingest", "detect", "calibrate", "triangulate")
_SESSION_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_SESSION_ID_MAX = 128
#: What a session id may be (it names a folder of the store, on every file system and URL).
SESSION_ID_RULE = (f"1 to {_SESSION_ID_MAX} ASCII letters, digits, '_', '.', '-', starting with "
                   f"a letter, digit or '_' (not '__', which Zarr reserves), and not 'zarr.json'")
_CAMERA_ARRAYS = ("K", "dist", "R", "t", "size")


class StoreError(ValueError):
    """A store that cannot be used as asked: missing, not an epiflow store, a bad session."""


class StoreVersionError(StoreError):
    """A store written with another schema version."""


def _id_problem(session_id: str) -> str | None:
    """What is wrong with a session id, or None when it is valid."""
    if not session_id:
        return "it is empty"
    if session_id in (".", ".."):
        return "it names a folder above or at the store's sessions"
    if session_id.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", session_id):
        return "it is an absolute path (a session is a folder inside the store)"
    if "/" in session_id or "\\" in session_id:
        return "it holds a path separator (a session is one folder, never nested)"
    if any(c.isspace() or not c.isprintable() for c in session_id):
        return "it holds whitespace or a control character"
    if len(session_id) > _SESSION_ID_MAX:
        return f"it is {len(session_id)} characters long"
    if session_id.startswith("__") or session_id == "zarr.json":
        return "Zarr reserves that name"
    if not _SESSION_ID.fullmatch(session_id):
        return "it holds a character outside the rule or starts with '.' or '-'"
    return None


def check_session_id(session_id, what: str = "session id") -> str:
    """``session_id`` unchanged when it is a valid session id (see :data:`SESSION_ID_RULE`);
    else a :class:`StoreError` naming ``what`` (the argument or config key it came from), the
    value, what is wrong and the rule. Checked before anything is written."""
    problem = ("it is not a string" if not isinstance(session_id, str)
               else _id_problem(session_id))
    if problem:
        raise StoreError(f"{what} {session_id!r} is not a valid session id: {problem}; a session "
                         f"id is {SESSION_ID_RULE}, e.g. 'take_01' or 'S1.walking-2'")
    return session_id


def _check_version(found: Any, where: str) -> None:
    if found != SCHEMA_VERSION:
        raise StoreVersionError(
            f"{where} was written with epiflow store schema version {found}; this epiflow "
            f"({__version__}) reads version {SCHEMA_VERSION}. Write a new store (a new --out) or "
            f"use the epiflow version that wrote it")


class PoseStore:
    """A store of capture sessions. Open with :meth:`open`; see the module docstring's table.

    Example::

        store = PoseStore.open("demo.zarr")
        s = store.session(store.session_ids()[0])
        xyz = s.pseudo3d[:100]          # (100, J, 3) numpy, metres
    """

    def __init__(self, root: zarr.Group, url: str, mode: str):
        self.root, self.url, self.mode = root, url, mode

    @classmethod
    def open(cls, path_or_url, mode: str = "r", storage_options: dict | None = None) -> "PoseStore":
        """Open a store.

        Args:
            path_or_url: a local folder or an fsspec URL (``s3://...``, ``memory://...``).
            mode: ``r`` read only (the store must exist), ``a`` read and write (created if absent).
            storage_options: passed to fsspec for URLs (credentials, endpoint...).
        """
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a'; got {mode!r}")
        url = str(path_or_url)
        opts = {"storage_options": storage_options} if storage_options else {}
        _check_location(url, mode, storage_options)
        try:
            root = zarr.open_group(url, mode="r" if mode == "r" else "a", zarr_format=3, **opts)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError):
            raise FileNotFoundError(f"pose store {url!r} does not exist; write one with "
                                    f"`epiflow run`") from None
        except (ValueError, TypeError, KeyError) as err:
            raise StoreError(f"{url!r} is not a readable Zarr v3 store ({err})") from None
        meta = root.attrs.get("epiflow")
        if meta is None:
            if mode == "r" or len(list(root.keys())):
                raise StoreError(f"{url!r} is a Zarr group but not an epiflow pose store (no "
                                 f"'epiflow' attribute); give a new or an epiflow store")
            root.attrs["epiflow"] = {"schema_version": SCHEMA_VERSION, "kind": "pose_store",
                                     "code_version": __version__}
            root.require_group("sessions")
        else:
            _check_version(meta.get("schema_version"), f"store {url!r}")
        return cls(root, url, mode)

    def session_ids(self, complete_only: bool = False) -> list[str]:
        """Session ids in natural order; only the complete ones when ``complete_only``. Entries
        under ``sessions/`` that are not readable sessions are left out: see
        :meth:`damaged_entries`."""
        ids = sorted((name for name, problem in self._entries() if problem is None),
                     key=natural_key)
        return [i for i in ids if not complete_only or self.session(i).is_complete]

    def damaged_entries(self) -> dict[str, str]:
        """Entries under ``sessions/`` that are not sessions this epiflow reads (a name that is
        not a session id, an array, a group without epiflow's attributes such as the folder
        ``a`` of a nested ``a/b`` written by an older epiflow, another schema version), each
        with what is wrong. The store's other sessions read as usual."""
        return {name: problem for name, problem in self._entries() if problem is not None}

    def _entries(self) -> list[tuple[str, str | None]]:
        """(name, problem or None) of every node under ``sessions/``."""
        if "sessions" not in self.root:
            return []
        with warnings.catch_warnings():  # a folder that is no Zarr node is skipped: say nothing
            warnings.filterwarnings("ignore", "Object at .* is not recognized")
            members = list(self.root["sessions"].members())
        return [(name, _entry_problem(name, node)) for name, node in members]

    def __contains__(self, session_id: str) -> bool:
        return (isinstance(session_id, str) and _id_problem(session_id) is None
                and "sessions" in self.root and session_id in self.root["sessions"])

    def session(self, session_id: str) -> "Session":
        """The session called ``session_id``; KeyError naming the available ones otherwise."""
        check_session_id(session_id)
        try:
            group = self.root["sessions"][session_id]
        except KeyError:
            raise KeyError(f"no session {session_id!r} in store {self.url!r}; it has: "
                           f"{', '.join(self.session_ids()) or 'none'}") from None
        where = f"session {session_id!r} of {self.url!r}"
        problem = _entry_problem(session_id, group)
        if problem and isinstance(group, zarr.Group) and "schema_version" in group.attrs:
            _check_version(group.attrs["schema_version"], where)
        if problem:
            raise StoreError(f"{where} is not an epiflow session: {problem}")
        return Session(group, session_id, self.url)

    def sessions(self, complete_only: bool = False) -> Iterable["Session"]:
        """Iterate over the sessions in natural order."""
        return (self.session(i) for i in self.session_ids(complete_only))

    def create_session(self, session_id: str, *, n_frames: int, camera_names: list[str],
                       joint_set: str, image_size, fps: float | None, chunk_frames: int,
                       crop_size: int = 0, with_gt3d: bool = False,
                       source_joint_set: str | None = None,
                       attrs: dict | None = None) -> "Session":
        """Create (or replace) a session's group and its empty arrays; status all ``pending``.

        Args:
            n_frames: T. camera_names: the C cameras, in the order of axis C.
            joint_set: the joint set of ``keypoints2d`` and ``pseudo3d`` (J from it).
            image_size: (C, 2) (width, height) pixels. fps: frames per second or None.
            chunk_frames: F, frames per detection unit and per chunk along T.
            crop_size: side of person crops, pixels; 0 = no crops.
            source_joint_set: the 2D source's own joint set when it differs from
                ``joint_set``: its keypoints are kept too, as ``keypoints2d_source``.
            attrs: more session attributes (source, config...).
        """
        self._check_writable()
        check_session_id(session_id)
        if n_frames <= 0 or not camera_names or chunk_frames <= 0:
            raise StoreError(f"session {session_id!r}: need n_frames > 0, cameras and "
                             f"chunk_frames > 0; got {n_frames}, {camera_names}, {chunk_frames}")
        js = get_joint_set(joint_set)
        src = None if source_joint_set in (None, js.name) else get_joint_set(source_joint_set)
        size = np.asarray(image_size, dtype=np.int64).reshape(len(camera_names), 2)
        meta = {"schema_version": SCHEMA_VERSION, "code_version": __version__,
                "joint_set": js.name, "joint_names": list(js.joints),
                "source_joint_set": src.name if src else None,
                "fps": None if fps is None else float(fps), "n_frames": int(n_frames),
                "camera_names": [str(c) for c in camera_names], "image_size": size.tolist(),
                "chunk_frames": int(chunk_frames), "crop_size": int(crop_size),
                "status": {s: "pending" for s in STAGES}, "failure": None, "complete": False,
                **(attrs or {})}
        # the attributes go with the group, in one write, before any array: a run killed
        # part-way leaves a session that says its version and that it is not complete
        group = self.root.require_group("sessions").create_group(session_id, overwrite=True,
                                                                 attributes=meta)
        _create_arrays(group, n_frames, len(camera_names), len(js), chunk_frames,
                       crop_size, with_gt3d, len(src) if src else 0)
        return Session(group, session_id, self.url)

    def record_failure(self, session_id: str, stage: str, reason: str) -> None:
        """Record that ``stage`` failed for a session, creating an empty group (attributes
        only, no arrays) when the failure came before the session could be created."""
        self._check_writable()
        check_session_id(session_id)
        if session_id in self:
            self.session(session_id).mark_failed(stage, reason)
            return
        status = {s: "pending" for s in STAGES}
        status[stage] = "failed"
        self.root.require_group("sessions").create_group(session_id, overwrite=True, attributes={
            "schema_version": SCHEMA_VERSION, "code_version": __version__, "status": status,
            "failure": {"stage": stage, "reason": str(reason)}, "complete": False})

    def delete_session(self, session_id: str) -> None:
        """Remove a session and its arrays."""
        self._check_writable()
        check_session_id(session_id)
        del self.root["sessions"][session_id]

    def _check_writable(self):
        if self.mode == "r":
            raise StoreError(f"store {self.url!r} is open read-only; open it with mode='a'")


def _check_location(url: str, mode: str, storage_options: dict | None) -> None:
    """Refuse, before Zarr touches it, what is at ``url`` when it is not (and cannot become)
    an epiflow store: a file, a Zarr v2 store, a folder of other things."""
    problem = _location_problem(url, mode, storage_options)
    if problem:
        todo = ("give the store folder that `epiflow run --out` wrote" if mode == "r" else
                "give a new folder path (e.g. S.zarr) or a store that `epiflow run` wrote")
        raise StoreError(f"{url!r} {problem}; {todo}")


def _location_problem(url: str, mode: str, storage_options: dict | None) -> str | None:
    """What is at ``url`` that is not an epiflow store's folder, or None (also when the file
    system cannot be asked: Zarr then says what is wrong)."""
    import fsspec
    try:
        fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
        path = path.rstrip("/")
        if fs.isfile(path):
            hint = " (an .npz holds keypoints: give it with --keypoints)" \
                if path.endswith(".npz") else ""
            return f"is a file{hint}, not a Zarr store folder"
        if fs.exists(f"{path}/zarr.json"):
            return None
        if any(fs.exists(f"{path}/{m}") for m in (".zgroup", ".zarray", ".zattrs")):
            return ("is a Zarr v2 store (it has .zgroup / .zarray); epiflow stores are Zarr v3 "
                    "and epiflow does not write into a v2 store")
        is_dir = fs.isdir(path)
        entries = sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(path, detail=False)) \
            if is_dir else []
    except (OSError, ValueError, ImportError):
        return None
    if entries:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        return (f"is a folder that is not a Zarr store (no zarr.json; it holds {len(entries)} "
                f"entr{'y' if len(entries) == 1 else 'ies'}: {shown})")
    if is_dir and mode == "r":
        return "is an empty folder, not a Zarr store"
    return None


def _entry_problem(name: str, node) -> str | None:
    """Why the node ``sessions/<name>`` is not a session this epiflow reads, or None."""
    bad_id = _id_problem(name)
    if bad_id:
        return f"its name is not a valid session id ({bad_id})"
    if not isinstance(node, zarr.Group):
        return "it is an array, not a session group"
    if "schema_version" not in node.attrs:
        inner = sorted(node.group_keys())
        nested = f" (it holds groups {inner}: a nested id such as {name + '/' + inner[0]!r} " \
                 f"from an older epiflow)" if inner else ""
        return f"it has no epiflow session attributes{nested}"
    if node.attrs["schema_version"] != SCHEMA_VERSION:
        return (f"written with session schema version {node.attrs['schema_version']}; this "
                f"epiflow reads {SCHEMA_VERSION}")
    return None


#: each array's dimension names (Zarr v3 ``dimension_names``: xarray reads them)
DIMENSIONS = {
    "keypoints2d": ("frame", "camera", "joint", "xyc"),
    "keypoints2d_source": ("frame", "camera", "source_joint", "xyc"),
    "pseudo3d": ("frame", "joint", "xyz"), "pseudo3d_weight": ("frame", "joint"),
    "reproj_error": ("frame", "joint"), "pseudo3d_views": ("frame", "camera", "joint"),
    "gt3d": ("frame", "joint", "xyz"), "crops": ("frame", "camera", "crop_y", "crop_x", "rgb"),
    "crop_boxes": ("frame", "camera", "box"), "done/detect": ("unit", "camera"),
    "K": ("camera", "row", "column"), "R": ("camera", "row", "column"),
    "dist": ("camera", "coefficient"), "t": ("camera", "xyz"), "size": ("camera", "wh"),
}


def _create_arrays(group: zarr.Group, T: int, C: int, J: int, F: int, crop: int,
                   with_gt3d: bool, J_source: int) -> None:
    nan = float("nan")

    def array(name, shape, chunks, dtype="float32", fill=nan):
        group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                           dimension_names=DIMENSIONS[name])

    F = min(F, T)
    array("keypoints2d", (T, C, J, 3), (F, 1, J, 3))
    if J_source:
        array("keypoints2d_source", (T, C, J_source, 3), (F, 1, J_source, 3))
    array("pseudo3d", (T, J, 3), (F, J, 3))
    array("pseudo3d_weight", (T, J), (F, J), fill=0.0)
    array("reproj_error", (T, J), (F, J))
    array("pseudo3d_views", (T, C, J), (F, C, J), dtype="bool", fill=False)
    n_units = -(-T // F)
    array("done/detect", (n_units, C), (1, 1), dtype="bool", fill=False)
    if with_gt3d:
        array("gt3d", (T, J, 3), (F, J, 3))
    if crop:
        array("crops", (T, C, crop, crop, 3), (F, 1, crop, crop, 3), dtype="uint8", fill=0)
        array("crop_boxes", (T, C, 4), (F, 1, 4))


@dataclass(frozen=True, eq=False)
class Labels:
    """A session's pseudo-labels (:meth:`Session.labels`), in its world frame.

    Attributes:
        pseudo3d: (T, J, 3) float32 metres; NaN = no label. weight: (T, J) float32 in [0, 1].
        reproj_error: (T, J) float32 pixels. views: (T, C, J) bool, the views each label used.
    """

    pseudo3d: np.ndarray
    weight: np.ndarray
    reproj_error: np.ndarray
    views: np.ndarray


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """A session's ground truth (:meth:`Session.ground_truth`).

    Attributes:
        points: (T, J, 3) float32 metres. frame: ``gt_cameras`` (the world of ``rig``) or
            ``source`` (the source's own frame). rig: the true cameras, or None.
    """

    points: np.ndarray
    frame: str
    rig: "CameraRig | None"


@dataclass
class Session:
    """One capture session of a store. Arrays are lazy zarr arrays: index them to read numpy.

    Attributes:
        group: the session's zarr group. id: its session id. url: the store's URL.
    """

    group: zarr.Group
    id: str
    url: str = ""

    # -- reading -------------------------------------------------------------------------------
    def _array(self, name: str, optional: bool = False):
        if name in self.group:
            return self.group[name]
        if optional:
            return None
        raise KeyError(f"session {self.id!r} of {self.url!r} has no array {name!r}")

    @property
    def keypoints2d(self) -> zarr.Array:
        """(T, C, J, 3) float32: x, y pixels, confidence; NaN / 0 where missing."""
        return self._array("keypoints2d")

    @property
    def keypoints2d_source(self) -> zarr.Array | None:
        """(T, C, J_source, 3) float32 in the 2D source's own joint set (attr
        ``source_joint_set``), or None when it is the store's joint set."""
        return self._array("keypoints2d_source", optional=True)

    @property
    def pseudo3d(self) -> zarr.Array:
        """(T, J, 3) float32 metres, the session's world frame; NaN where no label."""
        return self._array("pseudo3d")

    @property
    def pseudo3d_weight(self) -> zarr.Array:
        """(T, J) float32 in [0, 1]; 0 where no label."""
        return self._array("pseudo3d_weight")

    @property
    def reproj_error(self) -> zarr.Array:
        """(T, J) float32 pixels."""
        return self._array("reproj_error")

    @property
    def pseudo3d_views(self) -> zarr.Array:
        """(T, C, J) bool: views each label was triangulated from."""
        return self._array("pseudo3d_views")

    @property
    def gt3d(self) -> zarr.Array | None:
        """(T, J, 3) float32 metres, or None where the source has no ground truth."""
        return self._array("gt3d", optional=True)

    @property
    def crops(self) -> zarr.Array | None:
        """(T, C, H, W, 3) uint8 person crops, or None when the session has none."""
        return self._array("crops", optional=True)

    @property
    def crop_boxes(self) -> zarr.Array | None:
        """(T, C, 4) float32 crop squares (x0, y0, x1, y1) pixels, or None."""
        return self._array("crop_boxes", optional=True)

    @property
    def attrs(self) -> dict:
        """The session's attributes, freshly read (see the module docstring)."""
        return _fresh(self.group).attrs.asdict()

    @property
    def n_frames(self) -> int:
        """T, as created (read from the attributes, so a session cut short still says it)."""
        n = self.group.attrs.get("n_frames")
        return int(n) if n is not None else int(self.keypoints2d.shape[0])

    @property
    def camera_names(self) -> list[str]:
        return list(self.group.attrs["camera_names"])

    @property
    def joint_set(self) -> str:
        return str(self.group.attrs["joint_set"])

    @property
    def fps(self) -> float | None:
        return self.group.attrs.get("fps")

    @property
    def status(self) -> dict[str, str]:
        """Stage -> ``pending`` / ``done`` / ``failed``."""
        return dict(self.attrs["status"])

    @property
    def is_complete(self) -> bool:
        """True only when every stage is done and the session was marked complete after them."""
        attrs = self.attrs
        return bool(attrs.get("complete")) and all(
            attrs["status"].get(s) == "done" for s in STAGES)

    @property
    def warnings(self) -> list[str]:
        """Every warning stored with the session, in stage order: ingest's (a trim), the
        calibration's (cameras matched in order, image sizes that differ from the calibration's,
        the vertical taken from the body axis...), triangulation's (a camera dropped from most
        labels)."""
        a = self.attrs
        calibration = (a.get("calibration") or {}).get("report") or {}
        return [str(w) for w in (*a.get("warnings", []), *calibration.get("warnings", []),
                                 *(a.get("labels") or {}).get("warnings", []))]

    @property
    def rig(self) -> "CameraRig":
        """The session's cameras (from the camera TOML attribute, the exact copy)."""
        from epiflow.calibration.formats import rig_from_toml
        text = self.group.attrs.get("cameras_toml")
        if not text:
            raise KeyError(f"session {self.id!r} of {self.url!r} has no cameras yet "
                           f"(calibrate stage: {self.status.get('calibrate')})")
        return rig_from_toml(text, f"{self.url}/sessions/{self.id}.cameras_toml")

    def keypoints(self, source: bool = False):
        """The 2D keypoints as :class:`epiflow.keypoints.Keypoints` (T, C, J, 3); with
        ``source``, in the 2D source's own joint set when the session keeps it."""
        a = self.attrs
        use_source = source and self.keypoints2d_source is not None
        data = (self.keypoints2d_source if use_source else self.keypoints2d)[:]
        return Keypoints(data, a["source_joint_set"] if use_source else a["joint_set"],
                         tuple(a["camera_names"]), np.asarray(a["image_size"]), a.get("fps"))

    # -- typed readers: no module outside this one reads the raw attributes ----------------------
    @property
    def has_labels(self) -> bool:
        """Whether the triangulate stage wrote the pseudo-labels."""
        return self.status.get("triangulate") == "done"

    @property
    def has_cameras(self) -> bool:
        """Whether the calibrate stage wrote the cameras (:attr:`rig`)."""
        return self.status.get("calibrate") == "done"

    def labels(self) -> "Labels":
        """The pseudo-labels, read whole; a :class:`StoreError` saying what to run when the
        triangulate stage has not written them."""
        if not self.has_labels:
            raise StoreError(f"session {self.id!r} of {self.url!r} has no pseudo-labels (its "
                             f"triangulate stage is {self.status.get('triangulate')!r}); run "
                             f"`epiflow run` on the store to write them")
        return Labels(np.asarray(self.pseudo3d[:], np.float32),
                      np.asarray(self.pseudo3d_weight[:], np.float32),
                      np.asarray(self.reproj_error[:], np.float32),
                      np.asarray(self.pseudo3d_views[:], bool))

    @property
    def gt_rig(self) -> "CameraRig | None":
        """The true cameras that came with the source (a synthetic capture's rig), or None."""
        text = self.group.attrs.get("gt_cameras_toml")
        if not text:
            return None
        from epiflow.calibration.formats import rig_from_toml
        return rig_from_toml(text, f"{self.url}/sessions/{self.id}.gt_cameras_toml")

    def ground_truth(self) -> "GroundTruth | None":
        """The ground truth, read whole, with its frame and true cameras; None where the source
        has none (or it was never written)."""
        frame = self.group.attrs.get("gt3d_frame")
        if self.gt3d is None or not frame:
            return None
        return GroundTruth(np.asarray(self.gt3d[:], np.float32), str(frame), self.gt_rig)

    @property
    def image_size(self) -> np.ndarray:
        """(C, 2) int64 image (width, height) pixels, in the order of :attr:`camera_names`."""
        return np.asarray(self.group.attrs["image_size"], np.int64).reshape(-1, 2)

    @property
    def source(self) -> dict:
        """The session's source: ``{"kind": ..., "path": ...}`` (empty when not recorded)."""
        return dict(self.group.attrs.get("source") or {})

    @property
    def fingerprint(self) -> str | None:
        """The hash of the settings the session was written with (resume compares it)."""
        return self.group.attrs.get("fingerprint")

    @property
    def streams(self) -> list[str]:
        """Per camera, the video file or image folder detection reads ([] for keypoints)."""
        return list(self.group.attrs.get("streams") or [])

    @property
    def ingest_warnings(self) -> list[str]:
        """The warnings ingest stored (a trim, a guessed name...)."""
        return [str(w) for w in self.group.attrs.get("warnings") or []]

    @property
    def failure(self) -> dict | None:
        """``{"stage", "reason"}`` of the stage that failed, or None."""
        return self.attrs.get("failure")

    @property
    def calibration(self) -> dict:
        """How the cameras were obtained: ``{"method", "report"}`` ({} before calibration)."""
        return dict(self.attrs.get("calibration") or {})

    @property
    def label_summary(self) -> dict:
        """Triangulation's summary (labelled fraction, median weight and reprojection error,
        ``median_reproj_px_per_camera``); {} before triangulation."""
        return dict(self.attrs.get("labels") or {})

    # -- units ---------------------------------------------------------------------------------
    @property
    def chunk_frames(self) -> int:
        return int(self.group.attrs["chunk_frames"])

    def unit_frames(self, unit: int) -> tuple[int, int]:
        """Frames ``start, stop`` of detection unit ``unit`` (a chunk along T)."""
        F = self.keypoints2d.chunks[0]
        return unit * F, min(self.n_frames, (unit + 1) * F)

    def units_done(self) -> np.ndarray:
        """(n_units, C) bool: which detection units are written."""
        return np.asarray(self._array("done/detect")[:], dtype=bool)

    def write_unit(self, unit: int, camera: int, keypoints: np.ndarray,
                   crops: np.ndarray | None = None, crop_boxes: np.ndarray | None = None,
                   source_keypoints: np.ndarray | None = None) -> None:
        """Write one detection unit's data into its own chunks, then mark the unit done.

        Args:
            unit: the frame chunk index. camera: the camera index (axis C).
            keypoints: (stop - start, J, 3) pixels / confidence for those frames.
            crops: (stop - start, H, W, 3) uint8, and crop_boxes (stop - start, 4), when the
                session has crops.
            source_keypoints: (stop - start, J_source, 3), when the session keeps them.
        """
        start, stop = self.unit_frames(unit)
        arrays = [("keypoints2d", keypoints)]
        if self.keypoints2d_source is not None:
            arrays.append(("keypoints2d_source", source_keypoints))
        for name, value in arrays:
            if value is None:
                raise ValueError(f"session {self.id!r} keeps {name}; give it")
            value = np.asarray(value, dtype=np.float32)
            expected = (stop - start, *self.group[name].shape[2:])
            if value.shape != expected:
                raise ValueError(f"session {self.id!r} unit ({unit}, {camera}): {name} must "
                                 f"have shape {expected}; got {value.shape}")
            self.group[name][start:stop, camera] = value
        if self.crops is not None:
            if crops is None or crop_boxes is None:
                raise ValueError(f"session {self.id!r} stores crops; give crops and crop_boxes")
            self.crops[start:stop, camera] = crops
            self.crop_boxes[start:stop, camera] = np.asarray(crop_boxes, np.float32)
        self._array("done/detect")[unit, camera] = True

    def write_all_units(self, keypoints: np.ndarray,
                        source_keypoints: np.ndarray | None = None) -> None:
        """Write the whole (T, C, J, 3) keypoints at once (a source that needs no detection),
        and (T, C, J_source, 3) ``source_keypoints`` when the session keeps them; then mark
        every unit done."""
        arrays = [("keypoints2d", keypoints)]
        if self.keypoints2d_source is not None:
            arrays.append(("keypoints2d_source", source_keypoints))
        for name, value in arrays:
            value = None if value is None else np.asarray(value, dtype=np.float32)
            if value is None or value.shape != self.group[name].shape:
                raise ValueError(f"session {self.id!r}: {name} must have shape "
                                 f"{self.group[name].shape}; got "
                                 f"{None if value is None else value.shape}")
            self.group[name][...] = value
        self._array("done/detect")[...] = True

    # -- stage data ----------------------------------------------------------------------------
    def write_rig(self, rig: "CameraRig", method: str, report: dict | None = None) -> None:
        """Store the cameras (arrays and TOML text) and how they were obtained."""
        from epiflow.calibration.formats import rig_to_toml
        if rig.names != self.camera_names:
            raise ValueError(f"session {self.id!r}: rig cameras {rig.names} differ from the "
                             f"session's {self.camera_names}")
        cams = self.group.require_group("cameras")
        values = {"K": rig.K, "dist": rig.dist, "R": rig.R, "t": rig.t,
                  "size": rig.sizes.astype(np.int32)}
        for name, value in values.items():
            cams.create_array(name, shape=value.shape, dtype=value.dtype, overwrite=True,
                              dimension_names=DIMENSIONS[name])[...] = value
        self.update_attrs(cameras_toml=rig_to_toml(rig),
                          calibration={"method": method, "report": _plain(report or {})})

    def write_labels(self, pseudo3d: np.ndarray, weight: np.ndarray, reproj_error: np.ndarray,
                     views: np.ndarray | None = None) -> None:
        """Store the pseudo-labels: (T, J, 3) metres, (T, J) weights, (T, J) pixels, (T, C, J)."""
        T, J = self.pseudo3d.shape[:2]
        for name, value, shape in (("pseudo3d", pseudo3d, (T, J, 3)),
                                   ("pseudo3d_weight", weight, (T, J)),
                                   ("reproj_error", reproj_error, (T, J))):
            value = np.asarray(value, dtype=np.float32)
            if value.shape != shape:
                raise ValueError(f"session {self.id!r}: {name} must have shape {shape}; "
                                 f"got {value.shape}")
            self.group[name][...] = value
        if views is not None:
            self.pseudo3d_views[...] = np.asarray(views, dtype=bool)

    def write_gt3d(self, points: np.ndarray, frame: str, cameras: "CameraRig | None" = None) -> None:
        """Store ground truth (T, J, 3) metres.

        Args:
            frame: names its world frame: ``gt_cameras`` (that of ``cameras``, the true rig,
                kept as ``gt_cameras_toml``; the session's own cameras when they were given)
                or ``source`` (the source's own frame, unrelated to the cameras).
        """
        from epiflow.calibration.formats import rig_to_toml
        self._array("gt3d")[...] = np.asarray(points, dtype=np.float32)
        self.update_attrs(gt3d_frame=frame,
                          gt_cameras_toml=None if cameras is None else rig_to_toml(cameras))

    def update_attrs(self, **values) -> None:
        """Merge ``values`` into the session's attributes (read fresh, written whole)."""
        group = _fresh(self.group)
        group.attrs.update(_plain(values))
        self.group = group

    def set_status(self, stage: str, status: str) -> None:
        """Set one stage's status (``pending`` / ``done`` / ``failed``)."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages: {STAGES}")
        current = dict(self.attrs["status"])
        current[stage] = status
        self.update_attrs(status=current)

    def mark_failed(self, stage: str, reason: str) -> None:
        """Record that ``stage`` failed, with the reason; the session is not complete."""
        current = dict(self.attrs["status"])
        current[stage] = "failed"
        self.update_attrs(status=current, failure={"stage": stage, "reason": str(reason)},
                          complete=False)

    def mark_complete(self) -> None:
        """Mark the session complete; refuses while a stage is not done."""
        status = self.status
        pending = [s for s in STAGES if status.get(s) != "done"]
        if pending:
            raise StoreError(f"session {self.id!r} cannot be complete: stages {pending} not done")
        self.update_attrs(complete=True, failure=None)


def _fresh(group: zarr.Group) -> zarr.Group:
    """The same group re-read from the store (attributes written by other processes)."""
    return zarr.open_group(store=group.store, path=group.path, mode="r+"
                           if not group.store.read_only else "r")


def _plain(value):
    """Attribute-safe (JSON) data: numpy scalars/arrays to Python, NaN to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
