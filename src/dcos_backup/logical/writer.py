"""The tree writer used by restores: make a live subtree equal to a wanted stream, in ``multi()`` batches.

:mod:`.merge` computes the operations (the same ones a dry run counts); this module sends them. They are
packed into ``multi`` transactions kept under ZooKeeper's request size limit (``jute.maxbuffer``, 1 MiB by
default) and several are kept in flight on one session; ZooKeeper applies one session's requests in
order, so a batch may create children of a node the batch before it created. ``setACL`` (which ``multi``
cannot carry) and an operation too big for a batch go alone, in order.

Riding over faults: when the session is lost (leader change, member dead or frozen), the batches that
were sent but not answered are in doubt. The writer opens a session on another member, ``sync`` s, and
asks which of them the ensemble applied: a ``multi`` is atomic and one session's requests apply in order,
so the applied ones are a prefix, and the existence of the nodes a batch creates or deletes tells whether
it was. The rest is sent again; the merge itself goes on where it was (the wanted stream is read once).
Batches that only set data or ACLs, or raise counters, are sent again in any case: doing them twice
changes nothing. ``ZkSpec.max_outage`` bounds the time without progress.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from kazoo.exceptions import BadVersionError, NoAuthError, NodeExistsError, NoNodeError, NotEmptyError
from kazoo.protocol.serialization import (
    Create,
    Delete,
    Exists,
    MultiHeader,
    SetACL,
    Sync,
    Transaction,
    multiheader_struct,
)
from kazoo.security import OPEN_ACL_UNSAFE

from dcos_backup.errors import AccessDenied, ChangedMeanwhile, DcosBackupError, Fenced, ZooKeeperUnavailable
from dcos_backup.logical.merge import Planner, RaiseCounter, plan_steps
from dcos_backup.logical.records import ApplyStats, ZNode
from dcos_backup.logical.ride import Outage, retrying
from dcos_backup.logical.spec import ZkSpec
from dcos_backup.logical.wire import OFFSET, Connection, Reply


class Fence(Protocol):
    """What the writer needs of a job's fence (:class:`dcos_backup.jobs.fencing.Fence`): the ``check`` ops
    that make a batch fail unless the writer's leadership holds, and the flag it sets when one did."""

    @property
    def revoked(self) -> threading.Event: ...

    def checks(self, full_path: Callable[[str], str]) -> list[Any]: ...


def _results(reply: Reply) -> list[object]:
    """A multi's results, one per op ([] if the reply carries none)."""
    try:
        return list(Transaction.deserialize(reply.body, OFFSET))
    except Exception:  # a refusal of the whole request carries no per-op results
        return []


MAX_BATCH_BYTES = 900 * 1024  # under jute.maxbuffer (1 MiB by default), with room for the request header
MAX_BATCH_OPS = 2000
MAX_IN_FLIGHT = 4
COUNTER_CHILD = ".dcos-backup-counter"  # the throw-away child that raises a parent's child counter
# In a failed multi every op reports an error; these only say "another op failed".
_NOT_THE_CAUSE = {"RolledBackError", "RuntimeInconsistency"}
_END: bytes = multiheader_struct.pack(-1, True, -1)
# What a change refused for one of these met a node another client changed after the merge read it.
_CHANGED = (NodeExistsError, NoNodeError, NotEmptyError, BadVersionError)


class _Multi:
    """A ``multi`` request whose body is built as ops are added (each op serialised once)."""

    type = Transaction.type

    def __init__(self, fence: Sequence[Any] = ()) -> None:
        self.body = bytearray()
        self.ops: list[Any] = []  # kazoo's operations (untyped)
        self.fenced = len(fence)  # the first ops: the fence's checks (the batch fails unless it holds)
        for check in fence:
            self.append(check, _encoded(check))

    def append(self, op: object, encoded: bytes) -> None:
        self.body += encoded
        self.ops.append(op)

    @property
    def empty(self) -> bool:
        return len(self.ops) == self.fenced

    def room_for(self, size: int, ops: int = 1) -> bool:
        return self.empty or (len(self.body) + size <= MAX_BATCH_BYTES and len(self.ops) + ops <= MAX_BATCH_OPS)

    def serialize(self) -> bytearray:
        return self.body + _END


def _encoded(op: Any) -> bytes:
    encoded: bytes = MultiHeader(op.type, False, -1).serialize() + op.serialize()
    return encoded


class _Batcher:
    """The sink of an apply: packs ops into multis, keeps a few in flight, raises on the first failed op,
    and settles the batches in doubt when the session is lost (see the module docstring)."""

    def __init__(self, spec: ZkSpec, stats: ApplyStats, fence: Fence | None = None) -> None:
        self.spec = spec
        self.stats = stats
        self.outage = Outage(spec, "writing to ZooKeeper")
        self.conn = retrying(self.outage, self._connect)
        self.fence = fence
        self.checks = fence.checks(spec.full_path) if fence is not None else []
        self.multi = _Multi(self.checks)

    def _connect(self) -> Connection:
        conn = Connection(self.spec, prefer_leader=True)
        self.outage.connected_now()
        self.stats.reconnects, self.stats.server = self.outage.reconnects, conn.address
        return conn

    def close(self) -> None:
        self.conn.close()

    # ---------------------------------------------------------------- the sink
    def add(self, op: Any) -> None:
        kind = type(op)
        if kind is RaiseCounter:
            self._raise_counter(op)
            return
        encoded = None if kind is SetACL else _encoded(op)
        if encoded is None:  # a multi cannot carry setACL: a batch of the fence's checks goes just before it
            self.send()
            if self.checks:
                self._send(_Multi(self.checks), self.checks)
            self._send(op, op)
            return
        if len(encoded) > MAX_BATCH_BYTES:  # too big to share a batch: alone with the fence's checks
            self.send()
        if not self.multi.room_for(len(encoded)):
            self.send()
        self.multi.append(op, encoded)

    def tick(self) -> None:
        """Ping while the merge only reads (a long unchanged stretch): an idle session would expire."""
        try:
            self.conn.ping_if_idle()
        except ZooKeeperUnavailable as exc:
            self._recover(exc)

    def _raise_counter(self, op: RaiseCounter) -> None:
        """Pairs of create + delete of a throw-away child, each pair in one batch (the child never stays)."""
        child = f"{op.path.rstrip('/')}/{COUNTER_CHILD}"
        create, delete = Create(child, b"", OPEN_ACL_UNSAFE, 0), Delete(child, -1)
        pair = (_encoded(create), _encoded(delete))
        size = len(pair[0]) + len(pair[1])
        for _ in range(op.creates):
            if not self.multi.room_for(size, 2):
                self.send()
            self.multi.append(create, pair[0])
            self.multi.append(delete, pair[1])

    def send(self) -> None:
        if not self.multi.empty:
            multi, self.multi = self.multi, _Multi(self.checks)
            self._send(multi, multi.ops)

    def finish(self) -> None:
        """Send what is left and wait until every batch is answered."""
        self.send()
        self._wait_for_room(1)

    # ---------------------------------------------------------------- the session
    def _send(self, request: Any, tag: Any) -> None:
        self._wait_for_room(MAX_IN_FLIGHT)
        try:
            self.conn.queue(request, tag)
        except ZooKeeperUnavailable as exc:  # the request is queued: it is among those in doubt
            self._recover(exc)

    def _wait_for_room(self, limit: int) -> None:
        """Handle replies until fewer than ``limit`` requests are in flight."""
        while self.conn.in_flight >= limit:
            try:
                reply = self.conn.next_reply()
            except ZooKeeperUnavailable as exc:
                self._recover(exc)
                continue
            if self.outage.since is not None:
                self.outage.recovered()
            self._check(reply)

    def _check(self, reply: Reply) -> None:
        if type(reply.request) is not _Multi:  # an op sent alone
            if reply.err:
                raise _refused(reply.tag, reply.error())
            return
        results = _results(reply)
        fenced = reply.request.fenced
        if fenced and any(
            isinstance(r, Exception) and type(r).__name__ not in _NOT_THE_CAUSE for r in results[:fenced]
        ):
            if self.fence is not None:
                self.fence.revoked.set()
            raise Fenced("this service no longer leads (a batch conditional on its leadership was refused)")
        if reply.err:
            raise DcosBackupError(f"ZooKeeper refused a batch of {len(reply.tag)} changes: {reply.error()!r}")
        for op, result in zip(reply.tag, results, strict=False):
            if isinstance(result, Exception) and type(result).__name__ not in _NOT_THE_CAUSE:
                raise _refused(op, result)

    # ---------------------------------------------------------------- faults
    def _recover(self, exc: ZooKeeperUnavailable) -> None:
        """A new session on any member, with the requests in doubt settled (see the module docstring)."""
        doubtful = self.conn.take_unanswered()
        self.conn.close()
        while True:
            self.outage.wait(exc)
            conn = None
            try:
                conn = self._connect()
                for request, tag in _not_applied(conn, doubtful):
                    conn.queue(request, tag)
                conn.flush()
            except ZooKeeperUnavailable as again:
                if conn is not None:
                    conn.close()
                exc = again
                continue
            self.conn = conn
            return


def _refused(op: Any, error: Exception) -> DcosBackupError:
    what = type(op).__name__.lower()
    if isinstance(error, NoAuthError):
        return AccessDenied(f"not allowed to {what} {op.path} (NoAuth)", path=op.path)
    if isinstance(error, _CHANGED):
        return ChangedMeanwhile(f"cannot {what} {op.path}: {type(error).__name__}", path=op.path)
    return DcosBackupError(f"cannot {what} {op.path}: {type(error).__name__}")


def _not_applied(conn: Connection, doubtful: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """The requests of ``doubtful`` (sent on a lost session, in order) to send again on ``conn``."""
    if not doubtful:
        return []
    conn.queue(Sync(conn.full_path("/")), None)  # what the lost session's member committed is visible now
    for _ in conn.replies():
        pass
    again: list[tuple[Any, Any]] = []
    for index, (request, tag) in enumerate(doubtful):
        applied = _was_applied(conn, request)
        if applied is False:
            return again + doubtful[index:]  # and none after it: a session's requests apply in order
        if applied is None:
            again.append((request, tag))  # cannot tell, and doing it twice changes nothing
    return again


def _was_applied(conn: Connection, request: Any) -> bool | None:
    """Whether the ensemble applied ``request`` (True/False), from the nodes it creates or deletes;
    None for one that only sets data or ACLs or raises counters (idempotent)."""
    ops = request.ops if type(request) is _Multi else [request]
    probes = [op for op in ops if type(op) in (Create, Delete) and not op.path.endswith("/" + COUNTER_CHILD)]
    if not probes:
        return None
    for op in probes:
        conn.queue(Exists(op.path, None))
    present = [reply.err == 0 for reply in conn.replies()]
    as_applied = [there == (type(op) is Create) for op, there in zip(probes, present, strict=True)]
    if all(as_applied):
        return True
    if not any(as_applied):
        return False
    changed = next(op.path for op, done in zip(probes, as_applied, strict=True) if not done)
    raise DcosBackupError(
        f"cannot tell whether a batch of {len(ops)} changes was applied before the ZooKeeper session was lost: "
        f"{changed} was changed by another client meanwhile"
    )


def apply_tree(
    hosts: str | ZkSpec,
    root: str,
    nodes: Iterable[ZNode],
    *,
    paths: Iterable[str] | None = None,
    stats: ApplyStats | None = None,
    fence: Fence | None = None,
) -> ApplyStats:
    """Make the subtree at ``root`` equal to ``nodes`` (pre-order): create, update, delete in batches.

    ``hosts`` is a connect string (``"h1:2181,h2:2181[/chroot]"``) or a :class:`ZkSpec`. Ephemeral
    nodes in the live tree are left alone. With ``paths`` (subtrees of ``root``), only those subtrees
    are made equal to their part of ``nodes``; everything else is neither read nor written, and a path
    ``nodes`` does not hold raises NotFound before that subtree is touched (check with
    :func:`~dcos_backup.logical.missing_subtrees` first to refuse before anything is written). Missing
    parents of a subtree are created. Every parent's child counter ends at least at the stream's.
    ``stats`` (returned) is filled as the merge goes: a caller may show it as progress. With ``fence``
    (:class:`~dcos_backup.jobs.fencing.Fence`), every batch carries its checks: Fenced once it no longer holds.
    """
    with _batches(hosts, stats, fence) as batch:
        planner = Planner(batch, batch.spec.full_path, batch.stats)
        for step in plan_steps(batch.spec, root, nodes, paths):
            planner.feed(step)
        planner.finish()
    return batch.stats


def apply_ops(
    hosts: str | ZkSpec, ops: Iterable[object], stats: ApplyStats | None = None, fence: Fence | None = None
) -> ApplyStats:
    """Send operations a planning pass kept (:func:`~dcos_backup.logical.plan_tree` into an
    :class:`~dcos_backup.logical.oplog.OpLog`), in order, batched and riding over faults as :func:`apply_tree`
    does. They are sent as planned: a node another client created, deleted or filled meanwhile makes a
    batch fail (DcosBackupError naming it); what changed elsewhere is not seen (verify afterwards).
    ``stats`` gets the session's details (reconnects, server); the counts are the planning pass's.
    ``fence``: as for :func:`apply_tree`.
    """
    with _batches(hosts, stats, fence) as batch:
        for op in ops:
            batch.add(op)
    return batch.stats


@contextlib.contextmanager
def _batches(hosts: str | ZkSpec, stats: ApplyStats | None, fence: Fence | None) -> Iterator[_Batcher]:
    """The batcher of one apply (fenced by ``fence``, if given): what the body adds is all sent and
    answered when it ends; its connection closed whatever happens."""
    batch = _Batcher(ZkSpec.of(hosts), stats if stats is not None else ApplyStats(), fence)
    try:
        yield batch
        batch.finish()
    finally:
        batch.close()
