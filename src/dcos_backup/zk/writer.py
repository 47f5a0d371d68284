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
from dataclasses import dataclass

from kazoo.protocol.serialization import Create, Delete, MultiHeader, SetACL, SetData, Transaction, multiheader_struct
from kazoo.security import ACL, OPEN_ACL_UNSAFE, Permissions

from dcos_backup.errors import DcosBackupError
from dcos_backup.zk.reader import read_nodes
from dcos_backup.zk.wire import OFFSET, Connection

MAX_BATCH_BYTES = 900 * 1024  # under jute.maxbuffer (1 MiB by default), with room for the request header
MAX_BATCH_OPS = 2000
MAX_IN_FLIGHT = 4
# In a failed multi every op reports an error; these only say "another op failed".
_NOT_THE_CAUSE = {"RolledBackError", "RuntimeInconsistency"}


@dataclass
class WriteCounts:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0


def _key(path: str) -> tuple[str, ...]:
    return tuple(p for p in path.split("/") if p)


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


def write_tree(
    hosts: str, root: str, wanted: Iterable[tuple[str, bytes, tuple[ACL, ...]]], timeout: float = 15.0
) -> WriteCounts:
    """Make the subtree at ``root`` equal to ``wanted`` (``(path, data, acl)`` in pre-order)."""
    counts = WriteCounts()
    with Connection(hosts, timeout) as reader_conn, Connection(hosts, timeout, prefer_leader=True) as writer_conn:
        batch = _Batcher(writer_conn)
        full = writer_conn.full_path
        deferred_acls: list[tuple[str, tuple[ACL, ...]]] = []  # applied when the merge leaves the node

        def leave_subtrees(next_path: str | None) -> None:
            while deferred_acls and (next_path is None or not _is_under(next_path, deferred_acls[-1][0])):
                path, acl = deferred_acls.pop()
                batch.add(SetACL(full(path), list(acl), -1))

        def delete_subtree(first: tuple, live: Iterator) -> tuple | None:
            """Delete ``first`` and its live descendants, children before parents; return the next live node.

            Pre-order in, post-order out through a stack of ancestors: memory is the depth, not the subtree.
            """
            ancestors = [first[0]]
            following = next(live, None)
            while following is not None and _is_under(following[0], first[0]):
                while not _is_under(following[0], ancestors[-1]):
                    batch.add(Delete(full(ancestors.pop()), -1))
                ancestors.append(following[0])
                counts.deleted += 1
                batch.keepalive()
                following = next(live, None)
            while ancestors:
                batch.add(Delete(full(ancestors.pop()), -1))
            counts.deleted += 1
            return following

        # Ephemeral live nodes stay where they are: never deleted, never compared.
        live = iter((path, data, acl) for path, data, acl, _ in read_nodes(reader_conn, root, skip_ephemeral=True))
        have = next(live, None)
        for path, data, acl in wanted:
            batch.keepalive()
            leave_subtrees(path)
            key = _key(path)
            while have is not None and _key(have[0]) < key:
                have = delete_subtree(have, live)
            if have is not None and have[0] == path:
                changed = False
                if have[1] != data:
                    batch.add(SetData(full(path), data, -1))
                    changed = True
                if tuple(have[2]) != tuple(acl):
                    deferred_acls.append((path, tuple(acl)))
                    changed = True
                counts.updated += changed
                counts.unchanged += not changed
                have = next(live, None)
            else:
                create_acl = OPEN_ACL_UNSAFE if _locks_out(tuple(acl)) else list(acl)
                batch.add(Create(full(path), data, create_acl, 0))
                if create_acl is OPEN_ACL_UNSAFE and tuple(acl) != tuple(OPEN_ACL_UNSAFE):
                    deferred_acls.append((path, tuple(acl)))
                counts.created += 1
        leave_subtrees(None)
        while have is not None:
            have = delete_subtree(have, live)
        batch.finish()
    return counts
