"""Readers on the command line: the caliscope csv and the Shelf folder are keypoint inputs of the
commands (one dispatch, epiflow.datasets.io.keypoints_kind), and every command that takes cameras
reads every calibration format load_rig reads: given a Qualisys .qca.txt, a caliscope config.toml
or a Shelf calibration.json, a command gives exactly what it gives with the same cameras written
as a camera TOML (and something else with other cameras, so the file is used). Real data from
../shared/data, cut small; skipped when absent."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from epiflow.calibration.camera import CameraRig
from epiflow.calibration.compare import compare_rigs
from epiflow.calibration.formats import load_rig, load_toml, save_toml
from epiflow.cli import main
from epiflow.datasets.io import keypoints_kind, load_keypoints
from epiflow.keypoints import save_npz

#: metres: the TOML copy's Rodrigues vectors change rotations by ~1e-15, which the robust
#: triangulation's iterations may grow to ~1e-7 m
SAME_M = 1e-6
CALISCOPE_CSV = Path("caliscope_4cam/recordings/recording_1/HOLISTIC/xy_HOLISTIC.csv")


def _as_toml(calibration: Path, out: Path, focal_scale: float = 1.0) -> Path:
    """The cameras of ``calibration`` (any format) written as a camera TOML, focal lengths times
    ``focal_scale``."""
    rig = load_rig(calibration)
    cams = []
    for c in rig:
        K = c.K.copy()
        K[:2, :2] *= focal_scale
        cams.append(c.replace(K=K))
    save_toml(CameraRig(cams), out)
    return out


def _points(path: Path) -> np.ndarray:
    with np.load(path) as z:
        return z["points3d"]


def test_which_kind_of_keypoints(shared_data, tmp_path):
    save_npz_path = tmp_path / "k.npz"
    save_npz_path.write_bytes(b"")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    assert keypoints_kind(shared_data / CALISCOPE_CSV) == "caliscope"
    assert keypoints_kind(shared_data / "shelf") == "shelf"
    assert keypoints_kind(shared_data / "pose2sim_demo" / "openpose_body25b_single_person") == \
        "openpose"
    assert keypoints_kind(save_npz_path) == "npz"
    assert keypoints_kind(tmp_path / "other.csv") is None
    assert keypoints_kind(shared_data / "caliscope_4cam" / "config.toml") is None


class TestCaliscopeCsv:
    def test_read_with_the_sessions_image_sizes(self, shared_data, small_real_inputs):
        kp = load_keypoints(shared_data / CALISCOPE_CSV, min_cameras=2)
        assert kp.data.shape == (267, 4, 33, 3) and kp.joint_set == "blazepose33"
        assert kp.camera_names == ("cam_0", "cam_1", "cam_2", "cam_3")
        assert kp.image_size.tolist() == [[1280, 720]] * 4  # from ../../../config.toml
        assert 25 < kp.fps < 35  # from frame_time (30.4 fps)
        alone = small_real_inputs("caliscope", 10)
        assert load_keypoints(alone).image_size.max() == 0  # no config.toml above it: unknown
        assert load_keypoints(alone, image_size=(640, 480)).image_size.tolist() == \
            [[640, 480]] * 4
        given = load_keypoints(alone, calibration=shared_data / "caliscope_4cam" / "config.toml")
        assert given.n_frames == 10 and given.image_size.tolist() == [[1280, 720]] * 4
        with pytest.raises(ValueError, match="blazepose33.*'body25' was asked for"):
            load_keypoints(alone, joint_set="body25")

    def test_triangulate_matches_caliscopes_own_3d(self, shared_data, small_real_inputs,
                                                   tmp_path, capsys):
        from epiflow.datasets.caliscope import read_caliscope_xyz
        T = 60
        csv = small_real_inputs("caliscope", T)
        config = shared_data / "caliscope_4cam" / "config.toml"
        runs = {"config": config, "toml": _as_toml(config, tmp_path / "same.toml"),
                "longer focal": _as_toml(config, tmp_path / "f.toml", focal_scale=1.1)}
        points = {}
        for name, cameras in runs.items():
            out = tmp_path / f"{name}.npz"
            assert main(["triangulate", "--keypoints", str(csv), "--cameras", str(cameras),
                         "--out", str(out)]) == 0, capsys.readouterr().err
            points[name] = _points(out)
        np.testing.assert_allclose(points["config"], points["toml"], rtol=0, atol=SAME_M)
        ref = read_caliscope_xyz(shared_data / CALISCOPE_CSV.with_name("xyz_HOLISTIC.csv"), T)
        gap = np.linalg.norm(points["config"] - ref, axis=-1)
        assert np.isfinite(gap).sum() > 1000
        assert np.nanmedian(gap) < 0.025, np.nanmedian(gap)  # 12 mm on the whole clip
        other = np.linalg.norm(points["longer focal"] - ref, axis=-1)
        assert np.nanmedian(other) > 2 * np.nanmedian(gap)

    def test_calibrate_reads_it(self, shared_data, tmp_path, capsys):
        """The person of this capture hardly moves: calibrate refuses, naming each camera of
        the csv with how far it saw the person move (so the csv was read and checked)."""
        out = tmp_path / "c.toml"
        code = main(["calibrate", "--keypoints", str(shared_data / CALISCOPE_CSV),
                     "--intrinsics", str(shared_data / "caliscope_4cam" / "config.toml"),
                     "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and not out.exists(), err
        assert all(f"cam_{p} (0.0" in err for p in range(4)), err
        assert "not a keypoints source" not in err and "Traceback" not in err


class TestShelfFolder:
    def test_triangulate_with_its_calibration_or_the_same_as_toml(self, small_real_inputs,
                                                                  tmp_path, capsys):
        shelf = small_real_inputs("shelf", 15)
        runs = {"json": shelf / "calibration.json",
                "toml": _as_toml(shelf / "calibration.json", tmp_path / "same.toml")}
        points = {}
        for name, cameras in runs.items():
            out = tmp_path / f"{name}.npz"
            assert main(["triangulate", "--keypoints", str(shelf), "--cameras", str(cameras),
                         "--out", str(out)]) == 0, capsys.readouterr().err
            points[name] = _points(out)
            with np.load(out) as z:
                assert z["camera_names"].tolist() == ["0", "1", "2", "3", "4"]
                px = z["camera_reproj_px"]
        np.testing.assert_allclose(points["json"], points["toml"], rtol=0, atol=SAME_M)
        assert points["json"].shape[0] == 15
        labelled = np.isfinite(points["json"]).all(-1).any(-1).sum(0)   # frames per person
        assert (labelled >= 10).sum() >= 2, labelled  # Shelf shows 2-4 people at a time
        assert np.nanmedian(px) < 8.0, px


def test_calibrate_takes_qualisys_intrinsics(shared_data, tmp_path):
    """--intrinsics Calib.qca.txt: the lab's K kept, the cameras as close to the lab as with
    Calib_qualisys.toml (tests/calibration/test_calibrate_cli.py: 1.59 deg, 1.08 deg)."""
    demo = shared_data / "pose2sim_demo"
    out = tmp_path / "cameras.toml"
    assert main(["calibrate", "--keypoints", str(demo / "openpose_body25b_single_person"),
                 "--joint-set", "body25b", "--intrinsics", str(demo / "calibration" /
                                                              "Calib.qca.txt"),
                 "--out", str(out), "--set", "max_frames=50", "--set", "rounds=2"]) == 0
    rig, lab = load_toml(out), load_rig(demo / "calibration" / "Calib.qca.txt")
    assert rig.names == ["cam01", "cam02", "cam03", "cam04"]
    np.testing.assert_allclose(rig.K, lab.K)
    s = compare_rigs(rig, lab)["summary"]
    assert s["rotation_deg_max"] < 3.0 and s["baseline_deg_max"] < 2.2, s


@pytest.fixture(scope="module")
def lifter(tmp_path_factory):
    """An untrained lifter's checkpoint and 12 frames of 2 cameras of the CMU walk."""
    from epiflow.datasets.synthetic import Corruption, cmu_capture
    from epiflow.models.checkpoint import save_checkpoint
    from epiflow.models.config import ExperimentConfig, build_model
    cfg = ExperimentConfig()
    path = tmp_path_factory.mktemp("model") / "checkpoint.pt"
    save_checkpoint(path, build_model(cfg.model, 17), cfg)
    kp = cmu_capture("02_01", corruption=Corruption(noise_px=1.0), seed=0).keypoints
    return path, kp.frames(0, 12)


@pytest.mark.parametrize("calibration", ["pose2sim_demo/calibration/Calib.qca.txt",
                                         "caliscope_4cam/config.toml", "shelf/calibration.json"])
def test_predict_takes_any_calibration(calibration, lifter, shared_data, tmp_path, capsys):
    checkpoint, kp = lifter
    rig = load_rig(shared_data / calibration)
    kp = type(kp)(kp.data[:, :2], kp.joint_set, tuple(rig.names[:2]), rig.sizes[:2], kp.fps)
    save_npz(kp, tmp_path / "kp.npz")
    runs = {"file": shared_data / calibration,
            "toml": _as_toml(shared_data / calibration, tmp_path / "same.toml")}
    if calibration.endswith(".qca.txt"):  # the camera's K is used: another K, other poses
        runs["longer focal"] = _as_toml(shared_data / calibration, tmp_path / "f.toml", 1.5)
    points = {}
    for name, cameras in runs.items():
        out = tmp_path / f"{name}.npz"
        assert main(["predict", str(checkpoint), "--keypoints", str(tmp_path / "kp.npz"),
                     "--camera", rig.names[1], "--calibration", str(cameras), "--out", str(out),
                     "--no-plot"]) == 0, capsys.readouterr().err
        points[name] = _points(out)
    np.testing.assert_allclose(points["file"], points["toml"], rtol=0, atol=SAME_M)
    if "longer focal" in points:
        assert np.abs(points["file"] - points["longer focal"]).max() > 1e-4
