"""``epiflow run`` (and ``calibrate --videos``) refuse bad input before Ray starts and before
anything is written: exit code 2, the file or argument named, no store, no report.

Measured on 2 shared cores: a missing ``--videos`` folder took 21.3 s (a local Ray started), created
an empty store and exited 1 before these checks; now the command takes 1.6 s in a fresh process,
the same as ``epiflow --version`` (importing the CLI), and ~1 ms once imported."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from epiflow.calibration.camera import CameraRig
from epiflow.calibration.formats import save_toml
from epiflow.cli import main
from epiflow.datasets.synthetic import make_rig


def _refused(capsys, tmp_path, argv, named, words, limit_s=5.0) -> str:
    """``epiflow ARGV`` exits 2 within ``limit_s``, names ``named``, says ``words``, writes
    nothing under ``tmp_path``."""
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    t = time.perf_counter()
    code = main(argv)
    took = time.perf_counter() - t
    err = capsys.readouterr().err
    assert code == 2, err
    assert str(named) in err and all(w in err for w in words), (named, words, err)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # no store, no report
    assert took < limit_s, took  # no Ray started (its start alone takes 10-20 s here)
    return err


def _run(tmp_path, *args) -> list[str]:
    return ["run", *args, "--out", str(tmp_path / "out" / "s.zarr"), "--quiet"]


@pytest.fixture
def videos(tmp_path, make_video):
    """A folder of two good 5-frame videos, cam01.mp4 and cam02.mp4."""
    folder = tmp_path / "videos"
    for name in ("cam01", "cam02"):
        make_video(folder / f"{name}.mp4", 5)
    return folder


class TestMissing:
    def test_missing_videos_folder_fails_fast_in_a_fresh_process(self, tmp_path):
        out = tmp_path / "s.zarr"
        code = ("import sys, time; t = time.perf_counter(); from epiflow.cli import main; "
                "rc = main(sys.argv[1:]); print(f'{time.perf_counter() - t:.3f}'); sys.exit(rc)")
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code, "run", "--videos",
                               str(tmp_path / "nope"), "--out", str(out)],
                              capture_output=True, text=True, timeout=60)
        wall = time.perf_counter() - t
        assert proc.returncode == 2, proc.stderr
        assert f"--videos {str(tmp_path / 'nope')!r} does not exist" in proc.stderr
        assert "a folder of videos, one per camera" in proc.stderr
        assert not out.exists() and not (tmp_path / "s.zarr.report.json").exists()
        assert float(proc.stdout) < 5.0 and wall < 10.0  # 1.6 s measured, Ray never started

    @pytest.mark.parametrize("flag, words", [
        ("--videos", ["does not exist", "a folder of videos"]),
        ("--frames", ["does not exist", "per-camera image folders"]),
        ("--keypoints", ["does not exist", "keypoints .npz"]),
    ])
    def test_missing_source(self, tmp_path, capsys, flag, words):
        _refused(capsys, tmp_path, _run(tmp_path, flag, str(tmp_path / "gone")),
                 tmp_path / "gone", [flag, *words])

    def test_missing_cameras_file(self, tmp_path, capsys, videos):
        _refused(capsys, tmp_path, _run(tmp_path, "--videos", str(videos), "--cameras",
                                        str(tmp_path / "cams.toml")),
                 tmp_path / "cams.toml", ["--cameras", "does not exist", "calibration file"])

    def test_videos_given_a_file(self, tmp_path, capsys, videos):
        _refused(capsys, tmp_path, _run(tmp_path, "--videos", str(videos / "cam01.mp4")),
                 videos / "cam01.mp4", ["is a file", "expected a folder of videos"])

    def test_missing_folder_in_a_config(self, tmp_path, capsys):
        config = tmp_path / "run.toml"
        config.write_text('out = "out/s.zarr"\n[[sessions]]\nname = "take1"\n'
                          'videos = "takes/take1"\n')
        _refused(capsys, tmp_path, ["run", str(config), "--quiet"], tmp_path / "takes" / "take1",
                 ["session 'take1'", "does not exist"])


class TestVideos:
    def test_one_video(self, tmp_path, capsys, make_video):
        make_video(tmp_path / "videos" / "cam01.mp4", 5)
        _refused(capsys, tmp_path, _run(tmp_path, "--videos", str(tmp_path / "videos")),
                 tmp_path / "videos", ["1 video(s) ['cam01.mp4']", "at least 2"])

    def test_no_video(self, tmp_path, capsys):
        (tmp_path / "videos").mkdir()
        (tmp_path / "videos" / "notes.txt").write_text("the videos are on the other disk")
        _refused(capsys, tmp_path, _run(tmp_path, "--videos", str(tmp_path / "videos")),
                 tmp_path / "videos", ["holds no video files", ".mp4"])

    @pytest.mark.parametrize("content", [b"", b"this is a text file, not a video\n" * 20],
                             ids=["zero bytes", "text renamed .mp4"])
    def test_unreadable_video(self, tmp_path, capsys, videos, content):
        (videos / "cam03.mp4").write_bytes(content)
        _refused(capsys, tmp_path, _run(tmp_path, "--videos", str(videos)),
                 videos / "cam03.mp4", ["video", "cam03.mp4"])

    def test_calibrate_refuses_one_video_before_detection(self, tmp_path, capsys, make_video):
        make_video(tmp_path / "videos" / "cam01.mp4", 5)
        _refused(capsys, tmp_path, ["calibrate", "--videos", str(tmp_path / "videos"), "--out",
                                    str(tmp_path / "out" / "cams.toml")],
                 tmp_path / "videos", ["1 video(s) ['cam01.mp4']", "at least 2"])


class TestCameras:
    def _rig_file(self, tmp_path, names, focal=50.0):
        """A camera TOML of cameras ``names`` for 64x48 images, the first with focal ``focal``."""
        rig = make_rig(len(names), focal_px=50.0, size=(64, 48))
        cams = [cam.replace(name=name) for cam, name in zip(rig, names)]
        K = cams[0].K.copy()
        K[0, 0] = K[1, 1] = focal
        cams[0] = cams[0].replace(K=K)
        path = tmp_path / "cams.toml"
        save_toml(CameraRig(cams), path)
        return path

    def test_bad_cameras_file_is_blamed(self, tmp_path, capsys, videos):
        path = self._rig_file(tmp_path, ["cam01", "cam02"], focal=0.0)
        _refused(capsys, tmp_path, _run(tmp_path, "--videos", str(videos), "--cameras",
                                        str(path)),
                 path, ["session '", "camera 'cam01'", "fx is 0"])

    def test_cameras_that_do_not_match(self, tmp_path, capsys, videos):
        path = self._rig_file(tmp_path, ["left", "middle", "right"])
        _refused(capsys, tmp_path, _run(tmp_path, "--videos", str(videos), "--cameras",
                                        str(path)),
                 path, ["left", "cam01", "cam02", "match"])


def test_openpose_without_image_size_or_cameras(tmp_path, capsys):
    """OpenPose JSON does not store the image size; with no cameras file the session could
    never be calibrated, so it is refused up front (it failed at calibration, after Ray)."""
    root = tmp_path / "openpose"
    for cam in ("cam01", "cam02"):
        (root / f"{cam}_json").mkdir(parents=True)
        for t in range(3):
            xyc = [[400.0 + 10 * j + t, 300.0 + 20 * j, 0.9] for j in range(17)]
            doc = {"people": [{"pose_keypoints_2d": [v for p in xyc for v in p]}]}
            (root / f"{cam}_json" / f"{cam}.{t:04d}.json").write_text(json.dumps(doc))
    _refused(capsys, tmp_path, _run(tmp_path, "--keypoints", str(root)), root,
             ["image size of cameras ['cam01', 'cam02'] is unknown", "--cameras"])


class TestNumbersAndConfigBytes:
    """Numeric options are range-checked when the command line is parsed (argparse type
    functions of :mod:`epiflow.cli`), and a config of random bytes is named as such: both before
    Ray starts and before the store is created (was: Ray's own "Resource quantities must be
    nonnegative" after S.zarr was made, and a utf-8 codec message without the file's name)."""

    @pytest.mark.parametrize("option, value, words", [
        ("--num-cpus", "-1", "an integer >= 1, got '-1'"),
        ("--num-cpus", "0", "an integer >= 1, got '0'"),
        ("--synthetic", "0", "an integer >= 1"),
        ("--wait-lease", "-2", "a number >= 0, got '-2'")])
    def test_numbers(self, tmp_path, capsys, option, value, words):
        with pytest.raises(SystemExit) as exit_:
            main(_run(tmp_path, "--synthetic", "1", option, value))
        assert exit_.value.code == 2 and not (tmp_path / "out").exists()
        assert f"argument {option}: expected {words}" in capsys.readouterr().err

    def test_config_of_random_bytes(self, tmp_path, capsys):
        config = tmp_path / "run.toml"
        config.write_bytes(bytes(range(128, 256)) * 3)
        _refused(capsys, tmp_path, ["run", str(config), "--quiet"], config,
                 ["is not a text file (byte 0x80 at offset 0", "expected a TOML config file"])


class TestSyntheticClips:
    """A synthetic session whose CMU clip is not there is refused before the store is made (was:
    the store created, the session failed at ingest)."""

    def test_clip_missing_from_data_dir(self, tmp_path, capsys):
        config = tmp_path / "run.toml"
        config.write_text('synthetic_sessions = 1\n[synthetic]\nclip = "02_01"\n'
                          'data_dir = "no_such_data"\n')
        clip = tmp_path / "no_such_data" / "cmu_mocap" / "02" / "02_01.amc"  # from the config
        _refused(capsys, tmp_path, ["run", str(config), "--out", str(tmp_path / "s.zarr"),
                                    "--quiet"], clip, ["does not exist", "data_dir"])

    def test_clip_not_packaged(self, tmp_path, capsys):
        config = tmp_path / "run.toml"
        config.write_text('synthetic_sessions = 1\n[synthetic]\nclip = "02_09"\n')
        _refused(capsys, tmp_path, ["run", str(config), "--out", str(tmp_path / "s.zarr"),
                                    "--quiet"], "'02_09'", ["not packaged", "02_01", "data_dir"])


def test_a_config_path_missing_says_relative_paths_are_from_the_config(capsys, tmp_path):
    """A config copied elsewhere whose relative videos folder does not exist there: the message
    says relative paths are taken from the config's folder (a user running from another folder
    reads the path as theirs)."""
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    cfg = cfg_dir / "run.toml"
    cfg.write_text('out = "s.zarr"\n[[sessions]]\nname = "take"\nvideos = "videos"\n')
    err = _refused(capsys, tmp_path, ["run", str(cfg), "--quiet"], cfg_dir / "videos",
                   ["relative paths in", str(cfg_dir), "not from where the command runs"])
    assert "does not exist" in err
