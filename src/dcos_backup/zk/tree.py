"""Reading and writing whole ZooKeeper subtrees.

This first implementation uses plain kazoo calls; it is correct and streaming but not fast.
The pipelined engine replaces the internals behind the same functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL


@dataclass(frozen=True, slots=True)
class ZNode:
    """One znode. ``path`` is absolute in the client's namespace."""

    path: str
    data: bytes
    acl: tuple[ACL, ...]
    stat: ZnodeStat | None = None


@dataclass(slots=True)
class ReadStats:
    nodes: int = 0
    bytes: int = 0
    skipped_ephemeral: int = 0
    min_zxid: int | None = None
    max_zxid: int = 0


@dataclass(slots=True)
class ApplyStats:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def path_key(path: str) -> tuple[str, ...]:
    """Sort key that orders paths in pre-order with sorted children."""
    return tuple(p for p in path.split("/") if p)


def _join(parent: str, child: str) -> str:
    return f"{parent.rstrip('/')}/{child}"


def iter_tree(
    client: KazooClient, root: str, *, skip_ephemeral: bool = True, stats: ReadStats | None = None
) -> Iterator[ZNode]:
    """Yield ``root`` and its descendants in pre-order, children sorted; ephemeral nodes skipped.

    Nodes deleted while we walk are skipped. A missing ``root`` yields nothing.
    """
    stats = stats if stats is not None else ReadStats()
    stack = [root]
    while stack:
        path = stack.pop()
        try:
            data, stat = client.get(path)
            acl, _ = client.get_acls(path)
            children = client.get_children(path)
        except NoNodeError:
            continue
        if stat.ephemeralOwner and skip_ephemeral:
            stats.skipped_ephemeral += 1
            continue
        stats.nodes += 1
        stats.bytes += len(data or b"")
        stats.max_zxid = max(stats.max_zxid, stat.mzxid, stat.pzxid)
        yield ZNode(path, data or b"", tuple(acl), stat)
        stack.extend(_join(path, c) for c in sorted(children, reverse=True))


def apply_tree(client: KazooClient, root: str, nodes: Iterable[ZNode]) -> ApplyStats:
    """Make the subtree at ``root`` equal to ``nodes`` (pre-order): create, update, delete.

    Ephemeral nodes in the live tree are left alone.
    """
    result = ApplyStats()
    wanted: set[str] = set()
    for node in nodes:
        wanted.add(node.path)
        try:
            data, _ = client.get(node.path)
            acl, _ = client.get_acls(node.path)
        except NoNodeError:
            client.create(node.path, node.data, acl=list(node.acl) or None)
            result.created += 1
            continue
        changed = False
        if (data or b"") != node.data:
            client.set(node.path, node.data)
            changed = True
        if list(acl) != list(node.acl):
            client.set_acls(node.path, list(node.acl))
            changed = True
        if changed:
            result.updated += 1
        else:
            result.unchanged += 1
    live = [n.path for n in iter_tree(client, root)]
    for path in sorted((p for p in live if p not in wanted), key=path_key, reverse=True):
        try:
            client.delete(path)
            result.deleted += 1
        except NoNodeError:
            pass
    return result


def compare_tree(client: KazooClient, root: str, nodes: Iterable[ZNode]) -> str | None:
    """Return a one-line description of the first difference, or None if equal (data and ACLs)."""
    live = iter_tree(client, root)
    for want in nodes:
        have = next(live, None)
        if have is None:
            return f"missing {want.path}"
        if have.path != want.path:
            return f"expected {want.path}, found {have.path}"
        if have.data != want.data:
            return f"data differs at {want.path}"
        if list(have.acl) != list(want.acl):
            return f"ACL differs at {want.path}"
    extra = next(live, None)
    if extra is not None:
        return f"unexpected {extra.path}"
    return None
