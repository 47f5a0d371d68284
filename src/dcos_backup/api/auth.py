"""Who may use the backup API: DC/OS's permission check, done by the service itself.

A request needs a valid token (:mod:`dcos_backup.iam.tokens`) of a known user who holds
``dcos:adminrouter:ops:system-backup`` with the action ``full``, or ``dcos:superuser``. Because the check
is in the service, it holds for every way in: through the Admin Router and on the service's unix socket.
No token, a bad one, or one of an unknown user: 401. A known user without the permission: 403 naming it.

Restoring the ``iam`` component (the users and their grants), its dry run, and downloading a backup that
holds it need more: ``dcos:superuser`` (:meth:`Authorizer.require_superuser`): whoever restores grants
chooses who may do what, and the archive names every user and grant.

``GET /metrics`` needs less: :data:`METRICS_PERMISSION` with the action ``read`` (a monitoring user, who can
read the numbers but start, see or delete no backup), or the backup permission, or ``dcos:superuser``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from dcos_backup.api.paths import METRICS_PERMISSION
from dcos_backup.errors import Forbidden, Unauthorized
from dcos_backup.iam.tokens import token_from_header, verify_token
from dcos_backup.iam.users import FULL, READ, SUPERUSER, User

BACKUP_PERMISSION = "dcos:adminrouter:ops:system-backup"


class Users(Protocol):
    """Where the check looks users up (:class:`dcos_backup.iam.store.UserStore` is one)."""

    def user(self, uid: str) -> User | None:
        """The user ``uid`` as the store has it now (a cache never outlives a change), or None."""
        ...


class Authorizer:
    """Checks an ``Authorization`` header against the IAM's public key and the cluster's users."""

    def __init__(self, public_key: RSAPublicKey, users: Users, permission: str = BACKUP_PERMISSION) -> None:
        self.public_key = public_key
        self.users = users
        self.permission = permission

    def check(self, header: str | None) -> str:
        """The uid the request acts as; Unauthorized or Forbidden saying why not."""
        return self._check(header, self._may_use)

    def check_metrics(self, header: str | None) -> str:
        """As :meth:`check`, for ``GET /metrics``: the metrics permission (read) is enough."""
        return self._check(header, self._may_read_metrics)

    def require_superuser(self, uid: str, what: str) -> None:
        """Forbidden unless ``uid`` (a checked request's user) holds ``dcos:superuser``, saying ``what`` needs it."""
        user = self.users.user(uid)
        if user is None or not user.allows(SUPERUSER, FULL):
            raise Forbidden(f"user {uid!r} lacks the permission {SUPERUSER} (action {FULL}), which {what} needs")

    def _may_use(self, user: User) -> str | None:
        return None if user.allows(self.permission, FULL) else f"the permission {self.permission} (action {FULL})"

    def _may_read_metrics(self, user: User) -> str | None:
        if user.allows(METRICS_PERMISSION, READ) or user.allows(self.permission, FULL):
            return None
        return f"the permission {METRICS_PERMISSION} (action {READ})"

    def _check(self, header: str | None, lacks: Callable[[User], str | None]) -> str:
        uid = verify_token(self.public_key, token_from_header(header))
        user = self.users.user(uid)
        if user is None:
            raise Unauthorized(f"unknown user {uid!r}")
        missing = lacks(user)
        if missing is not None:
            raise Forbidden(f"user {uid!r} lacks {missing}")
        return uid
