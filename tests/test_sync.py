"""Time offsets and frame rates from the people (epiflow.calibration.sync): offsets to a fraction
of a frame on synthetic captures of CMU motion with known clocks, different rates, the bad
inputs, the camera TOML's ``time_offset``, and ``epiflow calibrate`` on cut inputs."""
from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from epiflow.calibration.formats import load_toml, rig_to_toml, save_toml, time_offsets_from_toml
from epiflow.calibration.sync import (SyncConfig, SyncError, needs_sync, resample_track,
                                      synchronize, to_first_camera)
from epiflow.cli import main
from epiflow.datasets.cmu import Motion, load_packaged_clip
from epiflow.datasets.synthetic import (Corruption, capture_center, make_rig,
                                        unsynchronized_capture)
from epiflow.keypoints import Keypoints, save_npz
from epiflow.models.metrics import rig_errors


def _loop(motion: Motion, times: int = 3) -> Motion:
    """The clip played forward and back ``times`` times (a longer capture without a jump)."""
    pts = np.concatenate([motion.points if i % 2 == 0 else motion.points[::-1]
                          for i in range(times)])
    return replace(motion, points=pts)


@pytest.fixture(scope="module")
def walk():
    """The packaged jump (02_03), played forward and back: with unknown cameras a fitted F
    absorbs a time shift of a body moving at constant velocity (a straight walk: 0.45 frame
    left), so the tests use motion that accelerates."""
    motion = _loop(load_packaged_clip("02_03").to_h36m())
    return motion, make_rig(4, target=capture_center(motion), seed=0)


def _frames_error(result, offsets, fps) -> np.ndarray:
    """(C,) |offset error| in frames of each camera."""
    return np.abs(np.asarray(result) - np.asarray(offsets)) * np.asarray(fps)


# offsets in frames of each camera: fractions, one at exactly half a frame of the common clock
OFFSETS_FRAMES = np.array([0.0, 3.5, -2.4, 1.3])


FAST = SyncConfig(max_offset_s=0.3)  # offsets searched within 0.3 s: keeps the tests short


def _capture(walk, fps=(30, 30, 30, 30), n=(60, 55, 58, 50), noise=1.0, seed=1):
    motion, rig = walk
    offsets = OFFSETS_FRAMES / np.asarray(fps, float)
    streams = unsynchronized_capture(motion, rig, fps, offsets, n, Corruption(noise_px=noise),
                                     seed=seed, start=0.3)
    return streams, offsets


class TestOffsets:
    def test_fractional_offsets_within_a_quarter_frame(self, walk):
        streams, offsets = _capture(walk)
        for rig in (walk[1], None):  # cameras known; unknown (F fitted, alternating)
            res = synchronize(streams, rig, FAST)
            err = _frames_error(res.offsets, offsets, streams.fps)
            assert err.max() < 0.25, (rig is None, err)  # 0.03-0.11 measured

    def test_the_fine_stage_is_what_reaches_a_fraction(self, walk):
        """The coarse stage alone (speeds, one sample of the common clock) misses a half-frame
        offset by about half a frame: the fine one is needed for the quarter."""
        streams, offsets = _capture(walk)
        coarse = synchronize(streams, walk[1], replace(FAST, fine=False)).offsets
        assert _frames_error(coarse, offsets, streams.fps).max() > 0.3
        fine = synchronize(streams, walk[1], FAST).offsets
        assert _frames_error(fine, offsets, streams.fps).max() < 0.25

    def test_different_rates(self, walk):
        fps = (30, 60, 25, 30)
        streams, offsets = _capture(walk, fps=fps, n=(60, 110, 50, 50))
        res = synchronize(streams, walk[1], FAST)
        err = _frames_error(res.offsets, offsets, fps)
        assert err.max() < 0.25, err
        assert np.allclose(res.fps, fps)
        kp = to_first_camera(streams, res.offsets)
        assert kp.n_frames == 60 and kp.fps == 30
        # the 60 fps camera interpolated onto camera 0's frames lands on its projections
        truth = to_first_camera(streams, offsets)
        seen = (kp.data[..., 2] > 0) & (truth.data[..., 2] > 0)
        assert np.nanmedian(np.abs(kp.data[..., :2] - truth.data[..., :2])[seen]) < 0.5


class TestResample:
    def test_exact_frames_and_edges(self):
        track = np.zeros((5, 17, 3))
        track[..., 0] = np.arange(5)[:, None] * 10.0
        track[..., 1] = 1.0
        track[..., 2] = np.linspace(0.5, 0.9, 5)[:, None]
        # camera at 10 fps starting 0.1 s after camera 0: its frame k at 0.1 + k / 10 s
        out = resample_track(track, 10.0, 0.1, np.array([0.0, 0.1, 0.25, 0.5, 0.6]))
        assert np.isnan(out[0, 0, 0]) and out[0, 0, 2] == 0      # before its first frame
        assert out[1, 0, 0] == 0.0 and out[1, 0, 2] == 0.5       # exactly frame 0
        assert out[2, 0, 0] == pytest.approx(15.0)              # between frames 1 and 2
        assert out[2, 0, 2] == pytest.approx(0.6)               # the lower confidence
        assert out[3, 0, 0] == pytest.approx(40.0)              # its last frame
        assert np.isnan(out[4, 0, 0])                           # after it


class TestBadInput:
    def test_no_motion_at_all(self, walk):
        motion, rig = walk
        still = replace(motion, points=np.repeat(motion.points[40:41], 300, 0))
        streams = unsynchronized_capture(still, rig, [30] * 4, [0, 0.1, 0.0, -0.1],
                                         [60] * 4, Corruption(noise_px=1.0))
        with pytest.raises(SyncError, match="no motion at all"):
            synchronize(streams)

    def test_a_camera_that_never_sees_the_person_move(self, walk):
        streams, _ = _capture(walk)
        frozen = np.repeat(streams.tracks[2][10:11], len(streams.tracks[2]), 0)
        bad = replace(streams, tracks=streams.tracks[:2] + (frozen,) + streams.tracks[3:])
        with pytest.raises(SyncError, match=r"cam_03 \(joints move by 0\.0"):
            synchronize(bad)

    def test_non_overlapping_time_ranges(self, walk):
        """Camera 2 films other moments (the walk, before or after the jump the others film)."""
        motion, rig = walk
        streams = unsynchronized_capture(motion, rig, [30] * 4, [0, 0.1, 0.0, 0.05], [60] * 4,
                                         Corruption(noise_px=1.0), start=0.3)
        other = load_packaged_clip("02_01").to_h36m()
        other = replace(other, points=other.points - other.points[:, :1].mean(0)
                        + motion.points[:, :1].mean(0))
        elsewhere = unsynchronized_capture(other, rig, [30] * 4, [0] * 4, [60] * 4,
                                           Corruption(noise_px=1.0), start=0.5)
        streams = replace(streams, tracks=(streams.tracks[0], elsewhere.tracks[1])
                          + streams.tracks[2:])
        with pytest.raises(SyncError, match=r"camera[s]? \[?'cam_02'.*(overlap|other moments)"):
            synchronize(streams)

    def test_offset_larger_than_the_overlap(self, walk):
        """Camera 2 starts 1.15 s into camera 1's 1.3 s: 0.15 s together, under the 0.5 s
        needed (the packaged 02_04, played once: no other moment repeats these poses)."""
        motion = load_packaged_clip("02_04").to_h36m()
        rig = make_rig(4, target=capture_center(motion), seed=0)
        streams = unsynchronized_capture(motion, rig, [30] * 4, [0, 1.15, 0.0, 0.05], [40] * 4,
                                         Corruption(noise_px=1.0))
        with pytest.raises(SyncError, match=r"camera[s]? \[?'cam_02'.*(overlap|other moments)"):
            synchronize(streams)

    def test_cameras_filming_other_moments_are_the_ones_named(self):
        """60 fps cuts of 02_04 (tryout T1 #5): cam_01 frames 0-39, cam_03 0-44 (all of
        cam_01's moments), cam_02 55-99 and cam_04 60-99 (none): the refusal names cam_02 and
        cam_04, never cam_03, whose short clip makes its true offset stand out little."""
        motion = load_packaged_clip("02_04").to_h36m()
        rig = make_rig(4, target=capture_center(motion), seed=0)
        full = unsynchronized_capture(motion, rig, [60.0] * 4, [0] * 4, [100] * 4,
                                      Corruption(noise_px=2.0), seed=1)
        cuts = [(0, 40), (55, 100), (0, 45), (60, 100)]
        streams = replace(full, tracks=tuple(t[a:b] for t, (a, b) in zip(full.tracks, cuts)))
        with pytest.raises(SyncError, match=r"^cameras \['cam_02', 'cam_04'\]: .*drop "
                                            r"\['cam_02', 'cam_04'\]$"):
            synchronize(streams)

    def test_needs_sync(self):
        assert needs_sync([100, 100], [60, 60]) is False
        assert needs_sync([100, 90], [60, 60]) is True
        assert needs_sync([100, 100], [60, 30]) is True
        assert needs_sync([100, 100], [60, 60], "on") is True
        assert needs_sync([100, 90], [60, 60], "off") is False
        with pytest.raises(ValueError, match="sync mode"):
            needs_sync([1], [1], "maybe")


def test_time_offset_toml_round_trip(tmp_path, walk):
    rig = walk[1]
    path = tmp_path / "cams.toml"
    save_toml(rig, path, time_offsets=[0.0, 0.125, -0.0333, 1.5])
    text = path.read_text()
    assert text.count("time_offset =") == 4
    assert time_offsets_from_toml(text) == {"cam_01": 0.0, "cam_02": 0.125, "cam_03": -0.0333,
                                            "cam_04": 1.5}
    back = load_toml(path)  # readers that do not know the key still read the cameras
    assert rig_errors(back, rig)["rotation_deg_max"] < 1e-6
    assert time_offsets_from_toml(rig_to_toml(rig)) == {}


def _cut_npz(tmp_path, walk) -> tuple:
    """A keypoints npz of cut inputs: each camera's own frames from row 0, NaN past its end."""
    streams, offsets = _capture(walk)
    T = int(streams.n_frames.max())
    data = np.full((T, 4, 17, 3), np.nan)
    data[..., 2] = 0
    for c, track in enumerate(streams.tracks):
        data[:len(track), c] = track
    path = tmp_path / "cut.npz"
    save_npz(Keypoints(data, "h36m17", streams.camera_names, streams.image_size, 30.0), path)
    return path, offsets


class TestCli:
    def test_calibrate_keypoints_with_sync(self, tmp_path, walk, capsys):
        path, offsets = _cut_npz(tmp_path, walk)
        out = tmp_path / "cams.toml"
        assert main(["calibrate", "--keypoints", str(path), "--sync", "--out", str(out)]) == 0
        found = time_offsets_from_toml(out.read_text())
        err = np.abs(np.array(list(found.values())) - offsets) * 30
        assert err.max() < 0.25, err
        assert rig_errors(load_toml(out), walk[1])["rotation_deg_max"] < 1.0
        report = json.loads((tmp_path / "cams.report.json").read_text())
        assert set(report["sync"]["cameras"]) == {"cam_01", "cam_02", "cam_03", "cam_04"}
        assert "time offset" in capsys.readouterr().out

    def test_sync_off_on_videos_of_different_lengths(self, tmp_path):
        videos = tmp_path / "videos"
        videos.mkdir()
        for name, n in (("cam1", 10), ("cam2", 12)):
            writer = cv2.VideoWriter(str(videos / f"{name}.mp4"),
                                     cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 48))
            for _ in range(n):
                writer.write(np.zeros((48, 64, 3), np.uint8))
            writer.release()
        out = tmp_path / "cams.toml"
        assert main(["calibrate", "--videos", str(videos), "--sync", "off", "--out",
                     str(out)]) == 2
        assert not out.exists()


def test_calibrate_refuses_cameras_it_could_not_place(tmp_path, walk, monkeypatch, capsys):
    """Cameras filming other moments (tryout T1 #4: cam01/cam03 frames 0-39, cam02/cam04 frames
    60-99 of equal length) can leave a camera unplaced (no reprojection error): a refusal naming
    it, exit 2, and nothing written, not a traceback after the TOML is out."""
    import epiflow.calibration.people_calibration as pc
    real = pc.calibrate_from_several_people

    def unplaced(*args, **kwargs):
        result = real(*args, **kwargs)
        result.report["cameras"]["cam_04"].update(reprojection_error_px_median=None,
                                                  reprojection_error_px_mean=None,
                                                  observations_used=0)
        return result
    monkeypatch.setattr(pc, "calibrate_from_several_people", unplaced)
    streams, _ = _capture(walk)
    data = np.stack([t[:50] for t in streams.tracks], 1)
    path = tmp_path / "kp.npz"
    save_npz(Keypoints(data, "h36m17", streams.camera_names, streams.image_size, 30.0), path)
    out = tmp_path / "cams.toml"
    assert main(["calibrate", "--keypoints", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cameras ['cam_04'] could not be placed" in err and "--sync" in err, err
    assert not out.exists() and not (tmp_path / "cams.report.json").exists()


def test_calibrate_detects_unsynchronized_videos_as_run_does(tmp_path, monkeypatch):
    """One road (tryout T1 #7/#8): MediaPipe's tracker restarts at each chunk, so ``calibrate``
    must detect in ``run``'s chunks: with 64 against 100 frames the same cut demo videos gave
    a camera 7.73 frames late in one and 7.008 (truth 7) in the other."""
    import epiflow.detection.detectors as det
    from epiflow.pipeline.config import DetectConfig
    videos = tmp_path / "videos"
    videos.mkdir()
    for name, n in (("cam1", 10), ("cam2", 12)):
        writer = cv2.VideoWriter(str(videos / f"{name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                 30.0, (64, 48))
        for _ in range(n):
            writer.write(np.zeros((48, 64, 3), np.uint8))
        writer.release()
    seen = {}

    def detect(folder, detector=None, chunk_frames=64, progress=True):
        seen["chunk_frames"] = chunk_frames
        raise ValueError("stopped after the call")
    monkeypatch.setattr(det, "detect_video_streams", detect)
    assert main(["calibrate", "--videos", str(videos), "--out", str(tmp_path / "c.toml")]) == 2
    assert seen["chunk_frames"] == DetectConfig().chunk_frames
