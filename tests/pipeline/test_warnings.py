"""``epiflow run`` and ``epiflow inspect`` print the warnings stored with each session (to stderr,
one line each): cameras matched by order, image sizes that differ from the calibration's, a camera
dropped from most labels."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from epiflow.calibration.formats import save_toml
from epiflow.cli import main
from epiflow.datasets.synthetic import Corruption, cmu_capture
from epiflow.keypoints import save_npz
from epiflow.store import PoseStore

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def flawed(tmp_path_factory):
    """Keypoints named north..west (the calibration: cam_01..), cam_01's images 8 rows shorter
    than calibrated, and the third camera's 2D off by 80 px (beyond the 20 px gate)."""
    root = tmp_path_factory.mktemp("flawed")
    cap = cmu_capture("02_01", corruption=Corruption(noise_px=2.0), seed=3)
    data = cap.keypoints.data.copy()
    data[:, 2, :, 0] += 80.0
    size = cap.keypoints.image_size.copy()
    size[0, 1] -= 8
    kp = replace(cap.keypoints, data=data, image_size=size,
                 camera_names=("north", "east", "south", "west"))
    save_npz(kp, root / "kp.npz")
    save_toml(cap.rig, root / "cameras.toml")
    return root, cap.rig


def test_run_and_inspect_print_the_stored_warnings(ray_head, flawed, tmp_path, capsys):
    root, rig = flawed
    out = str(tmp_path / "s.zarr")
    assert main(["run", "--keypoints", str(root / "kp.npz"), "--cameras",
                 str(root / "cameras.toml"), "--session", "take1", "--out", out,
                 "--quiet"]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    prefix = "epiflow run: warning: session take1: "
    assert len(lines) == 3 and all(line.startswith(prefix) for line in lines), lines
    assert "warning" not in captured.out
    assert "matched in order" in lines[0] and "rename the cameras" in lines[0]
    w, h = rig.sizes[0]
    assert lines[1].startswith(prefix + f"north: the calibration is for {w}x{h} images, the "
                                        f"keypoints' are {w}x{h - 8}")
    assert lines[2].startswith(prefix + "camera south: used in only")
    share = PoseStore.open(out).session("take1").attrs["labels"]["camera_share"]
    assert share["south"] < 0.3 and min(share["north"], share["east"], share["west"]) > 0.9
    assert f"{100 * share['south']:.0f}%" in lines[2]
    report = json.loads(Path(out + ".report.json").read_text())
    assert report["warnings"] == [line[len("epiflow run: warning: "):] for line in lines]

    assert main(["inspect", out, "--session", "take1"]) == 0
    captured = capsys.readouterr()
    again = captured.err.splitlines()
    assert again == [line.replace("epiflow run:", "epiflow inspect:") for line in lines]
    # the per-camera table shows each camera's share of the labels of joints it sees
    # (after the heading line: the verdict line above it starts with "session take1:" too)
    table = captured.out.split("\nsession take1:\n")[1].splitlines()
    assert table[0].split()[-3:] == ["used", "%", "*"]   # its footnote: the warning's measure
    assert any(r.startswith("* used %: of the labels of the joints the camera sees") and
               "'used in only' warnings" in r for r in table)
    row = next(r for r in table if r.startswith("south"))
    assert float(row.split()[-1]) == pytest.approx(100 * share["south"], abs=0.05)
