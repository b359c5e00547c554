"""Fixtures of the pipeline tests: one real Ray head on loopback shared by every test that needs
Ray (Ray start-up costs seconds), and small videos written on the spot."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

RAY_BIN = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_head(proc: subprocess.Popen, port: int, timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"`ray start --head` exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise RuntimeError(f"Ray head did not listen on 127.0.0.1:{port} within {timeout} s")


@pytest.fixture(scope="session")
def ray_head():
    """A Ray head started with ``ray start --head`` on 127.0.0.1 (2 CPUs), this test process
    connected to it; yields its address. Teardown stops exactly the processes it started (the
    ``--block`` launcher's process group)."""
    import ray
    from epiflow.pipeline.orchestrate import use_cluster_token
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="efray", dir="/tmp")
    cmd = [str(RAY_BIN), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
           "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp}", "--block",
           "--disable-usage-stats"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        _wait_for_head(proc, port)
        use_cluster_token()
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        yield {"address": address, "pid": proc.pid}
    finally:
        ray.shutdown()
        _stop(proc)
        shutil.rmtree(temp, ignore_errors=True)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the ``ray start --block`` launcher (it stops what it started), then SIGKILL
    whatever is left of its process group."""
    try:
        proc.terminate()
        proc.wait(30)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def write_video(path: Path, n_frames: int, size=(64, 48), fps: float = 30.0) -> Path:
    """A small mp4 whose frame i is a flat grey of level 12 i (mod 252)."""
    import cv2
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(n_frames):
        writer.write(np.full((size[1], size[0], 3), (12 * i) % 252, np.uint8))
    writer.release()
    return path


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process below ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        try:
            cmd = (Path("/proc") / str(p) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        out.append((p, cmd))
        todo += children.get(p, [])
    return out


@pytest.fixture
def make_video():
    """:func:`write_video`, for tests (conftest modules are not imported by name)."""
    return write_video


@pytest.fixture
def process_tree():
    """:func:`descendants`, for tests."""
    return descendants


ARRAYS = ("keypoints2d", "pseudo3d", "pseudo3d_weight", "reproj_error", "pseudo3d_views")


def assert_same_sessions(a: str, b: str, sessions) -> None:
    """Every array and the cameras of ``sessions`` equal in stores ``a`` and ``b``, all complete."""
    from epiflow.store import PoseStore
    sa, sb = PoseStore.open(a), PoseStore.open(b)
    for sid in sessions:
        x, y = sa.session(sid), sb.session(sid)
        assert x.is_complete and y.is_complete, sid
        names = ARRAYS + (("keypoints2d_source",) if "keypoints2d_source" in x.group else ())
        for name in names:
            np.testing.assert_array_equal(x.group[name][:], y.group[name][:], err_msg=name)
        assert x.attrs["cameras_toml"] == y.attrs["cameras_toml"]


@pytest.fixture
def same_sessions():
    """:func:`assert_same_sessions`, for tests."""
    return assert_same_sessions
