"""No command writes over its own input, and every output is written whole or not at all
(:mod:`epiflow.outputs`)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from epiflow import outputs as O
from epiflow.calibration.formats import save_toml
from epiflow.cli import main
from epiflow.datasets.synthetic import Corruption, cmu_capture, make_rig
from epiflow.keypoints import save_npz


def _files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class TestCheckOutputsNotInputs:
    def test_distinct_paths_pass(self, tmp_path):
        (tmp_path / "kp.npz").write_bytes(b"x")
        O.check_outputs_not_inputs({"--out": tmp_path / "poses.npz", "--other": None},
                                   {"--keypoints": tmp_path / "kp.npz", "--cameras": None,
                                    "--store": "s3://bucket/s.zarr"})

    def test_same_path_names_both_arguments(self, tmp_path):
        with pytest.raises(O.OutputError, match=r"--out '.*k.npz' is the same file as "
                                                r"--keypoints '.*k.npz': writing it would "
                                                r"overwrite the input; give a path outside"):
            O.check_outputs_not_inputs({"--out": tmp_path / "k.npz"},
                                       {"--keypoints": tmp_path / "sub" / ".." / "k.npz"})

    def test_symlink_and_hard_link(self, tmp_path):
        (tmp_path / "k.npz").write_bytes(b"x")
        (tmp_path / "soft.npz").symlink_to(tmp_path / "k.npz")
        os.link(tmp_path / "k.npz", tmp_path / "hard.npz")
        for alias in ("soft.npz", "hard.npz"):
            with pytest.raises(O.OutputError, match="is the same file as --keypoints"):
                O.check_outputs_not_inputs({"--out": tmp_path / alias},
                                           {"--keypoints": tmp_path / "k.npz"})

    def test_output_inside_an_input_folder_and_around_an_input(self, tmp_path):
        (tmp_path / "S.zarr").mkdir()
        with pytest.raises(O.OutputError, match="--out '.*x.trc' lies inside the source"):
            O.check_outputs_not_inputs({"--out": tmp_path / "S.zarr" / "x.trc"},
                                       {"the source": tmp_path / "S.zarr"})
        with pytest.raises(O.OutputError, match="is a folder that contains --keypoints"):
            O.check_outputs_not_inputs({"--out": tmp_path},
                                       {"--keypoints": tmp_path / "S.zarr" / "kp.npz"})


class TestAtomicWrites:
    def test_writer_raising_midway_leaves_the_old_file_and_no_temporary(self, tmp_path):
        path = tmp_path / "report.json"
        path.write_text('{"old": true}')
        with pytest.raises(RuntimeError, match="disk gone"):
            with O.atomic_open(path, "w") as f:
                f.write('{"new": ')
                raise RuntimeError("disk gone")
        assert path.read_text() == '{"old": true}' and _files(tmp_path) == ["report.json"]

    def test_success_replaces_whole_and_creates_folders(self, tmp_path):
        path = O.atomic_write_bytes(tmp_path / "a" / "b.bin", b"\x00" * 1000)
        assert path.read_bytes() == b"\x00" * 1000 and _files(path.parent) == ["b.bin"]
        O.atomic_write_text(path, "short")
        assert path.read_text() == "short" and _files(path.parent) == ["b.bin"]

    def test_atomic_path_keeps_the_suffix_for_writers_that_add_one(self, tmp_path):
        with O.atomic_path(tmp_path / "p.npz") as tmp:
            assert tmp.suffix == ".npz" and tmp.parent == tmp_path and tmp.name.startswith(".")
            np.savez(tmp, a=np.arange(3))
        with np.load(tmp_path / "p.npz") as z:
            assert z["a"].tolist() == [0, 1, 2]
        assert _files(tmp_path) == ["p.npz"]

    def test_killed_npz_writer_in_triangulate_keeps_the_old_poses(self, tmp_path, monkeypatch,
                                                                   capture):
        out = tmp_path / "poses.npz"
        out.write_bytes(b"the old poses")

        def half_then_die(f, **arrays):
            f.write(b"PK\x03\x04 half a zip")
            raise KeyboardInterrupt  # what Ctrl-C raises inside the writer

        monkeypatch.setattr(np, "savez_compressed", half_then_die)
        with pytest.raises(KeyboardInterrupt):
            main(["triangulate", "--keypoints", str(capture / "kp.npz"), "--cameras",
                  str(capture / "cameras.toml"), "--out", str(out)])
        assert out.read_bytes() == b"the old poses" and _files(tmp_path) == ["poses.npz"]


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """A folder with a 4-camera keypoints npz (kp.npz) and its cameras (cameras.toml)."""
    folder = tmp_path_factory.mktemp("capture")
    cap = cmu_capture("02_01", corruption=Corruption(noise_px=2.0), seed=3)
    save_npz(cap.keypoints, folder / "kp.npz")
    save_toml(cap.rig, folder / "cameras.toml")
    return folder


def _refused(argv, capsys, *names) -> str:
    """Run ``epiflow argv``; it must exit 2 with a message naming ``names``."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert all(n in err for n in names), err
    return err


class TestCommandsNeverWriteOverTheirInputs:
    def test_triangulate(self, capture, capsys, tmp_path):
        kp, cams = capture / "kp.npz", capture / "cameras.toml"
        before = kp.read_bytes(), cams.read_bytes()
        (tmp_path / "link.npz").symlink_to(kp)
        for out, name in ((kp, "--keypoints"), (tmp_path / "link.npz", "--keypoints"),
                          (cams, "--cameras")):
            _refused(["triangulate", "--keypoints", str(kp), "--cameras", str(cams), "--out",
                      str(out)], capsys, "--out", name, "overwrite the input")
        assert (kp.read_bytes(), cams.read_bytes()) == before

    def test_calibrate(self, capture, capsys):
        kp, cams = capture / "kp.npz", capture / "cameras.toml"
        before = kp.read_bytes(), cams.read_bytes()
        _refused(["calibrate", "--keypoints", str(kp), "--out", str(kp)], capsys,
                 "--out", "--keypoints")
        _refused(["calibrate", "--keypoints", str(kp), "--intrinsics", str(cams), "--out",
                  str(cams)], capsys, "--out", "--intrinsics")
        assert (kp.read_bytes(), cams.read_bytes()) == before
        assert not (capture / "kp.report.json").exists()

    def test_export_poses_file_onto_itself(self, tmp_path, capsys):
        from epiflow import export as ex
        src = ex.save_poses_npz(ex.Poses3D.from_joint_set(np.zeros((3, 17, 3)), "h36m17", 30.0),
                                tmp_path / "p.npz")
        before = src.read_bytes()
        _refused(["export", str(src), "--out", str(src)], capsys, "--out", "the source")
        assert src.read_bytes() == before

    def test_export_into_the_store_it_reads(self, tmp_path, capsys):
        from epiflow.store import PoseStore
        rig = make_rig(3, seed=4)
        store = PoseStore.open(tmp_path / "S.zarr", mode="a")
        s = store.create_session("walk", n_frames=8, camera_names=rig.names, joint_set="h36m17",
                                 image_size=rig.sizes, fps=25.0, chunk_frames=4)
        s.write_rig(rig, method="synthetic")
        s.write_labels(np.ones((8, 1, 17, 3)), np.full((8, 1, 17), 0.5), np.zeros((8, 1, 17)))
        listing = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
        for name in ("x.trc", "cameras.toml"):
            out = tmp_path / "S.zarr" / name
            _refused(["export", str(tmp_path / "S.zarr"), "--out", str(out)], capsys, "--out",
                     "lies inside the source")
        assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == listing

    def test_run_predict_evaluate(self, capture, capsys, tmp_path):
        kp = capture / "kp.npz"
        before = kp.read_bytes()
        _refused(["run", "--keypoints", str(kp), "--out", str(kp)], capsys,
                 "the store (--out)", "keypoints")
        ckpt = tmp_path / "checkpoint.pt"
        ckpt.write_bytes(b"weights")
        _refused(["predict", str(ckpt), "--keypoints", str(kp), "--camera", "cam_01", "--out",
                  str(ckpt)], capsys, "--out", "CHECKPOINT")
        _refused(["evaluate", str(ckpt), "--store", str(tmp_path / "S.zarr"), "--out",
                  str(ckpt)], capsys, "--out", "CHECKPOINT")
        assert kp.read_bytes() == before and ckpt.read_bytes() == b"weights"


class TestOutputThatIsAFolder:
    """An --out naming an existing folder is refused before any work (exit 2, the argument and
    an example file path named), instead of the atomic rename's IsADirectoryError traceback."""

    def test_check_file_outputs(self, tmp_path):
        (tmp_path / "outdir").mkdir()
        with pytest.raises(O.OutputError) as err:
            O.check_file_outputs({"--out": tmp_path / "outdir"}, "poses.npz")
        assert str(err.value) == (f"--out {tmp_path / 'outdir'} is a folder; give a file path "
                                  f"such as {tmp_path / 'outdir' / 'poses.npz'}")
        (tmp_path / "notes.txt").write_text("mine")
        with pytest.raises(O.OutputError, match=r"--out .*notes\.txt is a file, not a folder"):
            O.check_file_outputs({}, "", folders={"--out": tmp_path / "notes.txt"})
        O.check_file_outputs({"--out": tmp_path / "new.npz", "unset": None}, "poses.npz",
                             folders={"--out": tmp_path / "outdir"})  # both fine

    def test_atomic_writer_refuses_a_folder(self, tmp_path):
        (tmp_path / "p.npz").mkdir()
        with pytest.raises(O.OutputError, match="is a folder"):
            O.atomic_write_bytes(tmp_path / "p.npz", b"x")
        assert _files(tmp_path) == ["p.npz"] and not any((tmp_path / "p.npz").iterdir())

    def test_triangulate(self, capture, capsys, tmp_path):
        out = tmp_path / "outdir"
        out.mkdir()
        _refused(["triangulate", "--keypoints", str(capture / "kp.npz"), "--cameras",
                  str(capture / "cameras.toml"), "--out", str(out)], capsys,
                 f"--out {out} is a folder; give a file path such as {out / 'poses.npz'}")
        assert _files(tmp_path) == ["outdir"] and not any(out.iterdir())

    @pytest.mark.parametrize("argv, example", [
        (["calibrate", "--keypoints", "kp.npz", "--out", "OUT"], "cameras.toml"),
        (["export", "poses.npz", "--out", "OUT", "--format", "trc"], "poses.trc"),
        (["evaluate", "ckpt.pt", "--store", "S.zarr", "--out", "OUT"], "metrics.json"),
        (["predict", "ckpt.pt", "--keypoints", "kp.npz", "--camera", "cam_01", "--out", "OUT",
          "--no-plot"], "pred.npz")])
    def test_other_commands(self, argv, example, capsys, tmp_path):
        out = tmp_path / "outdir"
        out.mkdir()
        argv = [str(out) if a == "OUT" else a for a in argv]
        _refused(argv, capsys, f"--out {out} is a folder; give a file path such as "
                               f"{out / example}")
        assert not any(out.iterdir())

    def test_demo_out_that_is_a_file(self, capsys, tmp_path):
        notes = tmp_path / "notes.txt"
        notes.write_text("my notes\n")
        _refused(["demo", "--quick", "--out", str(notes)], capsys,
                 f"--out {notes} is a file, not a folder")
        assert notes.read_text() == "my notes\n" and _files(tmp_path) == ["notes.txt"]
