"""Fixtures of the calibration-from-people tests: motions whose geometry the tests rely on."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from epiflow.datasets.cmu import Motion, load_packaged_clip


def corner_walk(legs: int = 2, step: int = 2) -> Motion:
    """The packaged CMU walk (02_01, 3.3 m in a straight line) walked ``legs`` times, turning 90°
    left between legs (2 legs: an L), every ``step``-th frame kept.

    A straight walk puts the feet on a line, from which no floor plane can be fitted; an L spreads
    them over the floor (0.7 m std across its main axis)."""
    m = load_packaged_clip("02_01")
    start, R, pieces = np.zeros(3), np.eye(3), []
    turn = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    local = m.points - m.points[0, 0] * [1, 1, 0]
    for _ in range(legs):
        leg = local @ R.T + start
        pieces.append(leg)
        start, R = leg[-1, 0] * [1, 1, 0], turn @ R
    return replace(m, points=np.concatenate(pieces)[::step], fps=m.fps / step,
                   name=f"02_01 x{legs} legs")


@pytest.fixture(scope="session")
def l_walk() -> Motion:
    """:func:`corner_walk` with 2 legs (86 frames at 15 fps)."""
    return corner_walk(2)
