"""Detection units without Ray: frame reading (exact after any seek), the worker writing its
unit, and the scheduler's stream affinity."""
from __future__ import annotations

import numpy as np
import pytest

from epiflow.pipeline.config import DetectConfig
from epiflow.pipeline.detect import DetectUnit, DetectWorker, FrameReader
from epiflow.pipeline.scheduler import UnitScheduler
from epiflow.store import PoseStore


def _level(frame: np.ndarray) -> int:
    return int(round(frame.mean() / 12))


class TestFrameReader:
    def test_units_read_in_any_order_give_the_same_frames(self, tmp_path, make_video):
        path = str(make_video(tmp_path / "cam.mp4", 20))
        reader = FrameReader()
        in_order = [_level(f) for a in (0, 5, 10, 15) for f in reader.read(path, a, a + 5)]
        assert in_order == list(range(20))
        jumbled = {a: [_level(f) for f in FrameReader().read(path, a, a + 5)] for a in (15, 5)}
        again = [_level(f) for f in reader.read(path, 10, 15)]   # backwards: reopens
        assert jumbled == {15: list(range(15, 20)), 5: list(range(5, 10))}
        assert again == list(range(10, 15))

    def test_image_folder(self, tmp_path):
        import cv2
        for i in range(6):
            cv2.imwrite(str(tmp_path / f"f{i}.png"), np.full((8, 8, 3), 12 * i, np.uint8))
        assert [_level(f) for f in FrameReader().read(str(tmp_path), 2, 5)] == [2, 3, 4]
        with pytest.raises(ValueError, match="has 6 images, frames 4:8"):
            FrameReader().read(str(tmp_path), 4, 8)

    def test_short_video_names_the_file(self, tmp_path, make_video):
        path = str(make_video(tmp_path / "short.mp4", 6))
        with pytest.raises(ValueError, match=r"short.mp4.*decoded 2 of frames 4:10"):
            FrameReader().read(path, 4, 10)


class TestScheduler:
    @staticmethod
    def _units(session, cams, chunks):
        return [DetectUnit("u", session, k, c, f"{session}{c}", 10 * k, 10 * k + 10)
                for c in range(cams) for k in range(chunks)]

    def test_workers_keep_their_stream_then_steal(self):
        sched = UnitScheduler()
        sched.add(self._units("s", cams=2, chunks=3)[::-1])
        got = {0: [], 1: []}
        for _ in range(3):
            for w in (0, 1):
                u = sched.next_for(w)
                got[w].append((u.camera, u.unit))
        assert got[0] == [(0, 0), (0, 1), (0, 2)] and got[1] == [(1, 0), (1, 1), (1, 2)]
        assert sched.next_for(0) is None and len(sched) == 0

    def test_idle_worker_steals_from_the_tail(self):
        sched = UnitScheduler()
        sched.add(self._units("s", cams=1, chunks=4))
        assert sched.next_for(0).unit == 0
        assert sched.next_for(1).unit == 3          # stolen from the end
        assert sched.next_for(0).unit == 1
        assert sched.drop_session("s") == 1 and sched.next_for(0) is None


def test_worker_detects_and_writes_one_unit(shared_data, tmp_path):
    """MediaPipe in the worker on 6 real frames: the unit's chunk and marker, nothing else."""
    video = shared_data / "pose2sim_demo/single_person/videos/cam03.mp4"
    store = PoseStore.open(tmp_path / "s.zarr", "a")
    s = store.create_session("demo", n_frames=12, camera_names=["cam03", "x"],
                             joint_set="h36m17", image_size=[[1088, 1920]] * 2, fps=60.0,
                             chunk_frames=6, crop_size=32, source_joint_set="blazepose33")
    worker = DetectWorker(DetectConfig(max_side=640), "h36m17")
    res = worker.run(DetectUnit(str(tmp_path / "s.zarr"), "demo", 1, 0, str(video), 6, 12))
    assert res.frames == 6 and res.found == 1.0
    assert s.units_done().tolist() == [[False, False], [True, False]]
    kp = s.keypoints2d[6:12, 0, 0]                       # slot 0: the one person (P = 1)
    assert (kp[..., 2] > 0.5).mean() > 0.8 and np.isnan(s.keypoints2d[0:6]).all()
    xy = kp[..., :2][kp[..., 2] > 0]
    assert (xy[:, 0] > 0).all() and (xy[:, 0] < 1088).all() and (xy[:, 1] < 1920).all()
    src = s.keypoints2d_source[6:12, 0, 0]               # BlazePose's own 33 joints
    assert np.allclose(kp[:, 11, :2], src[:, 11, :2], equal_nan=True)    # left shoulder
    assert np.allclose(kp[:, 0, :2], (src[:, 23, :2] + src[:, 24, :2]) / 2, atol=1e-3)  # pelvis
    box = s.crop_boxes[6, 0]
    assert box[2] - box[0] > 300          # the person is most of the portrait frame's height
    assert s.crops[6:12, 0].mean() > 10 and not s.crops[0:6].any()


def test_worker_with_several_slots_finds_both_people(shared_data, tmp_path):
    """detect.max_people = 2 on the two-person Pose2Sim take: the multi-person detector fills
    both slots of every frame, at two places, mapped to the store's joints; crops are slot 0's."""
    video = shared_data / "pose2sim_demo/multi_person/videos/cam01.mp4"
    store = PoseStore.open(tmp_path / "s.zarr", "a")
    s = store.create_session("two", n_frames=8, camera_names=["cam01"], joint_set="h36m17",
                             image_size=[[1088, 1920]], fps=60.0, chunk_frames=4, crop_size=32,
                             max_people=2, source_joint_set="blazepose33")
    worker = DetectWorker(DetectConfig(max_side=640, max_people=2), "h36m17")
    res = worker.run(DetectUnit(str(tmp_path / "s.zarr"), "two", 1, 0, str(video), 4, 8))
    assert res.frames == 4 and res.found == 1.0
    kp = s.keypoints2d[4:8, 0]                                   # (4, P=2, 17, 3)
    assert kp.shape == (4, 2, 17, 3) and s.keypoints2d_source[4:8, 0].shape == (4, 2, 33, 3)
    assert ((kp[..., 2] > 0.3).mean(-1) > 0.6).all()            # both slots hold a person
    pelvis = kp[:, :, 0, :2]
    assert (np.linalg.norm(pelvis[:, 0] - pelvis[:, 1], axis=-1) > 100).all()   # two places
    assert s.crops[4:8, 0].mean() > 10 and np.isfinite(s.crop_boxes[4:8, 0]).all()
