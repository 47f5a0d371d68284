"""The HTTP API of the backup service (FastAPI): DC/OS's Backup and Restore API v1, under ``/system/v1/backup/v1``.

``POST /create``, ``GET /list[?prefix=]``, ``POST /restore``, ``DELETE /delete`` (:mod:`.models` holds the
contract), and ours: ``POST /cancel``, ``POST /drill``; ``POST /restore`` with ``dry_run``, ``paths``, ``map``.
Every one
needs a token of a user with the backup permission (:mod:`.auth`); ``GET /health`` needs none. Errors
are DC/OS's JSON ``{"errors": ["..."]}`` (plus our ``code``) with the HTTP status that ``errors.py``
assigns; no traceback ever leaves the process.

Beyond DC/OS: ``GET /list?prefix=P&wait=S`` answers when the job running on a backup matching P ends, or
after S seconds, so that a client following a job learns its end at once instead of at its next poll;
the waiting request holds no thread (:class:`JobWatch`). Without a matching job it answers at once.

``GET /metrics``: this instance's Prometheus metrics (:mod:`dcos_backup.jobs.metrics`); a monitoring user's
token with only the metrics permission is enough (:meth:`.Authorizer.check_metrics`).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Annotated, Any

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from dcos_backup import __version__
from dcos_backup.api.auth import Authorizer
from dcos_backup.api.guard import RequestGuard, error_reply
from dcos_backup.api.models import (
    CANCEL,
    CREATE,
    DELETE,
    DOWNLOAD,
    DRILL,
    HEALTH,
    LIST,
    PREFIX,
    RESTORE,
    RESTORE_KINDS,
    UPLOAD,
    BackupDocument,
    BackupInfo,
    BackupList,
    BackupRef,
    CreateBackup,
    DrillDocument,
    DrillInfo,
    DryRun,
    ErrorBody,
    Health,
    PointRestoreRequest,
    RestoreBody,
    RestoreDocument,
    RestoreInfo,
)
from dcos_backup.api.paths import METRICS
from dcos_backup.api.schedule_routes import schedule_routes
from dcos_backup.catalog.models import BackupRecord
from dcos_backup.catalog.portable import export_backup, import_backup
from dcos_backup.errors import DcosBackupError
from dcos_backup.fsutil import ChunkReader
from dcos_backup.jobs.metrics import registry_for
from dcos_backup.jobs.plan import PRIVILEGED
from dcos_backup.jobs.point import Point
from dcos_backup.jobs.scheduler import Scheduler
from dcos_backup.jobs.service import BackupService

log = logging.getLogger(__name__)

MAX_WAIT = 30.0  # seconds a GET /list may wait for a job's end; the Admin Router's read timeout is 60 s


class JobWatch:
    """Lets requests await the end of the running job on the event loop, woken from the job's thread."""

    def __init__(self, service: BackupService) -> None:
        self._service = service
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()
        service.on_job_end(self._job_ended)

    def _job_ended(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    async def until_done(self, prefix: str, timeout: float) -> None:
        """Return when no job runs on a backup matching ``prefix`` any more, or after ``timeout`` seconds."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.add(waiter)  # before looking: a job ending in between still wakes us
        try:
            if self._service.job_runs_on(prefix):
                await asyncio.wait_for(waiter[1].wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(waiter)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": [message], "code": code}, status_code=status, headers=headers)


def build_app(
    service: BackupService,
    authorizer: Authorizer,
    scheduler: Scheduler | None = None,
    forwarder: Callable[..., Awaitable[Response]] | None = None,
    is_leader: Callable[[], bool] | None = None,
) -> FastAPI:
    """The API of ``service``; with ``scheduler``, also our schedule routes (:mod:`.schedule_routes`); with
    ``forwarder`` (:class:`.forward.Forwarder`), a follower's job requests go to the leader; ``is_leader``
    says whether this instance leads (for the metrics; without it, it does)."""
    app = FastAPI(
        title="DC/OS Backup and Restore API (dcos-backup)",
        version=__version__,
        description="DC/OS's Backup and Restore API v1: backups and restores of cluster components "
        "(ZooKeeper subtrees). Every route but /health needs a DC/OS token with the permission "
        "dcos:adminrouter:ops:system-backup (action full) or dcos:superuser.",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
        openapi_url=f"{PREFIX}/openapi.json",
    )
    if forwarder is not None:
        app.middleware("http")(forwarder)
    # Added last, so outermost: the token before the body, before anything else (forwarding) reads it.
    app.add_middleware(RequestGuard, authorizer=authorizer)
    app.exception_handler(DcosBackupError)(on_error)
    app.exception_handler(RequestValidationError)(on_invalid)
    app.exception_handler(StarletteHTTPException)(on_http)
    app.exception_handler(Exception)(on_bug)
    app.get(HEALTH, summary="Liveness (no token)")(health)
    app.include_router(backup_routes(service, authorizer))
    if scheduler is not None:
        app.include_router(schedule_routes(scheduler, token_check(authorizer)))
    app.include_router(portable_routes(service, authorizer))
    app.include_router(metrics_routes(registry_for(service, scheduler, is_leader), authorizer))
    return app


async def on_error(_: Request, exc: DcosBackupError) -> JSONResponse:
    return error_reply(exc)


async def on_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    loc = list(first.get("loc", ()))
    if len(loc) > 1 and loc[0] == "body" and loc[1] in RESTORE_KINDS:
        del loc[1]  # which kind of restore body it was taken for: the message says what is wrong in it
    where = ".".join(str(p) for p in loc if p != "body")
    message = str(first.get("msg", "")).removeprefix("Value error, ")
    return error_response(400, "invalid_request", f"invalid request: {where or 'body'}: {message}")


async def on_http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    # 400: a body FastAPI could not parse at all (nested too deep for the JSON parser, invalid UTF-8):
    # the documented invalid_request, as a body that parses but does not validate.
    code = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


async def on_bug(_: Request, exc: Exception) -> JSONResponse:
    log.exception("internal error")
    return error_response(500, "internal_error", "internal error; see the service log")


def health() -> Health:
    return Health(status="ok", version=__version__)


LIST_CHUNK = 1 << 16  # bytes of a list's body sent at a time


def listing(service: BackupService, prefix: str) -> Response:
    """``GET /list``'s answer, :class:`BackupList`'s JSON byte for byte, built from the records as the
    catalog reads them: each backup is kept only as its document's JSON until all are sorted (oldest
    first), never as models, and the body goes out in chunks (10,000 backups: tens of MB less at the peak)."""
    docs = sorted((r.timestamp, r.id, document_json(r, service.progress(r.id))) for r in service.backups(prefix))
    if not docs:
        return Response(b"{}", media_type="application/json")
    return StreamingResponse(list_body(doc for *_, doc in docs), media_type="application/json")


def document_json(record: BackupRecord, progress: dict[str, Any] | None) -> bytes:
    """A backup's document as a JSON response renders it (FastAPI's dump, Starlette's compact JSON)."""
    doc = BackupDocument.of(record, progress).model_dump(mode="json", by_alias=True)
    return json.dumps(doc, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


def list_body(docs: Iterable[bytes]) -> Iterator[bytes]:
    """``{"backup_info":[doc,doc,...]}`` in chunks of about :data:`LIST_CHUNK` bytes."""
    chunk = bytearray(b'{"backup_info":[')
    for i, doc in enumerate(docs):
        if i:
            chunk += b","
        chunk += doc
        if len(chunk) >= LIST_CHUNK:
            yield bytes(chunk)
            chunk.clear()
    chunk += b"]}"
    yield bytes(chunk)


def token_check(authorizer: Authorizer) -> Callable[..., str]:
    """The dependency every route but /health has: the request's token must be a permitted user's."""

    def authorized(authorization: Annotated[str | None, Header()] = None) -> str:
        return authorizer.check(authorization)

    return authorized


Responses = dict[int | str, dict[str, Any]]  # an APIRouter's documented responses by status


def backup_routes(service: BackupService, authorizer: Authorizer) -> APIRouter:
    """DC/OS's four routes, each behind the permission check, each answering DC/OS's documents."""
    authorized = token_check(authorizer)
    errors: dict[str, Any] = {"model": ErrorBody}
    # 400: bad input (request validation errors are 400, not FastAPI's 422); 422: a damaged catalog entry.
    common: Responses = {400: errors, 401: errors, 403: errors, 422: errors}
    router = APIRouter(dependencies=[Depends(authorized)], responses=common)
    watch = JobWatch(service)

    @router.post(CREATE, responses={409: errors}, summary="Create a backup")
    def create(body: CreateBackup) -> BackupInfo:
        return BackupInfo(backup_info=BackupDocument.of(service.create(body.label, body.components)))

    @router.get(LIST, response_model=BackupList, summary="List backups (those whose id starts with prefix)")
    async def list_backups(
        prefix: str = "",
        wait: Annotated[
            float, Query(ge=0, le=MAX_WAIT, description="seconds to wait for a job on a matching backup to end")
        ] = 0,
    ) -> Response:
        if wait:
            await watch.until_done(prefix, wait)
        return await run_in_threadpool(listing, service, prefix)

    @router.post(RESTORE, responses={404: errors, 409: errors}, summary="Restore a backup (or dry-run it)")
    def restore(body: RestoreBody, uid: str = Depends(authorized)) -> RestoreInfo | DryRun:
        if isinstance(body, PointRestoreRequest):
            privileged = service.privileged_point(body.paths, body.map)
        else:
            privileged = service.privileged(body.id, body.paths, body.map)
        if privileged:
            authorizer.require_superuser(uid, f"restoring the {', '.join(privileged)} component (users and grants)")
        if isinstance(body, PointRestoreRequest):
            return restore_point(body, body.point.point())
        if body.dry_run:
            diff = service.dry_run(body.id, body.paths, body.map)
            return DryRun.model_validate({**diff, "backup_id": body.id, "paths": body.paths or None, "map": body.map})
        started = service.restore(body.id, body.paths, body.map)
        return RestoreInfo(backup_info=RestoreDocument(**dict(started), backup_id=body.id))

    def restore_point(body: PointRestoreRequest, point: Point) -> RestoreInfo | DryRun:
        if body.dry_run:
            diff = service.dry_run_point(point, body.paths, body.map)
            return DryRun.model_validate({**diff, "backup_id": None, "paths": body.paths or None, "map": body.map})
        record, started = service.restore_point(point, body.paths, body.map)
        return RestoreInfo(backup_info=RestoreDocument(**dict(started), backup_id=record.id, point=record.point))

    @router.post(CANCEL, responses={404: errors, 409: errors}, summary="Cancel the job running on a backup")
    def cancel(body: BackupRef) -> BackupInfo:
        return BackupInfo(backup_info=BackupDocument.of(service.cancel(body.id), service.progress(body.id)))

    @router.post(
        DRILL, responses={404: errors, 409: errors}, summary="Drill a backup: restore it into a scratch ZooKeeper"
    )
    def drill(body: BackupRef) -> DrillInfo:
        return DrillInfo(backup_info=DrillDocument(**dict(service.drill(body.id)), backup_id=body.id))

    @router.delete(DELETE, responses={404: errors, 409: errors}, summary="Delete a backup")
    def delete(body: BackupRef) -> BackupInfo:
        return BackupInfo(backup_info=BackupDocument.of(service.delete(body.id)))

    return router


def metrics_routes(registry: CollectorRegistry, authorizer: Authorizer) -> APIRouter:
    """``GET /metrics``, Prometheus's text format, for a token with the metrics permission (or more)."""

    def may_read_metrics(authorization: Annotated[str | None, Header()] = None) -> str:
        return authorizer.check_metrics(authorization)

    errors = {"model": ErrorBody}
    router = APIRouter(dependencies=[Depends(may_read_metrics)], responses={401: errors, 403: errors})

    @router.get(METRICS, summary="This instance's metrics (Prometheus text format)", response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


def blocking_chunks(chunks: AsyncIterator[bytes]) -> Iterator[bytes]:
    """A request's body chunks for code in a worker thread: each one is awaited on the event loop, so the
    body streams through and is never held whole."""
    while True:
        try:
            yield anyio.from_thread.run(chunks.__anext__)  # type: ignore[arg-type]  # an awaitable, as run wants
        except StopAsyncIteration:
            return


def portable_routes(service: BackupService, authorizer: Authorizer) -> APIRouter:
    """Beyond DC/OS: a backup as one portable file, out (download) and in (upload, to this catalog)."""
    authorized = token_check(authorizer)
    errors: dict[str, Any] = {"model": ErrorBody}
    common: Responses = {400: errors, 401: errors, 403: errors, 404: errors, 409: errors, 422: errors}
    # The dependency runs before the body is read: an upload without a valid token sends nothing to storage.
    router = APIRouter(dependencies=[Depends(authorized)], responses=common)

    @router.get(DOWNLOAD, summary="A READY backup as one portable file (tar: record + archives as stored)")
    def download(id: str, uid: str = Depends(authorized)) -> StreamingResponse:
        held = sorted(PRIVILEGED & set(service.storage.entry(id).component_status))
        if held:
            authorizer.require_superuser(uid, f"downloading a backup of the {', '.join(held)} component")
        chunks = export_backup(service.storage, id)  # NotFound / Conflict here, before a byte is sent
        disposition = f'attachment; filename="{id}.tar"'
        return StreamingResponse(chunks, media_type="application/x-tar", headers={"Content-Disposition": disposition})

    @router.post(UPLOAD, summary="Add a downloaded backup to this catalog, with its id, after checking it whole")
    async def upload(request: Request) -> BackupInfo:
        body = io.BufferedReader(ChunkReader(blocking_chunks(request.stream().__aiter__())), 1 << 20)
        record = await anyio.to_thread.run_sync(import_backup, service.storage, body)
        return BackupInfo(backup_info=BackupDocument.of(record))

    return router
