"""The pose store: one Zarr v3 hierarchy holding many capture sessions' 2D keypoints, cameras
and 3D pseudo-labels. It is the one contract between the pipeline (writer) and the trainer (reader).

Layout (``T`` frames, ``C`` cameras, ``J`` joints of the session's joint set, ``F`` =
``chunk_frames``, the detection work unit; every float array is NaN where a value is missing)::

    <store>/                       root attrs: epiflow = {schema_version, kind, code_version}
      .epiflow-lease.json          the running writer's lease (see :mod:`epiflow.store_lease`)
      sessions/<session_id>/       one group per capture session (attrs: see below; the id
                                   follows :data:`SESSION_ID_RULE`)

+------------------------+-----------------+---------+---------------------------------------+--------------------+
| array                  | shape           | dtype   | meaning, units                        | chunks             |
+========================+=================+=========+=======================================+====================+
| keypoints2d            | (T, C, P, J, 3) | float32 | x, y pixels (distorted image), conf   | (F, 1, P, J, 3)    |
|                        |                 |         | in [0, 1]; missing = NaN with conf 0; |                    |
|                        |                 |         | P unassociated detection slots per    |                    |
|                        |                 |         | camera-frame (slot p of one camera is |                    |
|                        |                 |         | unrelated to slot p of another)       |                    |
+------------------------+-----------------+---------+---------------------------------------+--------------------+
| keypoints2d_source     | (T, C, P, Js, 3)| float32 | the same in the 2D source's own joint | (F, 1, P, Js, 3)   |
| (optional)             |                 |         | set (attr ``source_joint_set``, e.g.  |                    |
|                        |                 |         | BlazePose 33) when it differs; the    |                    |
|                        |                 |         | cameras are calibrated from these     |                    |
+------------------------+-----------------+---------+---------------------------------------+--------------------+
| keypoints2d_raw,       | as the two      | float32 | unsynchronized cameras only (attr     | as the two above   |
| keypoints2d_source_raw | above           |         | ``time_sync``): the detections on     |                    |
| (optional)             |                 |         | each camera's own frames (camera c's  |                    |
|                        |                 |         | frame k at row k, T = the longest     |                    |
|                        |                 |         | camera's count, NaN past its own);    |                    |
|                        |                 |         | the two above then hold every view    |                    |
|                        |                 |         | interpolated onto camera 0's frame    |                    |
|                        |                 |         | times k / fps (confidence 0 outside   |                    |
|                        |                 |         | a camera's time range)                |                    |
+------------------------+-----------------+---------+---------------------------------------+--------------------+
| person_ids (labels)    | (N,)            | int64   | stable id of each labelled person     | whole              |
|                        |                 |         | (axis N below); one person: [0]       |                    |
+------------------------+-----------------+---------+---------------------------------------+--------------------+
| pseudo3d (labels)      | (T, N, J, 3)    | float32 | triangulated joints, metres, the      | (F, N, J, 3)       |
|                        |                 |         | session's world frame (that of the    |                    |
|                        |                 |         | cameras below; Z up when calibrated   |                    |
|                        |                 |         | from people); NaN = no label          |                    |
+------------------------+-----------------+---------+---------------------------------------+--------------------+
| pseudo3d_weight        | (T, N, J)       | float32 | per-label weight in [0, 1] (0 = none) | (F, N, J)          |
| (labels)               |                 |         |                                       |                    |
+------------------------+-----------------+---------+---------------------------------------+--------------------+
| reproj_error (labels)  | (T, N, J)       | float32 | mean reprojection error over the      | (F, N, J)          |
|                        |                 |         | views used, pixels                    |                    |
+------------------------+-----------------+---------+---------------------------------------+--------------------+
| pseudo3d_views         | (T, N, C, J)    | bool    | which views each label was built from | (F, N, C, J)       |
| (labels)               |                 |         |                                       |                    |
+------------------------+-----------------+---------+---------------------------------------+--------------------+
| person_slots (labels)  | (T, N, C)       | int16   | the detection slot (axis P) that is   | (F, N, C)          |
|                        |                 |         | person n in camera c; -1 = none (the  |                    |
|                        |                 |         | association; one person: slot 0)      |                    |
+------------------------+-----------------+---------+---------------------------------------+--------------------+
| cameras/K              | (C, 3, 3)       | float64 | intrinsic matrices, pixels            | whole              |
| cameras/dist           | (C, 5)          | float64 | Brown-Conrady k1, k2, p1, p2, k3      | whole              |
| cameras/R              | (C, 3, 3)       | float64 | world->camera rotation                | whole              |
| cameras/t              | (C, 3)          | float64 | world->camera translation, metres     | whole              |
| cameras/size           | (C, 2)          | int32   | image (width, height), pixels         | whole              |
+------------------------+-----------------+---------+---------------------------------------+--------------------+
| gt3d (optional)        | (T, N, J, 3)    | float32 | ground-truth joints, metres, of N     | (F, N, J, 3)       |
|                        |                 |         | true people, in the frame named by    |                    |
|                        |                 |         | attr ``gt3d_frame``: ``gt_cameras`` = |                    |
|                        |                 |         | world of the true rig in attr         |                    |
|                        |                 |         | ``gt_cameras_toml``                   |                    |
+------------------------+-----------------+---------+---------------------------------------+--------------------+
| crops (optional)       | (T, C, H, W, 3) | uint8   | square RGB crops of detection slot 0  | (F, 1, H, W, 3)    |
|                        |                 |         | only (the one person of a P = 1       |                    |
|                        |                 |         | session), H = W = ``crop_size``;      |                    |
|                        |                 |         | zeros where no person                 |                    |
| crop_boxes (optional)  | (T, C, 4)       | float32 | crop square in the image: x0, y0, x1, | (F, 1, 4)          |
|                        |                 |         | y1 pixels; NaN where no crop          |                    |
+------------------------+-----------------+---------+---------------------------------------+--------------------+
| done/detect            | (T / F, C)      | bool    | detection unit (frame chunk, camera)  | (1, 1)             |
|                        |                 |         | written; set only after its data      |                    |
+------------------------+-----------------+---------+---------------------------------------+--------------------+

The person axes: P (``slot``) is fixed when the session is created (``max_people``: the
detector's slots, or the P axis of a keypoints input; one person is P = 1). N (``person``) is
known only after triangulation, so the label arrays (marked "labels") are created when the
labels are written, and the triangulate stage's status is set after them. One person is
P = N = 1 with person id 0. Crops are kept for slot 0 only: the image models train on one person.

Session attributes: ``schema_version``, ``joint_set``, ``joint_names``, ``source_joint_set``,
``fps``, ``n_frames``, ``camera_names`` (the order of axis C), ``image_size`` (C x [w, h]),
``chunk_frames``, ``max_people`` (P), ``source`` (kind and path), ``config`` (the resolved run
config: the
session's source and every stage's settings), ``fingerprint`` (its hash), ``code_version``,
``status`` (per stage in :data:`STAGES`: ``pending`` / ``done`` / ``failed``), ``failure``
(stage and reason, or None), ``warnings`` (ingest's: a trim...), ``calibration`` (method and
report, with its ``warnings``), ``labels`` (triangulation's summary, with its ``warnings``; with
several people also ``people``: per person id, its frames labelled and, per camera, the frames
of each reason its view was or was not used),
``time_sync`` (unsynchronized cameras only: per camera its own ``n_frames`` and ``fps``, and
once synchronized ``time_offset``, seconds on camera 0's clock of its first frame, and the
``report``; labels are on camera 0's frame times),
``cameras_toml`` (the camera TOML text, Pose2Sim / Anipose layout; ``time_offset`` per camera
when synchronized from the person), ``gt3d_frame``, ``gt_cameras_toml`` (the true cameras
where a source has them), ``complete`` (set last, once every stage is done).

Work units and resume: a detection unit (frames ``k·F : (k+1)·F`` of camera ``c``) is written
by one worker into its own chunks, then ``done/detect[k, c]`` is set. The other stages run once
per session and set their ``status`` after their data. Stores may be local folders or any URL
that zarr's fsspec support reads (``s3://bucket/data.zarr`` with ``s3fs`` installed).

Every array carries Zarr v3 ``dimension_names`` (:data:`DIMENSIONS`: ``frame``, ``camera``,
``slot``, ``person``, ``joint``, ...), so
``xarray.open_zarr(store, group="sessions/<id>", consolidated=False)`` reads a
session as a labelled dataset without epiflow.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field, replace
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
           "GroundTruth", "StoreError", "StoreVersionError", "check_session_id",
           "STORAGE_ENV_PREFIXES", "storage_env"]

SCHEMA_VERSION = 2
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


def _check_version(found: Any, where: str, url: str) -> None:
    if found != SCHEMA_VERSION:
        raise StoreVersionError(f"{where} {_version_problem(found, url)}")


def _version_problem(found: Any, url: str) -> str:
    """Why a store or session of schema version ``found`` is not read, and what to do."""
    todo = (f"convert it with `epiflow upgrade-store {url}` (in place; --out NEW.zarr writes a "
            f"converted copy and keeps the old store)" if found == 1 and SCHEMA_VERSION == 2
            else "write a new store (a new --out) or use the epiflow version that wrote it")
    return (f"was written with epiflow store schema version {found}; this epiflow "
            f"({__version__}) reads version {SCHEMA_VERSION}: {todo}")


class PoseStore:
    """A store of capture sessions. Open with :meth:`open`; see the module docstring's table.

    Example::

        store = PoseStore.open("demo.zarr")
        s = store.session(store.session_ids()[0])
        xyz = s.labels().pseudo3d[:100]  # (100, N, J, 3) numpy, metres
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
            _check_version(meta.get("schema_version"), f"store {url!r}", url)
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
            _check_version(group.attrs["schema_version"], where, self.url)
        if problem:
            raise StoreError(f"{where} is not an epiflow session: {problem}")
        return Session(group, session_id, self.url)

    def sessions(self, complete_only: bool = False) -> Iterable["Session"]:
        """Iterate over the sessions in natural order."""
        return (self.session(i) for i in self.session_ids(complete_only))

    def create_session(self, session_id: str, *, n_frames: int, camera_names: list[str],
                       joint_set: str, image_size, fps: float | None, chunk_frames: int,
                       crop_size: int = 0, max_people: int = 1,
                       source_joint_set: str | None = None,
                       attrs: dict | None = None) -> "Session":
        """Create (or replace) a session's group and its empty arrays; status all ``pending``.

        Args:
            n_frames: T. camera_names: the C cameras, in the order of axis C.
            joint_set: the joint set of ``keypoints2d`` and ``pseudo3d`` (J from it).
            image_size: (C, 2) (width, height) pixels. fps: frames per second or None.
            chunk_frames: F, frames per detection unit and per chunk along T.
            crop_size: side of person crops (of detection slot 0), pixels; 0 = no crops.
            max_people: P, the detection slots per camera-frame (1 = one person).
            source_joint_set: the 2D source's own joint set when it differs from
                ``joint_set``: its keypoints are kept too, as ``keypoints2d_source``.
            attrs: more session attributes (source, config...).
        """
        self._check_writable()
        check_session_id(session_id)
        if n_frames <= 0 or not camera_names or chunk_frames <= 0 or max_people < 1:
            raise StoreError(f"session {session_id!r}: need n_frames > 0, cameras, "
                             f"chunk_frames > 0 and max_people >= 1; got {n_frames}, "
                             f"{camera_names}, {chunk_frames}, {max_people}")
        js = get_joint_set(joint_set)
        src = None if source_joint_set in (None, js.name) else get_joint_set(source_joint_set)
        size = np.asarray(image_size, dtype=np.int64).reshape(len(camera_names), 2)
        meta = {"schema_version": SCHEMA_VERSION, "code_version": __version__,
                "joint_set": js.name, "joint_names": list(js.joints),
                "source_joint_set": src.name if src else None,
                "fps": None if fps is None else float(fps), "n_frames": int(n_frames),
                "camera_names": [str(c) for c in camera_names], "image_size": size.tolist(),
                "chunk_frames": int(chunk_frames), "crop_size": int(crop_size),
                "max_people": int(max_people),
                "status": {s: "pending" for s in STAGES}, "failure": None, "complete": False,
                **(attrs or {})}
        # the attributes go with the group, in one write, before any array: a run killed
        # part-way leaves a session that says its version and that it is not complete
        group = self.root.require_group("sessions").create_group(session_id, overwrite=True,
                                                                 attributes=meta)
        _create_arrays(group, n_frames, len(camera_names), int(max_people), len(js),
                       chunk_frames, crop_size, len(src) if src else 0)
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


#: Environment variables through which fsspec's object stores learn where they are and who asks
#: (s3fs: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
#: ``AWS_ENDPOINT_URL`` for an S3 server other than AWS's, ``AWS_DEFAULT_REGION``, ``AWS_PROFILE``;
#: fsspec: ``FSSPEC_<PROTOCOL>_<OPTION>``, e.g. ``FSSPEC_S3_ENDPOINT_URL``; gcsfs:
#: ``GOOGLE_APPLICATION_CREDENTIALS``).
STORAGE_ENV_PREFIXES = ("AWS_", "FSSPEC_", "GOOGLE_APPLICATION_CREDENTIALS")


def storage_env(url) -> dict[str, str]:
    """This process's :data:`STORAGE_ENV_PREFIXES` variables when ``url`` is an fsspec URL
    (``s3://...``), else {}: what Ray workers that open the store need, since a worker started
    by a cluster's own ``ray start`` does not have the driver's environment."""
    if "://" not in str(url) or str(url).startswith("file://"):
        return {}
    return {k: v for k, v in os.environ.items() if k.startswith(STORAGE_ENV_PREFIXES)}


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
        return f"session {_version_problem(node.attrs['schema_version'], 'STORE')}"
    return None


#: each array's dimension names (Zarr v3 ``dimension_names``: xarray reads them)
DIMENSIONS = {
    "keypoints2d": ("frame", "camera", "slot", "joint", "xyc"),
    "keypoints2d_source": ("frame", "camera", "slot", "source_joint", "xyc"),
    "keypoints2d_raw": ("frame", "camera", "slot", "joint", "xyc"),
    "keypoints2d_source_raw": ("frame", "camera", "slot", "source_joint", "xyc"),
    "person_ids": ("person",),
    "pseudo3d": ("frame", "person", "joint", "xyz"),
    "pseudo3d_weight": ("frame", "person", "joint"),
    "reproj_error": ("frame", "person", "joint"),
    "pseudo3d_views": ("frame", "person", "camera", "joint"),
    "person_slots": ("frame", "person", "camera"),
    "gt3d": ("frame", "person", "joint", "xyz"),
    "crops": ("frame", "camera", "crop_y", "crop_x", "rgb"),
    "crop_boxes": ("frame", "camera", "box"), "done/detect": ("unit", "camera"),
    "K": ("camera", "row", "column"), "R": ("camera", "row", "column"),
    "dist": ("camera", "coefficient"), "t": ("camera", "xyz"), "size": ("camera", "wh"),
}
#: the arrays the triangulate stage creates, with their fill values
LABEL_ARRAYS = {"pseudo3d": float("nan"), "pseudo3d_weight": 0.0,
                "reproj_error": float("nan"), "pseudo3d_views": False, "person_slots": -1}
_LABEL_DTYPES = {"pseudo3d_views": "bool", "person_slots": "int16"}


def _array(group: zarr.Group, name: str, shape, chunks, dtype="float32", fill=float("nan"),
           overwrite: bool = False):
    return group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                              dimension_names=DIMENSIONS[name], overwrite=overwrite)


def _create_arrays(group: zarr.Group, T: int, C: int, P: int, J: int, F: int, crop: int,
                   J_source: int) -> None:
    """The arrays fixed at creation: detections, done-markers, crops (labels come later)."""
    F = min(F, T)
    _array(group, "keypoints2d", (T, C, P, J, 3), (F, 1, P, J, 3))
    if J_source:
        _array(group, "keypoints2d_source", (T, C, P, J_source, 3), (F, 1, P, J_source, 3))
    n_units = -(-T // F)
    _array(group, "done/detect", (n_units, C), (1, 1), dtype="bool", fill=False)
    if crop:
        _array(group, "crops", (T, C, crop, crop, 3), (F, 1, crop, crop, 3), dtype="uint8",
               fill=0)
        _array(group, "crop_boxes", (T, C, 4), (F, 1, 4))


@dataclass(frozen=True, eq=False)
class PersonLabels:
    """One person's pseudo-labels (:meth:`Labels.person`), in the session's world frame.

    Attributes:
        person_id: the person's stable id. pseudo3d: (T, J, 3) float32 metres; NaN = no label.
        weight: (T, J) float32 in [0, 1]. reproj_error: (T, J) float32 pixels.
        views: (T, C, J) bool, the views each label used. slots: (T, C) int16, the detection
        slot that is this person in each camera, -1 = none.
    """

    person_id: int
    pseudo3d: np.ndarray
    weight: np.ndarray
    reproj_error: np.ndarray
    views: np.ndarray
    slots: np.ndarray

    def keypoints(self, detections: np.ndarray) -> np.ndarray:
        """This person's 2D keypoints (T, C, J', 3) gathered from the session's detections
        (T, C, P, J', 3) by :attr:`slots`; NaN with confidence 0 where the person has none."""
        T, C = self.slots.shape
        out = np.full((T, C, *detections.shape[3:]), np.nan, detections.dtype)
        out[..., 2] = 0
        t, c = np.nonzero(self.slots >= 0)
        out[t, c] = detections[t, c, self.slots[t, c]]
        return out


@dataclass(frozen=True, eq=False)
class Labels:
    """A session's pseudo-labels (:meth:`Session.labels`), in its world frame, N people.

    Attributes:
        pseudo3d: (T, N, J, 3) float32 metres; NaN = no label. weight: (T, N, J) float32 in
        [0, 1]. reproj_error: (T, N, J) float32 pixels. views: (T, N, C, J) bool, the views
        each label used. person_ids: (N,) int64 stable person ids (one person: [0]).
        slots: (T, N, C) int16, the detection slot of each person in each camera, -1 = none.
    """

    pseudo3d: np.ndarray
    weight: np.ndarray
    reproj_error: np.ndarray
    views: np.ndarray
    person_ids: np.ndarray
    slots: np.ndarray

    @property
    def n_people(self) -> int:
        """N."""
        return int(self.pseudo3d.shape[1])

    def person(self, index: int) -> PersonLabels:
        """Person ``index`` (position along axis N, not the id) as (T, J, ...) arrays."""
        if not 0 <= index < self.n_people:
            raise IndexError(f"person index {index} out of range: the labels hold "
                             f"{self.n_people} people (ids {self.person_ids.tolist()})")
        return PersonLabels(int(self.person_ids[index]), self.pseudo3d[:, index],
                            self.weight[:, index], self.reproj_error[:, index],
                            self.views[:, index], self.slots[:, index])

    def people(self) -> list[PersonLabels]:
        """Every person, in the order of axis N."""
        return [self.person(n) for n in range(self.n_people)]


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """A session's ground truth (:meth:`Session.ground_truth`).

    Attributes:
        points: (T, N, J, 3) float32 metres, N true people (one person: N = 1). frame:
            ``gt_cameras`` (the world of ``rig``) or ``source`` (the source's own frame).
        rig: the true cameras, or None.
    """

    points: np.ndarray
    frame: str
    rig: "CameraRig | None"


@dataclass
class Session:
    """One capture session of a store. Arrays are lazy zarr arrays: index them to read numpy.

    Attributes:
        group: the session's zarr group. id: its session id. url: the store's URL.
        snapshot: the attributes as :meth:`frozen` read them once (None: every read is fresh).
    """

    group: zarr.Group
    id: str
    url: str = ""
    snapshot: dict | None = field(default=None, repr=False, compare=False)

    def frozen(self) -> "Session":
        """This session with its attributes read once, now, and kept: for readers that must not
        read them again on every use (streaming from object storage, where each read is a
        request); it does not see later writes."""
        return replace(self, snapshot=_fresh(self.group).attrs.asdict())

    # -- reading -------------------------------------------------------------------------------
    def _array(self, name: str, optional: bool = False):
        if name in self.group:
            return self.group[name]
        if optional:
            return None
        raise KeyError(f"session {self.id!r} of {self.url!r} has no array {name!r}")

    @property
    def keypoints2d(self) -> zarr.Array:
        """(T, C, P, J, 3) float32: x, y pixels, confidence; NaN / 0 where missing; P
        unassociated detection slots per camera-frame."""
        return self._array("keypoints2d")

    @property
    def keypoints2d_source(self) -> zarr.Array | None:
        """(T, C, P, J_source, 3) float32 in the 2D source's own joint set (attr
        ``source_joint_set``), or None when it is the store's joint set."""
        return self._array("keypoints2d_source", optional=True)

    @property
    def pseudo3d(self) -> zarr.Array:
        """(T, N, J, 3) float32 metres, the session's world frame; NaN where no label (created
        by the triangulate stage: KeyError before; :meth:`labels` says what to run)."""
        return self._array("pseudo3d")

    @property
    def pseudo3d_weight(self) -> zarr.Array:
        """(T, N, J) float32 in [0, 1]; 0 where no label."""
        return self._array("pseudo3d_weight")

    @property
    def reproj_error(self) -> zarr.Array:
        """(T, N, J) float32 pixels."""
        return self._array("reproj_error")

    @property
    def pseudo3d_views(self) -> zarr.Array:
        """(T, N, C, J) bool: views each label was triangulated from."""
        return self._array("pseudo3d_views")

    @property
    def max_people(self) -> int:
        """P, the detection slots per camera-frame (axis 2 of :attr:`keypoints2d`)."""
        return int(self.keypoints2d.shape[2])

    @property
    def gt3d(self) -> zarr.Array | None:
        """(T, N, J, 3) float32 metres, or None where the source has no ground truth."""
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
        """The session's attributes, freshly read (see the module docstring), or as
        :meth:`frozen` kept them."""
        if self.snapshot is not None:
            return dict(self.snapshot)
        return _fresh(self.group).attrs.asdict()

    @property
    def crop_size(self) -> int:
        """Side of the stored person crops, pixels (``store.crop_size``); 0 when none."""
        return int(self.attrs.get("crop_size", 0) or 0)

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
        """The 2D detections as :class:`epiflow.keypoints.Keypoints` (T, C, P, J, 3), P
        unassociated slots; with ``source``, in the 2D source's own joint set when the session
        keeps it."""
        a = self.attrs
        use_source = source and self.keypoints2d_source is not None
        data = (self.keypoints2d_source if use_source else self.keypoints2d)[:]
        return Keypoints(data, a["source_joint_set"] if use_source else a["joint_set"],
                         tuple(a["camera_names"]), np.asarray(a["image_size"]), a.get("fps"))

    def person0_keypoints(self, source: bool = False):
        """The 2D keypoints of detection slot 0 as :class:`~epiflow.keypoints.Keypoints`
        (T, C, J, 3): the one person of a session with P = 1. A :class:`StoreError` when the
        session has several slots (slot 0 of one camera is not slot 0 of another there)."""
        if self.max_people != 1:
            raise StoreError(f"session {self.id!r} of {self.url!r} has {self.max_people} "
                             f"detection slots per camera-frame (several people); its slot 0 is "
                             f"not one person across cameras: read keypoints() and associate")
        kp = self.keypoints(source)
        return Keypoints(kp.data[:, :, 0], kp.joint_set, kp.camera_names, kp.image_size, kp.fps)

    # -- typed readers: no module outside this one reads the raw attributes ----------------------
    @property
    def has_labels(self) -> bool:
        """Whether the triangulate stage wrote the pseudo-labels."""
        return self.status.get("triangulate") == "done"

    @property
    def has_cameras(self) -> bool:
        """Whether the calibrate stage wrote the cameras (:attr:`rig`)."""
        return self.status.get("calibrate") == "done"

    def labels(self, frames: slice = slice(None)) -> "Labels":
        """The pseudo-labels, read whole or for the frames ``frames`` (a slice along T: what a
        streaming reader asks for, chunk by chunk); a :class:`StoreError` saying what to run
        when the triangulate stage has not written them."""
        if not self.has_labels:
            raise StoreError(f"session {self.id!r} of {self.url!r} has no pseudo-labels (its "
                             f"triangulate stage is {self.status.get('triangulate')!r}); run "
                             f"`epiflow run` on the store to write them")
        return Labels(np.asarray(self.pseudo3d[frames], np.float32),
                      np.asarray(self.pseudo3d_weight[frames], np.float32),
                      np.asarray(self.reproj_error[frames], np.float32),
                      np.asarray(self.pseudo3d_views[frames], bool), self.person_ids,
                      np.asarray(self._array("person_slots")[frames], np.int16))

    @property
    def person_ids(self) -> np.ndarray:
        """(N,) int64 stable ids of the labelled people (axis N of the labels); empty before
        the triangulate stage wrote them."""
        ids = self._array("person_ids", optional=True)
        return np.zeros(0, np.int64) if ids is None else np.asarray(ids[:], np.int64)

    @property
    def gt_rig(self) -> "CameraRig | None":
        """The true cameras that came with the source (a synthetic capture's rig), or None."""
        text = self.group.attrs.get("gt_cameras_toml")
        if not text:
            return None
        from epiflow.calibration.formats import rig_from_toml
        return rig_from_toml(text, f"{self.url}/sessions/{self.id}.gt_cameras_toml")

    def ground_truth(self, frames: slice = slice(None)) -> "GroundTruth | None":
        """The ground truth, read whole (or the frames ``frames``, a slice along T), with its
        frame and true cameras; None where the source has none (or it was never written)."""
        frame = self.group.attrs.get("gt3d_frame")
        if self.gt3d is None or not frame:
            return None
        return GroundTruth(np.asarray(self.gt3d[frames], np.float32), str(frame), self.gt_rig)

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

    # -- unsynchronized cameras (epiflow.calibration.sync) --------------------------------------
    @property
    def time_sync(self) -> dict | None:
        """The cameras' clocks when they were not synchronized, else None: ``n_frames`` and
        ``fps`` per camera (each camera's own), ``done`` (the 2D put on camera 0's frame
        times), ``time_offset`` per camera (seconds on camera 0's clock of its first frame) and
        ``report`` once done."""
        sync = self.attrs.get("time_sync")
        return dict(sync) if sync else None

    def camera_frame_count(self, camera: int) -> int:
        """Frames of camera ``camera``'s own video (:attr:`n_frames` when synchronized)."""
        sync = self.time_sync
        return int(sync["n_frames"][camera]) if sync else self.n_frames

    @property
    def cameras_toml(self) -> str:
        """The session's cameras as stored: the camera TOML text (with ``time_offset`` per
        camera when synchronized from the person); "" before calibration."""
        return str(self.group.attrs.get("cameras_toml") or "")

    @property
    def source_joint_set(self) -> str | None:
        """The joint set of ``keypoints2d_source`` (the 2D source's own), or None."""
        return self.attrs.get("source_joint_set")

    def raw_keypoints(self, source: bool = False) -> np.ndarray:
        """(T, C, P, J, 3) the detections on each camera's own frames (camera c's frame k at row
        k, rows past its count NaN): ``keypoints2d`` before :meth:`write_synchronized`, its
        kept copy after; ``source``: those of ``keypoints2d_source`` when the session keeps
        them."""
        name = "keypoints2d_source" if source and self.keypoints2d_source is not None \
            else "keypoints2d"
        raw = self._array(name + "_raw", optional=True)
        return np.asarray((raw if raw is not None else self.group[name])[:], np.float64)

    def write_synchronized(self, keypoints: np.ndarray, source_keypoints: np.ndarray | None,
                           time_offset, report: dict) -> None:
        """Keep the raw detections (``keypoints2d_raw``, ``keypoints2d_source_raw``, once), then
        write ``keypoints2d`` (and ``keypoints2d_source``) on camera 0's frame times, (T, C, P,
        J, 3), and record the offsets (C,) seconds and the report in attr ``time_sync``."""
        for name in ("keypoints2d", "keypoints2d_source"):
            if name in self.group and name + "_raw" not in self.group:
                src = self.group[name]
                raw = _array(self.group, name + "_raw", src.shape, src.chunks)
                raw[...] = src[:]
        self.group["keypoints2d"][...] = np.asarray(keypoints, np.float32)
        if self.keypoints2d_source is not None:
            self.group["keypoints2d_source"][...] = np.asarray(source_keypoints, np.float32)
        self.update_attrs(time_sync={**self.time_sync, "done": True,
                                     "time_offset": [float(v) for v in time_offset],
                                     "report": _plain(report)})

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
            keypoints: (stop - start, P, J, 3) pixels / confidence for those frames ((stop -
                start, J, 3) is taken as P = 1 when the session has one slot).
            crops: (stop - start, H, W, 3) uint8, and crop_boxes (stop - start, 4), of slot 0,
                when the session has crops.
            source_keypoints: (stop - start, P, J_source, 3), when the session keeps them.
        """
        start, stop = self.unit_frames(unit)
        keypoints, source_keypoints = self._with_slots(keypoints, source_keypoints, 3)
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
        """Write the whole (T, C, P, J, 3) keypoints at once (a source that needs no detection),
        and (T, C, P, J_source, 3) ``source_keypoints`` when the session keeps them ((T, C, J, 3)
        is taken as P = 1 when the session has one slot); then mark every unit done."""
        keypoints, source_keypoints = self._with_slots(keypoints, source_keypoints, 4)
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

    def _with_slots(self, keypoints, source_keypoints, one_person_ndim: int):
        """The keypoints with their P axis: a one-slot session's arrays without it gain it."""
        if self.max_people != 1:
            return keypoints, source_keypoints
        add = (lambda a: a if a is None or np.ndim(a) != one_person_ndim
               else np.expand_dims(np.asarray(a), one_person_ndim - 2))
        return add(keypoints), add(source_keypoints)

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
        sync = self.time_sync
        self.update_attrs(cameras_toml=rig_to_toml(rig, time_offsets=(sync or {}).get(
                              "time_offset")),
                          calibration={"method": method, "report": _plain(report or {})})

    def write_labels(self, pseudo3d: np.ndarray, weight: np.ndarray, reproj_error: np.ndarray,
                     views: np.ndarray | None = None, person_ids=None,
                     slots: np.ndarray | None = None) -> None:
        """Store the pseudo-labels of N people, creating (or replacing) the label arrays.

        Args:
            pseudo3d: (T, N, J, 3) metres. weight: (T, N, J). reproj_error: (T, N, J) pixels.
            views: (T, N, C, J) bool, or None (no view recorded).
            person_ids: (N,) stable ids; None = 0 .. N-1.
            slots: (T, N, C) int, the detection slot of each person per camera, -1 = none;
                None = slot 0 (a session with one slot).
        The caller sets the triangulate status after this returns (resume redoes a cut write).
        """
        T, C = self.n_frames, len(self.camera_names)
        pseudo3d = np.asarray(pseudo3d, dtype=np.float32)
        if pseudo3d.ndim != 4 or pseudo3d.shape[0] != T or pseudo3d.shape[3] != 3:
            raise ValueError(f"session {self.id!r}: pseudo3d must have shape (T={T}, N, J, 3); "
                             f"got {pseudo3d.shape}")
        _, N, J, _ = pseudo3d.shape
        ids = np.arange(N) if person_ids is None else np.asarray(person_ids, np.int64)
        views = np.zeros((T, N, C, J), bool) if views is None else np.asarray(views, bool)
        if slots is None and self.max_people != 1:
            raise ValueError(f"session {self.id!r} has {self.max_people} detection slots: give "
                             f"slots (T, N, C), which slot is which person")
        slots = np.zeros((T, N, C), np.int16) if slots is None else np.asarray(slots)
        values = {"pseudo3d": (pseudo3d, (T, N, J, 3)),
                  "pseudo3d_weight": (weight, (T, N, J)),
                  "reproj_error": (reproj_error, (T, N, J)),
                  "pseudo3d_views": (views, (T, N, C, J)),
                  "person_slots": (slots, (T, N, C))}
        for name, (value, shape) in values.items():
            if np.shape(value) != shape:
                raise ValueError(f"session {self.id!r}: {name} must have shape {shape}; "
                                 f"got {np.shape(value)}")
        if ids.shape != (N,) or len(set(ids.tolist())) != N:
            raise ValueError(f"session {self.id!r}: person_ids must be {N} distinct ids; got "
                             f"{ids.tolist()}")
        F = min(self.chunk_frames, T)
        for name, (value, shape) in values.items():
            dtype = _LABEL_DTYPES.get(name, "float32")
            _array(self.group, name, shape, (F, *shape[1:]), dtype, LABEL_ARRAYS[name],
                   overwrite=True)[...] = np.asarray(value, dtype)
        _array(self.group, "person_ids", (N,), (max(N, 1),), "int64", 0,
               overwrite=True)[...] = ids

    def write_gt3d(self, points: np.ndarray, frame: str, cameras: "CameraRig | None" = None) -> None:
        """Store ground truth (T, N, J, 3) metres of N true people ((T, J, 3): one person).

        Args:
            frame: names its world frame: ``gt_cameras`` (that of ``cameras``, the true rig,
                kept as ``gt_cameras_toml``; the session's own cameras when they were given)
                or ``source`` (the source's own frame, unrelated to the cameras).
        """
        from epiflow.calibration.formats import rig_to_toml
        points = np.asarray(points, dtype=np.float32)
        if points.ndim == 3:
            points = points[:, None]
        if points.ndim != 4 or points.shape[0] != self.n_frames or points.shape[3] != 3:
            raise ValueError(f"session {self.id!r}: gt3d must have shape (T={self.n_frames}, "
                             f"N, J, 3); got {points.shape}")
        F = min(self.chunk_frames, self.n_frames)
        _array(self.group, "gt3d", points.shape, (F, *points.shape[1:]),
               overwrite=True)[...] = points
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


# -- converting an older store -----------------------------------------------------------------
#: per array of a schema-1 session, the axis schema 2 inserts (P = 1 or N = 1)
_V1_NEW_AXIS = {"keypoints2d": 2, "keypoints2d_source": 2, "pseudo3d": 1, "pseudo3d_weight": 1,
                "reproj_error": 1, "pseudo3d_views": 1, "gt3d": 1}
_V1_LABELS = ("pseudo3d", "pseudo3d_weight", "reproj_error", "pseudo3d_views")


def upgrade_store(url, out=None) -> dict[str, str]:
    """Convert a schema-1 store (one person, no person axis) to schema 2, into ``out`` (a new
    store; the old one is kept) or in place.

    Schema 1 -> 2: ``keypoints2d`` and ``keypoints2d_source`` gain P = 1 (axis 2); the labels,
    where the triangulate stage wrote them, gain N = 1 (axis 1), with ``person_ids`` [0] and
    ``person_slots`` 0; labels never written are left out (the triangulate stage creates them);
    ``gt3d``, where written, gains N = 1; the session attribute ``max_people`` = 1. Every other
    array and attribute is copied as is.

    In place (local folders only): the converted store is written whole beside the old one
    (``<store>.upgrade-new``), then the old folder is renamed ``<store>.upgrade-old``, the new
    one takes its name and the old one is deleted. Every folder is at any moment one whole store,
    old or new, never a mix: a run killed between the two renames leaves no ``<store>`` but both
    whole stores beside it, and running the upgrade again finishes the swap.

    Returns:
        {session id: what was done}. Raises :class:`StoreError` for a store that is not
        schema 1 (or is already 2: nothing to do, said so).
    """
    import os
    import shutil
    url = str(url)
    if out is None and "://" in url:
        raise StoreError(f"{url!r}: an in-place upgrade works on local folders; give --out "
                         f"NEW.zarr to write the converted store elsewhere")
    new_path, old_path = f"{url.rstrip('/')}.upgrade-new", f"{url.rstrip('/')}.upgrade-old"
    if out is None and not os.path.exists(url) and _finished_copy(new_path) and \
            os.path.isdir(old_path):  # killed between the two renames: finish the swap
        os.rename(new_path, url)
        shutil.rmtree(old_path)
        return {"(store)": f"finished an interrupted upgrade: {url} is now schema "
                           f"{SCHEMA_VERSION}"}
    src = _v1_root(url)
    target = str(out) if out is not None else new_path
    if out is None and os.path.exists(new_path):
        shutil.rmtree(new_path)   # a copy cut short by an earlier kill: the old store is intact
    done = _copy_upgraded(src, target)
    if out is None:
        os.rename(url, old_path)
        os.rename(new_path, url)
        shutil.rmtree(old_path)
    return done


def _finished_copy(path: str) -> bool:
    """Whether ``path`` holds a converted store written to its end (the root's version is set
    last)."""
    try:
        root = zarr.open_group(path, mode="r", zarr_format=3)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError):
        return False
    return (root.attrs.get("epiflow") or {}).get("schema_version") == SCHEMA_VERSION


def _v1_root(url: str) -> zarr.Group:
    """The root group of a schema-1 store at ``url``; StoreError otherwise."""
    _check_location(url, "r", None)
    try:
        root = zarr.open_group(url, mode="r", zarr_format=3)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise FileNotFoundError(f"pose store {url!r} does not exist") from None
    found = (root.attrs.get("epiflow") or {}).get("schema_version")
    if found == SCHEMA_VERSION:
        raise StoreError(f"store {url!r} is already schema version {SCHEMA_VERSION}; nothing to "
                         f"upgrade")
    if found != 1:
        raise StoreError(f"store {url!r} has schema version {found!r}; `epiflow upgrade-store` "
                         f"converts version 1 stores to {SCHEMA_VERSION}")
    return root


def _copy_upgraded(src: zarr.Group, target: str) -> dict[str, str]:
    """Write the schema-2 form of the schema-1 store ``src`` at ``target`` (a new location);
    the root's version attribute is written last, so a cut copy is never taken for a store."""
    import fsspec
    fs, path = fsspec.core.url_to_fs(target)
    if fs.exists(path):
        raise StoreError(f"{target!r} exists; the converted store is written to a new path")
    dst = zarr.open_group(target, mode="w-", zarr_format=3)
    done = {}
    sessions = dst.require_group("sessions")
    for name, node in (src["sessions"].members() if "sessions" in src else []):
        if not isinstance(node, zarr.Group):
            continue
        done[name] = _copy_session(node, sessions, name)
    dst.attrs["epiflow"] = {**src.attrs["epiflow"], "schema_version": SCHEMA_VERSION,
                            "code_version": __version__}
    return done


def _copy_session(src: zarr.Group, sessions: zarr.Group, name: str) -> str:
    """One schema-1 session converted into ``sessions/<name>``; what was done, in words."""
    attrs = src.attrs.asdict()
    if attrs.get("schema_version") != 1:
        raise StoreError(f"session {name!r} has schema version {attrs.get('schema_version')!r} "
                         f"in a version 1 store; it cannot be converted")
    labelled = (attrs.get("status") or {}).get("triangulate") == "done"
    group = sessions.create_group(name, attributes={**attrs, "schema_version": SCHEMA_VERSION,
                                                    "max_people": 1})
    skip = set() if labelled else set(_V1_LABELS)
    if not attrs.get("gt3d_frame"):
        skip.add("gt3d")
    for path, array in _arrays(src):
        if path in skip:
            continue
        axis = _V1_NEW_AXIS.get(path)
        data = array[...]
        chunks = array.chunks
        if axis is not None:
            data, chunks = np.expand_dims(data, axis), (*chunks[:axis], 1, *chunks[axis:])
        group.create_array(path, shape=data.shape, chunks=chunks, dtype=data.dtype,
                           fill_value=array.fill_value,
                           dimension_names=DIMENSIONS[path.rsplit("/", 1)[-1]
                                                      if path.startswith("cameras/") else path]
                           )[...] = data
    if labelled:
        T, C = group["keypoints2d"].shape[:2]
        F = group["pseudo3d"].chunks[0]
        _array(group, "person_ids", (1,), (1,), "int64", 0)[...] = [0]
        _array(group, "person_slots", (T, 1, C), (F, 1, C), "int16", -1)[...] = 0
    return ("converted: one person (P = N = 1)" + ("" if labelled else ", no labels yet")
            if "keypoints2d" in src else "converted: attributes only (failed before its arrays)")


def _arrays(group: zarr.Group, prefix: str = ""):
    """(path, array) of every array under ``group``, recursively."""
    for name, node in group.members():
        if isinstance(node, zarr.Group):
            yield from _arrays(node, f"{prefix}{name}/")
        else:
            yield f"{prefix}{name}", node
