"""Synthetic captures: exact projections, and a corruption model whose knobs do what they say."""
from __future__ import annotations

import numpy as np
import pytest

from epiflow.calibration.camera import CameraRig
from epiflow.datasets.cmu import load_packaged_clip
from epiflow.datasets.synthetic import (REFERENCE_HEIGHT_PX, Corruption, capture_center,
                                        cmu_capture, make_rig, synthesize)
from epiflow.skeleton import H36M17


@pytest.fixture(scope="module")
def walk():
    return load_packaged_clip("02_01")


def only(**kwargs) -> Corruption:
    """No corruption except the named knobs."""
    from dataclasses import replace
    return replace(Corruption.none(), **kwargs)


class TestMakeRig:
    def test_cameras_look_at_the_target(self):
        target = np.array([0.5, -1.0, 1.0])
        rig = make_rig(5, layout="random", target=target, focal_px=(800, 1500),
                       size=(1280, 720), distortion=0.1, seed=4)
        uv = rig.project(target)
        np.testing.assert_allclose(uv, np.tile([[639.5, 359.5]], (5, 1)), atol=1e-9)
        assert np.all((rig.K[:, 0, 0] >= 800) & (rig.K[:, 0, 0] <= 1500))
        # image x axis horizontal: the camera's x axis has no world-Z component
        assert np.abs(rig.R[:, 0, 2]).max() < 1e-12

    def test_ring_geometry(self):
        rig = make_rig(6, radius=4.0, height=2.0, target=(1.0, 2.0, 1.0), seed=1)
        rel = rig.centers - [1.0, 2.0, 0.0]
        np.testing.assert_allclose(np.linalg.norm(rel[:, :2], axis=1), 4.0)
        np.testing.assert_allclose(rel[:, 2], 2.0)
        az = np.sort(np.arctan2(rel[:, 1], rel[:, 0]))
        np.testing.assert_allclose(np.diff(az), np.pi / 3, atol=1e-9)

    def test_deterministic_by_seed(self):
        a, b, c = (make_rig(4, layout="random", distortion=0.2, seed=s) for s in (3, 3, 4))
        assert np.array_equal(a.R, b.R) and np.array_equal(a.dist, b.dist)
        assert np.abs(a.centers - c.centers).max() > 0.1

    def test_bad_layout(self):
        with pytest.raises(ValueError, match="'ring' or 'random'"):
            make_rig(layout="circle")


class TestSynthesize:
    def test_noise_free_reprojects_exactly(self, walk):
        cap = cmu_capture(n_cameras=4, corruption=Corruption.none(), distortion=0.15)
        kp = cap.keypoints
        assert kp.joint_set == "h36m17" and kp.data.shape == (walk.n_frames, 4, 17, 3)
        err = cap.rig.reprojection_error(cap.points3d, kp.xy.transpose(1, 0, 2, 3))
        assert np.nanmax(err) < 1e-6
        assert cap.in_view.all() and np.all(kp.confidence == 1.0)
        np.testing.assert_allclose(cap.points3d, walk.to_h36m().points)

    def test_noise_std_scales_with_person_size(self, walk):
        motion = walk.to_h36m()
        center = capture_center(motion)
        near = make_rig(1, radius=4.0, target=center, seed=0)[0]
        far = make_rig(1, radius=8.0, target=center, seed=0)[0].replace(name="far")
        rig = CameraRig([near, far])
        cap = synthesize(motion, rig, only(noise_px=3.0, confidence_jitter=0.0), seed=2)
        residual = cap.keypoints.xy - cap.clean2d  # (T, C, J, 2)
        expected = 3.0 * cap.apparent_height_px / REFERENCE_HEIGHT_PX  # (T, C)
        normalised = residual / expected[..., None, None]
        for c in range(2):
            assert np.nanstd(normalised[:, c]) == pytest.approx(1.0, abs=0.05)
        measured = [np.nanstd(residual[:, c]) for c in range(2)]
        size_ratio = np.mean(cap.apparent_height_px[:, 0] / cap.apparent_height_px[:, 1])
        assert 1.6 < size_ratio < 2.4  # the near camera sees the person about twice as tall
        assert measured[0] / measured[1] == pytest.approx(size_ratio, rel=0.1)

    def test_confidence_falls_with_error(self, walk):
        cap = synthesize(walk, make_rig(4, target=capture_center(walk)), only(noise_px=6.0))
        err = np.linalg.norm(cap.keypoints.xy - cap.clean2d, axis=-1).ravel()
        conf = cap.keypoints.confidence.ravel()
        assert np.corrcoef(err, conf)[0, 1] < -0.5
        small, large = conf[err < np.median(err)], conf[err >= np.median(err)]
        assert small.mean() > large.mean() + 0.05

    def test_fractions_match_the_request(self, walk):
        rig = make_rig(8, target=capture_center(walk), seed=0)
        cap = synthesize(walk, rig, Corruption(noise_px=2.0, outlier_fraction=0.1,
                                               drop_fraction=0.15, swap_fraction=0.2), seed=5)
        observed = cap.in_view & ~cap.dropped
        assert cap.dropped.sum() / cap.in_view.sum() == pytest.approx(0.15, abs=0.015)
        assert cap.outlier.sum() / observed.sum() == pytest.approx(0.1, abs=0.015)
        assert cap.swapped.mean() == pytest.approx(0.2, abs=0.05)
        missing = np.isnan(cap.keypoints.xy).any(-1)
        assert np.array_equal(missing, ~observed)

    def test_occlusion_prefers_hidden_joints(self, walk):
        """Drops fall on joints behind the torso (far hips, arms), not on the head or neck."""
        cap = synthesize(walk, make_rig(4, target=capture_center(walk)), only(drop_fraction=0.05))
        rate = cap.dropped.mean(axis=(0, 1))
        hidden = [H36M17.index(j) for j in ("l_hip", "r_hip", "l_wrist", "r_wrist")]
        exposed = [H36M17.index(j) for j in ("head", "neck", "pelvis", "l_knee", "r_ankle")]
        assert rate[hidden].mean() > 0.08 and rate[exposed].max() == 0.0

    def test_outliers_are_gross(self, walk):
        cap = synthesize(walk, make_rig(4, target=capture_center(walk)),
                         only(outlier_fraction=0.2), seed=1)
        err = np.linalg.norm(cap.keypoints.xy - cap.clean2d, axis=-1)
        height = np.broadcast_to(cap.apparent_height_px[..., None], err.shape)
        assert np.all(err[cap.outlier] >= 0.1 * height[cap.outlier] - 1e-6)
        assert np.nanmax(err[~cap.outlier]) < 1e-9

    def test_swap_mirrors_the_whole_body(self, walk):
        cap = synthesize(walk, make_rig(3, target=capture_center(walk)), only(swap_fraction=0.5))
        perm = H36M17.flip_permutation
        t, c = np.argwhere(cap.swapped)[0]
        np.testing.assert_allclose(cap.keypoints.xy[t, c], cap.clean2d[t, c][perm])
        t, c = np.argwhere(~cap.swapped)[0]
        np.testing.assert_allclose(cap.keypoints.xy[t, c], cap.clean2d[t, c])

    def test_time_offsets(self, walk):
        cap = synthesize(walk, make_rig(4, target=capture_center(walk)),
                         only(max_time_offset_frames=3), seed=7)
        off = cap.time_offsets
        assert off[0] == 0 and np.abs(off).max() <= 3 and np.any(off != 0)
        c = int(np.flatnonzero(off)[0])
        t = np.arange(10, 20)
        expected = cap.rig.project(cap.points3d[t + off[c]])[c]
        np.testing.assert_allclose(cap.keypoints.xy[t, c], expected, atol=1e-9)

    def test_same_seed_same_arrays(self, walk):
        rig = make_rig(3, target=capture_center(walk))
        a, b, c = (synthesize(walk, rig, Corruption(max_time_offset_frames=2), seed=s)
                   for s in (11, 11, 12))
        assert np.array_equal(a.keypoints.data, b.keypoints.data, equal_nan=True)
        assert np.array_equal(a.outlier, b.outlier) and np.array_equal(a.swapped, b.swapped)
        assert not np.array_equal(a.keypoints.data, c.keypoints.data, equal_nan=True)

    def test_out_of_view_is_nan_with_zero_confidence(self, walk):
        """A small image cuts off parts of the body; a camera in the scene has some behind it."""
        motion = walk.to_h36m()
        center = capture_center(motion)
        small = make_rig(2, target=center, size=(500, 400), seed=0)
        inside = make_rig(1, radius=0.5, target=center, seed=0)[0].replace(name="inside")
        cap = synthesize(motion, CameraRig([*small, inside]), Corruption.none())
        kp = cap.keypoints
        out = ~cap.in_view
        assert 0.05 < out[:, :2].mean() < 0.95 and 0.05 < out[:, 2].mean() < 0.95
        assert np.isnan(kp.xy[out]).all() and np.all(kp.confidence[out] == 0)
        assert np.isnan(cap.clean2d[out]).all()
        depth = cap.rig.points_in_cameras(cap.points3d)[2, ..., 2]  # (T, J) in the inside camera
        assert np.all(out[:, 2][depth <= 0]) and (depth <= 0).any()
        size = np.broadcast_to(cap.rig.sizes[None, :, None], kp.xy.shape)
        xy, size = kp.xy[cap.in_view], size[cap.in_view]
        assert np.all((xy >= 0) & (xy <= size - 1))

    def test_cmu31_joint_set(self, walk):
        cap = synthesize(walk, make_rig(2, target=capture_center(walk)), joint_set="cmu31")
        assert cap.keypoints.joint_set == "cmu31" and cap.keypoints.data.shape[2] == 31
        with pytest.raises(ValueError, match="joint_set"):
            synthesize(walk, make_rig(2), joint_set="coco17")

    def test_from_shared_data(self, shared_data):
        cap = cmu_capture("02_01", n_cameras=2, data_dir=shared_data, fps=None)
        assert cap.keypoints.fps == 120 and cap.keypoints.n_frames == 343
