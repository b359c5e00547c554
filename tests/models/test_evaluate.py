"""Evaluation and prediction: metrics on known answers, and the commands end to end."""
import json

import numpy as np
import pytest

from epiflow.calibration.formats import save_toml
from epiflow.cli import main
from epiflow.keypoints import Keypoints, save_npz
from epiflow.models import train as T
from epiflow.models.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from epiflow.models.evaluate import pose_metrics, predict_sessions
from epiflow.models.checkpoint import load_model
from epiflow.models.data import prepare_session
from epiflow.models.lifters import MLPConfig
from epiflow.models.predict import default_camera, predict_keypoints


def test_pose_metrics_on_known_answers(oracle):
    s = oracle("02_04", seed=0)
    gt = prepare_session(s, "gt").y[:, 0]
    exact = pose_metrics(gt, gt)
    assert exact["mpjpe_mm"] < 1e-6 and exact["pss50"] == 1.0 and exact["pck3d"] == 1.0
    big = pose_metrics(1.1 * gt, gt)
    assert big["mpjpe_mm"] > 10 and big["n_mpjpe_mm"] < 1e-3 and big["p_mpjpe_mm"] < 1e-3
    gt_nan = gt.copy()
    gt_nan[:7, 3] = np.nan
    assert pose_metrics(gt, gt_nan)["n_poses"] == len(gt) - 7


@pytest.fixture(scope="module")
def trained(tmp_path_factory, make_store):
    """A small MLP trained on two clips, its store (with ground truth) and the out folder."""
    root = tmp_path_factory.mktemp("run")
    make_store(root / "s.zarr", {"02_01": 0, "02_04": 1, "02_03": 2})
    cfg = ExperimentConfig(
        data=DataConfig(store=str(root / "s.zarr"), val_sessions=("02_03",)),
        model=ModelConfig(mlp=MLPConfig(hidden=64, blocks=1, dropout=0.0)),
        train=TrainConfig(epochs=4, batch_size=64, lr=3e-3, progress=False, threads=1))
    T.train(cfg, root / "out")
    return root


def test_evaluate_command_writes_per_clip_json(trained, capsys):
    out = trained / "metrics.json"
    assert main(["evaluate", str(trained / "out" / "checkpoint.pt"), "--store",
                 str(trained / "s.zarr"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["clips"]) == {"02_01", "02_03", "02_04"}
    overall = result["overall"]
    assert overall["n_poses"] == 4 * (86 + 44 + 121)
    assert overall["p_mpjpe_mm"] < overall["n_mpjpe_mm"] <= overall["mpjpe_mm"] * 1.05
    assert 20 < overall["mpjpe_mm"] < 300 and 0 <= overall["pss50"] <= 1
    assert "MPJPE" in capsys.readouterr().out


def test_predict_from_keypoints_matches_evaluation(trained, tmp_path, oracle):
    session = oracle("02_03", 2)
    kp = Keypoints(session.keypoints2d, "h36m17", tuple(session.rig.names), session.rig.sizes, 30.0)
    save_npz(kp, tmp_path / "kp.npz")
    save_toml(session.rig, tmp_path / "cams.toml")
    ckpt = trained / "out" / "checkpoint.pt"
    assert main(["predict", str(ckpt), "--keypoints", str(tmp_path / "kp.npz"), "--camera",
                 "cam_02", "--calibration", str(tmp_path / "cams.toml"), "--out",
                 str(tmp_path / "pred.npz"), "--no-adapt"]) == 0
    with np.load(tmp_path / "pred.npz") as z:
        points = z["points3d"]
        assert str(z["joint_set"]) == "h36m17" and points.shape == (44, 17, 3)
    assert (tmp_path / "pred.png").stat().st_size > 10_000
    via_eval = predict_sessions(load_model(ckpt), [prepare_session(session, None)])[0][:, 1]
    np.testing.assert_allclose(points, via_eval, atol=1e-4)
    # without a calibration a centred pinhole is assumed: close, not equal
    model = load_model(ckpt)
    guess = predict_keypoints(model, session.keypoints2d[:, 1], "h36m17",
                              default_camera("cam_02", tuple(session.rig.sizes[1])))
    assert np.nanmean(np.linalg.norm(guess - points, axis=-1)) < 0.05


def test_predict_needs_a_camera(trained, tmp_path, capsys, oracle):
    s = oracle("02_03", 2)
    kp = Keypoints(s.keypoints2d, "h36m17", tuple(s.rig.names), s.rig.sizes)
    save_npz(kp, tmp_path / "k.npz")
    ckpt = str(trained / "out" / "checkpoint.pt")
    assert main(["predict", ckpt, "--keypoints", str(tmp_path / "k.npz"), "--out",
                 str(tmp_path / "p.npz")]) == 2
    assert main(["predict", ckpt, "--keypoints", str(tmp_path / "k.npz"), "--camera", "cam_9",
                 "--out", str(tmp_path / "p.npz")]) == 2
    err = capsys.readouterr().err
    assert "--camera NAME" in err and "no camera for ['cam_9']" in err


def test_predict_from_a_video(trained, tmp_path, shared_data):
    import cv2

    from epiflow.detection.detectors import read_frames
    frames = read_frames(shared_data / "pose2sim_demo/single_person/videos/cam01.mp4", 0, 12)
    small = [cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2))[..., ::-1] for f in frames]
    video = tmp_path / "cam01.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0,
                             small[0].shape[1::-1])
    for f in small:
        writer.write(np.ascontiguousarray(f))
    writer.release()
    assert main(["predict", str(trained / "out" / "checkpoint.pt"), "--video", str(video),
                 "--out", str(tmp_path / "v.npz")]) == 0
    with np.load(tmp_path / "v.npz") as z:
        points = z["points3d"]
    assert points.shape == (12, 17, 3) and np.isfinite(points).all()
    # a standing person: the head above the pelvis (camera y points down), ankles below
    assert (points[:, 10, 1] < -0.3).all() and (points[:, [3, 6], 1] > 0.3).all()


def test_calibration_cameras_matched_like_the_pipeline(tmp_path):
    """``predict --video cam01.mp4 --calibration lab.toml`` finds the lab's ``cam_01``."""
    from epiflow.datasets.synthetic import make_rig
    from epiflow.models.predict import _calibrated_camera
    rig = make_rig(3, seed=0)
    rig = type(rig)(c.replace(name=f"cam_{k + 1:02d}") for k, c in enumerate(rig))
    save_toml(rig, tmp_path / "lab.toml")
    cam = _calibrated_camera(tmp_path / "lab.toml", "cam02")
    assert cam.name == "cam_02" and np.allclose(cam.K, rig.K[1])
    with pytest.raises(KeyError, match="pass --camera"):
        _calibrated_camera(tmp_path / "lab.toml", "cam09")
