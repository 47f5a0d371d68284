"""Users and their grants, as DC/OS's IAM models them: a user has permissions, each a resource id and an action.

The backup API needs ``dcos:adminrouter:ops:system-backup`` with the action ``full``; ``dcos:superuser``
(action ``full``) can do everything. :class:`Directory` is the whole set of users, the document the
store keeps (:mod:`.store`).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from dcos_backup.errors import NotFound, UsageError

SUPERUSER = "dcos:superuser"
FULL = "full"
READ = "read"
ACTIONS = ("create", READ, "update", "delete", FULL)
_UID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._-]{0,63}")
_RID_RE = re.compile(r"dcos(:[A-Za-z0-9_./-]+)+")


def validate_uid(uid: str) -> str:
    if not _UID_RE.fullmatch(uid or ""):
        raise UsageError(f"invalid user name {uid!r}: 1-64 characters of [A-Za-z0-9@._-], the first a letter or digit")
    return uid


def validate_rid(rid: str) -> str:
    if not _RID_RE.fullmatch(rid or ""):
        raise UsageError(f"invalid permission {rid!r}: a resource id like dcos:adminrouter:ops:system-backup")
    return rid


class Grant(BaseModel):
    rid: str = Field(description="resource id, e.g. dcos:adminrouter:ops:system-backup")
    action: str = FULL

    def covers(self, rid: str, action: str) -> bool:
        """``full`` on a resource covers every action on it; ``dcos:superuser`` covers every resource."""
        if self.rid == SUPERUSER and self.action == FULL:
            return True
        return self.rid == rid and self.action in (action, FULL)


class User(BaseModel):
    uid: str
    grants: list[Grant] = Field(default_factory=list)

    def allows(self, rid: str, action: str = FULL) -> bool:
        return any(grant.covers(rid, action) for grant in self.grants)

    def grant(self, rid: str, action: str = FULL) -> None:
        validate_rid(rid)
        if action not in ACTIONS:
            raise UsageError(f"invalid action {action!r}: one of {', '.join(ACTIONS)}")
        if not any(g.rid == rid and g.action == action for g in self.grants):
            self.grants.append(Grant(rid=rid, action=action))


class Directory(BaseModel):
    """Every user of the cluster, by uid."""

    users: dict[str, User] = Field(default_factory=dict)

    def add_user(self, uid: str) -> User:
        """A new user, or the existing one of that name (adding is idempotent)."""
        return self.users.setdefault(validate_uid(uid), User(uid=uid))

    def user(self, uid: str) -> User:
        try:
            return self.users[uid]
        except KeyError:
            raise NotFound(f"no user {uid!r} (add one with: dcos-local iam add-user {uid})") from None
