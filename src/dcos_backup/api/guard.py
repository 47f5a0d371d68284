"""What a request may cost the service before a route serves it: the ASGI middleware every request passes through.

A request that carries a body (a ``Content-Length`` other than 0, or any ``Transfer-Encoding``) must show a
permitted user's token before a byte of that body is read: the token is in the headers, so a client
without one is answered 401 (403 without the permission) and its connection closed while its body is
still unread, however large it claims or turns out to be. The bytes actually read are counted, chunked or
not: past :data:`MAX_BODY` the request is answered 413 and its connection closed, so no more than the cap
(and uvicorn's read buffer) is ever held per request. Only the portable ``upload`` is uncapped: it streams
to storage. The console's sign-in form (``SIGN_IN``) is read without a token, capped like the rest: the
token is what it carries. Requests without a body pass unchanged; their routes check the token as before.

Why not Starlette's ``RequestBodyLimitMiddleware`` (FastAPI's ``max_body_size``, both recent): it checks
no token first, and its 413 leaves the connection open, so uvicorn goes on receiving (and discarding) the
rest of the body; ours closes it: a refused 16 MiB chunked body stops after a few hundred KiB were sent.

Deadlines (a request's headers and body must arrive in time) belong to the connection and are in :mod:`.server`.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dcos_backup.api.auth import Authorizer
from dcos_backup.api.paths import MAX_BODY, SIGN_IN, UPLOAD
from dcos_backup.errors import DcosBackupError, TooLarge

WWW_AUTHENTICATE = {"WWW-Authenticate": "acsjwt"}  # what DC/OS's Admin Router answers a 401 with
DISCONNECT: Message = {"type": "http.disconnect"}


def error_reply(exc: DcosBackupError, close: bool = False) -> JSONResponse:
    """The API's JSON error for ``exc`` (``close``: and the connection ends after it, its request unread)."""
    headers = dict(WWW_AUTHENTICATE) if exc.http_status == 401 else {}
    if close:
        headers["Connection"] = "close"
    return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)


def too_large() -> TooLarge:
    return TooLarge(f"request body larger than {MAX_BODY} bytes")


def has_body(headers: Headers) -> bool:
    return "transfer-encoding" in headers or headers.get("content-length", "0") != "0"


def declared_too_large(headers: Headers) -> bool:
    length = headers.get("content-length")
    return length is not None and (not length.isdigit() or int(length) > MAX_BODY)


class RequestGuard:
    """The token before the body, and at most :data:`MAX_BODY` bytes of it (see the module's docstring)."""

    def __init__(self, app: ASGIApp, authorizer: Authorizer) -> None:
        self.app = app
        self.authorizer = authorizer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not has_body(headers):
            await self.app(scope, receive, send)
            return
        try:
            # Off the event loop: the check may read the users from ZooKeeper.
            if scope["path"] != SIGN_IN:  # the console's sign-in form carries the token in its (capped) body
                await run_in_threadpool(self.authorizer.check, headers.get("authorization"))
            if scope["path"] != UPLOAD and declared_too_large(headers):
                raise too_large()
        except DcosBackupError as exc:
            await error_reply(exc, close=True)(scope, receive, send)
            return
        if scope["path"] == UPLOAD:  # streamed to storage, never held in memory
            await self.app(scope, receive, send)
        else:
            await CappedRequest(scope, receive, send).run(self.app)


class CappedRequest:
    """One request whose body is counted as the app reads it: past the cap, the guard answers 413 itself
    and the app sees the client gone (whatever it answers then is dropped)."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope, self._receive, self._send = scope, receive, send
        self.received = 0
        self.refused = False
        self.started = False

    async def run(self, app: ASGIApp) -> None:
        await app(self.scope, self.receive, self.send)

    async def receive(self) -> Message:
        if self.refused:
            return DISCONNECT
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > MAX_BODY:
                await self.refuse()
                return DISCONNECT
        return message

    async def refuse(self) -> None:
        self.refused = True
        if not self.started:
            self.started = True
            await error_reply(too_large(), close=True)(self.scope, self._receive, self._send)

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        self.started = True
        await self._send(message)
