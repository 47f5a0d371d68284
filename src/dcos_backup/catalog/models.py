"""Records that cross the service boundary: a backup, its components, its restores, and their states.

The records are DC/OS's Backup and Restore API documents, ``BackupMetadata`` and ``RestoreMetadata``
(DC/OS's fields first, ours beside them): ``BackupRecord`` is what ``<root>/<id>.json`` holds and
what the API and ``dcos backup show`` print. Every status change is a method of the record it changes,
written once, and refuses a move the state machine does not allow (:class:`~dcos_backup.errors.Conflict`)::

    BackupRecord.start              -> STATUS_BACKING_UP, every component STATUS_UNKNOWN
      start_component(name)         -> that component STATUS_BACKING_UP -> finish -> STATUS_READY
                                                                        -> fail(reason) -> STATUS_ERROR
      finish                        -> STATUS_READY (every component READY)
      fail(reason), interrupt       -> STATUS_ERROR (the component that was running fails with it)
    BackupRecord.start_restore      -> a RestoreRecord STATUS_RESTORING, every component STATUS_UNKNOWN
      begin                         -> every component STATUS_RESTORING (a restore is all-or-nothing)
      protect(safety backup id)     -> once, before ZooKeeper changes
      finish(stats)                 -> STATUS_READY, every component READY with its counts
      fail(reason)                  -> STATUS_ERROR, every component ERROR
    DrillRecord.start               -> STATUS_RESTORING (into a scratch ZooKeeper; kept in ``drills`` once over)
      finish(nodes)                 -> STATUS_READY      fail(reason) -> STATUS_ERROR

A backup gets components only while it is backed up, and is restored only while it is ``STATUS_READY``
and no restore of it runs. Files of earlier formats are upgraded when read (:mod:`.migrations`).

A record is only loaded whole and valid: every time is timezone-aware, the format is one this code
knows, an archive is a plain file name in the backup's own folder. Anything else is a damaged entry,
which the catalog quarantines (:meth:`BackupRecord.quarantined`, ``storage.py``) instead of failing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from dcos_backup.catalog.archive import ArchiveSummary
from dcos_backup.catalog.ids import new_backup_id, valid_archive_name
from dcos_backup.catalog.migrations import UNKNOWN_VERSION, upgrade
from dcos_backup.errors import Conflict

FORMAT_VERSION = 2
INTERRUPTED_BACKUP = "interrupted: the backup service stopped during the backup"
UNKNOWN_TIME = datetime(1970, 1, 1, tzinfo=UTC)  # the timestamp a damaged entry is listed with


class Status(StrEnum):
    UNKNOWN = "STATUS_UNKNOWN"
    BACKING_UP = "STATUS_BACKING_UP"
    RESTORING = "STATUS_RESTORING"
    READY = "STATUS_READY"
    ERROR = "STATUS_ERROR"


def now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """Times are compared and sorted: one without a timezone cannot be, so it makes the record invalid."""
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{value.isoformat()} has no timezone")
    return value


def _require(what: str, current: Status, expected: Status, action: str) -> None:
    """The one check of every transition: ``what`` may ``action`` only while it is ``expected``."""
    if current != expected:
        raise Conflict(f"{what} is {current.value}, not {expected.value}: it cannot {action}")


def _move(what: str, current: Status, expected: Status, target: Status) -> Status:
    _require(what, current, expected, f"become {target.value}")
    return target


class ZxidWindow(BaseModel):
    first: int = Field(description="zxid seen in the first reply of the read")
    last: int = Field(description="zxid seen in the last reply of the read")


class Encryption(BaseModel):
    """How an archive is encrypted at rest: the algorithm and the id of the key (never the key)."""

    algorithm: str = "AES-256-GCM"
    key_id: str = Field(description="first 8 bytes of a hash of the key, in hex: names the key file to restore with")


class ComponentBackup(BaseModel):
    """One component of a backup: DC/OS's ``component_status[name]`` (its ``status``), then its archive."""

    status: Status = Status.UNKNOWN
    root: str = Field(description="the ZooKeeper subtree the component is")
    archive: str | None = None
    nodes: int = 0
    data_bytes: int = 0
    bytes: int = 0
    sha256: str | None = None
    zxid_window: ZxidWindow | None = None
    skipped_ephemeral: int = 0
    reason: str | None = None
    encryption: Encryption | None = Field(None, description="absent when the archive is stored in the clear")

    @field_validator("archive")
    @classmethod
    def _archive_in_own_folder(cls, archive: str | None) -> str | None:
        if archive is not None and not valid_archive_name(archive):
            raise ValueError(f"archive {archive!r:.80} is not a file name in the backup's folder")
        return archive

    def start(self) -> None:
        self.status = _move(f"component {self.root}", self.status, Status.UNKNOWN, Status.BACKING_UP)

    def finish(self, archive: str, summary: ArchiveSummary, skipped_ephemeral: int, zxid_window: ZxidWindow) -> None:
        """The archive is complete: record what it holds."""
        self.status = _move(f"component {self.root}", self.status, Status.BACKING_UP, Status.READY)
        self.archive = archive
        self.nodes = summary.nodes
        self.data_bytes = summary.data_bytes
        self.bytes = summary.bytes
        self.sha256 = summary.sha256
        self.skipped_ephemeral = skipped_ephemeral
        self.zxid_window = zxid_window
        self.encryption = Encryption(key_id=summary.key_id) if summary.key_id else None

    def fail(self, reason: str) -> None:
        self.status = _move(f"component {self.root}", self.status, Status.BACKING_UP, Status.ERROR)
        self.reason = reason


class RestoreComponent(BaseModel):
    """One component of a restore: DC/OS's ``status``, then what the restore changed in it."""

    status: Status = Status.UNKNOWN
    stats: dict[str, int] | None = Field(None, description="znodes created, updated, deleted, unchanged")


class RestoreRecord(BaseModel):
    """One restore of a backup (DC/OS's RestoreMetadata); its ``id`` is the restore's own, a bare uuid4."""

    id: str
    status: Status
    component_status: dict[str, RestoreComponent] = Field(default_factory=dict)
    timestamp: datetime = Field(description="when the restore started (RFC 3339, UTC)")
    finished_at: datetime | None = None
    reason: str | None = None
    safety_backup_id: str | None = None
    paths: list[str] | None = Field(None, description="the subtrees restored (--path); absent: whole components")
    map: str | None = Field(None, description="SRC=DST: the backed-up SRC was restored under DST (--map)")
    pruned_safety_backups: list[str] | None = Field(
        None, description="older safety backups deleted after this restore succeeded (the newest N are kept)"
    )

    _times_aware = field_validator("timestamp", "finished_at")(_aware)

    @classmethod
    def start(
        cls, components: Iterable[str], paths: Iterable[str] | None = None, mapping: str | None = None
    ) -> RestoreRecord:
        return cls(
            id=str(uuid.uuid4()),
            status=Status.RESTORING,
            component_status={name: RestoreComponent() for name in components},
            timestamp=now(),
            paths=list(paths) if paths else None,
            map=mapping,
        )

    def begin(self) -> None:
        """The job starts: every component is being restored (archives checked, then applied, all or none)."""
        _require(f"restore {self.id}", self.status, Status.RESTORING, "begin")
        for component in self.component_status.values():
            component.status = _move("a component", component.status, Status.UNKNOWN, Status.RESTORING)

    def protect(self, safety_backup_id: str) -> None:
        """A safety backup of the live tree exists: from here on ZooKeeper may change, and a restore
        cut short is rolled back to it."""
        _require(f"restore {self.id}", self.status, Status.RESTORING, "take a safety backup")
        if self.safety_backup_id is not None:
            raise Conflict(f"restore {self.id} already has its safety backup {self.safety_backup_id}")
        self.safety_backup_id = safety_backup_id

    def finish(self, stats: Mapping[str, dict[str, int]]) -> None:
        """Every component was applied and verified; ``stats`` counts what changed, per component."""
        self._end(Status.READY)
        for name, component in self.component_status.items():
            component.stats = stats.get(name)

    def fail(self, reason: str) -> None:
        self._end(Status.ERROR)
        self.reason = reason

    def _end(self, target: Status) -> None:
        self.status = _move(f"restore {self.id}", self.status, Status.RESTORING, target)
        for component in self.component_status.values():
            component.status = target
        self.finished_at = now()


class DrillRecord(BaseModel):
    """One restore drill of a backup: its archives restored into a scratch ZooKeeper and compared with
    them node for node (``jobs/drill.py``); ``STATUS_READY`` if the restored tree equals the archives."""

    id: str
    status: Status = Field(description="STATUS_READY: the drill passed; STATUS_ERROR: it failed (see reason)")
    timestamp: datetime = Field(description="when the drill started (RFC 3339, UTC)")
    finished_at: datetime | None = None
    duration: float | None = Field(None, description="seconds the drill took")
    nodes: int = Field(0, description="znodes restored and compared")
    reason: str | None = None

    _times_aware = field_validator("timestamp", "finished_at")(_aware)

    @classmethod
    def start(cls) -> DrillRecord:
        return cls(id=str(uuid.uuid4()), status=Status.RESTORING, timestamp=now())

    def finish(self, nodes: int) -> None:
        self._end(Status.READY)
        self.nodes = nodes

    def fail(self, reason: str) -> None:
        self._end(Status.ERROR)
        self.reason = reason

    def _end(self, target: Status) -> None:
        self.status = _move(f"drill {self.id}", self.status, Status.RESTORING, target)
        self.finished_at = now()
        self.duration = round((self.finished_at - self.timestamp).total_seconds(), 3)


class ArchivePoint(BaseModel):
    """Where a backup built from the continuous archive comes from (``POST /restore`` with a ``point``)."""

    requested: str = Field(description="the point asked for: zxid 0x... or time <RFC 3339>")
    zxid: str = Field(description="the last transaction of the state restored")
    time: str | None = Field(None, description="that transaction's time, when the point was a time")
    generation: str = Field(description="the archived history (STREAM/GENERATION) it was rebuilt from")
    snapshot: str
    transactions: int = Field(description="transactions replayed after the snapshot")
    digest: str = Field(description="ZooKeeper's tree digest at the point, as replayed and checked")
    digests_checked: int
    note: str | None = None


class BackupRecord(BaseModel):
    """A backup as the catalog keeps it and the API shows it (DC/OS's BackupMetadata, then our fields)."""

    dcos_version: str = Field(description="version of the cluster software that took the backup")
    id: str
    timestamp: datetime = Field(description="when the backup started (RFC 3339, UTC)")
    status: Status
    component_status: dict[str, ComponentBackup] = Field(default_factory=dict)
    restores: list[RestoreRecord] = Field(default_factory=list, description="every restore, oldest first")
    label: str
    reason: str | None = None
    finished_at: datetime | None = None
    safety: bool = Field(False, description="taken automatically before a restore")
    safety_for: str | None = Field(None, description="the backup whose restore this safety backup protects")
    schedule: str | None = Field(None, description="the schedule that took this backup; None for any other backup")
    drills: list[DrillRecord] = Field(default_factory=list, description="every restore drill, oldest first")
    safety_restore: str | None = Field(None, description="the id of the restore this safety backup protects")
    uploaded: datetime | None = Field(
        None, description="when this catalog received the backup as a portable upload; absent: taken by this cluster"
    )
    format_version: int = FORMAT_VERSION
    damaged: str | None = Field(
        None, description="why this catalog entry is quarantined (it can only be deleted); absent when it is sound"
    )
    point: ArchivePoint | None = Field(
        None, description="built from the continuous archive at this point (not read from the live tree)"
    )
    signature: str | None = Field(
        None, description="HMAC-SHA256 of the record under the cluster's record key (catalog/signing.py)"
    )

    _times_aware = field_validator("timestamp", "finished_at", "uploaded")(_aware)

    @model_validator(mode="before")
    @classmethod
    def _upgrade_earlier_formats(cls, data: Any) -> Any:
        return upgrade(data)

    @field_validator("format_version")
    @classmethod
    def _known_format(cls, version: int) -> int:
        if version != FORMAT_VERSION:
            raise ValueError(f"format {version} is not one this version reads (format {FORMAT_VERSION})")
        return version

    @classmethod
    def quarantined(cls, backup_id: str, reason: str) -> BackupRecord:
        """What the catalog lists for the damaged entry ``backup_id``: STATUS_ERROR, with ``damaged``
        saying why. Nothing in the entry is trusted, so nothing but its folder's name is shown."""
        return cls(
            dcos_version=UNKNOWN_VERSION,
            id=backup_id,
            timestamp=UNKNOWN_TIME,
            status=Status.ERROR,
            label=backup_id[:-37],  # the id without "-<uuid4>"
            reason=f"damaged catalog entry: {reason}",
            damaged=reason,
        )

    @classmethod
    def start(
        cls,
        label: str,
        roots: Mapping[str, str],
        dcos_version: str,
        *,
        safety_for: str | None = None,
        safety_restore: str | None = None,
        schedule: str | None = None,
    ) -> BackupRecord:
        """A new backup of the components ``roots`` (name -> ZooKeeper path), ``STATUS_BACKING_UP``;
        with ``safety_for``, the safety backup of that backup's restore ``safety_restore``; with
        ``schedule``, taken by it."""
        return cls(
            dcos_version=dcos_version,
            id=new_backup_id(label),
            timestamp=now(),
            status=Status.BACKING_UP,
            component_status={name: ComponentBackup(root=root) for name, root in roots.items()},
            label=label,
            safety=safety_for is not None,
            safety_for=safety_for,
            safety_restore=safety_restore,
            schedule=schedule,
        )

    @property
    def made_here(self) -> bool:
        """This cluster took the backup (it was not uploaded): only such a backup is pruned by retention,
        counted among the safety backups, or rolled back to."""
        return self.uploaded is None

    def as_upload(self) -> BackupRecord:
        """The record as a portable upload enters this catalog: a plain READY backup received now. What
        only the cluster that made it can vouch for goes: its restore history, its safety and schedule
        marks, its signature (this catalog signs it again)."""
        return self.model_copy(
            update={
                "restores": [],
                "safety": False,
                "safety_for": None,
                "safety_restore": None,
                "schedule": None,
                "signature": None,
                "damaged": None,
                "uploaded": now(),
            },
            deep=True,
        )

    @property
    def size(self) -> int:
        return sum(c.bytes for c in self.component_status.values())

    @property
    def latest_restore(self) -> RestoreRecord | None:
        return self.restores[-1] if self.restores else None

    @property
    def in_progress(self) -> bool:
        """A job works on this backup (or did, when its service stopped): it is being created or restored."""
        latest = self.latest_restore
        return self.status == Status.BACKING_UP or (latest is not None and latest.status == Status.RESTORING)

    def start_component(self, name: str) -> ComponentBackup:
        _require(f"backup {self.id}", self.status, Status.BACKING_UP, f"back up {name}")
        if name not in self.component_status:
            raise Conflict(f"backup {self.id} has no component {name}")
        component = self.component_status[name]
        component.start()
        return component

    def finish(self) -> None:
        """Every component's archive is complete."""
        unfinished = [name for name, c in self.component_status.items() if c.status != Status.READY]
        if unfinished:
            raise Conflict(f"backup {self.id} cannot be ready: {', '.join(unfinished)} not backed up")
        self.status = _move(f"backup {self.id}", self.status, Status.BACKING_UP, Status.READY)
        self.finished_at = now()

    def fail(self, reason: str) -> None:
        """The backup ended without a complete set of archives; a component still running failed with it
        (one not started yet stays STATUS_UNKNOWN)."""
        self.status = _move(f"backup {self.id}", self.status, Status.BACKING_UP, Status.ERROR)
        self.reason = reason
        self.finished_at = now()
        for component in self.component_status.values():
            if component.status == Status.BACKING_UP:
                component.fail(reason)

    def interrupt(self) -> None:
        """The service stopped while this backup ran (found at the next start)."""
        self.fail(INTERRUPTED_BACKUP)

    def check_restorable(self) -> None:
        """Only a ``STATUS_READY`` backup can be restored (or dry-run), one restore at a time (Conflict)."""
        if self.status != Status.READY:
            raise Conflict(f"backup {self.id} is {self.status.value}; only STATUS_READY backups can be restored")
        latest = self.latest_restore
        if latest is not None and latest.status == Status.RESTORING:
            raise Conflict(f"restore {latest.id} of this backup is still running")

    def check_drillable(self) -> None:
        """Only a ``STATUS_READY`` backup has archives to drill (Conflict)."""
        if self.status != Status.READY:
            raise Conflict(f"backup {self.id} is {self.status.value}; only STATUS_READY backups can be drilled")

    def start_restore(
        self, components: Iterable[str] | None = None, paths: Iterable[str] | None = None, mapping: str | None = None
    ) -> RestoreRecord:
        """Begin a restore of this backup (of ``components``, default all; ``paths``/``mapping`` as asked):
        only a ``STATUS_READY`` backup can be restored, one restore at a time."""
        self.check_restorable()
        restore = RestoreRecord.start(self.component_status if components is None else components, paths, mapping)
        self.restores.append(restore)
        return restore
