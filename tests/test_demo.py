"""The demo: its metrics tables and report assembly on in-memory sessions (fast), and the whole
``epiflow demo --quick`` run (pipeline on a local Ray, training, evaluation, report)."""
from __future__ import annotations

import re

import numpy as np
import pytest
from matplotlib.image import imread
from scipy.spatial.transform import Rotation

from epiflow.datasets.synthetic import Corruption, cmu_capture
from epiflow.demo import (LIFTER, DemoConfig, baseline_metrics, camera_tables, comparison_table,
                          failure_message, joint_table, label_tables, model_tables,
                          pipeline_config, report_inputs, time_table)
from epiflow.models.data import SessionArrays
from epiflow.report import write_report

GAUGE = (0.5, Rotation.from_rotvec([0.1, -0.4, 2.0]).as_matrix(), np.array([3.0, -1.0, 0.2]))


@pytest.fixture(scope="module")
def session() -> SessionArrays:
    """A session as the pipeline leaves it: cameras and labels in another world than the truth's
    (half the scale, turned, shifted), labels 1 cm off the truth."""
    cap = cmu_capture("02_01", n_cameras=4, corruption=Corruption(noise_px=1.0), seed=4)
    s, R, t = GAUGE
    noise = np.random.default_rng(0).normal(0, 0.01, cap.points3d.shape)
    labels = s * (cap.points3d + noise) @ R.T + t
    return SessionArrays(name="walk", keypoints2d=cap.keypoints.data.astype(np.float32),
                         rig=cap.rig.transformed(s, R, t), joint_set="h36m17",
                         pseudo3d=labels.astype(np.float32),
                         pseudo3d_weight=np.full(labels.shape[:2], 0.9, np.float32),
                         gt3d=cap.points3d.astype(np.float32), gt_rig=cap.rig, fps=30.0)


class TestTables:
    def test_camera_table_removes_the_gauge_but_not_the_scale(self, session):
        row = camera_tables([session])["walk"]
        assert row["relative rotation, max (deg)"] < 1e-6
        assert row["baseline direction, max (deg)"] < 1e-6
        assert row["position after similarity, max (m)"] < 1e-6
        assert row["metric scale error (%)"] == pytest.approx(100.0, abs=1e-6)  # 0.5 m per m

    def test_label_table(self, session):
        row = label_tables([session])["walk"]
        assert row["joints labelled (%)"] == 100.0 and row["median weight"] == pytest.approx(0.9)
        # 1 cm of isotropic noise per axis: a mean 3D error near 16 mm once the gauge is removed
        assert 12.0 < row["MPJPE vs truth, one similarity (mm)"] < 20.0
        assert 0.5 < row["median reprojection error (px)"] < 10.0

    def test_no_truth_no_comparison(self, session):
        from dataclasses import replace
        blind = replace(session, gt3d=None, gt_rig=None)
        assert camera_tables([blind]) == {}
        assert "MPJPE vs truth, one similarity (mm)" not in label_tables([blind])["walk"]

    def test_model_table(self):
        ev = {"overall": {"mpjpe_mm": 50.0, "pck3d": 0.9, "n_poses": 10, "pss50": 0.1},
              "clips": {"walk": {"mpjpe_mm": 40.0, "p_mpjpe_mm": 30.0}}}
        rows = model_tables(ev, held="walk")
        assert rows == {"walk (held out)": {"MPJPE (mm)": 40.0, "P-MPJPE (mm)": 30.0},
                        "all": {"MPJPE (mm)": 50.0, "PCK3D @150 mm": 0.9, "poses": 10}}


class TestModelsAndBaselines:
    @pytest.fixture(scope="class")
    def evaluated(self, session):
        """Two sessions whose labels are the truth + 1 cm, in the true world; the lifter's
        evaluation stood in by the labels' own (as if it had learnt them exactly)."""
        from dataclasses import replace
        rng = np.random.default_rng(5)
        near = (session.gt3d + rng.normal(0, 0.01, session.gt3d.shape)).astype(np.float32)
        clips = [replace(session, name=n, rig=session.gt_rig, pseudo3d=near)
                 for n in ("walk", "held")]
        baselines = baseline_metrics(clips, "held")
        labels = baselines["pseudo-labels (multi-view triangulation; the training targets)"]
        evaluation = {"overall": labels["overall"], "clips": {"held": labels["held"]}}
        return clips, baselines, evaluation

    def test_baselines(self, evaluated):
        _, baselines, _ = evaluated
        labels = baselines["pseudo-labels (multi-view triangulation; the training targets)"]
        mean = baselines["mean pose of the training labels"]
        # 1 cm per axis, root-relative (the root's noise too): about 20 mm per joint
        assert 12 < labels["held"]["mpjpe_mm"] < 30
        assert mean["held"]["mpjpe_mm"] > 3 * labels["held"]["mpjpe_mm"]  # a walk moves
        assert labels["held"]["n_poses"] == mean["held"]["n_poses"] > 100

    def test_comparison_is_one_table(self, evaluated):
        _, baselines, evaluation = evaluated
        rows = comparison_table(evaluation, baselines, "held")
        assert list(rows) == [LIFTER, *baselines]
        assert all(set(r) == set(rows[LIFTER]) for r in rows.values())
        assert rows[LIFTER]["held: MPJPE (mm)"] == evaluation["clips"]["held"]["mpjpe_mm"]

    def test_joint_table_mean_is_the_mpjpe(self, evaluated, session):
        from epiflow.skeleton import get_joint_set
        _, baselines, evaluation = evaluated
        joints = get_joint_set("h36m17").joints
        rows = joint_table(evaluation, baselines, joints, "held")
        assert list(rows) == [*joints, "mean over joints"]
        mean = rows["mean over joints"]
        assert mean[f"{LIFTER}, all sessions"] == pytest.approx(
            evaluation["overall"]["mpjpe_mm"], rel=1e-9)
        assert mean[f"{LIFTER}, held"] == pytest.approx(evaluation["clips"]["held"]["mpjpe_mm"],
                                                         rel=1e-9)
        # the root-relative pelvis is exact; the wrists are the worst of the lifter's joints
        assert rows["pelvis"][f"{LIFTER}, all sessions"] == pytest.approx(0, abs=1e-6)
        assert max(r[f"{LIFTER}, all sessions"] for r in rows.values()) > 12

    def test_times_add_up(self):
        rows = time_table({"pipeline": 30.04, "training": 20.26, "evaluation": 2.0}, 55.27)
        assert rows["total"] == 55.3 and rows["other (loading the store, tables)"] == 3.0
        parts = [v for k, v in rows.items() if k != "total"]
        assert sum(parts) == pytest.approx(rows["total"], abs=1e-9)


class TestConfigs:
    def test_pipeline_config_calibrates_from_people(self, tmp_path):
        cfg = pipeline_config(DemoConfig(num_cpus=2), tmp_path / "s.zarr")
        assert cfg.calibrate.method == "people" and cfg.ray.num_cpus == 2
        assert [s.synthetic.clip for s in cfg.sessions] == ["02_03", "02_04", "02_01"]
        assert len({s.synthetic.seed for s in cfg.sessions}) == 3  # a different rig each
        quick = pipeline_config(DemoConfig(quick=True), tmp_path / "s.zarr")
        assert len(quick.sessions) == 2 and quick.sessions[0].synthetic.frames == 40
        videos = pipeline_config(DemoConfig(videos=str(tmp_path)), tmp_path / "s.zarr")
        assert videos.sessions[0].videos == str(tmp_path.resolve())


class TestReportAssembly:
    def test_report_of_a_session(self, session, tmp_path):
        (tmp_path / "train").mkdir()
        (tmp_path / "train" / "metrics.csv").write_text(
            "epoch,step,train_loss,val_gt_mm\n1,10,1.0,300\n2,20,0.5,200\n3,30,0.2,120\n")
        pred = session.gt3d - session.gt3d[:, :1]
        metrics = {"cameras from people vs true": camera_tables([session]),
                   "pseudo-labels": label_tables([session])}
        inputs = report_inputs(DemoConfig(), [session], tmp_path / "train", {"walk": pred},
                               metrics)
        page = write_report(inputs, tmp_path / "report")
        pngs = set(re.findall(r"<img src='([^']+)'", page.read_text()))
        assert pngs == {"cameras.png", "reprojections.png", "reprojection_errors.png",
                        "skeletons.png", "training.png", "weight_vs_error.png"}
        for name in pngs:
            assert imread(tmp_path / "report" / name)[..., :3].std() > 0.02, name
        text = page.read_text()
        assert "walk" in text and "metric scale error (%)" in text
        assert "synthetic capture" in text

    def test_every_session_in_the_title_and_the_pictures(self, session, tmp_path):
        from dataclasses import replace
        (tmp_path / "train").mkdir()
        (tmp_path / "train" / "metrics.csv").write_text("epoch,step,train_loss\n1,10,1.0\n")
        clips = [replace(session, name=n) for n in ("clip_02_03", "clip_02_04", "clip_02_01")]
        inputs = report_inputs(DemoConfig(), clips, tmp_path / "train", {}, {})
        assert inputs.title == ("epiflow demo: 3 sessions (clip_02_03, clip_02_04, clip_02_01 "
                                "(held out))")
        page = write_report(inputs, tmp_path / "report")
        pngs = set(re.findall(r"<img src='([^']+)'", page.read_text()))
        for n in ("clip_02_03", "clip_02_04", "clip_02_01"):
            assert {f"cameras_{n}.png", f"skeletons_{n}.png", f"reprojections_{n}.png"} <= pngs


def test_cli_arguments():
    from epiflow.cli import build_parser
    args = build_parser().parse_args(["demo", "--quick", "--out", "x", "--num-cpus", "2"])
    assert args.quick and args.out == "x" and args.num_cpus == 2 and args.videos is None


@pytest.mark.parametrize("option, value, expected", [
    ("--epochs", "0", "an integer >= 1, got '0'"), ("--num-cpus", "-1", "an integer >= 0")])
def test_numbers_are_checked_when_parsed(tmp_path, capsys, option, value, expected):
    """``--epochs 0`` ran the whole demo and exited 0 with a report of an untrained model."""
    from epiflow.cli import main
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--quick", "--quiet", "--out", str(tmp_path / "D"), option, value])
    assert exit_.value.code == 2 and not (tmp_path / "D").exists()
    assert f"argument {option}: expected {expected}" in capsys.readouterr().err


def test_a_calibration_of_random_bytes_is_refused_before_any_work(tmp_path, capsys):
    """``--intrinsics`` of random bytes failed after 45 s of pipeline, exit 1, ``D/`` written;
    now it is read first: exit 2, the file named, nothing written."""
    from epiflow.cli import main
    (tmp_path / "vids").mkdir()
    cams = tmp_path / "cams.toml"
    cams.write_bytes(np.random.default_rng(5).bytes(300))
    for flag in ("--intrinsics", "--reference-cameras"):
        assert main(["demo", "--videos", str(tmp_path / "vids"), flag, str(cams), "--out",
                     str(tmp_path / "D"), "--quick", "--quiet"]) == 2
        assert f"{cams} is not a text file" in capsys.readouterr().err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["cams.toml", "vids"]


def test_videos_failing_at_calibrate_point_to_run_with_cameras():
    """``epiflow demo --videos`` on the two-person Pose2Sim take fails at calibrate (each camera
    follows one person, cam03 another) with advice to give cameras from a file, which the demo
    cannot take; the message now names the command that can."""
    failed = [{"session": "multi_person", "stage": "calibrate", "reason": "the person hardly moves"}]
    message = failure_message(DemoConfig(videos="two/videos"), failed)
    assert "multi_person at calibrate: the person hardly moves" in message
    assert "epiflow run --videos two/videos --cameras FILE" in message
    assert "detect.max_people=N" in message
    other = [{"session": "s", "stage": "detect", "reason": "no frames"}]
    assert "epiflow run" not in failure_message(DemoConfig(videos="v"), other)
    assert "epiflow run" not in failure_message(DemoConfig(), failed)   # synthetic: no videos


@pytest.mark.slow
@pytest.mark.ray
def test_quick_demo_end_to_end(tmp_path, monkeypatch, capsys):
    """The quick demo: a local Ray, cameras from people, labels, a lifter, the report; the
    cameras and labels it recovers are checked against the truth."""
    from epiflow.demo import run_demo
    result = run_demo(DemoConfig(out=str(tmp_path / "demo"), quick=True, num_cpus=2,
                                 progress=False))
    text = result.report.read_text()
    names = list(result.metrics["pseudo-labels"])
    assert len(names) == 2 and all(n in text.split("</h1>")[0] for n in names)  # the title
    for name in ("training.png", "weight_vs_error.png",
                 *(f"{stem}_{n}.png" for n in names for stem in ("cameras", "reprojections",
                                                                  "skeletons"))):
        assert f"src='{name}'" in text
        assert imread(result.report.parent / name)[..., :3].std() > 0.02, name
    times = result.seconds
    assert sum(v for k, v in times.items() if k != "total") == pytest.approx(times["total"],
                                                                               abs=1e-6)
    joints = result.metrics["MPJPE per joint (mm)"]
    mean = joints.pop("mean over joints")
    lifter_all = next(c for c in mean if c.endswith("all sessions"))
    overall = result.metrics["lifter trained on pseudo-labels, vs ground truth"]["all"]
    assert mean[lifter_all] == pytest.approx(overall["MPJPE (mm)"], rel=1e-6)
    assert np.mean([r[lifter_all] for r in joints.values()]) == pytest.approx(mean[lifter_all])
    comparison = result.metrics["models and baselines, vs ground truth"]
    assert len(comparison) == 3
    assert result.checkpoint.is_file()
    for clip, row in result.metrics["cameras from people vs true"].items():
        assert row["relative rotation, max (deg)"] < 2.0, clip
        assert row["metric scale error (%)"] < 10.0, clip
    for clip, row in result.metrics["pseudo-labels"].items():
        assert row["MPJPE vs truth, one similarity (mm)"] < 25.0, clip
    lifter = result.metrics["lifter trained on pseudo-labels, vs ground truth"]["all"]
    assert lifter["poses"] == 2 * 40 * 4 and lifter["MPJPE (mm)"] < 600.0  # 3 epochs only
    # the calibration verdict, as run and inspect give it: in the report and printed
    verdict = result.metrics["calibration verdict (95 % bounds)"]
    assert set(names) <= set(verdict) and "calibration verdict (95 % bounds)" in text
    for name in names:
        assert verdict[name]["verdict"] in ("GOOD", "DOUBTFUL", "FAILED")
        cams = [v for k, v in verdict.items() if k.startswith(f"{name}: ")]
        assert len(cams) == 4 and all(0 < c["rotation ± (deg)"] < 10 for c in cams), cams
    monkeypatch.setattr("epiflow.demo.run_demo", lambda cfg: result)
    from epiflow.cli import main
    assert main(["demo", "--quick", "--quiet", "--out", str(tmp_path / "again")]) == 0
    out = capsys.readouterr().out
    assert all(f"session {n}: calibration verdict: {verdict[n]['verdict']}" in out
               for n in names), out


def test_several_people_one_view_each_person_in_its_colour(tmp_path):
    """``demo --videos --max-people 2``: the store's people (one SessionArrays each) are one view
    of the session, labels (T, N, J, 3) and each person's 2D (T, C, N, J, 3), which the report
    draws one colour per person; the session is counted once in the camera table."""
    from epiflow.calibration.people import person_detections
    from epiflow.datasets.crowds import CrowdOptions, make_crowd
    from epiflow.report import make_figures
    crowd = make_crowd(CrowdOptions(n_people=2, n_cameras=3, n_frames=8), seed=0)
    people = [SessionArrays(name=f"two:p{n}", keypoints2d=person_detections(
        crowd.detections, crowd.slot_person, n), rig=crowd.rig, joint_set="h36m17",
        pseudo3d=crowd.truth[:, n], pseudo3d_weight=np.ones(crowd.truth.shape[:1] + (17,)),
        gt_rig=crowd.rig, session_id="two", person_id=n) for n in range(2)]
    assert pipeline_config(DemoConfig(videos=str(tmp_path), max_people=2),
                           tmp_path / "s.zarr").detect.max_people == 2
    assert list(camera_tables(people)) == ["two"]
    inputs = report_inputs(DemoConfig(), people, tmp_path, {}, {})
    (view,) = inputs.sessions
    assert view.pseudo3d.shape == (8, 2, 17, 3) and list(view.person_ids) == [0, 1]
    assert view.keypoints.data.shape == (8, 3, 2, 17, 3)
    assert "two 2 people, 3 cameras x 8 frames" in inputs.summary
    figures = [f.file for f in make_figures(replace_csv(inputs), tmp_path / "report")]
    assert "reprojections.png" in figures and "skeletons.png" in figures
    image = imread(tmp_path / "report" / "skeletons.png")[..., :3].reshape(-1, 3)
    colour = image[image.max(1) - image.min(1) > 0.3]                       # saturated pixels
    found, counts = np.unique(np.round(colour, 1), axis=0, return_counts=True)
    assert (counts >= 100).sum() >= 2, found[counts >= 100]      # one colour per person


def replace_csv(inputs):
    """The inputs without a training log (none was written here)."""
    from dataclasses import replace
    return replace(inputs, metrics_csv=None)


def test_max_people_needs_videos(tmp_path, capsys):
    from epiflow.cli import main
    assert main(["demo", "--max-people", "2", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "--max-people 2" in err and "--videos" in err and not (tmp_path / "d").exists()
