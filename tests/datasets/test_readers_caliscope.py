"""caliscope recordings (epiflow.datasets.caliscope) against caliscope's own calibration and 3D."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from epiflow.calibration.formats import load_rig
from epiflow.calibration.triangulation import triangulate_linear
from epiflow.datasets.caliscope import read_caliscope_xy, read_caliscope_xyz


@pytest.fixture(scope="module")
def session(shared_data):
    root = shared_data / "caliscope_4cam"
    rig = load_rig(root / "config.toml")
    holistic = root / "recordings" / "recording_1" / "HOLISTIC"
    kp = read_caliscope_xy(holistic / "xy_HOLISTIC.csv", rig.sizes)
    return rig, kp, read_caliscope_xyz(holistic / "xyz_HOLISTIC.csv", kp.n_frames)


def test_shape_cameras_and_coverage(session):
    rig, kp, _ = session
    assert kp.joint_set == "blazepose33" and kp.data.shape == (267, 4, 33, 3)
    assert kp.camera_names == tuple(rig.names) == ("cam_0", "cam_1", "cam_2", "cam_3")
    assert kp.image_size.tolist() == [[1280, 720]] * 4
    seen = kp.confidence > 0
    assert set(np.unique(kp.confidence)) == {0.0, 1.0}
    assert 0.5 < seen.mean() < 0.95  # measured 0.59, 0.92, 0.90, 0.63 per camera
    xy = kp.xy[seen]
    assert xy.min() >= 0 and xy[:, 0].max() <= 1280 and xy[:, 1].max() <= 720
    assert 29 < kp.fps < 32  # from frame_time: 30.4 (the config's fps_recording says 24)


def test_our_triangulation_meets_caliscopes(session):
    """Our reading of both files, triangulated, lands on caliscope's own 3D points: a wrong
    convention (camera-to-world, turned images, another camera order) would be metres off."""
    rig, kp, ref = session
    xy = kp.xy.transpose(1, 0, 2, 3)
    uv = rig.undistort(xy, normalized=False).reshape(4, -1, 2)
    w = (kp.confidence.transpose(1, 0, 2).reshape(4, -1) > 0).astype(float)
    X = triangulate_linear(torch.tensor(rig.projection_matrices()), torch.nan_to_num(torch.tensor(uv)),
                           torch.tensor(w)).numpy()
    X[w.sum(0) < 2] = np.nan
    gap = np.linalg.norm(X.reshape(ref.shape) - ref, axis=-1)
    assert np.isfinite(gap).sum() > 5000
    assert np.nanmedian(gap) < 0.02  # measured 7.5 mm
    assert np.nanmedian(rig.reprojection_error(ref, xy)) < 25  # measured 13.6 px


def test_xyz_reference(session):
    _, _, ref = session
    assert ref.shape == (267, 33, 3) and 0.8 < np.isfinite(ref[..., 0]).mean() < 0.95
    shoulders = np.linalg.norm(ref[:, 11] - ref[:, 12], axis=-1)
    assert 0.25 < np.nanmedian(shoulders) < 0.5  # metres


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="xy_missing.csv"):
        read_caliscope_xy(tmp_path / "xy_missing.csv")
    (tmp_path / "xy.csv").write_text("sync_index,port,frame_time,point_id,img_loc_x\n0,0,0.0,0,1\n")
    with pytest.raises(ValueError, match=r"xy\.csv.*missing columns \['img_loc_y'\]"):
        read_caliscope_xy(tmp_path / "xy.csv")


def test_recording_reads_calibration_2d_and_3d_together(session, shared_data):
    from epiflow.datasets.caliscope import read_caliscope_recording
    rig, kp, xyz = session
    rig2, kp2, xyz2 = read_caliscope_recording(shared_data / "caliscope_4cam")
    assert rig2.names == rig.names and kp2.camera_names == kp.camera_names
    np.testing.assert_array_equal(kp2.data, kp.data)
    np.testing.assert_array_equal(xyz2, xyz)
    assert [tuple(s) for s in kp2.image_size] == [tuple(s) for s in rig.sizes]
