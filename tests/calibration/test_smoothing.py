"""Temporal smoothing and gap filling of trajectories with gaps."""
from __future__ import annotations

import numpy as np
import pytest

from epiflow.calibration.smoothing import butterworth, fill_gaps, one_euro, smooth

FPS = 60.0


def _trajectory(T=600, noise=0.01, seed=0):
    """(clean, noisy) (T, 2, 3): a 0.5 Hz sine of 0.3 m amplitude plus white noise."""
    t = np.arange(T) / FPS
    clean = 0.3 * np.sin(2 * np.pi * 0.5 * t)[:, None, None] * np.array([1.0, 0.5, -1.0])
    clean = np.broadcast_to(clean, (T, 2, 3)).copy()
    return clean, clean + np.random.default_rng(seed).normal(0, noise, clean.shape)


def _rms(a, b):
    return float(np.sqrt(np.nanmean((a - b) ** 2)))


class TestButterworth:
    def test_removes_noise_keeps_the_motion_and_has_no_lag(self):
        clean, noisy = _trajectory()
        out = butterworth(noisy, FPS, cutoff_hz=4.0)
        assert _rms(out, clean) < 0.5 * _rms(noisy, clean)  # white noise: ~0.37 passes
        lags = range(-5, 6)
        xcorr = [np.sum(np.roll(out[:, 0, 0], k)[10:-10] * clean[10:-10, 0, 0]) for k in lags]
        assert list(lags)[int(np.argmax(xcorr))] == 0  # zero phase

    def test_gaps_stay_gaps_and_runs_are_filtered_apart(self):
        clean, noisy = _trajectory()
        noisy[200:230, 0] = np.nan
        out = butterworth(noisy, FPS, cutoff_hz=4.0)
        assert np.isnan(out[200:230, 0]).all() and np.isfinite(out[:200]).all()
        assert np.isfinite(out[230:]).all() and np.isfinite(out[:, 1]).all()
        assert _rms(out[:, 0], clean[:, 0]) < 0.5 * _rms(noisy[:, 0], clean[:, 0])

    def test_short_runs_are_left_alone(self):
        x = np.full((20, 1, 3), np.nan)
        x[5:9] = np.random.default_rng(1).normal(size=(4, 1, 3))
        np.testing.assert_array_equal(butterworth(x, FPS), x)

    def test_cutoff_must_be_below_nyquist(self):
        with pytest.raises(ValueError, match="cutoff_hz"):
            butterworth(np.zeros((50, 3)), FPS, cutoff_hz=30.0)


class TestOneEuro:
    def test_smooths_a_still_point_and_restarts_after_a_gap(self):
        x = np.random.default_rng(2).normal(0, 0.01, (300, 3))
        x[100:110] = np.nan
        x[110:] += 1.0  # the point reappears elsewhere
        out = one_euro(x, FPS, min_cutoff=1.0, beta=0.0)
        assert np.isnan(out[100:110]).all()
        assert np.std(out[20:100] - 0.0) < 0.3 * np.std(x[20:100])
        assert abs(out[110, 0] - x[110, 0]) < 1e-12  # no memory of the old position

    def test_fast_motion_lags_less_with_beta(self):
        clean, noisy = _trajectory(noise=0.002)
        slow = one_euro(noisy, FPS, min_cutoff=0.5, beta=0.0)
        fast = one_euro(noisy, FPS, min_cutoff=0.5, beta=5.0)
        assert _rms(fast, clean) < 0.7 * _rms(slow, clean)


class TestFillGaps:
    def test_fills_short_interior_gaps_linearly_only(self):
        x = np.arange(30, dtype=float)[:, None].repeat(3, 1)
        x[[0, 1]] = np.nan        # leading gap: stays
        x[10:13] = np.nan         # 3 frames: filled
        x[20:25] = np.nan         # 5 frames: stays
        x[-1] = np.nan            # trailing: stays
        out, filled = fill_gaps(x, 3)
        np.testing.assert_allclose(out[10:13, 0], [10, 11, 12])
        assert filled[10:13].all() and filled.sum() == 3
        assert np.isnan(out[[0, 1, 20, 24, 29]]).all()

    def test_rejects_negative(self):
        with pytest.raises(ValueError, match="max_gap"):
            fill_gaps(np.zeros((5, 3)), -1)


def test_smooth_dispatches_and_rejects_unknown_methods():
    clean, noisy = _trajectory()
    np.testing.assert_array_equal(smooth(noisy, FPS, "one_euro", cutoff_hz=1.5, beta=2.0),
                                  one_euro(noisy, FPS, min_cutoff=1.5, beta=2.0))
    np.testing.assert_array_equal(smooth(noisy, FPS, cutoff_hz=5.0),
                                  butterworth(noisy, FPS, cutoff_hz=5.0))
    with pytest.raises(ValueError, match="butterworth"):
        smooth(noisy, FPS, "kalman")
