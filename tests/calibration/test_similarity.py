"""Umeyama's similarity between matched point sets."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from epiflow.calibration.similarity import umeyama


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(6, 3))
    R = Rotation.random(random_state=1).as_matrix()
    s, R_est, t = umeyama(src, 2.5 * src @ R.T + [1, 2, 3])
    assert s == pytest.approx(2.5) and np.abs(R_est - R).max() < 1e-9
    np.testing.assert_allclose(t, [1, 2, 3], atol=1e-9)


def test_umeyama_excludes_reflections():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(8, 3))
    mirrored = src * [1, 1, -1]                       # no rotation maps src onto this exactly
    s, R, t = umeyama(src, mirrored)
    assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-12)
    assert np.abs(s * src @ R.T + t - mirrored).max() > 0.1
