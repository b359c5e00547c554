"""The pipeline on a real Ray head (loopback, 2 CPUs, shared by these tests): sessions whose input
cannot be read refuse the run before anything is written; sessions finish while one failing later
(calibration) is recorded with its reason; real videos through the detector pool; a detector
worker SIGKILLed mid-run, or a run resumed after some units, gives the same store as an
uninterrupted run, redoing only the missing units."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from epiflow.cli import main
from epiflow.pipeline.config import (DetectConfig, IngestConfig, RunConfig, SessionConfig,
                                     SyntheticConfig)
from epiflow.pipeline.detect import DetectUnit, DetectWorker
from epiflow.pipeline.ingest import ingest_session
from epiflow.pipeline.orchestrate import run_pipeline
from epiflow.store import PoseStore

pytestmark = pytest.mark.ray

def test_unreadable_sessions_are_refused_before_anything(tmp_path, make_video):
    # (videos of different lengths are no longer unreadable: their time offsets are recovered)
    make_video(tmp_path / "single" / "cam1.mp4", 8)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "cam1.mp4").write_bytes(b"\x00" * 5000)
    make_video(tmp_path / "broken" / "cam2.mp4", 5)
    out = tmp_path / "s.zarr"
    cfg = RunConfig(out=str(out), synthetic_sessions=1,
                    sessions=(SessionConfig(name="single", videos=str(tmp_path / "single")),
                              SessionConfig(name="broken", videos=str(tmp_path / "broken"))))
    with pytest.raises(ValueError) as err:  # every bad session listed, before Ray and the store
        run_pipeline(cfg, progress=False)
    text = str(err.value)
    assert text.startswith("2 sessions cannot be read")
    assert "session 'single'" in text and "['cam1.mp4']" in text and "at least 2" in text
    assert "session 'broken'" in text and "cam1.mp4" in text
    assert not out.exists() and not Path(str(out) + ".report.json").exists()


def _blind_keypoints(path: Path) -> Path:
    """Keypoints of 4 cameras in which cam_02 never sees the person: they read fine, and their
    calibration from people fails (a session failure, recorded)."""
    from epiflow.datasets.synthetic import cmu_capture
    from epiflow.keypoints import save_npz
    kp = cmu_capture("02_01", seed=1).keypoints.frames(0, 40)
    data = kp.data.copy()
    data[:, 1] = (np.nan, np.nan, 0.0)
    save_npz(replace(kp, data=data), path)
    return path


def test_sessions_finish_while_a_failing_one_is_recorded(ray_head, tmp_path, capsys):
    out = str(tmp_path / "s.zarr")
    blind = _blind_keypoints(tmp_path / "blind.npz")
    cfg = RunConfig(out=out, synthetic_sessions=2,
                    synthetic=SyntheticConfig(frames=40, noise_px=2.0),
                    sessions=(SessionConfig(name="blind", keypoints=str(blind)),))
    report = run_pipeline(cfg, progress=False)
    assert sorted(report.complete) == ["synthetic_0000", "synthetic_0001"]
    reasons = {f["session"]: f["reason"] for f in report.failures}
    assert "['cam_02'] never see the person" in reasons["blind"]
    store = PoseStore.open(out)
    assert store.session_ids(complete_only=True) == ["synthetic_0000", "synthetic_0001"]
    failure = store.session("blind").attrs["failure"]
    assert failure["stage"] == "calibrate" and "never see the person" in failure["reason"]
    on_disk = json.loads(Path(out + ".report.json").read_text())
    assert on_disk["sessions"]["blind"]["status"] == "failed"
    for sid in ("synthetic_0000", "synthetic_0001"):
        s = store.session(sid)
        err = np.linalg.norm(s.pseudo3d[:] - s.gt3d[:], axis=-1)
        labelled = s.pseudo3d_weight[:] > 0
        assert labelled.mean() > 0.9
        assert np.median(err[labelled]) < 0.03          # metres, with the true cameras
    capsys.readouterr()
    assert main(["inspect", out]) == 0
    text = capsys.readouterr().out
    assert "3 sessions, 2 complete" in text and "FAILED blind at calibrate" in text
    row = next(line for line in text.splitlines() if line.startswith("synthetic_0000"))
    assert row.split()[1:6] == ["complete", "40", "4", "1", "given"]   # 1 person


def _demo_config(shared_data: Path, out: Path, **detect) -> RunConfig:
    root = shared_data / "pose2sim_demo"
    session = SessionConfig(name="demo", videos=str(root / "single_person/videos"),
                            cameras=str(root / "calibration/Calib_qualisys.toml"))
    return RunConfig(out=str(out), sessions=(session,), ingest=IngestConfig(max_frames=16),
                     detect=DetectConfig(chunk_frames=4, max_side=640, **detect))


def _kill_a_worker_after(store_url: str, n_units: int, head_pid: int, process_tree) -> dict:
    """In a thread: once ``n_units`` units are marked done, SIGKILL one detector actor."""
    seen = {}

    def watch():
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                done = PoseStore.open(store_url).session("demo").units_done()
            except (KeyError, FileNotFoundError, ValueError):
                done = np.zeros(0, bool)
            if done.sum() >= n_units:
                workers = [p for p, cmd in process_tree(head_pid) if "DetectWorker" in cmd]
                if workers:
                    os.kill(workers[0], signal.SIGKILL)
                    seen.update(killed=workers[0], done_at_kill=int(done.sum()),
                                total=done.size)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    seen["thread"] = thread
    return seen


@pytest.fixture(scope="module")
def demo_reference(ray_head, shared_data, tmp_path_factory):
    """The demo's first 16 frames (4 cameras, units of 4 frames) run without interruption."""
    cfg = _demo_config(shared_data, tmp_path_factory.mktemp("demo") / "ref.zarr")
    return cfg, run_pipeline(cfg, progress=False)


def test_real_videos_through_the_detector_pool(demo_reference):
    cfg, report = demo_reference
    assert report.complete == ["demo"] and report.stages["detect"]["units"] == 16
    s = PoseStore.open(cfg.out).session("demo")
    assert (s.keypoints2d[..., 2] > 0).mean() > 0.9                # 2D for nearly every joint
    assert (s.pseudo3d_weight[:] > 0).mean() > 0.9
    # MediaPipe's joints against the lab cameras: within a few pixels, not tens
    assert np.median(s.reproj_error[:][s.pseudo3d_weight[:] > 0]) < 15.0
    # cam01 and cam02 decode as 1080 x 1920 where the lab calibration says 1088 x 1920: said
    sizes = [w for w in report.warnings if "the calibration is for 1088x1920" in w]
    assert [w.split(":")[1].strip() for w in sizes] == ["cam01", "cam02"]
    assert all(w.startswith("session demo: ") and "keypoints' are 1080x1920" in w for w in sizes)


def test_a_killed_detector_worker_changes_nothing(demo_reference, ray_head, tmp_path,
                                                  process_tree, same_sessions):
    reference, _ = demo_reference
    killed = replace(reference, out=str(tmp_path / "killed.zarr"))
    seen = _kill_a_worker_after(killed.out, 3, ray_head["pid"], process_tree)
    report = run_pipeline(killed, progress=False)
    seen["thread"].join(5)
    assert "killed" in seen and seen["done_at_kill"] < seen["total"], seen
    assert report.complete == ["demo"] and not report.failures
    same_sessions(reference.out, killed.out, ["demo"])


def test_resume_redoes_only_missing_units(demo_reference, tmp_path, same_sessions):
    reference, _ = demo_reference
    partial = replace(reference, out=str(tmp_path / "partial.zarr"))
    pending = ingest_session(partial.out, partial.sessions[0], partial)
    worker = DetectWorker(partial.detect, "h36m17")
    for u, c in pending.pending_units[:5]:          # as if killed after five units
        worker.run(DetectUnit(partial.out, "demo", u, c, pending.streams[c],
                              *pending.unit_frames[u]))
    report = run_pipeline(partial, progress=False)
    assert report.stages["detect"]["units"] == 16 - 5
    same_sessions(reference.out, partial.out, ["demo"])
    again = run_pipeline(partial, progress=False)   # complete: nothing to do
    assert again.sessions["demo"]["status"] == "already complete"
    assert "detect" not in again.stages and "triangulate" not in again.stages
