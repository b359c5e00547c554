"""Shelf detections, ground truth and the per-person accessor (epiflow.datasets.shelf)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from epiflow.calibration.formats import load_rig
from epiflow.calibration.triangulation import triangulate_linear
from epiflow.datasets.openpose import guess_body25_variant
from epiflow.datasets.shelf import (PAF_PAIRS, SHELF15, gt_track, read_shelf_detections, read_shelf_gt,
                                    shelf_person_keypoints)
from epiflow.skeleton import BODY25

# ground-truth joint -> the BODY_25 joint of the same name, and its mirror image
_SAME = {"r_ankle": "RAnkle", "r_knee": "RKnee", "r_hip": "RHip", "l_hip": "LHip",
         "l_knee": "LKnee", "l_ankle": "LAnkle", "r_wrist": "RWrist", "r_elbow": "RElbow",
         "r_shoulder": "RShoulder", "l_shoulder": "LShoulder", "l_elbow": "LElbow", "l_wrist": "LWrist"}


def _mirror(name: str) -> str:
    return ("L" if name[0] == "R" else "R") + name[1:]


@pytest.fixture(scope="module")
def shelf(shared_data):
    root = shared_data / "shelf"
    rig = load_rig(root / "calibration.json")
    dets = [read_shelf_detections(root / "detection" / f"{c.name}.txt", c.size) for c in rig]
    return root, rig, dets, read_shelf_gt(root / "gt.txt")


class TestDetections:
    def test_counts_ranges_and_paf_shapes(self, shelf):
        _, rig, dets, _ = shelf
        assert [len(d) for d in dets] == [301] * 5
        n = np.array([[len(j) for j in f.joints] for f in dets[0]])
        assert n.shape == (301, 25) and 1.5 < n.mean() < 4  # several people, bottom-up
        for frame in dets[2][::50]:
            for (a, b), paf in zip(PAF_PAIRS, frame.pafs):
                assert paf.shape == (len(frame.joints[a]), len(frame.joints[b]))
        cands = np.concatenate([j for d in dets for f in d for j in f.joints])
        assert cands[:, 0].min() >= 0 and cands[:, 0].max() <= 1031
        assert cands[:, 1].min() >= 0 and cands[:, 1].max() <= 775
        assert cands[:, 2].min() >= 0 and cands[:, 2].max() <= 1.1  # heatmap peaks, a few over 1

    def test_ground_truth_lands_on_the_detections(self, shelf):
        _, rig, dets, gt = shelf
        same, mirror, inside = [], [], []
        for t, people in enumerate(gt):
            for person in people:
                uv = rig.project(person.points)  # (C, 15, 2)
                inside.append(((uv >= 0) & (uv <= rig.sizes[:, None])).all(-1).mean())
                for c in range(len(rig)):
                    for s, b in _SAME.items():
                        for out, name in ((same, b), (mirror, _mirror(b))):
                            cand = dets[c][t].joints[BODY25.index(name)]
                            if len(cand):
                                out.append(np.linalg.norm(cand[:, :2] - uv[c, SHELF15.index(s)], axis=1).min())
        assert np.mean(inside) > 0.95  # measured 0.989
        assert np.median(same) < 30  # measured 14.2 px
        assert np.median(mirror) > 2 * np.median(same)  # left is left: measured 73 px vs 14


class TestGroundTruth:
    def test_people_and_body_sizes(self, shelf):
        _, _, _, gt = shelf
        assert len(gt) == 301
        frames_per_id = {i: sum(any(p.id == i for p in f) for f in gt) for i in range(4)}
        assert frames_per_id == {0: 279, 1: 37, 2: 161, 3: 33}
        track = gt_track(gt, 0)
        assert np.isfinite(track).all(-1).any(-1).sum() == 279
        head = track[:, SHELF15.index("head_top"), 2]
        feet = track[:, [SHELF15.index("l_ankle"), SHELF15.index("r_ankle")], 2].mean(-1)
        assert 1.4 < np.nanmedian(head - feet) < 2.0  # metres, Z up
        pelvis = track[:, SHELF15.index("pelvis")]
        hips = track[:, [SHELF15.index("l_hip"), SHELF15.index("r_hip")]].mean(1)
        assert np.nanmedian(np.linalg.norm(pelvis - hips, axis=-1)) < 0.1


class TestPersonKeypoints:
    def test_picked_candidates_triangulate_onto_the_ground_truth(self, shelf):
        root, rig, _, gt = shelf
        kp = shelf_person_keypoints(root, 0)
        assert kp.joint_set == "body25" and kp.data.shape == (301, 5, 25, 3)
        assert kp.camera_names == ("0", "1", "2", "3", "4")
        assert guess_body25_variant(kp.data) == "body25"
        present = np.isfinite(gt_track(gt, 0)).all(-1).any(-1)
        assert (kp.confidence[present] > 0).mean() > 0.75  # measured 0.82
        assert np.all(kp.confidence[~present] == 0) and kp.confidence.max() <= 1.0
        xy = kp.xy.transpose(1, 0, 2, 3).reshape(5, -1, 2)
        w = (kp.confidence.transpose(1, 0, 2).reshape(5, -1) > 0).astype(float)
        X = triangulate_linear(torch.tensor(rig.projection_matrices()),
                               torch.nan_to_num(torch.tensor(xy)), torch.tensor(w)).numpy()
        X[w.sum(0) < 2] = np.nan
        X = X.reshape(301, 25, 3)
        track = gt_track(gt, 0)
        err = np.stack([np.linalg.norm(X[:, BODY25.index(b)] - track[:, SHELF15.index(s)], axis=-1)
                        for s, b in _SAME.items()], 1)
        assert np.nanmedian(err) < 0.08  # measured 0.047 m

    def test_unknown_person(self, shelf):
        with pytest.raises(ValueError, match="no person with id 7"):
            shelf_person_keypoints(shelf[0], 7)


class TestBadFiles:
    def test_truncated_wrong_type_and_missing(self, tmp_path, shared_data):
        lines = (shared_data / "shelf" / "detection" / "0.txt").read_text().splitlines()
        (tmp_path / "cut.txt").write_text("\n".join(lines[:5000]))
        with pytest.raises(ValueError, match=r"cut\.txt.*truncated"):
            read_shelf_detections(tmp_path / "cut.txt")
        (tmp_path / "type.txt").write_text("\n".join(["2\t301"] + lines[1:]))
        with pytest.raises(ValueError, match=r"type\.txt.*skeleton type 2.*BODY_25"):
            read_shelf_detections(tmp_path / "type.txt")
        (tmp_path / "long.txt").write_text("\n".join(["4\t300"] + lines[1:]))
        with pytest.raises(ValueError, match=r"long\.txt.*numbers left after 300 frames"):
            read_shelf_detections(tmp_path / "long.txt")
        with pytest.raises(FileNotFoundError, match="none.txt"):
            read_shelf_detections(tmp_path / "none.txt")

    def test_gt_header(self, tmp_path):
        (tmp_path / "gt.txt").write_text("14 1\n0\n")
        with pytest.raises(ValueError, match=r"gt\.txt.*14 joints; expected 15"):
            read_shelf_gt(tmp_path / "gt.txt")
        with pytest.raises(FileNotFoundError, match="nogt.txt"):
            read_shelf_gt(tmp_path / "nogt.txt")
