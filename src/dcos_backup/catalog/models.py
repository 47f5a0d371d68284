"""Records that cross the service boundary: a backup, its components, its restores, and their states.

``BackupRecord`` is what ``<root>/<id>/backup.json`` holds and the source of what ``dcos backup show``
prints. Every status change is a method of the record it changes, written once, and refuses a move the
state machine does not allow (:class:`~dcos_backup.errors.Conflict`)::

    BackupRecord.start              -> STATUS_BACKING_UP -> finish               -> STATUS_READY
                                                         -> fail(reason), interrupt -> STATUS_ERROR
    BackupRecord.start_component    -> STATUS_BACKING_UP -> finish               -> STATUS_READY
      (a ComponentBackup)                                -> fail(reason)         -> STATUS_ERROR
    BackupRecord.start_restore      -> STATUS_RESTORING  -> finish(stats)        -> STATUS_READY
      (a RestoreRecord; protect(safety backup id) once)  -> fail(reason)         -> STATUS_ERROR

A backup gets components only while it is backed up, and is restored only while it is ``STATUS_READY``
and no restore of it runs. A failed backup fails the component it was working on, with the same reason;
a failed restore fails every component of it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from dcos_backup.catalog.archive import ArchiveSummary
from dcos_backup.errors import Conflict, NotFound, UsageError

FORMAT_VERSION = 1
LABEL_RULES = "3-25 characters of [A-Za-z0-9_.-], not starting with '..'"
INTERRUPTED_BACKUP = "interrupted: the backup service stopped during the backup"
_LABEL_RE = re.compile(r"[A-Za-z0-9_.-]{3,25}")
_UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
_ID_RE = re.compile(rf"(?P<label>[A-Za-z0-9_.-]{{3,25}})-{_UUID4}")


class Status(StrEnum):
    BACKING_UP = "STATUS_BACKING_UP"
    RESTORING = "STATUS_RESTORING"
    READY = "STATUS_READY"
    ERROR = "STATUS_ERROR"


def now() -> datetime:
    return datetime.now(UTC)


def validate_label(label: str) -> str:
    """The seed's label rules; raises UsageError saying which rule failed."""
    if not isinstance(label, str) or not _LABEL_RE.fullmatch(label):
        raise UsageError(f"invalid label {label!r}: a label is {LABEL_RULES}")
    if label.startswith(".."):
        raise UsageError(f"invalid label {label!r}: a label cannot start with '..'")
    return label


def new_backup_id(label: str) -> str:
    return f"{validate_label(label)}-{uuid.uuid4()}"


def validate_backup_id(backup_id: str) -> str:
    """Ids are ``<label>-<uuid4>``; anything else (``../x``, ``a/b``) cannot name a backup."""
    match = _ID_RE.fullmatch(backup_id or "")
    if not match or match.group("label").startswith(".."):
        raise NotFound(f"no backup with id {backup_id!r}")
    return backup_id


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


class ComponentBackup(BaseModel):
    """One component's part of a backup."""

    name: str
    status: Status
    root: str
    archive: str | None = None
    nodes: int = 0
    data_bytes: int = 0
    bytes: int = 0
    sha256: str | None = None
    zxid_window: ZxidWindow | None = None
    skipped_ephemeral: int = 0
    reason: str | None = None

    @classmethod
    def start(cls, name: str, root: str) -> ComponentBackup:
        return cls(name=name, status=Status.BACKING_UP, root=root)

    def finish(self, archive: str, summary: ArchiveSummary, skipped_ephemeral: int, zxid_window: ZxidWindow) -> None:
        """The archive is complete: record what it holds."""
        self.status = _move(f"component {self.name}", self.status, Status.BACKING_UP, Status.READY)
        self.archive = archive
        self.nodes = summary.nodes
        self.data_bytes = summary.data_bytes
        self.bytes = summary.bytes
        self.sha256 = summary.sha256
        self.skipped_ephemeral = skipped_ephemeral
        self.zxid_window = zxid_window

    def fail(self, reason: str) -> None:
        self.status = _move(f"component {self.name}", self.status, Status.BACKING_UP, Status.ERROR)
        self.reason = reason


class RestoreRecord(BaseModel):
    """One restore of a backup; ``component_status`` is what the seed tells operators to watch."""

    id: str
    status: Status
    component_status: dict[str, Status] = Field(default_factory=dict)
    started_at: datetime
    finished_at: datetime | None = None
    reason: str | None = None
    safety_backup_id: str | None = None
    stats: dict[str, dict[str, int]] = Field(default_factory=dict)

    @classmethod
    def start(cls, components: Iterable[str]) -> RestoreRecord:
        return cls(
            id=str(uuid.uuid4()),
            status=Status.RESTORING,
            component_status={name: Status.RESTORING for name in components},
            started_at=now(),
        )

    def protect(self, safety_backup_id: str) -> None:
        """A safety backup of the live tree exists: from here on ZooKeeper may change, and a restore
        cut short is rolled back to it."""
        _require(f"restore {self.id}", self.status, Status.RESTORING, "take a safety backup")
        if self.safety_backup_id is not None:
            raise Conflict(f"restore {self.id} already has its safety backup {self.safety_backup_id}")
        self.safety_backup_id = safety_backup_id

    def finish(self, stats: dict[str, dict[str, int]]) -> None:
        """Every component was applied and verified; ``stats`` counts what changed, per component."""
        self._end(Status.READY)
        self.stats = stats

    def fail(self, reason: str) -> None:
        self._end(Status.ERROR)
        self.reason = reason

    def _end(self, target: Status) -> None:
        self.status = _move(f"restore {self.id}", self.status, Status.RESTORING, target)
        self.component_status = {name: target for name in self.component_status}
        self.finished_at = now()


def _of_latest(name: str, kind: Any, empty: Callable[[], object] = lambda: None) -> Any:
    """A field of :class:`Restores` computed when serialised: ``name`` of the latest restore
    (``empty()`` before the first restore)."""

    def get(restores: Restores) -> object:
        latest = restores.latest
        return getattr(latest, name) if latest is not None else empty()

    return computed_field(property(get), return_type=kind)


class Restores(BaseModel):
    """Every restore of a backup, oldest first, in ``history``.

    The latest restore's fields also appear at top level (``restores.component_status.marathon``, as
    the seed tells operators to watch); they are derived from ``history`` when the record is serialised,
    never stored twice. Files that carry them (all of them do) load fine: the copies are ignored.
    """

    model_config = ConfigDict(populate_by_name=True)

    # Stored under the name "history" but serialised by the computed field of that name below, so that
    # it comes after the derived fields, where the documents have always had it.
    entries: list[RestoreRecord] = Field(default_factory=list, alias="history", exclude=True)

    @property
    def latest(self) -> RestoreRecord | None:
        return self.entries[-1] if self.entries else None

    def start(self, components: Iterable[str]) -> RestoreRecord:
        """Begin a restore; refused while the latest one still runs."""
        latest = self.latest
        if latest is not None and latest.status == Status.RESTORING:
            raise Conflict(f"restore {latest.id} of this backup is still running")
        restore = RestoreRecord.start(components)
        self.entries.append(restore)
        return restore

    # The latest restore's fields, in the order the documents have always had them, then the history.
    id = _of_latest("id", str | None)
    status = _of_latest("status", Status | None)
    component_status = _of_latest("component_status", dict[str, Status], empty=dict)
    started_at = _of_latest("started_at", datetime | None)
    finished_at = _of_latest("finished_at", datetime | None)
    reason = _of_latest("reason", str | None)
    safety_backup_id = _of_latest("safety_backup_id", str | None)
    history = computed_field(property(lambda self: self.entries), return_type=list[RestoreRecord])


class BackupRecord(BaseModel):
    """A backup as the catalog keeps it."""

    id: str
    label: str
    status: Status
    reason: str | None = None
    created_at: datetime
    finished_at: datetime | None = None
    safety: bool = Field(False, description="taken automatically before a restore")
    safety_for: str | None = Field(None, description="the backup whose restore this safety backup protects")
    format_version: int = FORMAT_VERSION
    components: dict[str, ComponentBackup] = Field(default_factory=dict)
    restores: Restores = Field(default_factory=Restores)

    @classmethod
    def start(cls, label: str, *, safety_for: str | None = None) -> BackupRecord:
        """A new backup (``STATUS_BACKING_UP``); with ``safety_for``, the safety backup of that backup's restore."""
        return cls(
            id=new_backup_id(label),
            label=label,
            status=Status.BACKING_UP,
            created_at=now(),
            safety=safety_for is not None,
            safety_for=safety_for,
        )

    @property
    def size(self) -> int:
        return sum(c.bytes for c in self.components.values())

    @property
    def in_progress(self) -> bool:
        """A job works on this backup (or did, when its service stopped): it is being created or restored."""
        latest = self.restores.latest
        return self.status == Status.BACKING_UP or (latest is not None and latest.status == Status.RESTORING)

    def start_component(self, name: str, root: str) -> ComponentBackup:
        _require(f"backup {self.id}", self.status, Status.BACKING_UP, f"back up {name}")
        component = self.components[name] = ComponentBackup.start(name, root)
        return component

    def finish(self) -> None:
        """Every component's archive is complete."""
        unfinished = [c.name for c in self.components.values() if c.status != Status.READY]
        if unfinished:
            raise Conflict(f"backup {self.id} cannot be ready: {', '.join(unfinished)} not backed up")
        self.status = _move(f"backup {self.id}", self.status, Status.BACKING_UP, Status.READY)
        self.finished_at = now()

    def fail(self, reason: str) -> None:
        """The backup ended without a complete set of archives; a component still running failed with it."""
        self.status = _move(f"backup {self.id}", self.status, Status.BACKING_UP, Status.ERROR)
        self.reason = reason
        self.finished_at = now()
        for component in self.components.values():
            if component.status == Status.BACKING_UP:
                component.fail(reason)

    def interrupt(self) -> None:
        """The service stopped while this backup ran (found at the next start)."""
        self.fail(INTERRUPTED_BACKUP)

    def start_restore(self) -> RestoreRecord:
        """Begin a restore of this backup: only a ``STATUS_READY`` backup can be restored."""
        if self.status != Status.READY:
            raise Conflict(f"backup {self.id} is {self.status.value}; only STATUS_READY backups can be restored")
        return self.restores.start(self.components)
