"""``epiflow predict`` with adaptation (the default) and ``--no-adapt``, and its bad inputs: a
video with nobody in it, unknown intrinsics, a checkpoint of another joint set, a window longer
than the footage (issue 14)."""
import numpy as np
import pytest

from epiflow.calibration.formats import save_toml
from epiflow.cli import main
from epiflow.keypoints import Keypoints, save_npz
from epiflow.models.checkpoint import save_checkpoint
from epiflow.models.config import (DataConfig, ExperimentConfig, ModelConfig, build_model)
from epiflow.models.lifters import MLPConfig, TransformerConfig


def _checkpoint(path, **model):
    cfg = ExperimentConfig(model=ModelConfig(**model)) if model else ExperimentConfig()
    return save_checkpoint(path, build_model(cfg.model, 17), cfg)


@pytest.fixture
def clip(oracle, tmp_path):
    """Camera cam_02's keypoints (44 frames of a run) and cameras, written as files."""
    s = oracle("02_03", 2)
    save_npz(Keypoints(s.keypoints2d, "h36m17", tuple(s.rig.names), s.rig.sizes, 30.0),
             tmp_path / "kp.npz")
    save_toml(s.rig, tmp_path / "cams.toml")
    return s


def _predict(tmp_path, ckpt, *extra, out="pred.npz"):
    return main(["predict", str(ckpt), "--keypoints", str(tmp_path / "kp.npz"), "--camera",
                 "cam_02", "--out", str(tmp_path / out), "--no-plot", *extra])


def test_adapted_by_default_plain_with_no_adapt(clip, tmp_path):
    import torch
    torch.manual_seed(0)
    ckpt = _checkpoint(tmp_path / "c.pt", mlp=MLPConfig(hidden=64, blocks=1, dropout=0.2))
    cams = ["--calibration", str(tmp_path / "cams.toml")]
    assert _predict(tmp_path, ckpt, *cams, "--no-adapt", out="plain.npz") == 0
    assert _predict(tmp_path, ckpt, *cams, out="adapted.npz") == 0
    plain = np.load(tmp_path / "plain.npz")["points3d"]
    adapted = np.load(tmp_path / "adapted.npz")["points3d"]
    assert plain.shape == adapted.shape == (44, 17, 3)
    # an untrained model's poses are refined towards the 2D: their reprojection improves
    from epiflow.models.losses import reprojection_loss
    uv = clip.rig.subset([1]).undistort(clip.keypoints2d[None, :, 1, :, :2])[0]

    def reprojection(p):
        return float(reprojection_loss(torch.from_numpy(p).double(), torch.from_numpy(uv)))
    assert reprojection(adapted) < 0.5 * reprojection(plain)


def test_adapted_prediction_stores_and_summarises_its_uncertainty(clip, tmp_path, capsys):
    import torch
    torch.manual_seed(0)
    ckpt = _checkpoint(tmp_path / "c.pt", mlp=MLPConfig(hidden=64, blocks=1, dropout=0.2))
    cams = ["--calibration", str(tmp_path / "cams.toml")]
    assert _predict(tmp_path, ckpt, *cams, out="adapted.npz") == 0
    out = capsys.readouterr().out
    assert _predict(tmp_path, ckpt, *cams, "--no-adapt", out="plain.npz") == 0
    assert "uncertainty" not in np.load(tmp_path / "plain.npz")       # plain: none computed
    assert "uncertainty" not in capsys.readouterr().out
    got = np.load(tmp_path / "adapted.npz")
    sigma, points = got["uncertainty"], got["points3d"]
    assert sigma.shape == (44, 17)
    seen = np.isfinite(points).all(-1)                                # (T, J)
    assert seen.any() and np.isfinite(sigma[seen]).all() and np.isnan(sigma[~seen]).all()
    assert np.all(sigma[:, 1:][seen[:, 1:]] > 0)  # dropout spreads every joint but the root
    line = next(x for x in out.splitlines() if x.startswith("per-joint uncertainty"))
    assert f"median {1000 * np.nanmedian(sigma):.0f}" in line and "least certain" in line


def test_uncertainty_summary_names_the_least_certain_joints():
    from epiflow.cli.predict import uncertainty_summary
    sigma = np.full((10, 17), 0.02)
    sigma[:, 0] = 0.0                                     # the root: no spread
    sigma[:, 13], sigma[:, 16], sigma[:, 3] = 0.09, 0.07, 0.05
    sigma[0] = np.nan                                     # a frame with nobody
    line = uncertainty_summary(sigma, "h36m17")
    assert line.endswith("median 20; least certain: l_wrist 90, r_wrist 70, r_ankle 50")


def test_uncertainty_summary_of_missing_joints_warns_nothing():
    """A joint (or every joint) without a finite uncertainty in any frame is left out, quietly
    (numpy's all-NaN warnings are not the user's business)."""
    import warnings

    from epiflow.cli.predict import uncertainty_summary
    sigma = np.full((4, 17), 0.03)
    sigma[:, 5] = np.nan                                  # a joint the model never spread
    sigma[:, 6], sigma[:, 2] = 0.08, 0.06
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert uncertainty_summary(sigma, "h36m17", worst=2).endswith(
            "median 30; least certain: l_ankle 80, r_knee 60")
        assert uncertainty_summary(np.full((4, 17), np.nan), "h36m17").endswith("none (no "
                                                                                "frame has it)")


def test_unknown_intrinsics_say_what_was_assumed(clip, tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "c.pt")
    assert _predict(tmp_path, ckpt, "--no-adapt") == 0
    err = capsys.readouterr().err
    assert "epiflow predict: warning:" in err and "intrinsics are unknown" in err
    assert "focal length 1920 px" in err and "principal point at the image centre" in err


def test_window_longer_than_the_footage(oracle, tmp_path, capsys):
    s = oracle("02_03", 2)
    short = s.keypoints2d[:9]
    save_npz(Keypoints(short, "h36m17", tuple(s.rig.names), s.rig.sizes, 30.0),
             tmp_path / "kp.npz")
    ckpt = _checkpoint(tmp_path / "t.pt", name="transformer",
                       transformer=TransformerConfig(window=27, dim=16, depth=1, heads=2))
    assert _predict(tmp_path, ckpt) == 2
    err = capsys.readouterr().err
    assert "reads a 27-frame window" in err and "has only 9 frame(s)" in err, err
    assert not (tmp_path / "pred.npz").exists()


@pytest.fixture
def blank_video(tmp_path):
    import cv2
    path = tmp_path / "empty_room.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (96, 64))
    for i in range(4):
        writer.write(np.full((64, 96, 3), 30 + 10 * i, np.uint8))
    writer.release()
    return path


def test_video_with_nobody(blank_video, tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "c.pt")
    out = tmp_path / "p.npz"
    assert main(["predict", str(ckpt), "--video", str(blank_video), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--video {blank_video}: no person was detected in any of its 4 frames" in err
    assert not out.exists() and not out.with_suffix(".png").exists()


def test_checkpoint_of_another_joint_set(blank_video, tmp_path, capsys):
    cfg = ExperimentConfig(data=DataConfig(joint_set="body25"))
    ckpt = save_checkpoint(tmp_path / "b.pt", build_model(cfg.model, 25), cfg)
    assert main(["predict", str(ckpt), "--video", str(blank_video), "--out",
                 str(tmp_path / "p.npz")]) == 2
    err = capsys.readouterr().err
    assert "on joint set 'body25'" in err and "'blazepose33'" in err, err


def test_not_a_checkpoint(blank_video, tmp_path, capsys):
    import torch
    torch.save({"weights": [1, 2, 3]}, tmp_path / "other.pt")
    assert main(["predict", str(tmp_path / "other.pt"), "--video", str(blank_video), "--out",
                 str(tmp_path / "p.npz")]) == 2
    assert "other.pt" in capsys.readouterr().err


def test_level_model_from_keypoints_says_the_camera_is_taken_level(clip, tmp_path, capsys):
    """A model of level cameras (data.level) given keypoints alone has no image to find the
    vertical in: it says it takes the camera as level and writes the vertical it used; a model of
    the camera's frame says nothing of the kind and writes no vertical."""
    import torch
    from dataclasses import replace
    torch.manual_seed(0)
    model = build_model(ModelConfig().__class__(), 17)
    level_cfg = ExperimentConfig(data=DataConfig(level=True))
    save_checkpoint(tmp_path / "level.pt", model, level_cfg)
    save_checkpoint(tmp_path / "plain.pt", model, replace(level_cfg, data=DataConfig()))
    cams = ["--calibration", str(tmp_path / "cams.toml"), "--no-adapt"]
    assert _predict(tmp_path, tmp_path / "level.pt", *cams, out="l.npz") == 0
    err = capsys.readouterr().err
    # the synthetic rig's world is Z up: the calibration's +Z axis, nearest the runner's torso
    assert "calibration's +Z axis" in err and "give --video instead" in err
    out = np.load(tmp_path / "l.npz")
    R = clip.rig["cam_02"].R
    np.testing.assert_allclose(out["up"], R[:, 2] / np.linalg.norm(R[:, 2]), atol=1e-9)
    # without a calibration (a centred pinhole, no rotation): the image's top edge is up
    assert _predict(tmp_path, tmp_path / "level.pt", "--no-adapt", out="l2.npz") == 0
    assert "taken as level" in capsys.readouterr().err
    np.testing.assert_allclose(np.load(tmp_path / "l2.npz")["up"], [0, -1, 0])
    assert _predict(tmp_path, tmp_path / "plain.pt", *cams, out="p.npz") == 0
    assert "up" not in np.load(tmp_path / "p.npz")
    assert "taken as level" not in capsys.readouterr().err


def test_a_window_spans_the_time_it_was_trained_on(tmp_path):
    """A window learned on 30 fps motion reads every 2nd frame of 60 fps footage (the helper's
    finding: 9 frames were 0.3 s in training and 0.15 s on the demo videos); per-frame models
    and footage of unknown rate are left alone."""
    from epiflow.models.config import SourceConfig, TemporalConfig
    from epiflow.models.lifters import frame_stride, window_indices
    from epiflow.models.predict import training_stride
    np.testing.assert_array_equal(window_indices(6, 5, 2)[3], [0, 1, 3, 5, 5])
    np.testing.assert_array_equal(window_indices(6, 3)[0], [0, 0, 1])
    assert [frame_stride(f, 30.0) for f in (60.0, 59.94, 30.0, 25.0, 120.0, None)] == \
        [2, 2, 1, 1, 4, 1]
    source = SourceConfig(kind="cmu_synthetic", fps=30.0)
    cfg = ExperimentConfig(data=DataConfig(store=str(tmp_path / "gone.zarr"), source=source),
                           model=ModelConfig(name="temporal",
                                             temporal=TemporalConfig(window=9, dim=16, depth=1)))
    temporal = save_checkpoint(tmp_path / "t.pt", build_model(cfg.model, 17), cfg)
    from epiflow.models.checkpoint import load_checkpoint
    ckpt = load_checkpoint(temporal)
    assert training_stride(ckpt, 60.0) == 2 and training_stride(ckpt, None) == 1
    mlp = load_checkpoint(_checkpoint(tmp_path / "m.pt"))
    assert training_stride(mlp, 60.0) == 1
