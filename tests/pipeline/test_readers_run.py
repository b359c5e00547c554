"""``epiflow run`` reads the caliscope csv and the Shelf folder as keypoint sessions, with the
cameras given in their own formats (caliscope config.toml, Shelf calibration.json): real data cut
to a few frames (tests/conftest.py small_real_inputs); labels land in the store and reproject onto
the 2D; skipped when the data is absent."""
from __future__ import annotations

import numpy as np

from epiflow.calibration.formats import load_rig
from epiflow.cli import main
from epiflow.store import PoseStore


def _run(ray_head, keypoints, cameras, out, session) -> int:
    return main(["run", "--keypoints", str(keypoints), "--cameras", str(cameras), "--out",
                 str(out), "--session", session, "--address", ray_head["address"], "--quiet"])


def test_caliscope_session(ray_head, shared_data, small_real_inputs, tmp_path, capsys):
    csv = small_real_inputs("caliscope", 40)
    config = shared_data / "caliscope_4cam" / "config.toml"
    out = tmp_path / "s.zarr"
    assert _run(ray_head, csv, config, out, "cs") == 0, capsys.readouterr().err
    s = PoseStore.open(str(out)).session("cs")
    assert s.is_complete and s.n_frames == 40
    assert s.camera_names == ["cam_0", "cam_1", "cam_2", "cam_3"]
    np.testing.assert_allclose(s.rig.K, load_rig(config).K)   # the cameras given, as given
    labels = s.labels()
    seen = np.isfinite(labels.pseudo3d).all(-1)
    assert seen.mean() > 0.4, seen.mean()
    assert np.nanmedian(np.where(seen, labels.reproj_error, np.nan)) < 10.0


def test_shelf_session(ray_head, small_real_inputs, tmp_path, capsys):
    shelf = small_real_inputs("shelf", 12)
    out = tmp_path / "s.zarr"
    assert _run(ray_head, shelf, shelf / "calibration.json", out, "shelf") == 0, \
        capsys.readouterr().err
    s = PoseStore.open(str(out)).session("shelf")
    assert s.is_complete and s.n_frames == 12 and s.camera_names == ["0", "1", "2", "3", "4"]
    labels = s.labels()
    frames_per_person = np.isfinite(labels.pseudo3d).all(-1).any(-1).sum(0)
    assert (frames_per_person >= 8).sum() >= 2, frames_per_person   # Shelf: 2-4 people
    assert np.nanmedian(labels.reproj_error) < 10.0
