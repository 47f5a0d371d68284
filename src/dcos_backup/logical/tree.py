"""Reading, comparing and diffing whole ZooKeeper subtrees: the read side of the engine's public face.

Callers hand in where to connect (a connect string or a :class:`~.spec.ZkSpec`); the work runs on the
pipelined connections of :mod:`.wire` (:mod:`.reader`, :mod:`.merge`), which are several times faster
than one-request-at-a-time kazoo calls, and rides over ZooKeeper faults (:mod:`.ride`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from dcos_backup.logical.merge import SAME, DropOps, OpSink, Planner, plan_steps
from dcos_backup.logical.reader import read_tree
from dcos_backup.logical.records import ApplyStats, Change, ReadStats, TreeDiff, ZNode, path_key
from dcos_backup.logical.spec import ZkSpec
from dcos_backup.logical.subtrees import split_scopes, subtree_paths

DEFAULT_DIFF_LIMIT = 10_000  # changes a TreeDiff keeps (the counts are always complete)


def iter_tree(
    hosts: str | ZkSpec, root: str, *, skip_ephemeral: bool = True, stats: ReadStats | None = None
) -> Iterator[ZNode]:
    """Yield ``root`` and its descendants in pre-order, children sorted; ephemeral nodes skipped.

    ``hosts`` is a connect string (``"h1:2181,h2:2181[/chroot]"``) or a :class:`ZkSpec`. Nodes deleted
    while we walk are skipped. A missing ``root`` yields nothing. A lost session is replaced and the read
    goes on after the last node yielded; ZooKeeperUnavailable only when ZooKeeper stays away longer than
    the spec's ``max_outage`` (or nothing listens at the start): a partial stream never looks complete.
    A node the credentials may not read raises AccessDenied naming it.
    """
    return read_tree(ZkSpec.of(hosts), root, skip_ephemeral=skip_ephemeral, stats=stats)


def compare_tree(
    hosts: str | ZkSpec,
    root: str,
    nodes: Iterable[ZNode],
    *,
    paths: Iterable[str] | None = None,
    counters: bool = False,
) -> str | None:
    """Return a one-line description of the first difference, or None if equal (data and ACLs).

    With ``paths``, only those subtrees of ``root`` are compared (the stream's nodes elsewhere are ignored).
    With ``counters``, a live child counter (``cversion``) below the stream's is a difference too: a
    restore raises every counter to at least the archived one, so that sequential names stay unique.
    """
    spec = ZkSpec.of(hosts)
    for scope in split_scopes(nodes, subtree_paths(root, paths), require=False):
        difference = _first_difference(iter_tree(spec, scope.path), scope.nodes, counters)
        if difference is not None:
            return difference
    return None


def _first_difference(live: Iterator[ZNode], nodes: Iterable[ZNode], counters: bool = False) -> str | None:
    for want in nodes:
        have = next(live, None)
        if have is None:
            return f"missing {want.path}"
        if have.path != want.path:
            if path_key(have.path) < path_key(want.path):
                return f"unexpected {have.path}"
            return f"missing {want.path}"
        if have.data != want.data:
            return f"data differs at {want.path}"
        if tuple(have.acl) != tuple(want.acl):
            return f"ACL differs at {want.path}"
        if counters and want.stat is not None and have.stat is not None and have.stat.cversion < want.stat.cversion:
            return f"child counter {have.stat.cversion} is below the archived {want.stat.cversion} at {want.path}"
    extra = next(live, None)
    if extra is not None:
        return f"unexpected {extra.path}"
    return None


def iter_diff(
    hosts: str | ZkSpec,
    root: str,
    nodes: Iterable[ZNode],
    *,
    paths: Iterable[str] | None = None,
    stats: ApplyStats | None = None,
) -> Iterator[Change]:
    """The changes :func:`~dcos_backup.logical.apply_tree` would make, in pre-order, without writing anything.

    Same arguments and the same merge as ``apply_tree``; ``stats`` gets the counts it would report
    (complete once the iterator is exhausted). Memory stays bounded: nothing is collected here.
    """
    spec = ZkSpec.of(hosts)
    planner = Planner(DropOps(), spec.full_path, stats if stats is not None else ApplyStats())
    for step in plan_steps(spec, root, nodes, paths):
        planner.feed(step)
        if step.op != SAME:
            yield Change(step.op, step.path)
    planner.finish()


def diff_tree(
    hosts: str | ZkSpec,
    root: str,
    nodes: Iterable[ZNode],
    *,
    paths: Iterable[str] | None = None,
    limit: int = DEFAULT_DIFF_LIMIT,
) -> TreeDiff:
    """:func:`iter_diff` summed up: every count, the first ``limit`` changes, how many more there were."""
    diff = TreeDiff()
    for change in iter_diff(hosts, root, nodes, paths=paths, stats=diff.stats):
        if len(diff.changes) < limit:
            diff.changes.append(change)
        else:
            diff.left_out += 1
    return diff


def plan_tree(
    hosts: str | ZkSpec,
    root: str,
    nodes: Iterable[ZNode],
    sink: OpSink,
    *,
    paths: Iterable[str] | None = None,
    read: Callable[[str], Iterator[ZNode]] | None = None,
    stats: ApplyStats | None = None,
) -> ApplyStats:
    """The operations :func:`~dcos_backup.logical.apply_tree` would send, handed to ``sink`` (an
    :class:`~dcos_backup.logical.oplog.OpLog` keeps them for :func:`~dcos_backup.logical.apply_ops`), and their counts.

    Same arguments and the same merge as ``apply_tree``; the live nodes of each subtree are ``read(path)``
    (default: :func:`iter_tree`), so that a caller can back up what it reads in the same pass.
    """
    spec = ZkSpec.of(hosts)
    stats = stats if stats is not None else ApplyStats()
    planner = Planner(sink, spec.full_path, stats)
    for step in plan_steps(spec, root, nodes, paths, read):
        planner.feed(step)
    planner.finish()
    return stats
