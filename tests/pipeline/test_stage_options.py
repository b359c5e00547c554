"""``[calibrate.people]`` and ``[triangulate.options]``: typed options checked when the config is
read (a typo exits 2 naming the key, before Ray starts), and the values given reach the
functions they configure."""
from __future__ import annotations

import inspect
from dataclasses import fields

import pytest

from epiflow.calibration import from_people, people_calibration, triangulation
from epiflow.calibration.from_people import CalibrationConfig
from epiflow.calibration.triangulation import TriangulationOptions
from epiflow.cli import main
from epiflow.config import ConfigError
from epiflow.pipeline.calibrate import calibrate_session, given_rig
from epiflow.pipeline.config import RunConfig, SessionConfig, SyntheticConfig, load_run_config
from epiflow.pipeline.ingest import ingest_session
from epiflow.pipeline.triangulate import triangulate_session
from epiflow.store import PoseStore


def _keyword_only(function) -> dict:
    return {n: p for n, p in inspect.signature(function).parameters.items()
            if p.kind is p.KEYWORD_ONLY}


class TestOptionsMatchTheFunctions:
    def test_triangulation_options_are_the_keyword_arguments(self):
        params = {**_keyword_only(triangulation.triangulate),
                  **_keyword_only(triangulation.triangulate_sequence)}
        del params["fps"]   # the session's own
        assert {f.name for f in fields(TriangulationOptions)} == set(params)
        for f in fields(TriangulationOptions):
            assert f.default == params[f.name].default, f.name
            assert str(f.type) == params[f.name].annotation or f.name in ("swap", "smooth"), f.name

    def test_calibration_options_are_the_function_argument(self):
        config = inspect.signature(from_people.calibrate_from_people).parameters["config"]
        assert config.annotation == "CalibrationConfig" and config.default == CalibrationConfig()
        assert RunConfig().calibrate.people == CalibrationConfig()


class TestCheckedWhenRead:
    @pytest.mark.parametrize("table, line, match", [
        ("calibrate.people", "min_confidance = 0.3",
         r"\['calibrate\.people\.min_confidance'\]; did you mean "
         r"'calibrate\.people\.min_confidence'.*accepted keys in calibrate\.people: \[.*'rounds'"),
        ("calibrate.people", "rounds = 2.5", r"'calibrate\.people\.rounds': expected int, got 2\.5"),
        ("calibrate.people", "min_confidence = 1.5",
         r"'calibrate\.people\.min_confidence': expected a number >= 0 and <= 1, got 1\.5"),
        ("calibrate.people", 'loss = "l2"', r"'calibrate\.people\.loss': expected one of \['huber'"),
        ("calibrate.people", 'refine_unknown = ["focus"]', r"calibrate\.people.*\['focus'\]"),
        ("triangulate.options", "gate_pxx = 30",
         r"\['triangulate\.options\.gate_pxx'\]; did you mean 'triangulate\.options\.gate_px'"),
        ("triangulate.options", "gate_px = 0", r"'triangulate\.options\.gate_px': expected a number > 0"),
        ("triangulate.options", 'smooth = "kalman"',
         r"'triangulate\.options\.smooth': expected one of \['butterworth', 'one_euro'\]"),
        ("triangulate.options", "fill_gaps = -1", r"'triangulate\.options\.fill_gaps'.*>= 0"),
        ("triangulate", "robust = false",
         r"\['triangulate\.robust'\]; did you mean 'triangulate\.options\.robust'"),
    ])
    def test_a_bad_key_or_value_names_the_key(self, tmp_path, table, line, match):
        path = tmp_path / "run.toml"
        path.write_text(f'out = "s.zarr"\n[{table}]\n{line}\n')
        with pytest.raises(ConfigError, match=match):
            load_run_config(path)

    def test_typo_in_file_and_in_set_exit_2_before_ray(self, tmp_path, capsys, monkeypatch):
        import ray

        def no_ray(*args, **kwargs):
            raise AssertionError("Ray was started for a config that fails its check")
        monkeypatch.setattr(ray, "init", no_ray)
        path = tmp_path / "run.toml"
        path.write_text(f'out = "{tmp_path / "s.zarr"}"\nsynthetic_sessions = 1\n'
                        '[calibrate.people]\nmin_confidance = 0.3\n')
        assert main(["run", str(path)]) == 2
        err = capsys.readouterr().err
        assert "run.toml" in err and "calibrate.people.min_confidance" in err
        assert "did you mean 'calibrate.people.min_confidence'" in err
        assert main(["run", "--synthetic", "1", "--out", str(tmp_path / "s.zarr"),
                     "--set", "triangulate.options.min_confidance=0.3"]) == 2
        err = capsys.readouterr().err
        assert "'triangulate.options.min_confidance'" in err and "'min_confidence'" in err
        assert main(["run", "--synthetic", "1", "--out", str(tmp_path / "s.zarr"),
                     "--set", "calibrate.people.min_confidence=-0.1"]) == 2
        assert ">= 0 and <= 1, got -0.1" in capsys.readouterr().err
        assert not (tmp_path / "s.zarr").exists()

    def test_calibrate_command_uses_the_same_checks(self, tmp_path, capsys):
        kp = tmp_path / "kp.npz"
        kp.write_bytes(b"")
        code = main(["calibrate", "--keypoints", str(kp), "--out", str(tmp_path / "c.toml"),
                     "--set", "min_confidence=2"])
        assert code == 2 and "'min_confidence': expected a number >= 0 and <= 1, got 2" in \
            capsys.readouterr().err
        assert not (tmp_path / "c.toml").exists()


@pytest.fixture
def synthetic_session(tmp_path):
    """A store with one ingested synthetic session (3 cameras, 30 frames; no Ray)."""
    url = str(tmp_path / "s.zarr")
    session = SessionConfig(name="syn", synthetic=SyntheticConfig(frames=30, n_cameras=3))
    ingest_session(url, session, RunConfig(out=url, sessions=(session,)))
    return PoseStore.open(url, "a").session("syn"), session


class TestValuesReachTheFunctions:
    def test_people_options(self, tmp_path, synthetic_session, monkeypatch):
        session, session_cfg = synthetic_session
        received = []

        def calibrate(keypoints, intrinsics=None, subject_height=None, config=None, **rest):
            received.append(config)
            raise RuntimeError("stop here")
        # the pipeline reaches it through people_calibration, which imported it by name (a
        # stand-in set on from_people alone was seen only when that module was imported later)
        monkeypatch.setattr(people_calibration, "calibrate_from_people", calibrate)
        monkeypatch.setattr(from_people, "calibrate_from_people", calibrate)
        path = tmp_path / "run.toml"
        path.write_text('out = "s.zarr"\n[calibrate]\nmethod = "people"\n'
                        '[calibrate.people]\nmin_confidence = 0.37\nrounds = 1\n'
                        'refine_unknown = ["focal", "k1"]\n')
        cfg = load_run_config(path)
        with pytest.raises(RuntimeError, match="stop here"):
            calibrate_session(session, session_cfg, cfg.calibrate)
        assert received == [CalibrationConfig(min_confidence=0.37, rounds=1,
                                              refine_unknown=("focal", "k1"))]

    def test_triangulation_options(self, tmp_path, synthetic_session, monkeypatch):
        session, session_cfg = synthetic_session
        session.write_rig(given_rig(session, session_cfg)[0], "given")
        received = []
        real = triangulation.triangulate_sequence

        def spy(*args, **kwargs):
            received.append(kwargs)
            return real(*args, **kwargs)
        monkeypatch.setattr(triangulation, "triangulate_sequence", spy)
        path = tmp_path / "run.toml"
        path.write_text('out = "s.zarr"\n[triangulate.options]\ngate_px = 12.5\nswap = "drop"\n'
                        'robust = false\nsmooth = "butterworth"\ncutoff_hz = 4\n')
        summary = triangulate_session(session, load_run_config(path).triangulate)
        (kwargs,) = received
        assert kwargs["gate_px"] == 12.5 and kwargs["swap"] == "drop"
        assert kwargs["robust"] is False and kwargs["smooth"] == "butterworth"
        assert kwargs["cutoff_hz"] == 4.0 and kwargs["fps"] == session.fps
        assert kwargs["refine"] is False and kwargs["weight_scale"] == 0.02   # defaults kept
        assert summary["labelled"] > 0.5
