"""Followers forward job requests to the leading instance of the service (:mod:`dcos_backup.jobs.leadership`).

Every request that changes something (any method but GET/HEAD under the API's prefix: create, restore,
delete, the schedule routes) is sent on, as it came (body, token), to the URL the leader advertises: its
master's Admin Router, over HTTPS checked against the cluster's CA. The leader checks the token itself.
Reads are answered by the follower from the shared catalog and the schedules in ZooKeeper.

Why over the leader's Admin Router rather than a port of the service's own: the service stays on its unix
socket only, as DC/OS's does, and every request still passes one front door with its limits and TLS.
A forwarded request carries :data:`FORWARDED`; an instance that gets one without leading (the leadership
moved meanwhile) answers 503 instead of forwarding again, so a request never loops.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from dcos_backup.api.paths import PREFIX
from dcos_backup.errors import DcosBackupError, ServiceUnavailable, ZooKeeperUnavailable
from dcos_backup.jobs.leadership import Leadership

log = logging.getLogger(__name__)

FORWARDED = "x-dcos-backup-forwarded-by"
PASSED_ON = ("authorization", "content-type", "accept")
RETURNED = ("content-type", "www-authenticate")
TIMEOUT = 30.0


class Forwarder:
    """An HTTP middleware: job requests to a follower go to the leader; everything else is served here."""

    def __init__(self, leadership: Leadership, ca_file: Path | None) -> None:
        self.leadership = leadership
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        self._http = httpx.AsyncClient(verify=verify, timeout=TIMEOUT)

    async def __call__(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.method in ("GET", "HEAD") or not request.url.path.startswith(PREFIX) or self.leadership.is_leader:
            return await call_next(request)
        if not self.leadership.client.connected:
            return refusal(
                ZooKeeperUnavailable(
                    "ZooKeeper unavailable: this backup service has no ZooKeeper session; nothing started"
                )
            )
        leader = self.leadership.leader()
        if leader is None or leader.url is None or leader.instance == self.leadership.me.instance:
            return unavailable("no backup service leads at the moment (an election is under way); retry shortly")
        if FORWARDED in request.headers:
            return unavailable(f"this backup service does not lead any more (the leader is {leader.instance}); retry")
        return await self._forward(request, leader.url.rstrip("/"), leader.instance)

    async def _forward(self, request: Request, base: str, leader: str) -> Response:
        headers = {k: v for k, v in request.headers.items() if k in PASSED_ON}
        headers[FORWARDED] = self.leadership.me.instance
        url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            answer = await self._http.request(request.method, url, content=await request.body(), headers=headers)
        except httpx.TransportError as exc:
            log.warning("cannot forward %s %s to the leader %s: %s", request.method, url, leader, exc)
            return unavailable(
                f"cannot reach the leading backup service {leader} at {base}: {exc or type(exc).__name__}"
            )
        kept = {k: v for k, v in answer.headers.items() if k.lower() in RETURNED}
        return Response(answer.content, status_code=answer.status_code, headers=kept)

    async def close(self) -> None:
        await self._http.aclose()


def unavailable(message: str) -> JSONResponse:
    return refusal(ServiceUnavailable(message))


def refusal(error: DcosBackupError) -> JSONResponse:
    """The API's answer to ``error`` (a middleware's errors do not reach the app's exception handlers)."""
    return JSONResponse(error.to_dict(), status_code=error.http_status)
