"""What the backup service needs from ZooKeeper, as one small interface, and its default implementation.

The service is given an :class:`Engine` when it is built (``BackupService(storage, engine)``); it never
reaches for the ZooKeeper modules itself. :class:`ZkEngine` is the real one (:mod:`dcos_backup.logical` on
one ensemble); tests that need a fault wrap it (fail or block at a given point) instead of patching modules.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.recipe.lock import Lock

from dcos_backup.catalog.models import BackupRecord
from dcos_backup.errors import ZooKeeperUnavailable
from dcos_backup.iam import znodes
from dcos_backup.jobs.fencing import Fence, JournalEntry, forget_journal, read_journal, write_journal
from dcos_backup.logical import (
    ApplyStats,
    OpLog,
    ReadStats,
    TreeDiff,
    ZkSpec,
    ZNode,
    apply_ops,
    apply_tree,
    compare_tree,
    connect,
    diff_tree,
    iter_tree,
    plan_tree,
)
from dcos_backup.logical.records import is_under
from dcos_backup.logical.spec import DEFAULT_MAX_OUTAGE

LOCK_PATH = znodes.LOCK
LOCK_OWNER_SEP = " on "  # a lock node's data: "<job id> on <instance>"
_ZXID_RE = re.compile(r"^Zxid: (0x[0-9a-fA-F]+)", re.MULTILINE)


class JobLock(Protocol):
    """The cluster-wide lock of one job (kazoo's lock recipe is one)."""

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool: ...

    def release(self) -> bool: ...

    def contenders(self) -> list[str]: ...


def lock_identifier(job_id: str, owner: str) -> str:
    """What a job's lock node holds: the job and the service instance that runs it (whose restart may
    release it at once, :meth:`ZkEngine.release_stale_locks`)."""
    return f"{job_id}{LOCK_OWNER_SEP}{owner}"


def lock_holder(identifier: str) -> tuple[str, str | None]:
    """``(job id, instance)`` of a lock node's data (instance None for a lock of an older version)."""
    job_id, _, owner = identifier.partition(LOCK_OWNER_SEP)
    return job_id, owner or None


class Engine(Protocol):
    """Reading, writing and comparing subtrees of one ZooKeeper ensemble, and its job lock."""

    def read(self, root: str, stats: ReadStats | None = None) -> Iterator[ZNode]:
        """``root`` and its descendants in pre-order, children sorted, ephemeral nodes skipped."""
        ...

    def apply(
        self, root: str, nodes: Iterable[ZNode], paths: Sequence[str] | None = None, fence: Fence | None = None
    ) -> ApplyStats:
        """Make the live subtree at ``root`` (only its subtrees ``paths``, if given) equal to ``nodes`` (pre-order);
        with ``fence``, every batch is conditional on that leadership (Fenced once it no longer holds)."""
        ...

    def plan(
        self,
        root: str,
        nodes: Iterable[ZNode],
        ops: OpLog,
        paths: Sequence[str] | None = None,
        read: Callable[[str], Iterator[ZNode]] | None = None,
    ) -> ApplyStats:
        """What :meth:`apply` would change, kept in ``ops`` for :meth:`apply_ops`; the live subtree at
        ``path`` is ``read(path)`` (default :meth:`read`), so a caller backs up what the difference saw."""
        ...

    def apply_ops(self, ops: Iterable[object], fence: Fence | None = None, root: str = "/") -> None:
        """Send the operations :meth:`plan` kept for ``root``, in order; a node changed meanwhile fails a batch;
        ``fence`` as for :meth:`apply`."""
        ...

    def journal(self, record: BackupRecord, phase: str, fence: Fence) -> None:
        """Put ``record`` at ``phase`` in its journal entry, conditional on ``fence`` (:mod:`.fencing`)."""
        ...

    def journal_of(self, backup_id: str) -> JournalEntry | None:
        """The journal entry of ``backup_id`` as the last leader wrote it, or None."""
        ...

    def forget(self, backup_id: str) -> None:
        """Drop the journal entry of a job that has ended (best effort)."""
        ...

    def compare(self, root: str, nodes: Iterable[ZNode], paths: Sequence[str] | None = None) -> str | None:
        """The first difference between the live subtree (``paths`` of it) and ``nodes`` in one line, or None."""
        ...

    def diff(self, root: str, nodes: Iterable[ZNode], paths: Sequence[str] | None = None, limit: int = 0) -> TreeDiff:
        """What :meth:`apply` would change, without writing: the counts and the first ``limit`` changes."""
        ...

    def current_zxid(self) -> int:
        """The last zxid the ensemble has applied, as far as known; 0 if unknown."""
        ...

    def lock(self, identifier: str) -> JobLock:
        """The cluster-wide job lock, held under ``identifier`` (:func:`lock_identifier`, what a 409 names)."""
        ...

    def release_stale_locks(self, owner: str) -> list[str]:
        """Delete the job-lock nodes that ``owner`` holds under another ZooKeeper session (a previous
        process of this instance, dead): the ids of their jobs."""
        ...


class SessionLock:
    """kazoo's lock recipe, failing at once when there is no ZooKeeper session: kazoo would queue the
    request until one comes back, so that a ``POST /create`` with ZooKeeper down would hang and then
    start its job whenever ZooKeeper returns (issue 17: a 503 at once, nothing started)."""

    def __init__(self, client: KazooClient, lock: Lock) -> None:
        self._client = client
        self._lock = lock

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if not self._client.connected:
            raise ZooKeeperUnavailable("ZooKeeper unavailable: the backup service has no ZooKeeper session")
        try:
            return self._lock.acquire(blocking=blocking, timeout=timeout)
        except KazooException as exc:
            if not self._client.connected:
                raise ZooKeeperUnavailable(f"ZooKeeper unavailable: {type(exc).__name__}") from exc
            raise

    def release(self) -> bool:
        return self._lock.release()

    def contenders(self) -> list[str]:
        return self._lock.contenders()


class ZkEngine:
    """The engine of :mod:`dcos_backup.logical` on the ensemble ``hosts`` (``h1:p,h2:p[/chroot]``).

    The tree work runs on the engine's own pipelined sessions; one kazoo session holds the job lock and
    asks its server for ``srvr``. ``close()`` ends that session. With ``owner`` (the service's identity,
    :mod:`dcos_backup.iam.znodes`), that session also presents it and creates every znode (the lock's, the
    leader's) with the service's ACL, so that nobody without the identity may hold or plant them; and the
    tree work on the service's own subtree (the ``iam`` component: the users) presents it too, and writes
    there every node with the service's ACL whatever an archive says, so that a restored users' store is the
    service's and never world-readable.
    """

    def __init__(
        self,
        hosts: str,
        timeout: float = 15.0,
        *,
        auth: Iterable[tuple[str, str]] = (),
        max_outage: float = DEFAULT_MAX_OUTAGE,
        owner: znodes.Identity | None = None,
    ) -> None:
        """``auth``: the credentials every session presents (``[digest_auth("user:password")]``);
        ``max_outage``: how long a job rides out a ZooKeeper fault before it fails."""
        self.hosts = hosts
        self.spec = ZkSpec.parse(hosts, session_timeout=timeout, auth=auth, max_outage=max_outage)
        self.owner = owner
        self.owner_spec = self.spec
        if owner is not None:
            owner_auth = [*self.spec.auth, ("digest", f"{owner.user}:{owner.password}")]
            self.owner_spec = ZkSpec.parse(hosts, session_timeout=timeout, auth=owner_auth, max_outage=max_outage)
        if owner is None:
            self.client: KazooClient = connect(self.spec, timeout)
        else:
            self.client = connect(
                self.spec,
                timeout,
                auth_data=[*self.spec.auth, znodes.digest_auth_of(owner)],
                default_acl=znodes.owner_acl(owner, znodes.LOCK),
            )

    def _spec(self, root: str) -> ZkSpec:
        """The sessions' spec for work on ``root``: with the service's identity in its own subtree."""
        return self.owner_spec if is_under(root, znodes.ROOT) else self.spec

    def _owned(self, root: str, nodes: Iterable[ZNode]) -> Iterable[ZNode]:
        """``nodes`` as they are written at ``root``: in the service's subtree, with the service's ACL."""
        if self.owner is None or not is_under(root, znodes.ROOT):
            return nodes
        owner = self.owner
        return (dataclasses.replace(n, acl=tuple(znodes.owner_acl(owner, n.path))) for n in nodes)

    def read(self, root: str, stats: ReadStats | None = None) -> Iterator[ZNode]:
        return iter_tree(self._spec(root), root, stats=stats)

    def apply(
        self, root: str, nodes: Iterable[ZNode], paths: Sequence[str] | None = None, fence: Fence | None = None
    ) -> ApplyStats:
        return apply_tree(self._spec(root), root, self._owned(root, nodes), paths=paths, fence=fence)

    def plan(
        self,
        root: str,
        nodes: Iterable[ZNode],
        ops: OpLog,
        paths: Sequence[str] | None = None,
        read: Callable[[str], Iterator[ZNode]] | None = None,
    ) -> ApplyStats:
        return plan_tree(self._spec(root), root, self._owned(root, nodes), ops, paths=paths, read=read or self.read)

    def apply_ops(self, ops: Iterable[object], fence: Fence | None = None, root: str = "/") -> None:
        apply_ops(self._spec(root), ops, fence=fence)

    def journal(self, record: BackupRecord, phase: str, fence: Fence) -> None:
        write_journal(self.client, fence, record, phase)

    def journal_of(self, backup_id: str) -> JournalEntry | None:
        return read_journal(self.client, backup_id)

    def forget(self, backup_id: str) -> None:
        forget_journal(self.client, backup_id)

    def compare(self, root: str, nodes: Iterable[ZNode], paths: Sequence[str] | None = None) -> str | None:
        return compare_tree(self._spec(root), root, self._owned(root, nodes), paths=paths)

    def diff(self, root: str, nodes: Iterable[ZNode], paths: Sequence[str] | None = None, limit: int = 0) -> TreeDiff:
        return diff_tree(self._spec(root), root, self._owned(root, nodes), paths=paths, limit=limit)

    def current_zxid(self) -> int:
        """From the ``srvr`` reply of the server our session is on. Best effort: the zxid window of a
        backup is information, so not knowing it never fails a job."""
        try:
            reply = self.client.command(b"srvr")
        except (KazooException, OSError, AttributeError):  # AttributeError: kazoo dropped its socket meanwhile
            return 0
        match = _ZXID_RE.search(reply)
        return int(match.group(1), 16) if match else 0

    def lock(self, identifier: str) -> SessionLock:
        return SessionLock(self.client, Lock(self.client, LOCK_PATH, identifier=identifier))

    def release_stale_locks(self, owner: str) -> list[str]:
        if not self.client.connected:
            raise ZooKeeperUnavailable("ZooKeeper unavailable: no session to look at the job lock with")
        mine = self.client.client_id[0] if self.client.client_id else None
        released = []
        try:
            children = self.client.get_children(LOCK_PATH)
        except NoNodeError:
            return []
        for child in children:
            path = f"{LOCK_PATH}/{child}"
            try:
                data, stat = self.client.get(path)
                job_id, holder = lock_holder(data.decode("utf-8", "replace"))
                if holder == owner and stat.ephemeralOwner != mine:
                    self.client.delete(path, version=stat.version)
                    released.append(job_id)
            except NoNodeError:
                continue  # its session ended meanwhile: released anyway
        return released

    def close(self) -> None:
        self.client.stop()
        self.client.close()

    def __enter__(self) -> ZkEngine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
