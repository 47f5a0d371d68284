"""A fresh ZooKeeper chroot seeded with Marathon state, removed afterwards: how tests and benchmarks share
one cluster without seeing each other's data."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from kazoo.client import KazooClient

from dcos_backup.local.spec import ClusterSpec
from dcos_backup.logical import connect
from dcos_backup.testing.seed import seed_marathon


@contextlib.contextmanager
def marathon_chroot(cluster: ClusterSpec, apps: int, seed: int) -> Iterator[tuple[str, KazooClient]]:
    """A fresh chroot on ``cluster`` with ``apps`` Marathon apps under its /marathon: (its connect string, a
    client of it); removed afterwards."""
    path = f"/chroot-{uuid.uuid4().hex[:10]}"
    admin = connect(cluster.zk_hosts)
    admin.create(path)
    zk = connect(cluster.zk_hosts + path)
    try:
        seed_marathon(zk, apps=apps, seed=seed)
        yield cluster.zk_hosts + path, zk
    finally:
        zk.stop()
        admin.delete(path, recursive=True)
        admin.stop()
