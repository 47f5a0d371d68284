"""Where users and grants live: one ZooKeeper znode of JSON that only the service's credentials can read.

The znode (:data:`IAM_PATH`) has a digest ACL for one ZooKeeper identity, whose password is in a 0600
file on the masters (:class:`Credentials`); without it ZooKeeper refuses to read or change it. Keeping the
users in the ensemble, not in a file of one master, makes them the same for every backup service and every
master's Admin Router. The service keeps the directory in memory, refreshed by a ZooKeeper watch; a request
that would be refused is decided again on a fresh read, so a grant is effective as soon as it is written.
Writes are compare-and-set on the znode's version, so concurrent changes never lose one another.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from kazoo.exceptions import BadVersionError, KazooException, NoAuthError, NodeExistsError, NoNodeError
from kazoo.recipe.watchers import DataWatch
from kazoo.security import ACL
from pydantic import ValidationError

from dcos_backup.errors import DcosBackupError, StorageError, ZooKeeperUnavailable
from dcos_backup.fsutil import write_private_file
from dcos_backup.iam import znodes
from dcos_backup.iam.users import Directory, User
from dcos_backup.logical import connect

T = TypeVar("T")

log = logging.getLogger(__name__)

IAM_PATH = znodes.IAM
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
    """The cluster's users in ZooKeeper (``hosts`` may carry a chroot), on a session of its own."""

    def __init__(self, hosts: str, credentials: Credentials, timeout: float = 15.0) -> None:
        self.credentials = credentials
        self.client = connect(hosts, timeout, auth_data=credentials.auth_data)
        self._directory = Directory()
        self._lock = threading.Lock()
        self._watch: DataWatch | None = None

    # ---------------------------------------------------------------- reading
    def watch(self) -> UserStore:
        """Keep :meth:`user`'s answers current with a watch (for a long-running reader: the service)."""
        self._watch = DataWatch(self.client, IAM_PATH, self._changed)
        return self

    def _changed(self, data: bytes | None, _stat: object) -> None:
        self._set(data)

    def _set(self, data: bytes | None) -> Directory:
        try:
            directory = Directory.model_validate_json(data) if data else Directory()
        except ValidationError:
            log.error("the users in %s are unreadable; nobody is known until they are fixed", IAM_PATH)
            directory = Directory()
        with self._lock:
            self._directory = directory
        return directory

    def user(self, uid: str, fresh: bool = False) -> User | None:
        """The user ``uid`` as last seen; with ``fresh``, as ZooKeeper's leader has it now."""
        if fresh or self._watch is None:
            self._set(self._guarded(self._read_latest)[0])
        with self._lock:
            return self._directory.users.get(uid)

    def directory(self) -> Directory:
        return self._set(self._guarded(self._read_latest)[0])

    def _read_latest(self) -> tuple[bytes | None, int]:
        self.client.sync(IAM_PATH)  # another session's write (dcos-local iam grant) is visible after this
        try:
            data, stat = self.client.get(IAM_PATH)
        except NoNodeError:
            return None, -1
        return data, stat.version

    # ---------------------------------------------------------------- changing
    def update(self, change: Callable[[Directory], object]) -> Directory:
        """Apply ``change`` to the directory and write it, retrying if someone else wrote it meanwhile."""
        while True:
            data, version = self._guarded(self._read_latest)
            directory = self._set(data)
            change(directory)
            payload = directory.model_dump_json(indent=2).encode()
            try:
                self._guarded(lambda: self._write(payload, version))  # noqa: B023 - called at once
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
            raise ZooKeeperUnavailable(f"cannot read the users from ZooKeeper: {type(exc).__name__}") from exc

    def close(self) -> None:
        self.client.stop()
        self.client.close()

    def __enter__(self) -> UserStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
