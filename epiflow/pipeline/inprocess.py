"""The pipeline in this process, without Ray: the same stages (:func:`ingest_session`, then
:func:`finish_session`: calibrate, triangulate, complete), one session after the other.

For runs with nothing to detect (keypoint files, synthetic captures), where Ray's start-up would
cost more than the work: a training recipe that builds its store runs this way. Starting a local
Ray took 21.7 s of the quick demo's 56.7 s pipeline on a busy 2-core machine; the work itself
(three synthetic clips, cameras from people, labels) took the rest. The store, its stage status,
resume and the run report are the same as with Ray (:func:`~epiflow.pipeline.orchestrate.run_pipeline`
chooses this with ``in_process=True``).
"""
from __future__ import annotations

import time
from dataclasses import replace

from epiflow.config import ConfigError
from epiflow.pipeline.config import RunConfig, SessionConfig
from epiflow.pipeline.ingest import ingest_session
from epiflow.pipeline.report import RunReport, StageRecord, timed
from epiflow.pipeline.stages import finish_session
from epiflow.store import PoseStore

__all__ = ["IN_PROCESS_SOURCES", "check_in_process", "run_in_process"]

#: Sources that need no detection, so no actor pool: they run in this process.
IN_PROCESS_SOURCES = ("keypoints", "synthetic")


def check_in_process(sessions: list[SessionConfig]) -> None:
    """Refuse, before anything is written, sessions that need 2D detection (videos, frames)."""
    need = [f"{s.name} ({s.kind})" for s in sessions if s.kind not in IN_PROCESS_SOURCES]
    if need:
        raise ConfigError(f"sessions {', '.join(need)} need 2D detection, which runs on Ray; "
                          f"run them without in_process (only {', '.join(IN_PROCESS_SOURCES)} "
                          f"sources run in this process)")


def _one_session(cfg: RunConfig, session: SessionConfig, report: RunReport,
                 records: list[StageRecord], t0: float) -> None:
    """Ingest and finish one session, recording its outcome in ``report`` and ``records``."""
    sid = session.name
    try:
        result, record = timed("ingest", sid, 0, ingest_session, cfg.out, session, cfg)
    except Exception as err:  # recorded in the store and the report; the run goes on
        reason = f"{type(err).__name__}: {err}"
        PoseStore.open(cfg.out, "a").record_failure(sid, "ingest", reason)
        report.failures.append({"session": sid, "stage": "ingest", "reason": reason})
        report.sessions[sid] = {"status": "failed", "frames": 0, "stage": "ingest",
                                "reason": reason, "finished_s": round(time.time() - t0, 3)}
        return
    frames = result.n_frames * result.n_cameras
    records.append(replace(record, frames=frames))
    if result.complete:
        report.sessions[sid] = {"status": "already complete", "frames": 0}
        return
    outcome = finish_session(cfg.out, session, cfg)
    records.extend(outcome.records)
    done = {"frames": frames, "finished_s": round(time.time() - t0, 3)}
    if outcome.failed_stage:
        report.failures.append({"session": sid, "stage": outcome.failed_stage,
                                "reason": outcome.reason})
        report.sessions[sid] = {"status": "failed", "stage": outcome.failed_stage,
                                "reason": outcome.reason, **done}
    else:
        report.sessions[sid] = {"status": "complete", **done}


def run_in_process(cfg: RunConfig, sessions: list[SessionConfig], progress: bool) -> RunReport:
    """Run ``sessions`` of ``cfg`` into the store ``cfg.out`` here, one after the other.

    Returns:
        The run report (``ray`` says ``in-process``); the caller adds the stored warnings and
        writes it.
    """
    from tqdm.auto import tqdm
    check_in_process(sessions)
    report = RunReport(store=cfg.out, ray={"address": "in-process", "cpus": 1})
    records: list[StageRecord] = []
    t0 = time.time()
    for session in tqdm(sessions, desc="sessions", unit="session", disable=not progress):
        _one_session(cfg, session, report, records, t0)
    report.wall_s = round(time.time() - t0, 3)
    report.stages = RunReport.stage_stats(records)
    return report
