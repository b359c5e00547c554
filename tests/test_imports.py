"""Imports flow one way: every module of the package is read with ``ast`` (imports at module level,
inside functions and under ``TYPE_CHECKING`` alike), and the test fails on an import cycle (the
cycle is printed), on an import against the layers, and on a private name imported from another
module. Nothing is imported, so a broken module cannot hide an edge.

The layers, lowest first (a module imports its own group and the groups listed for it)::

    bottom       skeleton, keypoints, naming, outputs, input_files, config, ray_setup (and
                 epiflow/__init__)
    calibration  cameras, calibration files, geometry            -> bottom
    datasets     readers of outside data, the synthetic capture   -> bottom, calibration
    store        the Zarr schema (store, store_lease)             -> bottom, calibration
    detection    2D detectors, video reading, person crops        -> bottom
    viz          drawing                                          -> bottom, calibration
    pipeline     the stages, Ray orchestration                    -> all of the above
    models       estimators, training, evaluation, prediction     -> all of the above but pipeline
    top          report, export, demo                             -> everything but cli
    cli          the commands                                     -> everything

``models`` imports ``pipeline`` at one documented entry point only (:data:`MODELS_TO_PIPELINE`): a
training recipe whose store is missing builds it by running the pipeline.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import epiflow

ROOT = Path(epiflow.__file__).parent

GROUPS = {
    "bottom": ("epiflow", "epiflow.skeleton", "epiflow.keypoints", "epiflow.naming",
               "epiflow.outputs", "epiflow.config", "epiflow.ray_setup",
               "epiflow.input_files"),
    "calibration": ("epiflow.calibration",),
    "datasets": ("epiflow.datasets",),
    "store": ("epiflow.store", "epiflow.store_lease"),
    "detection": ("epiflow.detection",),
    "viz": ("epiflow.viz",),
    "pipeline": ("epiflow.pipeline",),
    "models": ("epiflow.models",),
    "top": ("epiflow.report", "epiflow.export", "epiflow.demo"),
    "cli": ("epiflow.cli",),
}
BELOW_PIPELINE = {"bottom", "calibration", "datasets", "store", "detection", "viz"}
MAY_IMPORT = {
    "bottom": set(),
    "calibration": {"bottom"},
    "datasets": {"bottom", "calibration"},
    "store": {"bottom", "calibration"},
    "detection": {"bottom"},
    "viz": {"bottom", "calibration"},
    "pipeline": BELOW_PIPELINE,
    "models": BELOW_PIPELINE,
    "top": BELOW_PIPELINE | {"pipeline", "models"},
    "cli": set(GROUPS),
}
#: models -> pipeline: building a recipe's missing store with the pipeline (``run_config`` makes
#: the pipeline's RunConfig, ``ensure_store`` calls ``run_pipeline``); nothing else.
MODELS_TO_PIPELINE = {("epiflow.models.config", "epiflow.pipeline.config"),
                      ("epiflow.models.train", "epiflow.pipeline.orchestrate")}
#: modules kept as leaves: what, inside epiflow, each may import (CameraRig is imported by
#: everything; loading, saving and triangulating rigs live in the modules that own them).
LEAVES = {"epiflow.calibration.camera": {"epiflow.calibration.projection"}}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _group(module: str) -> str:
    best = max(((p, g) for g, prefixes in GROUPS.items() for p in prefixes
                if module == p or module.startswith(p + ".")), key=lambda pg: len(pg[0]),
               default=(None, None))
    if best[1] is None:
        raise AssertionError(f"{module} is in no layer of tests/test_imports.py: add it to GROUPS")
    return best[1]


def _imports(module: str) -> list[tuple[str, int, str | None]]:
    """(imported epiflow module, line, name taken from it or None) for every import in ``module``;
    ``from package import submodule`` counts as importing the submodule."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, None) for a in node.names
                      if a.name.split(".")[0] == "epiflow"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            if base.split(".")[0] != "epiflow":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.append((sub, node.lineno, None) if sub in MODULES else
                             (base, node.lineno, a.name))
    return found


def _private_attributes(module: str) -> list[str]:
    """``alias._name`` uses where ``alias`` is an epiflow module imported by ``module``."""
    tree = ast.parse(MODULES[module].read_text())
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update({a.asname: a.name for a in node.names
                            if a.asname and a.name in MODULES})
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("epiflow"):
            aliases.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names
                            if f"{node.module}.{a.name}" in MODULES})
    return [f"{module}:{n.lineno} uses {aliases[n.value.id]}.{n.attr}" for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id in aliases and n.attr.startswith("_") and not n.attr.startswith("__")
            and aliases[n.value.id] != module]


GRAPH = {m: sorted({t for t, _, _ in _imports(m) if t in MODULES and t != m}) for m in MODULES}


def find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """One cycle (as a closed path) per strongly connected component that has one (Tarjan)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(_path_within(graph, set(component), v))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def _path_within(graph, component: set[str], start: str) -> list[str]:
    """A closed path start -> ... -> start through ``component`` (breadth first)."""
    previous, queue = {start: None}, [start]
    while queue:
        v = queue.pop(0)
        for w in graph[v]:
            if w == start:
                path = [v]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return [start] + path[::-1][1:] + [start] if len(path) > 1 else [start, v, start]
            if w in component and w not in previous:
                previous[w] = v
                queue.append(w)
    raise AssertionError(f"no cycle through {start}")


def test_every_module_is_in_a_layer():
    assert len(MODULES) > 50
    for module in MODULES:
        _group(module)


def test_no_import_cycles():
    cycles = find_cycles(GRAPH)
    assert not cycles, "import cycles (one per group of modules that import each other):\n" + \
        "\n".join(" -> ".join(c) for c in cycles)


def test_imports_follow_the_layers():
    wrong = []
    for module in MODULES:
        mine = _group(module)
        for target, line, _ in _imports(module):
            theirs = _group(target if target in MODULES else target.rpartition(".")[0])
            if theirs == mine or theirs in MAY_IMPORT[mine]:
                continue
            if (module, target) in MODELS_TO_PIPELINE:
                continue
            wrong.append(f"{module}:{line} ({mine}) imports {target} ({theirs})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_leaves_stay_leaves():
    for leaf, allowed in LEAVES.items():
        inside = {t for t in GRAPH[leaf] if _group(t) != "bottom"}
        assert inside <= allowed, f"{leaf} imports {sorted(inside - allowed)}; it must stay a leaf"


def test_no_private_names_across_modules():
    found = [f"{m}:{line} imports {name} from {target}" for m in MODULES
             for target, line, name in _imports(m)
             if name and name.startswith("_") and not name.startswith("__") and target != m]
    found += [use for m in MODULES for use in _private_attributes(m)]
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_models_reach_the_pipeline_only_through_the_entry_point():
    edges = {(m, t) for m in MODULES if _group(m) == "models" for t in GRAPH[m]
             if _group(t) == "pipeline"}
    assert edges <= MODELS_TO_PIPELINE, sorted(edges - MODELS_TO_PIPELINE)


# -- the checker itself: it must see what it is meant to see ---------------------------------
def test_cycle_finder_reports_the_cycle():
    graph = {"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": []}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": ["b"], "b": []}) == []


def test_imports_inside_functions_and_type_checking_are_seen(tmp_path, monkeypatch):
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
              "    from epiflow.store import PoseStore\n"
              "def f():\n    from epiflow.pipeline.detect import person_crops\n"
              "    from epiflow.calibration import formats as F\n    return F._read_text\n")
    path = tmp_path / "probe.py"
    path.write_text(source)
    monkeypatch.setitem(MODULES, "epiflow.calibration.probe", path)
    found = {(t, name) for t, _, name in _imports("epiflow.calibration.probe")}
    assert {("epiflow.store", "PoseStore"), ("epiflow.pipeline.detect", "person_crops"),
            ("epiflow.calibration.formats", None)} <= found
    assert _private_attributes("epiflow.calibration.probe") == [
        "epiflow.calibration.probe:7 uses epiflow.calibration.formats._read_text"]


@pytest.mark.parametrize("module, target, ok", [
    ("epiflow.calibration.triangulation", "epiflow.keypoints", True),
    ("epiflow.calibration.from_people", "epiflow.datasets.openpose", False),
    ("epiflow.detection.detectors", "epiflow.pipeline.config", False),
    ("epiflow.viz", "epiflow.models.metrics", False),
    ("epiflow.models.predict", "epiflow.pipeline.detect", False),
    ("epiflow.pipeline.ingest", "epiflow.datasets.io", True),
])
def test_layer_rule_examples(module, target, ok):
    allowed = _group(target) == _group(module) or _group(target) in MAY_IMPORT[_group(module)]
    assert allowed == ok
