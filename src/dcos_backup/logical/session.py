"""Opening kazoo clients with the project's errors (for locks and small requests; the tree work has its own
pipelined sessions)."""

from __future__ import annotations

import socket

from kazoo.client import KazooClient
from kazoo.handlers.threading import KazooTimeoutError

from dcos_backup.errors import ZooKeeperUnavailable
from dcos_backup.logical.spec import DEFAULT_SESSION_TIMEOUT, ZkSpec, address_text

PROBE_TIMEOUT = 2.0  # seconds for one member to accept a TCP connection


def connect(hosts: str | ZkSpec, timeout: float = DEFAULT_SESSION_TIMEOUT, **kwargs: object) -> KazooClient:
    """Start a kazoo client on ``hosts`` (``h1:p,h2:p[/chroot]`` or a :class:`ZkSpec`, whose credentials it
    presents); fail with one clear error, at once when no member even accepts a connection."""
    spec = ZkSpec.of(hosts)
    if spec.auth:
        kwargs.setdefault("auth_data", list(spec.auth))
    refused = _unreachable(spec)
    if refused is not None:
        raise ZooKeeperUnavailable(f"cannot connect to ZooKeeper at {spec}: no member reachable ({refused})")
    client = KazooClient(hosts=spec.connect_string, timeout=timeout, **kwargs)
    try:
        client.start(timeout=timeout)
    except KazooTimeoutError as exc:
        client.close()
        raise ZooKeeperUnavailable(f"cannot connect to ZooKeeper at {spec} within {timeout:g}s") from exc
    return client


def _unreachable(spec: ZkSpec) -> str | None:
    """None if some member accepts a TCP connection, else why each one did not (kazoo would retry forever)."""
    errors = []
    for host, port in spec.addresses:
        try:
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT).close()
            return None
        except OSError as exc:
            errors.append(f"{address_text(host, port)}: {exc.strerror or exc}")
    return "; ".join(errors)
