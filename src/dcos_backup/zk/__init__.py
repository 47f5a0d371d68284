"""Fast ZooKeeper tree access for logical backup and restore.

Public API (stable; the internals may change):

- :class:`ZNode` — one znode as read: path, data, ACL, stat.
- :func:`connect` — a started kazoo client or :class:`~dcos_backup.errors.ZooKeeperUnavailable`.
- :func:`iter_tree` — stream a subtree in canonical pre-order (parents first, children sorted).
- :func:`apply_tree` — make a live subtree equal to a stream of nodes (create/update/delete).
- :func:`compare_tree` — first difference between a live subtree and a stream of nodes, or None.
"""

from dcos_backup.zk.client import connect
from dcos_backup.zk.tree import ApplyStats, ReadStats, ZNode, apply_tree, compare_tree, iter_tree, path_key

__all__ = [
    "ApplyStats",
    "ReadStats",
    "ZNode",
    "apply_tree",
    "compare_tree",
    "connect",
    "iter_tree",
    "path_key",
]
