"""OpenPose JSON folders (one folder per camera, one file per frame) read into :class:`Keypoints`.

Layout::

    root/
      cam01_json/  cam01.0000.json  cam01.0001.json ...
      cam02_json/  ...

Each file is OpenPose's ``{"people": [{"pose_keypoints_2d": [x0, y0, c0, x1, ...]}, ...]}`` in
pixels; an undetected joint is written ``0, 0, 0``. Rules:

- Missing joints: confidence 0, or an x or y of exactly 0 (OpenPose's "not found"; the Pose2Sim demo
  has 6 noses at x = 0 with confidence 0.68 in frames where the nose is clearly elsewhere), become
  NaN with confidence 0.

- Cameras: the sub-folders that hold ``*.json`` files, in natural order (``cam2`` before ``cam10``),
  named by the folder name without a trailing ``_json``.
- Frames: the frame index of a file is the last number in its name (``cam01.0012.json`` and
  ``cam01_000000000012_keypoints.json`` are both frame 12). All cameras share one time axis from the
  smallest to the largest index seen; a frame a camera has no file for is missing (NaN, conf 0).
- Person: by default one person. Where a file has several, the one with the highest total
  confidence is kept. On the Pose2Sim demo this picks the subject in 399 of 400 files; in the one
  other (cam01 frame 37) OpenPose split the subject in two and a bystander scores higher. With
  ``people=True`` every person is kept: (T, C, P, J, 3), P = the most people of any file, each
  file's people in slots by decreasing total confidence (unassociated: slot p of one camera is not
  slot p of another), empty slots NaN with confidence 0.
- Joint set from the number of joints: 17 ``coco17``, 33 ``blazepose33``, 25 ``body25`` or
  ``body25b`` (see :func:`guess_body25_variant`); pass ``joint_set`` to say it outright.
- Image size: OpenPose JSON does not store it. Pass ``image_size``; otherwise it is (0, 0), and
  whatever needs it (calibration from people, the CLI) must get it elsewhere, e.g. from the
  intrinsics file (``--intrinsics``) or the videos.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from epiflow.keypoints import Keypoints, check_keypoint_values
from epiflow.naming import natural_key
from epiflow.skeleton import get_joint_set

__all__ = ["read_openpose", "read_openpose_frame", "guess_body25_variant"]

_BY_COUNT = {17: ("coco17",), 25: ("body25", "body25b"), 33: ("blazepose33",)}
_FACE_RATIO_SPLIT = (0.15, 0.4)  # below: body25 (eyes at 15, 16); above: body25b (ankles there)


def _frame_index(path: Path) -> int:
    numbers = re.findall(r"\d+", path.stem)
    if not numbers:
        raise ValueError(f"{path}: no frame number in the file name; expected names like "
                         f"cam01.0012.json or cam01_000000000012_keypoints.json")
    return int(numbers[-1])


def read_openpose_frame(path) -> np.ndarray:
    """All people of one OpenPose JSON file: (P, J, 3) pixels and confidence (P may be 0).

    Undetected joints (confidence 0, or x or y exactly 0) come back NaN with confidence 0.
    """
    path = Path(path)
    try:
        people = json.loads(path.read_text()).get("people", [])
        arrays = [np.asarray(p.get("pose_keypoints_2d", []), dtype=np.float64) for p in people]
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError,
            ValueError) as err:
        raise ValueError(f"{path}: not an OpenPose JSON file ({type(err).__name__}: {err}); "
                         f'expected {{"people": [{{"pose_keypoints_2d": [x0, y0, c0, ...]}}]}}'
                         ) from None
    arrays = [a for a in arrays if a.size]
    if not arrays:
        return np.zeros((0, 0, 3))
    sizes = {a.size for a in arrays}
    if len(sizes) != 1 or arrays[0].size % 3:
        raise ValueError(f"{path}: pose_keypoints_2d must hold 3 × J numbers, the same J for every "
                         f"person; got lengths {sorted(sizes)}")
    pts = np.stack([a.reshape(-1, 3) for a in arrays])
    missing = (pts[..., 2] <= 0) | (pts[..., 0] == 0) | (pts[..., 1] == 0)
    pts[missing] = (np.nan, np.nan, 0.0)
    return pts


def _by_confidence(people: np.ndarray, keep_all: bool) -> np.ndarray | None:
    """A file's people (P, J, 3) by decreasing total confidence, or only the first (1, J, 3)
    unless ``keep_all``; None when the file has nobody."""
    if len(people) == 0:
        return None
    order = np.argsort(-np.nan_to_num(people[..., 2]).sum(-1), kind="stable")
    return people[order if keep_all else order[:1]]


def guess_body25_variant(data: np.ndarray) -> str | None:
    """Tell OpenPose BODY_25 from BODY_25B in (..., 25, 3) keypoints, or None when unsure.

    In ``body25`` joints 15 and 16 are the eyes, next to the nose (joint 0); in ``body25b`` they
    are the ankles. The rule: the median, over detections that have them, of the distance from
    joint 0 to joints 15 and 16 divided by the height of the detection's box is below 0.15 for
    ``body25`` and above 0.4 for ``body25b``; between, or with fewer than 5 such detections, None.
    """
    pts = np.asarray(data, dtype=np.float64).reshape(-1, 25, 3)
    seen = pts[..., 2] > 0
    ok = seen[:, 0] & seen[:, 15] & seen[:, 16]
    if ok.sum() < 5:
        return None
    pts, seen = pts[ok], seen[ok]
    y = np.where(seen, pts[..., 1], np.nan)
    height = np.nanmax(y, -1) - np.nanmin(y, -1)
    dist = np.linalg.norm(pts[:, [15, 16], :2] - pts[:, None, 0, :2], axis=-1).mean(-1)
    ratio = float(np.median(dist / np.maximum(height, 1e-9)))
    low, high = _FACE_RATIO_SPLIT
    return "body25" if ratio < low else "body25b" if ratio > high else None


def _resolve_joint_set(n_joints: int, joint_set: str | None, data: np.ndarray, root: Path) -> str:
    if joint_set is not None:
        expected = len(get_joint_set(joint_set))
        if expected != n_joints:
            raise ValueError(f"{root}: joint_set={joint_set!r} has {expected} joints but the files "
                             f"hold {n_joints} per person")
        return joint_set
    names = _BY_COUNT.get(n_joints)
    if names is None:
        raise ValueError(f"{root}: {n_joints} joints per person matches no known joint set "
                         f"(17 coco17, 25 body25/body25b, 33 blazepose33); pass joint_set=")
    if len(names) == 1:
        return names[0]
    guess = guess_body25_variant(data)
    if guess is None:
        raise ValueError(f"{root}: 25 joints per person could be body25 or body25b and the data "
                         f"does not tell them apart; pass joint_set='body25' or 'body25b'")
    return guess


def _camera_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise FileNotFoundError(f"OpenPose folder {str(root)!r} does not exist; expected a folder "
                                f"with one sub-folder of JSON files per camera")
    folders = [d for d in root.iterdir() if d.is_dir() and any(d.glob("*.json"))]
    if not folders:
        raise ValueError(f"{root}: no sub-folders holding *.json files; expected one folder of "
                         f"OpenPose JSON per camera (cam01_json/, cam02_json/, ...)")
    return sorted(folders, key=lambda d: natural_key(d.name))


def _sizes(image_size, n_cameras: int) -> np.ndarray:
    if image_size is None:
        return np.zeros((n_cameras, 2), np.int64)
    size = np.asarray(image_size, dtype=np.int64)
    if size.shape == (2,):
        return np.tile(size, (n_cameras, 1))
    if size.shape != (n_cameras, 2):
        raise ValueError(f"image_size must be (width, height) or ({n_cameras}, 2); got {size.shape}")
    return size


def read_openpose(root, joint_set: str | None = None, image_size=None,
                  fps: float | None = None, people: bool = False) -> Keypoints:
    """Read a folder of per-camera OpenPose JSON folders (rules in the module docstring).

    Args:
        root: the folder holding one sub-folder of JSON files per camera.
        joint_set: the joint set's name; guessed from the joint count (and the data, for 25) when None.
        image_size: (width, height) for every camera, or (C, 2); (0, 0) when None.
        fps: frames per second, when known.
        people: keep every person of a file (a P axis) instead of the most confident one.

    Returns:
        :class:`Keypoints` (T, C, J, 3), one person, pixels; no person = NaN with confidence 0;
        with ``people``, (T, C, P, J, 3) (module docstring).
    """
    root = Path(root)
    folders = _camera_folders(root)
    frames = [{_frame_index(f): _by_confidence(read_openpose_frame(f), people)
               for f in d.glob("*.json")} for d in folders]
    counts = {p.shape[1] for cam in frames for p in cam.values() if p is not None}
    if len(counts) != 1:
        raise ValueError(f"{root}: expected the same number of joints in every file; got "
                         f"{sorted(counts) or 'no person in any file'}")
    n_joints = counts.pop()
    first = min(min(cam) for cam in frames)
    n_slots = max(len(p) for cam in frames for p in cam.values() if p is not None)
    data = np.full((max(max(cam) for cam in frames) - first + 1, len(folders), n_slots,
                    n_joints, 3), np.nan)
    data[..., 2] = 0.0
    for c, cam in enumerate(frames):
        for t, found in cam.items():
            if found is not None:
                data[t - first, c, :len(found)] = found
    if not people:
        data = data[:, :, 0]
    names = tuple(re.sub(r"_json$", "", d.name) for d in folders)
    check_keypoint_values(data, str(root))
    return Keypoints(data, _resolve_joint_set(n_joints, joint_set, data, root), names,
                     _sizes(image_size, len(folders)), fps)
