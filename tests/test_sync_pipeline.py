"""The pipeline on unsynchronized cameras: the store keeps each camera's raw detections, the
sync step puts every view on camera 0's frame times and records the offsets, the cameras and
labels follow, and the camera TOML in the store carries ``time_offset``."""
from __future__ import annotations

import numpy as np
import pytest

from epiflow.calibration.formats import time_offsets_from_toml
from epiflow.datasets.cmu import load_packaged_clip
from epiflow.datasets.synthetic import (Corruption, capture_center, make_rig,
                                        unsynchronized_capture)
from epiflow.models.metrics import rig_errors
from epiflow.pipeline.config import RunConfig, SessionConfig
from epiflow.pipeline.stages import finish_session
from epiflow.store import PoseStore

FPS = (30.0, 30.0, 30.0, 30.0)
OFFSETS_FRAMES = np.array([0.0, 2.5, -1.4, 1.2])
COUNTS = (60, 55, 58, 50)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A store session as ingest and detection leave unsynchronized videos: each camera's 2D on
    its own frames from row 0 (the packaged jump played forward and back), attr time_sync."""
    clip = load_packaged_clip("02_03").to_h36m()
    motion = type(clip)(np.concatenate([clip.points, clip.points[::-1], clip.points]),
                        clip.joint_set, clip.fps, clip.name)
    rig = make_rig(4, target=capture_center(motion), seed=0)
    offsets = OFFSETS_FRAMES / np.array(FPS)
    streams = unsynchronized_capture(motion, rig, FPS, offsets, COUNTS,
                                     Corruption(noise_px=1.0), seed=1, start=0.3)
    T = max(COUNTS)
    raw = np.full((T, 4, 17, 3), np.nan)
    raw[..., 2] = 0
    for c, track in enumerate(streams.tracks):
        raw[:len(track), c] = track
    url = str(tmp_path_factory.mktemp("sync") / "s.zarr")
    store = PoseStore.open(url, "a")
    s = store.create_session("cut", n_frames=T, camera_names=list(rig.names),
                             joint_set="h36m17", image_size=rig.sizes, fps=FPS[0],
                             chunk_frames=20, attrs={"time_sync": {
                                 "n_frames": list(COUNTS), "fps": list(FPS), "done": False}})
    s.write_all_units(raw)
    s.set_status("ingest", "done")
    outcome = finish_session(url, SessionConfig(name="cut", keypoints="unused.npz"), RunConfig())
    return PoseStore.open(url, "r").session("cut"), outcome, raw, offsets, rig, url


def test_offsets_in_the_store_and_the_camera_toml(stored):
    s, outcome, _, offsets, rig, _ = stored
    assert outcome.failed_stage is None, outcome.reason
    sync = s.time_sync
    assert sync["done"]
    err = np.abs(np.array(sync["time_offset"]) - offsets) * np.array(FPS)
    assert err.max() < 0.25, err
    found = time_offsets_from_toml(s.cameras_toml)
    assert np.allclose(list(found.values()), sync["time_offset"])
    assert s.calibration["report"]["sync"]["cameras"]["cam_02"]["fps"] == 30.0
    assert rig_errors(s.rig, rig)["rotation_deg_max"] < 1.0


def test_raw_kept_and_views_on_camera_0_frames(stored):
    s, _, raw, offsets, _, _ = stored
    assert np.allclose(s.raw_keypoints(), raw[:, :, None], equal_nan=True)
    kp = np.asarray(s.keypoints2d[:])[:, :, 0]
    # camera 0 is the clock: its own 2D unchanged; camera 1 (2.5 frames late) has nothing at
    # camera 0's first 2 frames and its frame 0 interpolated between rows 2 and 3
    assert np.allclose(kp[:, 0], raw[:, 0], equal_nan=True)
    assert (kp[:2, 1, :, 2] == 0).all() and (kp[3:40, 1, :, 2] > 0).mean() > 0.8
    assert s.has_labels and np.isfinite(s.labels().pseudo3d[5:45]).mean() > 0.8


def test_run_inspect_report_and_export_carry_the_offsets(stored, tmp_path, capsys):
    """``run`` and ``inspect`` print each camera's offset, the run report holds them, and the
    exported camera TOML keeps ``time_offset`` (Pose2Sim or another run can reuse them)."""
    from epiflow.cli import main
    from epiflow.cli.run import print_verdicts
    from epiflow.pipeline.orchestrate import _time_offsets
    from epiflow.pipeline.report import RunReport
    s, _, _, _, _, url = stored
    found = dict(zip(s.camera_names, s.time_sync["time_offset"]))
    assert main(["inspect", url]) == 0
    printed = capsys.readouterr().out
    print_verdicts(url, {"cut": {"status": "complete"}})
    printed_run = capsys.readouterr().out
    for text in (printed, printed_run):
        for name, value in found.items():
            assert f"{name}: time offset {value:+.4f} s" in text, text
    report = RunReport(store=url, sessions={"cut": {"status": "complete"}})
    _time_offsets(report, url)
    assert report.sessions["cut"]["time_offset_s"] == pytest.approx(found)
    out = tmp_path / "cameras.toml"
    assert main(["export", url, "--session", "cut", "--out", str(out)]) == 0
    assert time_offsets_from_toml(out.read_text()) == pytest.approx(found)
