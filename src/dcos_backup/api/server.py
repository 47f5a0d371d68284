"""Serving the API with uvicorn on a unix socket (the Admin Router proxies to it; DC/OS's is
``/run/dcos/dcos-backup-master.sock``), hardened: bounded connections and headers, and a deadline for the
whole request, headers and body (slow clients), which uvicorn itself does not have: any byte received
cancels its keep-alive timer, so a client dribbling a never-ending header, or sending headers and then one
byte of the body it announced, would hold a connection forever.

The deadline starts when a connection opens or its previous response ends and stops when the request has
arrived whole; serving it (a job's answer, a ``list?wait``) has none. A request still incomplete at the
deadline is answered 408 (JSON) and its connection closed. The one exception is the portable ``upload``,
whose body may be gigabytes: once its headers are in (and the token checked, :mod:`.guard`), each chunk
must follow the previous one within :data:`UPLOAD_IDLE`, as the Admin Router's ``client_body_timeout`` in
front of it.

No per-client limit here: the service's only client in a cluster is its master's Admin Router (one nginx
worker on a root-only unix socket), so every connection looks alike; clients are told apart, and limited
per address, by the Admin Router (:mod:`dcos_backup.adminrouter.nginx`), which also buffers every capped
body whole before it opens a connection here, so slow clients never reach this deadline through it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from dcos_backup.api.paths import UPLOAD
from dcos_backup.errors import RequestTimeout

REQUEST_TIMEOUT = 10.0  # seconds for a request's headers and body (at most 64 KiB)
UPLOAD_IDLE = 300.0  # seconds between two chunks of an upload's body
# Request headers, all of them: more than the Admin Router ever passes on (4 lines of at most 16 KiB).
MAX_HEADERS = 80 * 1024
CONNECTIONS = 200  # at once; more are answered 503 by uvicorn


def timeout_response() -> bytes:
    body = json.dumps(RequestTimeout(f"request not received whole within {REQUEST_TIMEOUT:g} s").to_dict()).encode()
    head = f"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
    return head.encode() + b"connection: close\r\n\r\n" + body


class RequestDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request (headers and body) does not arrive in time."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(REQUEST_TIMEOUT)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm(REQUEST_TIMEOUT)

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is None or self.cycle.response_complete:
            return  # waiting for (the rest of) a request: its deadline runs
        if self.conn.their_state is not h11.SEND_BODY:
            self._disarm()  # the request is in whole: it is being served
        elif self.scope["path"] == UPLOAD:
            self._arm(UPLOAD_IDLE)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete and not self.cycle.response_started:
            self.transport.write(timeout_response())  # mid-body: say why
        self.transport.close()


def serve(app: FastAPI, socket_path: Path) -> None:
    """Serve ``app`` on the unix socket ``socket_path`` until SIGTERM (a stale socket file is replaced)."""
    socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    uvicorn.run(
        app,
        uds=str(socket_path),
        http=RequestDeadlineProtocol,
        log_level="warning",
        # Longer than the Admin Router's upstream keepalive_timeout: nginx closes idle connections first,
        # so it never sends a request on a connection the service is closing.
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=MAX_HEADERS,
        limit_concurrency=CONNECTIONS,
    )
