"""2D pose detectors and video reading.

The default detector is MediaPipe's pose model (BlazePose, 33 joints), whose weights ship inside
the ``mediapipe==0.10.21`` wheel, so nothing is downloaded at run time. A detector is a callable
object, loaded once (a Ray actor builds one in its constructor) and fed batches of frames of one
camera: ``detector(frames (N, H, W, 3) uint8 RGB) -> (N, J, 3)`` = x, y in pixels, confidence.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from epiflow.keypoints import Keypoints
from epiflow.naming import natural_key

__all__ = ["MediaPipeDetector", "VideoInfo", "video_info", "read_frames", "list_videos",
           "detect_videos", "detect_video_streams", "open_video", "VIDEO_SUFFIXES"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


@dataclass(frozen=True)
class VideoInfo:
    """What a video file says of itself: frame count, frames per second, (width, height) pixels."""

    path: Path
    n_frames: int
    fps: float
    size: tuple[int, int]


def open_video(path):
    """An opened ``cv2.VideoCapture`` of ``path``; errors name the file and say what to do."""
    import cv2
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        raise ValueError(f"video {str(path)!r} is a folder; expected one video file"
                         + (f", e.g. {str(path / inside[0])!r}" if inside else ""))
    if not path.is_file():
        raise FileNotFoundError(f"video {str(path)!r} does not exist")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"video {str(path)!r} cannot be opened by OpenCV/FFmpeg; "
                         f"re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)")
    return cap


def video_info(path) -> VideoInfo:
    """Frame count, fps and size of a video, from its container (no full decode)."""
    import cv2
    cap = open_video(path)
    try:
        info = VideoInfo(Path(path), int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
                         float(cap.get(cv2.CAP_PROP_FPS)),
                         (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                          int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))))
    finally:
        cap.release()
    if info.n_frames <= 0 or info.size[0] <= 0:
        raise ValueError(f"video {str(path)!r} reports {info.n_frames} frames of size {info.size}; "
                         f"it is empty or unreadable")
    return info


def read_frames(path, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Decode frames ``start:stop`` of a video.

    Returns:
        (N, H, W, 3) uint8 RGB. Raises ValueError naming the file when fewer frames decode than
        asked for (a truncated or corrupt video).
    """
    import cv2
    cap = open_video(path)
    try:
        if start:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        stop = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if stop is None else stop
        frames = []
        for _ in range(start, stop):
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if len(frames) != stop - start:
        raise ValueError(f"video {str(path)!r}: decoded {len(frames)} frames of {start}:{stop}; "
                         f"the file is truncated or corrupt")
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)


def list_videos(folder) -> list[Path]:
    """Video files of a folder, one per camera, in natural order (cam2 before cam10)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"videos folder {str(folder)!r} does not exist")
    videos = sorted((p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES),
                    key=lambda p: natural_key(p.name))
    if not videos:
        raise ValueError(f"videos folder {str(folder)!r} holds no video files "
                         f"({', '.join(VIDEO_SUFFIXES)}); put one video per camera in it")
    return videos


class MediaPipeDetector:
    """MediaPipe's pose model (33 BlazePose joints), one person per frame.

    Args:
        model_complexity: 1 (full) is the model that ships inside the wheel; 0 (lite) and 2
            (heavy) are downloaded at first use, which fails on a machine without internet.
        min_confidence: detection and tracking confidence thresholds.
        video_mode: track across consecutive frames of a batch (faster and steadier); the tracker
            restarts with each call, so feed consecutive frames of one camera per call.
    """

    joint_set = "blazepose33"

    def __init__(self, model_complexity: int = 1, min_confidence: float = 0.5,
                 video_mode: bool = True):
        if model_complexity not in (0, 1, 2):
            raise ValueError(f"model_complexity must be 0, 1 or 2; got {model_complexity!r}")
        self.model_complexity = model_complexity
        self.min_confidence = min_confidence
        self.video_mode = video_mode

    def _new_model(self):
        import mediapipe as mp
        return mp.solutions.pose.Pose(static_image_mode=not self.video_mode,
                                      model_complexity=self.model_complexity,
                                      min_detection_confidence=self.min_confidence,
                                      min_tracking_confidence=self.min_confidence)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Detect the person in each frame.

        Args:
            frames: (N, H, W, 3) uint8 RGB, consecutive frames of one camera.

        Returns:
            (N, 33, 3) float64: x, y pixels and the landmark's visibility as confidence;
            NaN with confidence 0 where no person was found.
        """
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be (N, H, W, 3) uint8 RGB; got {frames.shape} "
                             f"{frames.dtype}")
        out = np.full((len(frames), 33, 3), np.nan)
        out[..., 2] = 0.0
        h, w = frames.shape[1:3]
        with self._new_model() as model:
            for i, frame in enumerate(frames):
                result = model.process(frame)
                if result.pose_landmarks is None:
                    continue
                lm = result.pose_landmarks.landmark
                out[i] = [(p.x * w, p.y * h, p.visibility) for p in lm]
        return out


def detect_videos(folder, detector: MediaPipeDetector | None = None,
                  chunk_frames: int = 64, progress: bool = True) -> Keypoints:
    """Detect 2D poses in a folder of synchronized videos, one per camera, in one process.

    The videos must have the same frame count; camera names are the file stems.

    Args:
        detector: MediaPipe's one person (default), or a detector of several people
            (:class:`~epiflow.detection.tracking.MultiPersonPoseDetector`, reset per camera:
            its tracks are carried from chunk to chunk of one video).

    Returns:
        :class:`Keypoints` (T, C, 33, 3) in ``blazepose33``; (T, C, P, 33, 3) from a detector of
        P people.
    """
    from tqdm import tqdm
    detector = detector or MediaPipeDetector()
    infos = [video_info(p) for p in list_videos(folder)]
    counts = {i.path.name: i.n_frames for i in infos}
    if len(set(counts.values())) > 1:
        raise ValueError(f"videos in {str(folder)!r} have different frame counts {counts}; "
                         f"synchronized cameras need the same number of frames: trim them")
    T = infos[0].n_frames
    out = None
    with tqdm(total=T * len(infos), desc="detect", unit="frame", disable=not progress) as bar:
        for c, info in enumerate(infos):
            if hasattr(detector, "reset"):
                detector.reset()
            for start in range(0, T, chunk_frames):
                stop = min(T, start + chunk_frames)
                kp = detector(read_frames(info.path, start, stop))
                if out is None:
                    out = np.zeros((T, len(infos)) + kp.shape[1:])
                out[start:stop, c] = kp
                bar.update(stop - start)
    fps = infos[0].fps or None
    return Keypoints(out, detector.joint_set, tuple(i.path.stem for i in infos),
                     np.array([i.size for i in infos]), fps)


def detect_video_streams(folder, detector: MediaPipeDetector | None = None,
                         chunk_frames: int = 64, progress: bool = True
                         ) -> tuple[list[np.ndarray], list[VideoInfo], str]:
    """Detect 2D poses in a folder of videos that need not be synchronized: each video on its
    own frames (one person, MediaPipe by default).

    Returns:
        per camera (T_c, 33, 3) pixels, the videos' :class:`VideoInfo` (name, rate, size) in
        natural order, and the joint set (``blazepose33``); see
        :class:`epiflow.calibration.sync.CameraStreams`.
    """
    from tqdm import tqdm
    detector = detector or MediaPipeDetector()
    infos = [video_info(p) for p in list_videos(folder)]
    tracks = []
    with tqdm(total=sum(i.n_frames for i in infos), desc="detect", unit="frame",
              disable=not progress) as bar:
        for info in infos:
            track = np.zeros((info.n_frames, 33, 3))
            for start in range(0, info.n_frames, chunk_frames):
                stop = min(info.n_frames, start + chunk_frames)
                track[start:stop] = detector(read_frames(info.path, start, stop))
                bar.update(stop - start)
            tracks.append(track)
    return tracks, infos, detector.joint_set
