"""A writer's lease on a pose store: one ``epiflow run`` writes a store at a time.

The lease is the JSON file ``<store>/.epiflow-lease.json``: the holder's ``host`` (name and
``boot_id``, which tells apart machines of one name and boots of one machine), ``pid``,
``pid_start`` (the process's start time, so a reused pid is not taken for the holder),
``started`` and ``heartbeat`` (Unix seconds) and a random ``token``. A run takes it before it
writes any session and gives it back when it ends, also on an error; while it runs, a thread
rewrites the heartbeat every :data:`HEARTBEAT_S` seconds.

A second writer is refused at once with a :class:`LeaseError` naming the holder, or waits up to
``wait_s`` seconds for it. A stale lease does not block: it is taken over, and the takeover is
printed. A lease is stale when its process no longer runs on this host (same name and boot), or,
written on another host (or before a reboot), when its heartbeat is older than :data:`STALE_AFTER_S` (the hosts'
clocks must agree to well within that).

Local folders: taking, renewing and giving back happen under an ``flock`` of the store's folder,
so two runs on one host (or on an NFS mount with working locks) never both take the lease.
fsspec URLs (``s3://...``): the same file through fsspec, but an object store has no lock, so
the lease is advisory there: it is written, read back after a moment and kept only if it is
still ours; two runs that start within that moment may both go on.

Example::

    with StoreLease("S.zarr", wait_s=0):
        ...   # write sessions
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Callable

from epiflow.outputs import atomic_write_bytes
from epiflow.store import StoreError

try:
    import fcntl
except ImportError:  # Windows: no folder lock; the lease is advisory there
    fcntl = None

__all__ = ["HEARTBEAT_S", "LEASE_NAME", "STALE_AFTER_S", "LeaseError", "LeaseHolder",
           "StoreLease", "stale_reason"]

LEASE_NAME = ".epiflow-lease.json"
#: seconds between heartbeats of a held lease
HEARTBEAT_S = 10.0
#: a lease written on another host whose heartbeat is older than this is stale, seconds
STALE_AFTER_S = 120.0
#: seconds an fsspec (lock-less) lease is read back after it is written
_SETTLE_S = 0.5


class LeaseError(StoreError):
    """The store is being written by another run (the holder is named in the message)."""


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a store's lease. ``started`` and ``heartbeat``: Unix seconds."""

    host: str
    boot_id: str
    pid: int
    pid_start: str
    started: float
    heartbeat: float
    token: str

    @classmethod
    def me(cls) -> "LeaseHolder":
        now = time.time()
        return cls(socket.gethostname(), _boot_id(), os.getpid(), _process_start(os.getpid()) or "", now,
                   now, uuid.uuid4().hex)

    def describe(self, now: float | None = None) -> str:
        """``pid 123 on host h since 2026-12-06 20:10:03 UTC (heartbeat 3 s ago)``."""
        since = datetime.fromtimestamp(self.started, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        age = (now or time.time()) - self.heartbeat
        return f"pid {self.pid} on host {self.host} since {since} UTC (heartbeat {age:.0f} s ago)"


def _boot_id() -> str:
    """This boot of this machine (Linux), "" where unknown."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks after boot, from /proc), ``"?"`` where it
    runs but /proc is absent; None when no such process runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else fields[19]
    except FileNotFoundError:
        return None
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return "?"


def stale_reason(holder: LeaseHolder, now: float,
                 stale_after_s: float = STALE_AFTER_S) -> str | None:
    """Why ``holder``'s lease is stale, or None while it holds: on this host (same name and
    boot) its process must still run; on another, its heartbeat be younger than
    ``stale_after_s`` seconds."""
    if holder.host == socket.gethostname() and holder.boot_id == _boot_id():
        start = _process_start(holder.pid)
        if start is None:
            return f"process {holder.pid} no longer runs on this host"
        if "?" not in (start, holder.pid_start or "?") and start != holder.pid_start:
            return f"process {holder.pid} on this host is another process than the holder"
        return None
    age = now - holder.heartbeat
    if age > stale_after_s:
        return f"its heartbeat is {age:.0f} s old (stale after {stale_after_s:.0f} s)"
    return None


class StoreLease:
    """The lease on the store at ``url`` (a folder or an fsspec URL); a context manager that
    takes it on entry and gives it back on exit.

    Args:
        wait_s: seconds to wait for a held lease before giving up (0 = refuse at once).
        heartbeat_s, stale_after_s: see :data:`HEARTBEAT_S`, :data:`STALE_AFTER_S`.
        log: where takeovers and waits are said (default: standard error, each line starting
            ``epiflow COMMAND:``, or ``epiflow:`` without ``command``).
        command: the epiflow command that takes the lease (``"run"``), for that prefix.
    """

    def __init__(self, url, storage_options: dict | None = None, *, wait_s: float = 0.0,
                 heartbeat_s: float = HEARTBEAT_S, stale_after_s: float = STALE_AFTER_S,
                 log: Callable[[str], None] | None = None, command: str = ""):
        import fsspec
        from fsspec.implementations.local import LocalFileSystem
        self.url = str(url)
        self.fs, root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        self.root = root.rstrip("/")
        self.path = f"{self.root}/{LEASE_NAME}"
        self.local = isinstance(self.fs, LocalFileSystem)
        self.wait_s, self.heartbeat_s, self.stale_after_s = wait_s, heartbeat_s, stale_after_s
        prefix = f"epiflow {command}:" if command else "epiflow:"
        self.log = log or (lambda text: print(f"{prefix} {text}", file=sys.stderr, flush=True))
        self.me: LeaseHolder | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "StoreLease":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # -- taking and giving back ------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lease, waiting up to ``wait_s`` for a live holder; LeaseError otherwise."""
        deadline, said = time.time() + self.wait_s, False
        while True:
            holder = self._try_take()
            if holder is None:
                self._start_heartbeat()
                return
            left = deadline - time.time()
            if left <= 0:
                raise LeaseError(self._refusal(holder))
            if not said:
                self.log(f"store {self.url!r} is being written by {holder.describe()}; waiting "
                         f"up to {self.wait_s:.0f} s for it")
                said = True
            time.sleep(min(1.0, left))

    def release(self) -> None:
        """Stop the heartbeat and remove the lease file if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.me is None:
            return
        with self._guard():
            current = self._read()
            if current is not None and current.token == self.me.token:
                self.fs.rm(self.path)
            elif current is not None:
                self.log(f"the lease on {self.url!r} was taken over by {current.describe()} "
                         f"while this run wrote; left as it is")
        self.me = None

    def _try_take(self) -> LeaseHolder | None:
        """Take the lease when it is free or stale (None), else return its live holder."""
        with self._guard():
            holder = self._read()
            if holder is not None:
                why = stale_reason(holder, time.time(), self.stale_after_s)
                if why is None:
                    return holder
                self.log(f"taking over the stale lease on {self.url!r} of {holder.describe()}: "
                         f"{why}")
            self.me = LeaseHolder.me()
            self._write(self.me)
        if not self.local:  # no lock on an object store: keep it only if it is still ours
            time.sleep(_SETTLE_S)
            current = self._read()
            if current is not None and current.token != self.me.token:
                self.me = None
                return current
        return None

    def _refusal(self, holder: LeaseHolder) -> str:
        waited = f" (waited {self.wait_s:.0f} s)" if self.wait_s else ""
        return (f"store {self.url!r} is being written by another epiflow run: "
                f"{holder.describe()}{waited}. Wait for it to end, or run again with "
                f"--wait-lease SECONDS to wait for it; a lease whose process is gone (or, from "
                f"another host, whose heartbeat is over {self.stale_after_s:.0f} s old) is "
                f"taken over by itself. If you are sure no run writes the store, remove "
                f"{self.path}")

    # -- heartbeat ---------------------------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="epiflow-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with self._guard():
                current = self._read()
                if current is None or current.token != self.me.token:
                    self.log(f"the lease on {self.url!r} was taken over"
                             f"{' by ' + current.describe() if current else ''}; another run "
                             f"may be writing this store too")
                    return
                self.me = LeaseHolder(**{**asdict(self.me), "heartbeat": time.time()})
                self._write(self.me)

    # -- the file ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _guard(self):
        """An exclusive flock of the store's folder (local folders with fcntl), else nothing."""
        if not (self.local and fcntl):
            yield
            return
        fd = os.open(self.root, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)   # closing the descriptor releases the lock

    def _read(self) -> LeaseHolder | None:
        """The lease file's holder; None when there is none. A lease that cannot be read (not
        written by this code) counts as a stale one of an unknown process."""
        try:
            data = json.loads(self.fs.cat_file(self.path))
            return LeaseHolder(**{k: data[k] for k in LeaseHolder.__dataclass_fields__})
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return LeaseHolder("(unreadable lease file)", "", -1, "", 0.0, 0.0, "")

    def _write(self, holder: LeaseHolder) -> None:
        """Write the lease whole: a temporary file renamed over it (locally), one put (URLs)."""
        data = json.dumps(asdict(holder), indent=1).encode()
        if not self.local:
            self.fs.pipe_file(self.path, data)
            return
        atomic_write_bytes(self.path, data)
