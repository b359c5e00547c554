"""Level cameras (data.level): the rotation, the training arrays in the level frame, the way back
to the camera's frame at prediction time, and the scene's vertical from a real video's edges."""
import numpy as np
import pytest

from epiflow.models.adapt import model_frame
from epiflow.models.data import prepare_session
from epiflow.models.level import (IMAGE_UP, body_up, level_note, level_rotation, rotate_rays,
                                  scene_up, upright_up)


def _rot_x(deg):
    a = np.radians(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def _rot_z(deg):
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


class TestLevelRotation:
    @pytest.mark.parametrize("pitch, roll", [(0, 0), (-25, 0), (30, 12), (-60, -35)])
    def test_takes_up_to_image_up_and_is_a_rotation(self, pitch, roll):
        up = _rot_z(roll) @ _rot_x(pitch) @ IMAGE_UP        # a camera pitched and rolled
        L = level_rotation(up)
        np.testing.assert_allclose(L @ up, IMAGE_UP, atol=1e-12)
        np.testing.assert_allclose(L @ L.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(L) == pytest.approx(1.0)
        if roll == 0:  # pitch alone: undone by a turn about the image x axis, x stays
            np.testing.assert_allclose(L, _rot_x(-pitch), atol=1e-12)

    def test_upside_down(self):
        L = level_rotation(-IMAGE_UP)
        np.testing.assert_allclose(L @ -IMAGE_UP, IMAGE_UP, atol=1e-12)


class TestUprightUp:
    @staticmethod
    def person(turn_deg, lean_deg=0.0, T=20):
        """(T, 17, 2) image coordinates of an upright h36m17 skeleton leaning ``lean_deg`` in
        the image and the image turned by ``turn_deg`` (positive: the torso turns to +x)."""
        rng = np.random.default_rng(0)
        base = np.zeros((17, 2))
        base[:, 1] = np.linspace(0.3, -0.3, 17)                 # head (index 10) up = -y
        base[0], base[8] = [0, 0.0], [0, -0.25]                  # pelvis, thorax
        a = np.radians(turn_deg + lean_deg)
        R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        return (base @ R.T)[None] + 0.01 * rng.normal(size=(T, 17, 2))

    @pytest.mark.parametrize("turn, edge, up", [(0, "top", [0, -1, 0]), (90, "right", [1, 0, 0]),
                                                 (-90, "left", [-1, 0, 0]),
                                                 (180, "bottom", [0, 1, 0])])
    def test_the_edge_the_torso_points_to(self, turn, edge, up):
        got, name = upright_up(self.person(turn))
        assert name == f"the image's {edge} edge"
        np.testing.assert_allclose(got, up)

    def test_a_lean_under_45_degrees_stays_the_persons(self):
        for lean in (-40, -20, 20, 40):
            assert upright_up(self.person(0, lean))[1] == "the image's top edge"
        assert "taken as level" in level_note("the image's top edge")
        assert "quarter turn" in level_note("the image's left edge")

    def test_no_torso_is_the_image_up(self):
        got, name = upright_up(np.full((5, 17, 2), np.nan))
        np.testing.assert_allclose(got, IMAGE_UP)
        assert name == "the image's top edge"

    @pytest.mark.parametrize("pitch, roll", [(25, 0), (20, 15), (35, -10)])
    def test_a_calibration_gives_pitch_and_roll(self, pitch, roll):
        """A camera looking down and rolled, its world Z up: the image edges give the roll's
        nearest quarter turn only; the calibration's world axis gives the vertical itself."""
        R = _rot_z(roll) @ _rot_x(pitch) @ np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
        up_true = R @ np.array([0.0, 0.0, 1.0])                   # world Z in the camera
        np.testing.assert_allclose(level_rotation(up_true) @ up_true, IMAGE_UP, atol=1e-12)
        person = self.person(-roll)                                # the torso rolls with it
        got, what = upright_up(person, R=R)
        assert what == "the calibration's +Z axis"
        np.testing.assert_allclose(got, up_true, atol=1e-12)
        edge, _ = upright_up(person)
        assert np.degrees(np.arccos(edge @ up_true)) > abs(pitch) - 1   # misses the pitch
        assert "calibration's +Z axis" in level_note(what)

    def test_a_world_that_is_the_cameras_own_frame_gives_the_image_edges(self):
        """caliscope's world is its cam_1's frame, R = I within 0.2 deg after bundle adjustment:
        its 'axes' are that camera's image edges, named as such (no pitch is known)."""
        person = self.person(90)                                  # mounted sideways
        for R in (np.eye(3), _rot_z(0.2) @ _rot_x(-0.2)):
            got, what = upright_up(person, R=R)
            assert what == "the image's right edge"
            np.testing.assert_allclose(got, [1, 0, 0])
        assert upright_up(person, R=_rot_x(-2.0))[1] == "the calibration's +X axis"

    @pytest.mark.parametrize("pitch, axis", [(40, "+Z"), (50, "+Y")])
    def test_a_camera_pitched_beyond_45_degrees_is_out_of_reach(self, pitch, axis):
        """The documented limit: the person at the image centre, world Z up, a camera looking
        down 40 deg gets Z; at 50 deg the horizontal axis along its view looks more like the
        torso's image direction than Z does and is taken."""
        R = _rot_x(pitch) @ np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
        assert np.degrees(np.arcsin(R[2, 2])) == pytest.approx(-pitch)  # looks down: Z < 0
        person = self.person(0)
        assert upright_up(person, R=R)[1] == f"the calibration's {axis} axis"

    def test_shelf_calibration_gives_its_z_up(self, shared_data):
        """Shelf's cameras look down at the actors; their world is Z up. Actor 1's 2D in each
        camera with the calibration's rotation gives world Z as the vertical."""
        from epiflow.calibration.formats import load_rig
        from epiflow.datasets.shelf import shelf_person_keypoints
        from epiflow.skeleton import map_to_h36m
        root = shared_data / "shelf"
        rig, kp = load_rig(root / "calibration.json"), shelf_person_keypoints(root, 0)
        for c, cam in enumerate(rig):
            h36m = map_to_h36m(kp.data[:, c], "body25", confidence=True)
            if not np.isfinite(h36m[:, [0, 8], :2]).all(-1).all(-1).any():
                continue
            uv = rig.subset([cam.name]).undistort(h36m[None, ..., :2])[0]
            got, what = upright_up(uv, R=cam.R)
            assert what == "the calibration's +Z axis", cam.name
            np.testing.assert_allclose(got, cam.R[:, 2] / np.linalg.norm(cam.R[:, 2]))

    def test_caliscope_webcams_mounted_sideways(self, shared_data):
        """caliscope's cam_1 and cam_2 were rotated a quarter turn each way (rotation_count -1
        and 1): their 2D alone gives the vertical within 10 degrees of caliscope's own
        triangulation's body axis; the image's own up would be 90 degrees off."""
        from epiflow.datasets.caliscope import read_caliscope_recording
        from epiflow.skeleton import map_to_h36m
        rig, kp, xyz = read_caliscope_recording(shared_data / "caliscope_4cam")
        seen = np.isfinite(xyz).all(-1)[..., None].astype(float)
        truth = body_up(map_to_h36m(np.concatenate([xyz, seen], -1), "blazepose33",
                                    confidence=True)[..., :3])
        for name, edge in (("cam_1", "right"), ("cam_2", "left")):
            c = list(kp.camera_names).index(name)
            h36m = map_to_h36m(kp.data[:, c], "blazepose33", confidence=True)
            uv = rig.subset([name]).undistort(h36m[None, ..., :2])[0]
            got, turned = upright_up(uv)
            want = rig[name].R @ truth
            assert turned == f"the image's {edge} edge"
            assert np.degrees(np.arccos(got @ want)) < 10
            assert np.degrees(np.arccos(IMAGE_UP @ want)) > 80
            # with the calibration: its world has X up (within 6 degrees of the body axis); it is
            # cam_1's own frame (R = I within 0.2 deg), where the X axis is the right edge
            got, what = upright_up(uv, R=rig[name].R)
            assert what == ("the image's right edge" if name == "cam_1"
                            else "the calibration's +X axis")
            assert np.degrees(np.arccos(got @ want)) < 6


def test_training_arrays_are_in_the_level_frame(oracle):
    """With level=True the labels' torso points along the level camera's up, the rays stay those
    of the labelled joints (seen from the same centre), and the root slot's elevation is that of
    the person as seen from each camera."""
    session = oracle("02_01", seed=3)
    plain = prepare_session(session, "gt")
    level = prepare_session(session, "gt", level=True)
    assert level.level.shape == (len(session.rig), 3, 3)
    torso = level.y[:, :, 8] - level.y[:, :, 0]                     # thorax - pelvis
    torso /= np.linalg.norm(torso, axis=-1, keepdims=True)
    assert np.nanmean(torso @ IMAGE_UP) > 0.998                       # upright in every camera
    plain_torso = plain.y[:, :, 8] - plain.y[:, :, 0]
    plain_torso /= np.linalg.norm(plain_torso, axis=-1, keepdims=True)
    assert np.nanmean(plain_torso @ IMAGE_UP) < 0.995                 # these cameras tilt a bit
    for c, L in enumerate(level.level):                              # labels and rays rotate alike
        np.testing.assert_allclose(level.y[:, c], plain.y[:, c] @ L.T, atol=1e-4)
        np.testing.assert_allclose(level.uv[:, c], rotate_rays(plain.uv[:, c], L), atol=1e-4)
    np.testing.assert_allclose(level.R, level.level @ plain.R, atol=1e-5)
    assert body_up(session.gt3d)[2] > 0.97


def test_model_frame_round_trip():
    """A pose expressed in the frame the model reads comes back to the camera's frame with the
    rotation model_frame returns, for a level model (pan kept off the elevation) and not."""
    rng = np.random.default_rng(0)
    P = rng.normal(size=(20, 17, 3)) * 0.3 + np.array([0.4, 0.3, 4.0])   # camera frame, metres
    uv = P[..., :2] / P[..., 2:]
    up = _rot_x(-20) @ IMAGE_UP
    for u in (None, up):
        rays, R = model_frame(uv, 0, u, align=True)
        Pm = P @ R.T                                                      # the model's frame
        np.testing.assert_allclose(rays, Pm[..., :2] / Pm[..., 2:], atol=1e-9)
        np.testing.assert_allclose(Pm @ R, P, atol=1e-9)
    rays, R = model_frame(uv, 0, up, align=True)
    assert abs(np.median(rays[:, 0, 0])) < 1e-3                         # panned to face the root
    assert (R @ up) @ IMAGE_UP == pytest.approx(1.0)                      # and still level


def test_scene_up_of_a_real_video(shared_data):
    """The vertical from the vertical edges of one Pose2Sim demo video (cam03: a phone looking
    down about 25 degrees) against the lab's marker-based calibration (world Z up)."""
    from epiflow.calibration.formats import load_rig
    from epiflow.detection.detectors import read_frames
    from epiflow.skeleton import map_to_h36m
    demo = shared_data / "pose2sim_demo"
    lab = load_rig(demo / "calibration" / "Calib_qualisys.toml")["cam_03"]
    frames = read_frames(demo / "single_person" / "videos" / "cam03.mp4")
    # the person's box from a crude stand-in for the detector: the lab's 3D is not available at
    # prediction time, so use the shipped OpenPose 2D of the same camera
    from epiflow.datasets.openpose import read_openpose
    kp = read_openpose(demo / "openpose_body25b_single_person")
    c = [n.startswith("cam03") for n in kp.camera_names].index(True)
    k = map_to_h36m(kp.data[:, c], kp.joint_set, confidence=True)
    from dataclasses import replace
    camera = replace(lab, size=(frames.shape[2], frames.shape[1]))
    up, note, found = scene_up(frames, camera, k)
    truth = lab.R @ np.array([0, 0, 1.0])
    err = np.degrees(np.arccos(np.clip(up @ truth, -1, 1)))
    assert err < 3.0, (err, note)
    assert np.degrees(np.arccos(truth @ IMAGE_UP)) > 15                   # not level to start
    assert found and "vertical edges" in note
    # a video without vertical edges (a plain grey scene): the calibration's world axis nearest
    # the torso (Z), said so; without the calibration's rotation, the level camera
    up, note, found = scene_up(np.full_like(frames[:4], 128), camera, k[:4])
    assert not found and "calibration's +Z axis" in note and "tilted camera" not in note
    np.testing.assert_allclose(up, truth, atol=1e-9)
    up, note, found = scene_up(np.full_like(frames[:4], 128), replace(camera, R=np.eye(3)), k[:4])
    assert not found and "taken as level" in note and (up == IMAGE_UP).all()


@pytest.mark.parametrize("adapt", [False, True])
def test_a_root_behind_the_level_camera_is_not_predicted(adapt):
    """A camera looking 80 deg down: a person at the bottom of its image is seen along a ray
    that points behind the level camera. The model cannot read that frame (its rays are NaN in
    the level frame, normalised to zeros): the frame must come out NaN, not a made-up pose."""
    from epiflow.models.adapt import AdaptConfig
    from epiflow.models.lifters import MLPConfig, ResidualMLPLifter
    from epiflow.models.predict import default_camera, predict_keypoints
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = ResidualMLPLifter(MLPConfig(hidden=32, blocks=1, dropout=0.0), 17)
    cam = default_camera("c", (1000, 1000))
    pitch = np.radians(80.0)
    up = np.array([0.0, -np.cos(pitch), -np.sin(pitch)])  # the vertical of a camera looking down
    rng = np.random.default_rng(0)
    kp = np.zeros((6, 17, 3))
    kp[..., :2] = 500 + rng.normal(0, 40, (6, 17, 2))       # near the image centre: in front
    kp[3:, :, 1] += 420                                      # frames 3-5: 45+ deg below the axis
    kp[..., 2] = 1.0
    behind = np.isnan(rotate_rays((kp[:, 0, :2] - 499.5) / 1000, level_rotation(up))).any(-1)
    assert list(behind) == [False] * 3 + [True] * 3          # the set-up is what it says
    pred = predict_keypoints(model, kp, "h36m17", cam, "h36m17",
                             AdaptConfig(steps=5, samples=0) if adapt else None, 30.0, up)
    assert np.isfinite(pred[:3]).all()
    assert np.isnan(pred[3:]).all()


def test_level_vertical_of_a_sequence_without_its_own_3d(oracle):
    """A streamed unit where a labelled person has no triangulated frame (left the view) must not
    stop training: the vertical comes from the ground truth when there is one (in its own rig's
    world), and a sequence with no 3D at all keeps its cameras and gives no labelled sample."""
    from dataclasses import replace

    from epiflow.models.data import PoseDataset
    session = oracle("02_01", seed=3)
    full = prepare_session(session, "gt", level=True)
    gone = replace(session, pseudo3d=np.full_like(session.pseudo3d, np.nan),
                   pseudo3d_weight=np.zeros_like(session.pseudo3d_weight))
    from_truth = prepare_session(gone, "pseudo", level=True)
    np.testing.assert_allclose(from_truth.level, full.level, atol=1e-5)
    nothing = prepare_session(replace(gone, gt3d=None, gt_rig=None), "pseudo", level=True)
    np.testing.assert_allclose(nothing.level, np.broadcast_to(np.eye(3), full.level.shape))
    assert len(PoseDataset([nothing])) == 0


def test_level_needs_a_joint_set_with_a_torso():
    """data.level finds the vertical from the pelvis and the thorax: another joint set used to
    fail at the first session with a KeyError about 'thorax', now the recipe is refused."""
    from epiflow.config import ConfigError, from_dict
    from epiflow.models.config import ExperimentConfig
    with pytest.raises(ConfigError, match=r"'data\.level'.*'body25'.*'h36m17'"):
        from_dict(ExperimentConfig, {"data": {"level": True, "joint_set": "body25"}})
    assert from_dict(ExperimentConfig, {"data": {"level": True}}).data.level
