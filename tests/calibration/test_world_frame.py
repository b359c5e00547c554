"""Metric scale, up axis, floor and origin from the body (world_frame), on exact 3D motion.

The packaged CMU clips are in metres, Z up, floor at z = 0: the truth every number is checked
against. The end-to-end checks (cameras calibrated from noisy 2D, then put in this frame) are in
test_from_people.py."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from epiflow.calibration import world_frame as wf
from epiflow.datasets.cmu import load_packaged_clip
from epiflow.skeleton import H36M17

J = H36M17.index


def _h36m(clip: str) -> np.ndarray:
    return load_packaged_clip(clip).to_h36m().points


def _tilt_deg(up: np.ndarray) -> float:
    """Angle (degrees) between a unit vector and the true up, +Z."""
    return float(np.degrees(np.arccos(np.clip(up[2], -1, 1))))


def _to_world(points: np.ndarray, a: wf.WorldAlignment) -> np.ndarray:
    return points * a.scale @ a.R.T + a.t


def _proportioned_person(height: float) -> np.ndarray:
    """(1, 17, 3) a standing person whose limbs are exactly the BONE_RATIOS × height."""
    H = height
    p = np.zeros((17, 3))
    hip_z = (0.246 + 0.245) * H + wf.ANKLE_HEIGHT_RATIO * H
    for side, x in (("l", 0.09), ("r", -0.09)):
        p[J(f"{side}_hip")] = [x, 0, hip_z]
        p[J(f"{side}_knee")] = [x, 0, hip_z - 0.245 * H]
        p[J(f"{side}_ankle")] = [x, 0, hip_z - 0.491 * H]
    p[J("pelvis")] = [0, 0, hip_z]
    sh_z = hip_z + 0.288 * H
    for side, x in (("l", 0.2), ("r", -0.2)):
        p[J(f"{side}_shoulder")] = [x, 0, sh_z]
        p[J(f"{side}_elbow")] = [x, 0, sh_z - 0.186 * H]  # arms hanging down
        p[J(f"{side}_wrist")] = [x, 0, sh_z - 0.332 * H]
    p[J("spine")], p[J("thorax")] = [0, 0, hip_z + 0.15 * H], [0, 0, sh_z]
    p[J("neck")], p[J("head")] = [0, 0, sh_z + 0.05 * H], [0, 0, sh_z + 0.12 * H]
    return p[None]


class TestScale:
    def test_height_from_exact_proportions(self):
        person = _proportioned_person(1.83)
        assert wf.estimate_height(person) == pytest.approx(1.83, abs=1e-9)
        assert wf.scale_from_body(person / 1000 * 3, 1.83) == pytest.approx(1000 / 3, rel=1e-9)

    def test_one_wrong_limb_is_left_out_of_the_fit(self):
        person = _proportioned_person(1.60)
        person[0, J("r_wrist"), 2] -= 0.3  # one forearm 0.3 m too long (a misdetected wrist)
        assert wf.estimate_height(person) == pytest.approx(1.60, abs=1e-9)
        # in the least-squares fit it would move the height by 0.146 * 0.3 / sum(ratio²) = 10 cm

    def test_missing_limbs_and_bad_shapes(self):
        person = np.repeat(_proportioned_person(1.75), 3, axis=0)
        person[:, J("l_elbow")] = np.nan  # the left arm never seen
        lengths = wf.bone_lengths(person)
        assert np.isnan(lengths[[0, 2]]).all() and np.isfinite(np.delete(lengths, [0, 2])).all()
        assert wf.estimate_height(person) == pytest.approx(1.75, abs=1e-9)
        with pytest.raises(ValueError, match=r"\(T, 17, 3\)"):
            wf.bone_lengths(person[:, :16])
        with pytest.raises(ValueError, match="no limb"):
            wf.estimate_height(np.full((2, 17, 3), np.nan))

    def test_cmu_subject(self):
        # subject 02 of CMU: the limbs imply 1.638 m (measured; 1.656 m by the median over limbs
        # used before); a 1.70 m default is 3.8 % off
        assert wf.estimate_height(_h36m("02_01")) == pytest.approx(1.638, abs=0.005)


class TestAlignment:
    @pytest.mark.parametrize("clip", ["02_04", "L"])
    def test_does_not_depend_on_the_frame_the_points_come_in(self, clip, l_walk):
        """Points moved by any similarity end in the same world: the alignment uses only the body
        (both up sources: the body axis on 02_04, the floor plane on the L-shaped walk)."""
        P = l_walk.to_h36m().points if clip == "L" else _h36m(clip)
        a0 = wf.world_alignment(P, 1.7)
        s, R = 0.37, Rotation.from_rotvec([0.4, -1.9, 0.8]).as_matrix()
        Q = s * P @ R.T + [3.0, -7.0, 11.0]
        a = wf.world_alignment(Q, 1.7)
        assert a.up_source == a0.up_source == ("floor plane" if clip == "L" else "body axis")
        assert a.scale == pytest.approx(a0.scale / s, rel=1e-9)
        np.testing.assert_allclose(_to_world(Q, a), _to_world(P, a0), atol=1e-9)

    def test_floor_plane_when_the_person_walks_around(self, l_walk):
        """On an L-shaped walk the feet span the floor: its normal replaces the body axis, which
        leans forward (3.2° on this walk, measured) and would tilt the cameras."""
        P = l_walk.to_h36m().points
        assert _tilt_deg(wf.up_direction(P)) > 2.0
        a = wf.world_alignment(P, wf.estimate_height(P))
        assert a.up_source == "floor plane"
        assert _tilt_deg(a.R[2]) < 0.7  # 0.35° measured (0.14° on a U, 0.0° on a square)
        assert a.scale == pytest.approx(1.0, abs=1e-9)
        W = _to_world(P, a)
        # the floor: true z = 0 under the feet maps to 0 (-0.004 m measured)
        feet = np.nanmean(P[:, [J("l_ankle"), J("r_ankle")]], axis=(0, 1)) * [1, 1, 0]
        assert abs(_to_world(feet[None, None], a)[0, 0, 2]) < 0.01
        # the ankles stand as high above it as in truth (0.003 m apart, measured)
        assert np.nanpercentile(W[:, [J("l_ankle"), J("r_ankle")], 2], 5) == pytest.approx(
            np.nanpercentile(P[:, [J("l_ankle"), J("r_ankle")], 2], 5), abs=0.01)

    def test_body_axis_for_a_straight_walk(self):
        """Feet on a line fit no plane: up is the body axis, leaning forward 4.7° on this walk
        (measured)."""
        P = _h36m("02_01")
        a = wf.world_alignment(P, wf.estimate_height(P))
        assert a.up_source == "body axis"
        assert 3.5 < _tilt_deg(a.R[2]) < 6.0  # 4.66° measured

    def test_standing_in_place(self):
        """A jump and balance in place: the body axis is upright (0.39° off, measured) and the
        lowest joint as high above the floor as in truth (0.015 m apart, measured)."""
        P = _h36m("02_04")
        a = wf.world_alignment(P, wf.estimate_height(P))
        assert a.up_source == "body axis" and _tilt_deg(a.R[2]) < 0.8
        W = _to_world(P, a)
        assert abs(np.nanmin(W[..., 2]) - np.nanmin(P[..., 2])) < 0.03

    def test_origin_under_the_pelvis_and_y_the_way_the_person_faces(self, l_walk):
        P = l_walk.to_h36m().points
        W = _to_world(P, wf.world_alignment(P, 1.7))
        np.testing.assert_allclose(W[0, J("pelvis"), :2], 0.0, atol=1e-9)
        # the walk goes 3.4 m forward (+y), then turns left (-x)
        mid, end = W[len(W) // 2 - 1, J("pelvis")], W[-1, J("pelvis")]
        assert mid[1] > 2.8 and abs(mid[0]) < 0.3
        assert end[0] < -2.8 and abs(end[1] - mid[1]) < 0.4
        # x = y × z: the right hip is on +x at the start
        assert W[0, J("r_hip"), 0] > W[0, J("l_hip"), 0] + 0.1

    def test_scale_follows_the_given_height(self):
        P = _h36m("02_04")
        tall = wf.world_alignment(P, 1.90)
        short = wf.world_alignment(P, 1.50)
        assert tall.scale / short.scale == pytest.approx(1.90 / 1.50, rel=1e-12)
        assert tall.height == 1.90
        assert tall.scale == pytest.approx(1.90 / 1.638, rel=0.005)
