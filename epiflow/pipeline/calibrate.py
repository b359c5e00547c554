"""Calibrate: a session's cameras, from the people in view, from a given file (or a synthetic
capture's true rig), or with intrinsics from checkerboard images; written to the store with
how they were obtained and the calibration report."""
from __future__ import annotations

from pathlib import Path

from epiflow.calibration.camera import CameraRig, match_rig
from epiflow.pipeline.config import CalibrateConfig, SessionConfig
from epiflow.store import Session

__all__ = ["calibration_method", "given_rig", "calibrate_session", "known_distance"]


def calibration_method(session: SessionConfig, cfg: CalibrateConfig) -> str:
    """``given`` / ``people`` / ``board``: what ``auto`` means for this session, checked."""
    has_given = bool(session.cameras) or session.kind == "synthetic"
    if cfg.method == "auto":
        return "given" if has_given else "people"
    if cfg.method == "given" and not has_given:
        raise ValueError(f"session {session.name!r}: calibrate.method = 'given' but the session "
                         f"has no cameras file (set 'cameras' in its [[sessions]] table, or use "
                         f"method 'people')")
    if cfg.method == "board" and not session.board:
        raise ValueError(f"session {session.name!r}: calibrate.method = 'board' needs the "
                         f"session's 'board' folder of per-camera checkerboard images")
    return cfg.method


def given_rig(session: Session, session_cfg: SessionConfig) -> tuple[CameraRig, list[str]]:
    """The session's given cameras in its camera order, fitted to its image sizes, and warnings
    (cameras matched in order, image sizes that differ from the calibration's)."""
    from epiflow.calibration.formats import load_rig
    from epiflow.calibration.from_people import fit_sizes
    if session_cfg.cameras:
        rig, warnings = match_rig(load_rig(session_cfg.cameras), session.camera_names,
                                  session_cfg.cameras, by_order=True)
        rig, sized = fit_sizes(rig, session.image_size, session_cfg.cameras)
        return rig, warnings + sized
    rig = session.gt_rig
    if rig is None:
        raise ValueError(f"session {session.id!r} has no given cameras: give its [[sessions]] "
                         f"table a 'cameras' file, or use calibrate.method = 'people'")
    return rig, []


def _intrinsics(session: Session, session_cfg: SessionConfig, path: str) -> CameraRig | None:
    """The known intrinsics for calibration from people: the file ``path``, the session's given
    cameras (``given``), or None (estimated)."""
    if not path:
        return None
    if path == "given":
        return given_rig(session, session_cfg)[0]
    from epiflow.calibration.formats import load_rig
    return match_rig(load_rig(path), session.camera_names, path, by_order=True)[0]


def _board_intrinsics(session_cfg: SessionConfig, names: list[str],
                      cfg: CalibrateConfig) -> CameraRig:
    """Intrinsics from the session's checkerboard images (one folder per camera)."""
    from epiflow.calibration.board import calibrate_board_folder
    return calibrate_board_folder(Path(session_cfg.board), names,
                                  tuple(cfg.board_pattern), cfg.board_square_size)


def known_distance(cfg: CalibrateConfig):
    """``calibrate.known_distance`` as a :class:`~epiflow.calibration.world_frame.KnownDistance`
    (checked: two names and metres > 0), or None when empty."""
    if not cfg.known_distance:
        return None
    from epiflow.calibration.world_frame import KnownDistance
    return KnownDistance.parse(cfg.known_distance, "calibrate.known_distance")


def _scene(session_cfg: SessionConfig):
    """Two frames per video of a video session, for the scene's vertical lines; else None. The
    frames are not paired with the keypoints' frame indices (videos may be trimmed or
    synchronized), so the person is not masked out: on the Pose2Sim demo that changes the
    vertical by 0.003°."""
    if not session_cfg.videos:
        return None
    from epiflow.calibration.vanishing import video_scene_frames
    from epiflow.detection.detectors import list_videos
    return video_scene_frames(list_videos(session_cfg.videos), with_index=False)


def calibrate_session(session: Session, session_cfg: SessionConfig,
                      cfg: CalibrateConfig) -> tuple[CameraRig, str, dict]:
    """The cameras of ``session``; from people, out of its 2D keypoints in the source's own
    joint set when the session keeps them (BlazePose's 33 joints calibrate better than the 17
    they map to: more points, and the mapped ones are partly synthesized). A session of several
    detection slots is calibrated from everyone in view
    (:func:`~epiflow.calibration.people_calibration.calibrate_from_several_people`).

    Returns:
        (rig in the session's camera order, method used, report dict). The caller writes them.
    """
    method = calibration_method(session_cfg, cfg)
    if method == "given":
        rig, warnings = given_rig(session, session_cfg)
        return rig, "given", {"source": session_cfg.cameras or "synthetic true cameras",
                              "warnings": warnings}
    from epiflow.calibration.people_calibration import calibrate_from_several_people
    intrinsics = _intrinsics(session, session_cfg, cfg.intrinsics) if method == "people" \
        else _board_intrinsics(session_cfg, session.camera_names, cfg)
    source = session_cfg.cameras if cfg.intrinsics == "given" else cfg.intrinsics
    result = calibrate_from_several_people(
        session.keypoints(source=True), intrinsics=intrinsics,
        subject_height=cfg.subject_height or None, config=cfg.people,
        intrinsics_source=source or "the board's intrinsics",
        known_distance=known_distance(cfg), scene=_scene(session_cfg))
    return result.rig, method, dict(result.report)
