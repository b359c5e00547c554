"""The pipeline on Ray: ingest tasks, a detector actor pool, per-session finishing tasks.

One driver loop advances every session through its stages as results arrive, so many sessions
run at once: ingest (a task per session) → detection units (fed to a pool of
:class:`~epiflow.pipeline.detect.DetectWorker` actors, each writing its units into the store
itself) → calibrate and triangulate (a task per session) → complete. Work already recorded as
done in the store is skipped, so the same command after a crash finishes the store. A session
that fails is recorded with its reason; the others go on.

Ray: a local Ray is started by default (``ray.num_cpus`` CPUs, the machine's count when 0), or
an existing cluster is joined (``ray.address``); a Ray already initialised in this process is
used as it is. The store must be reachable from every node (a shared folder or an object-store
URL).
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field, replace

from epiflow.pipeline.config import RunConfig, SessionConfig
from epiflow.pipeline.detect import DetectUnit, DetectWorker, UnitResult
from epiflow.pipeline.ingest import IngestResult, ingest_session, plan_sessions
from epiflow.pipeline.report import RunReport, report_url
from epiflow.pipeline.scheduler import UnitScheduler
from epiflow.pipeline.stages import SessionOutcome, StageRecord, finish_session, timed
from epiflow.store import PoseStore

__all__ = ["run_pipeline", "ray_runtime"]

log = logging.getLogger(__name__)


def use_cluster_token() -> None:
    """Send the Ray cluster's auth token when joining one that has a token here (``ray start``
    enables token auth by default; ``ray.init(address=...)`` only sends the token in token
    mode). Respects ``RAY_AUTH_MODE`` when it is set."""
    try:
        from ray._private.authentication import authentication_token_setup as auth
    except ImportError:  # a Ray without token authentication
        return
    quiet = logging.getLogger(auth.__name__)
    level, quiet.level = quiet.level, logging.ERROR
    try:
        auth.maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    finally:
        quiet.setLevel(level)


@contextlib.contextmanager
def ray_runtime(cfg):
    """Start or join Ray for the run; yields a dict describing it. Shuts down only what it
    started (a Ray already initialised in this process is left running)."""
    import ray
    if ray.is_initialized():
        yield {"address": "existing", "cpus": ray.cluster_resources().get("CPU", 0)}
        return
    quiet = dict(logging_level=logging.ERROR, log_to_driver=cfg.log_to_driver,
                 configure_logging=True)
    if cfg.address:
        use_cluster_token()
        ray.init(address=cfg.address, **quiet)
    else:
        ray.init(num_cpus=cfg.num_cpus or os.cpu_count(), include_dashboard=False, **quiet)
    try:
        yield {"address": cfg.address or "local", "cpus": ray.cluster_resources().get("CPU", 0)}
    finally:
        ray.shutdown()


def _ingest_task(url: str, session: SessionConfig, cfg: RunConfig):
    return timed("ingest", session.name, 0, ingest_session, url, session, cfg)


@dataclass
class _SessionState:
    cfg: SessionConfig
    frames: int = 0
    remaining: set = field(default_factory=set)
    failed: bool = False


class _Driver:
    """The event loop: submits work, reacts to results, keeps the bars and the records."""

    def __init__(self, cfg: RunConfig, url: str, sessions: list[SessionConfig], progress: bool):
        import ray
        from tqdm import tqdm
        self.ray, self.cfg, self.url = ray, cfg, url
        self.states = {s.name: _SessionState(s) for s in sessions}
        self.inflight: dict = {}
        self.scheduler = UnitScheduler()
        self.workers: list = []
        self.busy: list[int] = []
        self.records: list[StageRecord] = []
        self.report = RunReport(store=url)
        self.t0 = time.time()
        bar = dict(disable=not progress, dynamic_ncols=True, leave=True)
        self.bars = {"ingest": tqdm(total=len(sessions), desc="ingest", unit="session", **bar),
                     "detect": tqdm(total=0, desc="detect", unit="frame", **bar),
                     "finish": tqdm(total=0, desc="calibrate+triangulate", unit="session", **bar)}

    # -- submitting ----------------------------------------------------------------------------
    def _submit(self, kind: str, payload, fn, *args, **options):
        ref = self.ray.remote(fn).options(**options).remote(*args)
        self.inflight[ref] = (kind, payload)

    def start(self) -> None:
        """Start the detector pool (when a session has frames to detect) and every ingest."""
        if any(s.cfg.kind in ("videos", "frames") for s in self.states.values()):
            self._start_pool(self._pool_size())
        opts = dict(num_cpus=self.cfg.ingest.num_cpus, max_retries=3)
        for state in self.states.values():
            self._submit("ingest", state.cfg.name, _ingest_task, self.url, state.cfg, self.cfg,
                         **opts)

    def _finish(self, sid: str) -> None:
        cpus = max(self.cfg.calibrate.num_cpus, self.cfg.triangulate.num_cpus)
        self.bars["finish"].total += 1
        self.bars["finish"].refresh()
        self._submit("finish", sid, finish_session, self.url, self.states[sid].cfg, self.cfg,
                     num_cpus=cpus, max_retries=3)

    def _pool_size(self) -> int:
        d = self.cfg.detect
        if d.pool_size:
            return d.pool_size
        cpus = self.ray.cluster_resources().get("CPU", 1)
        return max(1, int(cpus // d.num_cpus) if d.num_cpus else int(cpus))

    def _start_pool(self, n: int) -> None:
        d = self.cfg.detect
        joint_set = self.cfg.store.joint_set
        if joint_set == "source":
            from epiflow.pipeline.detectors import MediaPipeDetector
            joint_set = MediaPipeDetector.joint_set
        actor = self.ray.remote(DetectWorker).options(
            num_cpus=d.num_cpus, num_gpus=d.num_gpus, max_restarts=3, max_task_retries=3)
        self.workers = [actor.remote(d, joint_set) for _ in range(n)]
        self.busy = [0] * n
        self.report.ray["detect_pool_size"] = n

    def feed(self) -> None:
        """Give every worker slot a unit while there are units."""
        if not self.workers and len(self.scheduler):
            self._start_pool(min(self._pool_size(), len(self.scheduler)))
        for w, worker in enumerate(self.workers):
            while self.busy[w] < self.cfg.detect.inflight:
                unit = self.scheduler.next_for(w)
                if unit is None:
                    return
                self.inflight[worker.run.remote(unit)] = ("detect", (w, unit))
                self.busy[w] += 1

    def release_pool(self) -> None:
        """Kill the detector actors once no detection work can come (frees their CPUs)."""
        pending = any(k in ("ingest", "detect") for k, _ in self.inflight.values())
        if self.workers and not pending and not len(self.scheduler):
            for worker in self.workers:
                self.ray.kill(worker)
            self.workers, self.busy = [], []

    # -- results -------------------------------------------------------------------------------
    def _when(self) -> dict:
        return {"finished_s": round(time.time() - self.t0, 3)}

    def fail(self, sid: str, stage: str, reason: str, in_store: bool = False) -> None:
        """Record a session's failure in the report (and in the store unless it is there)."""
        state = self.states[sid]
        if state.failed:
            return
        state.failed = True
        self.scheduler.drop_session(sid)
        self.report.failures.append({"session": sid, "stage": stage, "reason": reason})
        self.report.sessions[sid] = {"status": "failed", "frames": state.frames,
                                     "stage": stage, "reason": reason, **self._when()}
        if not in_store:
            PoseStore.open(self.url, "a").record_failure(sid, stage, reason)

    def on_ingest(self, sid: str, out) -> None:
        self.bars["ingest"].update(1)
        result, record = out
        result: IngestResult
        state = self.states[sid]
        state.frames = result.n_frames * result.n_cameras
        self.records.append(replace(record, frames=state.frames))
        self.report.warnings += result.warnings
        if result.complete:
            self.report.sessions[sid] = {"status": "already complete", "frames": 0}
            return
        streams = result.streams
        units = [DetectUnit(self.url, sid, u, c, streams[c], *result.unit_frames[u])
                 for u, c in result.pending_units]
        if units:
            state.remaining = {(u.unit, u.camera) for u in units}
            self.scheduler.add(units)
            self.bars["detect"].total += sum(u.stop - u.start for u in units)
            self.bars["detect"].refresh()
        else:
            self._finish(sid)

    def on_detect(self, payload, result: UnitResult) -> None:
        w, unit = payload
        self.busy[w] -= 1
        self.bars["detect"].update(result.frames)
        self.records.append(StageRecord("detect", unit.session_id, result.frames,
                                        result.started, result.finished,
                                        {"decode_s": result.decode_s, "detect_s": result.detect_s}))
        state = self.states[unit.session_id]
        state.remaining.discard((unit.unit, unit.camera))
        if not state.remaining and not state.failed:
            self._finish(unit.session_id)

    def on_finish(self, sid: str, outcome: SessionOutcome) -> None:
        self.bars["finish"].update(1)
        self.records += outcome.records
        if outcome.failed_stage:
            self.fail(sid, outcome.failed_stage, outcome.reason, in_store=True)
        else:
            self.report.sessions[sid] = {"status": "complete", "frames": self.states[sid].frames,
                                         **self._when()}

    def handle(self, ref) -> None:
        kind, payload = self.inflight.pop(ref)
        try:
            out = self.ray.get(ref)
        except Exception as err:  # a task's exception: its session fails, the others go on
            sid = payload if isinstance(payload, str) else payload[1].session_id
            if kind == "detect":
                self.busy[payload[0]] -= 1
            self.fail(sid, kind, _reason(err))
            return
        if kind == "ingest":
            self.on_ingest(payload, out)
        elif kind == "detect":
            self.on_detect(payload, out)
        else:
            self.on_finish(payload, out)

    def loop(self) -> None:
        self.start()
        while self.inflight:
            ready, _ = self.ray.wait(list(self.inflight), num_returns=1)
            for ref in ready:
                self.handle(ref)
            self.feed()
            self.release_pool()
        for bar in self.bars.values():
            bar.close()


def _reason(err: Exception) -> str:
    """The root cause of a Ray task error, one line."""
    cause = getattr(err, "cause", None) or err
    if isinstance(cause, Exception) and cause is not err:
        return f"{type(cause).__name__}: {cause}"
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__


def run_pipeline(cfg: RunConfig, progress: bool = True, overwrite: bool = False) -> RunReport:
    """Run every session of ``cfg`` into the store ``cfg.out``; returns the run report (also
    written as JSON next to the store).

    Sessions already complete with the same settings are skipped; partly done ones resume.
    ``overwrite`` deletes this run's sessions from the store first.
    """
    if not cfg.out:
        raise ValueError("no output store: set 'out' in the config or pass --out STORE.zarr")
    sessions = plan_sessions(cfg)
    store = PoseStore.open(cfg.out, "a")
    if overwrite:
        for s in sessions:
            if s.name in store:
                store.delete_session(s.name)
    t0 = time.time()
    with ray_runtime(cfg.ray) as info:
        ray_start = time.time() - t0
        driver = _Driver(cfg, cfg.out, sessions, progress)
        driver.report.ray.update(info)
        driver.loop()
    report = driver.report
    end = time.time()
    report.wall_s, report.ray_start_s = round(end - t0, 3), round(ray_start, 3)
    report.stages = RunReport.stage_stats(driver.records)
    detected = [r.finished for r in driver.records if r.stage == "detect"]
    report.after_detect_s = round(end - max(detected), 3) if detected else None
    report.write(report_url(cfg.out, cfg.report))
    return report
