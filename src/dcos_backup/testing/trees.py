"""A live ZooKeeper subtree as plain, comparable values: what "restored byte for byte" compares."""

from __future__ import annotations

from kazoo.client import KazooClient

from dcos_backup.logical import ZkSpec, iter_tree


def snapshot(client: KazooClient, root: str = "/marathon") -> list[tuple]:
    """Everything a restore must bring back, byte for byte: path, data, ACL of every persistent node."""
    where = ZkSpec(tuple(client.hosts), client.chroot or "")  # the servers and chroot the client uses
    return [(n.path, n.data, n.acl) for n in iter_tree(where, root)]
