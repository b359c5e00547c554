"""The pipeline on Ray: a pool of session workers and a pool of detector actors, driven by one
event loop.

Every session goes ingest (its group created: in the driver for video and image folders, which
are only probed, else by a session worker) → detection units (fed to the
:class:`~epiflow.pipeline.detect.DetectWorker` pool, each worker writing its units into the
store itself) → calibrate and triangulate (a session worker) → complete. The loop advances each
session as its results arrive, so many sessions are in flight at once. Work the store records as
done is skipped, so the same command after a crash finishes the store. A session that fails is
recorded with its reason; the others go on.

Ray: a local Ray is started by default (``ray.num_cpus`` CPUs, the machine's count when 0;
listening on 127.0.0.1 only, no dashboard: :mod:`epiflow.ray_setup`), or
an existing cluster is joined (``ray.address``); a Ray already initialised in this process is
used as it is. Every node must reach the store (a shared folder or an object-store URL) and
the inputs (shared storage; the driver too, for video and image folders).
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field, replace

from epiflow.pipeline.config import RunConfig, SessionConfig
from epiflow.pipeline.detect import DetectUnit, DetectWorker, UnitResult
from epiflow.pipeline.ingest import (IngestResult, check_sources, ingest_session,
                                     plan_sessions)
from epiflow.pipeline.inprocess import check_in_process, run_in_process
from epiflow.pipeline.report import RunReport, StageRecord, report_url, timed
from epiflow.pipeline.scheduler import UnitScheduler
from epiflow.pipeline.workers import SessionWorker
from epiflow.ray_setup import init_local_ray, use_cluster_token
from epiflow.store import PoseStore, storage_env
from epiflow.store_lease import StoreLease

__all__ = ["run_pipeline", "ray_runtime", "use_cluster_token", "stored_warnings"]

#: Ray restarts a killed actor this many times and retries its calls.
RESTARTS = 3
#: Sources whose ingest is a probe of files (done in the driver, no worker needed).
_PROBED = ("videos", "frames")


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
    else:  # on 127.0.0.1 only, no dashboard, Ray's token authentication
        init_local_ray(cfg.num_cpus or os.cpu_count(), **quiet)
    try:
        yield {"address": cfg.address or "local", "cpus": ray.cluster_resources().get("CPU", 0)}
    finally:
        ray.shutdown()


class _Pool:
    """Actors of one kind and how many calls each has in flight."""

    def __init__(self, ray, cls, n: int, args: tuple, ping: bool = False,
                 env: dict | None = None, **options):
        if env:  # the object store's credentials and endpoint (store.storage_env)
            options["runtime_env"] = {"env_vars": env}
        actor = ray.remote(cls).options(max_restarts=RESTARTS, max_task_retries=RESTARTS,
                                        **options)
        self.ray, self.actors = ray, [actor.remote(*args) for _ in range(n)]
        self.busy = [0] * n
        # ``ping``: a first call to an actor pays for setting up its connection (0.2-0.25 s
        # measured on 2 cores); paid now, it overlaps the run's start instead of delaying the
        # first session handed to an idle session worker after detection (the Pose2Sim demo's
        # time after detection: 1.0 -> 0.8 s). Detectors get their first unit at once anyway.
        self.pinged = [a.ping.remote() for a in self.actors] if ping else []

    def least_busy(self) -> int:
        return min(range(len(self.actors)), key=self.busy.__getitem__)

    def kill(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.actors, self.busy = [], []


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
        self.to_probe: deque[str] = deque()
        self.scheduler = UnitScheduler()
        self.detectors: _Pool | None = None
        self.records: list[StageRecord] = []
        self.report = RunReport(store=url)
        self.t0 = time.time()
        cpus = int(ray.cluster_resources().get("CPU", 1))
        w = cfg.workers
        self.sessions = _Pool(ray, SessionWorker, min(w.pool_size or cpus, len(sessions)), (),
                              ping=True, env=storage_env(url), num_cpus=w.num_cpus,
                              num_gpus=w.num_gpus)
        bar = dict(disable=not progress, dynamic_ncols=True, leave=True)
        self.bars = {"ingest": tqdm(total=len(sessions), desc="ingest", unit="session", **bar),
                     "detect": tqdm(total=0, desc="detect", unit="frame", **bar),
                     "finish": tqdm(total=0, desc="calibrate+triangulate", unit="session", **bar)}

    # -- submitting ----------------------------------------------------------------------------
    def _call_session_worker(self, kind: str, sid: str) -> None:
        i = self.sessions.least_busy()
        method = getattr(self.sessions.actors[i], kind)
        self.inflight[method.remote(self.url, self.states[sid].cfg, self.cfg)] = (kind, (i, sid))
        self.sessions.busy[i] += 1

    def start(self) -> None:
        """Start the detector pool (when a session has frames to detect) and the ingests:
        video and image folders are only probed, here in the driver; the others (keypoint
        files, synthesis) on the session workers."""
        if any(s.cfg.kind in _PROBED for s in self.states.values()):
            self._start_detectors(self._detect_pool_size())
        for sid, state in self.states.items():
            if state.cfg.kind in _PROBED:
                self.to_probe.append(sid)
            else:
                self._call_session_worker("ingest", sid)

    def ingest_here(self, sid: str) -> None:
        """Ingest a video or image-folder session in the driver (a probe of its files)."""
        try:
            out = timed("ingest", sid, 0, ingest_session, self.url, self.states[sid].cfg, self.cfg)
        except Exception as err:  # recorded; the run goes on
            self.fail(sid, "ingest", f"{type(err).__name__}: {err}")
            return
        self.on_ingest(sid, out)

    def _finish(self, sid: str) -> None:
        self.bars["finish"].total += 1
        self.bars["finish"].refresh()
        self._call_session_worker("finish", sid)

    def _detect_pool_size(self) -> int:
        d = self.cfg.detect
        if d.pool_size:
            return d.pool_size
        cpus = self.ray.cluster_resources().get("CPU", 1)
        return max(1, int(cpus // d.num_cpus) if d.num_cpus else int(cpus))

    def _start_detectors(self, n: int) -> None:
        d = self.cfg.detect
        joint_set = self.cfg.store.joint_set
        if joint_set == "source":
            from epiflow.detection.detectors import MediaPipeDetector
            joint_set = MediaPipeDetector.joint_set
        self.detectors = _Pool(self.ray, DetectWorker, n, (d, joint_set),
                               env=storage_env(self.url), num_cpus=d.num_cpus,
                               num_gpus=d.num_gpus)
        self.report.ray["detect_pool_size"] = n

    def feed(self) -> None:
        """Give every detector slot a unit while there are units."""
        if (self.detectors is None or not self.detectors.actors) and len(self.scheduler):
            self._start_detectors(min(self._detect_pool_size(), len(self.scheduler)))
        pool = self.detectors
        for w in range(len(pool.actors) if pool else 0):
            while pool.busy[w] < self.cfg.detect.inflight:
                unit = self.scheduler.next_for(w)
                if unit is None:
                    return
                self.inflight[pool.actors[w].run.remote(unit)] = ("detect", (w, unit))
                pool.busy[w] += 1

    def release_detectors(self) -> None:
        """Kill the detector actors once no detection work can come (frees their CPUs)."""
        pending = self.to_probe or any(k in ("ingest", "detect") for k, _ in self.inflight.values())
        if self.detectors and self.detectors.actors and not pending and not len(self.scheduler):
            self.detectors.kill()

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
        if result.complete:
            self.report.sessions[sid] = {"status": "already complete", "frames": 0}
            return
        units = [DetectUnit(self.url, sid, u, c, result.streams[c], *result.unit_frames[u])
                 for u, c in result.pending_units]
        if not units:
            self._finish(sid)
            return
        state.remaining = {(u.unit, u.camera) for u in units}
        self.scheduler.add(units)
        self.bars["detect"].total += sum(u.stop - u.start for u in units)
        self.bars["detect"].refresh()

    def on_detect(self, unit: DetectUnit, result: UnitResult) -> None:
        self.bars["detect"].update(result.frames)
        self.records.append(StageRecord("detect", unit.session_id, result.frames,
                                        result.started, result.finished,
                                        {"decode_s": result.decode_s, "detect_s": result.detect_s,
                                         "cpu_s": result.cpu_s}))
        state = self.states[unit.session_id]
        state.remaining.discard((unit.unit, unit.camera))
        if not state.remaining and not state.failed:
            self._finish(unit.session_id)

    def on_finish(self, sid: str, outcome) -> None:
        self.bars["finish"].update(1)
        self.records += outcome.records
        if outcome.failed_stage:
            self.fail(sid, outcome.failed_stage, outcome.reason, in_store=True)
        else:
            self.report.sessions[sid] = {"status": "complete", "frames": self.states[sid].frames,
                                         **self._when()}

    def handle(self, ref) -> None:
        kind, (worker, item) = self.inflight.pop(ref)
        pool = self.detectors if kind == "detect" else self.sessions
        if pool.actors:
            pool.busy[worker] -= 1
        try:
            out = self.ray.get(ref)
        except Exception as err:  # a call's exception: its session fails, the others go on
            sid = item.session_id if kind == "detect" else item
            self.fail(sid, kind, _reason(err))
            return
        if kind == "ingest":
            self.on_ingest(item, out)
        elif kind == "detect":
            self.on_detect(item, out)
        else:
            self.on_finish(item, out)

    def _ready(self) -> list:
        """Results ready now (after one driver-side ingest) or the next one to arrive."""
        if self.to_probe:
            self.ingest_here(self.to_probe.popleft())
            refs = list(self.inflight)
            return self.ray.wait(refs, num_returns=len(refs), timeout=0)[0] if refs else []
        return self.ray.wait(list(self.inflight), num_returns=1)[0]

    def loop(self) -> None:
        self.start()
        while self.inflight or self.to_probe:
            for ref in self._ready():
                self.handle(ref)
            self.feed()
            self.release_detectors()
        self.sessions.kill()
        for bar in self.bars.values():
            bar.close()


def _reason(err: Exception) -> str:
    """The root cause of a Ray call's error, one line."""
    cause = getattr(err, "cause", None) or err
    if isinstance(cause, Exception) and cause is not err:
        return f"{type(cause).__name__}: {cause}"
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__


def run_pipeline(cfg: RunConfig, progress: bool = True, overwrite: bool = False,
                 lease_wait_s: float = 0.0, in_process: bool = False,
                 command: str = "run") -> RunReport:
    """Run every session of ``cfg`` into the store ``cfg.out``; returns the run report (also
    written as JSON next to the store).

    Sessions already complete with the same settings are skipped; partly done ones resume.
    ``overwrite`` deletes this run's sessions from the store first. The run holds the store's
    lease (:class:`~epiflow.store_lease.StoreLease`) from before its first write to after the
    report: another run on the store is refused (LeaseError), or waited for up to
    ``lease_wait_s`` seconds. ``in_process``: no Ray, the sessions one after the other here
    (:mod:`epiflow.pipeline.inprocess`; only sources with nothing to detect). ``command``: the
    epiflow command running it, named at the start of what the lease prints (a wait, a takeover).
    """
    if not cfg.out:
        raise ValueError("no output store: set 'out' in the config or pass --out STORE.zarr")
    sessions = plan_sessions(cfg)
    if in_process:
        check_in_process(sessions)
    check_sources(sessions, cfg)  # bad input refused before Ray starts and anything is written
    PoseStore.open(cfg.out, "a")   # refuses what is not a store, creates a new one
    with StoreLease(cfg.out, wait_s=lease_wait_s, command=command):
        return _run_leased(cfg, sessions, progress, overwrite, in_process)


def _run_leased(cfg: RunConfig, sessions: list[SessionConfig], progress: bool,
                overwrite: bool, in_process: bool = False) -> RunReport:
    """:func:`run_pipeline`'s work, under the store's lease."""
    store = PoseStore.open(cfg.out, "a")
    if overwrite:
        for s in sessions:
            if s.name in store:
                store.delete_session(s.name)
    if in_process:  # the same stages, here, without Ray
        report = run_in_process(cfg, sessions, progress)
        report.warnings = stored_warnings(cfg.out, [s.name for s in sessions])
        _time_offsets(report, cfg.out)
        report.write(report_url(cfg.out, cfg.report))
        return report
    t0 = time.time()
    with ray_runtime(cfg.ray) as info:
        ray_start = time.time() - t0
        driver = _Driver(cfg, cfg.out, sessions, progress)
        driver.report.ray.update(info)
        driver.loop()
        end = time.time()  # the work is done; stopping a Ray this run started is reported apart
    report = driver.report
    report.wall_s, report.ray_start_s = round(end - t0, 3), round(ray_start, 3)
    report.ray_stop_s = round(time.time() - end, 3)
    report.stages = RunReport.stage_stats(driver.records)
    detected = [r.finished for r in driver.records if r.stage == "detect"]
    report.after_detect_s = round(end - max(detected), 3) if detected else None
    report.warnings = stored_warnings(cfg.out, [s.name for s in sessions])
    _time_offsets(report, cfg.out)
    report.write(report_url(cfg.out, cfg.report))
    return report


def _time_offsets(report: RunReport, url: str) -> None:
    """Each session of unsynchronized cameras gets ``time_offset_s`` in the report: {camera:
    seconds on its first camera's clock at which the camera's first frame was taken}."""
    store = PoseStore.open(url)
    for sid, info in report.sessions.items():
        sync = store.session(sid).time_sync if sid in store else None
        if sync and sync.get("time_offset"):
            names = store.session(sid).camera_names
            info["time_offset_s"] = dict(zip(names, map(float, sync["time_offset"])))


def stored_warnings(url: str, session_ids: list[str]) -> list[str]:
    """``session ID: warning`` for every warning the store holds for these sessions (ingest,
    calibration, triangulation: :attr:`~epiflow.store.Session.warnings`), those of sessions
    complete from an earlier run included."""
    store = PoseStore.open(url)
    return [f"session {sid}: {w}" for sid in session_ids if sid in store
            for w in store.session(sid).warnings]
