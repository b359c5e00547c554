"""One road from the stages to the model: the pipeline writes the store, the trainer reads it.

Walks the package's source (function bodies included): no module outside ``store.py`` reads a
store group's raw attributes (``.attrs``; the session's typed readers say what they hold), and
no module outside ``store.py`` and ``pipeline/`` writes a session.
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "epiflow"
#: the store's writing methods: only the pipeline's stages call them
WRITERS = {"create_session", "write_unit", "write_all_units", "write_rig", "write_labels",
           "write_gt3d", "set_status", "mark_complete", "mark_failed", "record_failure",
           "update_attrs"}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _uses(path: Path, names: set[str]) -> list[str]:
    """``file:line name`` of every ``<expr>.name`` in the file (reads, calls, writes)."""
    tree = ast.parse(path.read_text(), str(path))
    return [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} .{node.attr}"
            for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr in names]


def test_the_walk_sees_the_package():
    names = {p.relative_to(PACKAGE).as_posix() for p in _modules()}
    assert {"store.py", "models/data.py", "pipeline/ingest.py", "cli/inspect.py"} <= names
    # the walk finds what it looks for: store.py itself reads and writes its attributes
    assert _uses(PACKAGE / "store.py", {"attrs"}) and _uses(PACKAGE / "store.py", WRITERS)


def test_no_module_outside_the_store_reads_raw_attributes():
    found = [u for p in _modules() if p.name != "store.py" or p.parent != PACKAGE
             for u in _uses(p, {"attrs"})]
    assert not found, ("raw store attributes read outside epiflow/store.py (give Session a typed "
                       f"reader instead): {found}")


def test_only_the_pipeline_writes_sessions():
    found = [u for p in _modules()
             if p != PACKAGE / "store.py" and PACKAGE / "pipeline" not in p.parents
             for u in _uses(p, WRITERS)]
    assert not found, f"sessions written outside epiflow/pipeline/: {found}"


def test_training_has_no_second_pipeline():
    assert not (PACKAGE / "models" / "sources.py").exists()


@pytest.mark.parametrize("recipe", sorted((PACKAGE.parent / "configs").glob("cmu_*.toml")))
def test_every_recipe_source_maps_onto_a_pipeline_run(recipe):
    """The recipes' ``[data.source]`` become ``epiflow run`` configs: a session per clip."""
    from epiflow.models.config import load_experiment, run_config
    cfg = load_experiment(recipe)
    run = run_config(cfg.data.source, cfg.data.store)
    assert [s.name for s in run.sessions] == list(cfg.data.source.clips)
    assert run.out == cfg.data.store and run.calibrate.method == "people"
    assert run.calibrate.intrinsics == "given" and run.triangulate.method == "multiview"
    syn = run.sessions[0].synthetic
    assert (syn.data_dir, syn.fps, syn.radius, syn.focal_px, syn.noise_px) == (
        cfg.data.source.data_dir, 30.0, 5.0, 1200.0, 2.0)


def _synthetic_run(out, frames: int = 12, **calibrate):
    from epiflow.pipeline.config import (CalibrateConfig, RunConfig, SessionConfig,
                                         SyntheticConfig)
    return RunConfig(out=str(out), calibrate=CalibrateConfig(**calibrate),
                     sessions=(SessionConfig(name="syn", synthetic=SyntheticConfig(
                         clip="02_04", frames=frames, seed=1)),))


def test_typed_readers_of_a_pipeline_session(tmp_path):
    from epiflow.pipeline.orchestrate import run_pipeline
    from epiflow.store import PoseStore, StoreError
    report = run_pipeline(_synthetic_run(tmp_path / "s.zarr", method="given"), progress=False,
                          in_process=True)
    assert report.sessions["syn"]["status"] == "complete" and report.ray["address"] == "in-process"
    store = PoseStore.open(tmp_path / "s.zarr", "a")
    s = store.session("syn")
    assert s.has_cameras and s.has_labels and s.fps == 30.0 and s.n_frames == 12
    assert s.source["kind"] == "synthetic" and s.calibration["method"] == "given"
    assert (s.image_size == s.rig.sizes).all() and s.image_size.shape == (4, 2)
    labels = s.labels()
    assert labels.pseudo3d.shape == (12, 1, 17, 3) and labels.views.shape == (12, 1, 4, 17)
    assert labels.person_ids.tolist() == [0] and labels.person(0).pseudo3d.shape == (12, 17, 3)
    seen = labels.weight > 0
    assert seen.mean() > 0.9 and np.isfinite(labels.reproj_error[seen]).all()
    assert np.nanmedian(labels.reproj_error) < 5.0 and s.label_summary["labelled"] > 0.9
    truth = s.ground_truth()
    assert truth.frame == "gt_cameras" and truth.rig.names == s.rig.names
    assert np.nanmedian(np.linalg.norm(labels.pseudo3d - truth.points, axis=-1)) < 0.03
    bare = store.create_session("bare", n_frames=5, camera_names=["a", "b"], joint_set="h36m17",
                                image_size=[[640, 480]] * 2, fps=None, chunk_frames=5)
    assert not bare.has_labels and not bare.has_cameras
    assert bare.ground_truth() is None and bare.gt_rig is None and bare.source == {}
    with pytest.raises(StoreError, match="no pseudo-labels.*'pending'.*epiflow run"):
        bare.labels()


def test_in_process_refuses_detection_before_writing(tmp_path):
    from epiflow.config import ConfigError
    from epiflow.pipeline.config import RunConfig, SessionConfig
    from epiflow.pipeline.orchestrate import run_pipeline
    (tmp_path / "videos").mkdir()
    cfg = RunConfig(out=str(tmp_path / "s.zarr"),
                    sessions=(SessionConfig(name="take", videos=str(tmp_path / "videos")),))
    with pytest.raises(ConfigError, match=r"take \(videos\) need 2D detection.*Ray"):
        run_pipeline(cfg, progress=False, in_process=True)
    assert not (tmp_path / "s.zarr").exists()


def test_a_recipe_store_is_the_pipeline_s_and_resumes(tmp_path):
    """The store a recipe builds is the store `epiflow run` writes for the same sessions (one
    fingerprint), so either finishes what the other started."""
    from epiflow.models.config import SourceConfig, run_config
    from epiflow.pipeline.orchestrate import run_pipeline
    from epiflow.store import PoseStore
    source = SourceConfig(kind="cmu_synthetic", clips=("02_04",), seed=1, cameras="true")
    run = run_config(source, str(tmp_path / "s.zarr"))
    first = run_pipeline(run, progress=False, in_process=True)
    assert first.sessions["02_04"]["status"] == "complete"
    again = run_pipeline(run, progress=False, in_process=True)
    assert again.sessions["02_04"]["status"] == "already complete"
    assert PoseStore.open(tmp_path / "s.zarr").session("02_04").is_complete


def test_a_recipe_refuses_a_store_of_other_settings(tmp_path):
    """A store whose sessions were written from another [data.source] is not trained on as if
    it were the recipe's: the error names the session, the reason and what to do."""
    from dataclasses import replace

    from epiflow.models.config import DataConfig, ExperimentConfig, SourceConfig, TrainConfig
    from epiflow.models.train import ensure_store
    source = SourceConfig(kind="cmu_synthetic", clips=("02_04",), seed=1, cameras="true")
    cfg = ExperimentConfig(data=DataConfig(store=str(tmp_path / "s.zarr"), source=source),
                           train=TrainConfig(progress=False))
    ensure_store(cfg)
    other = replace(cfg, data=replace(cfg.data, source=replace(source, noise_px=1.0)))
    with pytest.raises(RuntimeError, match=r"02_04 at ingest: .*other settings.*delete it or "
                                           r"name another data.store"):
        ensure_store(other)
