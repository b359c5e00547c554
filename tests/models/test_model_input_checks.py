"""A checkpoint given data its model cannot read is refused up front, saying what it needs (issue
14's bad inputs): a window longer than the footage, crops of another size, an image model
without crops, a recipe whose window is longer than every session; and an image model is
evaluated on the crops of the store it was trained on."""
import pytest

from epiflow.cli import main
from epiflow.models.checkpoint import CheckpointError, check_input, load_checkpoint, save_checkpoint
from epiflow.models.config import ExperimentConfig, ImageModelConfig, ModelConfig, build_model
from epiflow.models.temporal import TemporalConfig

TINY_TEMPORAL = TemporalConfig(window=27, dim=8, depth=1, heads=2)
TINY_IMAGE = ImageModelConfig(image_size=32, width=8, deconv=8, depth_bins=8)


def _saved(path, **model):
    cfg = ExperimentConfig(model=ModelConfig(**model))
    save_checkpoint(path, build_model(cfg.model, 17), cfg)
    return load_checkpoint(path)


@pytest.fixture
def temporal(tmp_path):
    return _saved(tmp_path / "t.pt", name="temporal", temporal=TINY_TEMPORAL)


@pytest.fixture
def image(tmp_path):
    return _saved(tmp_path / "i.pt", name="image", image=TINY_IMAGE)


def test_footage_shorter_than_the_window_names_both_and_the_window_that_fits(temporal):
    check_input(temporal, "--video v.mp4", n_frames=27)  # exactly the window: fine
    with pytest.raises(CheckpointError) as err:
        check_input(temporal, "--video v.mp4", n_frames=12)
    msg = str(err.value)
    assert "t.pt holds the 'temporal' model" in msg and "reads a 27-frame window" in msg
    assert "--video v.mp4 has only 12 frame(s)" in msg
    assert "model.temporal.window = 11" in msg and "model.name = 'mlp'" in msg  # odd, <= 12


def test_image_model_crop_size_and_no_images(image):
    check_input(image, "session 's' of a.zarr", has_images=True, crop_size=32)
    with pytest.raises(CheckpointError, match=r"reads person crops of 32 px; session 's' of "
                                              r"a.zarr has crops of 64 px"):
        check_input(image, "session 's' of a.zarr", has_images=True, crop_size=64)
    with pytest.raises(CheckpointError, match=r"--keypoints kp.npz has none: give a video "
                                              r"\(epiflow predict --video\)"):
        check_input(image, "--keypoints kp.npz", has_images=False)


def test_video_shorter_than_the_window_is_refused_before_detection(tmp_path, temporal, capsys):
    import cv2
    import numpy as np
    video = tmp_path / "short.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (96, 64))
    for _ in range(5):  # nobody in it either: the window is what is said (checked first)
        writer.write(np.full((64, 96, 3), 90, np.uint8))
    writer.release()
    out = tmp_path / "p.npz"
    assert main(["predict", str(temporal.path), "--video", str(video), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--video {video} has only 5 frame(s)" in err and "27-frame window" in err, err
    assert "no person" not in err and "Traceback" not in err
    assert not out.exists() and not out.with_suffix(".png").exists()


@pytest.fixture(scope="module")
def crop_store(make_store, tmp_path_factory):
    """A pipeline store of one 30-frame session with 32 px person crops."""
    path = tmp_path_factory.mktemp("crops") / "c.zarr"
    make_store(path, {"02_01": 0}, frames=30, crop_size=32)
    return path


def test_evaluate_reads_the_crops_an_image_model_needs(crop_store, image, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["evaluate", str(image.path), "--store", str(crop_store), "--out", str(out)]) == 0
    import json
    assert json.loads(out.read_text())["overall"]["n_poses"] == 30 * 4  # every frame and camera


def test_evaluate_refuses_sessions_shorter_than_the_window(crop_store, tmp_path, capsys):
    from dataclasses import replace
    wide = _saved(tmp_path / "w.pt", name="temporal", temporal=replace(TINY_TEMPORAL, window=31))
    assert main(["evaluate", str(wide.path), "--store", str(crop_store)]) == 2
    err = capsys.readouterr().err
    assert "session '02_01'" in err and "has only 30 frame(s)" in err, err
    assert "31-frame window" in err and "model.temporal.window = 29" in err


def _recipe(tmp_path, store, model: str) -> str:
    path = tmp_path / "r.toml"
    path.write_text(f'[data]\nstore = "{store}"\nval_fraction = 0.0\n{model}\n'
                    f'[train]\nepochs = 1\nthreads = 1\nprogress = false\n')
    return str(path)


@pytest.mark.parametrize("model, said", [
    ('[model]\nname = "temporal"\n[model.temporal]\nwindow = 31\ndim = 8\ndepth = 1\nheads = 2',
     "model.temporal.window = 31 frames is longer than every session"),
    ('[model]\nname = "image"\n[model.image]\nimage_size = 48',
     "model.image.image_size = 48 px, but session '02_01'"),
])
def test_train_refuses_a_store_the_model_cannot_learn_from(crop_store, tmp_path, capsys,
                                                           model, said):
    out = tmp_path / "run"
    assert main(["train", _recipe(tmp_path, crop_store, model), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err, err
    if "temporal" in model:
        assert "has 30)" in err and "model.temporal.window = 29 or less" in err
    else:
        assert "crops of 32 px" in err and "model.image.image_size = 32" in err
    assert not out.exists()


def test_unknown_intrinsics_print_the_assumed_numbers(oracle, tmp_path, capsys):
    """Without --calibration the terminal gets the pinhole that was assumed, in numbers: the
    principal point (the centre of the 1920x1080 images: (w - 1) / 2, (h - 1) / 2) and the
    focal length (the larger side)."""
    from epiflow.keypoints import Keypoints, save_npz
    s = oracle("02_03", 2)
    save_npz(Keypoints(s.keypoints2d, "h36m17", tuple(s.rig.names), s.rig.sizes, 30.0),
             tmp_path / "kp.npz")
    ckpt = _saved(tmp_path / "c.pt")
    assert main(["predict", str(ckpt.path), "--keypoints", str(tmp_path / "kp.npz"), "--camera",
                 "cam_02", "--out", str(tmp_path / "p.npz"), "--no-plot", "--no-adapt"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "epiflow predict: warning:" in err and "intrinsics are unknown" in err
    assert "principal point at the image centre (959.5, 539.5) px of the 1920x1080 images" in err
    assert "focal length 1920 px" in err and "53 deg field of view" in err
