"""A command's warnings: epiflow's own (UserWarning from its code) are one line
``epiflow COMMAND: warning: text``, without Python's file:line and source line; other warnings
(a library's) are printed as Python prints them."""
import warnings
from pathlib import Path

import epiflow
import epiflow.cli.inspect
from epiflow.cli import main

DATA_PY = str(Path(epiflow.__file__).parent / "models" / "data.py")


def _command_warning(monkeypatch, filename: str, category=UserWarning):
    def run(args):
        warnings.warn_explicit("s.zarr: left out 1 session(s) without cameras: broken",
                               category, filename, 172)
        return 0
    monkeypatch.setattr(epiflow.cli.inspect, "run", run)


def test_epiflow_user_warning_is_one_line_of_the_command(monkeypatch, capsys):
    _command_warning(monkeypatch, DATA_PY)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["inspect", "s.zarr"]) == 0
    err = capsys.readouterr().err
    assert err == ("epiflow inspect: warning: s.zarr: left out 1 session(s) without cameras: "
                   "broken\n")


def test_other_warnings_are_passed_on_unchanged(monkeypatch, capsys):
    import pytest
    _command_warning(monkeypatch, "/somewhere/numpy/lib/nanfunctions.py", RuntimeWarning)
    with pytest.warns(RuntimeWarning, match="left out") as caught:  # as Python shows them
        assert main(["inspect", "s.zarr"]) == 0
    assert caught[0].filename.endswith("nanfunctions.py") and caught[0].lineno == 172
    assert "epiflow inspect: warning" not in capsys.readouterr().err
