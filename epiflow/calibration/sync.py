"""Time offsets and frame rates of unsynchronized cameras, recovered from the person they film.

Each camera's 2D keypoints come on its own clock: frame k of camera c was taken at
``time_offset[c] + k / fps[c]`` seconds on the first camera's clock (camera 0 has offset 0;
``time_offset`` is the time at which the camera's first frame was taken). :func:`synchronize`
recovers the offsets in two stages:

1. **Coarse** (:func:`coarse_offsets`): every lag, on a common clock at the fastest camera's
   rate, that leaves enough overlap with camera 0 is tried by epipolar geometry (fundamental
   matrix fitted, or the given cameras'; median Sampson distance); the best, to one sample of
   that clock. On long videos only the lags around the best peaks of the cross-correlation of
   the person's 2D speed (keypoints smoothed in time, median joint speed in body heights per
   second) are tried.
2. **Fine** (:func:`fine_offsets`): geometry. Each camera's 2D, linearly interpolated in time,
   is taken at the other cameras' frame times; its robust Sampson (epipolar) distance to them,
   pixels, is minimized over its offset (a grid of ± ``window_frames``, then a parabola through
   the best three), one camera after the other. The fundamental matrices come from given cameras
   (undistorted), or, with cameras unknown, are fitted to the data at the current offsets and
   refitted after each sweep (alternating); :func:`synchronize_with_calibration` alternates the
   offsets with a full calibration from people.

:func:`to_first_camera` puts every camera on the first camera's frame times (labels live there):
each view interpolated linearly, confidence the lower of its two neighbours, NaN with confidence
0 outside the camera's own time range.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable

import numpy as np

from epiflow.keypoints import Keypoints
from epiflow.skeleton import get_joint_set

if TYPE_CHECKING:
    from epiflow.calibration.camera import CameraRig

__all__ = ["SyncConfig", "SyncError", "CameraStreams", "SyncResult", "SYNC_MODES", "needs_sync",
           "frame_times", "resample_track", "to_first_camera", "speed_signal", "speed_offsets",
           "coarse_offsets",
           "fine_offsets", "synchronize", "synchronize_with_calibration", "offset_lines"]

#: ``auto``: synchronize when the cameras' frame counts or rates differ; ``on``: always; ``off``.
SYNC_MODES = ("auto", "on", "off")


class SyncError(ValueError):
    """Cameras whose time offsets cannot be recovered (no motion, no overlap); the message names
    the camera, what was expected, what came and what to do."""


@dataclass(frozen=True)
class SyncConfig:
    """Settings of :func:`synchronize`.

    Attributes:
        min_overlap_s: seconds two cameras must film together (and at least
            ``min_overlap_fraction`` of the shorter one's duration).
        max_offset_s: largest |offset| searched, seconds (0: any that leaves the overlap).
        smooth_s: Gaussian sigma, seconds, of the keypoints' smoothing before speeds.
        min_confidence: keypoints below it are ignored.
        min_motion: the least movement of the person in a camera, body heights (median over
            joints of the position's standard deviation over time; noise alone gives ~0.005),
            for it to count as seeing the person move.
        min_contrast: how many times lower than the median the best coarse offset's epipolar
            distance must be.
        far_fit: with 3 or more cameras, a camera whose best coarse epipolar distance (body
            heights) is this many times the best camera's, its best offset standing out little,
            films other moments (refused, named).
        max_scan: the most offsets the coarse stage tries by geometry (beyond, the speeds'
            best peaks).
        window_frames: the fine search's half-width, frames of the camera searched.
        step_frames: the fine grid's step, frames.
        sweeps: the most rounds over the cameras of the fine stage (F refitted between them
            when the cameras are unknown; a fitted F absorbs part of a time shift, so each round
            moves the offsets part of the way); they stop when no offset moves by 0.005 frame,
            the window narrowing to 3 times the last move (at least 0.3 frame).
        fine: run the fine (geometric) stage.
        refit: refit each pair's F at every offset tried (joint search) instead of alternating
            F and offsets.
        rounds: alternations of fine offsets and calibration in
            :func:`synchronize_with_calibration`.
    """

    min_overlap_s: float = 0.5
    min_overlap_fraction: float = 0.3
    max_offset_s: float = 0.0
    smooth_s: float = 0.04
    min_confidence: float = 0.3
    min_motion: float = 0.012
    min_contrast: float = 1.3
    far_fit: float = 2.5
    max_scan: int = 400
    window_frames: float = 2.0
    step_frames: float = 0.05
    sweeps: int = 8
    fine: bool = True
    refit: bool = False
    rounds: int = 0

    def __post_init__(self):
        if min(self.min_overlap_s, self.smooth_s, self.window_frames, self.step_frames) <= 0 \
                or self.sweeps < 1 or self.rounds < 0 or self.max_offset_s < 0:
            raise ValueError(f"SyncConfig: overlap, smoothing, window and step must be > 0, "
                             f"sweeps >= 1, rounds and max_offset_s >= 0; got {self}")


@dataclass(frozen=True, eq=False)
class CameraStreams:
    """One person's 2D keypoints seen by C cameras, each on its own clock and rate.

    Attributes:
        tracks: C arrays (T_c, J, 3): x, y pixels, confidence; missing = NaN with confidence 0.
        fps: (C,) frames per second of each camera.
        camera_names: C names. joint_set: the joint set's name. image_size: (C, 2) (w, h) px.
    """

    tracks: tuple
    fps: np.ndarray
    camera_names: tuple
    joint_set: str
    image_size: np.ndarray

    def __post_init__(self):
        tracks = tuple(Keypoints(np.asarray(t, np.float64)[:, None], self.joint_set,
                                 (str(n),), np.asarray(s).reshape(1, 2)).data[:, 0]
                       for t, n, s in zip(self.tracks, self.camera_names,
                                          np.asarray(self.image_size).reshape(-1, 2)))
        fps = np.asarray(self.fps, np.float64).reshape(-1)
        if not (len(tracks) == len(fps) == len(self.camera_names)) or len(tracks) < 2:
            raise ValueError(f"CameraStreams: need one track and one fps per camera, 2 or more "
                             f"cameras; got {len(tracks)} tracks, {len(fps)} rates, cameras "
                             f"{list(self.camera_names)}")
        bad = [n for n, f in zip(self.camera_names, fps) if not np.isfinite(f) or f <= 0]
        if bad:
            raise SyncError(f"cameras {bad}: frame rate unknown or not positive ({fps.tolist()});"
                            f" expected frames per second > 0: give the videos' rate (fps)")
        object.__setattr__(self, "tracks", tracks)
        object.__setattr__(self, "fps", fps)
        object.__setattr__(self, "camera_names", tuple(str(n) for n in self.camera_names))

    @classmethod
    def from_padded(cls, data: np.ndarray, counts, fps, camera_names, joint_set: str,
                    image_size) -> "CameraStreams":
        """From a (T, C, J, 3) array holding camera c's own frames in rows ``0:counts[c]``
        (the store's raw layout); rows past a camera's count are ignored."""
        data = np.asarray(data, np.float64)
        return cls(tuple(data[:int(n), c] for c, n in enumerate(counts)), fps, camera_names,
                   joint_set, image_size)

    @classmethod
    def from_keypoints(cls, kp: Keypoints, fps=None) -> "CameraStreams":
        """Equal-length (T, C, J, 3) keypoints, each camera at ``fps`` (default ``kp.fps``)."""
        rate = np.broadcast_to(np.asarray(kp.fps if fps is None else fps, np.float64),
                               (kp.n_cameras,)) if (fps is not None or kp.fps) else \
            np.full(kp.n_cameras, np.nan)
        return cls.from_padded(kp.data, [kp.n_frames] * kp.n_cameras, rate, kp.camera_names,
                               kp.joint_set, kp.image_size)

    @property
    def n_frames(self) -> np.ndarray:
        """(C,) int frames of each camera."""
        return np.array([len(t) for t in self.tracks])

    @property
    def durations(self) -> np.ndarray:
        """(C,) seconds from each camera's first frame to its last."""
        return (self.n_frames - 1) / self.fps


@dataclass(frozen=True)
class SyncResult:
    """Recovered clocks.

    Attributes:
        offsets: (C,) seconds on camera 0's clock at which each camera's first frame was taken.
        coarse: (C,) the coarse stage's offsets, seconds. contrast: (C,) how many times lower
            its best offset's epipolar distance is than the median offset's (inf for camera 0).
        fps: (C,) the cameras' rates.
        sampson_px: (C,) the fine stage's robust Sampson distance per camera at the offsets
            (NaN without the fine stage).
        overlap_s: (C,) seconds each camera films together with camera 0.
        warnings: things the report should say.
    """

    offsets: np.ndarray
    coarse: np.ndarray
    contrast: np.ndarray
    fps: np.ndarray
    sampson_px: np.ndarray
    overlap_s: np.ndarray
    warnings: list = field(default_factory=list)

    def report(self, names) -> dict:
        """JSON-able record: per camera its offset (seconds and frames of its own rate), rate,
        coarse offset, its contrast, Sampson distance and overlap."""
        cams = {}
        for c, name in enumerate(names):
            cams[str(name)] = {
                "time_offset_s": float(self.offsets[c]),
                "time_offset_frames": float(self.offsets[c] * self.fps[c]),
                "fps": float(self.fps[c]), "coarse_offset_s": float(self.coarse[c]),
                "coarse_contrast": float(self.contrast[c]) if np.isfinite(self.contrast[c])
                else None,
                "sampson_px": None if not np.isfinite(self.sampson_px[c])
                else float(self.sampson_px[c]),
                "overlap_s": float(self.overlap_s[c])}
        return {"cameras": cams, "warnings": list(self.warnings)}


def offset_lines(report: dict) -> list[str]:
    """What ``calibrate``, ``run`` and ``inspect`` print of a sync report
    (:meth:`SyncResult.report`): one line per camera, its time offset in seconds on the first
    camera's clock and in frames of its own rate."""
    return [f"{name}: time offset {cam['time_offset_s']:+.4f} s "
            f"({cam['time_offset_frames']:+.2f} frames at {cam['fps']:g} fps)"
            for name, cam in report["cameras"].items()]


def needs_sync(counts, fps, mode: str = "auto") -> bool:
    """Whether cameras of these frame counts and rates are synchronized from the people:
    ``on`` always, ``off`` never, ``auto`` when counts or rates (to 1e-3 fps) differ."""
    if mode not in SYNC_MODES:
        raise ValueError(f"sync mode must be one of {SYNC_MODES}; got {mode!r}")
    if mode != "auto":
        return mode == "on"
    return len(set(int(n) for n in counts)) > 1 or \
        len({round(float(f or 0), 3) for f in fps}) > 1


# -- time ---------------------------------------------------------------------------------------
def frame_times(n: int, fps: float, offset: float = 0.0) -> np.ndarray:
    """(n,) seconds on camera 0's clock of a camera's frames: ``offset + k / fps``."""
    return offset + np.arange(int(n)) / float(fps)


def resample_track(track: np.ndarray, fps: float, offset: float,
                   times: np.ndarray) -> np.ndarray:
    """One camera's keypoints at other times, linearly interpolated.

    Args:
        track: (T_c, J, 3) x, y pixels, confidence, on the camera's own frames.
        fps, offset: the camera's rate and time offset (seconds on camera 0's clock).
        times: (N,) seconds on camera 0's clock.

    Returns:
        (N, J, 3): x, y interpolated between the two nearest frames, confidence the lower of
        the two; NaN with confidence 0 outside the camera's frames or where a neighbour is
        missing.
    """
    T = track.shape[0]
    u = (np.asarray(times, np.float64) - offset) * fps
    u = np.where(np.abs(u - np.round(u)) < 1e-6, np.round(u), u)  # exact frames stay exact
    inside = (u >= 0) & (u <= T - 1)
    lo = np.clip(np.floor(u).astype(int), 0, T - 1)
    hi = np.clip(lo + 1, 0, T - 1)
    w = np.where(inside, u - lo, 0.0)[:, None]
    a, b = track[lo], track[hi]
    exact = (w == 0.0)[:, :, None]
    xy = np.where(exact, a[..., :2], (1 - w[..., None]) * a[..., :2] + w[..., None] * b[..., :2])
    conf = np.where(exact[..., 0], a[..., 2], np.minimum(a[..., 2], b[..., 2]))
    out = np.concatenate([xy, conf[..., None]], axis=-1)
    missing = ~inside[:, None] | ~np.isfinite(out[..., :2]).all(-1) | ~(out[..., 2] > 0)
    out[missing] = (np.nan, np.nan, 0.0)
    return out


def to_first_camera(streams: CameraStreams, offsets, n_frames: int | None = None) -> Keypoints:
    """Every camera's keypoints on camera 0's frame times ``k / fps[0]``, k < ``n_frames``
    (default: camera 0's own count): (n_frames, C, J, 3) :class:`Keypoints` at ``fps[0]``."""
    n = int(streams.n_frames[0] if n_frames is None else n_frames)
    times = frame_times(n, streams.fps[0])
    data = np.stack([resample_track(t, f, o, times)
                     for t, f, o in zip(streams.tracks, streams.fps, offsets)], axis=1)
    return Keypoints(data, streams.joint_set, streams.camera_names, streams.image_size,
                     float(streams.fps[0]))


# -- coarse: speeds ------------------------------------------------------------------------------
def _smooth(x: np.ndarray, valid: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 of (T, ...) ``x`` over its valid entries (normalized
    convolution); NaN where no valid entry is near."""
    from scipy.ndimage import gaussian_filter1d
    if sigma_frames < 0.3:
        return np.where(valid, x, np.nan)
    w = valid.astype(np.float64)
    num = gaussian_filter1d(np.where(valid, x, 0.0), sigma_frames, axis=0, mode="nearest")
    den = gaussian_filter1d(w, sigma_frames, axis=0, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0.2, num / den, np.nan)


def _symmetric(track: np.ndarray, joint_set: str) -> np.ndarray:
    """(T, J, 3) the midpoints of each joint and its mirror (itself for a centre joint), with
    the lower confidence: unchanged when the detector swaps left and right."""
    perm = np.asarray(get_joint_set(joint_set).flip_permutation)
    other = track[:, perm]
    out = (track + other) / 2
    out[..., 2] = np.minimum(track[..., 2], other[..., 2])
    return out


def _height(track: np.ndarray, valid: np.ndarray) -> float:
    """The person's median apparent height, pixels (extent of the valid joints' y)."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y = np.where(valid, track[..., 1], np.nan)
        h = np.nanmax(y, 1) - np.nanmin(y, 1)
    h = h[np.isfinite(h) & (h > 0)]
    return float(np.median(h)) if len(h) else np.nan


def speed_signal(track: np.ndarray, fps: float, joint_set: str,
                 config: SyncConfig = SyncConfig()) -> tuple[np.ndarray, float]:
    """The person's 2D speed in one camera, body heights per second, on its frames, and how
    much the person moves in it.

    The midpoints of each joint and its mirror (free of left/right swaps) are smoothed in time
    (Gaussian, ``config.smooth_s``), their speeds taken by central differences and divided by the
    person's median apparent height, and the median over them kept; NaN where fewer than 3 are
    seen.

    Args:
        track: (T_c, J, 3) pixels and confidence. fps: the camera's rate. joint_set: J's set.

    Returns:
        (T_c,) speed, body heights per second; motion: the median over the midpoints of their
        position's standard deviation over time, body heights (a still person: the noise,
        about 0.005).
    """
    sym = _symmetric(track, joint_set)
    valid = sym[..., 2] >= config.min_confidence                            # (T, J)
    xy = _smooth(sym[..., :2], valid[..., None], config.smooth_s * fps)
    vel = np.gradient(xy, axis=0) * fps if len(xy) > 1 else np.zeros_like(xy)
    speed = np.where(valid, np.linalg.norm(vel, axis=-1), np.nan)          # (T, J)
    scale = _height(track, track[..., 2] >= config.min_confidence)
    ok = np.isfinite(speed).sum(1) >= 3
    out = np.full(len(track), np.nan)
    if not (ok.any() and scale > 0):
        return out, 0.0
    out[ok] = np.nanmedian(speed[ok], axis=1) / scale
    pos = np.where(valid[..., None], sym[..., :2], np.nan)[ok]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mad = np.nanmedian(np.abs(pos - np.nanmedian(pos, axis=0)), axis=0)    # robust spread
        spread = np.nanmedian(1.4826 * np.linalg.norm(mad, axis=-1))
    return out, float(spread / scale) if np.isfinite(spread) else 0.0


def _on_grid(signal: np.ndarray, fps: float, rate: float) -> np.ndarray:
    """A camera's signal (on its frames) on a grid ``m / rate`` of its own clock, linearly
    interpolated; NaN where a neighbour is NaN."""
    t = np.arange(len(signal)) / fps
    grid = np.arange(int(np.floor(t[-1] * rate + 1e-9)) + 1) / rate
    return resample_track(signal[:, None, None].repeat(3, -1), fps, 0.0, grid)[:, 0, 0] \
        if len(signal) > 1 else signal.copy()


def _masked_ncc(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalized cross-correlation of two signals with NaN gaps, every lag at once (FFT).

    Returns (lags, ncc, n): lag L pairs ``a[k]`` with ``b[k - L]``; ``n`` the pairs counted.
    """
    from scipy.signal import correlate
    ma, mb = np.isfinite(a).astype(float), np.isfinite(b).astype(float)
    a0, b0 = np.nan_to_num(a), np.nan_to_num(b)

    def xc(x, y):
        return correlate(x, y, mode="full", method="fft")
    n = np.round(xc(ma, mb))
    sa, sb = xc(a0, mb), xc(ma, b0)
    saa, sbb, sab = xc(a0 * a0, mb), xc(ma, b0 * b0), xc(a0, b0)
    with np.errstate(invalid="ignore", divide="ignore"):
        den = np.sqrt(np.maximum(n * saa - sa * sa, 0) * np.maximum(n * sbb - sb * sb, 0))
        ncc = np.where(den > 1e-12, (n * sab - sa * sb) / den, np.nan)
    lags = np.arange(len(ncc)) - (len(b) - 1)
    return lags, ncc, n


def _check_motion(signals: list[np.ndarray], motion: list[float], streams: CameraStreams,
                  config: SyncConfig) -> None:
    """Every camera sees the person in enough frames and sees them move."""
    still, unseen = [], []
    for name, s, m, n in zip(streams.camera_names, signals, motion, streams.n_frames):
        seen = int(np.isfinite(s).sum())
        if seen < max(5, 0.1 * n):
            unseen.append(f"{name} (person in {seen} of {n} frames)")
        elif m < config.min_motion:
            still.append(f"{name} (joints move by {m:.3f} body heights)")
    if unseen:
        raise SyncError(f"cameras {unseen}: the person is seen in too few frames to find the "
                        f"time offsets (expected at least 10 % of each camera's frames): check "
                        f"that every video films the person, or drop those cameras")
    if len(still) == len(signals):
        raise SyncError(f"no motion at all: the person hardly moves in any camera {still}; "
                        f"expected joints that move by at least {config.min_motion} body "
                        f"heights (standard deviation over time) to match the cameras' clocks: "
                        f"film a person who moves (walks, waves), or give synchronized videos of "
                        f"equal length with --sync off")
    if still:
        raise SyncError(f"cameras {still} never see the person moving (expected joints that "
                        f"move by at least {config.min_motion} body heights); their time "
                        f"offsets cannot be found: film the moving person from them, or drop "
                        f"them")


def _min_overlap(d0: float, dc: float, config: SyncConfig) -> float:
    return max(config.min_overlap_s, config.min_overlap_fraction * min(d0, dc))


def coarse_offsets(streams: CameraStreams, config: SyncConfig = SyncConfig()
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(C,) offsets, seconds, to one sample of a common clock at the fastest camera's rate, and
    (C,) their contrast (the median over the offsets tried of the epipolar distance, divided by
    the best's; 1 = no offset stands out).

    Each camera's speed signal (:func:`speed_signal`) is cross-correlated with camera 0's on that
    clock; every lag that leaves the overlap (``min_overlap_s``) is then tried by epipolar
    geometry (:func:`_scan`; on long videos only the speeds' best peaks): 2D speeds alone depend
    on the viewpoint too much when the person moves little (on the Pose2Sim demo the true lag
    of two of its cameras correlates 0.2 and -0.02). Raises :class:`SyncError` naming the camera
    when a camera does not see the person move, or no offset that leaves the overlap stands
    out."""
    out = [speed_signal(t, f, streams.joint_set, config)
           for t, f in zip(streams.tracks, streams.fps)]
    signals = [s for s, _ in out]
    _check_motion(signals, [m for _, m in out], streams, config)
    rate = float(streams.fps.max())
    grids = [_on_grid(s, f, rate) for s, f in zip(signals, streams.fps)]
    C = len(grids)
    offsets, contrast = np.zeros(C), np.full(C, np.inf)
    fit = np.full(C, np.nan)  # best epipolar distance, in body heights of the two cameras
    d = streams.durations
    heights = [_height(t, t[..., 2] >= config.min_confidence) for t in streams.tracks]
    for c in range(1, C):
        lags, ncc, n = _masked_ncc(grids[0], grids[c])
        need = _min_overlap(d[0], d[c], config)
        ok = n / rate >= need
        if config.max_offset_s:
            ok &= np.abs(lags / rate) <= config.max_offset_s
        if not ok.any():
            raise SyncError(_no_overlap(streams, [c], need, None, config))
        candidates = _candidates(lags, np.where(ok, ncc, np.nan), config.max_scan)
        scores = _scan(streams, c, candidates / rate, config)
        best = int(np.argmin(scores))
        contrast[c] = float(np.median(scores) / max(scores[best], 1e-9))
        fit[c] = scores[best] / max(np.nanmean([heights[0], heights[c]]), 1e-9)
        offsets[c] = candidates[best] / rate
    _check_coarse(streams, offsets, contrast, fit, config)
    return offsets, contrast


def _check_coarse(streams: CameraStreams, offsets, contrast, fit, config: SyncConfig) -> None:
    """Raise :class:`SyncError` naming the cameras that match camera 0 at no offset: first those
    whose best offset stands out little (contrast under 1.5 ``min_contrast``) and whose best
    epipolar distance (body heights) is ``far_fit`` times the best camera's (with 3 or more
    cameras: a camera filming other moments fits no lag, one filming the same moments fits its
    own well even when the clip is too short for a contrast; on the demo's cuts the cameras that
    do overlap are within 2.3 times with contrasts over 2, the ones that do not 3.4 times, 1.3),
    then those whose best offset does not stand out (``min_contrast``)."""
    C = len(offsets)
    d = streams.durations
    need = max(_min_overlap(d[0], d[c], config) for c in range(1, C))
    far = [c for c in range(1, C) if C > 2 and contrast[c] < 1.5 * config.min_contrast
           and fit[c] > config.far_fit * np.nanmin(fit[1:])]
    if far:
        raise SyncError(_no_overlap(streams, far, need, None, config, fit=fit))
    low = [c for c in range(1, C) if contrast[c] < config.min_contrast]
    if low:
        raise SyncError(_no_overlap(streams, low, need, (contrast, offsets), config))


def speed_offsets(streams: CameraStreams, config: SyncConfig = SyncConfig()) -> np.ndarray:
    """(C,) offsets, seconds, from the 2D speeds alone (the peak of their cross-correlation with
    camera 0's on the common clock, to one sample): what Pose2Sim's synchronization does, kept
    as the baseline :func:`coarse_offsets` is measured against."""
    signals = [speed_signal(t, f, streams.joint_set, config)[0]
               for t, f in zip(streams.tracks, streams.fps)]
    rate = float(streams.fps.max())
    grids = [_on_grid(s, f, rate) for s, f in zip(signals, streams.fps)]
    out = np.zeros(len(grids))
    for c in range(1, len(grids)):
        lags, ncc, n = _masked_ncc(grids[0], grids[c])
        need = _min_overlap(streams.durations[0], streams.durations[c], config)
        ok = (n / rate >= need) & np.isfinite(ncc)
        out[c] = lags[np.flatnonzero(ok)[np.argmax(ncc[ok])]] / rate if ok.any() else np.nan
    return out


def _candidates(lags: np.ndarray, ncc: np.ndarray, max_scan: int) -> np.ndarray:
    """The lags (samples) the geometric scan tries: every allowed one (``ncc`` finite) when
    there are at most ``max_scan``, else the speeds' best peaks and 4 samples either side."""
    allowed = lags[np.isfinite(ncc)] if np.isfinite(ncc).any() else lags[~np.isnan(ncc)]
    if len(allowed) <= max_scan:
        return allowed
    order = np.argsort(-np.nan_to_num(ncc, nan=-np.inf))[:max(1, max_scan // 9)]
    near = np.unique(np.clip(order[:, None] + np.arange(-4, 5), 0, len(lags) - 1))
    return lags[near[np.isfinite(ncc[near])]]


def _scan(streams: CameraStreams, c: int, taus: np.ndarray, config: SyncConfig) -> np.ndarray:
    """Camera c's median Sampson distance, pixels, to camera 0 at each offset of ``taus``
    (seconds) under F fitted (LMedS) to at most 600 correspondences at that offset; inf where
    they see the person together too little. Fitted, not taken from given cameras: on the
    Pose2Sim demo the lab cameras' F put one camera 7 frames off (the detector's joints are not
    the same 3D points from every side; a fitted F absorbs part of that)."""
    import cv2
    points = list(streams.tracks)
    rng = np.random.default_rng(0)
    out = np.full(len(taus), np.inf)
    offsets = np.zeros(len(streams.tracks))
    for i, tau in enumerate(taus):
        xc, xd = _pair(points, streams, offsets, c, 0, tau, config.min_confidence)
        if len(xc) < 30:
            continue
        if len(xc) > 250:
            keep = rng.choice(len(xc), 250, replace=False)
            xc, xd = xc[keep], xd[keep]
        cv2.setRNGSeed(0)
        F, _ = cv2.findFundamentalMat(xc, xd, cv2.FM_LMEDS)
        if F is None or F.shape != (3, 3):
            continue
        out[i] = float(np.median(_sampson(F, xc, xd)))
    if not np.isfinite(out).any():
        raise SyncError(f"camera {streams.camera_names[c]!r} sees the person together with "
                        f"camera {streams.camera_names[0]!r} in fewer than 30 keypoints at every "
                        f"offset tried: the videos overlap too little in time; cut them to film "
                        f"the same moments")
    return out


def _no_overlap(streams: CameraStreams, cams: list[int], need: float, best, config: SyncConfig,
                fit=None) -> str:
    """The refusal naming cameras ``cams`` that match camera 0's motion at no time offset."""
    names, d = streams.camera_names, streams.durations
    which = [names[c] for c in cams]
    if fit is not None:
        others = [names[c] for c in range(1, len(names)) if c not in cams]
        got = (f"their best offset fits {min(fit[c] for c in cams) / np.nanmin(fit[1:]):.1f} "
               f"or more times worse than that of {', '.join(others)} (expected within "
               f"{config.far_fit} times)")
    elif best is None:
        got = "no offset leaves that much overlap"
    else:
        contrast, offsets = best
        got = "; ".join(f"{names[c]}'s best, at {offsets[c]:+.3f} s, fits only "
                        f"{contrast[c]:.2f} times better than the median offset" for c in cams)
        got = (f"expected one whose epipolar distance is {config.min_contrast} times below the "
               f"median offset's; {got}")
    limit = f" and |offset| <= {config.max_offset_s} s" if config.max_offset_s else ""
    durations = ", ".join(f"{names[c]} {d[c]:.2f} s" for c in cams)
    return (f"cameras {which}: no time offset makes the person's motion in them ({durations}) "
            f"match camera {names[0]!r}'s ({d[0]:.2f} s) over at least {need:.2f} s of "
            f"overlap{limit} ({got}): they may not film the same moments as {names[0]!r}, or "
            f"the offset is larger than the videos' overlap. Cut the videos so that every "
            f"camera films at least {need:.2f} s together with {names[0]!r} (the first camera "
            f"sets the clock), or drop {which}")


# -- fine: epipolar geometry ----------------------------------------------------------------------
def _points(streams: CameraStreams, rig: "CameraRig | None") -> list[np.ndarray]:
    """Per camera its (T_c, J, 3) track with x, y undistorted (pixels) when ``rig`` is given."""
    if rig is None:
        return list(streams.tracks)
    out = []
    for c, track in enumerate(streams.tracks):
        xy = np.asarray(rig.subset([c]).undistort(track[None, ..., :2], normalized=False))[0]
        out.append(np.concatenate([xy, track[..., 2:]], -1))
    return out


def _rig_fundamental(rig: "CameraRig", c: int, d: int) -> np.ndarray:
    """F with x_d^T F x_c = 0 for undistorted pixels of cameras c and d."""
    R = rig.R[d] @ rig.R[c].T
    t = rig.t[d] - R @ rig.t[c]
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    return np.linalg.inv(rig.K[d]).T @ tx @ R @ np.linalg.inv(rig.K[c])


def _pair(points, streams, offsets, c, d, tau_c, min_conf):
    """Camera c's points at camera d's frame times (c's offset ``tau_c``): (x_c, x_d) (N, 2)."""
    times = frame_times(len(points[d]), streams.fps[d], offsets[d])
    xc = resample_track(points[c], streams.fps[c], tau_c, times)
    ok = (xc[..., 2] >= min_conf) & (points[d][..., 2] >= min_conf)
    return xc[..., :2][ok], points[d][..., :2][ok]


def _sampson(F: np.ndarray, xc: np.ndarray, xd: np.ndarray) -> np.ndarray:
    """(N,) Sampson distance, pixels, of correspondences (N, 2) under F (x_d^T F x_c = 0)."""
    hc = np.c_[xc, np.ones(len(xc))]
    hd = np.c_[xd, np.ones(len(xd))]
    Fx, Ftx = hc @ F.T, hd @ F
    num = np.einsum("ni,ni->n", hd, Fx)
    den = Fx[:, 0] ** 2 + Fx[:, 1] ** 2 + Ftx[:, 0] ** 2 + Ftx[:, 1] ** 2
    return np.abs(num) / np.sqrt(np.maximum(den, 1e-18))


def _fit_fundamental(xc: np.ndarray, xd: np.ndarray, names) -> np.ndarray:
    import cv2
    if len(xc) < 15:
        raise SyncError(f"cameras {names[0]!r} and {names[1]!r} see the person together in only "
                        f"{len(xc)} keypoints at the coarse offsets (expected 15 or more): the "
                        f"videos overlap too little in time; cut them to film the same moments")
    F, _ = cv2.findFundamentalMat(xc.astype(np.float64), xd.astype(np.float64), cv2.FM_LMEDS)
    if F is None or F.shape != (3, 3):
        raise SyncError(f"cameras {names[0]!r} and {names[1]!r}: no epipolar geometry fits their "
                        f"keypoints at the coarse offsets; check that both film the same person")
    return F


def _weighted_fundamental(xc: np.ndarray, xd: np.ndarray, w: np.ndarray) -> np.ndarray:
    """F (x_d^T F x_c = 0) by the weighted, normalized 8-point algorithm, rank 2."""
    def norm(x):
        m = np.average(x, axis=0, weights=w)
        s = np.sqrt(2) / max(np.average(np.linalg.norm(x - m, axis=1), weights=w), 1e-9)
        return (x - m) * s, np.array([[s, 0, -s * m[0]], [0, s, -s * m[1]], [0, 0, 1]])
    (a, Ta), (b, Tb) = norm(xc), norm(xd)
    A = np.stack([b[:, 0] * a[:, 0], b[:, 0] * a[:, 1], b[:, 0], b[:, 1] * a[:, 0],
                  b[:, 1] * a[:, 1], b[:, 1], a[:, 0], a[:, 1], np.ones(len(a))], 1)
    F = np.linalg.svd(A * np.sqrt(w)[:, None], full_matrices=False)[2][-1].reshape(3, 3)
    U, S, Vt = np.linalg.svd(F)
    return Tb.T @ (U @ np.diag([S[0], S[1], 0.0]) @ Vt) @ Ta


def _frame_pair(points, streams, offsets, c, d, tau_c) -> tuple[np.ndarray, np.ndarray]:
    """Camera c's (offset ``tau_c``) and camera d's keypoints at d's frame times: (K, J, 3)
    each."""
    times = frame_times(len(points[d]), streams.fps[d], offsets[d])
    return resample_track(points[c], streams.fps[c], tau_c, times), points[d]


def _rho(F, a, b, ok, scale) -> np.ndarray:
    """(K, J) Cauchy loss of the Sampson distances of (K, J, 3) a, b under F; 0 where not ok."""
    e = np.zeros(ok.shape)
    e[ok] = _sampson(F, a[..., :2][ok], b[..., :2][ok]) / scale
    return np.log1p(e * e)


def _unflipped(F, a, b, perm, min_conf, scale) -> tuple[np.ndarray, np.ndarray]:
    """Camera c's keypoints (K, J, 3) with left and right swapped back in the frames where the
    swap fits F better (a detector's mirrored frames), and the (K, J) joints seen by both."""
    ok = (a[..., 2] >= min_conf) & (b[..., 2] >= min_conf)
    flipped = a[:, perm]
    ok_f = (flipped[..., 2] >= min_conf) & (b[..., 2] >= min_conf)
    cost = _rho(F, a, b, ok, scale).sum(1) / np.maximum(ok.sum(1), 1)
    cost_f = _rho(F, flipped, b, ok_f, scale).sum(1) / np.maximum(ok_f.sum(1), 1)
    swap = (cost_f < cost)[:, None]
    return np.where(swap[..., None], flipped, a), np.where(swap, ok_f, ok)


def _cost(points, streams, offsets, c, tau, Fs, scales, min_conf, refit: bool, perm) -> float:
    """Robust (Cauchy) mean Sampson distance of camera c at offset ``tau`` against the others,
    its mirrored frames swapped back; with ``refit`` each pair's F is refitted at ``tau``
    (weighted 8-point, weights from the sweep's F): the offset is then found jointly with F,
    not against an F fitted at the old offset, which absorbs part of the shift."""
    total, count = 0.0, 0
    for d in range(len(points)):
        if d == c:
            continue
        a, b = _frame_pair(points, streams, offsets, c, d, tau)
        a, ok = _unflipped(Fs[c, d], a, b, perm, min_conf, scales[c])
        if ok.sum() < 15:
            continue
        F = Fs[c, d]
        if refit:
            w = 1.0 / (1.0 + np.expm1(_rho(F, a, b, ok, scales[c])[ok]))
            F = _weighted_fundamental(a[..., :2][ok], b[..., :2][ok], w)
        total += float(_rho(F, a, b, ok, scales[c]).sum())
        count += int(ok.sum())
    return total / count if count else np.inf


def _scales(points, streams, offsets, Fs, min_conf) -> np.ndarray:
    """(C,) the Cauchy scale of each camera, pixels: its median Sampson distance (>= 0.5 px)."""
    out = np.ones(len(points))
    for c in range(len(points)):
        e = [_sampson(Fs[c, d], *_pair(points, streams, offsets, c, d, offsets[c], min_conf))
             for d in range(len(points)) if d != c]
        e = np.concatenate(e) if e else np.zeros(0)
        out[c] = max(0.5, float(np.median(e))) if len(e) else 1.0
    return out


def _fundamentals(points, streams, offsets, rig, min_conf) -> np.ndarray:
    """(C, C, 3, 3) F[c, d] with x_d^T F x_c = 0: from the rig, or fitted at ``offsets``."""
    C = len(points)
    Fs = np.zeros((C, C, 3, 3))
    for c in range(C):
        for d in range(c + 1, C):
            if rig is not None:
                F = _rig_fundamental(rig, c, d)
            else:
                xc, xd = _pair(points, streams, offsets, c, d, offsets[c], min_conf)
                F = _fit_fundamental(xc, xd, (streams.camera_names[c], streams.camera_names[d]))
            Fs[c, d], Fs[d, c] = F, F.T
    return Fs


def _search(cost: Callable[[float], float], center: float, half: float, step: float) -> float:
    """The minimum of ``cost`` on a grid ``center ± half`` (``step``), refined by a parabola."""
    grid = center + np.arange(-half, half + step / 2, step)
    values = np.array([cost(t) for t in grid])
    if not np.isfinite(values).any():
        return center
    i = int(np.nanargmin(values))
    if 0 < i < len(grid) - 1 and np.isfinite(values[i - 1:i + 2]).all():
        a, b, c = values[i - 1:i + 2]
        curv = a - 2 * b + c
        if curv > 0:
            return float(grid[i] + 0.5 * step * (a - c) / curv)
    return float(grid[i])


def fine_offsets(streams: CameraStreams, offsets, rig: "CameraRig | None" = None,
                 config: SyncConfig = SyncConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Offsets refined by epipolar geometry (see the module docstring).

    Args:
        streams: the cameras' own tracks. offsets: (C,) starting offsets, seconds (camera 0: 0).
        rig: the cameras (in ``streams``' order) when known; None fits F at each sweep.

    Returns:
        (C,) offsets, seconds, and (C,) each camera's median Sampson distance there, pixels.
    """
    offsets = np.asarray(offsets, np.float64).copy()
    points = _points(streams, rig)
    conf = config.min_confidence
    window = config.window_frames
    perm = np.asarray(get_joint_set(streams.joint_set).flip_permutation)
    for _ in range(config.sweeps):
        Fs = _fundamentals(points, streams, offsets, rig, conf)
        scales = _scales(points, streams, offsets, Fs, conf)
        before = offsets.copy()
        for c in range(1, len(points)):
            frame = 1.0 / streams.fps[c]
            offsets[c] = _search(
                lambda tau: _cost(points, streams, offsets, c, tau, Fs, scales, conf,
                                  config.refit and rig is None, perm),
                offsets[c], window * frame, config.step_frames * frame)
        moved = np.abs(offsets - before) * streams.fps
        if moved.max() < 0.005:
            break
        window = min(config.window_frames, max(0.3, 3 * moved.max()))
    Fs = _fundamentals(points, streams, offsets, rig, conf)
    return offsets, _scales(points, streams, offsets, Fs, conf)


def _overlap(streams: CameraStreams, offsets: np.ndarray) -> np.ndarray:
    """(C,) seconds each camera's frames span together with camera 0's."""
    start = np.maximum(offsets, 0.0)
    end = np.minimum(offsets + streams.durations, streams.durations[0])
    return np.maximum(end - start, 0.0)


def synchronize(streams: CameraStreams, rig: "CameraRig | None" = None,
                config: SyncConfig = SyncConfig(), start=None) -> SyncResult:
    """The cameras' time offsets: coarse (speeds) then fine (epipolar), see the module docstring.

    Args:
        streams: each camera's 2D on its own clock (one person).
        rig: the cameras when known (``streams``' order), else None.
        start: (C,) offsets to refine instead of the coarse stage's (seconds).

    Returns:
        :class:`SyncResult`. Raises :class:`SyncError` naming the camera when the person does not
        move in it, or it does not overlap camera 0 in time.
    """
    if start is None:
        coarse, peaks = coarse_offsets(streams, config)
    else:
        coarse, peaks = np.asarray(start, np.float64), np.full(len(streams.tracks), np.nan)
    offsets, sampson = (fine_offsets(streams, coarse, rig, config) if config.fine else
                        (coarse.copy(), np.full(len(coarse), np.nan)))
    overlap = _overlap(streams, offsets)
    notes = []
    for c in range(1, len(offsets)):
        need = _min_overlap(streams.durations[0], streams.durations[c], config)
        name = streams.camera_names[c]
        if overlap[c] < need:
            raise SyncError(f"camera {name!r}: its recovered time offset {offsets[c]:+.3f} s "
                            f"leaves {overlap[c]:.2f} s filmed together with camera "
                            f"{streams.camera_names[0]!r} (expected at least {need:.2f} s): the "
                            f"offset is larger than the videos' overlap; cut the videos to film "
                            f"the same moments, or drop {name!r}")
        others = np.delete(sampson, c)
        if np.isfinite(sampson[c]) and sampson[c] > max(2.0, 3 * np.nanmedian(others)):
            raise SyncError(f"camera {name!r}: its keypoints agree with the other cameras' at no "
                            f"time offset (epipolar distance {sampson[c]:.1f} px at the best, "
                            f"{offsets[c]:+.3f} s; the others {np.nanmedian(others):.1f} px; "
                            f"expected within 3 times): it may film other moments than "
                            f"{streams.camera_names[0]!r} (time ranges that do not overlap) or "
                            f"another person; cut the videos to film the same moments, or drop "
                            f"{name!r}")
        if abs(offsets[c] - coarse[c]) > 0.8 * config.window_frames / streams.fps[c]:
            notes.append(f"camera {name!r}: the epipolar time offset {offsets[c]:+.4f} s is "
                         f"far from the motion's {coarse[c]:+.4f} s (near the search's edge)")
    return SyncResult(offsets, coarse, peaks, streams.fps.copy(), sampson, overlap, notes)


def synchronize_with_calibration(streams: CameraStreams, calibrate: Callable,
                                 rig: "CameraRig | None" = None,
                                 config: SyncConfig = SyncConfig()):
    """Offsets and cameras together: with ``rig`` given, :func:`synchronize` with it and one
    ``calibrate`` call; else offsets on fitted fundamental matrices, then ``config.rounds``
    times: calibrate on camera 0's frame times and refine the offsets with those cameras; then
    the final calibration.

    Args:
        calibrate: ``Keypoints (T, C, J, 3) on camera 0's frames -> result`` with ``.rig``.

    Returns:
        (:class:`SyncResult`, the last ``calibrate`` result, the keypoints it was given).
    """
    sync = synchronize(streams, rig, config)
    if rig is None:
        for _ in range(config.rounds):
            result = calibrate(to_first_camera(streams, sync.offsets))
            refined = synchronize(streams, result.rig, config, start=sync.offsets)
            sync = replace(refined, coarse=sync.coarse, contrast=sync.contrast,
                           warnings=sync.warnings + refined.warnings)
    kp = to_first_camera(streams, sync.offsets)
    return sync, calibrate(kp), kp
