"""A triangulated sequence's views mask has one layout, (T, C, J): never guessed from the shape."""
from __future__ import annotations

import numpy as np
import pytest

from epiflow.pipeline.triangulate import views_tcj


def test_views_are_frames_cameras_joints():
    views = np.random.default_rng(0).random((5, 3, 17)) > 0.5
    np.testing.assert_array_equal(views_tcj(views, 5, 3, 17), views)


def test_a_camera_first_mask_is_refused_not_transposed():
    # (C, T, J) with T != C used to be transposed silently, and with T == C taken as it came
    with pytest.raises(ValueError, match=r"\(T, C, J\) = \(5, 3, 17\).*got \(3, 5, 17\)"):
        views_tcj(np.zeros((3, 5, 17), bool), 5, 3, 17)
    with pytest.raises(ValueError, match="got"):
        views_tcj(np.zeros((5, 17, 3), bool), 5, 3, 17)
