"""Ingest and run config: sessions planned from a config, bad inputs refused with clear errors,
sessions created in the store (and found again on resume)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from epiflow.config import ConfigError
from epiflow.pipeline.config import (RunConfig, SessionConfig, SyntheticConfig, load_run_config,
                                     session_fingerprint)
from epiflow.pipeline.ingest import ingest_session, plan_sessions, read_source
from epiflow.store import PoseStore, StoreError

REPO = Path(__file__).resolve().parents[2]


class TestConfig:
    def test_demo_config_loads_with_paths_from_its_folder(self):
        cfg = load_run_config(REPO / "configs" / "pose2sim_demo.toml")
        assert cfg.sessions[0].videos.endswith("shared/data/pose2sim_demo/single_person/videos")
        assert Path(cfg.sessions[0].videos).is_absolute() and cfg.detect.num_cpus == 1.0

    def test_unknown_key_and_wrong_type(self, tmp_path):
        bad = tmp_path / "bad.toml"
        bad.write_text('out = "x.zarr"\n[detect]\nchunk_frame = 10\n')
        with pytest.raises(ConfigError, match=r"detect\.chunk_frame.*accepted keys.*chunk_frames"):
            load_run_config(bad)
        bad.write_text('out = "x.zarr"\n[detect]\nchunk_frames = "ten"\n')
        with pytest.raises(ConfigError, match=r"detect\.chunk_frames.*expected int"):
            load_run_config(bad)

    def test_session_needs_exactly_one_source(self):
        with pytest.raises(ConfigError, match="exactly one of"):
            RunConfig(sessions=(SessionConfig(name="a", videos="v", keypoints="k"),))
        with pytest.raises(ConfigError, match="exactly one of"):
            RunConfig(sessions=(SessionConfig(name="a"),))

    def test_fingerprint_ignores_resources_only(self):
        s = SessionConfig(name="a", videos="/v")
        base = RunConfig(sessions=(s,))
        more_cpus = RunConfig(sessions=(s,), detect=base.detect.__class__(num_cpus=2.0))
        other_chunks = RunConfig(sessions=(s,), detect=base.detect.__class__(chunk_frames=7))
        assert session_fingerprint(base, s) == session_fingerprint(more_cpus, s)
        assert session_fingerprint(base, s) != session_fingerprint(other_chunks, s)


class TestPlan:
    def test_names_from_folders_and_synthetic_seeds(self, tmp_path):
        cfg = RunConfig(sessions=(SessionConfig(videos=str(tmp_path / "take3" / "videos")),),
                        synthetic_sessions=2, synthetic=SyntheticConfig(seed=5))
        plan = plan_sessions(cfg)
        assert [s.name for s in plan] == ["take3", "synthetic_0000", "synthetic_0001"]
        assert [s.synthetic.seed for s in plan[1:]] == [5, 6]

    def test_duplicate_names_and_no_sessions(self):
        cfg = RunConfig(sessions=(SessionConfig(name="a", videos="x"),
                                  SessionConfig(name="a", videos="y")))
        with pytest.raises(ConfigError, match=r"repeated: \['a'\]"):
            plan_sessions(cfg)
        with pytest.raises(ConfigError, match="no sessions"):
            plan_sessions(RunConfig())

    def test_sessions_dir_in_natural_order(self, tmp_path, make_video):
        for name in ("s10", "s2"):
            make_video(tmp_path / name / "videos" / "cam1.mp4", 3)
        (tmp_path / "s2" / "cameras.toml").write_text("")
        plan = plan_sessions(RunConfig(sessions_dir=str(tmp_path)))
        assert [s.name for s in plan] == ["s2", "s10"]
        assert plan[0].cameras.endswith("cameras.toml") and plan[1].cameras == ""


class TestVideoSources:
    def test_cameras_in_natural_order(self, tmp_path, make_video):
        for name in ("cam10", "cam2", "cam1"):
            make_video(tmp_path / f"{name}.mp4", 6)
        src = read_source(SessionConfig(name="s", videos=str(tmp_path)))
        assert src.camera_names == ["cam1", "cam2", "cam10"]
        assert src.n_frames == 6 and src.fps == 30.0 and src.image_size.tolist() == [[64, 48]] * 3

    def test_different_lengths_synchronized_or_error_or_trims(self, tmp_path, make_video):
        make_video(tmp_path / "cam1.mp4", 8)
        make_video(tmp_path / "cam2.mp4", 5)
        s = SessionConfig(name="s", videos=str(tmp_path))
        src = read_source(s)  # ingest.sync = "auto": each camera on its own frames
        assert src.n_frames == 8 and src.camera_frames == [8, 5] and src.camera_fps == [30, 30]
        assert "not synchronized" in src.warnings[0]
        with pytest.raises(ValueError, match=r"different frame counts.*'cam1.mp4': 8.*'cam2.mp4': 5"
                                             r".*drop --sync off"):
            read_source(s, sync="off")
        src = read_source(s, trim=True)
        assert src.n_frames == 5 and "trimmed all to the first 5 frames" in src.warnings[0]

    def test_different_frame_rates(self, tmp_path, make_video):
        make_video(tmp_path / "cam1.mp4", 5, fps=30)
        make_video(tmp_path / "cam2.mp4", 5, fps=25)
        s = SessionConfig(name="s", videos=str(tmp_path))
        assert read_source(s).camera_fps == [30, 25]
        with pytest.raises(ValueError, match="different frame rates"):
            read_source(s, sync="off")

    def test_empty_folder_and_unreadable_video(self, tmp_path):
        with pytest.raises(ValueError, match="holds no video files"):
            read_source(SessionConfig(name="s", videos=str(tmp_path)))
        (tmp_path / "cam1.mp4").write_bytes(b"not a video at all" * 100)
        with pytest.raises(ValueError, match="cam1.mp4"):
            read_source(SessionConfig(name="s", videos=str(tmp_path)))

    def test_frame_folders(self, tmp_path):
        import cv2
        for cam in ("c1", "c2"):
            (tmp_path / cam).mkdir()
            for i in range(4):
                cv2.imwrite(str(tmp_path / cam / f"{i:03d}.png"), np.zeros((20, 30, 3), np.uint8))
        src = read_source(SessionConfig(name="s", frames=str(tmp_path), fps=25.0))
        assert src.camera_names == ["c1", "c2"] and src.n_frames == 4 and src.fps == 25.0
        assert src.image_size.tolist() == [[30, 20], [30, 20]]


class TestIngestSession:
    def test_synthetic_passes_through_and_resumes(self, tmp_path):
        url = str(tmp_path / "s.zarr")
        session = SessionConfig(name="syn", synthetic=SyntheticConfig(frames=30, n_cameras=3))
        cfg = RunConfig(out=url, sessions=(session,))
        first = ingest_session(url, session, cfg)
        assert first.pending_units == [] and first.n_frames == 30 and not first.complete
        s = PoseStore.open(url, "a").session("syn")
        assert s.status["ingest"] == "done" and s.status["detect"] == "done"
        assert s.units_done().all() and s.gt3d is not None and s.attrs["gt3d_frame"] == "gt_cameras"
        assert (s.keypoints2d[..., 2] > 0).mean() > 0.8
        kp = s.keypoints2d[:]
        # the same settings again: found, not rewritten
        s.group["keypoints2d"][0, 0, 0, 0, 0] = -1.0
        ingest_session(url, session, cfg)
        assert s.keypoints2d[0, 0, 0, 0, 0] == -1.0
        # other settings on a complete session: refused
        for stage in ("calibrate", "triangulate"):
            s.set_status(stage, "done")
        s.mark_complete()
        other = RunConfig(out=url, sessions=(session,), detect=cfg.detect.__class__(chunk_frames=7))
        with pytest.raises(StoreError, match="other settings.*--overwrite"):
            ingest_session(url, session, other)
        assert np.isfinite(kp).any()

    def test_video_session_lists_every_unit(self, tmp_path, make_video):
        for name in ("a", "b"):
            make_video(tmp_path / "v" / f"{name}.mp4", 12)
        url = str(tmp_path / "s.zarr")
        session = SessionConfig(name="v", videos=str(tmp_path / "v"))
        cfg = RunConfig(out=url, sessions=(session,),
                        detect=RunConfig().detect.__class__(chunk_frames=5))
        res = ingest_session(url, session, cfg)
        assert sorted(res.pending_units) == [(u, c) for u in range(3) for c in range(2)]
        assert res.unit_frames == [(0, 5), (5, 10), (10, 12)]
        assert [Path(p).name for p in res.streams] == ["a.mp4", "b.mp4"]
