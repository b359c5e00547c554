"""The HTML report: the files it writes exist, its images are not blank, the page references each
one and shows the metrics; sections follow from the inputs given."""
from __future__ import annotations

import re

import numpy as np
import pytest
from matplotlib.image import imread
from scipy.spatial.transform import Rotation

from epiflow.datasets.synthetic import Corruption, cmu_capture
from epiflow.report import (ReportInputs, SessionView, label_weight_errors, render_html,
                            spearman_rho, write_report)

ALL_PNGS = {"cameras.png", "reprojections.png", "reprojection_errors.png", "skeletons.png",
            "training.png"}


@pytest.fixture(scope="module")
def capture():
    return cmu_capture("02_01", n_cameras=4, corruption=Corruption(noise_px=2.0), seed=1)


def _estimate(capture):
    """Cameras and labels as cameras-from-people give them: another world (scale, rotation,
    shift), with small errors."""
    s, R, t = 0.6, Rotation.from_rotvec([0.2, 0.5, -1.0]).as_matrix(), np.array([1.0, 2.0, 0.3])
    rng = np.random.default_rng(0)
    labels = s * (capture.points3d + rng.normal(0, 0.01, capture.points3d.shape)) @ R.T + t
    return capture.rig.transformed(s, R, t), labels


def _metrics_log(path):
    with open(path, "w") as f:
        f.write("step,epoch,train_loss,val_mpjpe\n")
        for s in range(60):
            f.write(f"{s},{s // 10},{1 / (1 + s)},{0.1 / (1 + s // 10) if s % 10 == 9 else ''}\n")
    return path


def _referenced(page) -> set[str]:
    return set(re.findall(r"<img src='([^']+)'", page.read_text()))


class TestWriteReport:
    def test_everything(self, capture, tmp_path):
        rig, labels = _estimate(capture)
        inputs = ReportInputs(
            title="synthetic <walk>", summary="4 cameras & a CMU walk", sessions=[SessionView(
                rig=rig, reference_rig=capture.rig, keypoints=capture.keypoints, pseudo3d=labels,
                truth3d=capture.points3d,
                predictions3d=capture.points3d - capture.points3d[:, :1])],
            metrics_csv=_metrics_log(tmp_path / "metrics.csv"),
            metrics={"cameras": {"rotation error (deg)": 0.123456, "cameras": 4},
                     "pseudo-labels": {"MPJPE (mm)": 12.3456, "status": "ok"}})
        page = write_report(inputs, tmp_path / "report")
        assert page == tmp_path / "report" / "index.html"
        assert _referenced(page) == ALL_PNGS
        for name in ALL_PNGS:
            img = imread(tmp_path / "report" / name)[..., :3]
            assert img.shape[0] > 200 and img.shape[1] > 300
            assert img.std() > 0.02, f"{name} looks blank"
        text = page.read_text()
        assert "synthetic &lt;walk&gt;" in text and "4 cameras &amp; a CMU walk" in text
        assert ">0.1235<" in text and ">12.35<" in text and ">4<" in text and ">ok<" in text

    def test_real_videos_without_truth(self, capture, tmp_path):
        rig, labels = _estimate(capture)
        page = write_report(ReportInputs(sessions=[SessionView(
            rig=rig, keypoints=capture.keypoints, pseudo3d=labels, predictions3d=labels)]),
            tmp_path / "r")
        assert _referenced(page) == ALL_PNGS - {"training.png"}
        assert "no ground truth" in page.read_text()
        assert not (tmp_path / "r" / "training.png").exists()

    def test_video_frames_under_the_reprojections(self, capture, tmp_path):
        rig, labels = _estimate(capture)
        asked = []

        def frames(f):
            asked.append(f)
            return [np.full((h, w, 3), 40, np.uint8) for w, h in capture.keypoints.image_size]
        write_report(ReportInputs(sessions=[SessionView(
            rig=rig, keypoints=capture.keypoints, pseudo3d=labels, images=frames, frame=7)]),
            tmp_path / "r")
        assert asked == [7]
        img = imread(tmp_path / "r" / "reprojections.png")[..., :3]
        dark = (img.mean(-1) < 0.2).mean()  # the dark frames fill the panels
        assert dark > 0.3

    def test_only_cameras_and_metrics(self, capture, tmp_path):
        page = write_report(ReportInputs(sessions=[SessionView(rig=capture.rig)],
                                         metrics={"m": {"a": 1.0}}), tmp_path / "r")
        assert _referenced(page) == {"cameras.png"}
        assert imread(tmp_path / "r" / "cameras.png")[..., :3].std() > 0.02

    def test_keypoints_of_another_joint_set_are_mapped(self, tmp_path):
        cap = cmu_capture("02_01", n_cameras=3, corruption=Corruption.none(), seed=2,
                          joint_set="cmu31")
        truth = cmu_capture("02_01", n_cameras=3, corruption=Corruption.none(), seed=2).points3d
        page = write_report(ReportInputs(sessions=[SessionView(
            rig=cap.rig, keypoints=cap.keypoints, pseudo3d=truth)]), tmp_path / "r")
        assert "reprojection_errors.png" in _referenced(page)
        with pytest.raises(ValueError, match="one joint set"):
            write_report(ReportInputs(sessions=[SessionView(
                rig=cap.rig, keypoints=cap.keypoints, pseudo3d=truth, joint_set="body25")]),
                tmp_path / "r2")

    def test_errors(self, capture, tmp_path):
        with pytest.raises(ValueError, match="nothing to report"):
            write_report(ReportInputs(), tmp_path / "r")
        rig, labels = _estimate(capture)
        with pytest.raises(ValueError, match="disagree"):
            write_report(ReportInputs(sessions=[SessionView(
                rig=rig, keypoints=capture.keypoints, pseudo3d=labels[:10])]), tmp_path / "r")
        with pytest.raises(ValueError, match="outside"):
            write_report(ReportInputs(sessions=[SessionView(
                rig=rig, keypoints=capture.keypoints, pseudo3d=labels, frame=10_000)]),
                tmp_path / "r")


class TestSeveralSessions:
    def test_every_session_is_drawn_under_its_name(self, capture, tmp_path):
        rig, labels = _estimate(capture)
        views = [SessionView(name=n, rig=rig, reference_rig=capture.rig,
                             keypoints=capture.keypoints, pseudo3d=labels,
                             truth3d=capture.points3d) for n in ("walk", "run", "jump")]
        page = write_report(ReportInputs(title="three", sessions=views), tmp_path / "r")
        per_session = {f"{stem}_{n}.png" for n in ("walk", "run", "jump") for stem in
                       ("cameras", "reprojections", "reprojection_errors", "skeletons")}
        assert _referenced(page) == per_session
        text = page.read_text()
        for n in ("walk", "run", "jump"):
            assert f"<h2>Camera layout: {n}</h2>" in text and f"<h2>3D skeletons: {n}</h2>" in text

    def test_weight_against_error(self, capture, tmp_path):
        """Weights that order the errors give a rho near -1 in the figure and its caption; the
        errors are measured after the one similarity that removes the labels' gauge."""
        rig, labels = _estimate(capture)  # labels 1 cm off (isotropic) in another world
        noise = np.random.default_rng(1).normal(0, 0.05, labels.shape) * \
            np.linspace(0, 1, labels.shape[1])[None, :, None]  # joint j: 5 cm x j / J
        noisy = labels + 0.6 * noise  # (the labels' world has scale 0.6)
        weights = np.broadcast_to(1 - np.linspace(0, 0.9, labels.shape[1]), labels.shape[:2])
        view = SessionView(rig=rig, pseudo3d=noisy, weights=weights, truth3d=capture.points3d)
        w, e = label_weight_errors(view)
        assert len(w) == labels.shape[0] * labels.shape[1] and 20 < np.median(e) < 80
        rho = spearman_rho(w, e)
        assert rho < -0.7
        page = write_report(ReportInputs(sessions=[view]), tmp_path / "r")
        assert "weight_vs_error.png" in _referenced(page)
        assert f"Spearman&#x27;s rho = {rho:.2f}" in page.read_text()
        assert imread(tmp_path / "r" / "weight_vs_error.png")[..., :3].std() > 0.02


class TestRenderHtml:
    def test_grid_table(self):
        text = render_html("t", "", [], {"per session": {"a": {"x (mm)": 1.5, "y": 2},
                                                         "b": {"y": 3}}})
        rows = re.findall(r"<tr>(.*?)</tr>", text)
        assert rows[0] == "<th></th><th>x (mm)</th><th>y</th>"
        assert rows[2] == '<th>b</th><td></td><td class="num">3</td>'  # missing cell left empty

    def test_nan_and_types(self):
        text = render_html("t", "", [], {"x": {"nan": float("nan"), "int": np.int64(3),
                                               "flag": True}})
        assert ">n/a<" in text and ">3<" in text and ">True<" in text
        assert "<img" not in text


def _has_colour(img: np.ndarray, hex_colour: str, share: float = 1e-4) -> bool:
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    return (np.abs(img - rgb).max(-1) < 0.08).mean() > share


def test_several_people_each_in_its_own_colour(capture, tmp_path):
    """Two people (the walk and a copy 1.5 m aside): the reprojections and the 3D skeletons
    draw person 4 in the first colour (blue) and person 9 in the second (orange)."""
    from epiflow.keypoints import Keypoints
    second = capture.points3d + [1.5, 0.0, 0.0]
    labels = np.stack([capture.points3d, second], 1)                       # (T, 2, J, 3)
    proj = np.moveaxis(capture.rig.project(second), 0, 1)                  # (T, C, J, 2)
    kp2 = np.concatenate([proj, np.ones(proj.shape[:-1] + (1,))], -1)
    kp = Keypoints(np.stack([capture.keypoints.data, kp2], 2), capture.keypoints.joint_set,
                   capture.keypoints.camera_names, capture.keypoints.image_size)
    page = write_report(ReportInputs(sessions=[SessionView(
        rig=capture.rig, keypoints=kp, pseudo3d=labels, person_ids=[4, 9],
        weights=np.ones(labels.shape[:3]))]), tmp_path / "r")
    assert _referenced(page) == {"cameras.png", "reprojections.png", "skeletons.png"}
    for name in ("reprojections.png", "skeletons.png"):
        img = imread(tmp_path / "r" / name)[..., :3]
        assert _has_colour(img, "#1f77b4") and _has_colour(img, "#ff7f0e"), name
    assert "people [4, 9], one colour each" in page.read_text()
    with pytest.raises(ValueError, match="N person_ids"):
        write_report(ReportInputs(sessions=[SessionView(pseudo3d=labels, person_ids=[4])]),
                     tmp_path / "bad")
