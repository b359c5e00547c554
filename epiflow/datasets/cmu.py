"""CMU motion capture (Acclaim ASF/AMC) read into 3D joint positions; the clips epiflow ships.

An ASF file holds a subject's skeleton: per bone a unit ``direction`` and a ``length`` in the rest
pose (world frame), an ``axis`` (Euler angles of the bone's local frame, with their order) and the
``dof`` its AMC lines carry. An AMC file holds, per frame, the root's translation and rotation and
every bone's rotation, in degrees. Forward kinematics, per bone with parent p (column vectors)::

    L_b = L_p · C_b · M_b · C_bᵀ           M_b = rotations of the dof values, first listed first
    x_b = x_p + length_b · L_b · direction_b

with ``C_b`` the rotation of the bone's ``axis`` (for order ``XYZ``: ``Rz · Ry · Rx``). A joint's
position is the distal end of its bone; the root's is the root translation. Lengths and the root
translation are converted once: file units × (1 / ``:units length``) = inches, × 0.0254 = metres.

epiflow's world is Z up, right-handed: CMU's Y-up frame is turned by +90° about X, so
``(x, y, z)_cmu → (x, -z, y)``; the clip is then shifted vertically so the lowest foot point
over the whole clip lies at z = 0. Horizontal positions are kept as in the file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from epiflow.skeleton import CMU31, get_joint_set, map_to_h36m

__all__ = ["Motion", "AsfSkeleton", "read_asf", "read_amc", "forward_kinematics",
           "euler_matrix",
           "load_cmu_clip", "load_packaged_clip", "packaged_clips", "save_motion", "load_motion"]

INCH = 0.0254
CMU_FPS = 120.0
#: joints whose lowest point over a clip defines the floor
FOOT_JOINTS = ("ltibia", "lfoot", "ltoes", "rtibia", "rfoot", "rtoes")
#: CMU's Y-up world turned into epiflow's Z-up world: (x, y, z) -> (x, -z, y)
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
DATA_DIR = Path(__file__).resolve().parents[1] / "data"


@dataclass(frozen=True, eq=False)
class Motion:
    """3D motion of one person.

    Attributes:
        points: (T, J, 3) joint positions, metres, world frame Z up, floor near z = 0.
        joint_set: the joint set's name (``cmu31`` from the reader, ``h36m17`` after ``to_h36m``).
        fps: frames per second.
        name: the clip's name (``02_01``).
    """

    points: np.ndarray
    joint_set: str = "cmu31"
    fps: float = CMU_FPS
    name: str = ""

    def __post_init__(self):
        pts = np.asarray(self.points, dtype=np.float64)
        J = len(get_joint_set(self.joint_set))
        if pts.ndim != 3 or pts.shape[1:] != (J, 3):
            raise ValueError(f"motion {self.name!r}: points must have shape (T, {J}, 3) for joint "
                             f"set {self.joint_set!r}; got {pts.shape}")
        if not self.fps > 0:
            raise ValueError(f"motion {self.name!r}: fps must be positive; got {self.fps}")
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "fps", float(self.fps))

    @property
    def n_frames(self) -> int:
        return self.points.shape[0]

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the last."""
        return (self.n_frames - 1) / self.fps

    def to_h36m(self) -> "Motion":
        """The same motion on the canonical 17 joints (``h36m17``), see :mod:`epiflow.skeleton`."""
        if self.joint_set == "h36m17":
            return self
        return replace(self, points=map_to_h36m(self.points, self.joint_set, confidence=False),
                       joint_set="h36m17")

    def resample(self, fps: float) -> "Motion":
        """The motion at another frame rate, linearly interpolated in time over the same span.

        Frames fall at ``k / fps`` seconds from the first, for every k within the clip's duration;
        an integer ratio (120 → 30 fps) picks every 4th frame exactly.
        """
        if not fps > 0:
            raise ValueError(f"resample: fps must be positive; got {fps}")
        n = int(np.floor(self.duration * fps + 1e-9)) + 1
        src = np.arange(n) * (self.fps / fps)
        lo = np.minimum(np.floor(src).astype(int), self.n_frames - 1)
        hi = np.minimum(lo + 1, self.n_frames - 1)
        w = (src - lo)[:, None, None]
        points = (1 - w) * self.points[lo] + w * self.points[hi]
        return replace(self, points=points, fps=float(fps))

    def frames(self, start: int, stop: int | None = None) -> "Motion":
        """Frames ``start:stop``."""
        return replace(self, points=self.points[start:stop])


# -- ASF ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AsfBone:
    """One ASF bone. direction (3,) unit, rest pose, CMU world; length metres; axis (3,) degrees."""

    name: str
    direction: np.ndarray
    length: float
    axis: np.ndarray
    axis_order: str
    dof: tuple[str, ...]
    parent: int = -1


@dataclass(frozen=True)
class AsfSkeleton:
    """A parsed ASF file: the root's dof order and axis, and its bones in file order (lengths in m).

    ``joints`` is ``("root", *bone names)``; ``parents[j]`` indexes into ``joints``.
    """

    path: str
    root_order: tuple[str, ...]
    root_axis: np.ndarray
    root_axis_order: str
    bones: tuple[AsfBone, ...] = field(default_factory=tuple)
    unit_m: float = INCH  #: metres per ASF length unit (root translations are in these units)

    @property
    def joints(self) -> tuple[str, ...]:
        return ("root",) + tuple(b.name for b in self.bones)

    @property
    def parents(self) -> tuple[int, ...]:
        return (-1,) + tuple(b.parent for b in self.bones)


class _Lines:
    """Numbered, stripped, comment-free lines of a text file, for parsing with exact errors."""

    def __init__(self, path: Path):
        if not path.is_file():
            raise FileNotFoundError(f"CMU file {str(path)!r} does not exist")
        self.path = path
        self.items = [(i + 1, s.strip()) for i, s in enumerate(path.read_text().splitlines())
                      if s.strip() and not s.lstrip().startswith("#")]

    def error(self, lineno: int, message: str) -> ValueError:
        return ValueError(f"{self.path}:{lineno}: {message}")

    def floats(self, lineno: int, words: list[str], n: int | None, what: str) -> np.ndarray:
        try:
            values = np.array([float(w) for w in words])
        except ValueError:
            raise self.error(lineno, f"{what}: expected numbers, got {' '.join(words)!r}") from None
        if n is not None and values.size != n:
            raise self.error(lineno, f"{what}: expected {n} values, got {values.size}")
        return values


def _sections(lines: _Lines) -> dict[str, list[tuple[int, str]]]:
    """ASF lines grouped by their ``:keyword`` section (the keyword line included first)."""
    sections: dict[str, list[tuple[int, str]]] = {}
    current = None
    for lineno, text in lines.items:
        if text.startswith(":"):
            current = text.split()[0][1:].lower()
            sections[current] = []
        if current is not None:
            sections[current].append((lineno, text))
    return sections


def _asf_units(lines: _Lines, section) -> float:
    """Metres per ASF length unit: inches × (1 / ``length``) × 0.0254."""
    for lineno, text in section or []:
        words = text.split()
        if words[0] == "length":
            return INCH / float(lines.floats(lineno, words[1:], 1, "units length")[0])
        if words[0] == "angle" and words[1].lower() not in ("deg", "degree", "degrees"):
            raise lines.error(lineno, f"angles must be in degrees; got {words[1]!r}")
    return INCH


def _asf_root(lines: _Lines, section) -> tuple[tuple[str, ...], np.ndarray, str]:
    order, axis, axis_order = None, np.zeros(3), "XYZ"
    for lineno, text in section or []:
        words = text.split()
        if words[0] == "order":
            order = tuple(w.lower() for w in words[1:])
        elif words[0] == "axis":
            axis_order = words[1].upper()
        elif words[0] == "orientation":
            axis = lines.floats(lineno, words[1:], 3, "root orientation")
    if order is None or sorted(order) != ["rx", "ry", "rz", "tx", "ty", "tz"]:
        raise lines.error(section[0][0] if section else 1,
                          f"the :root section needs 'order' with TX TY TZ RX RY RZ; got {order}")
    return order, axis, axis_order


def _asf_bone(lines: _Lines, block: list[tuple[int, str]], metres: float) -> AsfBone:
    fields: dict[str, tuple[int, list[str]]] = {}
    for lineno, text in block:
        words = text.split()
        fields.setdefault(words[0].lower(), (lineno, words[1:]))
    missing = [k for k in ("name", "direction", "length", "axis") if k not in fields]
    if missing:
        raise lines.error(block[0][0], f"bone is missing {missing}")
    ln, axis_words = fields["axis"]
    direction = lines.floats(*fields["direction"], 3, "direction")
    return AsfBone(
        name=fields["name"][1][0],
        direction=direction / max(np.linalg.norm(direction), 1e-12),
        length=float(lines.floats(*fields["length"], 1, "length")[0]) * metres,
        axis=lines.floats(ln, axis_words[:3], 3, "axis"),
        axis_order=axis_words[3].upper() if len(axis_words) > 3 else "XYZ",
        dof=tuple(w.lower() for w in fields.get("dof", (0, []))[1]))


def _asf_bones(lines: _Lines, section, metres: float) -> list[AsfBone]:
    bones, block = [], None
    for lineno, text in section[1:] if section else []:
        if text == "begin":
            block = []
        elif text == "end":
            if not block:
                raise lines.error(lineno, "'end' without a bone before it")
            bones.append(_asf_bone(lines, block, metres))
            block = None
        elif block is not None:
            block.append((lineno, text))
    if not bones:
        raise lines.error(1, "no bones found (expected a :bonedata section of begin ... end "
                          "blocks)")
    return bones


def _asf_parents(lines: _Lines, section, names: list[str]) -> list[int]:
    joints = ["root"] + names
    parents = [-2] * len(joints)
    for lineno, text in section[1:] if section else []:
        words = text.split()
        if words[0] in ("begin", "end"):
            continue
        for child in words[1:]:
            if words[0] not in joints or child not in joints:
                raise lines.error(lineno, f"hierarchy names an unknown bone in {text!r}")
            parents[joints.index(child)] = joints.index(words[0])
    orphans = [joints[i] for i in range(1, len(joints)) if parents[i] < 0]
    if orphans:
        raise lines.error(section[0][0] if section else 1, f"bones without a parent: {orphans}")
    if any(p >= i for i, p in enumerate(parents) if i > 0):
        raise lines.error(section[0][0], "the hierarchy must list parents before their children "
                          "in the bone order of :bonedata")
    return parents[1:]


def read_asf(path) -> AsfSkeleton:
    """Read an Acclaim ASF skeleton; lengths in metres. Errors name the file and line."""
    lines = _Lines(Path(path))
    sections = _sections(lines)
    metres = _asf_units(lines, sections.get("units"))
    order, axis, axis_order = _asf_root(lines, sections.get("root"))
    bones = _asf_bones(lines, sections.get("bonedata"), metres)
    parents = _asf_parents(lines, sections.get("hierarchy"), [b.name for b in bones])
    bones = tuple(replace(b, parent=p) for b, p in zip(bones, parents))
    return AsfSkeleton(str(path), order, axis, axis_order, bones, metres)


# -- AMC ---------------------------------------------------------------------------------------
def read_amc(path, skeleton: AsfSkeleton) -> dict[str, np.ndarray]:
    """Read an AMC motion: per name (``root`` and each bone with dof) a (T, n_dof) float array.

    Values are as in the file (root translation in ASF length units, angles in degrees), in the
    order of the ASF's ``order`` / ``dof`` lines. Errors name the file and line.
    """
    lines = _Lines(Path(path))
    n_dof = {"root": len(skeleton.root_order)}
    n_dof.update({b.name: len(b.dof) for b in skeleton.bones if b.dof})
    rows: dict[str, list[np.ndarray]] = {k: [] for k in n_dof}
    frame, frame_line = 0, 0
    for lineno, text in lines.items:
        if text.startswith(":"):
            continue
        words = text.split()
        if len(words) == 1 and re.fullmatch(r"\d+", words[0]):
            _check_frame(lines, rows, frame, frame_line)
            frame, frame_line = frame + 1, lineno
            continue
        if frame == 0:
            raise lines.error(lineno, f"expected a frame number before {text!r}")
        if words[0] not in n_dof:
            raise lines.error(lineno, f"unknown bone {words[0]!r} (or a bone without dof) for the "
                              f"skeleton {skeleton.path}")
        rows[words[0]].append(lines.floats(lineno, words[1:], n_dof[words[0]], words[0]))
    _check_frame(lines, rows, frame, frame_line)
    if frame == 0:
        raise lines.error(1, "no frames found")
    return {k: np.stack(v) for k, v in rows.items()}


def _check_frame(lines: _Lines, rows: dict[str, list], frame: int, lineno: int) -> None:
    """Every bone appears exactly once in each frame."""
    bad = [k for k, v in rows.items() if len(v) != frame]
    if bad:
        raise lines.error(lineno, f"frame {frame} does not give each bone once: {bad}")


# -- forward kinematics --------------------------------------------------------------------------
def _axis_rotation(axis: str, angles_deg: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations by ``angles_deg (T,)`` about the x, y or z axis."""
    a = np.deg2rad(angles_deg)
    c, s = np.cos(a), np.sin(a)
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    R = np.zeros(a.shape + (3, 3))
    R[..., 3 - i - j, 3 - i - j] = 1.0
    R[..., i, i], R[..., i, j], R[..., j, i], R[..., j, j] = c, -s, s, c
    return R


def euler_matrix(order: str | tuple[str, ...], angles_deg: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotation applying the axes of ``order`` first-listed first (``XYZ`` = Rz·Ry·Rx).

    Args:
        order: axes, as a string (``"XYZ"``) or a tuple of dof names (``("rx", "rz")``).
        angles_deg: (T, len(order)) degrees.
    """
    axes = [a[-1].lower() for a in order]
    angles = np.atleast_2d(np.asarray(angles_deg, dtype=np.float64))
    R = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for k, axis in enumerate(axes):
        R = _axis_rotation(axis, angles[..., k]) @ R
    return R


def forward_kinematics(skeleton: AsfSkeleton, motion: dict[str, np.ndarray]) -> np.ndarray:
    """Joint positions from ASF + AMC values, vectorised over frames.

    Args:
        skeleton: from :func:`read_asf`.
        motion: from :func:`read_amc`.

    Returns:
        (T, 1 + n_bones, 3) positions in metres, CMU's world frame (Y up), joints as
        ``skeleton.joints``.
    """
    root = motion["root"]
    T = root.shape[0]
    order = skeleton.root_order
    t_idx = [order.index(a) for a in ("tx", "ty", "tz")]
    r_names = tuple(a for a in order if a.startswith("r"))
    C = euler_matrix(skeleton.root_axis_order, skeleton.root_axis[None])[0]
    M = euler_matrix(r_names, root[:, [order.index(a) for a in r_names]])
    frames = [C @ M @ C.T]
    points = np.zeros((T, len(skeleton.joints), 3))
    points[:, 0] = root[:, t_idx] * skeleton.unit_m
    for j, bone in enumerate(skeleton.bones, start=1):
        C = euler_matrix(bone.axis_order, bone.axis[None])[0]
        L = frames[bone.parent] @ C
        if bone.dof:
            L = L @ euler_matrix(bone.dof, motion[bone.name])
        L = L @ C.T
        frames.append(L)
        points[:, j] = points[:, bone.parent] + bone.length * (L @ bone.direction)
    return points


def to_z_up(points_y_up: np.ndarray, joints: tuple[str, ...]) -> np.ndarray:
    """CMU Y-up points (T, J, 3) → epiflow Z-up, shifted so the lowest foot point is at z = 0."""
    points = points_y_up @ Y_UP_TO_Z_UP.T
    feet = [joints.index(j) for j in FOOT_JOINTS if j in joints]
    points[..., 2] -= np.nanmin(points[:, feet, 2])
    return points


def load_cmu_clip(amc_path, asf_path=None) -> Motion:
    """Read a CMU ASF/AMC clip into a :class:`Motion` on the ``cmu31`` joints.

    Args:
        amc_path: the clip, e.g. ``.../cmu_mocap/02/02_01.amc``.
        asf_path: the subject's skeleton; default: the one ``.asf`` in the clip's folder, or
            ``<subject>.asf`` named by the clip's prefix.

    Returns:
        Motion: points (T, 31, 3) metres, Z up, floor at z = 0, 120 fps, name = the file's stem.
    """
    amc_path = Path(amc_path)
    if not amc_path.is_file():
        raise FileNotFoundError(f"CMU clip {str(amc_path)!r} does not exist")
    asf_path = Path(asf_path) if asf_path is not None else _default_asf(amc_path)
    skeleton = read_asf(asf_path)
    if skeleton.joints != CMU31.joints or skeleton.parents != CMU31.parents:
        raise ValueError(f"{asf_path}: its bones {skeleton.joints} do not form the cmu31 skeleton "
                         f"({CMU31.joints}); only CMU's 31-bone ASF files are supported")
    points = forward_kinematics(skeleton, read_amc(amc_path, skeleton))
    return Motion(to_z_up(points, skeleton.joints), "cmu31", CMU_FPS, amc_path.stem)


def _default_asf(amc_path: Path) -> Path:
    candidates = [amc_path.with_name(amc_path.stem.split("_")[0] + ".asf")]
    candidates += sorted(amc_path.parent.glob("*.asf"))
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"no ASF skeleton beside {amc_path}; pass asf_path= (the subject's "
                            f"<subject>.asf file)")


# -- packaged clips -------------------------------------------------------------------------------
def save_motion(motion: Motion, path) -> None:
    """Write a motion npz: ``points`` (T, J, 3) float32 metres, ``joint_set``, ``fps``, ``name``."""
    np.savez_compressed(path, points=motion.points.astype(np.float32),
                        joint_set=np.str_(motion.joint_set), fps=np.float64(motion.fps),
                        name=np.str_(motion.name))


def load_motion(path) -> Motion:
    """Read a motion npz written by :func:`save_motion`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"motion file {str(path)!r} does not exist")
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("points", "joint_set", "fps") if k not in z]
        if missing:
            raise ValueError(f"{path}: missing {missing}; a motion npz holds points (T, J, 3), "
                             f"joint_set, fps and name")
        name = str(z["name"]) if "name" in z else path.stem
        return Motion(z["points"], str(z["joint_set"]), float(z["fps"]), name)


def packaged_clips() -> list[str]:
    """Names of the clips shipped in ``epiflow/data/`` (see its README)."""
    return sorted(p.stem for p in DATA_DIR.glob("*.npz"))


def load_packaged_clip(name: str = "02_01") -> Motion:
    """A CMU clip shipped with epiflow: cmu31, metres, Z up, 30 fps; no shared data needed."""
    path = DATA_DIR / f"{name}.npz"
    if not path.is_file():
        raise KeyError(f"no packaged clip {name!r}; available: {', '.join(packaged_clips())}")
    return load_motion(path)
