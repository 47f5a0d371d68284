"""The ``dcos-acs-auth-cookie`` cookie as a token, as DC/OS's Admin Router takes it: a request without an
``Authorization`` header but with the cookie is served as if it sent ``Authorization: token=<cookie>``.

A header, when present, wins. The cookie is what a browser sends by itself, so a state-changing request
(any method but GET/HEAD/OPTIONS) authenticated by it must come from the console's own origin: its
``Origin`` (or, without one, its ``Referer``) must name the host it was sent to; otherwise it is refused
403 before anything reads it (cross-site request forgery). The cookie is also ``SameSite=Strict``,
``HttpOnly`` and ``Secure`` (:func:`cookie_settings`), so this check is the second of two walls.

This middleware is the outermost one: the forwarding to the leader, the body guard and the routes all see
the header, so the cookie works for every route, on every master, with the same permission check.
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from dcos_backup.api.guard import error_reply
from dcos_backup.errors import Forbidden

COOKIE = "dcos-acs-auth-cookie"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MAX_AGE = 5 * 24 * 3600  # seconds: DC/OS's login token lifetime


def cookie_settings(token: str) -> dict[str, Any]:
    """Keyword arguments of ``Response.set_cookie`` for the console's session."""
    return {
        "key": COOKIE,
        "value": token,
        "max_age": MAX_AGE,
        "path": "/",
        "secure": True,
        "httponly": True,
        "samesite": "strict",
    }


def cookie_token(headers: Headers) -> str | None:
    raw = headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed Cookie header is no token
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def same_origin(headers: Headers) -> bool:
    """The request names, as its Origin (or Referer), the host it was sent to."""
    host = headers.get("host")
    source = headers.get("origin") or headers.get("referer")
    if not host or not source or source == "null":
        return False
    parts = urlsplit(source)
    return parts.scheme in ("https", "http") and parts.netloc.lower() == host.lower()


class CookieToken:
    """See the module's docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        token = None if "authorization" in headers else cookie_token(headers)
        if token is not None:
            if scope["method"] not in SAFE_METHODS and not same_origin(headers):
                refusal = Forbidden(
                    "cross-site request refused: a request signed in by cookie must come from this origin"
                )
                await error_reply(refusal, close=True)(scope, receive, send)
                return
            scope = dict(scope)
            scope["headers"] = [*scope["headers"], (b"authorization", f"token={token}".encode("latin-1"))]
        await self.app(scope, receive, send)
