"""``epiflow triangulate`` on a synthetic capture and on the Pose2Sim demo's OpenPose output."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from epiflow.calibration.formats import save_toml
from epiflow.cli import main
from epiflow.keypoints import save_npz
from epiflow.datasets.synthetic import Corruption, cmu_capture


def _write_capture(tmp_path, names=None):
    cap = cmu_capture("02_01", corruption=Corruption(noise_px=2.0), seed=3)
    kp = cap.keypoints if names is None else replace(cap.keypoints, camera_names=names)
    save_npz(kp, tmp_path / "kp.npz")
    save_toml(cap.rig, tmp_path / "cameras.toml")
    return cap


def test_writes_the_poses_npz(tmp_path, capsys):
    # the keypoints call the cameras cam1.. and the calibration cam_01..: matched by name
    cap = _write_capture(tmp_path, names=("cam1", "cam2", "cam3", "cam4"))
    code = main(["triangulate", "--keypoints", str(tmp_path / "kp.npz"), "--cameras",
                 str(tmp_path / "cameras.toml"), "--out", str(tmp_path / "poses.npz")])
    assert code == 0 and "placed" in capsys.readouterr().out
    with np.load(tmp_path / "poses.npz") as z:
        T, J = cap.points3d.shape[:2]
        assert z["points3d"].shape == (T, J, 3) and z["weight"].shape == (T, J)
        assert z["reproj_error"].shape == (T, J) and z["views"].shape == (T, 4, J)
        assert list(z["joint_names"][:2]) == ["pelvis", "r_hip"]
        err = np.linalg.norm(z["points3d"] - cap.points3d, axis=-1)
        assert np.nanmean(err) < 0.015 and np.isfinite(err).mean() > 0.99
        assert np.nanmedian(z["reproj_error"]) < 4.0


def test_camera_mismatch_is_a_clean_error(tmp_path, capsys):
    _write_capture(tmp_path, names=("cam_01", "cam_02", "cam_03", "top"))
    code = main(["triangulate", "--keypoints", str(tmp_path / "kp.npz"), "--cameras",
                 str(tmp_path / "cameras.toml"), "--out", str(tmp_path / "poses.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "top" in err and "cam_04" in err
    assert not (tmp_path / "poses.npz").exists()


def test_pose2sim_demo_openpose(shared_data, tmp_path):
    demo = shared_data / "pose2sim_demo"
    code = main(["triangulate", "--keypoints", str(demo / "openpose_body25b_single_person"),
                 "--joint-set", "body25b", "--cameras",
                 str(demo / "calibration" / "Calib_qualisys.toml"), "--out",
                 str(tmp_path / "poses.npz")])
    assert code == 0
    with np.load(tmp_path / "poses.npz") as z:
        assert z["points3d"].shape == (100, 25, 3)
        assert np.isfinite(z["points3d"]).all(-1).mean() > 0.98
        assert np.nanmedian(z["reproj_error"]) < 10.0  # lab cameras, 1088 x 1920 images
        # the person stands on the lab floor (Z up): feet near z = 0, head ~1.6-1.9 m up
        heel = list(z["joint_names"]).index("LHeel")
        top = list(z["joint_names"]).index("HeadTop")
        assert abs(np.nanmedian(z["points3d"][:, heel, 2])) < 0.15
        assert 1.5 < np.nanmedian(z["points3d"][:, top, 2]) < 2.0


def test_warnings_are_printed_one_line_each(tmp_path, capsys):
    """Image sizes that differ from the calibration's (1080 vs 1088 rows, as H.264 pads) and a
    camera whose 2D disagrees with the others (shifted 80 px: dropped from most labels) are
    printed to stderr, naming the camera, its share and what to do."""
    cap = cmu_capture("02_01", corruption=Corruption(noise_px=2.0), seed=3)
    data = cap.keypoints.data.copy()
    data[:, 2, :, 0] += 80.0  # cam_03 off by 80 px: beyond the 20 px gate
    size = cap.keypoints.image_size.copy()
    size[0, 1] -= 8  # cam_01's images 8 rows shorter than its calibration says
    save_npz(replace(cap.keypoints, data=data, image_size=size), tmp_path / "kp.npz")
    save_toml(cap.rig, tmp_path / "cameras.toml")
    code = main(["triangulate", "--keypoints", str(tmp_path / "kp.npz"), "--cameras",
                 str(tmp_path / "cameras.toml"), "--out", str(tmp_path / "poses.npz")])
    assert code == 0
    lines = capsys.readouterr().err.splitlines()
    prefix = f"epiflow triangulate: warning: {tmp_path / 'kp.npz'}: "
    assert len(lines) == 2 and all(line.startswith(prefix) for line in lines)
    w, h = cap.rig.sizes[0]
    assert f"cam_01: the calibration is for {w}x{h} images, the keypoints' are {w}x{h - 8}" \
        in lines[0] and "give a calibration made at" in lines[0]
    share = int(lines[1].split("used in only ")[1].split("%")[0])
    assert lines[1].startswith(prefix + "camera cam_03: used in only") and share < 30  # 15
    assert "check its calibration" in lines[1]


@pytest.mark.parametrize("option, value, expected", [
    ("--min-confidence", "1.5", "a fraction in [0, 1], got '1.5'"),
    ("--min-confidence", "-0.1", "a fraction in [0, 1], got '-0.1'"),
    ("--fps", "0", "a number > 0, got '0'"),
    ("--cutoff-hz", "nan", "a number > 0, got 'nan'"),
    ("--gate-px", "0", "a number > 0, got '0'"),
    ("--fill-gaps", "-1", "an integer >= 0, got '-1'"),
    ("--fill-gaps", "2.5", "an integer >= 0, got '2.5'")])
def test_numbers_are_checked_when_parsed(tmp_path, capsys, option, value, expected):
    """A number out of range is refused naming the option, before the keypoints are read (was:
    --min-confidence 1.5 blamed kp.npz for "no joint was seen by two cameras")."""
    with pytest.raises(SystemExit) as exit_:
        main(["triangulate", "--keypoints", str(tmp_path / "kp.npz"), "--cameras",
              str(tmp_path / "cameras.toml"), "--out", str(tmp_path / "p.npz"), option, value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"argument {option}: expected {expected}" in err, err
    assert "kp.npz" not in err and not any(tmp_path.iterdir())
