"""Where the engine connects: a ZooKeeper connect string parsed once into an immutable spec.

``ZkSpec.of("h1:2181,[::1]:2181/chroot")`` parses with kazoo's own :func:`kazoo.hosts.collect_hosts`
(IPv6 in brackets, default port 2181) and normalises the chroot as :class:`kazoo.client.KazooClient`
does, so the engine and a kazoo client given the same string talk to the same namespace.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from kazoo.hosts import collect_hosts

from dcos_backup.errors import UsageError

DEFAULT_SESSION_TIMEOUT = 15.0  # seconds; also what dcos_backup.zk.connect asks kazoo for


@dataclass(frozen=True, slots=True)
class ZkSpec:
    """An ensemble's addresses, the chroot every path is under, and the session timeout to ask for."""

    addresses: tuple[tuple[str, int], ...]
    chroot: str = ""  # "" or "/a/b" (no trailing slash)
    session_timeout: float = DEFAULT_SESSION_TIMEOUT

    @classmethod
    def parse(cls, hosts: str, session_timeout: float = DEFAULT_SESSION_TIMEOUT) -> ZkSpec:
        """``"h1:2181,h2:2181[/chroot]"`` -> a spec; a malformed string is a :class:`UsageError`."""
        try:
            addresses, chroot = collect_hosts(hosts)
        except ValueError as exc:
            raise UsageError(f"invalid ZooKeeper connect string {hosts!r}: {exc}") from exc
        chroot = posixpath.normpath(chroot) if chroot else ""
        return cls(tuple(addresses), "" if chroot == "/" else chroot, session_timeout)

    @classmethod
    def of(cls, hosts: str | ZkSpec) -> ZkSpec:
        """A spec as it is, or a connect string parsed with the default session timeout."""
        return hosts if isinstance(hosts, ZkSpec) else cls.parse(hosts)

    @property
    def connect_string(self) -> str:
        """The spec as a connect string (kazoo accepts it; IPv6 addresses in brackets)."""
        return ",".join(address_text(host, port) for host, port in self.addresses) + self.chroot

    def full_path(self, path: str) -> str:
        """``path`` in the chroot's namespace -> the server's absolute path."""
        if not self.chroot:
            return path
        return self.chroot if path == "/" else self.chroot + path

    def __str__(self) -> str:
        return self.connect_string


def address_text(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
