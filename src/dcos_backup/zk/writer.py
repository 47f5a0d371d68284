"""The tree writer used by restores: make a live subtree equal to a wanted stream, in ``multi()`` batches.

Both sides arrive in canonical pre-order (``path_key``), so the difference is a streaming merge:

- a wanted node missing live is created (parents come first in pre-order, so parents exist);
- a node on both sides gets ``setData`` and/or ``setACL`` where they differ;
- a live node missing from the wanted stream goes with its whole subtree, deepest first.

Operations are packed into ``multi`` transactions kept under ZooKeeper's request size limit
(``jute.maxbuffer``, 1 MiB by default) and several are kept in flight on one connection; ZooKeeper
applies one session's requests in order, so a batch may create children of a node the batch before it
created. ACL changes that could lock us out of a subtree (an ACL without world CREATE) are applied
when the merge leaves that subtree, after its children exist. Ephemeral live nodes are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from kazoo.protocol.serialization import Create, Delete, MultiHeader, SetACL, SetData, Transaction, multiheader_struct
from kazoo.security import ACL, OPEN_ACL_UNSAFE, Permissions

from dcos_backup.errors import DcosBackupError
from dcos_backup.zk.reader import TreeReader
from dcos_backup.zk.records import ApplyStats, ZNode, path_key
from dcos_backup.zk.spec import ZkSpec
from dcos_backup.zk.wire import OFFSET, Connection

MAX_BATCH_BYTES = 900 * 1024  # under jute.maxbuffer (1 MiB by default), with room for the request header
MAX_BATCH_OPS = 2000
MAX_IN_FLIGHT = 4
# In a failed multi every op reports an error; these only say "another op failed".
_NOT_THE_CAUSE = {"RolledBackError", "RuntimeInconsistency"}


def _is_under(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor.rstrip("/") + "/")


def _locks_out(acl: tuple[ACL, ...]) -> bool:
    """An ACL that may stop us from creating children (unless our address or auth happens to match)."""
    return not any(a.id.scheme == "world" and a.perms & Permissions.CREATE for a in acl)


class _Multi:
    """A ``multi`` request whose body is built as ops are added (each op serialised once)."""

    type = Transaction.type

    def __init__(self) -> None:
        self.body = bytearray()
        self.ops: list = []

    def append(self, op: object, encoded: bytes) -> None:
        self.body += encoded
        self.ops.append(op)

    def serialize(self) -> bytearray:
        return self.body + multiheader_struct.pack(-1, True, -1)


class _Batcher:
    """Packs ops into multis, keeps a few in flight, raises on the first failed op."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.multi = _Multi()

    def add(self, op: object) -> None:
        if isinstance(op, SetACL):  # multi() cannot carry setACL: it goes alone, in order
            self.send()
            self._wait_for_room()
            self.conn.queue(op, op)
            return
        encoded = MultiHeader(op.type, False, -1).serialize() + op.serialize()
        if self.multi.ops and (
            len(self.multi.body) + len(encoded) > MAX_BATCH_BYTES or len(self.multi.ops) >= MAX_BATCH_OPS
        ):
            self.send()
        self.multi.append(op, encoded)

    def send(self) -> None:
        if not self.multi.ops:
            return
        self._wait_for_room()
        self.conn.queue(self.multi, self.multi.ops)
        self.multi = _Multi()

    def keepalive(self) -> None:
        """Ping while the merge only reads (a long unchanged stretch): an idle session would expire."""
        self.conn.ping_if_idle()

    def _wait_for_room(self) -> None:
        while self.conn.in_flight >= MAX_IN_FLIGHT:
            self._check(self.conn.next_reply())

    def finish(self) -> None:
        self.send()
        for reply in self.conn.replies():
            self._check(reply)

    def _check(self, reply) -> None:
        if isinstance(reply.tag, SetACL):
            if reply.err:
                raise DcosBackupError(f"cannot set the ACL of {reply.tag.path}: {type(reply.error()).__name__}")
            return
        if reply.err:
            raise DcosBackupError(f"ZooKeeper refused a batch of {len(reply.tag)} changes: {reply.error()!r}")
        results = Transaction.deserialize(reply.body, OFFSET)
        for op, result in zip(reply.tag, results, strict=False):
            if isinstance(result, Exception) and type(result).__name__ not in _NOT_THE_CAUSE:
                raise DcosBackupError(f"cannot {type(op).__name__.lower()} {op.path}: {type(result).__name__}")


class _DeferredACL(NamedTuple):
    path: str
    acl: tuple[ACL, ...]


class _Merge:
    """One streaming merge: the live subtree (``live``, pre-order) made equal to a wanted stream.

    ``have`` is the live node the merge stands at; every op goes out through ``batch``.
    """

    def __init__(self, batch: _Batcher, live: Iterator[ZNode]) -> None:
        self.batch = batch
        self.full = batch.conn.full_path
        self.live = live
        self.have = next(live, None)
        self.counts = ApplyStats()
        self.deferred_acls: list[_DeferredACL] = []  # applied when the merge leaves the node's subtree

    def run(self, wanted: Iterable[ZNode]) -> ApplyStats:
        for want in wanted:
            self.batch.keepalive()
            self._leave_subtrees(want.path)
            key = path_key(want.path)
            while self.have is not None and path_key(self.have.path) < key:
                self._delete_subtree()
            if self.have is not None and self.have.path == want.path:
                self._update(self.have, want)
                self.have = next(self.live, None)
            else:
                self._create(want)
        self._leave_subtrees(None)
        while self.have is not None:
            self._delete_subtree()
        self.batch.finish()
        return self.counts

    def _update(self, have: ZNode, want: ZNode) -> None:
        changed = False
        if have.data != want.data:
            self.batch.add(SetData(self.full(want.path), want.data, -1))
            changed = True
        if tuple(have.acl) != tuple(want.acl):
            self.deferred_acls.append(_DeferredACL(want.path, tuple(want.acl)))
            changed = True
        self.counts.updated += changed
        self.counts.unchanged += not changed

    def _create(self, want: ZNode) -> None:
        acl = tuple(want.acl)
        create_acl = OPEN_ACL_UNSAFE if _locks_out(acl) else list(acl)
        self.batch.add(Create(self.full(want.path), want.data, create_acl, 0))
        if create_acl is OPEN_ACL_UNSAFE and acl != tuple(OPEN_ACL_UNSAFE):
            self.deferred_acls.append(_DeferredACL(want.path, acl))
        self.counts.created += 1

    def _delete_subtree(self) -> None:
        """Delete ``have`` and its live descendants, children before parents; ``have`` moves past them.

        Pre-order in, post-order out through a stack of ancestors: memory is the depth, not the subtree.
        """
        top = self.have.path
        ancestors = [top]
        following = next(self.live, None)
        while following is not None and _is_under(following.path, top):
            while not _is_under(following.path, ancestors[-1]):
                self.batch.add(Delete(self.full(ancestors.pop()), -1))
            ancestors.append(following.path)
            self.counts.deleted += 1
            self.batch.keepalive()
            following = next(self.live, None)
        while ancestors:
            self.batch.add(Delete(self.full(ancestors.pop()), -1))
        self.counts.deleted += 1
        self.have = following

    def _leave_subtrees(self, next_path: str | None) -> None:
        """Apply the deferred ACLs of the subtrees the merge leaves before ``next_path`` (None: all)."""
        deferred = self.deferred_acls
        while deferred and (next_path is None or not _is_under(next_path, deferred[-1].path)):
            path, acl = deferred.pop()
            self.batch.add(SetACL(self.full(path), list(acl), -1))


def apply_tree(hosts: str | ZkSpec, root: str, nodes: Iterable[ZNode]) -> ApplyStats:
    """Make the subtree at ``root`` equal to ``nodes`` (pre-order): create, update, delete in batches.

    ``hosts`` is a connect string (``"h1:2181,h2:2181[/chroot]"``) or a :class:`ZkSpec`.
    Ephemeral nodes in the live tree are left alone.
    """
    spec = ZkSpec.of(hosts)
    with Connection(spec) as reader_conn, Connection(spec, prefer_leader=True) as writer_conn:
        # Ephemeral live nodes stay where they are: never deleted, never compared.
        live = iter(TreeReader(reader_conn, root, skip_ephemeral=True))
        return _Merge(_Batcher(writer_conn), live).run(nodes)
