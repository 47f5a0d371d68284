"""The HTTP API of the backup service (FastAPI), under ``/system/v1/backup/v1``.

Every backup endpoint needs ``Authorization: Bearer <token>``. Routes answer with response models
(:class:`BackupDocument`: the catalog's record plus size and progress), so the OpenAPI schema shows
what they return. Errors are JSON ``{"code", "message"}`` with the HTTP status that ``errors.py``
assigns; no traceback ever leaves the process.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, computed_field, model_serializer
from starlette.exceptions import HTTPException as StarletteHTTPException

from dcos_backup import __version__
from dcos_backup.catalog.models import BackupRecord
from dcos_backup.errors import DcosBackupError
from dcos_backup.service.auth import check_bearer
from dcos_backup.service.jobs import BackupService

log = logging.getLogger(__name__)

PREFIX = "/system/v1/backup/v1"
MAX_BODY = 64 * 1024


class CreateBackup(BaseModel):
    label: str = Field(description="3-25 characters of [A-Za-z0-9_.-], not starting with '..'", max_length=256)


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = Field(None, description="e.g. the running job of a 409")


class Health(BaseModel):
    status: str
    version: str


class BackupDocument(BackupRecord):
    """A backup as the API shows it: the catalog's record, its size and, while a job runs on it, its progress."""

    progress: dict[str, Any] | None = Field(None, description="what the running job does; absent when none runs")

    @classmethod
    def of(cls, record: BackupRecord, progress: dict[str, Any] | None = None) -> BackupDocument:
        return cls.model_validate({**dict(record), "progress": progress})

    @computed_field(description="bytes of all archives")  # type: ignore[prop-decorator]
    @property
    def size(self) -> int:
        return super().size

    @model_serializer(mode="wrap")
    def _progress_last_if_any(self, handler: SerializerFunctionWrapHandler):
        # No return annotation on purpose: with one, pydantic would take it for the schema of the document.
        doc = handler(self)
        progress = doc.pop("progress", None)
        if progress:
            doc["progress"] = progress
        return doc


def error_response(status: int, code: str, message: str, **extra: object) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, **extra}, status_code=status)


def build_app(service: BackupService, token: str) -> FastAPI:
    app = FastAPI(
        title="dcos-backup service",
        version=__version__,
        description="Backup and restore of DC/OS cluster components (ZooKeeper subtrees).",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
        openapi_url=f"{PREFIX}/openapi.json",
    )
    app.middleware("http")(limit_body)
    app.exception_handler(DcosBackupError)(on_error)
    app.exception_handler(RequestValidationError)(on_invalid)
    app.exception_handler(StarletteHTTPException)(on_http)
    app.exception_handler(Exception)(on_bug)
    app.get(f"{PREFIX}/health", summary="Liveness (no auth)")(health)
    app.include_router(backup_routes(service, token))
    return app


async def limit_body(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        return error_response(413, "too_large", f"request body larger than {MAX_BODY} bytes")
    return await call_next(request)


async def on_error(_: Request, exc: DcosBackupError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)


async def on_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return error_response(400, "invalid_request", f"invalid request: {where or 'body'}: {first.get('msg', '')}")


async def on_http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


async def on_bug(_: Request, exc: Exception) -> JSONResponse:
    log.exception("internal error")
    return error_response(500, "internal_error", "internal error; see the service log")


def health() -> Health:
    return Health(status="ok", version=__version__)


def backup_routes(service: BackupService, token: str) -> APIRouter:
    """The backup endpoints: each needs the bearer token; each answers with the backup's document."""

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        check_bearer(authorization, token)

    errors = {"model": ErrorBody}
    # 422 is a damaged catalog entry (IntegrityError); request validation errors are answered with 400.
    common = {401: errors, 404: errors, 422: errors}
    router = APIRouter(prefix=PREFIX, dependencies=[Depends(authorized)], responses=common)

    @router.post("/backups", status_code=202, responses={400: errors, 409: errors}, summary="Start a backup")
    def create_backup(body: CreateBackup) -> BackupDocument:
        return BackupDocument.of(service.create(body.label))

    @router.get("/backups", summary="List backups")
    def list_backups(label: str | None = None) -> list[BackupDocument]:
        return [BackupDocument.of(r, service.progress(r.id)) for r in service.list(label)]

    @router.get("/backups/{backup_id}", summary="Show one backup")
    def show_backup(backup_id: str) -> BackupDocument:
        return BackupDocument.of(service.get(backup_id), service.progress(backup_id))

    @router.delete("/backups/{backup_id}", responses={409: errors}, summary="Delete a backup")
    def delete_backup(backup_id: str) -> BackupDocument:
        return BackupDocument.of(service.delete(backup_id))

    @router.post("/backups/{backup_id}/restore", status_code=202, responses={409: errors}, summary="Restore a backup")
    def restore_backup(backup_id: str) -> BackupDocument:
        return BackupDocument.of(service.restore(backup_id), service.progress(backup_id))

    return router
