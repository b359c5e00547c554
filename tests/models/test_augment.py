"""Training augmentation (issue 14): bone perturbation, virtual cameras, the learned detector
error model, and the hook into the training data."""
import numpy as np
import pytest

from epiflow.calibration.camera import CameraRig
from epiflow.datasets.cmu import load_packaged_clip
from epiflow.models.augment import (AugmentConfig, augment_sessions, body_up, perturb_bones,
                                    project_corrupted, sample_camera, swap_limbs, tilt_body,
                                    FULL_FRAME_DIAGONAL_MM)
from epiflow.models.adapt import bone_lengths
from epiflow.models.detector_error import (DetectorErrorModel, caliscope_residuals,
                                           fit_residuals, PACKAGED)
from epiflow.skeleton import map_to_h36m


@pytest.fixture(scope="module")
def walk():
    """CMU 02_01 (a real walk, packaged) on h36m17, metres, Z up."""
    clip = load_packaged_clip("02_01")
    return map_to_h36m(clip.points, clip.joint_set, confidence=False)


class TestPerturbBones:
    def test_lengths_within_bound_and_constant(self, walk):
        moved, scale = perturb_bones(walk, "h36m17", np.random.default_rng(0), 15.0, 0.1)
        ratio = bone_lengths(moved) / bone_lengths(walk)                    # (T, B)
        assert np.all(np.abs(ratio - 1) <= 0.1 + 1e-9)
        assert np.abs(ratio - ratio[0]).max() < 1e-9                        # one length per bone
        assert np.abs(ratio - 1).max() > 0.05                               # and they do change
        np.testing.assert_allclose(moved[:, 0], walk[:, 0])                 # root stays

    def test_angles_within_bound(self, walk):
        moved, _ = perturb_bones(walk, "h36m17", np.random.default_rng(1), 10.0, 0.0)
        # each bone turns about its parent by at most 10 degrees relative to its parent's bone
        # change; the forearm (two rotations) by at most 20 degrees in the world
        def direction(p, a, b):
            d = p[:, b] - p[:, a]
            return d / np.linalg.norm(d, axis=-1, keepdims=True)
        for a, b, most in ((0, 1, 10), (0, 7, 10), (1, 2, 20), (2, 3, 30)):
            cos = (direction(moved, a, b) * direction(walk, a, b)).sum(-1)
            angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
            assert angle.max() <= most + 1e-6 and angle.max() > 1.0, (a, b, angle.max())

    def test_limbs_turn_further_when_asked(self, walk):
        moved, _ = perturb_bones(walk, "h36m17", np.random.default_rng(1), 5.0, 0.0,
                                 limb_angle_deg=40.0)

        def turn(a, b):
            d0, d1 = walk[:, b] - walk[:, a], moved[:, b] - moved[:, a]
            cos = (d0 * d1).sum(-1) / np.linalg.norm(d0, axis=-1) / np.linalg.norm(d1, axis=-1)
            return np.degrees(np.arccos(np.clip(cos, -1, 1))).max()
        thigh, upper_arm, spine = turn(1, 2), turn(14, 15), turn(0, 7)
        assert 20 < thigh <= 40 + 1e-6 and 20 < upper_arm <= 45 + 1e-6 and spine <= 5 + 1e-6

    def test_up_of_a_walk_is_z(self, walk):
        assert body_up(walk)[2] > 0.97


class TestTiltBody:
    def test_leans_within_bound_keeping_the_body(self, walk):
        leaned = tilt_body(walk, "h36m17", np.random.default_rng(3), 30.0)
        np.testing.assert_allclose(bone_lengths(leaned), bone_lengths(walk), atol=1e-9)
        np.testing.assert_allclose(leaned[:, 0], walk[:, 0])               # pelvis stays

        def lean(p):  # angle of pelvis -> thorax from Z, degrees
            d = p[:, 8] - p[:, 0]
            return np.degrees(np.arccos(d[:, 2] / np.linalg.norm(d, axis=-1)))
        extra = lean(leaned) - lean(walk)
        assert np.abs(extra).max() <= 30.0 + 1e-6
        assert np.abs(extra).max() > 12.0                                   # it does lean

    def test_zero_is_the_identity(self, walk):
        np.testing.assert_allclose(tilt_body(walk, "h36m17", np.random.default_rng(0), 0.0), walk)


class TestSwapLimbs:
    @staticmethod
    def local(points, a, b):
        """(T, 3) unit direction of bone a -> b in the torso frame (across hips, up spine)."""
        x = points[:, 4] - points[:, 1]
        x /= np.linalg.norm(x, axis=-1, keepdims=True)
        y = points[:, 8] - points[:, 0]
        y -= (y * x).sum(-1, keepdims=True) * x
        y /= np.linalg.norm(y, axis=-1, keepdims=True)
        d = points[:, b] - points[:, a]
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        return np.stack([(d * x).sum(-1), (d * y).sum(-1), (d * np.cross(x, y)).sum(-1)], -1)

    def test_limbs_take_the_donors_motion_at_their_own_lengths(self, walk):
        # a donor standing still with the left arm raised sideways, turned and moved elsewhere:
        # every frame of the result raises that arm the same way in its own torso's frame
        pose = walk[0].copy()
        pose[12] = pose[11] + np.array([0.3, 0, 0])            # l_elbow out to the left (+x)
        pose[13] = pose[12] + np.array([0.25, 0, 0.05])
        c, s_ = np.cos(1.0), np.sin(1.0)
        R = np.array([[c, -s_, 0], [s_, c, 0], [0, 0, 1]])
        donor = np.repeat((pose @ R.T + [2, 1, 0])[None], 40, 0)
        out = swap_limbs(walk, [donor], "h36m17", np.random.default_rng(0), 1.0)
        np.testing.assert_allclose(bone_lengths(out), bone_lengths(walk), atol=1e-9)
        torso = [0, 1, 4, 7, 8, 9, 10, 11, 14]
        np.testing.assert_allclose(out[:, torso], walk[:, torso])
        for a, b in ((11, 12), (12, 13)):
            want = self.local(donor[:1], a, b)
            np.testing.assert_allclose(self.local(out, a, b), np.repeat(want, len(out), 0),
                                       atol=1e-9)
            assert np.abs(self.local(walk, a, b) - want).max() > 0.5      # the walk's was not

    def test_share_zero_and_missing_donor_bones_keep_the_sequence(self, walk):
        rng = np.random.default_rng(1)
        np.testing.assert_allclose(swap_limbs(walk, [walk[::-1]], "h36m17", rng, 0.0), walk)
        holes = np.full_like(walk, np.nan)
        np.testing.assert_allclose(swap_limbs(walk, [holes], "h36m17", rng, 1.0), walk)

    def test_recombines_into_poses_no_sequence_holds(self, walk):
        # knees lifted (a jump's thighs) under a walk's arms: the left knee of the copy rises
        # above the walk's highest while the arms stay the walk's
        jump = walk.copy()
        jump[:, 5] = jump[:, 4] + np.linalg.norm(walk[:, 5] - walk[:, 4], axis=-1,
                                                 keepdims=True) * np.array([0, -1.0, 0])
        rng = np.random.default_rng(2)
        outs = [swap_limbs(walk, [jump], "h36m17", rng, 0.5) for _ in range(8)]
        raised = [o for o in outs if (o[:, 5, 2] - o[:, 4, 2]).max() > -0.05]
        assert 0 < len(raised) < 8                        # about half the copies, not all

    def test_joint_set_without_limbs_is_refused(self):
        with pytest.raises(ValueError, match="lacks"):
            swap_limbs(np.zeros((2, 17, 3)), [], "coco17", np.random.default_rng(0), 1.0)


class TestVirtualCameras:
    def test_cameras_within_ranges(self, walk):
        cfg = AugmentConfig(copies=1)
        rng = np.random.default_rng(0)
        up = body_up(walk)
        floor = np.nanmin(walk[:, [3, 6]] @ up) - 0.08                      # below the ankles
        mean = np.nanmean(walk.reshape(-1, 3), 0)
        sizes, inside = set(), []
        for _ in range(40):
            cam = sample_camera(walk, "h36m17", cfg, rng)
            offset = cam.center - mean
            d = np.linalg.norm(offset - (offset @ up) * up)
            assert 2.0 - 1e-6 <= d <= 10.0 + 1e-6
            assert 0.2 - 1e-6 <= cam.center @ up - floor <= 2.8 + 1e-6
            f35 = cam.K[0, 0] * FULL_FRAME_DIAGONAL_MM / np.hypot(*cam.size)
            assert 14 - 1e-6 <= f35 <= 50 + 1e-6
            assert -0.25 <= cam.dist[0] <= 0
            sizes.add(cam.size[0] > cam.size[1])
            uv = CameraRig([cam]).project(walk)[0]
            inside.append(((uv[..., 0] >= 0) & (uv[..., 0] < cam.size[0]) & (uv[..., 1] >= 0)
                           & (uv[..., 1] < cam.size[1])).mean())
        assert sizes == {True, False}                                       # both orientations
        assert np.median(inside) >= 0.97

    def test_exact_projection_without_error_model(self, walk):
        cam = sample_camera(walk, "h36m17", AugmentConfig(), np.random.default_rng(3))
        kp = project_corrupted(walk, cam, "h36m17", None, np.random.default_rng(0))
        seen = kp[..., 2] > 0
        np.testing.assert_allclose(kp[seen][:, :2], CameraRig([cam]).project(walk)[0][seen])


@pytest.fixture(scope="module")
def caliscope(shared_data):
    return caliscope_residuals(shared_data / "caliscope_4cam")


class TestDetectorErrorModel:
    def test_packaged_model_is_the_fit_of_the_real_residuals(self, caliscope):
        fresh = fit_residuals("caliscope_mediapipe", caliscope)
        shipped = {s.name: s for s in DetectorErrorModel.load(PACKAGED).sources}
        assert set(shipped) == {"shelf_openpose", "caliscope_mediapipe"}
        np.testing.assert_allclose(shipped["caliscope_mediapipe"].cov, fresh.cov, atol=1e-9)
        np.testing.assert_allclose(shipped["caliscope_mediapipe"].mean, fresh.mean, atol=1e-9)

    def test_samples_match_the_source_residuals(self, caliscope):
        fitted = fit_residuals("caliscope_mediapipe", caliscope)
        model = DetectorErrorModel([fitted])
        rng = np.random.default_rng(0)
        draws = [model.sample_residuals(267, rng) for _ in range(200)]
        res = np.concatenate([r for r, _ in draws])                        # (N, 17, 2)
        missed = np.concatenate([m for _, m in draws])
        source = np.concatenate([r for r, _ in caliscope])
        src_missed = np.concatenate([m for _, m in caliscope])
        for j in range(17):
            s = source[:, j][np.isfinite(source[:, j]).all(-1)]
            if len(s) < 100:
                continue
            # the core (within 3.5 robust sigmas of the source's median) has the source's mean
            # and spread, and the share outside it (the outliers) is the source's
            med = np.median(s, 0)
            sigma = 1.4826 * np.median(np.abs(s - med), 0) + 1e-9
            core = lambda a: (np.abs(a - med) / sigma < 3.5).all(-1)  # noqa: E731
            ours, theirs = res[:, j][core(res[:, j])], s[core(s)]
            assert np.all(np.abs(ours.mean(0) - theirs.mean(0)) <= 0.2 * theirs.std(0) + 0.003), j
            np.testing.assert_allclose(ours.std(0), theirs.std(0), rtol=0.2, atol=0.002)
            assert abs((~core(res[:, j])).mean() - (~core(s)).mean()) < 0.03, j
        seen = np.isfinite(source).all(-1)
        rate = src_missed.sum(0) / np.maximum(src_missed.sum(0) + seen.sum(0), 1)
        np.testing.assert_allclose(missed.mean(0), rate, atol=0.02)
        # errors persist from frame to frame as in the source (lag-1 autocorrelation)
        def lag1(seqs, j):
            a = np.concatenate([r[1:, j, 0] for r in seqs])
            b = np.concatenate([r[:-1, j, 0] for r in seqs])
            ok = np.isfinite(a) & np.isfinite(b)
            return np.corrcoef(a[ok], b[ok])[0, 1]
        for j in (0, 8, 13, 16):
            assert abs(lag1([r for r, _ in draws], j) - lag1([r for r, _ in caliscope], j)) < 0.2

    def test_corrupt_scales_with_the_person(self, walk):
        model = DetectorErrorModel.packaged()
        cam = sample_camera(walk, "h36m17", AugmentConfig(), np.random.default_rng(0))
        uv = CameraRig([cam]).project(walk)[0]
        a, _ = model.corrupt(uv, "h36m17", np.random.default_rng(5))
        b, _ = model.corrupt(3 * uv, "h36m17", np.random.default_rng(5))
        np.testing.assert_allclose(b - 3 * uv, 3 * (a - uv), rtol=1e-6, atol=1e-6)
        with pytest.raises(ValueError, match="fitted on 'h36m17'"):
            model.corrupt(uv, "coco17", np.random.default_rng(0))


def test_training_data_gets_the_augmented_sequences(oracle):
    from epiflow.models.config import DataConfig, ExperimentConfig, ModelConfig
    from epiflow.models.lifters import MLPConfig
    from epiflow.models.train import build_data
    sessions = [oracle("02_01", 0), oracle("02_03", 1)]
    plain = ExperimentConfig(data=DataConfig(val_sessions=("02_03",)),
                             model=ModelConfig(mlp=MLPConfig(hidden=32, blocks=1)))
    cfg = ExperimentConfig(data=DataConfig(val_sessions=("02_03",),
                                           augment=AugmentConfig(copies=3)),
                           model=ModelConfig(mlp=MLPConfig(hidden=32, blocks=1)))
    base, aug = build_data(plain, sessions), build_data(cfg, sessions)
    assert aug.train.names == ["02_01"] + [f"02_01~aug{k}" for k in range(3)]
    assert len(aug.val) == len(base.val)                                   # validation untouched
    n = len(base.train)
    assert n + 0.8 * 3 * n < len(aug.train) <= n + 3 * n                   # 4 cameras per copy
    extra = aug.train.__getitems__(np.arange(n, len(aug.train)))
    assert np.isfinite(extra["x"]).all() and (extra["w"] > 0).any()


def test_training_copies_take_limbs_from_other_training_sequences(oracle):
    """With ``limb_swap`` the in-memory training data draws limbs from every training sequence,
    not only from the copy's own: a walk's copies raise the left arm sideways, as only the other
    sequence does (torso-frame share of the upper arm across the hips above 0.9; the walk's own
    arm hangs, below 0.5), and some copies keep a walk's arm (the donor is drawn per limb)."""
    from dataclasses import replace
    walk = oracle("02_01", 0)
    pose = walk.pseudo3d.astype(np.float64)
    across = pose[:, 4] - pose[:, 1]
    across /= np.linalg.norm(across, axis=-1, keepdims=True)
    raised = pose.copy()
    raised[:, 12] = raised[:, 11] + 0.3 * across
    raised[:, 13] = raised[:, 12] + 0.25 * across
    other = replace(walk, name="raised", session_id="raised", pseudo3d=raised.astype(np.float32))
    cfg = AugmentConfig(copies=6, bone_angle_deg=0.0, limb_angle_deg=0.0, bone_length=0.0,
                        detector="none", limb_swap=1.0, seed=0)
    out = augment_sessions([walk, other], cfg, "pseudo", "h36m17")

    def sideways(points):  # (T,) share of the left upper arm along the hips' axis
        x = points[:, 4] - points[:, 1]
        d = points[:, 12] - points[:, 11]
        return (x * d).sum(-1) / np.linalg.norm(x, axis=-1) / np.linalg.norm(d, axis=-1)

    assert np.median(sideways(pose)) < 0.5
    shares = [np.median(sideways(s.pseudo3d)) for s in out if s.name.startswith("02_01~aug")]
    assert len(shares) == 6
    assert 0 < sum(v > 0.9 for v in shares) < 6


def test_input_does_not_depend_on_orientation_focal_or_distortion(walk):
    """The lifter's input is built from rays (K^-1, distortion removed): the same rays through a
    portrait phone, a landscape action camera with barrel distortion, or another focal length
    give the same input, though their pixels differ."""
    from epiflow.calibration.camera import Camera
    from epiflow.models.data import normalize_keypoints
    cam = sample_camera(walk, "h36m17", AugmentConfig(), np.random.default_rng(4))
    inputs, pixels = [], []
    for size, f, k1 in (((1080, 1920), 1500.0, 0.0), ((1920, 1080), 1500.0, -0.2),
                        ((1440, 1080), 900.0, -0.1)):
        K = np.array([[f, 0, size[0] / 2], [0, f, size[1] / 2], [0, 0, 1]])
        rig = CameraRig([Camera("c", K, np.array([k1, 0, 0, 0, 0]), cam.R, cam.t, size)])
        uv = rig.project(walk)
        pixels.append(uv[0])
        inputs.append(normalize_keypoints(rig.undistort(uv)[0], 0))
    assert np.abs(pixels[0] - pixels[1]).max() > 100
    for x in inputs[1:]:
        np.testing.assert_allclose(x, inputs[0], atol=1e-4)
