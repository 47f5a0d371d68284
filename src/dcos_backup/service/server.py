"""Serving the API with uvicorn on a unix socket (the Admin Router proxies to it; DC/OS's is
``/run/dcos/dcos-backup-master.sock``), hardened: bounded connections and headers, and a deadline for
request headers (slow-loris), which uvicorn itself does not have: any byte received cancels its keep-alive
timer, so a client dribbling a never-ending header would hold a connection forever."""

from __future__ import annotations

import asyncio
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT = 10.0
# Request headers, all of them: more than the Admin Router ever passes on (4 lines of at most 16 KiB).
MAX_HEADERS = 80 * 1024


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request headers do not arrive in time."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # the headers are in: a request is being served

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(HEADER_TIMEOUT, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()


def serve(app: FastAPI, socket_path: Path) -> None:
    """Serve ``app`` on the unix socket ``socket_path`` until SIGTERM (a stale socket file is replaced)."""
    socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    uvicorn.run(
        app,
        uds=str(socket_path),
        http=HeaderDeadlineProtocol,
        log_level="warning",
        # Longer than the Admin Router's upstream keepalive_timeout: nginx closes idle connections first,
        # so it never sends a request on a connection the service is closing.
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=MAX_HEADERS,
        limit_concurrency=200,
    )
