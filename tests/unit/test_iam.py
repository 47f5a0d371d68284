"""DC/OS-style tokens and permissions: what is refused (401) and why, what is forbidden (403), what passes.

Real RS256 JWTs signed with a real key pair; the user directory is a plain in-memory one here (the
ZooKeeper store is exercised end to end in tests/e2e/test_front_door.py)."""

from __future__ import annotations

import stat
from datetime import timedelta

import pytest
from tests.helpers import FORGERIES, forged_tokens

from dcos_backup.api.auth import BACKUP_PERMISSION, Authorizer
from dcos_backup.errors import Forbidden, NotFound, Unauthorized, UsageError
from dcos_backup.iam.tokens import (
    MAX_TOKEN,
    generate_key_pair,
    issue_token,
    load_private_key,
    load_public_key,
    parse_ttl,
    token_from_header,
    verify_token,
)
from dcos_backup.iam.users import SUPERUSER, Directory, User


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("iam")
    generate_key_pair(directory / "private.pem", directory / "public.pem")
    return load_private_key(directory / "private.pem"), load_public_key(directory / "public.pem"), directory


class Users:
    """A user directory the test fills (the real store's freshness: tests/e2e/test_iam_rebuild.py)."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    def user(self, uid: str) -> User | None:
        return self.directory.users.get(uid)


def directory() -> Directory:
    d = Directory()
    d.add_user("bootstrapuser").grant(SUPERUSER)
    d.add_user("operator").grant(BACKUP_PERMISSION)
    d.add_user("reader").grant(BACKUP_PERMISSION, "read")
    d.add_user("nobody")
    return d


def test_the_private_key_is_0600(keys):
    _, _, directory = keys
    assert stat.S_IMODE((directory / "private.pem").stat().st_mode) == 0o600


def test_a_valid_token_names_its_user(keys):
    private, public, _ = keys
    assert verify_token(public, issue_token(private, "alice", timedelta(hours=1))) == "alice"


@pytest.mark.parametrize("header", ["token={t}", "Token={t}", "Bearer {t}", "bearer  {t} "])
def test_dcos_and_bearer_headers_carry_the_token(header):
    assert token_from_header(header.format(t="abc.def.ghi")) == "abc.def.ghi"


@pytest.mark.parametrize("header", [None, "", "   ", "token=", "Bearer", "Bearer ", "Basic YTpi", "abc.def.ghi"])
def test_headers_without_a_token_are_401(header):
    with pytest.raises(Unauthorized):
        token_from_header(header)


@pytest.mark.parametrize("kind", FORGERIES)
def test_forged_or_broken_tokens_are_401(keys, kind):
    private, public, _ = keys
    token = forged_tokens(private, public)[kind]
    with pytest.raises(Unauthorized) as caught:
        verify_token(public, token)
    assert "\n" not in str(caught.value)
    if kind == "huge header":
        assert len(token) > MAX_TOKEN and "longer than" in str(caught.value)
    if kind == "expired":
        assert "expired" in str(caught.value)


def test_the_backup_permission_or_superuser_passes(keys):
    private, public, _ = keys
    users = Users(directory())
    authorizer = Authorizer(public, users)
    for uid in ("bootstrapuser", "operator"):
        assert authorizer.check(f"token={issue_token(private, uid)}") == uid


def test_only_a_superuser_passes_the_superuser_check(keys):
    _, public, _ = keys
    authorizer = Authorizer(public, Users(directory()))
    authorizer.require_superuser("bootstrapuser", "restoring the iam component")
    for uid in ("operator", "reader", "nobody", "ghost"):
        with pytest.raises(Forbidden, match=f"user '{uid}' lacks the permission dcos:superuser .* which restoring"):
            authorizer.require_superuser(uid, "restoring the iam component")


@pytest.mark.parametrize("uid", ["nobody", "reader"])
def test_a_user_without_the_permission_is_403_naming_it(keys, uid):
    private, public, _ = keys
    users = Users(directory())
    with pytest.raises(Forbidden, match=f"user '{uid}' lacks the permission dcos:adminrouter:ops:system-backup"):
        Authorizer(public, users).check(f"Bearer {issue_token(private, uid)}")


def test_an_unknown_user_is_401(keys):
    private, public, _ = keys
    with pytest.raises(Unauthorized, match="unknown user 'ghost'"):
        Authorizer(public, Users(directory())).check(f"token={issue_token(private, 'ghost')}")


def test_grants_and_users_validate_their_names():
    d = Directory()
    with pytest.raises(UsageError):
        d.add_user("../x")
    user = d.add_user("alice")
    with pytest.raises(UsageError):
        user.grant("not a permission")
    with pytest.raises(UsageError):
        user.grant(BACKUP_PERMISSION, "everything")
    user.grant(BACKUP_PERMISSION)
    user.grant(BACKUP_PERMISSION)  # idempotent
    assert len(user.grants) == 1 and d.add_user("alice") is user
    with pytest.raises(NotFound, match="dcos-local iam add-user bob"):
        d.user("bob")


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("1h", 3600), ("5d", 432000), ("1w", 604800)]
)
def test_ttls(text, seconds):
    assert parse_ttl(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "1", "h", "0h", "-1h", "1y", "1.5h"])
def test_bad_ttls_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_ttl(text)
