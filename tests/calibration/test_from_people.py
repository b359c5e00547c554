"""Cameras from the people in view (calibrate_from_people): synthetic round trips against the true
rig, the metric scale and the world frame, the per-frame baseline, matching intrinsics, and a
shortened run on the Pose2Sim demo against its lab calibration.

Synthetic captures: CMU motion seen by a ring of 4 cameras 5 m away (f = 1200 px, 1920x1080),
2D corrupted with 3 px noise (for a 400 px tall person), 5 % gross outliers, 10 % dropped joints
and 2 % left/right swapped camera-frames (``COR``). Bounds are about twice what was measured
(noted beside each)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from epiflow.calibration.camera import CalibrationError, Camera, CameraRig, match_rig
from epiflow.calibration.formats import load_toml
from epiflow.calibration.from_people import (CalibrationConfig, _fit_size, calibrate_from_people,
                                             guess_intrinsics)
from epiflow.calibration.world_frame import bone_lengths, estimate_height
from epiflow.datasets.cmu import load_packaged_clip
from epiflow.datasets.synthetic import Corruption, capture_center, cmu_capture, make_rig, synthesize
from epiflow.models.metrics import rig_errors
from epiflow.skeleton import H36M17

COR = Corruption(noise_px=3.0, outlier_fraction=0.05, drop_fraction=0.1, swap_fraction=0.02)
from epiflow.calibration.from_people import BODY_AXIS_WARNING, SCALE_WARNING


def _others(warnings: list[str]) -> list[str]:
    """The warnings besides the note that up came from the body axis and the one on a scale from
    body proportions (said whenever they do)."""
    return [w for w in warnings if w != BODY_AXIS_WARNING and not w.startswith(SCALE_WARNING)]


def _intrinsics_only(rig: CameraRig) -> CameraRig:
    """The rig's K and distortion with identity poses: nothing of the truth's extrinsics leaks."""
    return CameraRig(c.replace(R=np.eye(3), t=np.zeros(3)) for c in rig)


def _distances(rig: CameraRig) -> np.ndarray:
    """Distances between camera centres, metres, per pair i < j."""
    i, j = np.triu_indices(len(rig), 1)
    return np.linalg.norm(rig.centers[i] - rig.centers[j], axis=1)


def _up_error_deg(est: CameraRig, ref: CameraRig) -> np.ndarray:
    """Per camera, the angle between world up (+Z) as each rig's camera sees it."""
    cos = np.einsum("ci,ci->c", est.R[:, :, 2], ref.R[:, :, 2])
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


@pytest.fixture(scope="module")
def walk():
    """The CMU walk 02_01 (86 frames at 30 fps, 3.3 m straight), COR-corrupted."""
    return cmu_capture("02_01", corruption=COR, seed=0)


@pytest.fixture(scope="module")
def known(walk):
    return calibrate_from_people(walk.keypoints, _intrinsics_only(walk.rig))


@pytest.fixture(scope="module")
def unknown(walk):
    return calibrate_from_people(walk.keypoints, None)


@pytest.fixture(scope="module")
def per_frame(walk):
    return calibrate_from_people(walk.keypoints, _intrinsics_only(walk.rig),
                                 config=CalibrationConfig(method="per_frame"))


class TestSyntheticRoundTrip:
    def test_known_intrinsics(self, walk, known):
        err = rig_errors(known.rig, walk.rig)
        assert err["rotation_deg_max"] < 0.3  # 0.154° measured
        assert err["baseline_deg_max"] < 0.2  # 0.090° measured
        assert err["focal_rel_max"] < 1e-12  # given intrinsics stay as given
        assert err["position_m_max"] < 0.02  # 0.0048 m after a similarity, measured
        report = known.report
        assert report["method"] == "pooled" and report["intrinsics_refined"] == []
        assert report["converged"] and _others(report["warnings"]) == []
        assert len(report["pairs"]) == 6 and report["rejected_pairs"] == {}
        seen = (walk.keypoints.confidence >= 0.5).sum((0, 2))
        for c, (name, cam) in enumerate(report["cameras"].items()):
            assert name == walk.rig.names[c]
            # the noise is ~2.7 px per coordinate: a residual far below it is overfitting or a
            # wrong report; 2.0 px measured
            assert 1.2 < cam["reprojection_error_px_median"] < 3.0
            assert 0.85 * seen[c] < cam["observations_used"] <= seen[c]  # 96 % measured

    def test_the_same_input_gives_the_same_cameras(self, walk, known):
        """The camera pairs are fitted in threads, each robust fit seeded: no run-to-run drift."""
        again = calibrate_from_people(walk.keypoints, _intrinsics_only(walk.rig))
        np.testing.assert_array_equal(again.rig.R, known.rig.R)
        np.testing.assert_array_equal(again.rig.t, known.rig.t)

    def test_unknown_intrinsics_from_a_60_percent_wrong_guess(self, walk, unknown):
        guess = guess_intrinsics(walk.rig.names, walk.rig.sizes)
        assert rig_errors(guess, walk.rig)["focal_rel_max"] == pytest.approx(0.6)  # 1920 px
        err = rig_errors(unknown.rig, walk.rig)
        assert err["focal_rel_max"] < 0.05  # 2.1 % measured
        assert err["rotation_deg_max"] < 0.5  # 0.23° measured
        assert err["baseline_deg_max"] < 1.5  # 0.78° measured
        assert unknown.report["intrinsics_refined"] == ["focal"]
        assert _others(unknown.report["warnings"]) == []  # no implausible focal length either
        # the principal point is not refined by default: it stays at the image centre
        np.testing.assert_allclose(unknown.rig.K[:, :2, 2], walk.rig.K[:, :2, 2], atol=1e-9)

    def test_the_per_frame_baseline_is_far_worse_on_the_same_input(self, known, per_frame,
                                                                   walk):
        """EpipolarPose's way (a fundamental matrix per frame, medians) on the same noisy 2D:
        relative rotations 65° off (median; 128° max), against 0.12° (0.15° max) pooled."""
        ours, theirs = rig_errors(known.rig, walk.rig), rig_errors(per_frame.rig, walk.rig)
        assert np.median(theirs["rotation_deg"]) > 20
        assert np.median(theirs["rotation_deg"]) > 50 * ours["rotation_deg_max"]
        assert np.median(theirs["baseline_deg"]) > 5  # 17.6° measured, 0.06° pooled
        assert per_frame.report["method"] == "per_frame"
        assert sum(per_frame.report["frames_with_pose"].values()) > 200  # 3 pairs x 84 frames
        # its reprojection errors say so, and the report warns, camera by camera
        worst = max(c["reprojection_error_px_median"] for c in
                    per_frame.report["cameras"].values())
        assert worst > 20  # 91 px measured, 2.0 px pooled
        assert any("median reprojection error" in w for w in per_frame.report["warnings"])

    def test_a_focal_length_that_runs_away_is_not_silent(self):
        """Focal lengths of 900-1500 px guessed as 1920 px: on this rig (one in ten seeds,
        measured) bundle adjustment runs off to cam_03 at 25,800 px (13 x the image's side) with
        rotations 67° off and a median reprojection error of only 6 px, which used to come back
        without a word. Either the cameras are right or the report names the camera."""
        motion = load_packaged_clip("02_01")
        rig = make_rig(4, focal_px=(900, 1500), target=capture_center(motion), seed=3)
        cap = synthesize(motion, rig, Corruption(noise_px=2.0), seed=4)
        res = calibrate_from_people(cap.keypoints, None)
        err = rig_errors(res.rig, rig)
        wrong = {n for n, f in zip(rig.names, err["focal_rel"]) if f > 0.5}  # cam_03, cam_04
        warned = [w.split(":")[0] for w in res.report["warnings"] if "focal length" in w]
        assert err["rotation_deg_max"] < 1.0 or warned  # warned == ['cam_03'] today
        assert set(warned) <= wrong

    def test_left_right_swaps_are_made_consistent_across_cameras(self, walk, known):
        """Per frame and pair of twin joints (left/right hip, ...), the cameras seeing both must
        agree on which is which once the flips are applied (a whole frame mirrored in every
        camera is consistent). 30 of 516 disagree as detected, 5 after (outliers), measured."""
        perm = H36M17.flip_permutation
        twins = np.nonzero(perm > np.arange(17))[0]

        def disagreeing(flips):
            mirrored = flips[..., twins] ^ walk.swapped[..., None]  # (T, C, P) vs the truth
            seen = walk.keypoints.confidence >= 0.5
            both = seen[..., twins] & seen[..., perm[twins]]
            lo = np.where(both, mirrored, True).all(1)
            hi = np.where(both, mirrored, False).any(1)
            return int((hi & ~lo).sum())
        before, after = disagreeing(np.zeros_like(known.flips)), disagreeing(known.flips)
        assert before >= 20 and walk.swapped.sum() >= 5
        assert after <= 10 and after < 0.35 * before
        flipped_frames = known.flips.any(-1).sum(0)
        assert [c["left_right_flipped_frames"] for c in known.report["cameras"].values()] == \
            flipped_frames.tolist()

    def test_points_are_the_person_in_metres(self, walk, known):
        """The triangulated joints (in the calibrated world) have the true bone lengths scaled by
        1.70 / 1.656 (the default height over the subject's)."""
        ratio = bone_lengths(known.points) / bone_lengths(walk.points3d)
        assert known.points.shape == (86, 17, 3)
        assert np.abs(ratio - 1.70 / estimate_height(walk.points3d)).max() < 0.04  # 0.018 meas.


class TestMetricScale:
    def test_default_height_scales_by_body_proportions(self, walk, known):
        """No height given: 1.70 m is assumed; CMU subject 02's limbs say 1.638 m, so every
        camera distance comes out 1.70 / 1.638 = 1.038 times the true one (to 0.0054, measured:
        the least-squares fit over limbs takes every limb's noise, where the median over limbs
        took one limb's, 0.0008)."""
        H = estimate_height(walk.points3d)
        ratio = _distances(known.rig) / _distances(walk.rig)
        assert np.abs(ratio - 1.70 / H).max() < 0.008
        assert known.report["scale_source"] == "body_proportions"
        assert known.report["subject_height_m"] == 1.70

    def test_given_height_gives_true_distances(self, l_capture, l_result):
        cap, H, res = l_capture, *l_result
        ratio = _distances(res.rig) / _distances(cap.rig)
        assert np.abs(ratio - 1).max() < 0.01  # 0.5 % measured
        assert res.report["scale_source"] == "subject_height"
        assert res.report["subject_height_m"] == pytest.approx(H)


@pytest.fixture(scope="module")
def l_capture(l_walk):
    """An L-shaped walk (two legs of 02_01, 15 fps, 86 frames) seen by 4 cameras, COR-corrupted:
    the feet cover the floor, so the floor plane gives the up axis."""
    rig = make_rig(4, radius=5.0, target=capture_center(l_walk), seed=1)
    return synthesize(l_walk, rig, COR, seed=2)


@pytest.fixture(scope="module")
def l_result(l_capture):
    H = estimate_height(l_capture.points3d)
    return H, calibrate_from_people(l_capture.keypoints, _intrinsics_only(l_capture.rig),
                                    subject_height=H)


class TestWorldFrame:
    """The calibrated world is metric, Z up with the floor at z = 0: the truth's frame up to a
    turn about Z and a horizontal shift."""

    def test_up_axis_and_floor(self, l_capture, l_result):
        cap, (_, res) = l_capture, l_result
        assert res.report["up_source"] == "floor plane"
        assert _up_error_deg(res.rig, cap.rig).max() < 1.0  # 0.48° measured
        # camera heights above the floor: 1.5 m in truth, within 3.4 cm measured
        assert np.abs(res.rig.centers[:, 2] - cap.rig.centers[:, 2]).max() < 0.07
        # every joint's height over the clip (median |dz| 1.6 cm at worst, measured)
        dz = np.nanmedian(np.abs(res.points[..., 2] - cap.points3d[..., 2]), axis=0)
        assert dz.max() < 0.035

    def test_origin_under_the_person_at_the_start(self, l_capture, l_result):
        cap, (_, res) = l_capture, l_result
        pelvis = res.points[:, H36M17.index("pelvis")]
        np.testing.assert_allclose(pelvis[0, :2], 0.0, atol=1e-9)
        # the horizontal layout is the truth's turned about Z: distances from the origin agree
        true_origin = cap.points3d[0, H36M17.index("pelvis"), :2]
        np.testing.assert_allclose(
            np.linalg.norm(res.rig.centers[:, :2], axis=1),
            np.linalg.norm(cap.rig.centers[:, :2] - true_origin, axis=1), atol=0.06)  # 0.028 m


class TestIntrinsics:
    def test_matched_by_name_ignoring_case_and_punctuation(self):
        rig = make_rig(3, focal_px=(900, 1500), seed=1)  # cam_01, cam_02, cam_03
        matched, warnings = match_rig(rig, ["CAM03", "cam-01", "cam_02"], "intrinsics",
                                      by_order=True)
        assert matched.names == ["CAM03", "cam-01", "cam_02"] and warnings == []
        np.testing.assert_array_equal(matched.K, rig.K[[2, 0, 1]])

    def test_in_order_with_a_warning_when_no_name_matches(self):
        rig = make_rig(2, seed=1)
        matched, warnings = match_rig(rig, ["left", "right"], "intrinsics", by_order=True)
        np.testing.assert_array_equal(matched.K, rig.K)
        assert len(warnings) == 1 and "matched in order" in warnings[0]
        assert "['cam_01', 'cam_02']" in warnings[0] and "['left', 'right']" in warnings[0]

    def test_a_camera_without_intrinsics_is_named(self):
        rig = make_rig(3, seed=1)
        with pytest.raises(CalibrationError, match=r"no camera for \['cam_09'\] among "
                                                   r"\['cam_01', 'cam_02', 'cam_03'\]"):
            match_rig(rig, ["cam_01", "cam_09", "cam_02"], "intrinsics", by_order=True)
        with pytest.raises(CalibrationError, match=r"no camera for \['left', 'right'\]"):
            match_rig(rig, ["left", "right"], "intrinsics", by_order=True)

    def test_image_size_differences(self):
        cam = Camera("cam01", [[1680, 0, 533], [0, 1680, 948], [0, 0, 1]], size=(1088, 1920))
        cropped, warning = _fit_size(cam, (1080, 1920))  # H.264's padding cropped
        np.testing.assert_array_equal(cropped.K, cam.K)
        assert cropped.size == (1080, 1920) and "crop of padding" in warning
        half, warning = _fit_size(cam, (544, 960))  # the video resized to half
        np.testing.assert_allclose(half.K[:2], cam.K[:2] / 2)
        assert "K scaled by 0.5000" in warning
        with pytest.raises(CalibrationError, match="1088x1920 images but the keypoints are from "
                                                   "1920x1080"):
            _fit_size(cam, (1920, 1080))  # portrait intrinsics, landscape video

    def test_the_keypoints_order_is_kept_whatever_the_file_order(self):
        """Intrinsics in another order than the keypoints' cameras are matched by name: with
        focal lengths that differ per camera a mismatch would show."""
        rig = make_rig(3, focal_px=(900, 1500), seed=5)
        cap = synthesize(load_packaged_clip("02_01"), rig, Corruption(noise_px=1.0), seed=1)
        shuffled = _intrinsics_only(rig.subset([2, 0, 1]))
        res = calibrate_from_people(cap.keypoints, shuffled)
        assert res.rig.names == rig.names
        np.testing.assert_array_equal(res.rig.K, rig.K)
        assert rig_errors(res.rig, rig)["rotation_deg_max"] < 0.3  # 0.13° measured


# -- the Pose2Sim demo: real OpenPose 2D, a marker-based lab calibration -------------------------
@pytest.fixture(scope="module")
def demo(shared_data):
    from epiflow.datasets.openpose import read_openpose
    root = shared_data / "pose2sim_demo"
    kp = read_openpose(root / "openpose_body25b_single_person", joint_set="body25b")
    lab = load_toml(root / "calibration" / "Calib_qualisys.toml")
    return kp, lab


#: a shortened run: every other frame (50 of 100) and two bundle-adjustment rounds (~3 s); the
#: full default run (~7 s) gives the same rotations to 0.15°
SHORT = CalibrationConfig(max_frames=50, rounds=2)


@pytest.fixture(scope="module")
def demo_result(demo):
    kp, lab = demo
    return calibrate_from_people(kp, _intrinsics_only(lab), config=SHORT)


class TestPose2SimDemo:
    def test_cameras_agree_with_the_lab_calibration(self, demo, demo_result):
        _, lab = demo
        err = rig_errors(demo_result.rig, lab)
        # relative rotations 0.27°-1.59° and baselines 0.10°-1.08° off the lab's, measured
        assert err["rotation_deg_max"] < 3.0 and np.median(err["rotation_deg"]) < 2.0
        assert err["baseline_deg_max"] < 2.2
        assert err["distance_ratio_max_dev"] < 0.05  # 2.8 % after a similarity, measured
        # metric scale from body proportions of a 1.70 m adult: distances 3.6-7.2 % long
        ratio = _distances(demo_result.rig) / _distances(lab)
        assert np.abs(ratio - 1).max() < 0.12
        report = demo_result.report
        # the subject balances in place: up from the body axis, and the report says what that means
        assert _others(report["warnings"]) == [] and BODY_AXIS_WARNING in report["warnings"]
        for cam in report["cameras"].values():
            assert cam["reprojection_error_px_median"] < 8.0  # 4.0-5.5 px measured
            assert cam["observations_used"] > 600  # 730-919 of 50 frames x 25 joints

    def test_the_per_frame_baseline_is_far_worse(self, demo, demo_result):
        kp, lab = demo
        base = calibrate_from_people(kp, _intrinsics_only(lab),
                                     config=replace(SHORT, method="per_frame"))
        theirs = rig_errors(base.rig, lab)["rotation_deg"]
        ours = rig_errors(demo_result.rig, lab)["rotation_deg"]
        # 2.7°-42° (median 27°) per frame, measured; the shared data README measured 55°-71°
        # median for a per-frame fit with MediaPipe 2D
        assert np.median(theirs) > 10 and np.median(theirs) > 5 * ours.max()

    @pytest.mark.xfail(strict=True, reason=(
        "known limitation of keypoints without images: up comes from the body axis (pelvis -> "
        "thorax) when the feet do not span the floor, and the demo's subject balances in place "
        "leaning up to 45° (25° median, on the lab's own triangulation): the world is tilted 25° "
        "from the lab's Z. Given the videos' frames, the scene's vertical lines give up within "
        "0.4° (tests/calibration/test_vanishing.py)"))
    def test_up_axis_agrees_with_the_lab(self, demo, demo_result):
        assert _up_error_deg(demo_result.rig, demo[1]).max() < 5.0
