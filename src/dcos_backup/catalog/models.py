"""Records that cross the service boundary: a backup, its components, its restores.

``BackupRecord`` is what ``dcos backup show`` prints and what ``<root>/<id>/backup.json`` holds.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from dcos_backup.errors import NotFound, UsageError

FORMAT_VERSION = 1
LABEL_RULES = "3-25 characters of [A-Za-z0-9_.-], not starting with '..'"
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


class Restores(BaseModel):
    """The latest restore's fields at top level (``restores.component_status.marathon``) plus history."""

    id: str | None = None
    status: Status | None = None
    component_status: dict[str, Status] = Field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str | None = None
    safety_backup_id: str | None = None
    history: list[RestoreRecord] = Field(default_factory=list)

    def start(self, record: RestoreRecord) -> None:
        self.history.append(record)
        self.sync_latest()

    def latest(self) -> RestoreRecord | None:
        return self.history[-1] if self.history else None

    def sync_latest(self) -> None:
        latest = self.latest()
        if latest is not None:
            for name in ("id", "status", "component_status", "started_at", "finished_at", "reason", "safety_backup_id"):
                setattr(self, name, getattr(latest, name))


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

    @property
    def size(self) -> int:
        return sum(c.bytes for c in self.components.values())

    def public(self, progress: dict | None = None) -> dict:
        doc = self.model_dump(mode="json")
        doc["size"] = self.size
        if progress:
            doc["progress"] = progress
        return doc
