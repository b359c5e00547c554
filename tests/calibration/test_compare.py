"""Gauge-free comparison of two rigs (epiflow.calibration.compare) and ``epiflow compare-cameras``:
a rig against itself moved by a similarity compares as equal, one camera turned by 2 degrees shows
2 degrees on exactly its pairs, a focal 3 % longer shows 3 %, names are matched by the one rule,
the lab's two files of the Pose2Sim demo agree, and bad inputs exit 2 naming the argument."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from epiflow.calibration.camera import CalibrationError, CameraRig
from epiflow.calibration.compare import compare_rigs, matched_cameras
from epiflow.calibration.formats import load_rig, save_toml
from epiflow.cli import main
from epiflow.datasets.synthetic import make_rig


def _turned(rig: CameraRig, index: int, degrees: float, axis: str = "x") -> CameraRig:
    """``rig`` with camera ``index`` turned about its own ``axis`` by ``degrees``, same centre."""
    cam = rig[index]
    R = Rotation.from_euler(axis, degrees, degrees=True).as_matrix() @ cam.R
    cams = list(rig)
    cams[index] = cam.replace(R=R, t=-R @ cam.center)
    return CameraRig(cams)


@pytest.fixture(scope="module")
def rig() -> CameraRig:
    return make_rig(5, layout="random", seed=4)


def test_a_similarity_of_the_world_changes_nothing_but_the_scale(rig):
    R = Rotation.from_euler("zyx", [35, -20, 70], degrees=True).as_matrix()
    moved = rig.transformed(scale=2.5, R=R, t=np.array([3.0, -1.0, 0.4]))
    c = compare_rigs(moved, rig)
    s = c["summary"]
    assert s["rotation_deg_max"] < 1e-9 and s["baseline_deg_max"] < 1e-9
    assert s["distance_scaled_pct_max_abs"] < 1e-9 and s["position_diff_max"] < 1e-9
    assert s["focal_pct_max_abs"] == 0
    # as given, every distance is 2.5 times B's: the scale is reported, not hidden
    np.testing.assert_allclose([p["distance_ratio"] for p in c["pairs"]], 2.5, rtol=1e-12)
    assert c["scale"] == pytest.approx(1 / 2.5)
    assert len(c["pairs"]) == 10 and c["unmatched_a"] == c["unmatched_b"] == []


def test_one_camera_turned_by_2_degrees_shows_on_its_pairs_only(rig):
    c = compare_rigs(_turned(rig, 2, 2.0), rig)
    for p in c["pairs"]:
        involved = "cam_03" in p["cameras"]
        assert p["rotation_deg"] == pytest.approx(2.0 if involved else 0.0, abs=1e-6), p
        # the baseline t_ij is in camera j's frame: it turns with camera j only
        assert p["baseline_deg"] <= (2.0 + 1e-6 if p["cameras"][1] == "cam_03" else 1e-6), p
        assert abs(p["distance_scaled_pct"]) < 1e-9 and p["distance_ratio"] == pytest.approx(1)
    turned = [p["baseline_deg"] for p in c["pairs"] if p["cameras"][1] == "cam_03"]
    assert max(turned) > 0.5  # the turn shows on the baselines seen from camera 3
    assert c["summary"]["rotation_deg_median"] == pytest.approx(0.0, abs=1e-6)
    assert c["summary"]["rotation_deg_max"] == pytest.approx(2.0, abs=1e-6)


def test_focal_and_a_moved_camera(rig):
    cams = list(rig)
    K = cams[1].K.copy()
    K[:2, :2] *= 1.03
    cams[1] = cams[1].replace(K=K)
    centre = cams[4].center + [0.4, 0.0, 0.0]
    cams[4] = cams[4].replace(t=-cams[4].R @ centre)
    c = compare_rigs(CameraRig(cams), rig)
    np.testing.assert_allclose([x["focal_pct"] for x in c["per_camera"]], [0, 3, 0, 0, 0],
                               atol=1e-9)
    moved = [p for p in c["pairs"] if "cam_05" in p["cameras"]]
    assert all(abs(p["distance_ratio"] - 1) > 1e-3 for p in moved)
    assert all(p["distance_ratio"] == pytest.approx(1) for p in c["pairs"] if p not in moved)
    assert np.argmax([x["position_diff"] for x in c["per_camera"]]) == 4


def test_cameras_are_matched_by_name_and_the_rest_named(rig):
    other = CameraRig(c.replace(name=f"Cam{i + 1}") for i, c in enumerate(rig))  # cam_01 = Cam1
    reordered = other.subset(["Cam4", "Cam2", "Cam1", "Cam3"])  # cam_05 left out, order changed
    c = compare_rigs(rig, reordered)
    assert c["cameras"] == [["cam_01", "Cam1"], ["cam_02", "Cam2"], ["cam_03", "Cam3"],
                            ["cam_04", "Cam4"]]
    assert c["unmatched_a"] == ["cam_05"] and c["unmatched_b"] == []
    assert c["summary"]["rotation_deg_max"] < 1e-9 and c["warnings"] == []
    assert matched_cameras(["a", "cam_01"], ["CAM-1", "b"]) == (["cam_01"], ["CAM-1"])


def test_no_common_name_same_count_is_in_order_with_a_warning(rig):
    other = CameraRig(c.replace(name=str(i)) for i, c in enumerate(rig))
    c = compare_rigs(rig, other, "a.toml", "b.json")
    assert [b for _, b in c["cameras"]] == ["0", "1", "2", "3", "4"]
    assert len(c["warnings"]) == 1 and "matched in order" in c["warnings"][0]
    with pytest.raises(CalibrationError, match=r"0 camera\(s\) in common.*a\.toml.*b\.json"):
        compare_rigs(rig, other.subset(["0", "1", "2"]), "a.toml", "b.json")


def test_the_lab_files_of_the_demo_agree(shared_data):
    calib = shared_data / "pose2sim_demo" / "calibration"
    c = compare_rigs(load_rig(calib / "Calib_qualisys.toml"), load_rig(calib / "Calib.qca.txt"))
    s = c["summary"]
    assert len(c["cameras"]) == 4 and s["rotation_deg_max"] < 1e-9
    assert s["baseline_deg_max"] < 1e-9 and s["distance_scaled_pct_max_abs"] < 1e-9
    assert s["focal_pct_max_abs"] < 1e-9 and abs(s["distance_ratio_median"] - 1) < 1e-9
    # and a camera turned by 2 degrees in one of them is seen
    turned = compare_rigs(_turned(load_rig(calib / "Calib_qualisys.toml"), 0, 2.0, "y"),
                          load_rig(calib / "Calib.qca.txt"))
    assert turned["summary"]["rotation_deg_max"] == pytest.approx(2.0, abs=1e-6)


class TestCommand:
    def test_text_and_json(self, rig, tmp_path, capsys):
        save_toml(rig, tmp_path / "ref.toml")
        save_toml(_turned(rig, 0, 2.0).transformed(scale=0.5), tmp_path / "est.toml")
        assert main(["compare-cameras", str(tmp_path / "est.toml"),
                     str(tmp_path / "ref.toml")]) == 0
        out = capsys.readouterr().out
        row = next(x for x in out.splitlines() if x.startswith("cam_01 - cam_02 "))
        rot, base, d_a, d_b, ratio, scaled = map(float, row.split()[3:])
        assert rot == pytest.approx(2.0, abs=1e-3) and ratio == pytest.approx(0.5, abs=1e-4)
        assert d_a == pytest.approx(d_b / 2, abs=2e-3) and abs(scaled) < 0.01
        assert "relative rotations: median" in out and "B = 2.0000 x A" in out
        assert main(["compare-cameras", str(tmp_path / "est.toml"), str(tmp_path / "ref.toml"),
                     "--json"]) == 0
        c = json.loads(capsys.readouterr().out)
        assert c["summary"]["rotation_deg_max"] == pytest.approx(2.0, abs=1e-6)
        assert c["scale"] == pytest.approx(2.0)

    def test_any_calibration_format(self, shared_data, capsys):
        calib = shared_data / "pose2sim_demo" / "calibration"
        assert main(["compare-cameras", str(calib / "Calib.qca.txt"),
                     str(calib / "Calib_qualisys.toml"), "--json"]) == 0
        c = json.loads(capsys.readouterr().out)
        assert c["cameras"][0] == ["cam01", "cam_01"] and c["summary"]["rotation_deg_max"] < 1e-9
        shelf = shared_data / "shelf" / "calibration.json"
        assert main(["compare-cameras", str(shelf), str(shelf)]) == 0
        assert "5 cameras in common" in capsys.readouterr().out

    @pytest.mark.parametrize("case", ["missing", "unknown format", "no common cameras"])
    def test_bad_inputs_exit_2_naming_the_file(self, case, rig, tmp_path, capsys):
        save_toml(rig, tmp_path / "a.toml")
        b = tmp_path / {"missing": "absent.toml", "unknown format": "b.yaml",
                        "no common cameras": "b.toml"}[case]
        if case == "unknown format":
            b.write_text("cameras: []\n")
        if case == "no common cameras":
            save_toml(CameraRig(c.replace(name=f"x{i}") for i, c in enumerate(list(rig)[:3])), b)
        assert main(["compare-cameras", str(tmp_path / "a.toml"), str(b)]) == 2
        err = capsys.readouterr().err
        assert str(b) in err and "Traceback" not in err
        expected = {"missing": ["argument B", "does not exist"],
                    "unknown format": ["argument B", "unknown calibration format", "accepted"],
                    "no common cameras": ["0 camera(s) in common", "rename"]}[case]
        assert all(w in err for w in expected), err
