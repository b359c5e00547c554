"""Monocular 3D pose for one camera's footage: 2D keypoints (or a video, detected with MediaPipe)
in, ``points3d (T, J, 3)`` out, root-relative metres in that camera's frame, canonical joints.

Without a calibration the camera is taken as an undistorted pinhole with its principal point at
the image centre and a focal length of the larger image side (about a 53° field of view); the
lifters' input is scale-normalised, so the focal length only changes the direction the person
is seen from, a small effect. Give ``calibration`` (a camera TOML) for the exact camera.

By default the prediction is adapted to the footage's own 2D (:mod:`epiflow.models.adapt`: the
detector's left/right swaps undone, the person's position aligned to the training data's, then
test-time optimisation weighted by the model's per-joint uncertainty); ``adapt=False`` gives the
model's plain prediction.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from epiflow.calibration.camera import CalibrationError, Camera, CameraRig, match_camera_names
from epiflow.models.adapt import AdaptConfig, adapt_sequence, model_frame, run_windows
from epiflow.models.checkpoint import (Checkpoint, check_input, load_checkpoint,
                                       load_model)
from epiflow.models.data import normalize_keypoints
from epiflow.models.level import level_note, level_rotation, scene_up, upright_up
from epiflow.models.lifters import frame_stride
from epiflow.outputs import atomic_open
from epiflow.skeleton import get_joint_set, map_to_h36m

__all__ = ["Prediction", "default_camera", "lift_sequence", "training_stride", "check_sequence",
           "predict_keypoints", "keypoints_up",
           "predict_npz", "predict_video", "save_prediction"]


@dataclass(frozen=True, eq=False)
class Prediction:
    """A predicted sequence: ``points3d (T, J, 3)`` root-relative metres in ``camera``'s frame
    (NaN where the 2D root was not seen), ``joint_set``, ``fps`` (or None), ``warnings`` for
    the user (a calibration made for a slightly different image size), ``notes`` (where the
    scene's vertical came from), ``up`` (3,): the vertical in the camera's frame that a model
    of level cameras used (None for other models), and ``uncertainty`` (T, J): the model's
    per-joint uncertainty, metres (the spread of its Monte-Carlo dropout passes, or of a
    diffusion model's hypotheses; NaN where ``points3d`` is), made by the adaptation (None
    without it, or for the image model)."""

    points3d: np.ndarray
    joint_set: str
    camera: str
    fps: float | None = None
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    up: np.ndarray | None = None
    uncertainty: np.ndarray | None = None


def default_camera(name: str, size: tuple[int, int]) -> Camera:
    """A pinhole camera for an image of ``size`` (w, h): focal = max(w, h), centred, no
    distortion."""
    w, h = int(size[0]), int(size[1])
    f = float(max(w, h))
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
    return Camera(name, K, size=(w, h))


@torch.no_grad()
def lift_sequence(model: nn.Module, x: np.ndarray, batch_size: int = 2048, stride: int = 1
                  ) -> np.ndarray:
    """Run a lifter over a sequence, each frame with its window, every ``stride``-th frame
    (edges repeat the end frames).

    Args:
        x: (T, J, 2) normalised lifter input (:func:`normalize_keypoints`).

    Returns:
        (T, J, 3) float32 root-relative metres.
    """
    model.eval()
    return run_windows(model, x, batch_size, stride)


def training_stride(ckpt: Checkpoint, fps: float | None) -> int:
    """Frames of footage at ``fps`` per frame of the motion the model learned from
    (:func:`~epiflow.models.lifters.frame_stride`), for models that read windows: the median
    frame rate of the training store's sessions where the store can be opened, else the recipe's
    synthetic source rate (``data.source.fps``); 1 when neither is known."""
    if int(ckpt.data["model"].get("input_window", 1)) <= 1 or fps is None:
        return 1  # a per-frame model reads no window
    train_fps = _store_fps(ckpt)
    source = ckpt.config.data.source
    if train_fps is None and source.kind != "store":
        train_fps = source.fps
    return frame_stride(fps, train_fps)


def _store_fps(ckpt: Checkpoint) -> float | None:
    """The median frame rate of (up to 8 of) the checkpoint's training store's sessions (relative
    paths from the recipe's folder were made absolute when it was loaded), or None."""
    from epiflow.store import PoseStore, StoreError
    try:
        store = PoseStore.open(ckpt.config.data.store, "r")
        rates = [store.session(i).fps for i in store.session_ids()[:8]]
    except (OSError, KeyError, ValueError, StoreError):  # moved, deleted, unreachable: no rate
        return None
    rates = [float(r) for r in rates if r]
    return float(np.median(rates)) if rates else None


def _canonical(keypoints: np.ndarray, joint_set: str, target: str) -> np.ndarray:
    if joint_set == target:
        return keypoints
    if target != "h36m17":
        raise ValueError(f"the model works on joint set {target!r}; keypoints in {joint_set!r} "
                         f"cannot be mapped to it (only onto h36m17)")
    return map_to_h36m(keypoints, joint_set, confidence=True)


def predict_keypoints(model: nn.Module, keypoints: np.ndarray, joint_set: str, camera: Camera,
                      model_joint_set: str = "h36m17", adapt: AdaptConfig | None = None,
                      fps: float | None = None, up: np.ndarray | None = None,
                      stride: int = 1) -> np.ndarray:
    """3D poses from one camera's 2D keypoints with a lifter.

    Args:
        keypoints: (T, J_src, 3) pixels and confidence of ``joint_set``.
        camera: the camera that saw them (intrinsics and distortion are used).
        adapt: adapt to this sequence's own 2D (:func:`~epiflow.models.adapt.adapt_sequence`:
            position alignment, test-time optimisation), or None: the model's plain prediction.
        fps: the footage's frame rate (for the smoothness term of the adaptation).
        up: (3,) the scene's vertical in the camera's frame, for a model of level cameras
            (``data.level``, :func:`~epiflow.models.adapt.model_frame`); None otherwise.
        stride: frames between a window's frames (:func:`training_stride`).

    Returns:
        (T, J, 3) root-relative metres in the camera's frame, ``model_joint_set`` joints; NaN
        for frames whose root joint is not seen.
    """
    return _lift(model, keypoints, joint_set, camera, model_joint_set, adapt, fps, up,
                 stride)[0]


def _lift(model: nn.Module, keypoints: np.ndarray, joint_set: str, camera: Camera,
          model_joint_set: str, adapt: AdaptConfig | None, fps: float | None,
          up: np.ndarray | None, stride: int) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`predict_keypoints`'s poses and, with ``adapt``, the model's per-joint uncertainty
    (T, J) metres (NaN where the poses are; None without ``adapt``)."""
    if getattr(model, "input_kind", "keypoints") != "keypoints":
        raise ValueError(f"a {model.kind!r} model reads images, not keypoints: use --video")
    kp = _canonical(np.asarray(keypoints, np.float64), joint_set, model_joint_set)
    root = get_joint_set(model_joint_set).parents.index(-1)
    uv = CameraRig([camera]).undistort(kp[None, ..., :2])[0]
    seen = np.isfinite(uv[:, root]).all(-1) & (kp[:, root, 2] > 0)
    sigma = None
    if adapt is not None:
        pred, sigma = adapt_sequence(model, uv, kp[..., 2], model_joint_set, adapt, fps, up,
                                     stride)
    else:
        uv_in, R = model_frame(uv, root, up, align=False)
        seen &= np.isfinite(uv_in[:, root]).all(-1)  # a root ray behind the level camera
        pred = (lift_sequence(model, normalize_keypoints(uv_in, root), stride=stride)
                .astype(np.float64) @ R).astype(np.float32)
    pred[~seen] = np.nan
    if sigma is not None:
        sigma = np.where(np.isfinite(pred).all(-1), sigma, np.nan).astype(np.float32)
    return pred, sigma


def keypoints_up(keypoints: np.ndarray, joint_set: str, camera: Camera,
                 model_joint_set: str = "h36m17") -> tuple[np.ndarray, str]:
    """The vertical a model of level cameras takes for 2D keypoints without a video
    (:func:`~epiflow.models.level.upright_up` on their rays, the camera's rotation as the
    calibration's): (3,) up in the camera's frame and what it is, for the user.

    Args:
        keypoints: (T, J_src, 3) pixels and confidence of ``joint_set``.
    """
    kp = _canonical(np.asarray(keypoints, np.float64), joint_set, model_joint_set)
    uv = CameraRig([camera]).undistort(kp[None, ..., :2])[0]
    return upright_up(uv, model_joint_set, camera.R)


def _model_for(checkpoint) -> tuple[nn.Module, Checkpoint]:
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_model(ckpt, device=device), ckpt


def predict_npz(checkpoint, npz_path, camera_name: str, calibration=None,
                adapt: bool | AdaptConfig = True) -> Prediction:
    """Predict from one person's 2D keypoints for camera ``camera_name``: ``npz_path`` is any
    input :func:`~epiflow.datasets.io.load_keypoints` reads (a keypoints npz of
    :mod:`epiflow.keypoints`, an OpenPose folder, a caliscope csv).

    Args:
        calibration: a calibration file holding that camera, in any format
            :func:`~epiflow.calibration.formats.load_rig` reads (camera TOML, Qualisys
            ``.qca.txt``, caliscope ``config.toml``, Shelf ``calibration.json``), or None (see
            the module docstring).
        adapt: adapt to the sequence's own 2D (True: :class:`AdaptConfig`'s defaults), or not.
    """
    from epiflow.datasets.io import load_keypoints
    kp = load_keypoints(npz_path)  # checked (units, confidences...) before the model loads
    model, ckpt = _model_for(checkpoint)
    check_input(ckpt, f"--keypoints {npz_path}", joint_set=kp.joint_set, has_images=False,
                n_frames=len(kp.data))
    try:
        c = match_camera_names([camera_name], kp.camera_names, str(npz_path))[0]
    except CalibrationError as err:
        raise KeyError(f"{err}; pass --camera NAME") from None
    camera_name = kp.camera_names[c]
    if not calibration and min(kp.image_size[c]) <= 0:  # an OpenPose folder: no size stored
        raise ValueError(f"--keypoints {npz_path}: the image size of camera {camera_name!r} is "
                         f"unknown (OpenPose JSON files do not store it), so no camera can be "
                         f"assumed; give --calibration FILE with that camera")
    camera, warnings = _camera(calibration, camera_name, tuple(kp.image_size[c]),
                               f"--keypoints {npz_path}")
    check_sequence(model, kp.data[:, c], f"--keypoints {npz_path} camera {camera_name!r}")
    up = None
    if ckpt.config.data.level:  # no images to find the vertical in
        up, what = keypoints_up(kp.data[:, c], kp.joint_set, camera,
                                ckpt.config.data.joint_set)
        tilt = "" if what.startswith("the calibration") else "; a tilted camera tilts the " \
            "prediction"
        warnings.append(f"the model works in level cameras and keypoints carry no image to find "
                        f"the scene's vertical in: {level_note(what)}{tilt} (give --video "
                        f"instead)")
    points, sigma = _lift(model, kp.data[:, c], kp.joint_set, camera,
                          ckpt.config.data.joint_set, _adapt(adapt), kp.fps, up,
                          training_stride(ckpt, kp.fps))
    return Prediction(points, ckpt.config.data.joint_set, camera_name, kp.fps, tuple(warnings),
                      up=up, uncertainty=sigma)


def _adapt(adapt: bool | AdaptConfig) -> AdaptConfig | None:
    if isinstance(adapt, AdaptConfig):
        return adapt
    return AdaptConfig() if adapt else None


def _video_crops(frames: np.ndarray, keypoints: np.ndarray, size: int) -> np.ndarray:
    from epiflow.detection.crops import person_crops
    crops, _ = person_crops(list(frames[..., ::-1]), keypoints, size)  # it takes BGR frames
    return crops


def _calibrated_camera(calibration, name: str) -> Camera:
    """The camera ``name`` of a calibration file, matched as every command matches cameras
    (:data:`~epiflow.calibration.camera.CAMERA_NAME_RULE`: ``cam01`` is ``cam_01``)."""
    from epiflow.calibration.formats import load_rig
    rig = load_rig(calibration)  # a bad file is blamed as such (check_rig), not the name
    try:  # the calibration's own camera (its name kept): cam02 finds cam_02
        return rig[match_camera_names([name], rig.names, str(calibration))[0]]
    except CalibrationError as err:  # err names the file
        raise KeyError(f"{err}; pass --camera NAME") from None


def _camera(calibration, name: str, size: tuple[int, int], images: str
            ) -> tuple[Camera, list[str]]:
    """The camera that took ``images`` (named for errors) of ``size`` (w, h) pixels: ``name`` of
    the calibration file fitted to that size by the rule every command uses
    (:func:`~epiflow.calibration.from_people.fit_sizes`: a codec's crop of padding or a resize is
    a warning, another size or aspect an error naming both sizes and both files), or the
    :func:`default_camera` without a calibration; and the warnings."""
    if not calibration:
        cam = default_camera(name, size)
        fov = np.degrees(2 * np.arctan(0.5 * max(size) / cam.K[0, 0]))
        return cam, [f"no calibration given, so the camera's intrinsics are unknown; "
                     f"assumed a pinhole without distortion, principal point at the image centre "
                     f"({cam.K[0, 2]:.1f}, {cam.K[1, 2]:.1f}) px of the {size[0]}x{size[1]} "
                     f"images, focal length {cam.K[0, 0]:.0f} px (the larger image side: a "
                     f"{fov:.0f} deg field of view across it). Give --calibration FILE for the "
                     f"exact camera (a wide or distorting lens is off by more)"]
    from epiflow.calibration.from_people import fit_sizes
    camera = _calibrated_camera(calibration, name)
    try:
        rig, warnings = fit_sizes(CameraRig([camera]), np.array([size]), str(calibration))
    except CalibrationError as err:
        raise CalibrationError(f"{images}: {err}") from None
    return rig[0], warnings


def check_sequence(model: nn.Module, keypoints: np.ndarray, source: str,
                   n_frames: int | None = None) -> None:
    """Refuse a sequence the model cannot lift: nobody detected in any frame, or fewer frames
    than the model's window.

    Args:
        keypoints: (T, J, 3) pixels and confidence (0 = missing). source: names the data.
        n_frames: the video's frame count, when it is one.
    """
    T = len(keypoints) if n_frames is None else n_frames
    found = int((np.nan_to_num(keypoints[..., 2]) > 0).any(-1).sum())
    if found == 0:
        raise ValueError(f"{source}: no person was detected in any of its {T} frames; give a "
                         f"video where one person is in view (the whole body, lit, not too small)")
    W = getattr(model, "input_window", 1)
    if W > T:
        raise ValueError(f"{source} has {T} frames, fewer than the {W}-frame window the model "
                         f"reads; give a video of at least {W} frames, or a model with a shorter "
                         f"window (a per-frame model: model.name = 'mlp', model.mlp.window = 1)")


@torch.no_grad()
def predict_video(checkpoint, video, calibration=None, camera_name: str | None = None,
                  detector=None, adapt: bool | AdaptConfig = True) -> Prediction:
    """Detect the person in a video with MediaPipe and predict 3D poses (lifters from the 2D
    keypoints, adapted to the video unless ``adapt`` is False; the image model from person crops
    around them)."""
    from epiflow.detection.detectors import MediaPipeDetector, read_frames, video_info
    model, ckpt = _model_for(checkpoint)
    info = video_info(video)
    name = camera_name or Path(video).stem
    # the camera is checked (in the file, of the video's size) before minutes of detection
    camera, warnings = _camera(calibration, name, info.size, f"--video {video}")
    detector = detector or MediaPipeDetector()
    check_input(ckpt, f"--video {video}", joint_set=detector.joint_set, has_images=True,
                n_frames=info.n_frames)  # a too short video: before minutes of detection
    frames = read_frames(video)
    kp = detector(frames)
    check_sequence(model, kp, f"--video {video}")
    js = ckpt.config.data.joint_set
    up, notes = None, []
    if ckpt.config.data.level and model.input_kind == "keypoints":
        up, note, found = scene_up(frames, camera, _canonical(kp, detector.joint_set, js), js)
        (notes if found else warnings).append(note)
    sigma = None
    if model.input_kind == "keypoints":
        points, sigma = _lift(model, kp, detector.joint_set, camera, js, _adapt(adapt),
                              info.fps or None, up, training_stride(ckpt, info.fps))
    else:
        crops = _video_crops(frames, kp, model.config.image_size)
        device = next(model.parameters()).device
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255)
        points = np.concatenate([model(b.to(device)).float().cpu().numpy() for b in x.split(256)])
        points[~(crops.reshape(len(crops), -1).max(1) > 0)] = np.nan
    return Prediction(points, js, name, info.fps, tuple(warnings), tuple(notes), up, sigma)


def save_prediction(pred: Prediction, path, plot: bool = True) -> tuple[Path, Path | None]:
    """Write ``points3d`` (T, J, 3) float32, ``joint_set``, ``camera``, ``fps`` (and ``up`` (3,),
    the scene's vertical in the camera's frame, for a model of level cameras; ``uncertainty``
    (T, J) float32 metres, the model's per-joint uncertainty, when the prediction was adapted)
    to an npz and, when ``plot``, a PNG of a few frames beside it (same name, ``.png``; drawn in
    the level camera's frame when ``up`` is known, so the person stands upright whichever way
    the camera was held)."""
    path = Path(path)
    extra = {} if pred.fps is None else {"fps": np.float64(pred.fps)}
    if pred.up is not None:
        extra["up"] = np.asarray(pred.up, np.float64)
    if pred.uncertainty is not None:
        extra["uncertainty"] = np.asarray(pred.uncertainty, np.float32)
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, points3d=pred.points3d.astype(np.float32),
                            joint_set=np.str_(pred.joint_set), camera=np.str_(pred.camera),
                            **extra)
    png = None
    if plot:
        from epiflow import viz
        seen = np.isfinite(pred.points3d).all((1, 2))
        shown, frame = pred.points3d[seen], "camera frame"
        if pred.up is not None:  # drawn upright: the level camera (a sideways webcam too)
            shown, frame = shown @ level_rotation(pred.up).T, "level camera, the vertical up"
        if seen.any():
            fig = viz.plot_prediction(shown, pred.joint_set,
                                      title=f"{pred.camera}: predicted 3D pose ({frame})")
            png = viz.save_png(fig, path.with_suffix(".png"))
    return path, png
