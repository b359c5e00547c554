"""The one camera-name rule (calibration/camera.py): exact, then ignoring case, then ignoring
case, separators and leading zeros; ambiguity and misses are errors that list the cameras; in
order only when asked, when no name matches and the counts agree."""
from __future__ import annotations

import numpy as np
import pytest

from epiflow.calibration.camera import (CalibrationError, CameraRig, match_camera_names,
                                        match_rig)
from epiflow.datasets.synthetic import make_rig


def _rig(*names: str) -> CameraRig:
    base = make_rig(len(names), seed=3)
    return CameraRig(c.replace(name=n) for c, n in zip(base, names))


class TestRule:
    @pytest.mark.parametrize("name", ["cam1", "cam_01", "Cam01", "CAM-1", "cam 001", "cam.1"])
    def test_loose_names_match_the_same_camera(self, name):
        assert match_camera_names([name], ["cam_02", "cam_01", "cam_10"]) == [1]

    def test_exact_before_case_before_loose(self):
        available = ["cam01", "CAM1", "cam1"]
        assert match_camera_names(["cam1"], available) == [2]      # exact wins
        assert match_camera_names(["Cam1"], ["cam01", "CAM1"]) == [1]  # then ignoring case

    def test_numbers_are_not_confused(self):
        available = ["cam_1", "cam_10", "cam_100"]
        assert match_camera_names(["cam100", "cam010", "CAM-1"], available) == [2, 1, 0]
        with pytest.raises(CalibrationError, match=r"no camera for \['cam11'\]"):
            match_camera_names(["cam11"], available)

    def test_ambiguous_lists_the_candidates(self):
        with pytest.raises(CalibrationError, match=r"'cam1' is ambiguous, it matches "
                                                   r"\['cam_1', 'cam01'\]"):
            match_camera_names(["cam1"], ["cam_1", "cam01", "cam2"])

    def test_misses_name_the_file_all_missing_and_the_cameras(self):
        with pytest.raises(CalibrationError, match=r"lab.toml: no camera for \['side', 'top'\] "
                                                   r"among \['cam_01', 'cam_02'\]"):
            match_camera_names(["cam1", "side", "top"], ["cam_01", "cam_02"], "lab.toml")

    def test_two_names_for_one_camera(self):
        with pytest.raises(CalibrationError, match=r"\['cam_01'\] are each matched by several"):
            match_camera_names(["cam1", "CAM_01"], ["cam_01", "cam_02"])


class TestMatchRig:
    def test_ordered_and_renamed_as_asked(self):
        rig = _rig("cam_01", "cam_02", "cam_03")
        matched, warnings = match_rig(rig, ["Cam3", "cam1"])
        assert matched.names == ["Cam3", "cam1"] and warnings == []
        np.testing.assert_array_equal(matched.K, rig.K[[2, 0]])
        np.testing.assert_array_equal(matched.t, rig.t[[2, 0]])

    def test_in_order_only_when_asked_and_nothing_matches(self):
        rig = _rig("cam_01", "cam_02")
        with pytest.raises(CalibrationError, match=r"no camera for \['left', 'right'\]"):
            match_rig(rig, ["left", "right"])
        matched, warnings = match_rig(rig, ["left", "right"], "lab.toml", by_order=True)
        assert matched.names == ["left", "right"]
        np.testing.assert_array_equal(matched.K, rig.K)
        assert len(warnings) == 1 and warnings[0].startswith("lab.toml cameras ['cam_01', "
                                                             "'cam_02'] match none")
        assert "matched in order" in warnings[0] and "rename the cameras" in warnings[0]

    def test_never_in_order_when_one_name_matches_or_counts_differ(self):
        rig = _rig("cam_01", "cam_02")
        with pytest.raises(CalibrationError, match=r"no camera for \['right'\]"):
            match_rig(rig, ["cam1", "right"], by_order=True)
        with pytest.raises(CalibrationError, match=r"no camera for \['a', 'b', 'c'\]"):
            match_rig(rig, ["a", "b", "c"], by_order=True)
