"""Synthetic crowds (epiflow.datasets.crowds): what the generator promises, on its output."""
from __future__ import annotations

import numpy as np
import pytest

from epiflow.datasets.crowds import CrowdOptions, make_crowd, naive_slot_order, score_people


@pytest.fixture(scope="module")
def crowd():
    return make_crowd(CrowdOptions(n_people=4, n_cameras=5, n_frames=40), seed=1)


def test_shapes_and_determinism(crowd):
    T, C, P, J, _ = crowd.detections.shape
    assert (T, C, J) == (40, 5, 17) and crowd.truth.shape == (40, 4, 17, 3)
    assert crowd.slot_person.shape == crowd.ghost.shape == (T, C, P)
    again = make_crowd(CrowdOptions(n_people=4, n_cameras=5, n_frames=40), seed=1)
    assert np.array_equal(again.detections, crowd.detections, equal_nan=True)
    empty = (crowd.slot_person < 0) & ~crowd.ghost
    assert np.isnan(crowd.detections[empty][..., :2]).all()
    assert (crowd.detections[empty][..., 2] == 0).all()


def test_slots_are_shuffled_and_people_hidden_and_ghosts_present(crowd):
    real = crowd.slot_person >= 0
    slot = np.broadcast_to(np.arange(crowd.slot_person.shape[2]), crowd.slot_person.shape)
    assert (crowd.slot_person[real] == slot[real]).mean() < 0.5
    assert 0.02 < crowd.ghost.sum() / real.sum() < 0.3
    assert 0.03 < (~crowd.detected).mean() < 0.4        # hidden from some views
    a, b, t, d = crowd.closest
    assert (a, b) == (0, 1) and d < 0.5                 # the two walkers cross


def test_detections_sit_on_the_truth(crowd):
    t, c, p = np.nonzero(crowd.slot_person >= 0)
    uv = crowd.rig.project(crowd.truth)                  # (C, T, N, J, 2)
    err = np.linalg.norm(crowd.detections[t, c, p, :, :2] - uv[c, t, crowd.slot_person[t, c, p]],
                         axis=-1)
    assert np.nanmedian(err) < 5.0


def test_the_score_of_the_truth_and_of_slot_order(crowd):
    truth = score_people(crowd, crowd.truth, crowd.slot_person)
    assert truth["found"] == 1.0 and truth["mpjpe_mm"] == 0.0 and truth["swaps"] == 0
    assert truth["assignment_accuracy"] == 1.0 and truth["ghosts_rejected"] == 1.0
    naive = score_people(crowd, crowd.truth, naive_slot_order(crowd.detections))
    assert naive["assignment_accuracy"] < 0.6 and naive["ghosts_rejected"] == 0.0


def test_bad_options():
    with pytest.raises(ValueError, match="n_people must be in 2..8"):
        CrowdOptions(n_people=1)
