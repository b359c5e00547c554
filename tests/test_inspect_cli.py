"""``epiflow inspect --session``: an id the store lacks is refused before anything is printed."""
from __future__ import annotations

import pytest

from epiflow.cli import main
from epiflow.store import PoseStore


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_unknown_session_refused_before_any_output(tmp_path, capsys, json_flag):
    """Was: the store's table (or, with --json, the whole JSON and exit 0) printed, then a
    'session cam01:' heading, then the error: half a report on stdout before exit 2."""
    PoseStore.open(tmp_path / "S.zarr", "a")
    code = main(["inspect", str(tmp_path / "S.zarr"), "--session", "cam01", *json_flag])
    out, err = capsys.readouterr()
    assert code == 2 and out == "", out
    assert "no session 'cam01'" in err and "S.zarr" in err, err
