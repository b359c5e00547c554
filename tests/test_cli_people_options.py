"""``--max-people`` says what it does in each command: calibrate and run detect up to N people
in videos (run's is a shorthand for ``--set detect.max_people=N``), triangulate keeps the N most
confident of the people its keypoints hold; predict --keypoints reads any one-person input."""
from __future__ import annotations

import pytest

from epiflow.cli import build_parser
from epiflow.cli.run import config_from_args


def _help(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a.choices, dict)
               and command in a.choices)                          # the subcommands
    return " ".join(sub.choices[command].format_help().split())


def test_run_max_people_is_detect_max_people(tmp_path):
    parse = build_parser().parse_args
    args = parse(["run", "--videos", str(tmp_path), "--out", str(tmp_path / "s.zarr"),
                  "--max-people", "2"])
    assert config_from_args(args).detect.max_people == 2
    args = parse(["run", "--videos", str(tmp_path), "--out", str(tmp_path / "s.zarr")])
    assert config_from_args(args).detect.max_people == 1
    args = parse(["run", "--videos", str(tmp_path), "--out", str(tmp_path / "s.zarr"),
                  "--max-people", "2", "--set", "detect.max_people=3"])
    assert config_from_args(args).detect.max_people == 3      # the full form wins
    with pytest.raises(SystemExit):
        parse(["run", "--videos", str(tmp_path), "--max-people", "0"])


def test_help_says_what_each_max_people_does():
    assert "detect up to N" in _help("calibrate") and "detect up to N" in _help("run")
    assert "--set detect.max_people=N" in _help("run")
    triangulate = _help("triangulate")
    assert "keep the N most confident" in triangulate and "detects nothing" in triangulate
    predict = _help("predict")
    assert "OpenPose" in predict and "caliscope" in predict and "one person" in predict
