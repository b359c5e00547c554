"""Starting a local Ray, or joining a cluster, with as little exposed as the installed Ray allows.

A local Ray (no ``address``) is a single node: every process it starts (GCS, raylet, object
manager, workers, the agents and the metrics exporters) listens on 127.0.0.1 only; the dashboard
is never started; Ray's token authentication stays as Ray sets it for a new local cluster (on in
the installed Ray 2.60: ``RAY_AUTH_MODE=token`` and a token in ``~/.ray/auth_token``, unless
``RAY_AUTH_MODE`` is set otherwise; tests/pipeline/test_ray_exposure.py checks it is on).

Why a switch is needed: Ray (2.60 installed here) turns ``_node_ip_address="127.0.0.1"`` into the
machine's routable address (``services.resolve_ip_for_localhost``), and its gRPC servers listen on
every interface unless the node's address is exactly 127.0.0.1. Ray keeps a single-node Ray on
loopback only where multi-node clusters are off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the
default on macOS and Windows); :func:`init_local_ray` turns that on for the start of the local
Ray (this process and the processes it starts) and restores it after.
Measured from ``/proc/net/tcp{,6}`` (what ``ss -ltnp`` reads) during ``epiflow run --synthetic 1``:
with a plain ``ray.init``, 12 of the 13 sockets the Ray processes listened on were on ``*``,
``0.0.0.0`` or the machine's address (GCS, raylet, workers, the driver, the agents, the metrics
exporters on 44217 and 44227); with :func:`init_local_ray`, all 12 on 127.0.0.1.
"""
from __future__ import annotations

import contextlib
import logging
import os

__all__ = ["LOOPBACK", "init_local_ray", "use_cluster_token"]

#: Where a local Ray listens.
LOOPBACK = "127.0.0.1"
#: Ray's switch for multi-node clusters (off: the node's address is loopback).
_CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def _single_node():
    """Multi-node clusters off while a local Ray starts (see the module's docstring)."""
    from ray._private import ray_constants
    saved_env, saved_flag = os.environ.get(_CLUSTER_SWITCH), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_CLUSTER_SWITCH] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(_CLUSTER_SWITCH, None)
        else:
            os.environ[_CLUSTER_SWITCH] = saved_env


def init_local_ray(num_cpus: int, **options) -> None:
    """Start a local single-node Ray with ``num_cpus`` CPUs on 127.0.0.1, without the dashboard.

    ``options`` are passed to ``ray.init`` (logging, ``log_to_driver``). Raises RuntimeError if
    the node came up on another address (a Ray whose switch no longer works): better no run than
    a run open to the network.
    """
    import ray
    with _single_node():
        ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address=LOOPBACK,
                 **options)
    address = ray._private.worker.global_worker.node.node_ip_address
    if address != LOOPBACK:
        ray.shutdown()
        raise RuntimeError(f"the local Ray came up on {address}, not {LOOPBACK}: this Ray "
                           f"({ray.__version__}) no longer keeps a single node on loopback; "
                           f"start one with `ray start --head` and pass its address instead")


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
