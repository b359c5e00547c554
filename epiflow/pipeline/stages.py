"""The stages after detection, chained per session: check that every detection unit is written,
calibrate, triangulate, mark complete. Each stage is skipped when the store says it is done, and
a stage that fails is recorded in the session with its reason (the run goes on)."""
from __future__ import annotations

import time
import traceback

import numpy as np

from epiflow.pipeline.calibrate import calibrate_session
from epiflow.pipeline.config import RunConfig, SessionConfig
from epiflow.pipeline.report import SessionOutcome, StageRecord, timed
from epiflow.pipeline.triangulate import triangulate_session
from epiflow.store import PoseStore, Session

__all__ = ["finish_session"]


def _check_detected(s: Session) -> None:
    done = s.units_done()
    if not done.all():
        missing = [(int(u), s.camera_names[c]) for u, c in np.argwhere(~done)[:5]]
        raise RuntimeError(f"{int((~done).sum())} detection units are not written yet, e.g. "
                           f"(chunk, camera) {missing}; run the detect stage first")
    s.set_status("detect", "done")


def _synchronize(s: Session) -> dict:
    """Unsynchronized cameras (attr ``time_sync``): each camera's time offset from the person
    (:func:`~epiflow.calibration.sync.synchronize`, on the source's own joints when kept), then
    every view interpolated onto camera 0's frame times in the store; the raw detections are
    kept (:meth:`~epiflow.store.Session.write_synchronized`), so a rerun starts from them."""
    from epiflow.calibration.sync import CameraStreams, synchronize, to_first_camera
    sync = s.time_sync
    names, size = s.camera_names, s.image_size

    def streams(source: bool) -> CameraStreams:
        raw = s.raw_keypoints(source)[:, :, 0]                      # one person: slot 0
        joint_set = s.source_joint_set if source else s.joint_set
        return CameraStreams.from_padded(raw, sync["n_frames"], sync["fps"], names, joint_set,
                                         size)
    source = s.keypoints2d_source is not None
    result = synchronize(streams(source))
    moved = [to_first_camera(streams(src), result.offsets, s.n_frames).data[:, :, None]
             for src in (False, True) if src is False or source]
    report = result.report(names)
    s.write_synchronized(moved[0], moved[1] if source else None, result.offsets, report)
    return report


def _calibrate(s: Session, session_cfg: SessionConfig, cfg: RunConfig) -> dict:
    sync = s.time_sync
    if sync and not sync.get("done"):
        _synchronize(s)
    rig, method, report = calibrate_session(s, session_cfg, cfg.calibrate)
    if s.time_sync:
        report = {**report, "sync": s.time_sync["report"],
                  "warnings": [*report.get("warnings", []),
                               *s.time_sync["report"]["warnings"]]}
    s.write_rig(rig, method, report)
    s.set_status("calibrate", "done")
    return {"method": method}


def _triangulate(s: Session, cfg: RunConfig) -> dict:
    summary = triangulate_session(s, cfg.triangulate)
    s.update_attrs(labels=summary)
    s.set_status("triangulate", "done")
    return summary


def finish_session(store_url: str, session_cfg: SessionConfig, cfg: RunConfig) -> SessionOutcome:
    """Run the stages after detection on one session of the store, skipping those done."""
    s = PoseStore.open(store_url, "a").session(session_cfg.name)
    frames = s.n_frames * len(s.camera_names)
    outcome = SessionOutcome(s.id, [])
    steps = (("detect", _check_detected, (s,)), ("calibrate", _calibrate, (s, session_cfg, cfg)),
             ("triangulate", _triangulate, (s, cfg)))
    for stage, fn, args in steps:
        if s.status.get(stage) == "done":
            continue
        try:
            _, record = timed(stage, s.id, frames, fn, *args)
        except Exception as err:  # recorded in the store and the report; the run goes on
            reason = f"{type(err).__name__}: {err}"
            s.mark_failed(stage, reason)
            outcome.failed_stage, outcome.reason = stage, reason
            outcome.records.append(StageRecord(stage, s.id, 0, time.time(), time.time(),
                                               {"traceback": traceback.format_exc(limit=-3)}))
            return outcome
        if stage != "detect":
            outcome.records.append(record)
    s.mark_complete()
    return outcome
