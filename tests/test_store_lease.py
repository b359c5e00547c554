"""The writer's lease on a store (issue 13, defect 6: two runs on one store both redid all the
work and both wrote the report). A second writer is refused while a live process holds the
lease, or waits for it; the lease of a killed process is taken over."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from epiflow.store import PoseStore
from epiflow.store_lease import LEASE_NAME, LeaseError, LeaseHolder, StoreLease, _boot_id

#: a second process that takes the lease, says so, then holds it ``argv[2]`` seconds and gives
#: it back (or is killed first)
HOLDER = ("import sys, time\n"
          "from epiflow.store_lease import StoreLease\n"
          "with StoreLease(sys.argv[1]):\n"
          "    print('held', flush=True)\n"
          "    time.sleep(float(sys.argv[2]))\n")


@pytest.fixture
def store(tmp_path) -> str:
    url = str(tmp_path / "S.zarr")
    PoseStore.open(url, "a")
    return url


@pytest.fixture
def holder(store):
    """Start a process that holds ``store``'s lease for ``seconds``; it is killed at teardown."""
    procs = []

    def start(seconds: float = 60.0) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, store, str(seconds)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        line = proc.stdout.readline().strip()
        assert line == "held", proc.stderr.read()
        return proc
    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def _lease(store: str) -> dict:
    return json.loads((Path(store) / LEASE_NAME).read_text())


def test_refused_while_a_live_process_holds_it(store, holder):
    proc = holder()
    t0 = time.time()
    with pytest.raises(LeaseError) as err:
        StoreLease(store).acquire()
    assert time.time() - t0 < 2.0                       # refused at once, not after a wait
    text = str(err.value)
    assert f"pid {proc.pid} on host {socket.gethostname()} since " in text
    assert "--wait-lease SECONDS" in text and LEASE_NAME in text
    assert _lease(store)["pid"] == proc.pid             # the holder's lease is left alone


def test_a_second_run_is_refused_before_it_writes(store, holder, capsys, monkeypatch):
    """``epiflow run`` on a store another run holds: exit 2 naming the holder, before Ray starts,
    with no session and no report written."""
    from epiflow.cli import main
    import ray

    def no_ray(*args, **kwargs):   # an earlier test may have left a Ray up: watch for a start
        raise AssertionError("ray.init was called while another run held the store")
    monkeypatch.setattr(ray, "init", no_ray)
    proc = holder()
    code = main(["run", "--synthetic", "2", "--out", store, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and f"pid {proc.pid}" in err and "being written by another" in err, err
    assert PoseStore.open(store).session_ids() == []
    assert not Path(store + ".report.json").exists()


def test_run_names_itself_when_it_waits(store, holder, capsys):
    """``epiflow run --wait-lease``: the waiting line starts ``epiflow run:`` like the run's other
    lines (it said ``epiflow:``); after the wait, refused, exit 2, nothing written."""
    from epiflow.cli import main
    holder()
    code = main(["run", "--synthetic", "2", "--out", store, "--quiet", "--wait-lease", "1"])
    err = capsys.readouterr().err.splitlines()
    start = f"epiflow run: store {store!r} is being written by "
    assert code == 2 and err[0].startswith(start), err
    assert "waiting up to 1 s" in err[0] and err[-1].startswith("epiflow run: error: "), err
    assert "(waited 1 s)" in err[-1] and PoseStore.open(store).session_ids() == []


def test_waits_for_the_holder_when_asked(store, holder):
    said = []
    proc = holder(seconds=1.0)
    t0 = time.time()
    with StoreLease(store, wait_s=30, log=said.append):
        waited = time.time() - t0
        assert _lease(store)["pid"] == os.getpid()
    assert proc.wait(10) == 0
    assert 0.2 < waited < 10 and len(said) == 1 and "waiting up to 30 s" in said[0]
    assert f"pid {proc.pid}" in said[0]
    with pytest.raises(LeaseError, match=r"\(waited 1 s\)"):
        holder(seconds=60)
        StoreLease(store, wait_s=1).acquire()


def test_a_killed_holder_is_taken_over(store, holder):
    proc = holder()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert _lease(store)["pid"] == proc.pid             # a SIGKILL leaves the lease behind
    said = []
    with StoreLease(store, log=said.append):
        assert _lease(store)["pid"] == os.getpid()
    assert len(said) == 1 and "taking over the stale lease" in said[0]
    assert f"process {proc.pid} no longer runs on this host" in said[0]
    assert not (Path(store) / LEASE_NAME).exists()      # given back


def _foreign(store: str, heartbeat_age: float) -> None:
    now = time.time()
    lease = LeaseHolder("elsewhere", "other-boot", 4242, "1", now - 3600, now - heartbeat_age, "t")
    (Path(store) / LEASE_NAME).write_text(json.dumps(lease.__dict__))


def test_another_hosts_lease_holds_until_its_heartbeat_is_old(store):
    _foreign(store, heartbeat_age=5)
    with pytest.raises(LeaseError, match="pid 4242 on host elsewhere .*heartbeat 5 s ago"):
        StoreLease(store, stale_after_s=60).acquire()
    _foreign(store, heartbeat_age=600)
    said = []
    with StoreLease(store, stale_after_s=60, log=said.append):
        pass
    assert len(said) == 1 and "its heartbeat is 600 s old (stale after 60 s)" in said[0]


def test_same_pid_after_a_reboot_is_another_host(store):
    """A lease of this host's name from an earlier boot is judged by its heartbeat: the pid it
    names may be running something else now."""
    now = time.time()
    lease = LeaseHolder(socket.gethostname(), "an-earlier-boot", os.getpid(), "1", now, now, "t")
    (Path(store) / LEASE_NAME).write_text(json.dumps(lease.__dict__))
    with pytest.raises(LeaseError):
        StoreLease(store, stale_after_s=60).acquire()
    if _boot_id():
        lease = LeaseHolder(socket.gethostname(), _boot_id(), os.getpid(), "1", now, now, "t")
        (Path(store) / LEASE_NAME).write_text(json.dumps(lease.__dict__))
        said = []
        with StoreLease(store, log=said.append):   # our pid, but another start time: reused
            pass
        assert "is another process than the holder" in said[0]


def test_heartbeat_and_release_on_error(store):
    with pytest.raises(RuntimeError, match="boom"):
        with StoreLease(store, heartbeat_s=0.05):
            first = _lease(store)
            time.sleep(0.3)
            later = _lease(store)
            raise RuntimeError("boom")
    assert later["token"] == first["token"] and later["heartbeat"] > first["heartbeat"] + 0.1
    assert not (Path(store) / LEASE_NAME).exists()


def test_unreadable_lease_file_is_taken_over(store):
    (Path(store) / LEASE_NAME).write_text("not json")
    said = []
    with StoreLease(store, log=said.append):
        assert _lease(store)["pid"] == os.getpid()
    assert "unreadable lease file" in said[0]


def test_fsspec_url():
    pytest.importorskip("fsspec")
    url = "memory://epiflow-lease-test/S.zarr"
    PoseStore.open(url, "a")
    with StoreLease(url):
        with pytest.raises(LeaseError, match=f"pid {os.getpid()}"):
            StoreLease(url).acquire()
    with StoreLease(url):   # given back: free again
        pass


def test_run_pipeline_holds_the_lease_while_it_works(store, monkeypatch):
    """run_pipeline takes the lease before its first write and gives it back after, also when
    the work fails."""
    from epiflow.pipeline import orchestrate
    from epiflow.pipeline.config import RunConfig
    seen = []

    def work(cfg, *args):
        seen.append(_lease(store)["pid"])
        raise RuntimeError("the work failed")
    monkeypatch.setattr(orchestrate, "_run_leased", work)
    with pytest.raises(RuntimeError, match="the work failed"):
        orchestrate.run_pipeline(RunConfig(out=store, synthetic_sessions=1), progress=False)
    assert seen == [os.getpid()] and not (Path(store) / LEASE_NAME).exists()
