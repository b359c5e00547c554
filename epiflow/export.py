"""3D poses out to the files neighbouring tools read: TRC (OpenSim, Pose2Sim), CSV, JSON and npz.

One object, :class:`Poses3D` (``points (T, J, 3)`` metres in epiflow's world, Z up; joint names;
fps; optional per-joint weights), and a writer/reader pair per format. Missing points are NaN in
memory; each format's way of writing them is given below.

**TRC** (OpenSim, Pose2Sim): tab-separated (shown with spaces), the five header lines as Pose2Sim
writes them::

    PathFileType  4  (X/Y/Z)  <file name>
    DataRate CameraRate NumFrames NumMarkers Units OrigDataRate OrigDataStartFrame OrigNumFrames
    <fps>    <fps>      <T>       <J>        m     <fps>        <first frame>      <first + T>
    Frame#  Time  <name 1>      <name 2> ...      (each name followed by two empty cells)
              X1  Y1  Z1  X2  Y2  Z2 ...

then one row per frame: ``Frame#`` counted from 1, ``Time = Frame# / fps`` seconds (as Pose2Sim
does), and the coordinates in metres; a missing marker's cells are left empty (OpenSim reads
them as missing). OpenSim's world is **Y up**, epiflow's is Z up: with ``y_up=True`` (the default)
coordinates are written as Pose2Sim's ``zup2yup`` does, a cyclic permutation (a proper rotation,
no mirror) ``(x, y, z)_trc = (y, z, x)_epiflow`` — see :data:`Z_UP_TO_Y_UP`. Reading undoes it.

**CSV**, two layouts, both with a header row, metres, Z up, missing = empty cell:

- ``long``: one row per frame and joint: ``frame, time, joint, x, y, z, weight``;
- ``wide``: one row per frame: ``frame, time, <joint>_x, <joint>_y, <joint>_z, ...`` then
  ``<joint>_weight`` columns when weights are present.

Frames are counted from 0 and ``time = frame / fps`` (empty when fps is unknown).

**JSON**: one object ``{"format": "epiflow.poses3d", "version": 1, "units": "m", "world":
"z_up", "joint_set", "joint_names", "fps", "points3d": (T, J, 3) nested lists, "weights": (T, J) or
null}``; missing coordinates are ``null``.

**npz** (``epiflow export`` reads it; ``epiflow triangulate`` writes it with more arrays):
``points3d (T, J, 3)``, ``joint_names (J,)``, ``fps``, optional ``weights (T, J)`` (or
``weight``) and ``joint_set``.

Example::

    poses = Poses3D(points, joint_names=H36M17.joints, fps=50.0)
    write_trc(poses, "trial.trc")          # Y up, for OpenSim
    assert np.allclose(read_trc("trial.trc").points, points, equal_nan=True)
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from epiflow.input_files import open_npz, read_text_file
from epiflow.outputs import atomic_open, atomic_write_text
from epiflow.skeleton import get_joint_set

__all__ = ["Poses3D", "Z_UP_TO_Y_UP", "z_up_to_y_up", "y_up_to_z_up", "write_trc", "read_trc",
           "write_csv", "read_csv", "write_json", "read_json", "save_poses_npz", "load_poses_npz",
           "write_poses", "FORMATS"]

#: rotation taking epiflow's Z-up world to OpenSim's Y-up one: (x, y, z) -> (y, z, x), Pose2Sim's
#: ``zup2yup``. Row-vector use: ``points @ Z_UP_TO_Y_UP.T``.
Z_UP_TO_Y_UP = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])

#: file suffix -> format name understood by :func:`write_poses`
FORMATS = {".trc": "trc", ".csv": "csv", ".json": "json", ".npz": "npz"}


@dataclass(frozen=True, eq=False)
class Poses3D:
    """A sequence of 3D poses of one person.

    Attributes:
        points: (T, J, 3) metres, epiflow's world (Z up); NaN = missing.
        joint_names: J names, in the order of axis 1.
        fps: frames per second, or None when unknown.
        weights: (T, J) per-joint weights of pseudo-labels (0 = no information), or None.
        joint_set: the joint set's name when the names are one of epiflow's sets, else None.
    """

    points: np.ndarray
    joint_names: tuple[str, ...]
    fps: float | None = None
    weights: np.ndarray | None = None
    joint_set: str | None = None

    def __post_init__(self):
        pts = np.asarray(self.points, dtype=np.float64)
        names = tuple(str(n) for n in self.joint_names)
        if pts.ndim != 3 or pts.shape[1:] != (len(names), 3):
            raise ValueError(f"points must have shape (T, J={len(names)}, 3) for the "
                             f"{len(names)} joint names; got {pts.shape}")
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "joint_names", names)
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=np.float64)
            if w.shape != pts.shape[:2]:
                raise ValueError(f"weights must have shape (T, J) = {pts.shape[:2]}; got {w.shape}")
            object.__setattr__(self, "weights", w)
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be a positive number or None; got {self.fps}")

    @classmethod
    def from_joint_set(cls, points: np.ndarray, joint_set: str, fps: float | None = None,
                       weights: np.ndarray | None = None) -> "Poses3D":
        """Poses named by one of epiflow's joint sets (``h36m17``, ``body25b``, ...)."""
        return cls(points, get_joint_set(joint_set).joints, fps, weights, joint_set)

    @property
    def n_frames(self) -> int:
        return self.points.shape[0]


def z_up_to_y_up(points: np.ndarray) -> np.ndarray:
    """(..., 3) epiflow (Z up) -> OpenSim / Pose2Sim (Y up): ``(x, y, z) -> (y, z, x)``."""
    return np.asarray(points, np.float64) @ Z_UP_TO_Y_UP.T


def y_up_to_z_up(points: np.ndarray) -> np.ndarray:
    """(..., 3) OpenSim / Pose2Sim (Y up) -> epiflow (Z up), the inverse of :func:`z_up_to_y_up`."""
    return np.asarray(points, np.float64) @ Z_UP_TO_Y_UP


def _num(value: float) -> str:
    """A number as text that reads back exactly; empty for NaN."""
    return repr(float(value)) if np.isfinite(value) else ""


def _require_fps(poses: Poses3D, what: str) -> float:
    if poses.fps is None:
        raise ValueError(f"{what} needs a frame rate; the poses have fps=None: pass fps "
                         f"(e.g. Poses3D(..., fps=60.0) or --fps on the command line)")
    return float(poses.fps)


# -- TRC -----------------------------------------------------------------------------------------
def write_trc(poses: Poses3D, path, y_up: bool = True, first_frame: int = 0) -> Path:
    """Write an OpenSim / Pose2Sim TRC file (layout in the module docstring).

    Args:
        poses: the poses; ``fps`` is required.
        path: the ``.trc`` file to write.
        y_up: convert epiflow's Z-up world to OpenSim's Y up (see :data:`Z_UP_TO_Y_UP`).
        first_frame: the source frame of the first row, written as ``OrigDataStartFrame``.

    Returns:
        The path written.
    """
    path = Path(path)
    fps = _require_fps(poses, "a TRC file")
    fps_text = f"{fps:g}"
    names = poses.joint_names
    T, J = poses.points.shape[:2]
    header = [
        f"PathFileType\t4\t(X/Y/Z)\t{path.name}",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame"
        "\tOrigNumFrames",
        "\t".join([fps_text, fps_text, str(T), str(J), "m", fps_text, str(first_frame),
                   str(first_frame + T)]),
        "Frame#\tTime\t" + "\t\t\t".join(names) + "\t\t",
        "\t\t" + "\t".join(f"X{i + 1}\tY{i + 1}\tZ{i + 1}" for i in range(J)),
    ]
    pts = z_up_to_y_up(poses.points) if y_up else poses.points
    rows = [f"{t + 1}\t{_num((t + 1) / fps)}\t" + "\t".join(_num(v) for v in pts[t].ravel())
            for t in range(T)]
    return atomic_write_text(path, "\n".join(header + rows) + "\n")


def _trc_header(lines: list[str], path: Path) -> tuple[dict[str, str], list[str]]:
    if len(lines) < 5 or not lines[0].startswith("PathFileType"):
        raise ValueError(f"{path}: not a TRC file; expected 'PathFileType' on line 1 and five "
                         f"header lines")
    keys, values = lines[1].split("\t"), lines[2].split("\t")
    info = dict(zip((k.strip() for k in keys), (v.strip() for v in values)))
    missing = [k for k in ("DataRate", "NumFrames", "NumMarkers", "Units") if k not in info]
    if missing:
        raise ValueError(f"{path}: TRC header line 2 lacks {missing}; got {keys}")
    names = [n.strip() for n in lines[3].split("\t")[2:] if n.strip()]
    if len(names) != int(info["NumMarkers"]):
        raise ValueError(f"{path}: header says {info['NumMarkers']} markers but line 4 names "
                         f"{len(names)}")
    return info, names


def read_trc(path, y_up: bool = True) -> Poses3D:
    """Read a TRC file (OpenSim, Pose2Sim or :func:`write_trc`) into epiflow's world.

    Args:
        path: the ``.trc`` file.
        y_up: the file is Y up (OpenSim's convention); coordinates are turned back to Z up.

    Returns:
        Poses3D with points (T, J, 3) in metres (``mm`` files are converted); empty cells -> NaN.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TRC file {str(path)!r} does not exist")
    lines = read_text_file(path, "a TRC file").splitlines()
    info, names = _trc_header(lines, path)
    J = len(names)
    rows = [ln.split("\t") for ln in lines[5:] if ln.strip()]
    data = np.full((len(rows), J, 3), np.nan)
    for t, cells in enumerate(rows):
        values = [float(c) if c.strip() else np.nan for c in cells[2:2 + 3 * J]]
        data[t].ravel()[:len(values)] = values
    scale = {"m": 1.0, "mm": 1e-3, "cm": 1e-2}.get(info["Units"].lower())
    if scale is None:
        raise ValueError(f"{path}: unknown Units {info['Units']!r}; expected m, cm or mm")
    data *= scale
    return Poses3D(y_up_to_z_up(data) if y_up else data, names, float(info["DataRate"]),
                   joint_set=_joint_set_named(names))


def _joint_set_named(names: Sequence[str]) -> str | None:
    from epiflow.skeleton import JOINT_SETS
    return next((k for k, s in JOINT_SETS.items() if s.joints == tuple(names)), None)


# -- CSV -----------------------------------------------------------------------------------------
def _times(poses: Poses3D) -> list[str]:
    return [_num(t / poses.fps) if poses.fps else "" for t in range(poses.n_frames)]


def write_csv(poses: Poses3D, path, layout: str = "long") -> Path:
    """Write 3D poses as CSV, ``layout`` ``"long"`` or ``"wide"`` (see the module docstring)."""
    path = Path(path)
    times, names, w = _times(poses), poses.joint_names, poses.weights
    if layout == "long":
        out = [["frame", "time", "joint", "x", "y", "z", "weight"]]
        for t in range(poses.n_frames):
            for j, name in enumerate(names):
                out.append([str(t), times[t], name, *map(_num, poses.points[t, j]),
                            "" if w is None else _num(w[t, j])])
    elif layout == "wide":
        out = [["frame", "time"] + [f"{n}_{a}" for n in names for a in "xyz"]
               + ([] if w is None else [f"{n}_weight" for n in names])]
        for t in range(poses.n_frames):
            out.append([str(t), times[t], *map(_num, poses.points[t].ravel())]
                       + ([] if w is None else list(map(_num, w[t]))))
    else:
        raise ValueError(f"CSV layout must be 'long' or 'wide'; got {layout!r}")
    with atomic_open(path, "w", newline="") as f:
        csv.writer(f).writerows(out)
    return path


def _float(cell: str) -> float:
    return float(cell) if cell.strip() else np.nan


def _fps_from_times(frames: np.ndarray, times: list[str]) -> float | None:
    ok = [(f, float(t)) for f, t in zip(frames, times) if t.strip() and f > 0]
    return None if not ok else float(np.median([f / t for f, t in ok]))


def read_csv(path) -> Poses3D:
    """Read a CSV written by :func:`write_csv`, either layout (told apart by the header)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV file {str(path)!r} does not exist")
    rows = list(csv.reader(io.StringIO(read_text_file(path, "an epiflow poses CSV"),
                                       newline="")))
    if not rows or rows[0][:2] != ["frame", "time"]:
        raise ValueError(f"{path}: expected a header starting 'frame,time' (epiflow CSV); got "
                         f"{rows[0][:4] if rows else 'an empty file'}")
    head, body = rows[0], rows[1:]
    if head[2:] == ["joint", "x", "y", "z", "weight"]:
        return _read_long(head, body)
    return _read_wide(head, body)


def _read_long(head: list[str], body: list[list[str]]) -> Poses3D:
    names = list(dict.fromkeys(r[2] for r in body))
    T, J = len(body) // max(len(names), 1), len(names)
    pts = np.array([[_float(c) for c in r[3:6]] for r in body]).reshape(T, J, 3)
    w = np.array([_float(r[6]) for r in body]).reshape(T, J)
    frames = np.array([int(r[0]) for r in body[::J]])
    return Poses3D(pts, names, _fps_from_times(frames, [r[1] for r in body[::J]]),
                   None if np.isnan(w).all() else w, _joint_set_named(names))


def _read_wide(head: list[str], body: list[list[str]]) -> Poses3D:
    coords = [h for h in head[2:] if h.endswith(("_x", "_y", "_z"))]
    names = [c[:-2] for c in coords[::3]]
    values = np.array([[_float(c) for c in r[2:]] for r in body]).reshape(len(body), -1)
    pts = values[:, :len(coords)].reshape(len(body), len(names), 3)
    w = values[:, len(coords):] if len(head) > 2 + len(coords) else None
    frames = np.array([int(r[0]) for r in body])
    return Poses3D(pts, names, _fps_from_times(frames, [r[1] for r in body]), w,
                   _joint_set_named(names))


# -- JSON ----------------------------------------------------------------------------------------
def _json_array(a: np.ndarray) -> list:
    """Nested lists of Python floats, None where ``a`` is NaN or infinite."""
    obj = np.asarray(a, np.float64).astype(object)
    obj[~np.isfinite(np.asarray(a, np.float64))] = None
    return obj.tolist()


def write_json(poses: Poses3D, path) -> Path:
    """Write 3D poses as JSON (see the module docstring); NaN becomes ``null``."""
    doc = {"format": "epiflow.poses3d", "version": 1, "units": "m", "world": "z_up",
           "joint_set": poses.joint_set, "joint_names": list(poses.joint_names),
           "fps": poses.fps, "points3d": _json_array(poses.points),
           "weights": None if poses.weights is None else _json_array(poses.weights)}
    return atomic_write_text(Path(path), json.dumps(doc))


def read_json(path) -> Poses3D:
    """Read a JSON file written by :func:`write_json`; ``null`` becomes NaN."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"JSON file {str(path)!r} does not exist")
    try:
        doc = json.loads(read_text_file(path, "an epiflow poses JSON"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); expected an epiflow poses JSON") \
            from None
    if doc.get("format") != "epiflow.poses3d":
        raise ValueError(f"{path}: not an epiflow poses JSON (format {doc.get('format')!r}, "
                         f"expected 'epiflow.poses3d')")
    pts = np.array(doc["points3d"], dtype=np.float64).reshape(-1, len(doc["joint_names"]), 3)
    w = None if doc.get("weights") is None else np.array(doc["weights"], dtype=np.float64)
    return Poses3D(pts, doc["joint_names"], doc.get("fps"), w, doc.get("joint_set"))


# -- npz -----------------------------------------------------------------------------------------
def save_poses_npz(poses: Poses3D, path) -> Path:
    """Write the poses npz (keys in the module docstring)."""
    path = Path(path)
    extra = {} if poses.weights is None else {"weights": poses.weights}
    if poses.fps is not None:
        extra["fps"] = np.float64(poses.fps)
    if poses.joint_set is not None:
        extra["joint_set"] = np.str_(poses.joint_set)
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, points3d=poses.points,
                            joint_names=np.array(poses.joint_names, dtype=str), **extra)
    return path


def load_poses_npz(path) -> Poses3D:
    """Read a poses npz: ``points3d (T, J, 3)`` and ``joint_names`` or ``joint_set``; optional
    ``fps`` and ``weights (T, J)`` (or ``weight``, as ``epiflow triangulate`` writes it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"poses file {str(path)!r} does not exist")
    with open_npz(path, "a poses npz (points3d (T, J, 3) and joint_names or joint_set)") as z:
        if "points3d" not in z or not ({"joint_names", "joint_set"} & set(z.files)):
            raise ValueError(f"{path}: a poses npz holds points3d (T, J, 3) and joint_names or "
                             f"joint_set; it has {sorted(z.files)}")
        js = str(z["joint_set"]) if "joint_set" in z else None
        names = z["joint_names"].tolist() if "joint_names" in z else get_joint_set(js).joints
        weights = next((z[k] for k in ("weights", "weight") if k in z), None)
        try:
            return Poses3D(z["points3d"], names, float(z["fps"]) if "fps" in z else None,
                           weights, js)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None


def write_poses(poses: Poses3D, path, format: str | None = None, **options) -> Path:
    """Write ``poses`` in ``format`` (``trc``, ``csv``, ``json``, ``npz``; default: from the
    file's suffix). ``options`` go to the writer (``y_up`` for TRC, ``layout`` for CSV)."""
    path = Path(path)
    fmt = format or FORMATS.get(path.suffix.lower())
    writers = {"trc": write_trc, "csv": write_csv, "json": write_json, "npz": save_poses_npz}
    if fmt not in writers:
        raise ValueError(f"cannot tell the format of {str(path)!r}: give format= one of "
                         f"{', '.join(writers)}, or a file ending in {', '.join(FORMATS)}")
    return writers[fmt](poses, path, **options)
