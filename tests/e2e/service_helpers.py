"""Helpers shared by the service tests: snapshots of a live tree, polling."""

from __future__ import annotations

import time

from kazoo.client import KazooClient

from dcos_backup.zk import ZkSpec, iter_tree


def snapshot(client: KazooClient, root: str = "/marathon") -> list[tuple]:
    """Everything a restore must bring back, byte for byte: path, data, ACL of every persistent node."""
    where = ZkSpec(tuple(client.hosts), client.chroot or "")  # the servers and chroot the client uses
    return [(n.path, n.data, n.acl) for n in iter_tree(where, root)]


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def damage(client: KazooClient) -> None:
    """Delete some apps, change others, add new ones (the seed's "damage /marathon")."""
    apps = sorted(client.get_children("/marathon/state/app"))
    for app in apps[:3]:
        client.delete(f"/marathon/state/app/{app}", recursive=True)
    for app in apps[3:6]:
        client.set(f"/marathon/state/app/{app}", b'{"id": "changed"}')
    client.set_acls("/marathon/state/framework-id", [*client.get_acls("/marathon/state/framework-id")[0]][:1])
    client.create("/marathon/state/app/intruder", b"new app", makepath=True)
    client.create("/marathon/state/app/intruder/v1", b"\x00\x01")
