"""Ingest: find the sessions of a run, read what each source says of itself, create its group.

Sources: a folder of videos (one per camera, camera name = file stem, natural order so cam2 <
cam10), a folder of per-camera image folders, 2D keypoint files (npz or OpenPose JSON, which
pass through detection), a synthetic capture of CMU motion (keypoints, true cameras and ground
truth). Ingest is cheap: videos are probed, not decoded.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from epiflow.calibration.camera import match_rig
from epiflow.config import ConfigError
from epiflow.keypoints import Keypoints
from epiflow.naming import natural_key
from epiflow.pipeline.config import RunConfig, SessionConfig, run_settings, session_fingerprint
from epiflow.store import PoseStore, Session, StoreError, check_session_id

if TYPE_CHECKING:
    from epiflow.calibration.camera import CameraRig

__all__ = ["Source", "IngestResult", "plan_sessions", "read_source", "ingest_session",
           "IMAGE_SUFFIXES", "to_store_joints", "check_sources", "probe_videos", "MIN_CAMERAS"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
_GENERIC_NAMES = {"videos", "video", "frames", "images", "keypoints", "json"}
MIN_CAMERAS = 2  #: synchronized cameras a session needs (to calibrate or triangulate)


@dataclass
class Source:
    """What a session's source says of itself.

    Attributes:
        camera_names: C names, in the order of the store's camera axis.
        n_frames: T. fps: frames per second or None. image_size: (C, 2) width, height pixels.
        streams: per camera, the video file or image folder to detect on ([] for keypoints).
        keypoints: 2D keypoints that pass through detection (keypoint and synthetic sources).
        rig: the cameras that come with the source (a synthetic capture's true rig) or None.
        gt3d: (T, J, 3) ground truth, metres, in ``rig``'s world frame, or None.
        warnings: things the run report should say (a trim, a guessed name...).
        camera_frames, camera_fps: unsynchronized videos only: each camera's own frame count and
            rate (``n_frames`` is then the largest count; see :func:`_unsynchronized`).
    """

    camera_names: list[str]
    n_frames: int
    fps: float | None
    image_size: np.ndarray
    streams: list[str] = field(default_factory=list)
    keypoints: Keypoints | None = None
    rig: "CameraRig | None" = None
    gt3d: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    camera_frames: list[int] | None = None
    camera_fps: list[float] | None = None


@dataclass
class IngestResult:
    """What the orchestrator needs after ingest: the session, its pending detection units
    ``[(unit, camera), ...]`` with the stream of each camera, and whether it is already complete."""

    session_id: str
    kind: str
    n_frames: int
    n_cameras: int
    pending_units: list[tuple[int, int]]
    streams: list[str]
    unit_frames: list[tuple[int, int]]
    complete: bool = False
    warnings: list[str] = field(default_factory=list)


# -- which sessions ----------------------------------------------------------------------------
def _default_name(path: str) -> str:
    p = Path(path)
    name = p.stem if p.is_file() else p.name
    return p.parent.name if name.lower() in _GENERIC_NAMES and p.parent.name else name


def _sessions_in_dir(folder: str) -> list[SessionConfig]:
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"sessions_dir {folder!r} does not exist")
    out = []
    for sub in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
        videos = sub / "videos" if (sub / "videos").is_dir() else sub
        cams = sub / "cameras.toml"
        out.append(SessionConfig(name=sub.name, videos=str(videos),
                                 cameras=str(cams) if cams.is_file() else ""))
    if not out:
        raise ValueError(f"sessions_dir {folder!r} holds no session folders; put one folder of "
                         f"videos (one per camera) per session in it")
    return out


def plan_sessions(cfg: RunConfig) -> list[SessionConfig]:
    """The sessions of a run, each with its name (= session id) settled; names must be unique."""
    sessions = list(cfg.sessions)
    if cfg.sessions_dir:
        sessions += _sessions_in_dir(cfg.sessions_dir)
    sessions += [SessionConfig(name=f"synthetic_{i:04d}",
                               synthetic=replace(cfg.synthetic, seed=cfg.synthetic.seed + i))
                 for i in range(cfg.synthetic_sessions)]
    named = [s if s.name else replace(s, name=_default_name(s.path) if s.path else "synthetic")
             for s in sessions]
    for s in named:  # every id, before anything is written (an id names a store folder)
        check_session_id(s.name, f"session name (from {s.path!r}: set 'name' or --session, "
                                 f"or rename it)" if s.path else "session name")
    names = [s.name for s in named]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"session names must be unique in a run; repeated: {dupes}; set "
                          f"'name' in the [[sessions]] tables")
    if not named:
        raise ConfigError("the run has no sessions: give [[sessions]], sessions_dir, "
                          "synthetic_sessions, or on the command line --videos/--keypoints/"
                          "--synthetic")
    return named


# -- reading sources ---------------------------------------------------------------------------
def _check_lengths(names: list[str], counts: list[int], fps: list[float], where: str,
                   trim: bool, sync: str = "off") -> tuple[int, list[str]]:
    warnings = []
    if len({round(f, 3) for f in fps}) > 1:
        raise ValueError(f"{where}: cameras have different frame rates "
                         f"{dict(zip(names, fps))}; with ingest.sync = {sync!r} (--sync off) "
                         f"cameras need one rate: drop --sync off (ingest.sync = 'auto' "
                         f"recovers each camera's clock from the person), or re-encode them at "
                         f"the same fps")
    if len(set(counts)) > 1:
        per_cam = dict(zip(names, counts))
        if not trim:
            raise ValueError(f"{where}: cameras have different frame counts {per_cam}; with "
                             f"ingest.sync = {sync!r} (--sync off) cameras need the same number: "
                             f"drop --sync off (ingest.sync = 'auto' recovers each camera's "
                             f"time offset from the person), trim the videos, or set "
                             f"ingest.trim = true to cut all to the shortest")
        warnings.append(f"{where}: frame counts differ {per_cam}; trimmed all to the first "
                        f"{min(counts)} frames (ingest.trim = true)")
    return min(counts), warnings


def probe_videos(folder, min_videos: int = MIN_CAMERAS) -> list:
    """The videos of ``folder``, one per camera in natural order, as
    :class:`~epiflow.detection.detectors.VideoInfo`, each opened and its first frame decoded
    (milliseconds a video, no full decode). Errors name the folder, or the file that cannot
    serve (missing, empty, not a video); fewer than ``min_videos`` videos are refused with the
    names of those found."""
    from epiflow.detection.detectors import list_videos, read_frames, video_info
    videos = list_videos(folder)
    if len(videos) < min_videos:
        raise ValueError(f"videos folder {str(folder)!r} holds {len(videos)} video(s) "
                         f"{[p.name for p in videos]}; expected one video per camera, at least "
                         f"{min_videos} synchronized cameras")
    infos = [video_info(p) for p in videos]
    for p in videos:
        read_frames(p, 0, 1)
    return infos


def _video_source(session: SessionConfig, trim: bool, sync: str = "auto") -> Source:
    from epiflow.calibration.sync import needs_sync
    infos = probe_videos(session.videos)
    names, counts = [i.path.name for i in infos], [i.n_frames for i in infos]
    rates = [i.fps for i in infos]
    if needs_sync(counts, rates, sync) and not (trim and sync == "auto"
                                                and len({round(f, 3) for f in rates}) == 1):
        return _unsynchronized(session, infos)
    T, warnings = _check_lengths(names, counts, rates, f"videos in {session.videos!r}", trim,
                                 sync)
    return Source([i.path.stem for i in infos], T, infos[0].fps or session.fps or None,
                  np.array([i.size for i in infos]), [str(i.path) for i in infos],
                  warnings=warnings)


def _unsynchronized(session: SessionConfig, infos: list) -> Source:
    """Videos whose clocks are recovered from the person after detection
    (:mod:`epiflow.calibration.sync`): T = the longest video's frames, each camera detected on
    its own; labels come on the first camera's frame times."""
    rates = [float(i.fps or 0) for i in infos]
    bad = [i.path.name for i, f in zip(infos, rates) if f <= 0]
    if bad:
        raise ValueError(f"videos {bad} in {session.videos!r} do not say their frame rate; "
                         f"expected fps > 0 to recover the cameras' time offsets: re-encode "
                         f"them with a rate, or give synchronized videos with --sync off")
    counts = [int(i.n_frames) for i in infos]
    per_cam = {i.path.stem: f"{n} frames at {f:g} fps" for i, n, f in zip(infos, counts, rates)}
    warning = (f"videos in {session.videos!r}: cameras not synchronized ({per_cam}); their "
               f"time offsets are recovered from the person and the labels put on "
               f"{infos[0].path.stem}'s frame times")
    return Source([i.path.stem for i in infos], max(counts), rates[0],
                  np.array([i.size for i in infos]), [str(i.path) for i in infos],
                  warnings=[warning], camera_frames=counts, camera_fps=rates)


def list_images(folder) -> list[Path]:
    """Image files of a folder in natural order."""
    return sorted((p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                  key=lambda p: natural_key(p.name))


def _frames_source(session: SessionConfig, trim: bool) -> Source:
    import cv2
    root = Path(session.frames)
    if not root.is_dir():
        raise FileNotFoundError(f"frames folder {session.frames!r} does not exist")
    cams = sorted((p for p in root.iterdir() if p.is_dir() and list_images(p)),
                  key=lambda p: natural_key(p.name))
    if not cams:
        raise ValueError(f"frames folder {session.frames!r} holds no camera folders of images "
                         f"({', '.join(IMAGE_SUFFIXES)}); put one folder of frames per camera")
    counts = [len(list_images(c)) for c in cams]
    names = [c.name for c in cams]
    T, warnings = _check_lengths(names, counts, [0.0] * len(cams), f"frames in {root}", trim)
    sizes = []
    for cam in cams:
        first = cv2.imread(str(list_images(cam)[0]))
        if first is None:
            raise ValueError(f"{list_images(cam)[0]}: not a readable image")
        sizes.append((first.shape[1], first.shape[0]))
    return Source(names, T, session.fps or None, np.array(sizes), [str(c) for c in cams],
                  warnings=warnings)


def _keypoint_source(session: SessionConfig) -> Source:
    from epiflow.datasets.io import load_keypoints
    kp = load_keypoints(session.keypoints, joint_set=session.joint_set or None, people=None,
                        calibration=session.cameras or None)
    if session.fps and not kp.fps:
        kp = replace(kp, fps=session.fps)
    size = kp.image_size
    if (size <= 0).any() and session.cameras:
        from epiflow.calibration.formats import load_rig
        size = match_rig(load_rig(session.cameras), list(kp.camera_names), session.cameras,
                         by_order=True)[0].sizes
        kp = replace(kp, image_size=size)
    return Source(list(kp.camera_names), kp.n_frames, kp.fps, kp.image_size, keypoints=kp)


def _synthetic_source(session: SessionConfig) -> Source:
    from epiflow.datasets.synthetic import Corruption, cmu_capture
    syn = session.synthetic
    corruption = Corruption(noise_px=syn.noise_px, outlier_fraction=syn.outlier_fraction,
                            drop_fraction=syn.drop_fraction, swap_fraction=syn.swap_fraction)
    cap = cmu_capture(syn.clip, syn.n_cameras, corruption, seed=syn.seed, layout=syn.layout,
                      data_dir=syn.data_dir or None, fps=syn.fps, radius=syn.radius,
                      focal_px=syn.focal_px)
    kp, gt = cap.keypoints, cap.points3d
    if syn.frames:
        kp, gt = kp.frames(0, syn.frames), gt[:syn.frames]
    return Source(list(kp.camera_names), kp.n_frames, kp.fps, kp.image_size, keypoints=kp,
                  rig=cap.rig, gt3d=gt)


def read_source(session: SessionConfig, trim: bool = False, max_frames: int = 0,
                sync: str = "auto") -> Source:
    """Read what ``session``'s source says of itself (videos are probed, not decoded);
    ``max_frames`` > 0 keeps only the first frames; ``sync`` (``ingest.sync``): whether videos
    of different lengths or rates are synchronized from the person."""
    readers = {"videos": lambda: _video_source(session, trim, sync),
               "frames": lambda: _frames_source(session, trim),
               "keypoints": lambda: _keypoint_source(session),
               "synthetic": lambda: _synthetic_source(session)}
    src = readers[session.kind]()
    if max_frames and src.n_frames > max_frames:
        src.n_frames = max_frames
        if src.camera_frames:
            src.camera_frames = [min(n, max_frames) for n in src.camera_frames]
        src.keypoints = None if src.keypoints is None else src.keypoints.frames(0, max_frames)
        src.gt3d = None if src.gt3d is None else src.gt3d[:max_frames]
    return src


def check_sources(sessions: list[SessionConfig], cfg: RunConfig) -> None:
    """Refuse bad input before Ray starts and before anything is written: every session's source
    is read as ingest will read it (videos probed and their first frame decoded, image folders'
    first images, keypoint files read and checked), it must give :data:`MIN_CAMERAS` cameras or
    more and image sizes (or a cameras file to take them from), its cameras file must load, pass :func:`~epiflow.calibration.input_checks.check_rig`
    and match its cameras, its board folder must exist; a synthetic session's CMU clip must be
    in its ``data_dir`` (a packaged clip when there is none). Input
    that cannot be read refuses the whole run, every bad session listed at once; what fails later
    (calibration, triangulation) fails only its session, recorded in the store and the report.

    Raises:
        FileNotFoundError (every problem a missing path) or ValueError (exit code 2 in the CLI),
        one line per bad session naming it and the file.
    """
    problems: list[tuple[str, Exception]] = []
    for session in sessions:
        try:
            if session.kind == "synthetic":
                _check_synthetic(session.synthetic)
            else:
                _check_source(session, cfg)
        except (FileNotFoundError, ValueError) as err:
            problems.append((session.name, err))
    if not problems:
        return
    lines = [f"session {name!r}: {err}" for name, err in problems]
    kind = FileNotFoundError if all(isinstance(e, FileNotFoundError) for _, e in problems) \
        else ValueError
    raise kind(lines[0] if len(lines) == 1 else
               f"{len(lines)} sessions cannot be read:\n  " + "\n  ".join(lines))


def _check_synthetic(syn) -> None:
    """The CMU clip of a synthetic session exists (the motion is read only at ingest, after the
    store is made)."""
    from epiflow.datasets.cmu import packaged_clips
    from epiflow.datasets.synthetic import cmu_clip_path
    if not syn.data_dir:
        if syn.clip not in packaged_clips():
            raise ValueError(f"clip {syn.clip!r} is not packaged with epiflow (those are "
                             f"{', '.join(packaged_clips())}); set data_dir to the folder that "
                             f"holds cmu_mocap/<subject>/<clip>.amc")
        return
    path = cmu_clip_path(syn.clip, syn.data_dir)
    if not path.is_file():
        raise FileNotFoundError(
            f"CMU clip {str(path)!r} does not exist: data_dir {syn.data_dir!r} should hold "
            f"cmu_mocap/<subject>/<clip>.amc (a relative data_dir is taken from the config "
            f"file's folder; in a training recipe it is data.source.data_dir)")


def _check_source(session: SessionConfig, cfg: RunConfig) -> None:
    src = read_source(session, cfg.ingest.trim, sync=cfg.ingest.sync)
    if src.camera_frames and cfg.store.crop_size:
        raise ValueError(f"{session.path!r}: cameras not synchronized (frame counts "
                         f"{src.camera_frames}, rates {src.camera_fps} fps) and store.crop_size "
                         f"= {cfg.store.crop_size}: crops of unsynchronized cameras are not "
                         f"stored yet; set store.crop_size = 0, or give synchronized videos")
    if len(src.camera_names) < MIN_CAMERAS:
        raise ValueError(f"{session.kind} {session.path!r} gives {len(src.camera_names)} "
                         f"camera(s) {src.camera_names}; a session needs at least {MIN_CAMERAS} "
                         f"synchronized cameras (one video, image folder or keypoint folder each)")
    unknown = [n for n, size in zip(src.camera_names, src.image_size) if min(size) <= 0]
    if unknown and not (session.cameras or session.board):
        raise ValueError(f"{session.path!r}: the image size of cameras {unknown} is unknown "
                         f"(OpenPose JSON does not store it) and the session has no cameras "
                         f"file to take it from: give one (--cameras, or 'cameras' in its "
                         f"[[sessions]] table)")
    if session.cameras:
        from epiflow.calibration.formats import load_rig
        match_rig(load_rig(session.cameras), src.camera_names, session.cameras, by_order=True)
    if session.board and not Path(session.board).is_dir():
        raise FileNotFoundError(f"board folder {session.board!r} does not exist; expected one "
                                f"folder of checkerboard images per camera")


def to_store_joints(kp: Keypoints, joint_set: str) -> Keypoints:
    """Keypoints in the store's joint set (``source`` keeps them as they are)."""
    if joint_set in ("source", kp.joint_set):
        return kp
    if joint_set != "h36m17":
        raise ValueError(f"store.joint_set {joint_set!r}: only 'h36m17' or 'source' are supported")
    return kp.to_h36m()


def source_slots(src: Source, cfg: RunConfig) -> int:
    """P, the detection slots the session keeps: a keypoint input's own P axis (1 without
    one), else ``detect.max_people`` for the detector."""
    if src.keypoints is not None:
        return src.keypoints.data.shape[2] if src.keypoints.has_people else 1
    return cfg.detect.max_people


# -- the stage ---------------------------------------------------------------------------------
def _resumable(store: PoseStore, sid: str, fingerprint: str) -> Session | None:
    """The session as stored when a run with the same settings already ingested it."""
    if sid not in store:
        return None
    s = store.session(sid)
    if s.fingerprint == fingerprint and s.status.get("ingest") == "done":
        return s
    if s.is_complete:
        raise StoreError(f"session {sid!r} in {store.url!r} is complete but was written with "
                         f"other settings (source or stage options); write to a new store, or "
                         f"run with --overwrite to redo it")
    return None


def _result(s: Session, kind: str) -> IngestResult:
    n_units = s.units_done().shape[0]
    done = s.units_done() if s.status.get("detect") != "done" else np.ones((1, 1), bool)
    pending = [] if kind in ("keypoints", "synthetic") else \
        [(int(u), int(c)) for u, c in np.argwhere(~done)]
    return IngestResult(s.id, kind, s.n_frames, len(s.camera_names), pending, s.streams,
                        [s.unit_frames(u) for u in range(n_units)], s.is_complete,
                        s.ingest_warnings)


def ingest_session(store_url: str, session: SessionConfig, cfg: RunConfig) -> IngestResult:
    """Create ``session``'s group in the store (or find it from an earlier run with the same
    settings) and return its pending detection units. Keypoint and synthetic sources are written
    here: their keypoints pass through detection."""
    from epiflow.detection.detectors import MediaPipeDetector
    store = PoseStore.open(store_url, "a")
    fingerprint = session_fingerprint(cfg, session)
    found = _resumable(store, session.name, fingerprint)
    if found is not None:
        return _result(found, session.kind)
    src = read_source(session, cfg.ingest.trim, cfg.ingest.max_frames, cfg.ingest.sync)
    source_set = src.keypoints.joint_set if src.keypoints is not None else \
        MediaPipeDetector.joint_set
    joint_set = source_set if cfg.store.joint_set == "source" else cfg.store.joint_set
    s = store.create_session(
        session.name, n_frames=src.n_frames, camera_names=src.camera_names, joint_set=joint_set,
        image_size=src.image_size, fps=src.fps, chunk_frames=cfg.detect.chunk_frames,
        crop_size=cfg.store.crop_size if session.kind != "keypoints" else 0,
        max_people=source_slots(src, cfg), source_joint_set=source_set,
        attrs={"source": {"kind": session.kind, "path": session.path},
               "config": run_settings(cfg, session), "fingerprint": fingerprint,
               "streams": src.streams, "warnings": src.warnings,
               **({"time_sync": {"n_frames": src.camera_frames, "fps": src.camera_fps,
                                 "done": False}} if src.camera_frames else {})})
    _write_passthrough(s, src, joint_set)
    s.set_status("ingest", "done")
    return _result(s, session.kind)


def _write_passthrough(s: Session, src: Source, joint_set: str) -> None:
    if src.gt3d is not None:
        s.write_gt3d(src.gt3d[: s.n_frames], "gt_cameras" if src.rig is not None else "source",
                     src.rig)
    if src.keypoints is not None:
        data = to_store_joints(src.keypoints, joint_set).data[: s.n_frames]
        source = src.keypoints.data[: s.n_frames] if s.keypoints2d_source is not None else None
        if s.crops is None:
            s.write_all_units(data, source)
        else:
            _write_with_crops(s, data, source, joint_set)
        s.set_status("detect", "done")


def _write_with_crops(s: Session, keypoints: np.ndarray, source: np.ndarray | None,
                      joint_set: str) -> None:
    """A synthetic session's (T, C, J, 3) keypoints (one person, P = 1) unit by unit, each with
    the person crops drawn from its 2D skeleton
    (:func:`epiflow.datasets.synthetic.skeleton_crops`)."""
    from epiflow.datasets.synthetic import skeleton_crops
    crops, boxes = skeleton_crops(keypoints, joint_set, s.crops.shape[2])
    for unit in range(s.units_done().shape[0]):
        start, stop = s.unit_frames(unit)
        for c in range(keypoints.shape[1]):
            s.write_unit(unit, c, keypoints[start:stop, c], crops[start:stop, c],
                         boxes[start:stop, c], None if source is None else source[start:stop, c])
