"""MediaPipe detector and video reading, on the real Pose2Sim demo videos."""
import numpy as np
import pytest

from epiflow.detection.detectors import (MediaPipeDetector, list_videos, read_frames,
                                        video_info)
from epiflow.skeleton import BLAZEPOSE33


@pytest.fixture(scope="module")
def videos(shared_data):
    return shared_data / "pose2sim_demo" / "single_person" / "videos"


def test_video_info_and_natural_order(videos, tmp_path):
    assert [p.stem for p in list_videos(videos)] == ["cam01", "cam02", "cam03", "cam04"]
    info = video_info(videos / "cam01.mp4")
    assert (info.n_frames, info.fps, info.size) == (100, 60.0, (1080, 1920))
    for name in ("cam10.mp4", "cam2.mp4", "cam1.mp4"):
        (tmp_path / name).write_bytes(b"")
    assert [p.stem for p in list_videos(tmp_path)] == ["cam1", "cam2", "cam10"]


def test_detector_finds_the_person_where_the_lab_says(videos, shared_data):
    frames = read_frames(videos / "cam03.mp4", 40, 48)
    assert frames.shape == (8, 1920, 1088, 3) and frames.dtype == np.uint8
    kp = MediaPipeDetector()(frames)
    assert kp.shape == (8, 33, 3)
    body = [BLAZEPOSE33.index(j) for j in ("left_hip", "right_hip", "left_shoulder",
                                             "right_shoulder", "left_knee", "right_knee")]
    assert np.all(kp[:, body[:4], 2] > 0.9) and np.isfinite(kp[:, body, :2]).all()
    # the person's hips lie between the shoulders and the knees, in pixels, in every frame
    hip_y = kp[:, body[:2], 1].mean(1)
    assert np.all(kp[:, body[2:4], 1].mean(1) < hip_y) and np.all(hip_y < kp[:, body[4:], 1].mean(1))
    # a person of plausible size: shoulder-to-knee span of 150-1500 px in a 1920 px tall frame
    span = kp[:, body[4:], 1].mean(1) - kp[:, body[2:4], 1].mean(1)
    assert np.all((span > 150) & (span < 1500))


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_videos(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no video files"):
        list_videos(tmp_path)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    with pytest.raises(ValueError, match="broken.mp4"):
        video_info(broken)
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\) uint8"):
        MediaPipeDetector()(np.zeros((2, 10, 10), np.uint8))


def test_a_folder_given_as_one_video_is_named_as_a_folder(tmp_path):
    """`epiflow predict --video videos/` (the folder `run --videos` takes) said "video
    '.../videos' does not exist" of a folder that exists."""
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "cam02.mp4").write_bytes(b"")
    (folder / "cam01.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match=r"'.*videos' is a folder; expected one video file, "
                                         r"e\.g\. '.*videos/cam01\.mp4'"):
        video_info(folder)
    with pytest.raises(ValueError, match=r"is a folder; expected one video file$"):
        video_info(tmp_path)  # a folder without videos in it: no example
