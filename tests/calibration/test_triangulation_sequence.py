"""triangulate_sequence() and triangulate_two_view() on synthetic CMU captures (H1's generator)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from epiflow.calibration.triangulation import (Reason, triangulate, triangulate_sequence,
                                               triangulate_two_view)
from epiflow.datasets.synthetic import Corruption, cmu_capture
from epiflow.skeleton import H36M17

#: the issue's benchmark corruption: 3 px noise, 5% outliers, 2% left/right swaps
BENCH = Corruption(noise_px=3.0, outlier_fraction=0.05, swap_fraction=0.02)


@pytest.fixture(scope="module")
def captures():
    return [cmu_capture(clip, n_cameras=4, corruption=BENCH, seed=1)
            for clip in ("02_01", "02_03", "02_04")]


def _errors(points, truth):
    return np.linalg.norm(points - truth, axis=-1)


def test_pseudo_labels_beat_plain_and_two_view(captures):
    robust, plain, two = [], [], []
    for cap in captures:
        kp = cap.keypoints
        robust.append(_errors(triangulate_sequence(cap.rig, kp).points, cap.points3d))
        flat = triangulate(cap.rig, kp.xy.transpose(1, 0, 2, 3), kp.confidence.transpose(1, 0, 2),
                           robust=False)
        plain.append(_errors(flat.points, cap.points3d))
        two.append(_errors(triangulate_two_view(cap.rig, kp, frame="world").points,
                           cap.points3d))
    robust, plain, two = (np.concatenate([e.ravel() for e in x]) for x in (robust, plain, two))
    assert np.nanmean(robust) < 0.015  # the bound for the true cameras
    assert np.isfinite(robust).mean() > 0.99
    assert np.nanmean(plain) > 2 * np.nanmean(robust)
    assert np.nanmean(two) > 2 * np.nanmean(robust)


def test_left_right_swaps_are_found_and_fixed():
    cap = cmu_capture("02_01", corruption=replace(BENCH, swap_fraction=0.1), seed=2)
    on = triangulate_sequence(cap.rig, cap.keypoints)
    off = triangulate_sequence(cap.rig, cap.keypoints, swap="off")
    found = (on.flipped & cap.swapped).sum() / cap.swapped.sum()
    assert cap.swapped.sum() > 20 and found > 0.9
    assert (on.flipped & ~cap.swapped).sum() <= 0.01 * (~cap.swapped).sum()
    assert np.nanmean(_errors(on.points, cap.points3d)) < \
        0.8 * np.nanmean(_errors(off.points, cap.points3d))
    drop = triangulate_sequence(cap.rig, cap.keypoints, swap="drop")
    assert np.nanmean(_errors(drop.points, cap.points3d)) < \
        0.8 * np.nanmean(_errors(off.points, cap.points3d))
    single = (drop.flipped.sum(1) == 1)[:, None] & drop.flipped  # no whole frame relabelled
    paired = H36M17.flip_permutation != np.arange(17)
    assert single.any() and not drop.views[single][:, paired].any()


def test_temporal_prior_settles_ambiguous_consensus(captures):
    far_on = far_off = 0
    for cap in captures:
        on = triangulate_sequence(cap.rig, cap.keypoints)
        off = triangulate_sequence(cap.rig, cap.keypoints, temporal_gate_m=None)
        far_on += (_errors(on.points, cap.points3d) > 0.1).sum()
        far_off += (_errors(off.points, cap.points3d) > 0.1).sum()
    assert far_on < 0.75 * far_off


def test_shapes_types_and_fields(captures):
    cap = captures[0]
    T, C, J, _ = cap.keypoints.data.shape
    tri = triangulate_sequence(cap.rig, cap.keypoints)
    assert tri.points.shape == (T, J, 3) and tri.views.shape == (T, C, J)
    assert tri.weight.shape == tri.sigma.shape == tri.reason.shape == (T, J)
    assert tri.flipped.shape == (T, C) and tri.view_error.shape == (T, C, J)
    as_torch = triangulate_sequence(cap.rig, torch.as_tensor(cap.keypoints.data))
    assert isinstance(as_torch.points, torch.Tensor) and as_torch.flipped.dtype == torch.bool
    np.testing.assert_allclose(as_torch.points.numpy(), tri.points, atol=1e-9)


def test_cameras_are_matched_by_name(captures):
    cap = captures[0]
    kp = cap.keypoints
    shuffled = kp.select_cameras([kp.camera_names[i] for i in (2, 0, 3, 1)])
    renamed = replace(kp, camera_names=tuple(n.replace("_", "") for n in kp.camera_names))
    base = triangulate_sequence(cap.rig, kp)
    for other in (shuffled, renamed):
        np.testing.assert_allclose(triangulate_sequence(cap.rig, other).points, base.points,
                                   atol=1e-9)
    wrong = replace(kp, camera_names=("cam_01", "cam_02", "cam_03", "side"))
    with pytest.raises(ValueError, match=r"side.*rename"):
        triangulate_sequence(cap.rig, wrong)


def test_bad_sequence_input(captures):
    cap = captures[0]
    data = cap.keypoints.data
    with pytest.raises(ValueError, match="joint set 'h36m17' has 17"):
        triangulate_sequence(cap.rig, data[:, :, :16])
    with pytest.raises(ValueError, match=r"C=4"):
        triangulate_sequence(cap.rig, data[:, :3])
    with pytest.raises(ValueError, match="swap must be"):
        triangulate_sequence(cap.rig, data, swap="maybe")
    with pytest.raises(TypeError, match="gate"):
        triangulate_sequence(cap.rig, data, gate=3)
    with pytest.raises(ValueError, match="fps"):
        triangulate_sequence(cap.rig, data, smooth="butterworth")
    for T in (0, 1):  # no frames, or no neighbours for the temporal tests
        tri = triangulate_sequence(cap.rig, data[:T], smooth="butterworth", fps=30, fill_gaps=2)
        assert tri.points.shape == (T, 17, 3) and tri.flipped.shape == (T, 4)
    nothing = data.copy()
    nothing[..., 2] = 0.0
    tri = triangulate_sequence(cap.rig, nothing)
    assert np.isnan(tri.points).all() and (tri.reason == Reason.TOO_FEW_VIEWS).all()


def test_gaps_are_filled_only_when_short_and_smoothing_helps(captures):
    cap = captures[0]
    kp = cap.keypoints.data.copy()
    kp[10:12, :, 13] = (np.nan, np.nan, 0.0)  # l_wrist unseen for 2 frames
    kp[30:41, :, 13] = (np.nan, np.nan, 0.0)  # and for 11
    tri = triangulate_sequence(cap.rig, kp, fill_gaps=3, smooth="butterworth", fps=30.0)
    assert (tri.reason[10:12, 13] == Reason.INTERPOLATED).all()
    assert np.isfinite(tri.points[10:12, 13]).all() and (tri.weight[10:12, 13] > 0).all()
    assert np.isnan(tri.points[30:41, 13]).all() and (tri.weight[30:41, 13] == 0).all()
    assert _errors(tri.points[10:12, 13], cap.points3d[10:12, 13]).max() < 0.05
    raw = triangulate_sequence(cap.rig, cap.keypoints)
    smooth = triangulate_sequence(cap.rig, cap.keypoints, smooth="butterworth")  # fps from kp
    assert np.nanmean(_errors(smooth.points, cap.points3d)) < \
        0.9 * np.nanmean(_errors(raw.points, cap.points3d))


def test_two_view_baseline_frames(captures):
    cap = captures[0]
    world = triangulate_two_view(cap.rig, cap.keypoints, pair=("cam_02", "cam_03"),
                                 frame="world")
    camera = triangulate_two_view(cap.rig, cap.keypoints, pair=(1, 2))
    cam = cap.rig[1]
    np.testing.assert_allclose(camera.points, world.points @ cam.R.T + cam.t, atol=1e-9)
    assert camera.frame == "camera cam_02" and world.frame == "world"
    assert not camera.views[:, [0, 3]].any() and camera.views[:, [1, 2]].any()
    with pytest.raises(ValueError, match="two different cameras"):
        triangulate_two_view(cap.rig, cap.keypoints, pair=(1, 1))
