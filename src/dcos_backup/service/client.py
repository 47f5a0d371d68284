"""HTTP client of the backup service, used by ``dcos backup``: maps every failure to the error hierarchy.

It talks to the :class:`Endpoint` it is given; finding the service is the caller's business
(``cli/endpoint.py`` for the CLI).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from dcos_backup.errors import (
    Conflict,
    DcosBackupError,
    IntegrityError,
    NotFound,
    ServiceUnavailable,
    StorageError,
    Unauthorized,
    UsageError,
)
from dcos_backup.service.app import PREFIX

_BY_STATUS: dict[int, type[DcosBackupError]] = {
    400: UsageError,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: UsageError,
    422: IntegrityError,
    503: ServiceUnavailable,
    507: StorageError,
}


@dataclass
class Endpoint:
    """Where the backup service is and the bearer token it wants."""

    url: str
    token: str


class BackupClient:
    def __init__(self, endpoint: Endpoint, timeout: float = 30.0) -> None:
        self.endpoint = endpoint
        self._http = httpx.Client(
            base_url=endpoint.url + PREFIX,
            headers={"Authorization": f"Bearer {endpoint.token}"},
            timeout=timeout,
        )

    def _call(self, method: str, path: str, **kwargs: object) -> object:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(
                f"cannot reach the backup service at {self.endpoint.url}: {exc or type(exc).__name__}"
            ) from exc
        if response.status_code >= 400:
            try:
                message = response.json().get("message") or response.text
            except (ValueError, AttributeError):
                message = response.text.strip()[:200] or response.reason_phrase
            error = _BY_STATUS.get(response.status_code, DcosBackupError)
            raise error(message)
        return response.json()

    def create(self, label: str) -> dict:
        return self._call("POST", "/backups", json={"label": label})

    def list(self, label: str | None = None) -> list[dict]:
        return self._call("GET", "/backups", params={"label": label} if label is not None else None)

    def show(self, backup_id: str) -> dict:
        return self._call("GET", f"/backups/{_quote(backup_id)}")

    def delete(self, backup_id: str) -> dict:
        return self._call("DELETE", f"/backups/{_quote(backup_id)}")

    def restore(self, backup_id: str) -> dict:
        return self._call("POST", f"/backups/{_quote(backup_id)}/restore")

    def wait(
        self,
        backup_id: str,
        done: Callable[[dict], bool],
        on_update: Callable[[dict], None] | None = None,
        interval: float = 0.5,
        timeout: float | None = None,
    ) -> dict:
        """Poll ``show`` until ``done(doc)``; calls ``on_update`` with every document seen."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            doc = self.show(backup_id)
            if on_update is not None:
                on_update(doc)
            if done(doc):
                return doc
            if deadline is not None and time.monotonic() > deadline:
                raise DcosBackupError(f"gave up waiting for {backup_id} after {timeout:g}s")
            time.sleep(interval)

    def close(self) -> None:
        self._http.close()


def _quote(backup_id: str) -> str:
    from urllib.parse import quote

    return quote(backup_id, safe="")


def backup_finished(doc: dict) -> bool:
    return doc.get("status") != "STATUS_BACKING_UP"


def restore_finished(doc: dict) -> bool:
    return (doc.get("restores") or {}).get("status") not in ("STATUS_RESTORING",)
