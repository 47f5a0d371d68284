"""The web console's pieces without a browser: the timeline from an archive's index (a week of segments in
well under a second), the cookie session and its same-origin check, and what the pages show to whom."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.datastructures import Headers

from dcos_backup.api.auth import BACKUP_PERMISSION, Authorizer
from dcos_backup.console.pages import install_console
from dcos_backup.console.session import COOKIE, cookie_token, same_origin
from dcos_backup.console.timeline import archive_timeline
from dcos_backup.iam.tokens import issue_token
from dcos_backup.iam.users import User
from dcos_backup.physical.continuous.index import (
    generation_prefix,
    segment_key,
    segment_name,
    snapshot_key,
    snapshot_name,
)
from dcos_backup.physical.continuous.repository import Repository
from dcos_backup.storage.crypto import EncryptionKey
from dcos_backup.storage.local import LocalStore

WEEK_MINUTES = 7 * 24 * 60
T0 = 1_780_000_000_000  # ms


def write_week(root: Path, stream: str = "master-1", gap_at: int | None = None) -> None:
    """A generation of a week of one-minute segments and hourly snapshots, as the archiver names them (the
    objects are empty: the timeline must never read them)."""
    prefix = generation_prefix(stream, "20260101T000000000Z-aaaa")
    base = 0x1_0000_0000
    (root / prefix / "log").mkdir(parents=True)
    (root / prefix / "snap").mkdir()
    info = {"reason": "first generation of this stream", "base_zxid": base, "base_time_ms": T0}
    repo = repository(root)
    repo.put_doc(f"{prefix}/generation.json", info)
    for minute in range(WEEK_MINUTES):
        if minute == gap_at:
            continue
        first, last = base + minute * 100 + 1, base + minute * 100 + 100
        start = T0 + minute * 60_000
        name = segment_name(prefix, first, last, start, start + 59_000)
        (root / segment_key(name, repo.object_mac(name, "0" * 64))).touch()
        if minute % 60 == 0:
            name = snapshot_name(prefix, first - 1, first - 1)
            (root / snapshot_key(name, repo.object_mac(name, "1" * 64))).touch()


KEY = EncryptionKey(bytes(range(32)))  # this cluster's repository key


def repository(root: Path, store: LocalStore | None = None) -> Repository:
    """The repository at ``root`` as this cluster opens it (its repository.json made on first use)."""
    repo = Repository(store or LocalStore(root), KEY)
    repo.check_identity(create=True)
    return repo


class CountingStore(LocalStore):
    """A local repository that records which objects are read."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.read: list[str] = []

    def get(self, key: str):
        self.read.append(key)
        return super().get(key)  # get_bytes reads through get too


def test_a_week_of_segments_is_read_from_the_index_alone(tmp_path):
    """The timeline lists the repository and reads generation.json only: never a segment or a snapshot
    (a week of one-minute segments opens in a fraction of a second on an idle machine; docs/operations.md)."""
    write_week(tmp_path, gap_at=3000)
    store = CountingStore(tmp_path)
    data = archive_timeline(repository(tmp_path, store))
    assert {key.rsplit("/", 1)[-1] for key in store.read} == {"repository.json", "generation.json"}
    (master,) = data["masters"]
    (gen,) = master["generations"]
    assert master["stream"] == "master-1" and data["configured"]
    assert (
        gen["segments"] == WEEK_MINUTES - 1 and len(gen["snapshots"]) == WEEK_MINUTES // 60 - 1
    )  # none with the missing segment
    assert gen["reason"] == "first generation of this stream"
    # The missing segment: a gap, and two restorable stretches around it (the second from the next snapshot,
    # whose zxid ends the segment of minute 3059).
    (gap,) = gen["gaps"]
    assert gap["from_ms"] == T0 + 2999 * 60_000 + 59_000 and gap["to_ms"] == T0 + 3001 * 60_000
    assert [r["first_ms"] for r in gen["ranges"]] == [T0, T0 + 3059 * 60_000]  # at or before the snapshot
    assert gen["ranges"][-1]["last_ms"] == T0 + (WEEK_MINUTES - 1) * 60_000 + 59_000


def test_without_an_archive_the_timeline_says_so():
    assert archive_timeline(None) == {"configured": False, "masters": []}


@pytest.mark.parametrize(
    ("headers", "same"),
    [
        ({"host": "10.0.0.1", "origin": "https://10.0.0.1"}, True),
        ({"host": "10.0.0.1", "referer": "https://10.0.0.1/backup/"}, True),
        ({"host": "10.0.0.1", "origin": "https://evil.example"}, False),
        ({"host": "10.0.0.1", "origin": "https://10.0.0.1.evil.example"}, False),
        ({"host": "10.0.0.1", "origin": "null"}, False),
        ({"host": "10.0.0.1"}, False),  # no origin at all: not ours
        ({"host": "10.0.0.1", "origin": "javascript://10.0.0.1"}, False),
    ],
)
def test_same_origin(headers, same):
    assert same_origin(Headers(headers)) is same


def test_cookie_token():
    assert cookie_token(Headers({"cookie": f"a=b; {COOKIE}=abc.def.ghi; c=d"})) == "abc.def.ghi"
    assert cookie_token(Headers({"cookie": "a=b"})) is None
    assert cookie_token(Headers({"cookie": '"broken'})) is None
    assert cookie_token(Headers({})) is None


class Users:
    def __init__(self, *users: User) -> None:
        self.users = {u.uid: u for u in users}

    def user(self, uid: str, fresh: bool = False) -> User | None:
        return self.users.get(uid)


@pytest.fixture(scope="module")
def console():
    """The console on a tiny app with one API-like route; (client, admin token, viewer token)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    admin = User(uid="admin")
    admin.grant(BACKUP_PERMISSION)
    authorizer = Authorizer(key.public_key(), Users(admin, User(uid="viewer")))
    app = FastAPI()

    @app.post("/system/v1/backup/v1/restore")
    def restore(body: dict) -> dict:  # what the API sees: the cookie turned into the header
        return {"ok": True}

    @app.middleware("http")
    async def needs_token(request, call_next):
        from fastapi.responses import JSONResponse

        if request.url.path.startswith("/system/") and "authorization" not in request.headers:
            return JSONResponse({"errors": ["missing token"]}, status_code=401)
        return await call_next(request)

    install_console(app, authorizer)
    client = TestClient(app, base_url="https://master", follow_redirects=False)
    return client, issue_token(key, "admin"), issue_token(key, "viewer")


def test_the_page_needs_a_permitted_token(console):
    client, admin, viewer = console
    client.cookies.clear()
    assert client.get("/backup/").headers["location"] == "/backup/login"
    assert client.get("/backup/timeline.json").status_code == 401
    assert "Sign in" in client.get("/backup/login").text
    page = client.get("/backup/", headers={"Authorization": f"token={viewer}"})
    assert page.status_code == 403 and "Not permitted" in page.text and "backup-table" not in page.text
    page = client.get("/backup/", headers={"Authorization": f"token={admin}"})
    assert page.status_code == 200 and "backup-table" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/backup/static/console.js").status_code == 200
    assert client.get("/backup/static/..%2Fpages.py").status_code == 404


def test_sign_in_sets_a_strict_cookie_and_the_api_takes_it_from_this_origin_only(console):
    client, admin, _ = console
    client.cookies.clear()
    origin = {"Origin": "https://master"}
    refused = client.post("/backup/login", data={"token": admin}, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403 and "set-cookie" not in refused.headers
    wrong = client.post("/backup/login", data={"token": "nonsense"}, headers=origin)
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    signed = client.post("/backup/login", data={"token": f"token={admin}"}, headers=origin)
    assert signed.status_code == 303 and signed.headers["location"] == "/backup/"
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={admin};") and "HttpOnly" in cookie and "Secure" in cookie
    assert "SameSite=strict" in cookie
    assert client.get("/backup/").status_code == 200
    assert client.post("/system/v1/backup/v1/restore", json={}, headers=origin).json() == {"ok": True}
    cross = client.post("/system/v1/backup/v1/restore", json={}, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403 and "cross-site" in cross.json()["errors"][0]
    assert client.post("/system/v1/backup/v1/restore", json={}).status_code == 403  # no origin: refused too
    out = client.post("/backup/logout", headers=origin)
    assert out.status_code == 303 and f'{COOKIE}=""' in out.headers["set-cookie"]
