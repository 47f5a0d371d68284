"""The difference between a live subtree and a wanted stream, and the ZooKeeper operations that carry it out.

One code path for a restore (:func:`~dcos_backup.logical.apply_tree`) and a dry run
(:func:`~dcos_backup.logical.diff_tree`): :func:`plan_steps` yields the steps of the difference and
:class:`Planner` turns them into operations for a sink, which sends them (apply) or drops them (diff).

Both sides arrive in canonical pre-order (``path_key``), so the difference is a streaming merge
(:func:`merge_steps`): a wanted node missing live is created (parents come first in pre-order), a node
on both sides is updated where data or ACL differ, a live node missing from the wanted stream is deleted
with its whole subtree. Steps come in pre-order, deletes included; the planner turns deletes around
(children before parents) through a stack of ancestors, so memory is the depth, not the subtree.

Two things wait until the merge leaves a node's subtree (the planner's stack of open nodes):

- an ACL that could lock us out (no world CREATE): the node is created open and gets its ACL once its
  children exist (``multi`` cannot carry setACL: it goes alone, in order);
- the node's child counter. ZooKeeper names a sequential child after the parent's count of child creates
  (stat: ``(cversion + numChildren) / 2``, as cversion counts deletes too), and no request sets it. A
  parent whose counter is below the wanted one gets throw-away children created and deleted
  (:class:`RaiseCounter`), so a new sequential child never takes a restored child's name and sorts after
  them all.

Restores of part of a tree (``paths``): each subtree is merged on its own, nothing outside them is read or
written; parents missing live are created first (from the stream where it holds them, else empty and open).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Final, Literal, NamedTuple, Protocol

from kazoo.protocol.serialization import Create, Delete, Exists, SetACL, SetData
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL, OPEN_ACL_UNSAFE, Permissions

from dcos_backup.logical.reader import read_tree
from dcos_backup.logical.records import ApplyStats, ZNode, is_under, parent_of, path_key
from dcos_backup.logical.ride import Outage, retrying
from dcos_backup.logical.spec import ZkSpec
from dcos_backup.logical.subtrees import Scope, split_scopes, subtree_paths
from dcos_backup.logical.wire import Connection

CREATE: Final = "create"
UPDATE: Final = "update"
DELETE: Final = "delete"
SAME: Final = "unchanged"
OPEN = tuple(OPEN_ACL_UNSAFE)


class Step(NamedTuple):
    """One node of the difference: ``op`` is CREATE, UPDATE, DELETE or SAME."""

    op: Literal["create", "update", "delete", "unchanged"]
    path: str
    want: ZNode | None  # None for a delete
    have: ZNode | None  # None for a create


class RaiseCounter(NamedTuple):
    """Create and delete ``creates`` throw-away children of ``path`` (a server path): its counter rises by as many."""

    path: str
    creates: int


class OpSink(Protocol):
    def add(self, op: object) -> None:
        """Take one operation (kazoo's Create, SetData, Delete, SetACL with server paths, or RaiseCounter)."""

    def tick(self) -> None:
        """The merge passed an unchanged node (a writer pings its idle session)."""


def merge_steps(live: Iterator[ZNode], wanted: Iterable[ZNode]) -> Iterator[Step]:
    """The steps that make ``live`` equal to ``wanted`` (both pre-order), in pre-order."""
    have = next(live, None)
    have_key = _key(have)
    for want in wanted:
        path = want.path
        key = path_key(path)
        while have is not None and have_key < key:
            yield Step(DELETE, have.path, None, have)
            have = next(live, None)
            have_key = _key(have)
        if have is not None and have.path == path:
            same = have.data == want.data and tuple(have.acl) == tuple(want.acl)
            yield Step(SAME if same else UPDATE, path, want, have)
            have = next(live, None)
            have_key = _key(have)
        else:
            yield Step(CREATE, path, want, None)
    while have is not None:
        yield Step(DELETE, have.path, None, have)
        have = next(live, None)


def _key(node: ZNode | None) -> tuple[str, ...]:
    return path_key(node.path) if node is not None else ()


def plan_steps(
    spec: ZkSpec,
    root: str,
    nodes: Iterable[ZNode],
    paths: Iterable[str] | None = None,
    read: Callable[[str], Iterator[ZNode]] | None = None,
) -> Iterator[Step]:
    """The steps of the whole difference: for each subtree (``paths``, default ``root``), its missing
    parents, then the merge of its live nodes with its part of ``nodes``. The live nodes of a subtree are
    ``read(path)`` (default: read with riding sessions), which a caller may use to see them go by."""
    chosen = subtree_paths(root, paths)
    if read is None:
        read = lambda path: read_tree(spec, path, acl_sessions=0)  # noqa: E731
    ensured: set[str] = set()  # parents known to exist, or created by an earlier step
    for scope in split_scopes(nodes, chosen, require=paths is not None):
        if not scope.empty:
            for parent in _missing_parents(spec, scope, ensured):
                yield Step(CREATE, parent.path, parent, None)
        yield from merge_steps(read(scope.path), scope.nodes)


def _missing_parents(spec: ZkSpec, scope: Scope, ensured: set[str]) -> list[ZNode]:
    """The ancestors of the scope that do not exist live, top-down: the stream's node where it holds one,
    else an empty open node (a mapped restore's new home)."""
    chain = []
    path = scope.path
    while path != "/":
        path = parent_of(path)
        if path != "/" and path not in ensured:
            chain.append(path)
    chain.reverse()
    if not chain:
        return []
    exist = retrying(Outage(spec, f"checking the parents of {scope.path}"), lambda: _exist(spec, chain))
    held = {n.path: n for n in scope.ancestors}
    ensured.update(chain)
    missing = [p for p, there in zip(chain, exist, strict=True) if not there]
    return [held.get(p) or ZNode(p, b"", OPEN) for p in chain[chain.index(missing[0]) :]] if missing else []


def _exist(spec: ZkSpec, paths: list[str]) -> list[bool]:
    with Connection(spec) as conn:
        for path in paths:
            conn.queue(Exists(conn.full_path(path), None))
        return [reply.err == 0 for reply in conn.replies()]


# ------------------------------------------------------------------------------------------ planning
def child_counter(stat: ZnodeStat | None) -> int:
    """The parent's count of child creates, which names its next sequential child (0 without a stat).

    A stat's cversion counts creates and deletes; ZooKeeper reports it as ``2 * creates - numChildren``.
    Without numChildren (-1: an archive that did not record it) cversion is an upper bound.
    """
    if stat is None:
        return 0
    cversion: int = stat.cversion  # kazoo's ZnodeStat is untyped
    children: int = stat.numChildren
    if children < 0:
        return cversion
    return (cversion + children) // 2


def _locks_out(acl: tuple[ACL, ...]) -> bool:
    """An ACL that may stop us from creating children (unless our address or auth happens to match)."""
    return not any(a.id.scheme == "world" and a.perms & Permissions.CREATE for a in acl)


class _Open:
    """A node whose subtree the merge is in, with what must happen when it leaves it."""

    __slots__ = ("acl", "counter", "path", "prefix", "target")

    def __init__(self, path: str, acl: tuple[ACL, ...] | None, target: int, counter: int) -> None:
        self.path = path
        self.prefix = path if path == "/" else path + "/"  # what the paths in its subtree start with
        self.acl = acl  # the ACL to set on leaving, or None
        self.target = target  # the child counter it must reach ...
        self.counter = counter  # ... and what it is, counting our creates of its children


class Planner:
    """Turns steps into operations for ``sink``, counting them in ``stats``; call :meth:`finish` at the end."""

    def __init__(self, sink: OpSink, full_path: Callable[[str], str], stats: ApplyStats) -> None:
        self.sink = sink
        self.full = full_path  # a path below the chroot -> the server's path
        self.stats = stats
        self.deletes: list[str] = []  # deleted paths whose subtree the merge is in (pre-order -> post-order)
        self.open: list[_Open] = []
        self._create_acls: dict[tuple[ACL, ...], tuple[list[ACL], tuple[ACL, ...] | None]] = {}

    def feed(self, step: Step) -> None:
        op, path = step.op, step.path
        if self.deletes:
            self._flush_deletes(path if op == DELETE else None)
        if self.open:
            self._leave(path)
        # A step carries want but for a delete and have but for a create (plan_steps makes them so).
        if op == SAME:
            assert step.want is not None
            self.stats.unchanged += 1
            self._open(path, None, step.want, step.have)
            self.sink.tick()
        elif op == CREATE:
            assert step.want is not None
            self._create(step.want)
        elif op == UPDATE:
            assert step.want is not None and step.have is not None
            self._update(step.want, step.have)
        else:
            self.deletes.append(path)
            self.stats.deleted += 1

    def finish(self) -> None:
        self._flush_deletes(None)
        while self.open:
            self._close(self.open.pop())

    def _create(self, want: ZNode) -> None:
        open_ = self.open
        if open_ and want.path.rfind("/") == len(open_[-1].prefix) - 1:  # a child of the open node
            open_[-1].counter += 1
        acl = tuple(want.acl)
        how = self._create_acls.get(acl)
        if how is None:  # a tree has a handful of distinct ACLs: decide once for each
            locked = _locks_out(acl)
            how = self._create_acls[acl] = (list(OPEN if locked else acl), acl if locked and acl != OPEN else None)
        create_acl, deferred = how
        self.sink.add(Create(self.full(want.path), want.data, create_acl, 0))
        self.stats.created += 1
        if deferred is not None or (want.stat is not None and want.stat.cversion):
            self._open(want.path, deferred, want, None)

    def _update(self, want: ZNode, have: ZNode) -> None:
        if have.data != want.data:
            self.sink.add(SetData(self.full(want.path), want.data, -1))
        acl = tuple(want.acl)
        self.stats.updated += 1
        self._open(want.path, acl if tuple(have.acl) != acl else None, want, have)

    def _open(self, path: str, acl: tuple[ACL, ...] | None, want: ZNode, have: ZNode | None) -> None:
        target = child_counter(want.stat)
        counter = child_counter(have.stat) if have is not None else 0
        if acl is not None or target > counter:
            self.open.append(_Open(path, acl, target, counter))

    def _leave(self, path: str) -> None:
        open_ = self.open
        while open_:
            top = open_[-1]
            if path.startswith(top.prefix) or path == top.path:
                return
            self._close(open_.pop())

    def _close(self, node: _Open) -> None:
        """Leaving a node's subtree: raise its counter, then set an ACL that may lock us out."""
        if node.target > node.counter:
            creates = node.target - node.counter
            self.sink.add(RaiseCounter(self.full(node.path), creates))
            self.stats.counters += 1
            self.stats.counter_children += creates
        if node.acl is not None:
            self.sink.add(SetACL(self.full(node.path), list(node.acl), -1))

    def _flush_deletes(self, next_delete: str | None) -> None:
        deletes = self.deletes
        while deletes and (next_delete is None or not is_under(next_delete, deletes[-1])):
            self.sink.add(Delete(self.full(deletes.pop()), -1))


class DropOps:
    """The sink of a dry run: the planner counts, nothing is sent."""

    def add(self, op: object) -> None:
        pass

    def tick(self) -> None:
        pass
