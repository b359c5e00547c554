"""A local Ray started by epiflow listens on loopback only, without the dashboard, with Ray's
token authentication on (checked from /proc/net/tcp and tcp6 against the Ray processes)."""
from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

#: Run in a child process (a Ray the test session already joined would be used as it is):
#: start Ray as ``epiflow run`` and ``train`` do (:func:`init_local_ray`; that they do is
#: checked below), start one actor, then print what the process tree listens on once the GCS,
#: the raylet, the actor and the agents are up (or after 8 s; every socket seen is kept).
_CHILD = """
import json, os, sys, time
sys.path.insert(0, {here!r})
from test_ray_exposure import listening
from epiflow.ray_setup import init_local_ray
import ray

@ray.remote(num_cpus=0)
class Probe:
    def pid(self):
        return os.getpid()

init_local_ray(1, logging_level="ERROR", log_to_driver=False)
ray.get(Probe.remote().pid.remote())
wanted = {{"gcs_server", "raylet", "ray::Probe", "ray::DashboardA", "ray::RuntimeEnv"}}
deadline, found = time.time() + 8, set()
while True:
    found |= set(listening(os.getpid()))
    if wanted <= {{name for _, _, _, name in found}} or time.time() > deadline:
        break
    time.sleep(0.3)
found = sorted(found)
from ray._raylet import AuthenticationMode, get_authentication_mode
print(json.dumps({{"listening": found,
                  "token_auth": get_authentication_mode() == AuthenticationMode.TOKEN}}))
ray.shutdown()
"""


def _tree(root: int) -> list[int]:
    """``root`` and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in (Path("/proc") / str(pid) / "fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _address(hexaddr: str) -> tuple[str, int]:
    """``0100007F:1F90`` (/proc/net/tcp) or its 32-hex-digit IPv6 form → (address, port)."""
    ip, port = hexaddr.split(":")
    raw = bytes.fromhex(ip)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # host-order words
    family = socket.AF_INET6 if len(raw) == 16 else socket.AF_INET
    return socket.inet_ntop(family, raw), int(port, 16)


def listening(root: int) -> list[tuple[str, str, int, str]]:
    """(table, address, port, process name) of every TCP socket in LISTEN state held by
    ``root`` or a process below it."""
    owner = {}
    for pid in _tree(root):
        try:
            name = (Path("/proc") / str(pid) / "comm").read_text().strip()
        except OSError:
            continue
        owner.update({inode: name for inode in _socket_inodes(pid)})
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in owner:   # 0A: LISTEN
                found.add((table, *_address(f[1]), owner[f[9]]))
    return sorted(found)


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and
                              ip.ipv4_mapped.is_loopback)


def test_proc_parser_reads_addresses():
    assert _address("0100007F:1F90") == ("127.0.0.1", 8080)
    assert _address("00000000:0050") == ("0.0.0.0", 80)
    assert _address("0000000000000000FFFF00000100007F:0050") == ("::ffff:127.0.0.1", 80)
    assert _address("00000000000000000000000001000000:0050") == ("::1", 80)
    assert _loopback("::ffff:127.0.0.1") and _loopback("::1") and not _loopback("::")
    assert not _loopback("0.0.0.0") and not _loopback("192.0.2.2")
    with socket.socket() as s:   # a socket of this process is found, with its address
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert ("tcp", "127.0.0.1", port, Path("/proc/self/comm").read_text().strip()) in \
            listening(os.getpid())


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_local_ray_listens_on_loopback_only(tmp_path):
    script = _CHILD.format(here=str(Path(__file__).parent))
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    found = [tuple(row) for row in result["listening"]]
    names = {name for *_, name in found}
    assert {"gcs_server", "raylet"} <= names, found   # the check saw Ray's servers
    assert any(n.startswith("ray::") for n in names), found   # and a worker or an agent
    exposed = [row for row in found if not _loopback(row[1])]
    assert exposed == [], f"Ray processes listening beyond loopback: {exposed}"
    assert 8265 not in {port for _, _, port, _ in found}, "the dashboard was started"
    assert result["token_auth"], "Ray's token authentication is off for a local run"


def test_run_and_train_start_ray_through_init_local_ray(monkeypatch):
    import ray

    from epiflow.models import distributed
    from epiflow.models.config import ExperimentConfig
    from epiflow.pipeline import orchestrate
    from epiflow.pipeline.config import RayConfig
    calls = []
    for module in (orchestrate, distributed):
        monkeypatch.setattr(module, "init_local_ray", lambda n, **kw: calls.append(n))
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 3})
    monkeypatch.setattr(ray, "shutdown", lambda: calls.append("shutdown"))
    with orchestrate.ray_runtime(RayConfig(num_cpus=3)) as info:
        assert info == {"address": "local", "cpus": 3}
    assert distributed._init_ray(ExperimentConfig()) is True
    workers = ExperimentConfig().train.ray_workers
    assert calls == [3, "shutdown", max(os.cpu_count() or 1, workers + 1)]
