"""Datasets over sessions and the store: labels in camera frames, masking, windows, splits."""
from dataclasses import replace

import numpy as np
import pytest

from epiflow.models.data import (DataError, PoseDataset, load_sessions, normalize_keypoints,
                                 prepare_session, split_sessions)
from epiflow.store import PoseStore


@pytest.fixture(scope="module")
def session(oracle):
    return oracle("02_01", seed=3)


def test_labels_are_root_relative_in_each_camera(session):
    p = prepare_session(session, "gt")
    rig, X = session.rig, session.gt3d.astype(np.float64)
    cam = np.einsum("cab,tjb->tcja", rig.R, X) + rig.t[None, :, None]
    np.testing.assert_allclose(p.y, cam - cam[:, :, :1], atol=1e-5)
    # the input rays (noisy 2D, undistorted) pass within a few pixels of the labelled joints
    f = rig.K[0, 0, 0]
    err_px = f * np.linalg.norm(p.uv - cam[..., :2] / cam[..., 2:], axis=-1)
    assert np.nanmedian(err_px) < 5


def test_normalised_input_does_not_depend_on_distance():
    rng = np.random.default_rng(0)
    uv = rng.normal(size=(5, 17, 2)) * 0.1
    x1 = normalize_keypoints(uv)
    closer = uv[:, :1] + 2.0 * (uv - uv[:, :1])  # the same pose twice as big around its root
    x2 = normalize_keypoints(closer)
    np.testing.assert_allclose(x1[:, 1:], x2[:, 1:], atol=1e-5)
    np.testing.assert_allclose(x1[:, 0], uv[:, 0], atol=1e-6)  # root slot: where it is seen
    uv[1, 3] = np.nan
    x = normalize_keypoints(uv)
    assert np.isfinite(x).all() and (x[1, 3] == 0).all()


def test_a_frame_without_the_person_is_zeros_and_quiet():
    """`epiflow predict --video` on frames where the detector found no one printed numpy's
    'RuntimeWarning: Mean of empty slice' (models/data.py) among its output."""
    import warnings
    uv = np.random.default_rng(1).normal(size=(3, 17, 2)) * 0.1
    uv[1] = np.nan                                  # nobody seen in frame 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = normalize_keypoints(uv)
    assert (x[1] == 0).all() and np.isfinite(x).all() and np.abs(x[0, 1:]).max() > 0.1


def test_nan_labels_get_zero_weight_and_unlabelled_samples_are_left_out(session):
    T = session.gt3d.shape[0]
    pseudo = session.pseudo3d.copy()
    pseudo[:10] = np.nan          # no label at all in the first 10 frames
    pseudo[10:20, 5] = np.nan     # one joint missing
    s = replace(session, pseudo3d=pseudo)
    p = prepare_session(s, "pseudo")
    assert (p.w[:10] == 0).all() and (p.w[10:20, :, 5] == 0).all() and (p.w[20:] > 0).all()
    ds = PoseDataset([p])
    frames = ds.index[:, 1]
    assert frames.min() == 10 and len(ds) == (T - 10) * 4
    assert len(PoseDataset([p], keep_unlabelled=True)) == T * 4


def test_windows_and_views(session):
    p = prepare_session(session, "pseudo")
    ds = PoseDataset([p], window=5)
    first = next(i for i, (k, t, c) in enumerate(ds.index) if t == 0 and c == 2)
    b = ds.__getitems__([first])
    assert b["x"].shape == (1, 1, 5, 17, 2)
    x = b["x"][0, 0].numpy()
    np.testing.assert_array_equal(x[0], p.x[0, 2])     # edge frames repeat frame 0
    np.testing.assert_array_equal(x[2], p.x[0, 2])
    np.testing.assert_array_equal(x[4], p.x[2, 2])
    mv = PoseDataset([p], views=True)
    b = mv.__getitems__([0, 1])
    assert b["x"].shape == (2, 4, 1, 17, 2) and b["R"].shape == (2, 4, 3, 3)
    np.testing.assert_allclose(b["R"][0].numpy(), session.rig.R, atol=1e-6)
    assert len(mv) == session.gt3d.shape[0]


def test_split_by_session():
    names = ["a", "b", "c", "d", "e"]
    assert split_sessions(names, 0.4) == (["a", "b", "c"], ["d", "e"])
    assert split_sessions(names, 0.0) == (names, [])
    assert split_sessions(["a", "b"], 0.01) == (["a"], ["b"])
    assert split_sessions(names, val_sessions=["b"]) == (["a", "c", "d", "e"], ["b"])
    with pytest.raises(DataError, match=r"\['x'\]"):
        split_sessions(names, val_sessions=["x"])


def test_store_round_trip_and_bad_stores(tmp_path, make_store):
    """Sessions come back from a pipeline-written store through its typed readers: cameras,
    labels, ground truth with its true rig; one whose triangulation has not run has none."""
    from epiflow.datasets.synthetic import cmu_capture
    make_store(tmp_path / "s.zarr", {"02_01": 3, "02_04": 1}, frames=64)
    store = PoseStore.open(tmp_path / "s.zarr", "a")
    store.session("02_04").set_status("triangulate", "pending")  # as if killed before it
    a, b = load_sessions(tmp_path / "s.zarr")
    assert (a.name, b.name) == ("02_01", "02_04") and a.fps == 30.0
    truth = cmu_capture("02_01", 4, seed=3)
    np.testing.assert_allclose(a.keypoints2d, truth.keypoints.data[:64], atol=1e-3,
                               equal_nan=True)
    np.testing.assert_allclose(a.gt_rig.R, truth.rig.R, atol=1e-9)
    np.testing.assert_allclose(a.rig.t, truth.rig.t, atol=1e-9)  # calibrate.method = "given"
    np.testing.assert_allclose(a.gt3d, truth.points3d[:64], atol=1e-6)
    err = np.linalg.norm(a.pseudo3d - a.gt3d, axis=-1)[a.pseudo3d_weight > 0]
    assert err.size > 0.9 * 64 * 17 and np.median(err) < 0.02  # 2D noise of 2 px, true cameras
    assert b.pseudo3d is None and b.gt3d is not None
    p = prepare_session(a, "pseudo")
    assert (p.w > 0).mean() > 0.9 and np.isfinite(p.gt).all()
    with pytest.raises(DataError, match="no pseudo-labels.*epiflow run.*data.labels = 'gt'"):
        prepare_session(b, "pseudo")
    assert np.isfinite(prepare_session(b, "gt").y).any()  # ground truth still trains
    with pytest.raises(DataError, match="joint set 'h36m17'.*'coco17'"):
        prepare_session(a, "pseudo", joint_set="coco17")
    with pytest.raises(DataError, match="image model trains on crops.*store.crop_size"):
        load_sessions(tmp_path / "s.zarr", need_crops=True)


def test_mirrored_batches_stay_consistent(session):
    import torch

    from epiflow.models.losses import multiview_consistency_loss, reprojection_loss
    from epiflow.models.data import mirror_batch
    from epiflow.skeleton import H36M17
    b = PoseDataset([prepare_session(session, "gt")], views=True).__getitems__(range(24))
    flip = H36M17.flip_permutation
    m = mirror_batch(b, flip, torch.ones(24, dtype=torch.bool))
    for key in ("x", "uv", "y", "w", "R"):  # mirroring twice gives the batch back
        np.testing.assert_allclose(mirror_batch(m, flip, torch.ones(24, dtype=torch.bool))[key],
                                   b[key], atol=1e-6)
    # the left wrist of the mirror is where the right wrist was, reflected in x
    np.testing.assert_allclose(m["y"][:, :, 13], b["y"][:, :, 16] * torch.tensor([-1, 1, 1.0]))
    R01 = m["R"][:, 1] @ m["R"][:, 0].transpose(-1, -2)
    assert float(multiview_consistency_loss(m["y"][:, 0], m["y"][:, 1], R01)) < 1e-5
    rep = [float(reprojection_loss(v["y"][:, 0], v["uv"][:, 0], v["conf"][:, 0])) for v in (b, m)]
    assert rep[1] == pytest.approx(rep[0], rel=1e-4)
    half = mirror_batch(b, flip, torch.arange(24) % 2 == 0)
    np.testing.assert_array_equal(half["y"][1::2], b["y"][1::2])


def test_sessions_without_cameras_are_left_out_with_a_warning(tmp_path, session, make_store):
    make_store(tmp_path / "s.zarr", {"02_01": 3}, frames=20)
    store = PoseStore.open(tmp_path / "s.zarr", "a")
    pending = store.create_session("pending", n_frames=10, camera_names=session.rig.names,
                                   joint_set="h36m17", image_size=session.rig.sizes, fps=30.0,
                                   chunk_frames=10)
    pending.mark_failed("calibrate", "too few shared views")
    with pytest.warns(UserWarning, match=r"left out 1 session\(s\).*pending \(calibrate: failed\)"):
        assert [s.name for s in load_sessions(tmp_path / "s.zarr")] == ["02_01"]
    with pytest.raises(DataError, match="without cameras: pending"):
        load_sessions(tmp_path / "s.zarr", ["02_01", "pending"])
