"""One road from the stages to the model: the pipeline writes the store, the trainer reads it.

Walks the package's source (function bodies included): no module outside ``store.py`` reads a
store group's raw attributes (``.attrs``; the session's typed readers say what they hold), and
no module outside ``store.py`` and ``pipeline/`` writes a session.
"""
from __future__ import annotations

import ast
from pathlib import Path

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
