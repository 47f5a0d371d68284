"""Opening kazoo clients with the project's errors (for locks and small requests; the tree work has its own
pipelined sessions), and keeping them usable when the ensemble is rewound under them.

A rewound ensemble (every member restored from an archive, rolled back to a point in time, or rebuilt
empty) has a last zxid below the one a client has seen. ZooKeeper refuses that client's reconnects
("Refusing session request for client as it has seen zxid 0x300000000 our last zxid is 0x0"), and kazoo,
which keeps the zxid it has seen in ``client.last_zxid`` and reconnects with it and its old session, would
try for ever. :class:`RewindGuard` watches a disconnected client: once a serving member's zxid (``srvr``) is
below ``last_zxid``, the session is given up as expired (kazoo's own path for an expired session: LOST,
then a fresh session from zxid 0), so the client is back within a second or two of the ensemble serving.
"""

from __future__ import annotations

import logging
import re
import socket
import threading

from kazoo.client import KazooClient
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KeeperState
from kazoo.retry import KazooRetry

from dcos_backup.errors import ZooKeeperUnavailable
from dcos_backup.logical.spec import DEFAULT_SESSION_TIMEOUT, ZkSpec, address_text
from dcos_backup.master.fourlw import four_letter_word

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 2.0  # seconds for one member to accept a TCP connection
RECONNECT_MAX_DELAY = 1.0  # seconds between two reconnect attempts, at most
REWIND_CHECK = 0.5  # seconds between two looks at a disconnected client's ensemble
_SERVING = re.compile(r"^Mode: (leader|follower|standalone)", re.MULTILINE)
_ZXID = re.compile(r"^Zxid: (0x[0-9a-fA-F]+)", re.MULTILINE)


def connect(hosts: str | ZkSpec, timeout: float = DEFAULT_SESSION_TIMEOUT, **kwargs: object) -> KazooClient:
    """Start a kazoo client on ``hosts`` (``h1:p,h2:p[/chroot]`` or a :class:`ZkSpec`, whose credentials it
    presents); fail with one clear error, at once when no member even accepts a connection."""
    spec = ZkSpec.of(hosts)
    if spec.auth:
        kwargs.setdefault("auth_data", list(spec.auth))
    # kazoo's default reconnect backoff doubles up to an hour: after an outage of a few seconds its next try
    # may come tens of seconds after the ensemble serves again. At most RECONNECT_MAX_DELAY apart instead.
    kwargs.setdefault("connection_retry", KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=RECONNECT_MAX_DELAY))
    refused = _unreachable(spec)
    if refused is not None:
        raise ZooKeeperUnavailable(f"cannot connect to ZooKeeper at {spec}: no member reachable ({refused})")
    client = KazooClient(hosts=spec.connect_string, timeout=timeout, **kwargs)
    try:
        client.start(timeout=timeout)
    except KazooTimeoutError as exc:
        client.close()
        raise ZooKeeperUnavailable(f"cannot connect to ZooKeeper at {spec} within {timeout:g}s") from exc
    RewindGuard(client, spec).start()
    return client


def behind(spec: ZkSpec, seen: int) -> tuple[str, int] | None:
    """A serving member whose last zxid is below ``seen`` (the ensemble was rewound): (its address, its
    zxid), or None (every member serving is at or past ``seen``, or none answers)."""
    for host, port in spec.addresses:
        try:
            reply = four_letter_word(host, port, "srvr")
        except OSError:
            continue
        zxid = _ZXID.search(reply)
        if _SERVING.search(reply) and zxid and int(zxid.group(1), 16) < seen:
            return address_text(host, port), int(zxid.group(1), 16)
    return None


class RewindGuard:
    """Starts a fresh session for ``client`` as soon as its ensemble turns out to be behind it (module
    docstring). Runs in a daemon thread until the client is stopped."""

    def __init__(self, client: KazooClient, spec: ZkSpec) -> None:
        self.client = client
        self.spec = spec

    def start(self) -> None:
        threading.Thread(target=self._watch, name="zk-rewind-guard", daemon=True).start()

    def _watch(self) -> None:
        client = self.client
        while not client._stopped.wait(REWIND_CHECK):  # kazoo's own "stopped" flag
            if client.connected or client.last_zxid <= 0:
                continue
            self.check()

    def check(self) -> bool:
        """Give the session up if the ensemble is behind the client; True if it did."""
        client = self.client
        seen = client.last_zxid
        found = behind(self.spec, seen)
        if found is None or client.connected:
            return False
        address, zxid = found
        log.warning(
            "ZooKeeper was rewound under this client (%s is at zxid %#x, the client has seen %#x: restored or "
            "rebuilt): starting a fresh session",
            address,
            zxid,
            seen,
        )
        client._session_callback(KeeperState.EXPIRED_SESSION)  # kazoo: LOST, session and last_zxid reset
        return True


def _unreachable(spec: ZkSpec) -> str | None:
    """None if some member accepts a TCP connection, else why each one did not (kazoo would retry forever)."""
    errors = []
    for host, port in spec.addresses:
        try:
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT).close()
            return None
        except OSError as exc:
            errors.append(f"{address_text(host, port)}: {exc.strerror or exc}")
    return "; ".join(errors)
