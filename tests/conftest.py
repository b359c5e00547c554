"""Shared test settings.

Real data (../shared/data, see its README) is found through one setting: the environment variable
``EPIFLOW_DATA``, defaulting to ``../shared/data`` beside the repository. Tests that need it take the
``shared_data`` fixture, which skips with the reason when the folder is absent.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EPIFLOW_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder; skips the test when it is absent."""
    if not (DATA / "README.md").is_file():
        pytest.skip(f"real test data not found at {DATA} (set EPIFLOW_DATA to its folder)")
    return DATA
