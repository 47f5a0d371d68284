"""Where users and grants live: one ZooKeeper znode of JSON that only the service's credentials can read.

The znode (:data:`IAM_PATH`) has a digest ACL for one ZooKeeper identity, whose password is in a 0600
file on the masters (:class:`Credentials`); without it ZooKeeper refuses to read or change it. Keeping the
users in the ensemble, not in a file of one master, makes them the same for every backup service and every
master's Admin Router. Writes are compare-and-set on the znode's version, so concurrent changes never lose
one another.

The service keeps the directory in memory, but the cache never outlives a changed store (issue 26): every
lookup on a connected session asks ZooKeeper for the znode's stat (after a ``sync``, so another session's
write counts) and reads the users again when its ``mzxid`` is not the cached one; a user removed or a grant
revoked a moment ago is refused at once. A session that is lost (expired, or given up on a rewound
ensemble: a ZooKeeper rebuilt or restored) drops the cache, so the old users never answer for a new
ensemble. Only while the session is merely suspended (a member failing over, or the connection dropping
under a lookup) does the last confirmed directory answer: nothing can be read then, and the same session
sees any change first when it is back; a lookup with nothing confirmed on the session is 503.

With ``bootstrap`` (the cluster's first superuser, ``--bootstrap-user``: on DC/OS ``bootstrapuser``), a store
found absent (a ZooKeeper rebuilt from logical backups or empty) is created again holding that user as
``dcos:superuser`` only, with a warning in the log: the other users come back by restoring the ``iam``
component (:data:`dcos_backup.jobs.plan.IAM`). A store that exists is never touched: a deleted user stays
deleted.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from kazoo.exceptions import (
    BadVersionError,
    ConnectionLoss,
    KazooException,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
)
from kazoo.protocol.states import KazooState, ZnodeStat
from kazoo.recipe.watchers import DataWatch
from kazoo.security import ACL
from pydantic import ValidationError

from dcos_backup.errors import DcosBackupError, StorageError, ZooKeeperUnavailable
from dcos_backup.fsutil import write_private_file
from dcos_backup.iam import znodes
from dcos_backup.iam.users import FULL, SUPERUSER, Directory, User
from dcos_backup.logical import connect

T = TypeVar("T")

log = logging.getLogger(__name__)

IAM_PATH = znodes.IAM
ABSENT = -1  # the "mzxid" of a users' store that does not exist (no user known)
ZK_IDENTITY = "dcos-backup"


@dataclass(frozen=True)
class Credentials:
    """The ZooKeeper digest identity that may read and change the users."""

    user: str
    password: str

    @classmethod
    def generate(cls, path: Path) -> Credentials:
        """New random credentials, written to ``path`` (0600)."""
        credentials = cls(ZK_IDENTITY, secrets.token_urlsafe(32))
        write_private_file(path, f"{credentials.user}:{credentials.password}\n".encode())
        return credentials

    @classmethod
    def read(cls, path: Path) -> Credentials:
        """The credentials in ``path``, which only its owner may read (StorageError otherwise)."""
        try:
            if Path(path).stat().st_mode & 0o077:
                raise StorageError(f"the ZooKeeper credentials {path} are readable by other users: chmod 600 {path}")
            user, sep, password = Path(path).read_text().strip().partition(":")
        except OSError as exc:
            raise StorageError(f"cannot read the ZooKeeper credentials {path}: {exc.strerror or exc}") from exc
        if not sep or not user or not password:
            raise StorageError(f"{path} holds no ZooKeeper credentials (user:password)")
        return cls(user, password)

    @property
    def auth_data(self) -> list[tuple[str, str]]:
        return [znodes.digest_auth_of(self)]

    @property
    def acl(self) -> list[ACL]:
        """Everything for this identity, nothing for anyone else (the users: :func:`.znodes.owner_acl`)."""
        return znodes.owner_acl(self, znodes.IAM)


class UserStore:
    """The cluster's users in ZooKeeper (``hosts`` may carry a chroot), on a session of its own; with
    ``bootstrap``, the superuser created again when the store is absent (module docstring)."""

    def __init__(
        self, hosts: str, credentials: Credentials, timeout: float = 15.0, bootstrap: str | None = None
    ) -> None:
        self.credentials = credentials
        self.bootstrap = bootstrap
        self.client = connect(hosts, timeout, auth_data=credentials.auth_data)
        self._directory = Directory()
        self._seen: int | None = None  # the cached directory's mzxid (ABSENT: no store); None: nothing cached
        self._lock = threading.Lock()
        self.client.add_listener(self._state_changed)

    def keep_bootstrap(self) -> UserStore:
        """Create the store again as soon as it is absent (with ``bootstrap``; for the service): at once if it is
        now, and whenever a watch sees it go or a new session finds it gone, so that the bootstrap superuser
        can log in before anyone has asked the service anything."""
        if self.bootstrap is not None:
            DataWatch(self.client, IAM_PATH, self._maybe_absent)
        return self

    def _maybe_absent(self, data: bytes | None, stat: ZnodeStat | None) -> None:
        if stat is None:  # kazoo's watch thread must not wait on ZooKeeper: the creation runs beside it
            self.client.handler.spawn(self._bootstrap_now)

    def _bootstrap_now(self) -> None:
        try:
            self._guarded(self._read_latest)
        except DcosBackupError as exc:  # the next lookup tries again
            log.warning("could not create the users' store again: %s", exc)

    # ---------------------------------------------------------------- reading
    def _state_changed(self, state: KazooState) -> None:
        if state == KazooState.LOST:  # a new session, maybe on a rebuilt ensemble: nothing cached holds
            with self._lock:
                self._directory, self._seen = Directory(), None

    def user(self, uid: str) -> User | None:
        """The user ``uid`` as ZooKeeper's leader has it now (as last confirmed while the session is
        suspended); ZooKeeperUnavailable when that cannot be known."""
        if self.client.connected:  # else kazoo would queue the request until a session is back
            try:
                self._guarded(self._refresh)
            except ZooKeeperUnavailable as exc:
                if not isinstance(exc.__cause__, ConnectionLoss):
                    raise
                # The connection dropped under the request (a member failing): the session, so the cache, holds.
        with self._lock:
            if self._seen is None or self.client.state == KazooState.LOST:
                raise ZooKeeperUnavailable("ZooKeeper unavailable: cannot read the users (no session)")
            return self._directory.users.get(uid)

    def directory(self) -> Directory:
        return self._set(*self._guarded(self._read_latest))

    def _refresh(self) -> None:
        """Read the users again unless the cached directory is the znode's current version."""
        self.client.sync(IAM_PATH)  # another session's write (dcos-local iam grant) is visible after this
        stat = self.client.exists(IAM_PATH)
        with self._lock:
            if stat is not None and stat.mzxid == self._seen:
                return
        self._set(*self._read_latest())

    def _set(self, data: bytes | None, stat: ZnodeStat | None) -> Directory:
        directory = _parse(data)
        with self._lock:
            self._directory, self._seen = directory, (stat.mzxid if stat is not None else ABSENT)
        return directory.model_copy(deep=True)

    def _read_latest(self) -> tuple[bytes | None, ZnodeStat | None]:
        """The store's content and stat ((None, None) if absent: then, with ``bootstrap``, the store is
        created again with the bootstrap superuser and that is the answer)."""
        self.client.sync(IAM_PATH)  # another session's write (dcos-local iam grant) is visible after this
        try:
            return self.client.get(IAM_PATH)  # type: ignore[no-any-return]
        except NoNodeError:
            if self.bootstrap is None:
                return None, None
        return self._create_bootstrap(self.bootstrap)

    def _create_bootstrap(self, uid: str) -> tuple[bytes | None, ZnodeStat | None]:
        directory = Directory()
        directory.add_user(uid).grant(SUPERUSER, FULL)
        try:
            self._write(directory.model_dump_json(indent=2).encode(), -1)
        except NodeExistsError:  # another instance (or a restore) made it meanwhile: theirs is the store
            pass
        else:
            log.warning(
                "the users' store %s was absent (ZooKeeper rebuilt or emptied): created it again with the "
                "bootstrap superuser %s only, from the service's configuration; restore the other users and "
                "their grants from a backup's iam component (dcos backup restore ID --path %s)",
                IAM_PATH,
                uid,
                IAM_PATH,
            )
        return self.client.get(IAM_PATH)  # type: ignore[no-any-return]

    # ---------------------------------------------------------------- changing
    def update(self, change: Callable[[Directory], object]) -> Directory:
        """Apply ``change`` to the directory and write it, retrying if someone else wrote it meanwhile."""
        while True:
            data, stat = self._guarded(self._read_latest)
            directory = _parse(data)
            change(directory)
            payload = directory.model_dump_json(indent=2).encode()
            try:
                self._guarded(lambda: self._write(payload, stat.version if stat is not None else -1))  # noqa: B023
                return directory
            except (BadVersionError, NodeExistsError):
                continue

    def _write(self, payload: bytes, version: int) -> None:
        if version < 0:  # the root too if it is missing, in one transaction: both the service's at once
            znodes.create_owned(self.client, IAM_PATH, payload, self.credentials)
        else:
            self.client.set(IAM_PATH, payload, version=version)

    def _guarded(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except (BadVersionError, NodeExistsError):
            raise
        except NoAuthError as exc:
            raise DcosBackupError(f"ZooKeeper refuses these credentials for {IAM_PATH}") from exc
        except KazooException as exc:
            raise ZooKeeperUnavailable(f"ZooKeeper unavailable: cannot read the users ({type(exc).__name__})") from exc

    def close(self) -> None:
        self.client.stop()
        self.client.close()

    def __enter__(self) -> UserStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _parse(data: bytes | None) -> Directory:
    try:
        return Directory.model_validate_json(data) if data else Directory()
    except ValidationError:
        log.error("the users in %s are unreadable; nobody is known until they are fixed", IAM_PATH)
        return Directory()
