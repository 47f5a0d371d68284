"""Fencing: a service that is not provably the leader changes nothing, in ZooKeeper or in the catalog.

A leader holds a :class:`Fence`: the version of its leadership znode (ephemeral, :mod:`.leadership`) and
the version of the persistent epoch znode ``/dcos-backup/epoch``, which every new leader raises in the same
transaction that creates its leadership znode. Every batch a job writes to ZooKeeper carries both as
``check`` ops (:meth:`Fence.checks`, in the same ``multi``), so once the znode is gone (deleted, or the
leader's session expired while it was frozen) or another instance has led since, the old leader's next
batch fails as a whole and the job stops with :class:`Fenced`, changing nothing more. Checking the epoch
as well as the znode matters: a znode deleted and created again by another instance has version 0 again.

The catalog lives in storage, which cannot take part in a ZooKeeper transaction. So each record a job
writes goes first into its **journal** entry in ZooKeeper (``/dcos-backup/journal/<backup id>``: the whole
record, written in a ``multi`` with the fence's checks), and only then to storage: a zombie's journal
write fails, so it writes no record. The journal is what recovery decides from (:func:`decide`) and what
the catalog record is made to follow (:func:`reconcile`); docs/reliability.md gives the argument.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, KazooException, NodeExistsError, NoNodeError, OperationTimeoutError
from kazoo.protocol.serialization import CheckVersion

from dcos_backup.catalog.models import BackupRecord, Status
from dcos_backup.errors import DcosBackupError, Fenced, ZooKeeperUnavailable
from dcos_backup.iam import znodes

log = logging.getLogger(__name__)

LEADER_PATH = znodes.LEADER
EPOCH_PATH = znodes.EPOCH
JOURNAL_PATH = znodes.JOURNAL
JOURNAL_OUTAGE = 60.0  # seconds a journal write rides a ZooKeeper fault (a lost session revokes the fence sooner)
JOURNAL_RETRY = 0.2


@dataclass(frozen=True)
class Fence:
    """The leadership a job writes under: the versions its writes are conditional on."""

    instance: str
    leader_version: int
    epoch: int
    revoked: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    def checks(self, full_path: Any = None) -> list[CheckVersion]:
        """The ``check`` ops that make a ``multi`` fail unless this leadership still holds
        (``full_path`` maps a path to the session's namespace, for a chroot)."""
        full = full_path or (lambda p: p)
        return [CheckVersion(full(LEADER_PATH), self.leader_version), CheckVersion(full(EPOCH_PATH), self.epoch)]

    def check(self) -> None:
        """Raise Fenced if this service has already seen that it no longer leads (no round trip)."""
        if self.revoked.is_set():
            raise Fenced(f"the service {self.instance} no longer leads; the job stops and writes nothing more")

    def held(self, client: KazooClient) -> bool:
        """Whether ZooKeeper says this leadership still holds now (synced read of both znodes)."""
        try:
            client.sync(LEADER_PATH)
            _, leader = client.get(LEADER_PATH)
            _, epoch = client.get(EPOCH_PATH)
        except (NoNodeError, KazooException):
            return False
        return leader.version == self.leader_version and epoch.version == self.epoch


def fenced_error(results: list[object], checks: int = 2) -> Fenced | None:
    """Fenced if one of the first ``checks`` results of a multi (the fence's checks) failed for itself
    (not merely rolled back because another op failed), else None."""
    if any(refused_check(r) for r in results[:checks]):
        return Fenced("this service no longer leads (its fenced write was refused); it writes nothing more")
    return None


def refused_check(result: object) -> bool:
    """A fence check's result says the leadership no longer holds (every op of a failed multi reports an
    error; RolledBackError and RuntimeInconsistency only say another op failed)."""
    return isinstance(result, Exception) and type(result).__name__ not in ("RolledBackError", "RuntimeInconsistency")


# ---------------------------------------------------------------- the journal
def journal_path(backup_id: str) -> str:
    return f"{JOURNAL_PATH}/{backup_id}"


def write_journal(client: KazooClient, fence: Fence, record: BackupRecord, phase: str) -> None:
    """Put ``record`` (at ``phase``) in its journal entry, conditional on ``fence``; Fenced if refused."""
    deadline = time.monotonic() + JOURNAL_OUTAGE
    while True:
        fence.check()  # a session lost meanwhile has revoked it
        try:
            _write_entry(client, fence, record, phase)
            return
        except (ConnectionLoss, OperationTimeoutError) as exc:
            # Ride a ZooKeeper fault as the writer does: writing the same entry twice changes nothing.
            if time.monotonic() > deadline:
                raise ZooKeeperUnavailable(f"ZooKeeper unavailable: cannot journal {record.id}") from exc
            time.sleep(JOURNAL_RETRY)
        except KazooException as exc:
            raise ZooKeeperUnavailable(
                f"ZooKeeper unavailable: cannot journal {record.id} ({type(exc).__name__})"
            ) from exc


def _write_entry(client: KazooClient, fence: Fence, record: BackupRecord, phase: str) -> None:
    entry = json.dumps({"phase": phase, "instance": fence.instance, "record": record.model_dump(mode="json")})
    path = journal_path(record.id)
    for _ in range(2):
        transaction = client.transaction()
        for op in fence.checks():
            transaction.check(op.path, op.version)
        if client.exists(path) is None:
            transaction.create(path, entry.encode())
        else:
            transaction.set_data(path, entry.encode())
        try:
            results = transaction.commit()
        except NoNodeError:
            client.ensure_path(JOURNAL_PATH)
            continue
        refused = fenced_error(results)
        if refused is not None:
            fence.revoked.set()
            raise refused
        failed = [r for r in results if isinstance(r, Exception)]
        if not failed:
            return
        if isinstance(failed[-1], NodeExistsError | NoNodeError):  # the entry came or went meanwhile
            client.ensure_path(JOURNAL_PATH)
            continue
        raise DcosBackupError(f"cannot write the journal of {record.id}: {type(failed[-1]).__name__}")
    raise DcosBackupError(f"cannot write the journal of {record.id}")


@dataclass(frozen=True)
class JournalEntry:
    phase: str
    instance: str
    record: BackupRecord


def read_journal(client: KazooClient, backup_id: str) -> JournalEntry | None:
    """The journal entry of ``backup_id`` (synced: what the last leader wrote), or None."""
    try:
        client.sync(journal_path(backup_id))
        data, _ = client.get(journal_path(backup_id))
        doc = json.loads(data)
        return JournalEntry(str(doc["phase"]), str(doc["instance"]), BackupRecord.model_validate(doc["record"]))
    except NoNodeError:
        return None
    except (ValueError, KeyError, TypeError):
        log.warning("the journal entry of %s is unreadable; deciding from the catalog record", backup_id)
        return None


def forget_journal(client: KazooClient, backup_id: str) -> None:
    """Drop a finished job's journal entry (best effort: a leftover only costs a read at recovery)."""
    with contextlib.suppress(NoNodeError, KazooException):
        client.delete(journal_path(backup_id))


# ---------------------------------------------------------------- recovery's decision
@dataclass(frozen=True)
class Decision:
    """What a new leader does with a restore it finds unfinished: ``complete`` (READY), ``roll back``,
    ``fail`` (nothing was changed), ``adopt`` (the journal holds a final record the catalog lacks), with why;
    ``record``: the record to write (complete, adopt) or whose restore is rolled back (the journal's when it
    has one: it may be ahead of the catalog); ``roots``: where a rollback applies the safety backup, once
    recovery has made sure it may (:func:`dcos_backup.jobs.recovery.recovery_decision`)."""

    action: str
    why: str
    record: BackupRecord | None = None
    roots: Mapping[str, str] | None = None


APPLIED_PHASES = ("applied", "done")


def decide(record: BackupRecord, journal: JournalEntry | None) -> Decision:
    """Decide an interrupted restore from its journal (not from "the service stopped"): a restore whose
    apply and verify completed is completed, one cut mid-apply is rolled back, one that changed nothing
    fails; a final record in the journal is what the catalog gets."""
    restore = record.latest_restore
    journalled = journal.record.latest_restore if journal is not None else None
    if journal is not None and journalled is not None and restore is not None and journalled.id == restore.id:
        who = journal.instance
        if journalled.status != Status.RESTORING:
            return Decision("adopt", f"the journal of {who} holds the restore's final state", journal.record)
        if journal.phase in APPLIED_PHASES:
            return Decision(
                "complete",
                f"the restore's apply and verify had completed on {who} before it stopped leading "
                f"(journal phase {journal.phase}): completed, not rolled back",
                journal.record,
            )
        if journalled.safety_backup_id is not None:
            return Decision(
                "roll back", f"interrupted mid-apply on {who} (journal phase {journal.phase})", journal.record
            )
        return Decision("fail", f"interrupted on {who} before any change; ZooKeeper was not touched")
    # No journal: a service without leadership (one instance) that stopped; its record is all there is.
    if restore is not None and restore.safety_backup_id is not None:
        return Decision("roll back", "interrupted: the service stopped during the restore", record)
    return Decision("fail", "interrupted before any change; ZooKeeper was not touched")
