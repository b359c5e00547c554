"""Several people per frame with BlazePose's two networks, crops carried from frame to frame.

The BlazePose way (MediaPipe's pose graph), for several people instead of one:

1. the person detector (:mod:`epiflow.detection.blazepose`) finds people on the letterboxed
   frame; each detection's keypoints give a rotated square crop;
2. the landmark network reads all crops of a frame in one batched call; landmarks go back to
   frame pixels;
3. each person's auxiliary landmarks give next frame's crop (no detector needed while tracked);
4. the detector runs again every ``detect_every`` frames while fewer than ``max_people`` are
   tracked, and at once in a frame where a track is lost (presence below ``min_presence``);
   a detection on a person already tracked is dropped, and so is a track that has converged on
   another one's person: two crops whose centres (the hips' centre) lie within ``same_person``
   of the smaller crop's side are one person. (Comparing the landmarks instead was tried: a
   second track on the same person, seen front/back swapped, is far from the first in its
   joints, and then counts as a third person.) One person right behind another, hips within
   that distance in the image, is therefore missed while they overlap.

With ``max_people=1`` the detector runs only when the person is lost, as MediaPipe's own pose
solution does, so the single-person cost is one landmark call a frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from epiflow.detection.blazepose import (DETECTOR_SIZE, Roi, crop_rois, decode_detections,
                                         decode_landmarks, detector_windows, letterbox,
                                         roi_from_keypoints, ssd_anchors, weighted_nms)
from epiflow.detection.runtime import load_model

__all__ = ["MultiPersonPoseDetector"]


@dataclass
class _Track:
    """One person followed across frames: output slot, this frame's crop, score, landmarks."""

    slot: int
    roi: Roi
    score: float
    landmarks: np.ndarray | None = None     # (39, 3) frame pixels + visibility


def _by_shape(outputs: list[np.ndarray], test) -> np.ndarray:
    found = [o for o in outputs if test(o.shape)]
    if len(found) != 1:
        raise RuntimeError(f"expected one network output to match, got shapes "
                           f"{[o.shape for o in outputs]}: is this the BlazePose model?")
    return found[0]


class MultiPersonPoseDetector:
    """BlazePose-33 keypoints of up to ``max_people`` people per frame, offline.

    Args:
        max_people: output slots P per frame. 1 keeps MediaPipe's single-person cost.
        detect_every: frames between detector runs while fewer than ``max_people`` are tracked.
        runtime: ``"litert"`` (CPU, the default) or ``"torch"`` (any ``device``, e.g.
            ``"cuda"``), see :mod:`epiflow.detection.runtime`. num_threads: LiteRT's CPU
            threads per network call.
        min_detection: detector score threshold. min_presence: landmark network's pose
            presence below which a track is lost.
        same_person: two crops whose centres are closer than this fraction of the smaller
            crop side are one person.
        squares: the detector also reads squares of long frames (:func:`detector_windows`),
            which finds far people; default: when ``max_people > 1``. With one person it reads
            the whole frame only and takes the best detection, as MediaPipe does.
    """

    joint_set = "blazepose33"

    def __init__(self, max_people: int = 4, detect_every: int = 5, runtime: str = "litert",
                 device: str = "cpu", num_threads: int = 1, min_detection: float = 0.5,
                 min_presence: float = 0.5,
                 same_person: float = 0.2, squares: bool | None = None):
        if not (isinstance(max_people, int) and max_people >= 1):
            raise ValueError(f"max_people must be an integer >= 1; got {max_people!r}")
        if not (isinstance(detect_every, int) and detect_every >= 1):
            raise ValueError(f"detect_every must be an integer >= 1 (frames); got {detect_every!r}")
        self.max_people, self.detect_every = max_people, detect_every
        self.min_detection, self.min_presence = min_detection, min_presence
        self.same_person = same_person
        self.squares = max_people > 1 if squares is None else squares
        self._detector = load_model("pose_detection", runtime, num_threads, device)
        self._landmarker = load_model("pose_landmark_full", runtime, num_threads, device)
        self._anchors = ssd_anchors()
        self.reset()

    def reset(self) -> None:
        """Forget the tracks: the next frame starts with the detector (a new video or camera)."""
        self._tracks: list[_Track] = []
        self._since_detect = 0
        self.detector_runs = 0

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Detect people in consecutive frames of one camera, carrying tracks across calls.

        Args:
            frames: (B, H, W, 3) uint8 RGB.

        Returns:
            (B, P, 33, 3) float32: x, y frame pixels and visibility; a slot keeps its person
            while tracked; empty slots are NaN with confidence 0.
        """
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be (B, H, W, 3) uint8 RGB; got {frames.shape} "
                             f"{frames.dtype}")
        out = np.full((len(frames), self.max_people, 33, 3), np.nan, np.float32)
        out[..., 2] = 0.0
        for i, frame in enumerate(frames):
            for t in self._step(frame):
                out[i, t.slot] = t.landmarks[:33]
        return out

    def detect_people(self, frame: np.ndarray) -> list[_Track]:
        """The person detector on one (H, W, 3) uint8 RGB frame: a crop per person, best first.

        The detector reads the whole frame and, on long frames with ``squares``, squares of it
        (:func:`detector_windows`), in one call to the runtime (LiteRT runs them one by one: its
        detector graph fixes the batch at 1; torch batches them); their detections are merged
        by weighted non-maximum suppression in frame pixels.
        """
        windows = detector_windows(*frame.shape[:2])[:None if self.squares else 1]
        inputs, maps = zip(*(letterbox(frame[y0:y1, x0:x1]) for x0, y0, x1, y1 in windows))
        outs = self._detector.run(np.stack(inputs))
        boxes = _by_shape(outs, lambda s: s[-1] == 12)
        scores = _by_shape(outs, lambda s: len(s) == 3 and s[-1] == 1)
        found = []
        for b, s, (scale, px, py), (x0, y0, _, _) in zip(boxes, scores, maps, windows):
            d = decode_detections(b, s, self._anchors, self.min_detection)
            pts = (d[:, :12].reshape(-1, 6, 2) * DETECTOR_SIZE - (px, py)) / scale + (x0, y0)
            found.append(np.concatenate([pts.reshape(-1, 12), d[:, 12:]], 1))
        dets = weighted_nms(np.concatenate(found))
        self.detector_runs += 1
        return [_Track(-1, roi_from_keypoints(d[4:6], d[6:8]), float(d[-1])) for d in dets]

    def _landmarks(self, frame: np.ndarray, tracks: list[_Track]) -> list[_Track]:
        """Landmarks of all tracks in one batched call; returns the tracks still present."""
        if not tracks:
            return []
        outs = self._landmarker.run(crop_rois(frame, [t.roi for t in tracks]))
        raw = _by_shape(outs, lambda s: len(s) == 2 and s[-1] == 195)
        presence = _by_shape(outs, lambda s: len(s) == 2 and s[-1] == 1)[:, 0]
        heatmap = _by_shape(outs, lambda s: len(s) == 4 and s[-1] == 39)
        kept = []
        for t, r, p, h in zip(tracks, raw, presence, heatmap):
            if p >= self.min_presence:
                t.landmarks, t.score = decode_landmarks(r, h, t.roi), float(p)
                kept.append(t)
        return kept

    def _same(self, a: Roi, b: Roi) -> bool:
        return np.hypot(a.cx - b.cx, a.cy - b.cy) < self.same_person * min(a.side, b.side)

    def _new_people(self, held: list[_Track], found: list[_Track]) -> list[_Track]:
        """Detections of people not held yet, best first, at most ``max_people``."""
        new = []
        for f in found:
            if not any(self._same(f.roi, t.roi) for t in held + new):
                new.append(f)
        return new[:self.max_people]

    def _step(self, frame: np.ndarray) -> list[_Track]:
        """One frame: carried crops (plus detections when due) -> landmarks -> next crops."""
        tracks, detected = self._tracks, False
        self._since_detect += 1
        due = len(tracks) < self.max_people and self._since_detect >= self.detect_every
        if not tracks or due:
            tracks = tracks + self._new_people(tracks, self.detect_people(frame))
            detected = True
        kept = self._landmarks(frame, tracks)
        if len(kept) < len(tracks) and not detected:
            kept += self._landmarks(frame, self._new_people(kept, self.detect_people(frame)))
            detected = True
        if detected:
            self._since_detect = 0
        self._tracks = self._carry(kept)
        return self._tracks

    def _carry(self, tracks: list[_Track]) -> list[_Track]:
        """Drop duplicates (held tracks first, then new ones in detection order) and what exceeds
        ``max_people``, give new tracks free slots, move crops to the landmarks' ones."""
        out: list[_Track] = []
        for t in sorted(tracks, key=lambda t: t.slot < 0):
            t.roi = roi_from_keypoints(t.landmarks[33, :2], t.landmarks[34, :2])
            if len(out) < self.max_people and not any(self._same(t.roi, o.roi) for o in out):
                out.append(t)
        used = {t.slot for t in out}
        free = iter(s for s in range(self.max_people) if s not in used)
        for t in out:
            if t.slot < 0:
                t.slot = next(free)
        return out
