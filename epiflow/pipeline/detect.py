"""Detect: 2D poses on chunks of frames of one camera, each chunk written into its own region of
the store by the worker that computed it.

:class:`DetectWorker` is a plain class (a Ray actor in the pipeline, see
:mod:`epiflow.pipeline.orchestrate`): it loads the detector once in its constructor, then
:meth:`DetectWorker.run` takes a :class:`DetectUnit` (frames ``start:stop`` of one camera's
video or image folder), decodes, detects, maps to the store's joint set, writes the unit's
chunks and then its done-marker. A worker keeps its video open between units, so consecutive
units of one camera decode without seeking.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from epiflow.detection.crops import person_crops
from epiflow.detection.detectors import MediaPipeDetector, open_video
from epiflow.pipeline.config import DetectConfig
from epiflow.store import PoseStore, Session

__all__ = ["DetectUnit", "UnitResult", "FrameReader", "DetectWorker"]


@dataclass(frozen=True)
class DetectUnit:
    """One work unit: frames ``start:stop`` of camera ``camera`` of a session.

    ``stream`` is the camera's video file or image folder; ``unit`` is the chunk index along T.
    """

    store_url: str
    session_id: str
    unit: int
    camera: int
    stream: str
    start: int
    stop: int


@dataclass(frozen=True)
class UnitResult:
    """What a unit did: frames, wall-clock start and end (``time.time()`` seconds), seconds spent
    decoding and detecting, CPU seconds of the worker's process (all its threads), and the
    fraction of frames with a person."""

    session_id: str
    unit: int
    camera: int
    frames: int
    started: float
    finished: float
    decode_s: float
    detect_s: float
    cpu_s: float
    found: float


class FrameReader:
    """Reads frames of a video or image folder in order, keeping a video open between reads so
    that a read that starts where the last one stopped needs no seek.

    Seeking is done by decoding from the start (``grab``), never by the container's frame index,
    so a frame's pixels do not depend on which reads came before (resume gives the same result).

    Args:
        decode_options: FFmpeg options for OpenCV's reader, ``key;value|key;value``
            (``skip_loop_filter;all`` decodes H.264 about a third faster, slightly softer).
    """

    def __init__(self, decode_options: str = ""):
        self.decode_options = decode_options
        self._path: str | None = None
        self._cap = None
        self._pos = 0

    def _open(self, path: str):
        self.close()
        with _environ("OPENCV_FFMPEG_CAPTURE_OPTIONS", self.decode_options):
            self._cap, self._path, self._pos = open_video(path), path, 0

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
        self._cap, self._path, self._pos = None, None, 0

    def read(self, path: str, start: int, stop: int) -> list[np.ndarray]:
        """Frames ``start:stop`` as a list of (H, W, 3) uint8 BGR arrays.

        Raises ValueError naming the file when fewer frames decode than asked for.
        """
        if Path(path).is_dir():
            return _read_images(path, start, stop)
        if self._cap is None or self._path != path or self._pos > start:
            self._open(path)
        while self._pos < start:
            if not self._cap.grab():
                self._truncated(path, start, stop, 0)
            self._pos += 1
        frames = []
        for _ in range(start, stop):
            ok, frame = self._cap.read()
            if not ok:
                self._truncated(path, start, stop, len(frames))
            frames.append(frame)
            self._pos += 1
        return frames

    def _truncated(self, path, start, stop, got):
        self.close()
        raise ValueError(f"video {path!r}: decoded {got} of frames {start}:{stop} (the "
                         f"container says more); the file is truncated or corrupt: re-encode or "
                         f"trim it")


@contextlib.contextmanager
def _environ(key: str, value: str):
    """Set an environment variable for the block (nothing when ``value`` is empty)."""
    before = os.environ.get(key)
    if value:
        os.environ[key] = value
    try:
        yield
    finally:
        if value and before is None:
            del os.environ[key]
        elif value:
            os.environ[key] = before


def _read_images(folder: str, start: int, stop: int) -> list[np.ndarray]:
    import cv2
    from epiflow.pipeline.ingest import list_images
    files = list_images(folder)[start:stop]
    if len(files) != stop - start:
        raise ValueError(f"frames folder {folder!r}: has {len(files) + start} images, frames "
                         f"{start}:{stop} asked for")
    frames = [cv2.imread(str(f)) for f in files]
    bad = [str(f) for f, im in zip(files, frames) if im is None]
    if bad:
        raise ValueError(f"unreadable images: {bad[:3]}{' ...' if len(bad) > 3 else ''}")
    return frames


def _to_detector(frames: list[np.ndarray], max_side: int) -> tuple[np.ndarray, float]:
    """(N, h, w, 3) uint8 RGB for the detector and the factor from its pixels to the frames'."""
    import cv2
    H, W = frames[0].shape[:2]
    scale = 1.0 if not max_side or max(H, W) <= max_side else max_side / max(H, W)
    size = (round(W * scale), round(H * scale))
    out = np.empty((len(frames), size[1], size[0], 3), np.uint8)
    for i, f in enumerate(frames):
        small = f if scale == 1.0 else cv2.resize(f, size, interpolation=cv2.INTER_AREA)
        cv2.cvtColor(small, cv2.COLOR_BGR2RGB, dst=out[i])
    return out, (W / size[0], H / size[1])


class DetectWorker:
    """One 2D detector, loaded once, fed units of one camera's frames.

    Args:
        cfg: the detect settings (model, ``max_side``, ``max_people``: 1 runs MediaPipe's
            single-person detector, as fast as before; more runs
            :class:`~epiflow.detection.tracking.MultiPersonPoseDetector`, its tracks restarted
            at each unit so that results do not depend on which actor ran which unit).
        joint_set: the store's joint set (``h36m17``: detections are mapped onto it).
    """

    def __init__(self, cfg: DetectConfig, joint_set: str):
        from epiflow.pipeline.workers import warm_up
        self._warm = warm_up("cv2", "mediapipe.python.solutions.pose", "epiflow.skeleton")
        self.cfg = cfg
        self.detector = _detector(cfg)
        self.joint_set = joint_set
        self.reader = FrameReader(cfg.decode_options)
        self._sessions: dict[tuple[str, str], Session] = {}

    def _session(self, url: str, sid: str) -> Session:
        if (url, sid) not in self._sessions:
            self._sessions[(url, sid)] = PoseStore.open(url, "a").session(sid)
        return self._sessions[(url, sid)]

    def detect(self, frames: list[np.ndarray]) -> np.ndarray:
        """(N, P, J_detector, 3) keypoints in the frames' pixels, P = ``cfg.max_people``."""
        rgb, (sx, sy) = _to_detector(frames, self.cfg.max_side)
        if self.cfg.max_people > 1:
            self.detector.reset()
            kp = np.asarray(self.detector(rgb), np.float64)
        else:
            kp = self.detector(rgb)[:, None]
        kp[..., 0] *= sx
        kp[..., 1] *= sy
        return kp

    def run(self, unit: DetectUnit) -> UnitResult:
        """Decode, detect, write the unit's chunks, then mark it done."""
        from epiflow.skeleton import map_to_h36m
        started, cpu = time.time(), time.process_time()
        session = self._session(unit.store_url, unit.session_id)
        # an unsynchronized camera has its own count (rows past it stay empty)
        stop = min(unit.stop, session.camera_frame_count(unit.camera))
        frames = self.reader.read(unit.stream, unit.start, stop) if stop > unit.start else []
        decoded = time.time()
        kp = _padded(self.detect(frames) if frames else None, unit.stop - unit.start,
                     self.cfg.max_people, self.detector.joint_set)
        detected = time.time()
        crops = boxes = None
        if session.crops is not None:  # of slot 0 (the store's crops are one person's)
            crops, boxes = person_crops(frames, kp[:, 0], session.crops.shape[2])
        out = kp if self.joint_set == self.detector.joint_set else \
            map_to_h36m(kp, self.detector.joint_set, confidence=True)
        session.write_unit(unit.unit, unit.camera, out, crops, boxes,
                           kp if session.keypoints2d_source is not None else None)
        return UnitResult(unit.session_id, unit.unit, unit.camera, len(frames), started,
                          time.time(), decoded - started, detected - decoded,
                          time.process_time() - cpu,
                          float(np.mean(kp[..., 2].max(-1).max(-1) > 0)))


def _padded(kp: np.ndarray | None, n: int, slots: int, joint_set: str) -> np.ndarray:
    """(n, P, J, 3) detections: ``kp``'s frames, then missing ones (NaN, confidence 0) up to
    ``n`` (a unit past an unsynchronized camera's last frame)."""
    from epiflow.skeleton import get_joint_set
    if kp is not None and len(kp) == n:
        return kp
    out = np.full((n, slots, len(get_joint_set(joint_set)), 3), np.nan)
    out[..., 2] = 0.0
    if kp is not None:
        out[:len(kp)] = kp
    return out


def _detector(cfg: DetectConfig):
    """The 2D detector ``cfg`` asks for: MediaPipe's one person, or several people."""
    if cfg.max_people > 1:
        from epiflow.detection.tracking import MultiPersonPoseDetector
        return MultiPersonPoseDetector(cfg.max_people, cfg.detect_every,
                                       min_detection=cfg.min_confidence)
    return MediaPipeDetector(cfg.model_complexity, cfg.min_confidence, cfg.video_mode)
