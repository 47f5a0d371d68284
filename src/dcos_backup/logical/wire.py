"""A pipelined ZooKeeper connection: many requests in flight on one socket.

kazoo keeps the protocol (``kazoo.protocol.serialization``: request types, ``serialize``/``deserialize``,
``ReplyHeader``); this module adds only the transport. It exists because kazoo's client is built for
one-request-at-a-time use: on the 2-core reference machine a kazoo ``get_async`` reader reached about
9,000 znodes/s and a synchronous one 2,800/s, while requests pipelined on one socket reach what the
server can serve (see bench/tree_bench.py for the figures of each run).

ZooKeeper answers the requests of one session strictly in order, so replies are matched to requests
with a FIFO queue and a check of the xid.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from collections import deque
from collections.abc import Iterator
from typing import Any, NamedTuple

from kazoo.exceptions import EXCEPTIONS
from kazoo.protocol.serialization import (
    Auth,
    Close,
    Connect,
    Ping,
    int_int_struct,
    int_struct,
    reply_header_struct,
)

from dcos_backup.errors import DcosBackupError, ZooKeeperUnavailable
from dcos_backup.logical.spec import ZkSpec, address_text
from dcos_backup.master.fourlw import four_letter_word

OFFSET = reply_header_struct.size  # where a reply's body starts in its frame
PING_XID = -2
WATCH_XID = -1
_LEN = struct.Struct("!i")
_RECV = 1 << 20
# ZooKeeper does not bound its replies by jute.maxbuffer (that limit is on what it reads): a directory of
# 200,000 children with 40-byte names answers in one 9 MB frame. This only catches a corrupt length.
_MAX_FRAME = 1 << 30
AUTH_XID = -4


class Reply(NamedTuple):  # a tuple: one is made per reply, and a frozen dataclass costs 3x more to build
    xid: int
    zxid: int
    err: int
    body: bytes  # the whole frame; the reply's own fields start at OFFSET
    request: Any
    tag: Any

    def error(self) -> Exception:
        exc: Exception = EXCEPTIONS[self.err]()
        return exc


def leader_first(addresses: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The addresses with the current leader first (asked with ``srvr``), the rest shuffled.

    Writes sent to a follower are forwarded to the leader: one more hop for every batch.
    """
    rest = random.sample(addresses, len(addresses))
    if len(addresses) > 1:
        for host, port in addresses:
            try:
                if "Mode: leader" in four_letter_word(host, port, "srvr", timeout=0.5):
                    return [(host, port)] + [a for a in rest if a != (host, port)]
            except OSError:
                continue
    return rest


class Connection:
    """One ZooKeeper session on one socket, for pipelined requests. Not thread-safe.

    The session authenticates with the spec's ``auth``. A server that stays silent for two thirds of the
    session timeout while requests wait (frozen, partitioned) counts as lost, as a closed socket does:
    both raise :class:`ZooKeeperUnavailable`; the requests that were not answered are then in doubt
    (:meth:`take_unanswered`).
    """

    def __init__(self, hosts: str | ZkSpec, prefer_leader: bool = False) -> None:
        self.spec = ZkSpec.of(hosts)
        self.full_path = self.spec.full_path  # a path below the chroot -> the server's path (bound once: hot)
        self.prefer_leader = prefer_leader
        self.timeout = self.spec.session_timeout
        self._sock: socket.socket | None = None
        self._xid = 0
        self._outbox = bytearray()
        self._inbox = bytearray()
        self._pos = 0
        self._pending: deque[tuple[int, Any, Any]] = deque()
        self._last_send = time.monotonic()
        self._quiet_since = self._last_send  # last time the server was heard, or requests started waiting
        self.address = ""
        self.session_timeout = self.timeout
        self.first_zxid: int | None = None
        self.last_zxid = 0
        self._connect()

    # ---------------------------------------------------------------- session
    def _connect(self) -> None:
        """A session on the first member that grants one; fails with the reason of each member.

        ``members_up`` in the error's details counts the members that accepted a TCP connection: 0 means
        nothing listens at all (ZooKeeper is down), which callers report at once instead of waiting.
        """
        errors = []
        up = 0
        addresses = list(self.spec.addresses)
        order = leader_first(addresses) if self.prefer_leader else random.sample(addresses, len(addresses))
        for host, port in order:
            try:
                sock = socket.create_connection((host, port), timeout=self.spec.connect_timeout)
            except OSError as exc:
                errors.append(f"{address_text(host, port)}: {exc.strerror or exc}")
                continue
            up += 1
            try:
                self._open_session(sock, host, port)
                return
            except (OSError, ZooKeeperUnavailable) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc.__cause__ or exc)
                errors.append(f"{address_text(host, port)}: no session ({reason})")
                self._close_socket()
            except BaseException:  # credentials refused: no point in another member
                self._close_socket()
                raise
        raise ZooKeeperUnavailable(f"cannot connect to ZooKeeper at {self.spec} ({'; '.join(errors)})", members_up=up)

    def _open_session(self, sock: socket.socket, host: str, port: int) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        sock.sendall(_frame(Connect(0, 0, int(self.timeout * 1000), 0, b"\x00" * 16, False).serialize()))
        response, _ = Connect.deserialize(self._read_frame(), 0)
        if response.time_out <= 0:
            raise OSError("session refused")
        self.session_timeout = response.time_out / 1000
        for scheme, credential in self.spec.auth:
            self._authenticate(scheme, credential)
        # From now on a silent server is noticed by the timeouts of receive().
        sock.settimeout(self.session_timeout / 3)
        self.address = address_text(host, port)

    def _authenticate(self, scheme: str, credential: str) -> None:
        """One auth packet, answered before anything else is sent (as kazoo does at connect)."""
        self._outbox += _frame(int_int_struct.pack(AUTH_XID, Auth.type) + Auth(0, scheme, credential).serialize())
        body = self._read_frame()
        xid, _, err = reply_header_struct.unpack_from(body, 0)
        if xid != AUTH_XID or err:
            raise DcosBackupError(f"ZooKeeper refused the {scheme} credentials ({EXCEPTIONS[err].__name__})")

    def close(self) -> None:
        if self._sock is None:
            return
        try:
            self._outbox += _frame(int_int_struct.pack(self._next_xid(), Close.type))
            self.flush()
        except (OSError, ZooKeeperUnavailable):
            pass
        self._close_socket()

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def take_unanswered(self) -> list[tuple[Any, Any]]:
        """The ``(request, tag)`` of every request sent or queued but not answered, in order; forgotten here.

        After the connection is lost these are in doubt: the ensemble may have applied some of them.
        """
        unanswered = [(request, tag) for _, request, tag in self._pending]
        self._pending.clear()
        self._outbox.clear()
        return unanswered

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---------------------------------------------------------------- requests
    def _next_xid(self) -> int:
        self._xid = (self._xid + 1) & 0x7FFFFFFF or 1
        return self._xid

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def queue(self, request: Any, tag: Any = None) -> None:
        """Queue a request (paths already chrooted by the caller); it is sent at the next flush."""
        xid = self._next_xid()
        self._outbox += _frame(int_int_struct.pack(xid, request.type) + request.serialize())
        if not self._pending:
            self._quiet_since = time.monotonic()  # the server's silence counts from now
        self._pending.append((xid, request, tag))
        if len(self._outbox) >= 1 << 16:
            self.flush()

    def flush(self) -> None:
        """Send everything queued, in one write."""
        if not self._outbox or self._sock is None:
            return
        try:
            self._sock.sendall(self._outbox)
        except OSError as exc:
            self._lost(exc)
        self._outbox.clear()
        self._last_send = time.monotonic()

    def ping_if_idle(self) -> None:
        if time.monotonic() - self._last_send > self.session_timeout / 3:
            self._outbox += _frame(int_int_struct.pack(PING_XID, Ping.type))
            self.flush()

    def replies(self) -> Iterator[Reply]:
        """Yield replies as they arrive, until nothing is in flight (queued requests go out as needed)."""
        while self._pending:
            yield self.next_reply()

    def reply_ready(self) -> bool:
        """Whether a whole reply is already buffered (so reading it will not wait for the server)."""
        available = len(self._inbox) - self._pos
        return available >= 4 and available >= 4 + _LEN.unpack_from(self._inbox, self._pos)[0]

    def next_reply(self) -> Reply:
        """Send what is queued and return the next reply (something must be in flight)."""
        if not self._pending:
            raise RuntimeError("no request in flight")
        while True:
            body = self._read_frame()
            xid, zxid, err = reply_header_struct.unpack_from(body, 0)
            if xid != PING_XID and xid != WATCH_XID:
                break
        expected = self._pending[0][0]
        if xid != expected:  # checked before the request leaves the queue: it stays in doubt
            self._lost(OSError(f"reply {xid} out of order, expected {expected}"))
        _, request, tag = self._pending.popleft()
        if self.first_zxid is None:
            self.first_zxid = zxid
        if zxid > self.last_zxid:
            self.last_zxid = zxid
        return Reply(xid, zxid, err, body, request, tag)

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    def receive(self) -> None:
        """One ``recv`` into the buffer (blocks until the server sends something, pinging meanwhile)."""
        # Drop consumed bytes only now, before growing the buffer: deleting from the front is a memmove.
        if self._pos:
            del self._inbox[: self._pos]
            self._pos = 0
        while True:
            try:
                chunk = self._sock.recv(_RECV) if self._sock is not None else b""
                break
            except TimeoutError as exc:  # a third of the session timeout without a byte
                if not self.address:
                    self._lost(exc)  # no session yet: a member that does not answer the handshake
                self.check_silence()
                self.ping_if_idle()
            except OSError as exc:
                self._lost(exc)
        if not chunk:
            self._lost(OSError("connection closed by the server"))
        self._quiet_since = time.monotonic()
        self._inbox += chunk

    def check_silence(self) -> None:
        """Raise ZooKeeperUnavailable if requests have waited for two thirds of the session timeout
        without the server sending anything (pings included): it is frozen or cut off."""
        if self._pending and time.monotonic() - self._quiet_since > self.session_timeout * 2 / 3:
            self._lost(TimeoutError(f"no reply for {self.session_timeout * 2 / 3:.0f}s"))

    def _read_frame(self) -> bytes:
        while True:
            available = len(self._inbox) - self._pos
            if available >= 4:
                (length,) = _LEN.unpack_from(self._inbox, self._pos)
                if length < 0 or length > _MAX_FRAME:
                    self._lost(OSError(f"bad frame length {length}"))
                if available >= 4 + length:
                    start = self._pos + 4
                    self._pos = start + length
                    return bytes(memoryview(self._inbox)[start : self._pos])
            # About to wait for the server: send what was queued meanwhile, in one write.
            self.flush()
            self.ping_if_idle()
            self.receive()

    def _lost(self, exc: BaseException) -> None:
        self._close_socket()
        raise ZooKeeperUnavailable(
            f"lost the ZooKeeper connection to {self.address or self.spec}: {getattr(exc, 'strerror', None) or exc}"
        ) from exc


def _frame(payload: bytes | bytearray) -> bytes:
    length: bytes = int_struct.pack(len(payload))
    return length + bytes(payload)
