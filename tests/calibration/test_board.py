"""Intrinsics from checkerboard images: boards rendered with a known camera (no data needed), and
a few of the Pose2Sim demo's real board images against its lab calibration."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from epiflow.calibration.board import calibrate_board, calibrate_board_folder, find_board
from epiflow.calibration.camera import CalibrationError
from epiflow.calibration.formats import load_toml

K_TRUE = np.array([[800.0, 0, 479.5], [0, 800.0, 359.5], [0, 0, 1]])
SIZE = (960, 720)


def render_boards(folder: Path, K=K_TRUE, n: int = 5, pattern=(4, 7), square: float = 0.06,
                  seed: int = 0) -> list[Path]:
    """``n`` PNG images of a checkerboard with ``pattern`` inner corners, tilted up to ±35° about
    two axes at 0.9-1.3 m from a distortion-free camera ``K``, drawn by warping a flat texture."""
    folder.mkdir(parents=True, exist_ok=True)
    px, cols, rows = 40, pattern[0] + 1, pattern[1] + 1  # texture pixels per square
    texture = np.full(((rows + 2) * px, (cols + 2) * px), 255, np.uint8)  # a white margin
    for r in range(rows):
        for c in range(cols):
            if (r + c) % 2 == 0:
                texture[(r + 1) * px:(r + 2) * px, (c + 1) * px:(c + 2) * px] = 0
    # texture pixel -> board plane (metres), the first inner corner at the origin
    to_board = np.array([[square / px, 0, -2 * square], [0, square / px, -2 * square], [0, 0, 1]])
    centre = np.array([(pattern[0] - 1) * square / 2, (pattern[1] - 1) * square / 2, 0])
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(n):
        R = Rotation.from_euler("xyz", rng.uniform(-35, 35, 3) * [1, 1, 0.3], degrees=True)
        R = R.as_matrix()
        t = [rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), rng.uniform(0.9, 1.3)] - R @ centre
        H = K @ np.column_stack([R[:, 0], R[:, 1], t]) @ to_board
        image = cv2.warpPerspective(texture, H, SIZE, flags=cv2.INTER_AREA, borderValue=128)
        paths.append(folder / f"board_{k:02d}.png")
        cv2.imwrite(str(paths[-1]), image)
    return paths


def _blank(path: Path, size=SIZE) -> Path:
    cv2.imwrite(str(path), np.full((size[1], size[0]), 128, np.uint8))
    return path


class TestRendered:
    def test_recovers_the_camera(self, tmp_path):
        paths = render_boards(tmp_path)
        res = calibrate_board(paths, name="synth")
        K = res.camera.K
        # focal 800.34 / 800.22 px, principal point 0.8 px off, RMS 0.05 px, measured
        np.testing.assert_allclose(K[[0, 1], [0, 1]], 800.0, rtol=0.002)
        np.testing.assert_allclose(K[:2, 2], K_TRUE[:2, 2], atol=2.0)
        assert np.abs(res.camera.dist[:2]).max() < 0.05  # no distortion drawn; 0.011 measured
        assert res.rms_px < 0.15 and max(res.per_image_px.values()) < 0.2
        assert sorted(res.per_image_px) == [p.name for p in paths] and res.rejected == ()
        assert res.camera.name == "synth" and res.camera.size == SIZE

    def test_searching_a_downscaled_copy_gives_the_same_corners(self, tmp_path):
        gray = cv2.imread(str(render_boards(tmp_path, n=1)[0]), cv2.IMREAD_GRAYSCALE)
        full, small = find_board(gray), find_board(gray, detect_side=400)
        assert full.shape == (28, 2)
        assert np.abs(full - small).max() < 0.1  # refined on the full image: 0.04 px apart

    def test_images_without_a_board_are_set_aside(self, tmp_path):
        paths = render_boards(tmp_path, n=3) + [_blank(tmp_path / "wall.png")]
        res = calibrate_board(paths)
        assert res.rejected == ("wall.png",) and "wall.png" not in res.per_image_px
        np.testing.assert_allclose(res.camera.K[0, 0], 800.0, rtol=0.005)  # 0.11 % off

    def test_too_few_boards(self, tmp_path):
        paths = render_boards(tmp_path, n=2) + [_blank(tmp_path / "a.png"),
                                                _blank(tmp_path / "b.png")]
        with pytest.raises(CalibrationError, match=r"cam7: a 4x7-corner board was found in 2 of 4 "
                                                   r"images; at least 3"):
            calibrate_board(paths, name="cam7")

    def test_images_of_different_sizes(self, tmp_path):
        paths = render_boards(tmp_path, n=3) + [_blank(tmp_path / "small.png", (640, 480))]
        with pytest.raises(CalibrationError, match=r"small.png is 640x480, earlier ones "
                                                   r"\(960, 720\)"):
            calibrate_board(paths)

    def test_folder_of_cameras_matched_by_name(self, tmp_path):
        K_b = K_TRUE.copy()
        K_b[0, 0] = K_b[1, 1] = 1100.0
        render_boards(tmp_path / "int_camB_img", K=K_b, n=4, seed=1)
        render_boards(tmp_path / "int_camA_img", n=4, seed=2)
        rig = calibrate_board_folder(tmp_path, ["camB", "camA"])
        assert rig.names == ["camB", "camA"]
        np.testing.assert_allclose(rig.K[:, 0, 0], [1100.0, 800.0], rtol=0.005)  # 0.14 %
        with pytest.raises(CalibrationError, match="cannot match board sub-folders"):
            calibrate_board_folder(tmp_path, ["camB", "camA", "camC"])
        with pytest.raises(FileNotFoundError, match="does not exist"):
            calibrate_board_folder(tmp_path / "nothing", ["camA"])


def test_pose2sim_board_images(shared_data):
    """Four of cam01's seven board images (4x7 inner corners, 60 mm squares, 1088x1920): RMS
    0.18 px and the focal length 0.45 % from the marker-based lab calibration's, measured."""
    root = shared_data / "pose2sim_demo" / "calibration"
    images = sorted((root / "intrinsics" / "int_cam01_img").glob("*.jpg"))[:4]
    assert len(images) == 4
    res = calibrate_board(images, pattern=(4, 7), square_size=0.06, name="cam01")
    lab = load_toml(root / "Calib_qualisys.toml")[0]
    assert res.camera.size == lab.size == (1088, 1920) and res.rejected == ()
    assert res.rms_px < 0.4
    f, f_lab = res.camera.K[[0, 1], [0, 1]].mean(), lab.K[[0, 1], [0, 1]].mean()
    assert abs(f / f_lab - 1) < 0.01
