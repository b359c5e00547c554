"""Plots: geometry they rely on, what they draw (limits, orientation, numbers in legends) and that
the PNGs they write are not blank."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from matplotlib.image import imread
from scipy.spatial.transform import Rotation

from epiflow import viz
from epiflow.calibration.camera import CameraRig
from epiflow.calibration.formats import load_toml
from epiflow.datasets.synthetic import Corruption, cmu_capture, make_rig


def png_std(path) -> float:
    """Pixel standard deviation of a PNG (RGB in [0, 1]); ~0 for a blank image."""
    return float(imread(path)[..., :3].std())


@pytest.fixture(scope="module")
def capture():
    return cmu_capture("02_01", n_cameras=4, corruption=Corruption(noise_px=2.0), seed=3)


GAUGE = (0.37, Rotation.from_rotvec([0.4, -0.3, 1.2]).as_matrix(), np.array([2.0, -1.0, 0.5]))


def _gauge_moved(rig: CameraRig) -> CameraRig:
    """The same rig in another world: scaled, rotated, shifted (what cameras from people give)."""
    return rig.transformed(*GAUGE)


def _equal_scale(ax) -> float:
    """Largest relative difference between the axis spans and the 3D box's shape (0 = equal)."""
    spans = np.array([np.ptp(ax.get_xlim()), np.ptp(ax.get_ylim()), np.ptp(ax.get_zlim())])
    box = np.asarray(ax.get_box_aspect(), float)
    ratio = (spans / spans.max()) / (box / box.max())
    return float(np.abs(ratio - 1).max())


class TestSimilarityFromPoints:
    def test_recovers_a_known_similarity(self):
        rng = np.random.default_rng(0)
        src = rng.normal(size=(30, 3))
        s, R, t = GAUGE
        dst = s * src @ R.T + t
        s2, R2, t2 = viz.similarity_from_points(src, dst)
        assert abs(s2 - s) < 1e-10 and np.abs(R2 - R).max() < 1e-10 and np.abs(t2 - t).max() < 1e-10

    def test_leaves_out_nan_rows(self):
        rng = np.random.default_rng(1)
        src = rng.normal(size=(10, 3))
        dst = 2.0 * src + 1.0
        src[3] = np.nan
        dst[7, 1] = np.nan
        s, R, t = viz.similarity_from_points(src, dst)
        assert abs(s - 2.0) < 1e-10 and np.abs(R - np.eye(3)).max() < 1e-10

    def test_errors(self):
        with pytest.raises(ValueError, match=r"\(N, 3\)"):
            viz.similarity_from_points(np.zeros((5, 3)), np.zeros((4, 3)))
        with pytest.raises(ValueError, match=">= 3 finite"):
            viz.similarity_from_points(np.ones((2, 3)), np.ones((2, 3)))


class TestRigAlignment:
    def test_undoes_the_gauge(self):
        true = make_rig(4, seed=2)
        moved = _gauge_moved(true)
        aligned = moved.transformed(*viz.rig_alignment(moved, true))
        assert np.abs(aligned.centers - true.centers).max() < 1e-9
        assert np.abs(aligned.R - true.R).max() < 1e-9

    def test_two_cameras_suffice(self):
        true = make_rig(2, seed=5)
        aligned = _gauge_moved(true).transformed(*viz.rig_alignment(_gauge_moved(true), true))
        assert np.abs(aligned.centers - true.centers).max() < 1e-9

    def test_camera_count_mismatch(self):
        with pytest.raises(ValueError, match="same cameras"):
            viz.rig_alignment(make_rig(3), make_rig(4))


class TestCameraFrustum:
    def test_corners_project_onto_the_image_corners_in_front(self):
        rig = make_rig(3, size=(1280, 720), seed=1)
        for c, cam in enumerate(rig):
            f = viz.camera_frustum(cam, depth=0.7)
            assert np.abs(f[0] - cam.center).max() < 1e-12
            uv = rig.project(f[1:])[c]
            w, h = cam.size
            assert np.abs(uv - [[0, 0], [w, 0], [w, h], [0, h]]).max() < 1e-6
            depth = rig.points_in_cameras(f[1:])[c][:, 2]
            assert np.allclose(depth, 0.7)  # in front of the camera: the pyramid opens forward


class TestCameraLayout:
    def test_estimate_against_truth(self, capture, tmp_path):
        est = _gauge_moved(capture.rig)
        labels = GAUGE[0] * capture.points3d @ GAUGE[1].T + GAUGE[2]
        fig = viz.plot_camera_layout(est, capture.rig, points3d=labels,
                                     reference_points3d=capture.points3d)
        ax = fig.axes[0]
        assert _equal_scale(ax) < 1e-6
        lo = np.array([ax.get_xlim()[0], ax.get_ylim()[0], ax.get_zlim()[0]])
        hi = np.array([ax.get_xlim()[1], ax.get_ylim()[1], ax.get_zlim()[1]])
        inside = np.concatenate([capture.rig.centers, capture.points3d.reshape(-1, 3)])
        assert ((inside > lo) & (inside < hi)).all()  # drawn in the reference world, all in view
        assert png_std(viz.save_png(fig, tmp_path / "layout.png")) > 0.02

    def test_several_people_each_in_its_own_colour(self, capture):
        """(T, N, J, 3) labels with their ids: each person's path and skeleton in the colour
        the report's other figures give them (the demo drew two people as one black one)."""
        two = np.stack([capture.points3d, capture.points3d + [1.5, 0.0, 0.0]], 1)
        fig = viz.plot_camera_layout(capture.rig, points3d=two, person_ids=[4, 9])
        lines = fig.axes[0].get_lines()
        paths = {ln.get_label(): ln for ln in lines if ln.get_label().startswith("person")}
        assert sorted(paths) == ["person 4: path, skeleton at the middle frame",
                                 "person 9: path, skeleton at the middle frame"]
        colours = [paths[f"person {i}: path, skeleton at the middle frame"].get_color()
                   for i in (4, 9)]
        assert colours == list(viz.CAMERA_COLORS[:2])
        x = sorted(np.nanmean(ln.get_xdata()) for ln in paths.values())
        assert x[1] - x[0] > 1.0                    # two paths 1.5 m apart, not one mixed
        assert not [ln for ln in lines if ln.get_color() == "black"]

    def test_true_cameras_show_under_an_exact_estimate(self, capture):
        """Each true camera is drawn wider than the estimate over it (a light halo), so an
        estimate on the truth leaves the truth visible."""
        fig = viz.plot_camera_layout(_gauge_moved(capture.rig), capture.rig)
        lines = [ln for ln in fig.axes[0].get_lines() if len(ln.get_xdata())]
        true = [ln for ln in lines if ln.get_color() == viz.TRUE_CAMERA_COLOR]
        estimated = [ln for ln in lines if ln.get_color() != viz.TRUE_CAMERA_COLOR]
        assert len(true) == len(estimated) == 6 * len(capture.rig)  # 4 rays, outline, top edge
        assert min(ln.get_linewidth() for ln in true) > max(ln.get_linewidth() for ln in estimated)
        assert all(ln.get_linestyle() == "-" for ln in true)  # no dashes to hide behind the estimate

    def test_real_lab_calibration(self, shared_data, tmp_path):
        rig = load_toml(shared_data / "pose2sim_demo/calibration/Calib_qualisys.toml")
        fig = viz.plot_camera_layout(rig)
        ax = fig.axes[0]
        assert _equal_scale(ax) < 1e-6
        assert np.ptp(ax.get_xlim()) > np.ptp(rig.centers[:, 0])  # every camera within the box
        assert png_std(viz.save_png(fig, tmp_path / "lab.png")) > 0.02


class TestReprojections:
    def test_panels_in_image_coordinates(self, capture, tmp_path):
        kp, f = capture.keypoints, 10
        rep = capture.rig.project(capture.points3d[f])
        fig = viz.plot_reprojections(kp.data[f], rep, kp.image_size, kp.camera_names)
        assert len(fig.axes) == 4
        for ax, (w, h) in zip(fig.axes, kp.image_size):
            assert ax.get_xlim() == (0, w) and ax.get_ylim() == (h, 0)  # y down, whole image
        assert png_std(viz.save_png(fig, tmp_path / "reproj.png")) > 0.02

    def test_crop_holds_the_person(self, capture):
        kp, f = capture.keypoints, 10
        rep = capture.rig.project(capture.points3d[f])
        fig = viz.plot_reprojections(kp.data[f], rep, kp.image_size, kp.camera_names, crop=True)
        for c, ax in enumerate(fig.axes):
            pts = np.concatenate([kp.xy[f, c], rep[c]])
            pts = pts[np.isfinite(pts).all(1)]
            (x0, x1), (y1, y0) = ax.get_xlim(), ax.get_ylim()
            assert y1 > y0 and x0 < pts[:, 0].min() and pts[:, 0].max() < x1
            assert y0 < pts[:, 1].min() and pts[:, 1].max() < y1
            assert x1 - x0 < 0.5 * kp.image_size[c, 0]  # zoomed in

    def test_shape_mismatch(self, capture):
        kp = capture.keypoints
        with pytest.raises(ValueError, match="reprojected must match"):
            viz.plot_reprojections(kp.data[0], np.zeros((4, 5, 2)), kp.image_size,
                                   kp.camera_names)
        with pytest.raises(ValueError, match="C=3"):
            viz.plot_reprojections(kp.data[0], None, kp.image_size, kp.camera_names[:3])


class TestPeopleReprojections:
    def test_each_person_in_its_colour_with_its_id(self, capture, tmp_path):
        from matplotlib.colors import to_rgba
        kp, f = capture.keypoints, 10
        obs = np.stack([kp.data[f], kp.data[f] + [300, 0, 0]], axis=1)    # (C, 2, J, 3)
        rep = np.stack([capture.rig.project(capture.points3d[f])] * 2, axis=1)
        rep[:, 1] += 300
        fig = viz.plot_people_reprojections(obs, rep, kp.image_size, kp.camera_names, [7, 9])
        assert len(fig.axes) == 4
        for ax, (w, h) in zip(fig.axes, kp.image_size):
            assert ax.get_xlim() == (0, w) and ax.get_ylim() == (h, 0)
            assert sorted(t.get_text() for t in ax.texts) == ["7", "9"]
            colours = {tuple(c.get_colors()[0]) for c in ax.collections}
            assert colours == {to_rgba("tab:blue"), to_rgba("tab:orange")}
        assert png_std(viz.save_png(fig, tmp_path / "people.png")) > 0.02

    def test_shape_mismatch(self, capture):
        kp = capture.keypoints
        obs = np.zeros((4, 2, 17, 3))
        with pytest.raises(ValueError, match="N=3"):
            viz.plot_people_reprojections(obs, obs[..., :2], kp.image_size, kp.camera_names,
                                          [0, 1, 2])


class TestReprojectionErrors:
    def test_lines_are_per_frame_medians(self, tmp_path):
        rng = np.random.default_rng(0)
        err = rng.gamma(2.0, 2.0, size=(40, 3, 17)) * np.array([1.0, 2.0, 4.0])[:, None]
        err[5, 1] = np.nan  # camera 1 sees nothing in frame 5
        fig = viz.plot_reprojection_errors(err, ["a", "b", "c"], fps=20.0)
        ax = fig.axes[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the all-NaN frame
            expected = np.nanmedian(err, axis=2)
        assert np.isnan(expected[5, 1])
        for c, line in enumerate(ax.get_lines()):
            assert np.allclose(line.get_ydata(), expected[:, c], equal_nan=True)
            assert f"{np.nanmedian(err[:, c]):.2f} px" in line.get_label()
        assert np.isclose(ax.get_lines()[0].get_xdata()[-1], 39 / 20.0)  # seconds
        assert png_std(viz.save_png(fig, tmp_path / "err.png")) > 0.02

    def test_shape_error(self):
        with pytest.raises(ValueError, match="C=2"):
            viz.plot_reprojection_errors(np.zeros((10, 3)), ["a", "b"])


class TestSkeletons3D:
    def test_z_up_equal_scale_all_in_view(self, capture, tmp_path):
        truth = capture.points3d[[0, 20, 40]]
        rng = np.random.default_rng(0)
        est = {"pseudo-labels": truth + rng.normal(0, 0.02, truth.shape),
               "model": truth + rng.normal(0, 0.05, truth.shape)}
        fig = viz.plot_skeletons_3d(est, truth=truth, frame_labels=["a", "b", "c"])
        assert len(fig.axes) == 6
        for k, ax in enumerate(fig.axes):
            assert _equal_scale(ax) < 1e-6
            pts = np.concatenate([truth[k % 3], list(est.values())[k // 3][k % 3]])
            for lim, axis in zip((ax.get_xlim(), ax.get_ylim(), ax.get_zlim()), range(3)):
                assert lim[0] < pts[:, axis].min() and pts[:, axis].max() < lim[1]
            # the z axis is vertical in the picture: a standing person is taller than wide
            assert np.ptp(ax.get_zlim()) > np.ptp(ax.get_xlim())
        assert png_std(viz.save_png(fig, tmp_path / "skel.png")) > 0.02

    def test_missing_points_are_left_out(self, capture, tmp_path):
        pts = capture.points3d[:3].copy()
        pts[1] = np.nan  # a frame without any label
        pts[2, :8] = np.nan
        fig = viz.plot_skeletons_3d({"labels": pts})
        assert png_std(viz.save_png(fig, tmp_path / "skel.png")) > 0.02
        layout = viz.plot_camera_layout(capture.rig, points3d=pts)
        assert np.ptp(layout.axes[0].get_zlim()) > 1.0

    def test_shape_errors(self):
        with pytest.raises(ValueError, match="rows is empty"):
            viz.plot_skeletons_3d({})
        with pytest.raises(ValueError, match="truth must match"):
            viz.plot_skeletons_3d({"a": np.zeros((2, 17, 3))}, truth=np.zeros((3, 17, 3)))


class TestTrainingCurves:
    def _log(self, path):
        steps = np.arange(100)
        with open(path, "w") as f:
            f.write("step,epoch,train_loss,val_mpjpe,note\n")
            for s in steps:
                val = f"{0.2 / (1 + s // 10):.6f}" if s % 10 == 9 else ""
                f.write(f"{s},{s // 10},{1.0 / (1 + s):.6f},{val},ok\n")
        return path

    def test_read_metrics_csv(self, tmp_path):
        m = viz.read_metrics_csv(self._log(tmp_path / "m.csv"))
        assert set(m) == {"step", "epoch", "train_loss", "val_mpjpe"}  # text column left out
        assert np.isfinite(m["val_mpjpe"]).sum() == 10
        assert m["train_loss"][99] == pytest.approx(0.01)

    def test_panels(self, tmp_path):
        fig = viz.plot_training_curves(self._log(tmp_path / "m.csv"))
        loss_ax, val_ax = fig.axes
        assert loss_ax.get_yscale() == "log"  # the loss spans two decades
        assert val_ax.get_yscale() == "linear"
        assert len(val_ax.get_lines()[0].get_xdata()) == 10  # only the logged validation steps
        assert png_std(viz.save_png(fig, tmp_path / "train.png")) > 0.02

    def test_equal_curves_are_drawn_once(self):
        """The label term that is the whole loss is one curve with both names, not two curves
        drawn on top of each other."""
        loss = 1.0 / (1 + np.arange(20.0))
        fig = viz.plot_training_curves({"step": np.arange(20.0), "train_loss": loss,
                                        "train_label": loss.copy(), "train_bone": 0.1 * loss})
        labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
        assert labels == ["train_loss = train_label", "train_bone"]

    def test_errors(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="metrics log"):
            viz.read_metrics_csv(tmp_path / "none.csv")
        with pytest.raises(ValueError, match="no metric columns"):
            viz.plot_training_curves({"step": np.arange(3.0)})


class TestPrediction:
    def test_camera_frame_shown_z_up(self):
        # camera frame: x right, y down, z forward -> display (x, z, -y): up is +Z, depth is +Y
        pts = np.array([[1.0, -2.0, 3.0]])
        np.testing.assert_array_equal(viz.camera_to_display(pts), [[1.0, 3.0, 2.0]])

    def test_prediction_draws_evenly_spaced_frames(self, tmp_path):
        points = np.zeros((10, 17, 3)) + np.linspace(0, 1, 17)[None, :, None]
        fig = viz.plot_prediction(points, n_frames=4, title="t")
        titles = [ax.get_title().removeprefix("prediction: ") for ax in fig.axes]
        assert titles == ["frame 0", "frame 3", "frame 6", "frame 9"]
        assert viz.save_png(fig, tmp_path / "p.png").stat().st_size > 1000


class TestWeightVsError:
    def test_medians_per_bin_follow_the_errors(self, tmp_path):
        rng = np.random.default_rng(0)
        w = rng.uniform(0, 1, 2000)
        e = 50 * (1.05 - w) * rng.lognormal(0, 0.2, 2000)  # mm, falling with the weight
        fig = viz.plot_weight_vs_error(w, e, rho=-0.9, bins=5)
        ax = fig.axes[0]
        median = next(ln for ln in ax.get_lines() if ln.get_label() == "median per weight bin")
        ys = median.get_ydata()
        assert len(ys) == 5 and np.all(np.diff(ys) < 0)  # the error falls bin after bin
        assert ax.get_yscale() == "log" and "rho = -0.90" in ax.get_title()
        assert png_std(viz.save_png(fig, tmp_path / "w.png")) > 0.02
        with pytest.raises(ValueError, match="two \\(N,\\) arrays"):
            viz.plot_weight_vs_error(w, e[:10])
