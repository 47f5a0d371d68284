"""Fast ZooKeeper tree access for logical backup and restore.

Public API (stable; the internals may change), described in docs/engine.md:

- :class:`ZkSpec` — where to connect: addresses, chroot, session timeout, credentials (``auth``), how
  long to ride out a fault (``max_outage``); ``ZkSpec.parse(connect_string, ...)``, :func:`digest_auth`.
  Every function below takes a connect string (``"h1:2181,h2:2181[/chroot]"``) or a ZkSpec.
- :class:`ZNode` — one znode as read: path, data, ACL, stat.
- :func:`connect` — a started kazoo client or :class:`~dcos_backup.errors.ZooKeeperUnavailable`.
- :func:`iter_tree` — stream a subtree in canonical pre-order (parents first, children sorted).
- :func:`apply_tree` — make a live subtree (or some subtrees of it) equal to a stream of nodes.
- :func:`iter_diff` / :func:`diff_tree` — what ``apply_tree`` would change, without writing.
- :func:`plan_tree` / :func:`apply_ops` — ``apply_tree`` in two passes: the operations computed (into an
  :class:`OpLog`, seeing the live nodes go by), then sent.
- :func:`compare_tree` — first difference between a live subtree and a stream of nodes, or None.
- :func:`subtree_paths`, :func:`missing_subtrees`, :class:`PathMap` — restores of part of a tree,
  or into another place.

Reads and writes ride over ZooKeeper faults (leader change, member lost or frozen) for up to
``ZkSpec.max_outage``; a node the credentials may not read or write raises
:class:`~dcos_backup.errors.AccessDenied` naming it.
"""

from dcos_backup.logical.oplog import OpLog
from dcos_backup.logical.records import ApplyStats, Change, ReadStats, TreeDiff, ZNode, path_key
from dcos_backup.logical.session import connect
from dcos_backup.logical.spec import ZkSpec, digest_auth
from dcos_backup.logical.subtrees import PathMap, missing_subtrees, subtree_paths
from dcos_backup.logical.tree import compare_tree, diff_tree, iter_diff, iter_tree, plan_tree
from dcos_backup.logical.writer import apply_ops, apply_tree

__all__ = [
    "ApplyStats",
    "Change",
    "OpLog",
    "PathMap",
    "ReadStats",
    "TreeDiff",
    "ZNode",
    "ZkSpec",
    "apply_ops",
    "apply_tree",
    "compare_tree",
    "connect",
    "diff_tree",
    "digest_auth",
    "iter_diff",
    "iter_tree",
    "missing_subtrees",
    "path_key",
    "plan_tree",
    "subtree_paths",
]
