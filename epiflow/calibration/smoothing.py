"""Temporal smoothing of joint trajectories that have gaps, and filling of short gaps.

Trajectories are arrays ``(T, ..., D)``: frames first, coordinates last (D = 3 for points); a
sample is valid where all D coordinates are finite. A gap (NaN frames) stays a gap: the filters
run separately on each run of consecutive valid frames, and only :func:`fill_gaps` turns NaN into
numbers, for gaps it is told are short enough to interpolate.

- :func:`butterworth`: zero-phase low-pass (a Butterworth filter run forwards and backwards,
  ``scipy.signal.sosfiltfilt``); no lag; runs shorter than ``3 × order`` frames are left as
  they are.
- :func:`one_euro`: the one-euro filter (Casiez et al., CHI 2012), causal, adaptive: the cut-off
  rises with speed (``min_cutoff + beta · speed``), so slow motion is smoothed hard and fast
  motion lags less. Its state restarts after every gap. Being causal it still lags (for
  30 fps walking, a few centimetres at a 6 Hz cut-off): for offline labels prefer Butterworth.
"""
from __future__ import annotations

import numpy as np

__all__ = ["fill_gaps", "butterworth", "one_euro", "smooth"]


def _as_series(points: np.ndarray) -> tuple[np.ndarray, tuple]:
    """(T, M, D) float64 view of a (T, ..., D) array, and its shape to restore."""
    a = np.asarray(points, dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(f"trajectories must have shape (T, ..., D), frames first and coordinates "
                         f"last; got {a.shape}")
    return a.reshape(a.shape[0], int(np.prod(a.shape[1:-1])), a.shape[-1]), a.shape


def fill_gaps(points: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Linearly interpolate interior gaps of at most ``max_gap`` frames.

    Args:
        points: (T, ..., D); NaN samples are gaps. max_gap: the longest gap filled, frames.

    Returns:
        (filled (T, ..., D), was_filled (T, ...) bool). Gaps at the start or end, and longer gaps,
        stay NaN.
    """
    if max_gap < 0:
        raise ValueError(f"max_gap must be >= 0 frames; got {max_gap}")
    x, shape = _as_series(points)
    T = x.shape[0]
    valid = np.isfinite(x).all(-1)
    idx = np.broadcast_to(np.arange(T)[:, None], valid.shape)
    prev = np.maximum.accumulate(np.where(valid, idx, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(valid, idx, T)[::-1], axis=0)[::-1]
    fill = ~valid & (prev >= 0) & (nxt < T) & (nxt - prev - 1 <= max_gap)
    p0, p1 = np.clip(prev, 0, T - 1), np.clip(nxt, 0, T - 1)
    a = np.take_along_axis(x, p0[..., None], 0)
    b = np.take_along_axis(x, p1[..., None], 0)
    frac = ((idx - prev) / np.maximum(nxt - prev, 1))[..., None]
    out = np.where(fill[..., None], a + frac * (b - a), x)
    return out.reshape(shape), fill.reshape(shape[:-1])


def _runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """[(start, stop)) of the runs of True in a (T,) bool array."""
    edges = np.diff(np.concatenate([[0], valid.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def butterworth(points: np.ndarray, fps: float, cutoff_hz: float = 6.0, order: int = 4
                ) -> np.ndarray:
    """Zero-phase Butterworth low-pass of every trajectory, run by run.

    Args:
        points: (T, ..., D), NaN in gaps. fps: frames per second. cutoff_hz: the -3 dB
            frequency (twice through the filter: -6 dB), below fps / 2. order: the filter order.

    Returns:
        (T, ..., D), NaN exactly where the input is.
    """
    from scipy.signal import butter, sosfiltfilt  # 0.35 s to import: only when filtering
    if not 0 < cutoff_hz < fps / 2:
        raise ValueError(f"cutoff_hz must be in (0, fps / 2 = {fps / 2:g}) Hz; got {cutoff_hz}")
    sos = butter(order, cutoff_hz, fs=fps, output="sos")
    x, shape = _as_series(points)
    out = x.copy()
    groups: dict[tuple[int, int], list[int]] = {}
    for m in range(x.shape[1]):  # series sharing a run are filtered together
        for run in _runs(np.isfinite(x[:, m]).all(-1)):
            if run[1] - run[0] >= 3 * order:
                groups.setdefault(run, []).append(m)
    for (start, stop), ms in groups.items():
        seg = x[start:stop, ms]
        out[start:stop, ms] = sosfiltfilt(sos, seg, axis=0, padlen=min(stop - start - 1, 3 * order))
    return out.reshape(shape)


def _alpha(cutoff_hz, fps: float):
    tau = 1 / (2 * np.pi * cutoff_hz)
    return 1 / (1 + tau * fps)


def one_euro(points: np.ndarray, fps: float, min_cutoff: float = 1.0, beta: float = 0.5,
             d_cutoff: float = 1.0) -> np.ndarray:
    """The one-euro filter of every trajectory (causal), restarting after each gap.

    Args:
        points: (T, ..., D), NaN in gaps. fps: frames per second.
        min_cutoff: the cut-off at rest, Hz. beta: cut-off increase per unit of speed
            (Hz per metre/second for points in metres). d_cutoff: cut-off of the speed estimate, Hz.

    Returns:
        (T, ..., D), NaN exactly where the input is.
    """
    if min(fps, min_cutoff, d_cutoff) <= 0 or beta < 0:
        raise ValueError(f"one_euro: fps, min_cutoff, d_cutoff must be > 0 and beta >= 0; got "
                         f"fps={fps}, min_cutoff={min_cutoff}, d_cutoff={d_cutoff}, beta={beta}")
    x, shape = _as_series(points)
    out = np.full_like(x, np.nan)
    prev = np.full(x.shape[1:], np.nan)
    speed = np.zeros(x.shape[1:])
    a_d = _alpha(d_cutoff, fps)
    for t in range(x.shape[0]):  # a recursive filter: one step per frame, all series at once
        cur = x[t]
        fresh = ~np.isfinite(prev).all(-1, keepdims=True)
        raw_speed = np.where(fresh, 0.0, (cur - prev) * fps)
        speed = np.where(fresh, 0.0, a_d * raw_speed + (1 - a_d) * speed)
        a = _alpha(min_cutoff + beta * np.linalg.norm(speed, axis=-1, keepdims=True), fps)
        prev = np.where(fresh, cur, a * cur + (1 - a) * prev)
        out[t] = prev
    return out.reshape(shape)


def smooth(points: np.ndarray, fps: float, method: str = "butterworth", cutoff_hz: float = 6.0,
           **options) -> np.ndarray:
    """Smooth trajectories (T, ..., D) with ``method`` ``"butterworth"`` (``cutoff_hz``) or
    ``"one_euro"`` (``cutoff_hz`` as its ``min_cutoff``); ``options`` go to that filter."""
    if method == "butterworth":
        return butterworth(points, fps, cutoff_hz, **options)
    if method == "one_euro":
        return one_euro(points, fps, min_cutoff=cutoff_hz, **options)
    raise ValueError(f"smoothing method must be 'butterworth' or 'one_euro'; got {method!r}")
