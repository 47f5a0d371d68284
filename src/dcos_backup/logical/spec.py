"""Where the engine connects: a ZooKeeper connect string parsed once into an immutable spec.

``ZkSpec.of("h1:2181,[::1]:2181/chroot")`` parses with kazoo's own :func:`kazoo.hosts.collect_hosts`
(IPv6 in brackets, default port 2181) and normalises the chroot as :class:`kazoo.client.KazooClient`
does, so the engine and a kazoo client given the same string talk to the same namespace.

A spec also says how every session authenticates (``auth``: ZooKeeper auth packets, e.g. digest
``user:password``, as kazoo's ``auth_data``) and how long an operation rides out a ZooKeeper fault
(``max_outage``) before it gives up with :class:`~dcos_backup.errors.ZooKeeperUnavailable`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field

from kazoo.hosts import collect_hosts

from dcos_backup.errors import UsageError

DEFAULT_SESSION_TIMEOUT = 15.0  # seconds; also what dcos_backup.logical.connect asks kazoo for
DEFAULT_MAX_OUTAGE = 120.0  # seconds an operation keeps reconnecting after losing ZooKeeper

Auth = tuple[str, str]  # (scheme, credential), e.g. ("digest", "user:password")


@dataclass(frozen=True, slots=True)
class ZkSpec:
    """An ensemble's addresses, the chroot every path is under, the session timeout to ask for, the
    credentials every session presents and how long an operation waits for ZooKeeper to come back."""

    addresses: tuple[tuple[str, int], ...]
    chroot: str = ""  # "" or "/a/b" (no trailing slash)
    session_timeout: float = DEFAULT_SESSION_TIMEOUT
    auth: tuple[Auth, ...] = field(default=(), repr=False)  # secrets: never in a repr or a message
    max_outage: float = DEFAULT_MAX_OUTAGE

    @classmethod
    def parse(
        cls,
        hosts: str,
        session_timeout: float = DEFAULT_SESSION_TIMEOUT,
        *,
        auth: Iterable[Auth] = (),
        max_outage: float = DEFAULT_MAX_OUTAGE,
    ) -> ZkSpec:
        """``"h1:2181,h2:2181[/chroot]"`` -> a spec; a malformed string is a :class:`UsageError`."""
        try:
            addresses, chroot = collect_hosts(hosts)
        except ValueError as exc:
            raise UsageError(f"invalid ZooKeeper connect string {hosts!r}: {exc}") from exc
        chroot = posixpath.normpath(chroot) if chroot else ""
        credentials = tuple(_checked_auth(a) for a in auth)
        return cls(tuple(addresses), "" if chroot == "/" else chroot, session_timeout, credentials, max_outage)

    @classmethod
    def of(cls, hosts: str | ZkSpec) -> ZkSpec:
        """A spec as it is, or a connect string parsed with the default session timeout."""
        return hosts if isinstance(hosts, ZkSpec) else cls.parse(hosts)

    @property
    def connect_string(self) -> str:
        """The spec as a connect string (kazoo accepts it; IPv6 addresses in brackets)."""
        return ",".join(address_text(host, port) for host, port in self.addresses) + self.chroot

    @property
    def connect_timeout(self) -> float:
        """How long one member may take to accept a session: short, so a frozen member costs little."""
        return max(2.0, self.session_timeout / 3)

    def full_path(self, path: str) -> str:
        """``path`` in the chroot's namespace -> the server's absolute path."""
        if not self.chroot:
            return path
        return self.chroot if path == "/" else self.chroot + path

    def __str__(self) -> str:
        return self.connect_string


def digest_auth(credentials: str) -> Auth:
    """``"user:password"`` -> the auth packet of ZooKeeper's digest scheme; a UsageError if malformed."""
    return _checked_auth(("digest", credentials))


def _checked_auth(auth: Auth) -> Auth:
    scheme, credential = auth
    if not scheme or (scheme == "digest" and (":" not in credential or credential.startswith(":"))):
        raise UsageError(f"invalid ZooKeeper credentials for scheme {scheme or '?'!r}: expected user:password")
    return scheme, credential


def address_text(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
