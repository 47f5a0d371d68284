"""The console's routes under ``/backup/``: the sign-in form, the page, its timeline data and static files.

Nothing but the sign-in form and the static files (script and stylesheet, no data) is shown to a request
without a permitted user's token: a missing or bad token is sent to the sign-in form (the page) or answered
401 (the data); a valid token of a user without the backup permission gets a page saying "not permitted".
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from dcos_backup import __version__
from dcos_backup.api.auth import Authorizer
from dcos_backup.api.guard import error_reply
from dcos_backup.api.paths import CONSOLE, PREFIX, SIGN_IN
from dcos_backup.console.session import COOKIE, CookieToken, cookie_settings, same_origin
from dcos_backup.console.timeline import archive_timeline
from dcos_backup.errors import DcosBackupError, Forbidden, Unauthorized
from dcos_backup.physical.continuous.repository import Repository
from dcos_backup.storage.crypto import load_key
from dcos_backup.storage.locations import open_store

STATIC_TYPES = {"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"}
# The page runs only its own script and style, talks only to its own origin, and is never framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_templates = Environment(
    loader=PackageLoader("dcos_backup.console", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(name: str, status: int = 200, **context: object) -> HTMLResponse:
    html = _templates.get_template(name).render(console=CONSOLE, api=PREFIX, version=__version__, **context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def console_routes(
    authorizer: Authorizer, archive: Callable[[], Repository | None], archive_name: str | None
) -> APIRouter:
    """The console's routes; ``archive()`` opens the continuous archive's repository (None: not configured)."""
    router = APIRouter(include_in_schema=False)

    async def check(authorization: str | None) -> str:
        return await run_in_threadpool(authorizer.check, authorization)

    @router.get(CONSOLE)
    def bare() -> RedirectResponse:
        return RedirectResponse(f"{CONSOLE}/", status_code=303)

    @router.get(f"{CONSOLE}/")
    async def page(authorization: Annotated[str | None, Header()] = None) -> Response:
        try:
            uid = await check(authorization)
        except Unauthorized:
            return RedirectResponse(SIGN_IN, status_code=303, headers={"Cache-Control": "no-store"})
        except Forbidden as exc:
            return render("forbidden.html", 403, message=str(exc))
        return render("console.html", uid=uid, archive=archive_name)

    @router.get(SIGN_IN)
    def sign_in_form() -> Response:
        return render("login.html")

    @router.post(SIGN_IN)
    async def sign_in(request: Request) -> Response:
        if not same_origin(request.headers):
            return render("login.html", 403, error="sign-in refused: the form was not sent from this page")
        # A urlencoded form, parsed here (its body is capped by the guard): no multipart parser needed.
        fields = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=4)
        token = (fields.get("token") or [""])[0].strip()
        if token.lower().startswith("token="):
            token = token[6:]
        try:
            await check(f"token={token}")
        except Forbidden as exc:
            answer = render("forbidden.html", 403, message=str(exc))
            answer.set_cookie(**cookie_settings(token))  # signed in, but not permitted: say so, sign-out works
            return answer
        except DcosBackupError as exc:
            return render("login.html", 401, error=str(exc))
        redirect = RedirectResponse(f"{CONSOLE}/", status_code=303)
        redirect.set_cookie(**cookie_settings(token))
        return redirect

    @router.post(f"{CONSOLE}/logout")
    def sign_out() -> Response:
        answer = RedirectResponse(SIGN_IN, status_code=303)
        answer.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return answer

    @router.get(f"{CONSOLE}/timeline.json")
    async def timeline(authorization: Annotated[str | None, Header()] = None) -> Response:
        try:
            await check(authorization)
        except DcosBackupError as exc:
            return error_reply(exc)
        try:
            data = await run_in_threadpool(lambda: archive_timeline(archive()))
        except DcosBackupError as exc:
            return error_reply(exc)
        return JSONResponse({**data, "repository": archive_name}, headers={"Cache-Control": "no-store"})

    @router.get(CONSOLE + "/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC_TYPES:
            return JSONResponse({"errors": ["no such file"], "code": "not_found"}, status_code=404)
        body = resources.files("dcos_backup.console").joinpath("static", name).read_bytes()
        return Response(body, media_type=STATIC_TYPES[name], headers={"Cache-Control": "no-cache"})

    return router


def install_console(
    app: FastAPI,
    authorizer: Authorizer,
    archive_repo: str | None = None,
    archive_key_file: Path | None = None,
    s3_endpoint_url: str | None = None,
) -> None:
    """Serve the console from ``app`` and let the API take the cookie. Call it after the app's last other
    middleware: the cookie must become a header before the forwarding to the leader sees the request.
    The timeline reads ``archive_repo`` with the cluster's repository key (``archive_key_file``): an index
    whose MACs do not verify under it is refused, as every dcos-zk command refuses it."""
    opened: list[Repository] = []

    def archive() -> Repository | None:
        if archive_repo is None or archive_key_file is None:
            return None
        if not opened:  # opened once, on first use: an S3 client is not free
            repository = Repository(open_store(archive_repo, endpoint_url=s3_endpoint_url), load_key(archive_key_file))
            repository.check_identity()
            opened.append(repository)
        return opened[0]

    app.include_router(console_routes(authorizer, archive, archive_repo))
    app.add_middleware(CookieToken)
