"""The pose store: round trip, chunk alignment of work units, completion and schema errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from scipy.spatial.transform import Rotation

from epiflow.calibration.camera import Camera, CameraRig
from epiflow.naming import natural_key
from epiflow.store import SCHEMA_VERSION, STAGES, PoseStore, StoreError, StoreVersionError

T, C, J, F = 10, 3, 17, 4


def _rig() -> CameraRig:
    rng = np.random.default_rng(0)
    return CameraRig(Camera(f"cam{i}", K=[[900 + i, 0, 320], [0, 905, 240], [0, 0, 1]],
                            dist=[0.01 * i, -0.02, 0.001, 0.0, 0.003],
                            R=Rotation.from_rotvec(rng.normal(size=3)).as_matrix(),
                            t=rng.normal(size=3), size=(640, 480)) for i in range(C))


def _new(url, crop_size=0, session="s1", max_people=1):
    store = PoseStore.open(url, "a")
    return store, store.create_session(
        session, n_frames=T, camera_names=[f"cam{i}" for i in range(C)], joint_set="h36m17",
        image_size=[[640, 480]] * C, fps=30.0, chunk_frames=F, crop_size=crop_size,
        max_people=max_people, attrs={"source": {"kind": "test"}})


def _fill(session, rng, crop_size=0, P=1):
    kp = rng.normal(size=(T, C, P, J, 3)).astype(np.float32)
    crops = rng.integers(0, 255, size=(T, C, crop_size, crop_size, 3), dtype=np.uint8)
    boxes = rng.normal(size=(T, C, 4)).astype(np.float32)
    for unit in range(-(-T // F)):
        a, b = unit * F, min(T, unit * F + F)
        for c in range(C):
            session.write_unit(unit, c, kp[a:b, c], crops[a:b, c] if crop_size else None,
                               boxes[a:b, c] if crop_size else None)
    return kp, crops, boxes


class TestRoundTrip:
    def test_arrays_rig_and_attrs_read_back(self, tmp_path):
        rng = np.random.default_rng(1)
        _, s = _new(tmp_path / "a.zarr", crop_size=8)
        kp, crops, boxes = _fill(s, rng, 8)
        rig = _rig()
        s.write_rig(rig, "file", {"median_px": np.float64(0.5), "bad": float("nan")})
        N = 2
        X, w, e = rng.normal(size=(T, N, J, 3)), rng.random((T, N, J)), rng.random((T, N, J))
        views = rng.random((T, N, C, J)) > 0.5
        assert s.gt3d is None and "pseudo3d" not in s.group   # labels come with triangulation
        s.write_labels(X, w, e, views, person_ids=[3, 7])
        s.write_gt3d(X + 1, "cameras", rig)

        r = PoseStore.open(tmp_path / "a.zarr").session("s1")
        assert np.array_equal(r.keypoints2d[:], kp)
        assert np.array_equal(r.crops[:], crops) and np.array_equal(r.crop_boxes[:], boxes)
        assert np.allclose(r.pseudo3d[:], X, atol=1e-6) and r.pseudo3d.dtype == np.float32
        assert np.allclose(r.pseudo3d_weight[:], w, atol=1e-6)
        assert np.allclose(r.reproj_error[:], e, atol=1e-6)
        assert np.array_equal(r.pseudo3d_views[:], views)
        assert np.allclose(r.gt3d[:], X + 1, atol=1e-6)
        assert r.person_ids.tolist() == [3, 7] and r.max_people == 1
        s.set_status("triangulate", "done")
        labels = PoseStore.open(tmp_path / "a.zarr").session("s1").labels()
        assert labels.n_people == 2 and labels.person_ids.tolist() == [3, 7]
        p1 = labels.person(1)
        assert p1.person_id == 7 and p1.pseudo3d.shape == (T, J, 3)
        assert np.allclose(p1.pseudo3d, X[:, 1], atol=1e-6)
        assert np.array_equal(p1.views, views[:, 1])
        with pytest.raises(IndexError, match="2 people"):
            labels.person(2)
        assert r.ground_truth().points.shape == (T, N, J, 3)
        back = r.rig
        assert back.names == rig.names
        for name in ("K", "dist", "R", "t"):
            assert np.allclose(getattr(back, name), getattr(rig, name), atol=1e-12), name
            assert np.allclose(r.group["cameras"][name][:], getattr(rig, name), atol=1e-12)
        assert np.array_equal(r.group["cameras/size"][:], [[640, 480]] * C)
        a = r.attrs
        assert a["schema_version"] == SCHEMA_VERSION and a["joint_set"] == "h36m17"
        assert len(a["joint_names"]) == J and a["joint_names"][0] == "pelvis"
        assert a["fps"] == 30.0 and a["camera_names"] == ["cam0", "cam1", "cam2"]
        assert a["calibration"] == {"method": "file", "report": {"median_px": 0.5, "bad": None}}
        assert a["gt3d_frame"] == "cameras" and a["source"] == {"kind": "test"}
        assert r.keypoints().data.shape == (T, C, 1, J, 3)
        assert np.array_equal(r.person0_keypoints().data, r.keypoints().data[:, :, 0],
                              equal_nan=True)

    def test_optional_arrays_absent_are_none(self, tmp_path):
        _, s = _new(tmp_path / "a.zarr")
        assert s.gt3d is None and s.crops is None and s.crop_boxes is None
        with pytest.raises(KeyError, match="no cameras yet"):
            s.rig

    def test_fsspec_url(self):
        pytest.importorskip("fsspec", reason="URL stores need fsspec")
        rng = np.random.default_rng(2)
        _, s = _new("memory://epiflow-test/a.zarr")
        kp, _, _ = _fill(s, rng)
        r = PoseStore.open("memory://epiflow-test/a.zarr").session("s1")
        assert np.array_equal(r.keypoints2d[:], kp)


    def test_xarray_reads_a_session_with_named_dimensions(self, tmp_path):
        xr = pytest.importorskip("xarray")
        rng = np.random.default_rng(2)
        _, s = _new(tmp_path / "x.zarr", crop_size=4)
        kp, _, _ = _fill(s, rng, 4)
        s.write_rig(_rig(), "file")
        X = rng.normal(size=(T, 1, J, 3))
        s.write_labels(X, rng.random((T, 1, J)), rng.random((T, 1, J)))
        ds = xr.open_zarr(tmp_path / "x.zarr", group="sessions/s1", consolidated=False)
        assert ds["keypoints2d"].dims == ("frame", "camera", "slot", "joint", "xyc")
        assert ds["pseudo3d"].dims == ("frame", "person", "joint", "xyz")
        assert ds["person_ids"].dims == ("person",)
        assert dict(ds.sizes)["frame"] == T and dict(ds.sizes)["camera"] == C
        assert np.allclose(ds["pseudo3d"].values, X, atol=1e-6)
        assert np.array_equal(ds["keypoints2d"].values, kp)
        cams = xr.open_zarr(tmp_path / "x.zarr", group="sessions/s1/cameras", consolidated=False)
        assert cams["K"].dims == ("camera", "row", "column") and cams.sizes["camera"] == C


class TestUnits:
    def test_each_unit_writes_its_own_chunk(self, tmp_path):
        _, s = _new(tmp_path / "a.zarr", crop_size=4)
        assert s.keypoints2d.chunks == (F, 1, 1, J, 3)
        s.write_unit(1, 2, np.zeros((F, J, 3)), np.ones((F, 4, 4, 3), np.uint8), np.zeros((F, 4)))
        root = tmp_path / "a.zarr" / "sessions" / "s1"
        for name in ("keypoints2d", "crops", "crop_boxes", "done/detect"):
            files = [p for p in (root / name / "c").rglob("*") if p.is_file()]
            assert len(files) == 1, (name, files)
        assert np.argwhere(s.units_done()).tolist() == [[1, 2]]
        assert np.isnan(s.keypoints2d[0]).all()   # other units untouched (NaN fill)

    def test_source_keypoints_kept_beside(self, tmp_path):
        store = PoseStore.open(tmp_path / "a.zarr", "a")
        s = store.create_session("s", n_frames=T, camera_names=["a"], joint_set="h36m17",
                                 image_size=[[64, 48]], fps=None, chunk_frames=F,
                                 source_joint_set="blazepose33")
        assert s.keypoints2d_source.shape == (T, 1, 1, 33, 3)
        assert s.keypoints2d_source.chunks == (F, 1, 1, 33, 3)
        with pytest.raises(ValueError, match="keeps keypoints2d_source"):
            s.write_unit(0, 0, np.zeros((F, J, 3)))
        src = np.arange(F * 33 * 3, dtype=np.float32).reshape(F, 33, 3)
        s.write_unit(0, 0, np.zeros((F, J, 3)), source_keypoints=src)
        r = PoseStore.open(tmp_path / "a.zarr").session("s")
        assert r.keypoints(source=True).joint_set == "blazepose33"
        assert np.array_equal(r.keypoints2d_source[:F, 0, 0], src)
        assert r.keypoints().joint_set == "h36m17" and r.attrs["source_joint_set"] == "blazepose33"
        same = store.create_session("t", n_frames=T, camera_names=["a"], joint_set="h36m17",
                                    image_size=[[64, 48]], fps=None, chunk_frames=F,
                                    source_joint_set="h36m17")
        assert same.keypoints2d_source is None and same.keypoints(source=True).joint_set == "h36m17"

    def test_last_unit_is_short(self, tmp_path):
        _, s = _new(tmp_path / "a.zarr")
        assert s.units_done().shape == (3, C) and s.unit_frames(2) == (8, 10)
        with pytest.raises(ValueError, match=r"shape \(2, 1, 17, 3\)"):
            s.write_unit(2, 0, np.zeros((F, J, 3)))

    def test_several_slots_need_the_p_axis(self, tmp_path):
        _, s = _new(tmp_path / "a.zarr", max_people=3)
        assert s.keypoints2d.shape == (T, C, 3, J, 3) and s.max_people == 3
        with pytest.raises(ValueError, match=r"shape \(4, 3, 17, 3\)"):
            s.write_unit(0, 0, np.zeros((F, J, 3)))   # no guessing which slot it is
        rng = np.random.default_rng(4)
        kp, _, _ = _fill(s, rng, P=3)
        assert np.array_equal(s.keypoints2d[:], kp)
        with pytest.raises(StoreError, match="3 detection slots"):
            s.person0_keypoints()

    def test_short_unit_is_refused_and_not_marked(self, tmp_path):
        _, s = _new(tmp_path / "a.zarr")
        with pytest.raises(ValueError, match=r"shape \(2, 1, 17, 3\)"):
            s.write_unit(2, 0, np.zeros((F, J, 3)))
        assert not s.units_done().any()


class TestCompletion:
    def test_complete_only_after_every_stage(self, tmp_path):
        store, s = _new(tmp_path / "a.zarr")
        for stage in STAGES[:-1]:
            s.set_status(stage, "done")
        with pytest.raises(StoreError, match="triangulate"):
            s.mark_complete()
        assert not s.is_complete and store.session_ids(complete_only=True) == []
        s.set_status("triangulate", "done")
        s.mark_complete()
        assert PoseStore.open(tmp_path / "a.zarr").session("s1").is_complete

    def test_failure_recorded_with_reason(self, tmp_path):
        store, s = _new(tmp_path / "a.zarr")
        s.mark_failed("detect", "video cam1.mp4 is truncated")
        a = PoseStore.open(tmp_path / "a.zarr").session("s1").attrs
        assert a["status"]["detect"] == "failed" and "truncated" in a["failure"]["reason"]
        assert not store.session("s1").is_complete

    def test_a_creation_cut_short_is_an_incomplete_session(self, tmp_path, monkeypatch):
        """A run killed while a session's arrays are being created leaves a group that says
        its schema version and that it is not complete (not an unreadable 'version None')."""
        import epiflow.cli.inspect as inspect_cli
        import epiflow.store as store_module

        def killed(*args, **kwargs):
            raise KeyboardInterrupt("killed while creating the arrays")
        monkeypatch.setattr(store_module, "_create_arrays", killed)
        with pytest.raises(KeyboardInterrupt):
            _new(tmp_path / "a.zarr")
        store = PoseStore.open(tmp_path / "a.zarr")
        assert store.session_ids() == ["s1"] and store.session_ids(complete_only=True) == []
        assert store.session("s1").attrs["status"]["ingest"] == "pending"
        assert inspect_cli.session_summary(store.session("s1"))["status"] == "incomplete"

    def test_sessions_in_natural_order(self, tmp_path):
        store, _ = _new(tmp_path / "a.zarr", session="take10")
        for name in ("take2", "take1"):
            _new(tmp_path / "a.zarr", session=name)
        assert store.session_ids() == ["take1", "take2", "take10"]
        assert sorted(["cam10", "cam2"], key=natural_key) == ["cam2", "cam10"]


class TestErrors:
    def test_other_schema_version(self, tmp_path):
        _new(tmp_path / "a.zarr")
        meta = tmp_path / "a.zarr" / "zarr.json"
        doc = json.loads(meta.read_text())
        doc["attributes"]["epiflow"]["schema_version"] = SCHEMA_VERSION + 1
        meta.write_text(json.dumps(doc))
        for mode in ("r", "a"):
            with pytest.raises(StoreVersionError, match=f"version {SCHEMA_VERSION + 1}"):
                PoseStore.open(tmp_path / "a.zarr", mode)

    def test_session_of_other_schema_version(self, tmp_path):
        store, s = _new(tmp_path / "a.zarr")
        s.update_attrs(schema_version=0)
        with pytest.raises(StoreVersionError, match="session 's1'"):
            store.session("s1")

    def test_missing_store_and_foreign_group(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            PoseStore.open(tmp_path / "none.zarr")
        foreign = zarr.open_group(str(tmp_path / "f.zarr"), mode="w")
        foreign.create_array("x", shape=(2,), dtype="f4")
        with pytest.raises(StoreError, match="not an epiflow pose store"):
            PoseStore.open(tmp_path / "f.zarr", "a")

    def test_bad_session_id_and_read_only(self, tmp_path):
        store, _ = _new(tmp_path / "a.zarr")
        with pytest.raises(StoreError, match="session id"):
            store.create_session("../x", n_frames=2, camera_names=["a"], joint_set="h36m17",
                                 image_size=[[1, 1]], fps=None, chunk_frames=1)
        with pytest.raises(StoreError, match="read-only"):
            PoseStore.open(tmp_path / "a.zarr").delete_session("s1")
        with pytest.raises(KeyError, match="it has: s1"):
            store.session("nope")
        assert Path(tmp_path / "a.zarr" / "sessions" / "s1").is_dir()


BAD_IDS = ["a/b", "..", ".", "/abs/x", "", "a b", "tab\there", "nul\x00", "back\\slash", "-x",
           ".hidden", "__reserved", "zarr.json", "é", "x" * 129]


def _create(store, sid):
    return store.create_session(sid, n_frames=2, camera_names=["a"], joint_set="h36m17",
                                image_size=[[1, 1]], fps=None, chunk_frames=1)


def _run_cli(capsys, *argv) -> tuple[int, str, str]:
    from epiflow.cli import main
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


class TestSessionIds:
    """A bad id is refused with epiflow's message before anything is written, so the store is
    never poisoned (issue 13, defect 1: ``--session a/b`` left ``sessions/a/b``)."""

    @pytest.mark.parametrize("sid", BAD_IDS)
    def test_refused_by_create_and_record_failure(self, tmp_path, sid):
        store, _ = _new(tmp_path / "a.zarr")
        for write in (lambda: _create(store, sid),
                      lambda: store.record_failure(sid, "ingest", "boom")):
            with pytest.raises(StoreError, match="is not a valid session id") as err:
                write()
            assert repr(sid) in str(err.value) and "e.g. 'take_01'" in str(err.value)
        assert sorted(p.name for p in (tmp_path / "a.zarr" / "sessions").iterdir()) == \
            ["s1", "zarr.json"]
        again = PoseStore.open(tmp_path / "a.zarr")
        assert again.session_ids() == ["s1"] and again.damaged_entries() == {}

    def test_good_ids_pass(self, tmp_path):
        store = PoseStore.open(tmp_path / "a.zarr", "a")
        for sid in ("take_01", "S1.walking-2", "_x", "0", "a" * 128):
            _create(store, sid)
        assert sorted(store.session_ids()) == sorted(["take_01", "S1.walking-2", "_x", "0",
                                                      "a" * 128])

    def test_cli_session_refused_before_the_store_is_touched(self, tmp_path, capsys):
        from epiflow.pipeline.orchestrate import stored_warnings  # noqa: F401 (run's imports)
        _new(tmp_path / "S.zarr")
        before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
        np.savez(tmp_path / "kp.npz", keypoints=np.zeros((2, 3, 17, 3), np.float32))
        for sid in ("a/b", "..", "/etc"):
            code, _, err = _run_cli(capsys, "run", "--keypoints", str(tmp_path / "kp.npz"),
                                    "--session", sid, "--out", str(tmp_path / "S.zarr"))
            assert code == 2 and f"--session {sid!r} is not a valid session id" in err, err
            assert "Traceback" not in err and "zarr" not in err.split("valid session id")[0]
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")
                      if p.name != "kp.npz") == before
        code, out, err = _run_cli(capsys, "inspect", str(tmp_path / "S.zarr"))
        assert code == 0 and "1 session," in out and "\ns1 " in out, err

    def test_config_name_and_folder_name_refused(self, tmp_path):
        from epiflow.pipeline.config import RunConfig, SessionConfig, load_run_config
        from epiflow.pipeline.ingest import plan_sessions
        toml = tmp_path / "run.toml"
        toml.write_text('out = "S.zarr"\n[[sessions]]\nname = "../up"\nkeypoints = "k.npz"\n')
        with pytest.raises(ValueError, match=r"run.toml: .*config key 'sessions.name' "
                                             r"'\.\./up' is not a valid session id"):
            load_run_config(toml)
        folder = tmp_path / "take 1" / "keypoints"
        folder.mkdir(parents=True)
        cfg = RunConfig(out=str(tmp_path / "S.zarr"), sessions=(SessionConfig(keypoints=str(folder)),))
        with pytest.raises(StoreError, match=r"rename it\) 'take 1' is not a valid session id: "
                                             r"it holds whitespace"):
            plan_sessions(cfg)
        assert not (tmp_path / "S.zarr").exists()

    def test_stray_entries_listed_and_good_sessions_read(self, tmp_path, capsys):
        """What an older epiflow (or a hand) left under sessions/ is listed, not fatal."""
        store, _ = _new(tmp_path / "S.zarr")
        sessions = store.root["sessions"]
        sessions.create_group("a/b", attributes={"schema_version": SCHEMA_VERSION})
        sessions.create_array("arr", shape=(2,), dtype="f4")
        sessions.create_group("old", attributes={"schema_version": SCHEMA_VERSION - 1})
        sessions.create_group("has space", attributes={"schema_version": SCHEMA_VERSION})
        (tmp_path / "S.zarr" / "sessions" / "not_zarr").mkdir()
        store = PoseStore.open(tmp_path / "S.zarr")
        assert store.session_ids() == ["s1"]
        damaged = store.damaged_entries()
        assert sorted(damaged) == ["a", "arr", "has space", "old"]
        assert "nested id such as 'a/b'" in damaged["a"] and "array" in damaged["arr"]
        assert f"version {SCHEMA_VERSION - 1}" in damaged["old"]
        assert "whitespace" in damaged["has space"]
        with pytest.raises(StoreError, match="session 'a' of .* is not an epiflow session"):
            store.session("a")
        code, out, err = _run_cli(capsys, "inspect", str(tmp_path / "S.zarr"))
        assert code == 0, err
        assert "1 session," in out and "\ns1 " in out
        assert out.count("NOT A SESSION sessions/") == 4 and "sessions/a: " in out
        code, out, _ = _run_cli(capsys, "inspect", str(tmp_path / "S.zarr"), "--json")
        doc = json.loads(out)
        assert [r["session"] for r in doc["sessions"]] == ["s1"] and len(doc["damaged"]) == 4


class TestOpening:
    """What is not an epiflow store is named, with what was expected, and left untouched."""

    def _files(self, path: Path) -> dict:
        return {p: p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}

    @pytest.mark.parametrize("mode", ["r", "a"])
    def test_a_file(self, tmp_path, mode):
        npz = tmp_path / "S.npz"
        np.savez(npz, keypoints=np.zeros(3))
        before = npz.read_bytes()
        with pytest.raises(StoreError, match=r"S\.npz' is a file \(an \.npz holds keypoints: "
                                             r"give it with --keypoints\), not a Zarr store"):
            PoseStore.open(npz, mode)
        (tmp_path / "notes.txt").write_text("x")
        with pytest.raises(StoreError, match=r"notes\.txt' is a file, not a Zarr store folder"):
            PoseStore.open(tmp_path / "notes.txt", mode)
        assert npz.read_bytes() == before

    @pytest.mark.parametrize("mode", ["r", "a"])
    def test_a_zarr_v2_store(self, tmp_path, mode):
        v2 = zarr.open_group(str(tmp_path / "v2.zarr"), mode="w", zarr_format=2)
        v2.create_array("x", shape=(2,), dtype="f4")
        before = self._files(tmp_path / "v2.zarr")
        with pytest.raises(StoreError, match=r"v2\.zarr' is a Zarr v2 store .* epiflow stores "
                                             r"are Zarr v3"):
            PoseStore.open(tmp_path / "v2.zarr", mode)
        assert self._files(tmp_path / "v2.zarr") == before   # no zarr.json written into it

    @pytest.mark.parametrize("mode", ["r", "a"])
    def test_a_folder_of_other_things(self, tmp_path, mode):
        folder = tmp_path / "videos"
        folder.mkdir()
        for name in ("cam1.mp4", "cam2.mp4"):
            (folder / name).write_bytes(b"\0" * 8)
        with pytest.raises(StoreError, match=r"videos' is a folder that is not a Zarr store "
                                             r"\(no zarr.json; it holds 2 entries: cam1.mp4, "
                                             r"cam2.mp4\)"):
            PoseStore.open(folder, mode)
        assert sorted(p.name for p in folder.iterdir()) == ["cam1.mp4", "cam2.mp4"]

    def test_empty_folder(self, tmp_path):
        (tmp_path / "new").mkdir()
        with pytest.raises(StoreError, match="is an empty folder, not a Zarr store"):
            PoseStore.open(tmp_path / "new")
        assert PoseStore.open(tmp_path / "new", "a").session_ids() == []

    def test_through_the_cli(self, tmp_path, capsys):
        np.savez(tmp_path / "S.npz", keypoints=np.zeros(3))
        code, _, err = _run_cli(capsys, "inspect", str(tmp_path / "S.npz"))
        assert code == 2 and "S.npz' is a file" in err and "`epiflow run --out`" in err
        code, _, err = _run_cli(capsys, "run", "--synthetic", "1", "--out",
                                str(tmp_path / "S.npz"))
        assert code == 2 and "S.npz' is a file" in err and "Traceback" not in err
