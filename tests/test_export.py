"""Exports: round trips of every format, the TRC layout and axes against Pose2Sim's own file, and
the ``epiflow export`` command on poses files and on a store."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from epiflow import export as ex
from epiflow.calibration.formats import load_toml
from epiflow.calibration.triangulation import triangulate_linear
from epiflow.cli import main
from epiflow.datasets.synthetic import make_rig
from epiflow.skeleton import H36M17, get_joint_set

REFERENCE_TRC = "pose2sim_demo/reference_pose2sim_triangulated.trc"


@pytest.fixture
def poses() -> ex.Poses3D:
    rng = np.random.default_rng(0)
    pts = rng.normal(0, 0.5, size=(12, 17, 3)) + [0, 0, 1]
    pts[3, 4] = np.nan
    pts[7] = np.nan
    w = rng.uniform(size=(12, 17))
    w[7] = 0.0
    return ex.Poses3D.from_joint_set(pts, "h36m17", fps=50.0, weights=w)


def _same(a: ex.Poses3D, b: ex.Poses3D, weights: bool = True) -> None:
    assert a.joint_names == b.joint_names and a.fps == pytest.approx(b.fps, rel=1e-12)
    assert np.array_equal(a.points, b.points, equal_nan=True)  # exact, NaN where NaN
    if weights:
        assert np.array_equal(a.weights, b.weights)


class TestAxes:
    def test_z_up_to_y_up_is_a_rotation_that_puts_up_on_y(self):
        assert np.isclose(np.linalg.det(ex.Z_UP_TO_Y_UP), 1.0)
        assert np.allclose(ex.z_up_to_y_up([0.0, 0.0, 1.7]), [0.0, 1.7, 0.0])
        assert np.allclose(ex.z_up_to_y_up([1.0, 2.0, 3.0]), [2.0, 3.0, 1.0])  # Pose2Sim's zup2yup
        x = np.random.default_rng(0).normal(size=(5, 3))
        assert np.allclose(ex.y_up_to_z_up(ex.z_up_to_y_up(x)), x)


class TestTrc:
    def test_round_trip(self, poses, tmp_path):
        back = ex.read_trc(ex.write_trc(poses, tmp_path / "a.trc"))
        _same(poses, back, weights=False)
        assert back.joint_set == "h36m17"

    def test_file_is_y_up_and_leaves_missing_cells_empty(self, poses, tmp_path):
        path = ex.write_trc(poses, tmp_path / "a.trc")
        lines = path.read_text().splitlines()
        row = lines[5].split("\t")
        assert row[:2] == ["1", repr(1 / 50.0)]
        assert float(row[2 + 1]) == poses.points[0, 0, 2]  # file Y = epiflow z (height)
        missing = lines[5 + 7].split("\t")
        assert missing[0] == "8" and all(c == "" for c in missing[2:])
        raw = ex.read_trc(path, y_up=False)
        assert np.allclose(raw.points[0, 0], poses.points[0, 0, [1, 2, 0]])

    def test_layout_matches_pose2sim(self, shared_data, tmp_path):
        ref_path = shared_data / REFERENCE_TRC
        ref = ex.read_trc(ref_path)
        assert ref.points.shape == (100, 21, 3) and ref.fps == 60.0
        theirs = ref_path.read_text().splitlines()
        name = theirs[0].split("\t")[3]  # the file name Pose2Sim wrote into line 1
        ours = ex.write_trc(ref, tmp_path / name).read_text().splitlines()
        assert ours[:5] == theirs[:5]  # the five header lines, tab for tab
        assert ours[5:] == theirs[5:]  # and every data row: same axes, frame numbers and times

    def test_axes_match_pose2sim_on_real_data(self, shared_data):
        """Triangulate the OpenPose keypoints of the Pose2Sim demo in the lab's Z-up world and
        compare with Pose2Sim's own TRC: the same markers within a few centimetres."""
        from epiflow.datasets.openpose import read_openpose
        root = shared_data / "pose2sim_demo"
        rig = load_toml(root / "calibration/Calib_qualisys.toml")
        kp = read_openpose(root / "openpose_body25b_single_person", joint_set="body25b")
        T, C, J, _ = kp.data.shape
        xy = rig.undistort(kp.xy.transpose(1, 0, 2, 3).reshape(C, -1, 2))
        P = torch.as_tensor(np.concatenate([rig.R, rig.t[:, :, None]], axis=2))
        X = triangulate_linear(P, torch.as_tensor(xy), torch.as_tensor(
            kp.confidence.transpose(1, 0, 2).reshape(C, -1))).numpy().reshape(T, J, 3)
        ref = ex.read_trc(shared_data / REFERENCE_TRC)
        names = get_joint_set(kp.joint_set).joints
        common = [n for n in ref.joint_names if n in names]
        assert len(common) >= 15
        ours = X[:, [names.index(n) for n in common]]
        theirs = ref.points[:, [ref.joint_names.index(n) for n in common]]
        err = np.nanmedian(np.linalg.norm(ours - theirs, axis=-1))
        assert err < 0.05
        unconverted = ex.read_trc(shared_data / REFERENCE_TRC, y_up=False).points
        wrong = unconverted[:, [ref.joint_names.index(n) for n in common]]
        assert np.nanmedian(np.linalg.norm(ours - wrong, axis=-1)) > 0.5

    def test_errors(self, poses, tmp_path):
        no_fps = ex.Poses3D(poses.points, poses.joint_names)
        with pytest.raises(ValueError, match="fps"):
            ex.write_trc(no_fps, tmp_path / "a.trc")
        (tmp_path / "bad.trc").write_text("hello\n")
        with pytest.raises(ValueError, match="not a TRC"):
            ex.read_trc(tmp_path / "bad.trc")
        with pytest.raises(FileNotFoundError):
            ex.read_trc(tmp_path / "none.trc")


class TestCsv:
    @pytest.mark.parametrize("layout", ["long", "wide"])
    def test_round_trip(self, poses, tmp_path, layout):
        back = ex.read_csv(ex.write_csv(poses, tmp_path / "a.csv", layout=layout))
        _same(poses, back)
        assert back.joint_set == "h36m17"

    def test_long_rows(self, poses, tmp_path):
        rows = ex.write_csv(poses, tmp_path / "a.csv").read_text().splitlines()
        assert rows[0] == "frame,time,joint,x,y,z,weight"
        assert len(rows) == 1 + 12 * 17
        frame, time, joint, x, y, z, w = rows[1 + 2 * 17 + 5].split(",")
        assert (frame, joint) == ("2", H36M17.joints[5]) and float(time) == pytest.approx(0.04)
        assert [float(x), float(y), float(z)] == poses.points[2, 5].tolist()
        assert rows[1 + 3 * 17 + 4].split(",")[3:6] == ["", "", ""]  # NaN -> empty

    def test_wide_header(self, poses, tmp_path):
        head = ex.write_csv(poses, tmp_path / "a.csv", layout="wide").read_text().splitlines()[0]
        cols = head.split(",")
        assert cols[:5] == ["frame", "time", "pelvis_x", "pelvis_y", "pelvis_z"]
        assert len(cols) == 2 + 17 * 3 + 17 and cols[-1] == "r_wrist_weight"

    def test_without_weights_or_fps(self, tmp_path):
        p = ex.Poses3D(np.ones((3, 2, 3)), ("a", "b"))
        for layout in ("long", "wide"):
            back = ex.read_csv(ex.write_csv(p, tmp_path / f"{layout}.csv", layout=layout))
            assert back.fps is None and back.weights is None and back.joint_set is None
            assert np.array_equal(back.points, p.points)

    def test_bad_layout(self, poses, tmp_path):
        with pytest.raises(ValueError, match="'long' or 'wide'"):
            ex.write_csv(poses, tmp_path / "a.csv", layout="tall")


class TestJsonAndNpz:
    def test_json_round_trip_and_nulls(self, poses, tmp_path):
        path = ex.write_json(poses, tmp_path / "a.json")
        _same(poses, ex.read_json(path))
        doc = json.loads(path.read_text())
        assert doc["points3d"][3][4] == [None, None, None] and doc["units"] == "m"
        assert len(doc["points3d"]) == 12 and doc["joint_names"][0] == "pelvis"

    def test_npz_round_trip(self, poses, tmp_path):
        back = ex.load_poses_npz(ex.save_poses_npz(poses, tmp_path / "a.npz"))
        _same(poses, back)
        assert back.joint_set == "h36m17"

    def test_npz_of_epiflow_triangulate(self, poses, tmp_path):
        np.savez(tmp_path / "tri.npz", points3d=poses.points, weight=poses.weights,
                 joint_names=np.array(poses.joint_names), joint_set="h36m17", fps=50.0,
                 reproj_error=np.zeros((12, 17)))
        _same(poses, ex.load_poses_npz(tmp_path / "tri.npz"))

    def test_npz_missing_keys(self, tmp_path):
        np.savez(tmp_path / "x.npz", points=np.zeros((2, 17, 3)))
        with pytest.raises(ValueError, match="points3d"):
            ex.load_poses_npz(tmp_path / "x.npz")

    def test_write_poses_dispatch(self, poses, tmp_path):
        with pytest.raises(ValueError, match="cannot tell the format"):
            ex.write_poses(poses, tmp_path / "a.xyz")
        assert ex.write_poses(poses, tmp_path / "a.xyz", format="json").is_file()


class TestPoses3D:
    def test_shape_errors(self):
        with pytest.raises(ValueError, match="J=17"):
            ex.Poses3D(np.zeros((2, 16, 3)), H36M17.joints)
        with pytest.raises(ValueError, match="weights"):
            ex.Poses3D(np.zeros((2, 17, 3)), H36M17.joints, weights=np.zeros((2, 16)))
        with pytest.raises(ValueError, match="fps"):
            ex.Poses3D(np.zeros((2, 17, 3)), H36M17.joints, fps=0.0)


class TestCli:
    def test_npz_to_trc_and_csv(self, poses, tmp_path):
        src = ex.save_poses_npz(poses, tmp_path / "p.npz")
        assert main(["export", str(src), "--out", str(tmp_path / "p.trc")]) == 0
        _same(poses, ex.read_trc(tmp_path / "p.trc"), weights=False)
        assert main(["export", str(src), "--out", str(tmp_path / "p.csv"), "--layout",
                     "wide"]) == 0
        _same(poses, ex.read_csv(tmp_path / "p.csv"))

    def test_errors_are_clean(self, poses, tmp_path, capsys):
        src = ex.save_poses_npz(poses, tmp_path / "p.npz")
        assert main(["export", str(src), "--out", str(tmp_path / "c.toml")]) == 2
        assert "holds no cameras" in capsys.readouterr().err
        assert main(["export", str(src), "--out", str(tmp_path / "p.xyz")]) == 2
        assert "--format" in capsys.readouterr().err
        assert main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "a.trc")]) == 2

    def test_store_session(self, tmp_path):
        from epiflow.store import PoseStore
        rig = make_rig(3, seed=4)
        rng = np.random.default_rng(2)
        labels = rng.normal(0, 0.3, (8, 17, 3)) + [0, 0, 1]
        store = PoseStore.open(tmp_path / "s.zarr", mode="a")
        s = store.create_session("walk", n_frames=8, camera_names=rig.names, joint_set="h36m17",
                                 image_size=rig.sizes, fps=25.0, chunk_frames=4)
        s.write_rig(rig, method="synthetic")
        s.write_labels(labels[:, None], np.full((8, 1, 17), 0.5), np.zeros((8, 1, 17)))
        s.write_gt3d(labels + 0.01, frame="world")
        for stage in ("calibrate", "triangulate"):  # as the pipeline does after writing
            s.set_status(stage, "done")
        out = tmp_path / "walk.json"
        assert main(["export", str(tmp_path / "s.zarr"), "--out", str(out)]) == 0
        back = ex.read_json(out)
        assert np.allclose(back.points, labels, atol=1e-6) and back.fps == 25.0
        assert np.allclose(back.weights, 0.5)
        assert main(["export", str(tmp_path / "s.zarr"), "--session", "walk", "--array", "gt3d",
                     "--out", str(tmp_path / "gt.npz")]) == 0
        assert np.allclose(ex.load_poses_npz(tmp_path / "gt.npz").points, labels + 0.01,
                           atol=1e-6)
        assert main(["export", str(tmp_path / "s.zarr"), "--out", str(tmp_path / "c.toml")]) == 0
        cams = load_toml(tmp_path / "c.toml")
        assert cams.names == rig.names and np.allclose(cams.R, rig.R, atol=1e-12)


    def test_one_file_per_person(self, tmp_path, capsys):
        """Two people: poses_p<id>.trc each (ids as stored, not positions); --person one."""
        from epiflow.store import PoseStore
        rig = make_rig(3, seed=4)
        labels = np.random.default_rng(5).normal(0, 0.3, (8, 2, 17, 3)) + [0, 0, 1]
        labels[:, 1] += [1.5, 0, 0]
        s = PoseStore.open(tmp_path / "s.zarr", mode="a").create_session(
            "two", n_frames=8, camera_names=rig.names, joint_set="h36m17", image_size=rig.sizes,
            fps=25.0, chunk_frames=4, max_people=2)
        s.write_rig(rig, method="synthetic")
        s.write_labels(labels, np.full((8, 2, 17), 0.5), np.zeros((8, 2, 17)), person_ids=[3, 7],
                       slots=np.zeros((8, 2, 3), int))
        for stage in ("calibrate", "triangulate"):
            s.set_status(stage, "done")
        assert main(["export", str(tmp_path / "s.zarr"), "--out", str(tmp_path / "poses.trc")]) == 0
        assert "(person 7)" in capsys.readouterr().out
        assert sorted(p.name for p in tmp_path.glob("poses*")) == ["poses_p3.trc", "poses_p7.trc"]
        for n, pid in enumerate((3, 7)):
            back = ex.read_trc(tmp_path / f"poses_p{pid}.trc")
            assert back.n_frames == 8
            assert np.allclose(back.points, labels[:, n], atol=1e-4), pid   # read back Z up
        assert main(["export", str(tmp_path / "s.zarr"), "--person", "7", "--out",
                     str(tmp_path / "seven.csv")]) == 0
        assert np.allclose(ex.read_csv(tmp_path / "seven.csv").points, labels[:, 1], atol=1e-5)
        assert main(["export", str(tmp_path / "s.zarr"), "--person", "5", "--out",
                     str(tmp_path / "five.csv")]) == 2
        err = capsys.readouterr().err
        assert "--person 5" in err and "person ids: [3, 7]" in err
        assert not (tmp_path / "five.csv").exists()


def _store_with(tmp_path, good: tuple[str, ...], failed: tuple[str, ...]):
    """A store whose ``good`` sessions have cameras and labels and whose ``failed`` ones failed
    at calibrate, as ``epiflow run`` leaves them."""
    from epiflow.store import PoseStore
    rig = make_rig(3, seed=4)
    store = PoseStore.open(tmp_path / "s.zarr", mode="a")
    for name in good:
        s = store.create_session(name, n_frames=6, camera_names=rig.names, joint_set="h36m17",
                                 image_size=rig.sizes, fps=25.0, chunk_frames=3)
        s.write_rig(rig, method="synthetic")
        s.write_labels(np.ones((6, 1, 17, 3)), np.full((6, 1, 17), 0.5), np.zeros((6, 1, 17)))
        for stage in ("calibrate", "triangulate"):
            s.set_status(stage, "done")
    for name in failed:
        store.record_failure(name, "calibrate", "too few frames to calibrate")
    return tmp_path / "s.zarr"


class TestFailedSessions:
    """A failed session has no labels: exporting it is refused with the session, its failed
    stage and reason, and what to do (was: exit 0 and a TRC of NaN labels)."""

    def test_the_only_session_failed(self, tmp_path, capsys):
        store = _store_with(tmp_path, (), ("broken",))
        for extra in ([], ["--session", "broken"]):
            assert main(["export", str(store), "--out", str(tmp_path / "p.trc"), *extra]) == 2
            err = capsys.readouterr().err
            assert ("session 'broken'" in err and "failed at its calibrate stage (too few frames "
                    "to calibrate)" in err and f"epiflow inspect {store}" in err
                    and "re-run `epiflow run`" in err), err
        assert main(["export", str(store), "--out", str(tmp_path / "c.toml")]) == 2
        assert "no cameras to export" in capsys.readouterr().err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]

    def test_the_good_session_is_exported_and_the_failed_one_named(self, tmp_path, capsys):
        store = _store_with(tmp_path, ("walk",), ("broken",))
        assert main(["export", str(store), "--out", str(tmp_path / "p.npz")]) == 0
        out, err = capsys.readouterr()
        assert "6 frames x 17 joints" in out and np.allclose(
            ex.load_poses_npz(tmp_path / "p.npz").points, 1.0)
        assert "warning" in err and "skipped: session 'broken'" in err and "calibrate" in err

    def test_two_good_sessions_still_need_a_choice(self, tmp_path, capsys):
        store = _store_with(tmp_path, ("a", "b"), ("broken",))
        assert main(["export", str(store), "--out", str(tmp_path / "p.npz")]) == 2
        err = capsys.readouterr().err
        assert "2 sessions with pseudo3d to export (a, b) of 3" in err and "--session" in err
        assert "session 'broken'" in err


class TestBadSources:
    @pytest.mark.parametrize("name", ["r.npz", "r.trc", "r.csv", "r.json"])
    def test_random_bytes_name_the_file(self, name, tmp_path, capsys):
        src = tmp_path / name
        src.write_bytes(np.random.default_rng(3).bytes(600))
        assert main(["export", str(src), "--out", str(tmp_path / "p.trc")]) == 2
        err = capsys.readouterr().err
        assert str(src) in err and ("not an npz file" in err or "is not a text file" in err)
        assert "pickled" not in err and "codec" not in err and not (tmp_path / "p.trc").exists()

    def test_fps_must_be_positive(self, poses, tmp_path, capsys):
        src = ex.save_poses_npz(poses, tmp_path / "p.npz")
        with pytest.raises(SystemExit) as exit_:
            main(["export", str(src), "--out", str(tmp_path / "p.trc"), "--fps", "0"])
        assert exit_.value.code == 2 and not (tmp_path / "p.trc").exists()
        assert "argument --fps: expected a number > 0, got '0'" in capsys.readouterr().err
