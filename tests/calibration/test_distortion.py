"""The one distortion model (calibration/projection.py) and its Jacobian; bundle adjustment's
numpy copy must agree with it to 1e-12."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from epiflow.calibration import projection as P
from epiflow.calibration.bundle_adjustment import _distortion_terms

#: (k1, k2, p1, p2, k3): none, radial only, and strong radial + tangential + k3
LENSES = {"none": [0, 0, 0, 0, 0], "radial": [-0.28, 0.09, 0, 0, 0],
          "full": [0.21, -0.35, 0.012, -0.008, 0.14]}


def _points(n: int = 400) -> np.ndarray:
    return np.random.default_rng(7).uniform(-0.8, 0.8, (n, 2))


@pytest.mark.parametrize("lens", list(LENSES))
def test_jacobian_is_the_derivative(lens):
    xy = torch.tensor(_points(50), dtype=torch.float64)
    dist = torch.tensor(LENSES[lens], dtype=torch.float64)
    auto = torch.stack([torch.autograd.functional.jacobian(
        lambda p: P.distort(p[None], dist)[0], p) for p in xy])
    assert (P.distort_jacobian(xy, dist) - auto).abs().max() < 1e-12


@pytest.mark.parametrize("lens", list(LENSES))
def test_bundle_adjustment_copy_agrees_to_1e_12(lens):
    xy, dist = _points(), np.array(LENSES[lens], np.float64)
    xd, yd, r2, J = _distortion_terms(xy[:, 0], xy[:, 1], dist)
    t_xy, t_dist = torch.from_numpy(xy), torch.from_numpy(dist)
    ref = P.distort(t_xy, t_dist).numpy()
    ref_J = P.distort_jacobian(t_xy, t_dist).numpy()
    assert np.abs(np.stack([xd, yd], -1) - ref).max() < 1e-12
    assert np.abs(J - ref_J).max() < 1e-12
    np.testing.assert_allclose(r2, (xy ** 2).sum(-1), rtol=0, atol=1e-15)
    if lens == "full":  # the check would catch a wrong tangential term: they move points by ~1e-3
        assert np.abs(ref - xy).max() > 1e-3
