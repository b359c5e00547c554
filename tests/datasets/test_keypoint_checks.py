"""Bad keypoint files get the same refusal from every command that reads keypoints (run,
calibrate, triangulate, predict), through one reader (:func:`epiflow.datasets.io.load_keypoints`):
exit code 2, a message naming the file, what came and what was expected, and nothing written."""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from epiflow.calibration.formats import save_toml
from epiflow.cli import main
from epiflow.datasets.io import load_keypoints
from epiflow.datasets.synthetic import Corruption, cmu_capture
from epiflow.keypoints import save_npz


@pytest.fixture(scope="module")
def capture():
    """20 frames of the CMU walk seen by 4 synthetic cameras, 1920x1080 pixels."""
    cap = cmu_capture("02_01", corruption=Corruption(noise_px=1.0), seed=0)
    return cap.keypoints.frames(0, 20), cap.rig


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained MLP lifter's checkpoint (canonical 17 joints), for ``predict``."""
    from epiflow.models.checkpoint import save_checkpoint
    from epiflow.models.config import ExperimentConfig, build_model
    cfg = ExperimentConfig()
    path = tmp_path_factory.mktemp("model") / "checkpoint.pt"
    save_checkpoint(path, build_model(cfg.model, 17), cfg)
    return path


def _arrays(kp) -> dict:
    """The keypoints npz's arrays (module docstring of epiflow.keypoints), to spoil one by one."""
    return {"keypoints": kp.data.transpose(1, 0, 2, 3).astype(np.float32),
            "joint_set": np.str_(kp.joint_set), "camera_names": np.array(kp.camera_names),
            "image_size": kp.image_size, "fps": np.float64(30.0)}


def _spoil(name: str, kp, path) -> list[str]:
    """Write the bad input ``name`` at ``path``; return words its message must hold."""
    a = _arrays(kp)
    k = a["keypoints"]
    if name == "random bytes":
        path.write_bytes(os.urandom(2000))
        return ["not an npz file"]
    if name == "an npy named npz":
        with open(path, "wb") as f:
            np.save(f, k)
        return ["not an npz", ".npy"]
    if name == "no keypoints array":
        a["points"] = a.pop("keypoints")
        np.savez(path, **a)
        return ["missing ['keypoints']", "it holds ['camera_names', 'fps', 'image_size', "
                                         "'joint_set', 'points']", "(C, T, J, 3)"]
    if name == "object dtype":
        a["keypoints"] = k.astype(object)
        np.savez(path, **a)
        return ["keypoints cannot be read without pickle"]
    edits = {
        "normalised units": lambda: (k / np.append(kp.image_size, np.ones((4, 1)), 1)[
            :, None, None, :], ["normalised", "multiply x by the image width"]),
        "confidence in percent": lambda: (k * [1, 1, 100], ["outside [0, 1]", "percentages"]),
        "negative confidence": lambda: (np.where(np.arange(3) == 2, -0.5, k),
                                        ["outside [0, 1]", "-0.5"]),
        "integer dtype": lambda: (np.nan_to_num(k).astype(np.int64),
                                  ["dtype int64", "floating point"]),
        "text dtype": lambda: (k.astype(str), ["dtype <U", "floating point"]),
        "zero frames": lambda: (k[:, :0], ["0 frames", "at least one frame"]),
        "wrong number of dimensions": lambda: (k[0], ["(C, T, J, 3)", "got shape (20, 17, 3)"]),
        "NaN x with confidence": lambda: (_nan_x(k), ["NaN or inf x or y", "confidence above 0"]),
    }
    if name == "zero cameras":
        a.update(keypoints=k[:0], camera_names=np.array([], dtype=str),
                 image_size=np.zeros((0, 2), np.int64))
        np.savez(path, **a)
        return ["0 cameras", "at least one frame and one camera"]
    a["keypoints"], words = edits[name]()
    np.savez(path, **a)
    return words


def _nan_x(k):
    k = k.copy()
    k[1, 3, 5, 0] = np.nan  # its confidence stays above 0
    return k


NPZ_CASES = ["normalised units", "confidence in percent", "negative confidence", "integer dtype",
             "text dtype", "object dtype", "zero frames", "zero cameras", "random bytes",
             "an npy named npz", "no keypoints array", "wrong number of dimensions",
             "NaN x with confidence"]
OPENPOSE_CASES = ["no JSON files", "broken JSON", "normalised OpenPose"]


def _openpose(name: str, kp, root) -> tuple:
    """An OpenPose folder (one sub-folder of JSON per camera) spoilt as ``name``."""
    for c, cam in enumerate(kp.camera_names):
        folder = root / f"{cam}_json"
        folder.mkdir(parents=True)
        if name == "no JSON files":
            (folder / "notes.txt").write_text("frames went elsewhere")
            continue
        for t in range(kp.n_frames):
            xyc = np.nan_to_num(kp.data[t, c]).copy()
            if name == "normalised OpenPose":
                xyc[:, :2] /= kp.image_size[c]
            doc = {"people": [{"pose_keypoints_2d": xyc.ravel().tolist()}]}
            (folder / f"{cam}.{t:04d}.json").write_text(json.dumps(doc))
    if name == "broken JSON":
        bad = root / f"{kp.camera_names[1]}_json" / f"{kp.camera_names[1]}.0007.json"
        bad.write_text('{"people": [{"pose_keypoints_2d": [1, 2,')
        return bad, ["not an OpenPose JSON file", "JSONDecodeError"]
    if name == "no JSON files":
        return root, ["no sub-folders holding *.json files"]
    return root, ["normalised", "multiply x by the image width"]


def _command(command: str, keypoints, tmp_path, checkpoint=None) -> tuple[list[str], object]:
    """argv of ``command`` reading ``keypoints`` and the output it must not write."""
    out = {"triangulate": "poses.npz", "calibrate": "cams.toml", "run": "store.zarr",
           "predict": "pred.npz"}[command]
    out = tmp_path / "out" / out
    argv = {"triangulate": ["--keypoints", str(keypoints), "--cameras",
                            str(tmp_path / "cameras.toml"), "--joint-set", "h36m17"],
            "calibrate": ["--keypoints", str(keypoints), "--joint-set", "h36m17"],
            "run": ["--keypoints", str(keypoints), "--cameras", str(tmp_path / "cameras.toml"),
                    "--quiet"],
            "predict": [str(checkpoint), "--keypoints", str(keypoints), "--camera",
                        "cam_01"]}[command]
    return [command, *argv, "--out", str(out)], out


def _refused(capsys, argv, out, tmp_path, named, words) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    t = time.perf_counter()
    code = main(argv)
    took = time.perf_counter() - t
    err = capsys.readouterr().err
    assert code == 2, err
    assert str(named) in err, (named, err)
    assert all(w in err for w in words), (words, err)
    assert "Traceback" not in err
    assert not out.exists() and not out.parent.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    assert took < 5.0  # refused before Ray (whose start alone takes 10-20 s)


COMMANDS = ["triangulate", "calibrate", "run", "predict"]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", NPZ_CASES)
def test_bad_npz(case, command, capture, checkpoint, tmp_path, capsys):
    kp, rig = capture
    save_toml(rig, tmp_path / "cameras.toml")
    path = tmp_path / "kp.npz"
    words = _spoil(case, kp, path)
    argv, out = _command(command, path, tmp_path, checkpoint)
    _refused(capsys, argv, out, tmp_path, path, words)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", OPENPOSE_CASES)
def test_bad_openpose_folder(case, command, capture, checkpoint, tmp_path, capsys):
    kp, rig = capture
    save_toml(rig, tmp_path / "cameras.toml")
    named, words = _openpose(case, kp, tmp_path / "openpose")
    argv, out = _command(command, tmp_path / "openpose", tmp_path, checkpoint)
    _refused(capsys, argv, out, tmp_path, named, words)


@pytest.mark.parametrize("command", ["triangulate", "calibrate", "run"])
def test_one_camera_is_refused_where_two_are_needed(command, capture, tmp_path, capsys):
    kp, rig = capture
    save_toml(rig, tmp_path / "cameras.toml")
    path = tmp_path / "kp.npz"
    save_npz(kp.select_cameras(["cam_02"]), path)
    argv, out = _command(command, path, tmp_path)
    _refused(capsys, argv, out, tmp_path, path, ["1 camera(s) ['cam_02']", "at least 2"])


def test_good_files_pass(capture, tmp_path):
    kp, _ = capture
    save_npz(kp, tmp_path / "kp.npz")
    back = load_keypoints(tmp_path / "kp.npz")
    assert back.data.shape == (20, 4, 17, 3)
    np.testing.assert_allclose(back.data, kp.data, rtol=1e-6, equal_nan=True)
    root, _ = _openpose("good", kp, tmp_path / "openpose")
    back = load_keypoints(root, joint_set="h36m17", image_size=(1920, 1080))
    assert back.camera_names == kp.camera_names and back.n_frames == 20
    np.testing.assert_allclose(back.xy, kp.xy, atol=1e-6)
