"""Kill and resume: ``epiflow run`` (a subprocess against the loopback Ray head, ``--address``)
is SIGKILLed mid-run; the store never claims more than is written, and the same command again
finishes it with the same arrays as an uninterrupted run, redoing only what was not done."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from epiflow.cli import build_parser
from epiflow.cli.run import config_from_args
from epiflow.pipeline.orchestrate import run_pipeline
from epiflow.store import PoseStore

pytestmark = pytest.mark.ray

EPIFLOW = Path(sys.executable).with_name("epiflow")
N_SESSIONS = 6


def _argv(out: Path, address: str) -> list[str]:
    return ["run", "--synthetic", str(N_SESSIONS), "--out", str(out), "--address", address,
            "--quiet", "--set", "synthetic.frames=60", "--set", "detect.chunk_frames=20"]


def _complete(url: str) -> list[str]:
    try:
        return PoseStore.open(url).session_ids(complete_only=True)
    except (FileNotFoundError, KeyError, ValueError):
        return []


def _run_and_kill(argv: list[str], out: Path, timeout: float = 120) -> list[str]:
    """Start ``epiflow run``; SIGKILL it once some but not all sessions are complete."""
    proc = subprocess.Popen([str(EPIFLOW), *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            done = _complete(str(out))
            if 0 < len(done) < N_SESSIONS:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
                return done
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    pytest.fail(f"the run ended (rc {proc.returncode}) before it could be killed mid-way: "
                f"{proc.stderr.read().decode()[-2000:]}")


def test_driver_killed_then_resumed_equals_uninterrupted(ray_head, tmp_path, same_sessions):
    out, ref = tmp_path / "resumed.zarr", tmp_path / "reference.zarr"
    done_at_kill = _run_and_kill(_argv(out, ray_head["address"]), out)
    time.sleep(1.0)   # the killed driver's Ray job is being cleaned up
    store = PoseStore.open(out)
    assert len(store.session_ids(complete_only=True)) < N_SESSIONS

    again = subprocess.run([str(EPIFLOW), *_argv(out, ray_head["address"])],
                           capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "taking over the stale lease" in again.stderr    # the killed run's lease, not a block
    assert "no longer runs on this host" in again.stderr
    assert f"{N_SESSIONS} of {N_SESSIONS} complete" in again.stdout

    args = build_parser().parse_args(_argv(ref, ray_head["address"]))
    run_pipeline(config_from_args(args), progress=False)
    ids = [f"synthetic_{i:04d}" for i in range(N_SESSIONS)]
    same_sessions(str(ref), str(out), ids)

    report = json.loads(Path(str(out) + ".report.json").read_text())
    skipped = [s for s, v in report["sessions"].items() if v["status"] == "already complete"]
    assert set(done_at_kill) <= set(skipped)                  # not redone
    assert report["stages"]["triangulate"]["units"] <= N_SESSIONS - len(done_at_kill)
