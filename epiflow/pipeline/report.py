"""The run report: per stage frames/s, per session outcome, failures and warnings; written as JSON
next to the store and printed as a short table."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

from epiflow.outputs import atomic_write_text

__all__ = ["StageRecord", "SessionOutcome", "timed", "RunReport", "report_url"]

STAGE_ORDER = ("ingest", "detect", "calibrate", "triangulate")


@dataclass(frozen=True)
class StageRecord:
    """One stage run on one session: wall-clock start and end (``time.time()`` seconds), the
    camera-frames (T x C) it covered, and what it says of itself."""

    stage: str
    session_id: str
    frames: int
    started: float
    finished: float
    info: dict = field(default_factory=dict)


def timed(stage: str, session_id: str, frames: int, fn, *args) -> tuple[object, StageRecord]:
    """Run ``fn(*args)`` and time it as a :class:`StageRecord`."""
    started = time.time()
    out = fn(*args)
    return out, StageRecord(stage, session_id, frames, started, time.time(),
                            out if isinstance(out, dict) else {})


@dataclass
class SessionOutcome:
    """The result of :func:`finish_session`: stage records and, when it failed, where and why."""

    session_id: str
    records: list[StageRecord]
    failed_stage: str | None = None
    reason: str | None = None


@dataclass
class RunReport:
    """What a run did.

    Attributes:
        store: the store's URL. wall_s: the run's wall time (Ray start-up included, the
            shutdown of a Ray the run started not), seconds.
        ray_start_s: seconds to start or join Ray; ray_stop_s: to shut down one the run
            started (0 when joined). ray: address, CPUs, detector pool size.
        stages: stage -> {units, frames (camera-frames, T x C), wall_s (first start to last end),
            busy_s (summed over workers), frames_per_s (frames / wall_s), cpu_s (detect: CPU
            seconds of the workers' processes)}.
        sessions: session id -> {status: complete / failed / already complete, frames,
            finished_s (seconds after the driver started), and for failures stage, reason;
            unsynchronized cameras: time_offset_s {camera: seconds on the first camera's clock
            at which its first frame was taken}}.
        failures: [{session, stage, reason}]. warnings: ``session ID: text``, every warning the
            store holds for the run's sessions (ingest, calibration, triangulation).
        after_detect_s: seconds from the last detection unit's end to the end of the work.
    """

    store: str
    wall_s: float = 0.0
    ray_start_s: float = 0.0
    ray_stop_s: float = 0.0
    after_detect_s: float | None = None
    ray: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)
    sessions: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    @staticmethod
    def stage_stats(records: list[StageRecord]) -> dict:
        """Per stage: units, frames, wall_s, busy_s, frames_per_s, from the stage records."""
        out = {}
        for stage in STAGE_ORDER:
            recs = [r for r in records if r.stage == stage]
            if not recs:
                continue
            wall = max(r.finished for r in recs) - min(r.started for r in recs)
            frames = sum(r.frames for r in recs)
            out[stage] = {"units": len(recs), "frames": frames, "wall_s": round(wall, 3),
                          "busy_s": round(sum(r.finished - r.started for r in recs), 3),
                          "frames_per_s": round(frames / wall, 2) if wall > 0 else None}
            if all("cpu_s" in r.info for r in recs):
                out[stage]["cpu_s"] = round(sum(r.info["cpu_s"] for r in recs), 3)
        return out

    @property
    def complete(self) -> list[str]:
        return [s for s, v in self.sessions.items() if v["status"] != "failed"]

    def table(self) -> str:
        """A short text table: one row per stage, then the total and the failures (the warnings
        are printed apart, to stderr, by the command)."""
        rows = [f"{'stage':<12}{'units':>7}{'frames':>9}{'wall s':>9}{'busy s':>9}{'frames/s':>10}"]
        for stage, v in self.stages.items():
            fps = "-" if v["frames_per_s"] is None else f"{v['frames_per_s']:.1f}"
            rows.append(f"{stage:<12}{v['units']:>7}{v['frames']:>9}{v['wall_s']:>9.2f}"
                        f"{v['busy_s']:>9.2f}{fps:>10}")
        frames = sum(v.get("frames", 0) for v in self.sessions.values())
        total_fps = f"{frames / self.wall_s:.1f}" if self.wall_s else "-"
        rows.append(f"{'total':<12}{'':>7}{frames:>9}{self.wall_s:>9.2f}{'':>9}{total_fps:>10}"
                    f"   (Ray start {self.ray_start_s:.1f} s, stop {self.ray_stop_s:.1f} s "
                    f"after)")
        if self.after_detect_s is not None:
            rows.append(f"after the last detection unit: {self.after_detect_s:.2f} s "
                        f"({100 * self.after_detect_s / max(self.wall_s, 1e-9):.1f}% of the wall time)")
        n_ok, n = len(self.complete), len(self.sessions)
        rows.append(f"sessions: {n_ok} of {n} complete, {len(self.failures)} failed")
        rows += [f"  FAILED {f['session']} at {f['stage']}: {f['reason']}" for f in self.failures]
        return "\n".join(rows)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

    def write(self, url: str) -> None:
        """Write the JSON to a path (written whole, then renamed) or an fsspec URL."""
        if "://" in url:
            import fsspec
            with fsspec.open(url, "w") as f:
                f.write(self.to_json())
            return
        atomic_write_text(url, self.to_json())


def report_url(store_url: str, report: str = "") -> str:
    """Where the report goes: ``report`` when given, else ``<store>.report.json`` beside it."""
    return report or str(store_url).rstrip("/") + ".report.json"
