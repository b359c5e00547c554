"""An older store (schema 1: one person, no person axis) is refused with the command that
converts it, and ``epiflow upgrade-store`` converts it, in place or to --out, losing nothing."""
from __future__ import annotations

import numpy as np
import pytest
import zarr

from epiflow.cli import main
from epiflow.store import PoseStore, StoreVersionError, upgrade_store

T, C, J, F = 6, 2, 17, 4
V1_DIMS = {"keypoints2d": ("frame", "camera", "joint", "xyc"),
           "pseudo3d": ("frame", "joint", "xyz"), "pseudo3d_weight": ("frame", "joint"),
           "reproj_error": ("frame", "joint"), "pseudo3d_views": ("frame", "camera", "joint"),
           "gt3d": ("frame", "joint", "xyz"), "done/detect": ("unit", "camera")}
TOML = """[cam0]
name = "cam0"
size = [640, 480]
matrix = [[900.0, 0.0, 320.0], [0.0, 900.0, 240.0], [0.0, 0.0, 1.0]]
distortions = [0.0, 0.0, 0.0, 0.0]
rotation = [0.0, 0.0, 0.0]
translation = [0.0, 0.0, 4.0]
fisheye = false

[cam1]
name = "cam1"
size = [640, 480]
matrix = [[900.0, 0.0, 320.0], [0.0, 900.0, 240.0], [0.0, 0.0, 1.0]]
distortions = [0.0, 0.0, 0.0, 0.0]
rotation = [0.0, 1.2, 0.0]
translation = [0.0, 0.0, 4.0]
fisheye = false
"""


def _v1_store(path, rng) -> dict:
    """A schema-1 store as the previous epiflow's writer left it: one labelled session, one
    cut short at calibration (label arrays created but never written, as version 1 did)."""
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    root.attrs["epiflow"] = {"schema_version": 1, "kind": "pose_store", "code_version": "0.9"}
    data = {"keypoints2d": rng.random((T, C, J, 3)).astype(np.float32),
            "pseudo3d": rng.normal(size=(T, J, 3)).astype(np.float32),
            "pseudo3d_weight": rng.random((T, J)).astype(np.float32),
            "reproj_error": rng.random((T, J)).astype(np.float32),
            "pseudo3d_views": rng.random((T, C, J)) > 0.3,
            "gt3d": rng.normal(size=(T, J, 3)).astype(np.float32),
            "done/detect": np.ones((2, C), bool)}
    for sid, labelled in (("walk", True), ("cut", False)):
        status = {"ingest": "done", "detect": "done", "calibrate": "done" if labelled else
                  "pending", "triangulate": "done" if labelled else "pending"}
        g = root.require_group("sessions").create_group(sid, attributes={
            "schema_version": 1, "code_version": "0.9", "joint_set": "h36m17",
            "joint_names": [f"j{i}" for i in range(J)], "source_joint_set": None, "fps": 30.0,
            "n_frames": T, "camera_names": ["cam0", "cam1"], "image_size": [[640, 480]] * C,
            "chunk_frames": F, "crop_size": 0, "status": status, "failure": None,
            "complete": labelled, "gt3d_frame": "gt_cameras" if labelled else None,
            "cameras_toml": TOML if labelled else None, "labels": {"labelled": 1.0},
            "warnings": []})
        for name, value in data.items():
            if name == "gt3d" and not labelled:
                continue
            chunks = {"done/detect": (1, 1), "keypoints2d": (F, 1, J, 3)}.get(
                name, (F, *value.shape[1:]))
            fill = False if value.dtype == bool else (0.0 if name == "pseudo3d_weight"
                                                      else float("nan"))
            a = g.create_array(name, shape=value.shape, chunks=chunks, dtype=value.dtype,
                               fill_value=fill, dimension_names=V1_DIMS[name])
            if labelled or name in ("keypoints2d", "done/detect"):
                a[...] = value
    return data


def _check_converted(path, data) -> None:
    s = PoseStore.open(path).session("walk")
    assert s.keypoints2d.shape == (T, C, 1, J, 3) and s.max_people == 1
    assert np.array_equal(s.keypoints2d[:, :, 0], data["keypoints2d"])
    labels = s.labels()
    assert labels.pseudo3d.shape == (T, 1, J, 3) and labels.person_ids.tolist() == [0]
    assert np.array_equal(labels.person(0).pseudo3d, data["pseudo3d"])
    assert np.array_equal(labels.person(0).views, data["pseudo3d_views"])
    assert np.array_equal(labels.weight[:, 0], data["pseudo3d_weight"])
    assert (labels.slots == 0).all() and s.is_complete and s.rig.names == ["cam0", "cam1"]
    assert np.array_equal(s.ground_truth().points[:, 0], data["gt3d"])
    assert s.group["pseudo3d"].metadata.dimension_names == ("frame", "person", "joint", "xyz")
    cut = PoseStore.open(path).session("cut")
    assert "pseudo3d" not in cut.group and cut.gt3d is None and not cut.has_labels
    assert np.array_equal(cut.keypoints2d[:, :, 0], data["keypoints2d"])


def test_an_old_store_says_how_to_convert_it(tmp_path):
    _v1_store(tmp_path / "S.zarr", np.random.default_rng(0))
    with pytest.raises(StoreVersionError, match=r"version 1.*reads version 2: convert it with "
                                                r"`epiflow upgrade-store .*S\.zarr`"):
        PoseStore.open(tmp_path / "S.zarr")


def test_converts_in_place_and_to_a_new_store(tmp_path, capsys):
    data = _v1_store(tmp_path / "S.zarr", np.random.default_rng(1))
    assert main(["upgrade-store", str(tmp_path / "S.zarr"), "--out",
                 str(tmp_path / "N.zarr")]) == 0
    _check_converted(tmp_path / "N.zarr", data)
    with pytest.raises(StoreVersionError):      # --out keeps the old store as it was
        PoseStore.open(tmp_path / "S.zarr")
    assert main(["upgrade-store", str(tmp_path / "S.zarr")]) == 0
    assert "walk: converted: one person" in capsys.readouterr().out
    _check_converted(tmp_path / "S.zarr", data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["N.zarr", "S.zarr"]
    assert main(["upgrade-store", str(tmp_path / "S.zarr")]) == 2   # already version 2
    assert "already schema version 2" in capsys.readouterr().err


def test_a_kill_leaves_old_or_new_and_a_rerun_finishes(tmp_path):
    """Killed during the copy: the old store is untouched and a rerun converts it; killed
    between the two renames: both whole stores lie beside, and a rerun finishes the swap."""
    data = _v1_store(tmp_path / "S.zarr", np.random.default_rng(2))
    store = str(tmp_path / "S.zarr")
    (tmp_path / "S.zarr.upgrade-new").mkdir()          # a copy cut short
    (tmp_path / "S.zarr.upgrade-new" / "junk").write_text("half")
    upgrade_store(store)
    _check_converted(store, data)
    _v1_store(tmp_path / "T.zarr", np.random.default_rng(2))
    upgrade_store(str(tmp_path / "T.zarr"), str(tmp_path / "T.zarr.upgrade-new"))
    (tmp_path / "T.zarr").rename(tmp_path / "T.zarr.upgrade-old")   # killed after 1st rename
    upgrade_store(str(tmp_path / "T.zarr"))
    _check_converted(tmp_path / "T.zarr", data)
    assert not (tmp_path / "T.zarr.upgrade-old").exists()
    assert not (tmp_path / "T.zarr.upgrade-new").exists()


def test_refuses_what_it_cannot_convert(tmp_path, capsys):
    _v1_store(tmp_path / "S.zarr", np.random.default_rng(3))
    (tmp_path / "N.zarr").mkdir()
    assert main(["upgrade-store", str(tmp_path / "S.zarr"), "--out",
                 str(tmp_path / "N.zarr")]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["upgrade-store", str(tmp_path / "missing.zarr")]) == 2
