"""People assembled from Shelf's bottom-up detections, and the Shelf PCP protocol.

epiflow.datasets.bottom_up.assemble_people, epiflow.datasets.shelf.read_shelf_people,
epiflow.models.metrics.pcp, epiflow.models.shelf_eval.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from epiflow.calibration.formats_shelf import load_shelf_calibration
from epiflow.datasets.bottom_up import assemble_people
from epiflow.datasets.shelf import (PAF_PAIRS, read_shelf_detections, read_shelf_gt,
                                    read_shelf_people)
from epiflow.models.metrics import pcp
from epiflow.models.shelf_eval import (SHELF_LIMBS, evaluate_shelf, shelf14_from_body25)
from epiflow.skeleton import BODY25

_LIMB_JOINTS = [BODY25.index(n) for n in ("RAnkle", "RKnee", "RHip", "LHip", "LKnee", "LAnkle",
                                          "RWrist", "RElbow", "RShoulder", "LShoulder", "LElbow",
                                          "LWrist")]


def _chain_frame():
    """Two people on a 3-joint chain 0-1-2; candidates listed in an order unrelated to people."""
    joints = [np.array([[10., 0, .9], [50., 0, .8]]),          # person A at x≈10, B at x≈50
              np.array([[51., 10, .9], [11., 10, .9]]),
              np.array([[12., 20, .7], [52., 20, .9], [90., 90, .2]])]  # a stray third candidate
    pairs = ((0, 1), (1, 2))
    pafs = (np.array([[.1, .9], [.8, .2]]),                    # 0-1: A0-B1... i.e. 0→1, 1→0
            np.array([[.05, .9, 0.], [.85, .1, .3]]))          # 1-2: cand0(B)→1, cand1(A)→0
    return joints, pafs, pairs


class TestAssemblePeople:
    def test_two_people_by_affinity_not_by_candidate_order(self):
        people = assemble_people(*_chain_frame(), min_joints=2)
        assert people.shape == (2, 3, 3)
        xs = sorted(tuple(p[:, 0]) for p in people)
        assert xs == [(10., 11., 12.), (50., 51., 52.)]  # the stray candidate (90, 90) unused

    def test_each_candidate_once_and_merge_of_fragments(self):
        joints, pafs, pairs = _chain_frame()
        # the best connection first builds A's 1-2, then A's 0-1 must merge into the same person
        pafs = (np.array([[.5, .9], [.8, .2]]), np.array([[.05, .95, 0.], [.99, .1, .3]]))
        people = assemble_people(joints, pafs, pairs, min_joints=3)
        used = [(j, x) for p in people for j, x in enumerate(p[:, 0])]
        assert len(people) == 2 and len(used) == len(set(used))

    def test_min_joints_and_nobody(self):
        joints, pafs, pairs = _chain_frame()
        assert assemble_people(joints, pafs, pairs, min_joints=4).shape == (0, 3, 3)
        empty = [np.zeros((0, 3))] * 3
        assert assemble_people(empty, (np.zeros((0, 0)),) * 2, pairs).shape == (0, 3, 3)

    def test_paf_shape_mismatch_is_named(self):
        joints, pafs, pairs = _chain_frame()
        with pytest.raises(ValueError, match=r"pafs\[1\] \(joints 1-2\) must be \(2, 3\)"):
            assemble_people(joints, (pafs[0], pafs[1][:, :2]), pairs)


@pytest.fixture(scope="module")
def camera0(shared_data):
    root = shared_data / "shelf"
    rig = load_shelf_calibration(root / "calibration.json")
    frames = read_shelf_detections(root / "detection" / "0.txt", rig[0].size)
    people = [assemble_people(f.joints, f.pafs, PAF_PAIRS) for f in frames]
    return rig, people, read_shelf_gt(root / "gt.txt")


class TestShelfAssembly:
    def test_every_actor_in_view_has_a_person(self, camera0):
        """Each ground-truth actor seen by camera 0 is matched by one assembled person: median
        distance over its 12 limb joints (at least 6 found) under 40 px (measured 94 %; the
        ground truth itself lands 12–21 px from the detections)."""
        rig, people, gt = camera0
        median, enough = [], []
        for t, actors in enumerate(gt):
            found = sum((p[:, 2] > 0).sum() >= 8 for p in people[t])
            in_view = 0
            for actor in actors:
                uv = rig.project(actor.points[:12])[0]
                in_view += bool(((uv >= 0) & (uv <= rig.sizes[0])).all())
                d = np.linalg.norm(people[t][:, _LIMB_JOINTS, :2] - uv, axis=-1)
                score = [np.nanmedian(r) if np.isfinite(r).sum() >= 6 else np.inf for r in d]
                median.append(min(score, default=np.inf))
            enough.append(found >= in_view)
        assert np.mean(np.array(median) < 40) > 0.9
        assert np.mean(enough) > 0.9  # at least one person of 8+ joints per actor in view

    def test_several_people_per_frame(self, camera0):
        _, people, gt = camera0
        n = np.array([len(p) for p in people])
        assert np.mean(n >= 2) > 0.95 and np.mean(n >= 3) > 0.5  # measured 1.00 and 0.62
        assert np.mean([len(a) for a in gt]) < n.mean() < 6


def _write_empty_shelf(root, counts):
    """A Shelf folder whose cameras' files hold ``counts`` frames in which nobody is detected."""
    camera = {"K": [500, 0, 320, 0, 500, 240, 0, 0, 1], "imgSize": [640, 480],
              "RT": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 5]}
    cams = {str(c): camera for c in range(len(counts))}
    (root / "detection").mkdir(parents=True)
    (root / "calibration.json").write_text(json.dumps(cams))
    for c, n in enumerate(counts):
        (root / "detection" / f"{c}.txt").write_text(f"4 {n}\n" + "0 " * (25 * n) + "\n")


class TestReadShelfPeople:
    def test_different_frame_counts_are_named(self, tmp_path):
        _write_empty_shelf(tmp_path, [3, 3, 2, 3, 3])
        with pytest.raises(ValueError,
                           match=r"different frame counts \(0.txt: 3, 1.txt: 3, 2.txt: 2"):
            read_shelf_people(tmp_path)

    def test_nobody_detected(self, tmp_path):
        _write_empty_shelf(tmp_path, [3, 3])
        assert read_shelf_people(tmp_path).shape == (3, 2, 0, 25, 3)
        assert read_shelf_people(tmp_path, "h36m17").shape == (3, 2, 0, 17, 3)
        with pytest.raises(ValueError, match="joint_set must be 'body25' or 'h36m17'; got 'coco17'"):
            read_shelf_people(tmp_path, "coco17")

    def test_missing_file_is_named(self, tmp_path):
        _write_empty_shelf(tmp_path, [2, 2])
        (tmp_path / "detection" / "1.txt").unlink()
        with pytest.raises(FileNotFoundError, match=r"1\.txt"):
            read_shelf_people(tmp_path)


def _pose(rng):
    """(14, 3) a standing Shelf-like skeleton with noise, metres, Z up."""
    base = np.array([[.1, 0, .1], [.1, 0, .5], [.1, 0, .9], [-.1, 0, .9], [-.1, 0, .5],
                     [-.1, 0, .1],
                     [.35, 0, .9], [.3, 0, 1.15], [.2, 0, 1.4], [-.2, 0, 1.4], [-.3, 0, 1.15],
                     [-.35, 0, .9], [0, 0, 1.5], [0, 0, 1.75]])
    return base + rng.normal(0, .01, base.shape)


class TestPcp:
    def test_perfect_and_one_limb_off(self):
        gt = _pose(np.random.default_rng(0))
        assert np.nanmean(pcp(gt, gt, SHELF_LIMBS[:9])) == 1.0
        pred = gt.copy()
        pred[6] += [0, 0.3, 0]  # r_wrist 0.3 m off: r_lower_arm (0.25 m) mean error 0.15 > 0.125
        scores = pcp(pred, gt, SHELF_LIMBS[:9])
        assert scores[4] == 0.0 and np.delete(scores, 4).min() == 1.0
        pred[6] = gt[6] + [0, 0.2, 0]  # mean error 0.1 <= half the length: correct
        assert pcp(pred, gt, SHELF_LIMBS[:9])[4] == 1.0

    def test_nan_prediction_is_wrong_nan_truth_unscored(self):
        gt = _pose(np.random.default_rng(1))
        pred = gt.copy()
        pred[0] = np.nan
        gt2 = gt.copy()
        gt2[13] = np.nan
        assert pcp(pred, gt, [(0, 1)])[0] == 0.0 and np.isnan(pcp(gt2, gt2, [(12, 13)])[0])


class TestEvaluateShelf:
    def test_truth_scores_100_and_missing_people_0(self, shared_data):
        gt = read_shelf_gt(shared_data / "shelf" / "gt.txt")
        pred = np.full((len(gt), 4, 14, 3), np.nan)
        for t, actors in enumerate(gt):
            for a in actors:
                pred[t, a.id] = a.points[:14]
        scores = evaluate_shelf(pred[:, ::-1], gt)  # slot order does not matter
        assert scores.pcp.tolist() == [100.0] * 3 and np.allclose(scores.mpjpe_mm, 0)
        assert scores.pcp_limbs_only.tolist() == [100.0] * 3
        assert scores.matched.tolist() == [1.0] * 3
        assert scores.frames.tolist() == [279, 37, 161]
        pred[:, 1] = np.nan  # actor 2 never predicted, actor 1 now shifted by 0.4 m
        pred[:, 0] += [0.4, 0, 0]
        scores = evaluate_shelf(pred, gt)
        # actor 2 is matched to whoever is nearest (the protocol has no one-to-one constraint)
        assert scores.pcp[1] < 5 and scores.pcp[0] < 20 and scores.pcp[2] == 100.0
        assert abs(scores.mpjpe_mm[0] - 400) < 1 and abs(scores.mpjpe12_mm[0] - 400) < 1
        nobody = evaluate_shelf(np.full((len(gt), 0, 14, 3), np.nan), gt)
        assert nobody.pcp.tolist() == [0.0] * 3 and nobody.matched.tolist() == [0.0] * 3

    def test_derived_head_from_body25(self):
        """A BODY_25 pose built from a Shelf pose (nose ahead of the neck, ears beside the head)
        gives back the limb joints exactly and a neck and head top within 6 cm."""
        shelf = _pose(np.random.default_rng(2))
        b = {n: i for i, n in enumerate(BODY25.joints)}
        body = np.full((25, 3), np.nan)
        body[_LIMB_JOINTS] = shelf[:12]
        body[b["Nose"]] = [0, -0.1, 1.62]
        body[b["LEar"]], body[b["REar"]] = [-0.08, 0, 1.62], [0.08, 0, 1.62]
        out = shelf14_from_body25(body)
        assert np.array_equal(out[:12], shelf[:12])
        assert np.linalg.norm(out[12:] - [[0, -0.05, 1.5], [0, -0.08, 1.75]], axis=1).max() < 0.06
