"""The contract of DC/OS's Backup and Restore API (v1): routes (:mod:`.paths`), request and response models.

DC/OS documented it (``backup-restore.yaml``, basePath ``/system/v1/backup/v1``); the service serves it
(:mod:`.app`) and ``dcos backup`` calls it (:mod:`dcos_backup.cli.client`). Responses carry DC/OS's documents
(``BackupMetadata``, ``RestoreMetadata``: :mod:`dcos_backup.catalog.models`) with our fields beside
DC/OS's. Request bodies are models so that later options are optional fields beside DC/OS's ``id``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    computed_field,
    field_validator,
    model_serializer,
    model_validator,
)

from dcos_backup.api.paths import (
    CANCEL,
    CREATE,
    DELETE,
    DOWNLOAD,
    DRILL,
    HEALTH,
    LIST,
    MAX_BODY,
    PREFIX,
    RESTORE,
    UPLOAD,
)
from dcos_backup.catalog.ids import ID_PATTERN, LABEL_PATTERN, is_backup_id, validate_label
from dcos_backup.catalog.models import ArchivePoint, BackupRecord, DrillRecord, RestoreRecord
from dcos_backup.errors import UsageError
from dcos_backup.jobs.point import Point
from dcos_backup.logical import PathMap
from dcos_backup.logical.subtrees import normal_path

MAX_PATHS = 1000  # --path arguments one restore may name

__all__ = [
    "CANCEL",
    "CREATE",
    "DELETE",
    "DOWNLOAD",
    "DRILL",
    "HEALTH",
    "LIST",
    "MAX_BODY",
    "PREFIX",
    "RESTORE",
    "UPLOAD",
]  # the routes, with the models


# ------------------------------------------------------------------------------------------ requests
class CreateBackup(BaseModel):
    label: str = Field(
        description="3-25 characters; DC/OS's pattern",
        json_schema_extra={"minLength": 3, "maxLength": 25, "pattern": LABEL_PATTERN},
    )
    components: list[str] = Field(
        default_factory=list, description="the components to back up (default: all of the cluster's)", max_length=64
    )

    @field_validator("label")
    @classmethod
    def _dcos_label(cls, label: str) -> str:
        return _as_value_error(validate_label, label)


class BackupRef(BaseModel):
    """A request naming one backup by its id (``<label>-<uuid4>``)."""

    id: str = Field(
        description="a backup's id, <label>-<uuid4>; a restore's id is not one (400)",
        json_schema_extra={"pattern": ID_PATTERN},
    )

    @field_validator("id")
    @classmethod
    def _a_backup_id(cls, backup_id: str) -> str:
        if not is_backup_id(backup_id):
            raise ValueError(f"{backup_id!r} is not a backup id (ids are <label>-<uuid4>)")
        return backup_id


class PointRequest(BaseModel):
    """A point of the cluster's continuous archive: exactly one of ``time`` and ``zxid``."""

    time: str | None = Field(None, description="the last transaction at or before this RFC 3339 time (Z or offset)")
    zxid: str | None = Field(None, description="the state right after this transaction (0x hex or decimal)")

    @model_validator(mode="after")
    def _one_point(self) -> PointRequest:
        _as_value_error(self.point().target)
        return self

    def point(self) -> Point:
        return Point(time=self.time, zxid=self.zxid)


class RestoreOptions(BaseModel):
    """What a restore request may add to what it restores (ours, all optional)."""

    dry_run: bool = Field(False, description="compute what the restore would change; change nothing")
    paths: list[str] = Field(
        default_factory=list,
        description="restore only these subtrees (absolute znode paths under a component's root)",
        max_length=MAX_PATHS,
    )
    map: str | None = Field(None, description="SRC=DST: restore the backed-up subtree SRC under DST instead")

    @field_validator("paths")
    @classmethod
    def _absolute_paths(cls, paths: list[str]) -> list[str]:
        return [_as_value_error(normal_path, p, "path") for p in paths]

    @field_validator("map")
    @classmethod
    def _mapping(cls, mapping: str | None) -> str | None:
        if mapping is not None:
            _as_value_error(PathMap.parse, mapping)
        return mapping


_BACKUP_OR_POINT = "give exactly one of id (a backup) and point (of the continuous archive)"


def _without(key: str, data: Any) -> Any:
    """A body must not hold ``key`` (the other kind of restore's): one body, one meaning."""
    if isinstance(data, dict) and key in data:
        raise ValueError(_BACKUP_OR_POINT)
    return data


class RestoreRequest(BackupRef, RestoreOptions):
    """Restore the backup ``id`` (DC/OS's body); the rest is ours, all optional."""

    @model_validator(mode="before")
    @classmethod
    def _no_point(cls, data: Any) -> Any:
        return _without("point", data)


class PointRestoreRequest(RestoreOptions):
    """Restore subtrees as they were at a ``point`` of the cluster's continuous archive (ours): ``paths``
    or ``map`` is required."""

    point: PointRequest = Field(description="restore from the cluster's continuous archive at this point")

    @model_validator(mode="before")
    @classmethod
    def _no_id(cls, data: Any) -> Any:
        return _without("id", data)

    @model_validator(mode="after")
    def _subtrees(self) -> PointRestoreRequest:
        if not self.paths and self.map is None:
            raise ValueError("a restore from a point needs paths (or map): it restores subtrees, not whole components")
        return self


def _restore_kind(data: Any) -> str:
    return "point" if isinstance(data, dict) and "point" in data else "backup"


# POST /restore's body: DC/OS's (a backup's id), or ours (a point); the "point" key decides which, so that
# an error names what is wrong with the one that was meant.
RestoreBody = Annotated[
    Annotated[RestoreRequest, Tag("backup")] | Annotated[PointRestoreRequest, Tag("point")],
    Discriminator(_restore_kind),
]
RESTORE_KINDS = ("backup", "point")  # the tags, which an error's location leaves out


def _as_value_error(check, *args):
    """``check(*args)``, its UsageError as the ValueError pydantic reports as the request's 400."""
    try:
        return check(*args)
    except UsageError as exc:
        raise ValueError(str(exc)) from exc


# ------------------------------------------------------------------------------------------ responses
def _optional_last(*keys: str):
    """A wrap serializer for optional parts of a document: ``keys`` come last, and not at all when None."""

    def serialize(self: BaseModel, handler: SerializerFunctionWrapHandler):
        doc = handler(self)
        for key in keys:
            value = doc.pop(key, None)
            if value is not None:
                doc[key] = value
        return doc

    # No return annotation on purpose: with one, pydantic would take it for the schema of the document.
    return model_serializer(mode="wrap")(serialize)


class BackupDocument(BackupRecord):
    """A backup as the API shows it: the catalog's record, its size and, while a job runs on it, its progress."""

    progress: dict[str, Any] | None = Field(None, description="what the running job does; absent when none runs")

    @classmethod
    def of(cls, record: BackupRecord, progress: dict[str, Any] | None = None) -> BackupDocument:
        return cls.model_validate({**dict(record), "progress": progress or None})

    @computed_field(description="bytes of all archives")  # type: ignore[prop-decorator]
    @property
    def size(self) -> int:
        return super().size

    _serialize = _optional_last("safety_restore", "uploaded", "damaged", "point", "signature", "progress")


class RestoreDocument(RestoreRecord):
    """A restore as ``POST /restore`` answers it: DC/OS's RestoreMetadata and the backup it restores
    (for a point of the continuous archive: the point backup built from it, and the point)."""

    backup_id: str
    point: ArchivePoint | None = None

    _serialize = _optional_last("point")


class DrillDocument(DrillRecord):
    """A drill as ``POST /drill`` answers it: the drill as it starts and the backup it drills."""

    backup_id: str


class RestoreCounts(BaseModel):
    """What a restore changes (or would): znodes created, updated, deleted, unchanged; child counters raised."""

    created: int
    updated: int
    deleted: int
    unchanged: int
    counters: int = Field(description="parents whose child counter (sequential names) is raised")
    counter_children: int = Field(description="throw-away children created and deleted to raise them")


class ChangeItem(BaseModel):
    op: str = Field(description="create, update or delete")
    path: str


class DryRun(RestoreCounts):
    """``POST /restore`` with ``dry_run``: the counts in all and per component, the changes in pre-order
    (the first 10,000; ``left_out`` more), for the restore the same body without ``dry_run`` would start."""

    backup_id: str | None = Field(description="the backup restored; null for a point of the continuous archive")
    point: ArchivePoint | None = Field(None, description="the point of the continuous archive, as resolved")
    dry_run: bool = True
    paths: list[str] | None = None
    map: str | None = None
    component_status: dict[str, RestoreCounts]
    changes: list[ChangeItem]
    left_out: int

    _serialize = _optional_last("point")


class BackupInfo(BaseModel):
    backup_info: BackupDocument


class RestoreInfo(BaseModel):
    backup_info: RestoreDocument


class DrillInfo(BaseModel):
    backup_info: DrillDocument


class BackupList(BaseModel):
    """``GET /list``: exactly ``{}`` when no backup matches (as DC/OS answered), else every match, oldest first."""

    backup_info: list[BackupDocument] | None = None

    _serialize = _optional_last("backup_info")


class ErrorBody(BaseModel):
    errors: list[str] = Field(description="what went wrong, one line each (DC/OS's error body)")
    code: str = Field(description="machine-readable kind: invalid_request, unauthorized, forbidden, conflict, ...")
    details: dict[str, Any] | None = Field(None, description="e.g. the running job of a 409")


class Health(BaseModel):
    status: str
    version: str
