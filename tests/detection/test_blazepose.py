"""BlazePose outside MediaPipe's one-person graph: anchors, decoding, NMS, crops, and the
multi-person detector on the real two-person Pose2Sim videos against MediaPipe's own."""
import numpy as np
import pytest

from epiflow.detection.blazepose import (Roi, box_iou, crop_matrix, crop_rois, decode_detections,
                                         detector_windows, roi_from_keypoints, ssd_anchors,
                                         weighted_nms)
from epiflow.detection.runtime import load_model
from epiflow.skeleton import BLAZEPOSE33


class TestAnchors:
    def test_count_and_centres(self):
        a = ssd_anchors()
        assert a.shape == (2254, 2)
        # stride 8: 28x28 cells x 2 anchors, stride 16: 14x14 x 2, stride 32 (3 layers): 7x7 x 6
        np.testing.assert_allclose(a[0], [0.5 / 28, 0.5 / 28], atol=1e-7)
        np.testing.assert_allclose(a[1], a[0])
        np.testing.assert_allclose(a[2], [1.5 / 28, 0.5 / 28], atol=1e-7)
        np.testing.assert_allclose(a[1567], [27.5 / 28, 27.5 / 28], atol=1e-7)
        np.testing.assert_allclose(a[1568], [0.5 / 14, 0.5 / 14], atol=1e-7)
        np.testing.assert_allclose(a[1960], [0.5 / 7, 0.5 / 7], atol=1e-7)
        np.testing.assert_allclose(a[-1], [6.5 / 7, 6.5 / 7], atol=1e-7)


class TestDecode:
    def test_one_anchor_gives_its_box_and_keypoints(self):
        anchors = ssd_anchors()
        raw = np.zeros((2254, 12), np.float32)
        scores = np.full(2254, -5.0, np.float32)
        k = 1000
        raw[k, :4] = [22.4, -11.2, 44.8, 22.4]          # +0.1, -0.05, w 0.2, h 0.1 of 224
        raw[k, 4:] = np.arange(8) * 2.24                 # keypoints at +0.00, +0.01, ... +0.07
        scores[k] = 2.0
        d = decode_detections(raw, scores, anchors, min_score=0.5)
        assert d.shape == (1, 13)
        cx, cy = anchors[k] + [0.1, -0.05]
        np.testing.assert_allclose(d[0, :4], [cx - 0.1, cy - 0.05, cx + 0.1, cy + 0.05], atol=1e-6)
        np.testing.assert_allclose(d[0, 4:12].reshape(4, 2),
                                   anchors[k] + np.arange(8).reshape(4, 2) * 0.01, atol=1e-6)
        assert d[0, 12] == pytest.approx(1 / (1 + np.exp(-2.0)), abs=1e-6)

    def test_scores_are_clipped_and_thresholded(self):
        anchors = ssd_anchors()
        scores = np.full((2254, 1), -1e4, np.float32)
        scores[[3, 7]] = [[1e4], [0.1]]                  # sigmoid(0.1) = 0.525
        d = decode_detections(np.zeros((2254, 12), np.float32), scores, anchors, min_score=0.55)
        assert len(d) == 1 and d[0, 12] == pytest.approx(1.0)
        with pytest.raises(ValueError, match=r"\(2254, 12\)"):
            decode_detections(np.zeros((10, 12)), np.zeros(10), anchors)


class TestNms:
    def test_overlapping_merge_weighted_separate_kept(self):
        def det(box, score):
            return np.r_[box, np.tile(box[:2], 4), score]
        dets = np.array([det([0.1, 0.1, 0.3, 0.3], 0.6), det([0.12, 0.1, 0.32, 0.3], 0.9),
                         det([0.6, 0.6, 0.8, 0.8], 0.7)], np.float32)
        assert box_iou(dets[:1, :4], dets[1:2, :4])[0, 0] > 0.3
        out = weighted_nms(dets, iou=0.3)
        assert out.shape == (2, 13)
        np.testing.assert_allclose(out[:, 12], [0.9, 0.7])   # best first, keeps the best score
        x0 = (0.1 * 0.6 + 0.12 * 0.9) / 1.5                  # score-weighted mean, not the best's
        np.testing.assert_allclose(out[0, [0, 4]], [x0, x0], atol=1e-6)
        np.testing.assert_allclose(out[1, :4], [0.6, 0.6, 0.8, 0.8], atol=1e-6)
        assert weighted_nms(np.zeros((0, 13), np.float32)).shape == (0, 13)


class TestCrops:
    def test_roi_points_from_hips_to_the_top(self):
        up = roi_from_keypoints(np.array([100.0, 200.0]), np.array([100.0, 100.0]))
        assert (up.cx, up.cy, up.side) == (100, 200, 250) and up.angle == pytest.approx(0)
        right = roi_from_keypoints(np.array([100.0, 200.0]), np.array([200.0, 200.0]))
        assert right.angle == pytest.approx(np.pi / 2)
        # the crop's top centre lies towards the top keypoint, 1.25x its distance
        for roi, top in ((up, [100, 75]), (right, [225, 200])):
            M = crop_matrix(roi, 256)
            np.testing.assert_allclose(M[:, :2] @ [128, 0] + M[:, 2], top, atol=1e-9)
            np.testing.assert_allclose(M[:, :2] @ [128, 128] + M[:, 2], [100, 200], atol=1e-9)

    def test_warp_and_projection_agree(self):
        frame = np.zeros((300, 400, 3), np.uint8)
        frame[100:103, 250:253] = 255                    # a spot centred at (251.5, 101.5)
        roi = Roi(220.0, 140.0, 200.0, np.radians(30))
        crop = crop_rois(frame, [roi], 256)[0, ..., 0]
        rows, cols = np.mgrid[:256, :256]
        q = np.array([(cols * crop).sum(), (rows * crop).sum()]) / crop.sum() + 0.5
        M = crop_matrix(roi, 256)
        np.testing.assert_allclose(M[:, :2] @ q + M[:, 2], [251.5, 101.5], atol=0.3)

    def test_portrait_frames_are_read_in_squares_too(self):
        np.testing.assert_array_equal(
            detector_windows(1920, 1088),
            [[0, 0, 1088, 1920], [0, 0, 1088, 1088], [0, 832, 1088, 1920]])
        np.testing.assert_array_equal(detector_windows(1080, 1200), [[0, 0, 1200, 1080]])
        assert detector_windows(100, 300)[1:, 2].tolist() == [100, 200, 300]


class TestRefine:
    def test_landmarks_move_to_the_heatmaps_weighted_mean(self):
        from epiflow.detection.blazepose import _refine_from_heatmap
        rng = np.random.default_rng(0)
        hm = np.full((64, 64, 4), -20.0)
        hm[10:13, 20:23, 0] = [[0, 1, 0], [1, 3, 2], [0, 1, 0]]     # blob, weights off-centre
        hm[0:2, 62:64, 1] = 4.0                                      # at the corner: window cut
        hm[:, :, 2] = rng.normal(-3, 0.1, (64, 64))                  # nothing above 0.5: stays
        xy = np.array([[21.5 / 64, 11.5 / 64], [63.2 / 64, 0.4 / 64], [0.5, 0.5], [1.2, 0.5]])
        out = _refine_from_heatmap(xy, hm)
        for j in (0, 1):                                             # reference: the 7x7 window
            r, c = int(xy[j, 1] * 64), int(xy[j, 0] * 64)
            rows, cols = np.mgrid[max(0, r - 3):min(64, r + 4), max(0, c - 3):min(64, c + 4)]
            p = 1 / (1 + np.exp(-hm[rows, cols, j]))
            np.testing.assert_allclose(out[j], [(cols * p).sum() / p.sum() / 64,
                                                (rows * p).sum() / p.sum() / 64], atol=1e-9)
        assert out[0, 0] > 20.9 / 64 and out[1, 0] > 62.4 / 64      # pulled towards the blob
        np.testing.assert_array_equal(out[2:], xy[2:])


def test_runtimes_say_what_is_available():
    with pytest.raises(NotImplementedError, match="not available.*DENSIFY.*runtime='torch'"):
        load_model("pose_detection", "onnx")
    with pytest.raises(ValueError, match="runtime must be one of"):
        load_model("pose_detection", "tensorrt")
    from epiflow.detection.tracking import MultiPersonPoseDetector
    with pytest.raises(ValueError, match="max_people"):
        MultiPersonPoseDetector(max_people=0)
    # one person: the whole frame only, MediaPipe's choice of person; several: squares too
    assert not MultiPersonPoseDetector(max_people=1).squares
    assert MultiPersonPoseDetector(max_people=2).squares


class TestTorchRuntime:
    """The .tflite graphs executed by PyTorch (the GPU-capable runtime), checked on the CPU."""

    def test_tf_same_padding_and_depth_to_space_order(self):
        import torch
        from epiflow.detection.tflite_torch import TorchModel, _tf_same_pad
        assert _tf_same_pad(256, 3, 2) == (0, 1) and _tf_same_pad(64, 3, 1) == (1, 1)
        assert _tf_same_pad(7, 5, 2, dilation=2) == (4, 4) and _tf_same_pad(7, 4, 1) == (1, 2)
        op = type("Op", (), {"inputs": [0], "options": {"BlockSize": 2}})()
        nhwc = torch.arange(8.0).reshape(1, 1, 1, 8)             # TF: channel (i*2 + j)*2 + c
        out = TorchModel._depth_to_space(None, op, {0: nhwc.permute(0, 3, 1, 2)})
        np.testing.assert_array_equal(out.permute(0, 2, 3, 1)[0, ..., 0], [[0, 2], [4, 6]])
        np.testing.assert_array_equal(out.permute(0, 2, 3, 1)[0, ..., 1], [[1, 3], [5, 7]])

    @pytest.mark.parametrize("name", ["pose_detection", "pose_landmark_full"])
    def test_outputs_equal_litert_and_batch_is_free(self, name):
        lite, torch_model = load_model(name), load_model(name, "torch")
        h = lite.input_shape[0]
        yy, xx = np.mgrid[:h, :h] / h                            # smooth shapes, not noise
        img = np.stack([xx, yy, ((xx - 0.5) ** 2 + (yy - 0.4) ** 2 < 0.05) * 1.0], -1)
        x = img[None].astype(np.float32) * (2 if name == "pose_detection" else 1)
        x -= 1 if name == "pose_detection" else 0
        ref, got = lite.run(x), torch_model.run(np.concatenate([x, x[:, ::-1]]))
        assert [r.shape[1:] for r in ref] == [g.shape[1:] for g in got]
        for r, g in zip(ref, got):
            assert len(g) == 2                                   # LiteRT's detector fixes B=1
            np.testing.assert_allclose(g[0], r[0], atol=2e-3 * max(1.0, np.abs(r).max()))
        flipped = lite.run(np.ascontiguousarray(x[:, ::-1]))
        np.testing.assert_allclose(got[0][1], flipped[0][0], atol=2e-3 * np.abs(flipped[0]).max())

    def test_device_needs_torch(self):
        with pytest.raises(ValueError, match="needs runtime='torch'"):
            load_model("pose_detection", "litert", device="cuda")
        import torch
        if not torch.cuda.is_available():
            with pytest.raises(ValueError, match="sees no CUDA GPU"):
                load_model("pose_detection", "torch", device="cuda")


# ---------------------------------------------------------------- on the real two-person videos
TORSO = [BLAZEPOSE33.index(j) for j in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]


@pytest.fixture(scope="module")
def two_person(shared_data):
    from epiflow.detection.detectors import MediaPipeDetector, read_frames
    from epiflow.detection.tracking import MultiPersonPoseDetector
    videos = shared_data / "pose2sim_demo" / "multi_person" / "videos"
    multi, single = MultiPersonPoseDetector(max_people=4, detect_every=5), MediaPipeDetector()
    out = {}
    for cam in ("cam01", "cam02", "cam03", "cam04"):
        frames = read_frames(videos / f"{cam}.mp4", 0, 10)
        multi.reset()
        out[cam] = (frames.shape[1:3], multi(frames), single(frames), multi.detector_runs)
        if cam == "cam01":
            one = MultiPersonPoseDetector(max_people=1)
            out["one"] = (one(frames), out[cam][2], one.detector_runs)
            torch_kp = MultiPersonPoseDetector(4, runtime="torch")(frames[:3])
            out["torch"] = (torch_kp, out[cam][1][:3])
    return out


def test_torch_runtime_finds_the_same_keypoints(two_person):
    got, ref = two_person["torch"]
    assert np.array_equal(np.isfinite(got), np.isfinite(ref))
    assert np.nanmax(np.abs(got[..., :2] - ref[..., :2])) < 1.0           # pixels


def test_one_person_is_mediapipes_person(two_person):
    """max_people=1 follows the person MediaPipe's solution follows, detecting only once."""
    kp, mp, detector_runs = two_person["one"]
    assert kp.shape == (10, 1, 33, 3) and detector_runs == 1
    err = np.median(np.linalg.norm(kp[:, 0, :, :2] - mp[..., :2], axis=-1), -1)
    assert np.median(err) < 25, err


@pytest.mark.parametrize("cam", ["cam01", "cam02", "cam03", "cam04"])
def test_two_people_found_and_mediapipes_person_among_them(two_person, cam):
    (h, w), kp, mp, detector_runs = two_person[cam]
    assert kp.shape == (10, 4, 33, 3) and kp.dtype == np.float32
    found = np.isfinite(kp[..., :2]).all((-1, -2))
    assert (found.sum(1) == 2).sum() >= 9, found.sum(1)
    assert np.all(kp[~found][..., 2] == 0)                       # empty slots: NaN, conf 0
    torso = kp[found][:, TORSO]
    assert np.all((torso[..., 0] >= 0) & (torso[..., 0] <= w) & (torso[..., 1] >= 0)
                  & (torso[..., 1] <= h))
    hips = np.where(found[..., None], kp[..., 23:25, :2].mean(-2), np.nan)
    two = found.sum(1) == 2
    gap = np.linalg.norm(np.diff(hips[two][found[two]].reshape(-1, 2, 2), axis=1), axis=-1)
    assert gap.min() > 100                                       # two people, not one twice
    dist = np.nan_to_num(np.linalg.norm(kp[..., :2] - mp[:, None, :, :2], axis=-1), nan=np.inf)
    err = np.median(dist, -1).min(1)                             # MediaPipe's person's best match
    assert np.median(err) < 25, err                              # pixels, in frames 1920 tall
    # crops are carried by the landmarks: the detector ran at frames 0 and 5 (+1 on a loss)
    assert detector_runs <= 3
