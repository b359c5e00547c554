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


@pytest.fixture
def small_real_inputs(shared_data, tmp_path):
    """Cut copies of real keypoint inputs, for commands to read in seconds:
    ``small_real_inputs("caliscope", T)`` the caliscope session's ``xy_HOLISTIC.csv`` with its
    first T sync indices (alone in a folder: no config.toml above it), and
    ``small_real_inputs("shelf", T)`` a Shelf folder with the first T frames of each detection
    file (format in epiflow.datasets.shelf) and its calibration.json."""
    import shutil

    def cut(kind: str, frames: int) -> Path:
        if kind == "caliscope":
            src = shared_data / "caliscope_4cam/recordings/recording_1/HOLISTIC/xy_HOLISTIC.csv"
            lines = src.read_text().splitlines()
            dst = tmp_path / f"caliscope_{frames}" / "xy_HOLISTIC.csv"
            dst.parent.mkdir()
            dst.write_text("\n".join([lines[0]] + [x for x in lines[1:]
                                                   if int(x.split(",", 1)[0]) < frames]) + "\n")
            return dst
        from epiflow.datasets.shelf import PAF_PAIRS
        src, dst = shared_data / "shelf", tmp_path / f"shelf_{frames}"
        (dst / "detection").mkdir(parents=True)
        shutil.copy(src / "calibration.json", dst)
        for path in sorted((src / "detection").glob("*.txt")):
            tokens = path.read_text().split()
            pos = 2
            for _ in range(frames):
                counts = []
                for _ in range(25):  # BODY_25 joints: a count, then x, y, score rows
                    counts.append(int(float(tokens[pos])))
                    pos += 1 + 3 * counts[-1]
                pos += sum(counts[a] * counts[b] for a, b in PAF_PAIRS)
            (dst / "detection" / path.name).write_text(" ".join([tokens[0], str(frames),
                                                                 *tokens[2:pos]]))
        return dst
    return cut
