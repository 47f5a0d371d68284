"""HTTP client of DC/OS's Backup and Restore API, used by ``dcos backup``: maps every failure to the error hierarchy.

It talks to the :class:`Endpoint` it is given (the Admin Router's URL, a token, how to verify TLS);
finding the cluster is the caller's business (``cli/endpoint.py`` for the CLI).
"""

from __future__ import annotations

import builtins
import contextlib
import os
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from dcos_backup.api.paths import CANCEL, CREATE, DELETE, DOWNLOAD, DRILL, LIST, RESTORE, SCHEDULES, UPLOAD
from dcos_backup.errors import (
    Conflict,
    DcosBackupError,
    Forbidden,
    IntegrityError,
    NotFound,
    ServiceUnavailable,
    StorageError,
    Unauthorized,
    UsageError,
)

_BY_STATUS: dict[int, type[DcosBackupError]] = {
    400: UsageError,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: UsageError,
    422: IntegrityError,
    502: ServiceUnavailable,
    503: ServiceUnavailable,
    504: ServiceUnavailable,
    507: StorageError,
}
TRANSFER_TIMEOUT = httpx.Timeout(30.0, read=300.0, write=300.0)  # a big backup takes a while per chunk in S3
_CHUNK = 1 << 20
_TAR_END = b"\0" * 1024  # a tar ends with two zero blocks: a download cut short lacks them
FIRST_POLL = 0.05  # seconds; polls then slow down by half each time, up to the caller's interval
LONG_POLL = 1.0  # seconds our service may hold a poll until the job ends (servers without it answer at once)


@dataclass(frozen=True)
class Endpoint:
    """Where the cluster's Admin Router is, the token to send, and how to check its certificate:
    ``verify`` is a CA file, True (the system's CAs) or False (no check)."""

    url: str
    token: str
    verify: str | bool = True

    def ssl_context(self) -> ssl.SSLContext | bool:
        if isinstance(self.verify, str):
            try:
                return ssl.create_default_context(cafile=self.verify)
            except (OSError, ssl.SSLError) as exc:
                raise UsageError(f"cannot use {self.verify} as the CA file (DCOS_SSL_VERIFY): {exc}") from exc
        return self.verify


class BackupClient:
    def __init__(self, endpoint: Endpoint, timeout: float = 30.0) -> None:
        self.endpoint = endpoint
        self._http = httpx.Client(
            base_url=endpoint.url,
            headers={"Authorization": f"token={endpoint.token}", "Accept": "application/json"},
            timeout=timeout,
            verify=endpoint.ssl_context(),
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> dict:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(self._unreachable(exc)) from exc
        if response.status_code >= 400:
            error = _BY_STATUS.get(response.status_code, DcosBackupError)
            # Whatever answered plain HTTP is not the Admin Router (a 404 from another server, say): say so.
            raise error(_message_of(response) + self._https_hint)
        try:
            return response.json()
        except ValueError as exc:
            raise ServiceUnavailable(
                f"{self.endpoint.url} answered {path} with something that is not JSON{self._https_hint}"
            ) from exc

    @property
    def _https_hint(self) -> str:
        url = self.endpoint.url
        if not url.startswith("http://"):
            return ""
        return f" (DC/OS answers on https: set DCOS_URL={'https://' + url.removeprefix('http://')})"

    def _unreachable(self, exc: httpx.TransportError) -> str:
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return (
                f"the TLS certificate of {self.endpoint.url} is not trusted: set DCOS_SSL_VERIFY to the "
                f"cluster's CA file ({exc})"
            )
        return f"cannot reach the cluster at {self.endpoint.url}: {exc or type(exc).__name__}{self._https_hint}"

    def download(self, backup_id: str, target: Path) -> int:
        """``GET /download``: write the backup's portable file to ``target`` (which must not exist) through a
        hidden partial file, renamed only once complete; returns its size."""
        if target.exists():
            raise UsageError(f"{target} already exists; choose a new file")
        partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
        tail = b""
        try:
            # 0600, as the archives in storage: a backup holds the cluster's state, secrets included.
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(fd, "wb") as out, self._stream("GET", DOWNLOAD, params={"id": backup_id}) as response:
                for chunk in response.iter_bytes(_CHUNK):
                    out.write(chunk)
                    tail = (tail + chunk)[-len(_TAR_END) :]
                out.flush()
                os.fsync(out.fileno())
                size = out.tell()
            if tail != _TAR_END:
                raise ServiceUnavailable(f"the download of {backup_id} was cut short; try again")
            if target.exists():
                raise UsageError(f"{target} already exists; choose a new file")
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return size

    def upload(self, source: Path) -> dict:
        """``POST /upload``: stream the portable file ``source``; the added backup's document."""
        size = source.stat().st_size
        with open(source, "rb") as f:
            chunks = iter(lambda: f.read(_CHUNK), b"")
            headers = {"Content-Type": "application/x-tar", "Content-Length": str(size)}
            return self._call("POST", UPLOAD, content=chunks, headers=headers, timeout=TRANSFER_TIMEOUT)["backup_info"]

    @contextlib.contextmanager
    def _stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        try:
            with self._http.stream(method, path, timeout=TRANSFER_TIMEOUT, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _BY_STATUS.get(response.status_code, DcosBackupError)(_message_of(response))
                yield response
        except httpx.TransportError as exc:
            raise ServiceUnavailable(self._unreachable(exc)) from exc

    def create(self, label: str, components: Sequence[str] = ()) -> dict:
        """``POST /create`` (of ``components``, default all): the new backup's document (STATUS_BACKING_UP)."""
        body: dict[str, object] = {"label": label}
        if components:
            body["components"] = list(components)
        return self._call("POST", CREATE, json=body)["backup_info"]

    def list(self, prefix: str = "", wait: float = 0) -> list[dict]:
        """``GET /list``: the backups whose id starts with ``prefix``, oldest first; with ``wait``, once a job
        running on one of them has ended (or ``wait`` seconds have passed)."""
        params = {k: v for k, v in (("prefix", prefix), ("wait", wait)) if v}
        return self._call("GET", LIST, params=params or None).get("backup_info", [])

    def show(self, backup_id: str, wait: float = 0) -> dict:
        """One backup's document (``GET /list?prefix=<id>``: an id is never the prefix of another id)."""
        for doc in self.list(backup_id, wait):
            if doc.get("id") == backup_id:
                return doc
        raise NotFound(f"no backup with id {backup_id!r}")

    def restore(
        self, backup_id: str | None, paths: Sequence[str] = (), mapping: str | None = None, point: dict | None = None
    ) -> dict:
        """``POST /restore`` (of the subtrees ``paths``, moved by ``mapping`` "SRC=DST", if given): the
        restore's document; its ``id`` is the restore's own. With ``point`` ({"time": T} or {"zxid": Z})
        and no ``backup_id``: from the continuous archive (``backup_id`` of the answer: the point backup)."""
        body = restore_body(backup_id, paths, mapping, point)
        return self._call("POST", RESTORE, json=body, **_timeout_of(point))["backup_info"]

    def dry_run(
        self, backup_id: str | None, paths: Sequence[str] = (), mapping: str | None = None, point: dict | None = None
    ) -> dict:
        """``POST /restore`` with ``dry_run``: what that restore would change (counts, changes in pre-order)."""
        body = {**restore_body(backup_id, paths, mapping, point), "dry_run": True}
        return self._call("POST", RESTORE, json=body, **_timeout_of(point))

    def cancel(self, backup_id: str) -> dict:
        """``POST /cancel`` (ours): the backup's document; its job stops soon after (a restore is rolled back)."""
        return self._call("POST", CANCEL, json={"id": backup_id})["backup_info"]

    def drill(self, backup_id: str) -> dict:
        """``POST /drill`` (ours): the drill as it starts; its outcome lands in the backup's ``drills``."""
        return self._call("POST", DRILL, json={"id": backup_id})["backup_info"]

    def delete(self, backup_id: str) -> dict:
        """``DELETE /delete``: the deleted backup's document."""
        return self._call("DELETE", DELETE, json={"id": backup_id})["backup_info"]

    # ---------------------------------------------------------------- schedules (our extension)
    def schedules(self) -> builtins.list[dict]:  # builtins: the method list() shadows the type here
        """``GET /schedules``: every schedule, by name."""
        return self._call("GET", SCHEDULES)["schedules"]

    def create_schedule(
        self,
        name: str,
        cron: str,
        keep_last: int | None = None,
        keep_within: str | None = None,
        drill: bool = False,
    ) -> dict:
        """``POST /schedules``: the new schedule's document."""
        body = {"name": name, "cron": cron, "keep_last": keep_last, "keep_within": keep_within}
        if drill:
            body["drill"] = True
        return self._call("POST", SCHEDULES, json=body)["schedule"]

    def schedule_action(self, name: str, action: str) -> dict:
        """``DELETE /schedules/NAME`` (``action`` "delete"), or ``POST /schedules/NAME/pause|resume``."""
        path = f"{SCHEDULES}/{quote(name, safe='')}"
        if action == "delete":
            return self._call("DELETE", path)["schedule"]
        return self._call("POST", f"{path}/{action}")["schedule"]

    def wait(
        self,
        backup_id: str,
        done: Callable[[dict], bool],
        on_update: Callable[[dict], None] | None = None,
        interval: float = 0.5,
        timeout: float | None = None,
    ) -> dict:
        """Poll ``show`` until ``done(doc)``; calls ``on_update`` with every document seen.

        Each poll after the first asks the service to answer as soon as the job ends (``wait``), so the
        end is seen at once. A server that answers at once regardless (DC/OS's) is polled with pauses that
        start short and grow to ``interval``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause, wait = min(FIRST_POLL, interval), 0.0
        while True:
            asked = time.monotonic()
            doc = self.show(backup_id, wait)
            if on_update is not None:
                on_update(doc)
            if done(doc):
                return doc
            if deadline is not None and time.monotonic() > deadline:
                raise DcosBackupError(f"gave up waiting for {backup_id} after {timeout:g}s")
            time.sleep(max(0.0, pause - (time.monotonic() - asked)))
            pause, wait = min(pause * 1.5, interval), LONG_POLL

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BackupClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _timeout_of(point: dict | None) -> dict[str, Any]:
    """A restore from a point answers once the point's state is rebuilt from the archive: give it time."""
    return {"timeout": TRANSFER_TIMEOUT} if point is not None else {}


def restore_body(backup_id: str | None, paths: Sequence[str], mapping: str | None, point: dict | None = None) -> dict:
    """DC/OS's body (``id``), with our options only when given, so that DC/OS's own service takes it too;
    ``point`` instead of ``id`` for a restore from the continuous archive (ours)."""
    body: dict[str, object] = {"id": backup_id} if point is None else {"point": point}
    if paths:
        body["paths"] = list(paths)
    if mapping is not None:
        body["map"] = mapping
    return body


def _message_of(response: httpx.Response) -> str:
    """The one line an error response says: DC/OS's ``errors``, else its text, else its reason."""
    try:
        errors = response.json().get("errors")
        if errors:
            return "; ".join(str(e) for e in errors)
    except (ValueError, AttributeError):
        pass
    return " ".join(response.text.split())[:200] or response.reason_phrase


def latest_restore(doc: dict) -> dict:
    """The latest restore of a backup document (empty before the first restore)."""
    restores = doc.get("restores") or []
    return restores[-1] if restores else {}


def restore_of(doc: dict, restore_id: str) -> dict:
    """The restore ``restore_id`` in a backup document (empty if it has none of that id)."""
    return next((r for r in doc.get("restores") or [] if r.get("id") == restore_id), {})


def drill_of(doc: dict, drill_id: str) -> dict:
    """The drill ``drill_id`` in a backup document (empty until the drill has ended)."""
    return next((d for d in doc.get("drills") or [] if d.get("id") == drill_id), {})


def backup_finished(doc: dict) -> bool:
    return doc.get("status") != "STATUS_BACKING_UP"


def job_finished(doc: dict) -> bool:
    """No backup or restore runs on the backup any more."""
    return backup_finished(doc) and restore_finished(doc)


def list_status(doc: dict) -> str:
    """The STATUS a table shows: the backup's, or STATUS_RESTORING while a restore of it runs."""
    return "STATUS_RESTORING" if not restore_finished(doc) else doc["status"]


def restore_finished(doc: dict) -> bool:
    """The latest restore (if any) has ended."""
    return latest_restore(doc).get("status") != "STATUS_RESTORING"
