"""Fast ZooKeeper tree access for logical backup and restore.

Public API (stable; the internals may change):

- :class:`ZkSpec` — where to connect: addresses, chroot, session timeout (``ZkSpec.parse(connect_string)``).
  Every function below takes a connect string (``"h1:2181,h2:2181[/chroot]"``) or a ZkSpec.
- :class:`ZNode` — one znode as read: path, data, ACL, stat.
- :func:`connect` — a started kazoo client or :class:`~dcos_backup.errors.ZooKeeperUnavailable`.
- :func:`iter_tree` — stream a subtree in canonical pre-order (parents first, children sorted).
- :func:`apply_tree` — make a live subtree equal to a stream of nodes (create/update/delete).
- :func:`compare_tree` — first difference between a live subtree and a stream of nodes, or None.
"""

from dcos_backup.zk.client import connect
from dcos_backup.zk.records import ApplyStats, ReadStats, ZNode, path_key
from dcos_backup.zk.spec import ZkSpec
from dcos_backup.zk.tree import compare_tree, iter_tree
from dcos_backup.zk.writer import apply_tree

__all__ = [
    "ApplyStats",
    "ReadStats",
    "ZNode",
    "ZkSpec",
    "apply_tree",
    "compare_tree",
    "connect",
    "iter_tree",
    "path_key",
]
