"""Opening kazoo clients with the project's errors."""

from __future__ import annotations

from kazoo.client import KazooClient
from kazoo.handlers.threading import KazooTimeoutError

from dcos_backup.errors import ZooKeeperUnavailable
from dcos_backup.zk.spec import DEFAULT_SESSION_TIMEOUT


def connect(hosts: str, timeout: float = DEFAULT_SESSION_TIMEOUT, **kwargs: object) -> KazooClient:
    """Start a kazoo client on ``hosts`` (``h1:p,h2:p[/chroot]``); fail with one clear error."""
    client = KazooClient(hosts=hosts, timeout=timeout, **kwargs)
    try:
        client.start(timeout=timeout)
    except KazooTimeoutError as exc:
        client.close()
        raise ZooKeeperUnavailable(f"cannot connect to ZooKeeper at {hosts} within {timeout:g}s") from exc
    return client
