"""Left/right labels made consistent across cameras (mirroring): whole-body and half-body
exchanges found with all cameras at once, and a wrong initial decision undone."""
from __future__ import annotations

import numpy as np
import pytest

from epiflow.calibration.mirroring import apply_flips, relabel_flips
from epiflow.datasets.synthetic import Corruption, cmu_capture
from epiflow.skeleton import H36M17

PERM = H36M17.flip_permutation
J = H36M17.index
ARMS = [J(n) for n in ("l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist")]
MIDDLE = [J(n) for n in ("pelvis", "spine", "thorax", "neck", "head")]


@pytest.fixture(scope="module")
def seen():
    """The walk's exact 2D in 4 cameras plus 1 px noise: (C, T, 17, 2), validity, the rig."""
    cap = cmu_capture("02_01", corruption=Corruption.none(), seed=0)
    xy = cap.keypoints.xy.transpose(1, 0, 2, 3)
    xy = xy + np.random.default_rng(0).normal(0, 1.0, xy.shape)
    return xy, np.isfinite(xy).all(-1), cap.rig


def test_apply_flips_whole_body_and_per_joint():
    values = np.arange(2 * 3 * 17).reshape(2, 3, 17).astype(float)  # (C, T, J)
    whole = np.zeros((3, 2), bool)
    whole[1, 0] = True  # camera 0, frame 1
    out = apply_flips(values, whole, PERM)
    np.testing.assert_array_equal(out[0, 1], values[0, 1, PERM])
    out[0, 1] = values[0, 1]
    np.testing.assert_array_equal(out, values)  # nothing else moved
    per_joint = np.zeros((3, 2, 17), bool)
    per_joint[2, 1, ARMS] = True
    out = apply_flips(values[..., None], per_joint, PERM)[..., 0]  # trailing axes follow
    assert out[1, 2, J("l_wrist")] == values[1, 2, J("r_wrist")]
    assert out[1, 2, J("l_knee")] == values[1, 2, J("l_knee")]
    np.testing.assert_array_equal(apply_flips(out, per_joint, PERM), values)  # an involution


def test_exchanges_are_found_with_all_cameras(seen):
    """cam_03 has its arms mirrored in frames 5-9 (a person seen from behind), cam_02 the whole
    body at frame 20; the start wrongly says cam_04 is mirrored at frame 30. Every decision comes
    out right (0 of 5848 wrong, measured)."""
    xy, valid, rig = seen
    truth = np.zeros((xy.shape[1], 4, 17), bool)
    truth[5:10, 2, ARMS] = True
    truth[20, 1] = True
    truth[20, 1, MIDDLE] = False  # joints without a twin are never exchanged
    start = np.zeros((xy.shape[1], 4), bool)
    start[30, 3] = True
    flips = relabel_flips(rig, apply_flips(xy, truth, PERM), apply_flips(valid, truth, PERM),
                          start, PERM)
    assert flips.shape == truth.shape and flips.dtype == bool
    np.testing.assert_array_equal(flips, truth)
    # twins always exchanged together
    np.testing.assert_array_equal(flips, flips[..., PERM])


def test_small_errors_are_not_taken_for_exchanges(seen):
    """Twins a few pixels apart (the hips seen side-on) are not exchanged on noise: nothing
    changes on unmirrored input with 1 px noise."""
    xy, valid, rig = seen
    flips = relabel_flips(rig, xy, valid, np.zeros((xy.shape[1], 4), bool), PERM)
    assert not flips.any()
