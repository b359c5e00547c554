"""``epiflow run`` refuses bad input before starting Ray: exit code 2 and a message naming it."""
from __future__ import annotations

import json

import pytest

from epiflow.cli import build_parser, main
from epiflow.cli.run import config_from_args
from epiflow.store import SCHEMA_VERSION, PoseStore


def _run(capsys, *argv) -> tuple[int, str]:
    code = main(["run", *argv])
    return code, capsys.readouterr().err


def test_unknown_key_and_wrong_type(tmp_path, capsys):
    code, err = _run(capsys, "--videos", str(tmp_path), "--out", str(tmp_path / "s.zarr"),
                     "--set", "detect.chunk_frame=10")
    assert code == 2 and "unknown config key(s) ['detect.chunk_frame']" in err
    code, err = _run(capsys, "--videos", str(tmp_path), "--out", str(tmp_path / "s.zarr"),
                     "--set", "detect.chunk_frames=ten")
    assert code == 2 and "'detect.chunk_frames': expected int" in err


def test_store_of_another_schema_version(tmp_path, capsys):
    PoseStore.open(tmp_path / "old.zarr", "a")
    meta = tmp_path / "old.zarr" / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["epiflow"]["schema_version"] = SCHEMA_VERSION + 1
    meta.write_text(json.dumps(doc))
    code, err = _run(capsys, "--synthetic", "1", "--out", str(tmp_path / "old.zarr"))
    assert code == 2 and f"schema version {SCHEMA_VERSION + 1}" in err and "new --out" in err


def test_no_store_and_no_sessions(tmp_path, capsys):
    code, err = _run(capsys, "--synthetic", "1")
    assert code == 2 and "no output store" in err
    # nothing to run at all: one message with both forms (was "no output store", and after
    # --out was added, "the run has no sessions": two tries to learn what run needs)
    for args in ((), ("--out", str(tmp_path / "s.zarr"))):
        code, err = _run(capsys, *args)
        assert code == 2 and "nothing to run" in err, err
        assert "epiflow run configs/pose2sim_demo.toml" in err and "--videos DIR --out" in err
    assert not (tmp_path / "s.zarr").exists()


def test_short_form_builds_one_session(tmp_path):
    args = build_parser().parse_args(["run", "--videos", str(tmp_path / "take1" / "videos"),
                                      "--out", "s.zarr", "--session", "t1", "--address",
                                      "10.0.0.1:6379", "--set", "detect.pool_size=3"])
    cfg = config_from_args(args)
    assert [(s.name, s.kind) for s in cfg.sessions] == [("t1", "videos")]
    assert cfg.ray.address == "10.0.0.1:6379" and cfg.detect.pool_size == 3
    assert cfg.out.endswith("/s.zarr") and cfg.out.startswith("/")
    with pytest.raises(ValueError, match="--cameras, --board and --session describe a session"):
        config_from_args(build_parser().parse_args(["run", "--session", "x"]))
