"""Followers forward job requests to the leading instance of the service (:mod:`dcos_backup.jobs.leadership`).

Every request that changes something (any method but GET/HEAD under the API's prefix: create, restore,
delete, the schedule routes, the upload) is sent on, its body streamed as it comes, with its token, to the
leader's master: its Admin Router, over HTTPS checked against the cluster's CA only. The leader checks the
token again itself. Reads are answered by the follower from the shared catalog and the schedules in ZooKeeper.

Where a request goes is this service's configuration, never what ZooKeeper says (issue 24, item 2): the
leader's znode only names which of the cluster's masters (``--master``) leads; a URL in it that is not one
of them, a master list without the cluster's CA, or plain HTTP, is refused (503) and logged, and nothing
(least of all the caller's ``Authorization``) is sent. The token is checked here before anything is
forwarded: the request guard (:mod:`.guard`) runs before this middleware, so a bad token is refused before
a byte of the body is read, on a follower as on the leader (item 5).

Why over the leader's Admin Router rather than a port of the service's own: the service stays on its unix
socket only, as DC/OS's does, and every request still passes one front door with its limits and TLS.
A forwarded request carries :data:`FORWARDED`; an instance that gets one without leading (the leadership
moved meanwhile) answers 503 instead of forwarding again, so a request never loops.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from dcos_backup.api.auth import Authorizer
from dcos_backup.api.guard import error_reply
from dcos_backup.api.paths import PREFIX
from dcos_backup.errors import DcosBackupError, ServiceUnavailable, UsageError, ZooKeeperUnavailable
from dcos_backup.jobs.leadership import Leadership

log = logging.getLogger(__name__)

FORWARDED = "x-dcos-backup-forwarded-by"
PASSED_ON = ("authorization", "content-type", "accept")
RETURNED = ("content-type", "www-authenticate")
TIMEOUT = 30.0


def master_url(url: str) -> str:
    """A master's Admin Router as ``--master`` gives it: ``https://host[:port]``, nothing else (UsageError)."""
    parts = urlsplit(url.strip())
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/") or parts.query or parts.username:
        raise UsageError(f"--master wants a master's Admin Router as https://HOST[:PORT], not {url!r}")
    return url.strip().rstrip("/")


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, lower-cased, with the default port spelled out: what two URLs of
    the same master share however they are written."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme, 0)
    except ValueError:
        return ""
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


class Forwarder:
    """An HTTP middleware: job requests to a follower go to the leader; everything else is served here.

    ``masters``: the cluster's masters' Admin Routers (``https://host[:port]``), the only places a request
    is forwarded to; ``ca_file``: the cluster's CA, the only one their certificates are checked against.
    """

    def __init__(
        self, leadership: Leadership, authorizer: Authorizer, masters: Sequence[str], ca_file: Path | None
    ) -> None:
        self.leadership = leadership
        self.authorizer = authorizer
        self.masters = {origin(m): m for m in map(master_url, masters)}
        self.ca_file = ca_file
        verify = ssl.create_default_context(cafile=str(ca_file)) if ca_file else ssl.create_default_context()
        # trust_env=False: no proxy from the environment ever sees a caller's token.
        self._http = httpx.AsyncClient(verify=verify, timeout=TIMEOUT, trust_env=False, follow_redirects=False)

    async def __call__(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.method in ("GET", "HEAD") or not request.url.path.startswith(PREFIX) or self.leadership.is_leader:
            return await call_next(request)
        try:  # the guard checked it already if the request has a body; nothing goes on without it
            await run_in_threadpool(self.authorizer.check, request.headers.get("authorization"))
        except DcosBackupError as exc:
            return error_reply(exc)
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
        target = self.target(leader.instance, leader.url)
        if target is None:
            return unavailable(
                f"the leading backup service {leader.instance} cannot be reached from here: it is not at one of "
                "this cluster's masters (see this service's log)"
            )
        return await self._forward(request, target, leader.instance)

    def target(self, instance: str, url: str) -> str | None:
        """Where to forward to the leader ``instance`` that says it is at ``url``: the configured master it
        names, or None (logged) if it names none, or the masters cannot be checked with the cluster's CA."""
        if self.ca_file is None:
            log.error("not forwarding to the leader %s: no --ca-file to check the masters' certificates with", instance)
            return None
        target = self.masters.get(origin(url))
        if target is None:
            log.error(
                "refusing to forward to the leader %s at %r: not one of this cluster's masters (%s); the leader's "
                "znode may have been tampered with",
                instance,
                url,
                ", ".join(self.masters.values()) or "none configured: --master",
            )
        return target

    async def _forward(self, request: Request, base: str, leader: str) -> Response:
        headers = {k: v for k, v in request.headers.items() if k in PASSED_ON}
        headers[FORWARDED] = self.leadership.me.instance
        url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            # Streamed: a follower never holds a body (an upload may be gigabytes) in memory.
            answer = await self._http.request(request.method, url, content=request.stream(), headers=headers)
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
