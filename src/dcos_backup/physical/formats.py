"""ZooKeeper's on-disk formats (3.5 to 3.8), read in pure Python: snapshots and transaction logs.

Both are jute-serialised (big-endian ints and longs, length-prefixed strings/buffers/vectors):

- ``snapshot.<zxid>``: file header ``ZKSN``, sessions, the ACL cache, every node as (path, data, ACL id,
  persisted stat) in pre-order ending with the path ``/``, an Adler-32 of everything before it, and since
  3.6 a (zxid, digest version, tree digest) record sealed by a second Adler-32.
- ``log.<zxid>``: file header ``ZKLG``, then records (Adler-32, length, txn bytes, ``B``), then zero padding
  up to the preallocated size. A zero length marks the end.

The readers stream: memory is one record (or one node) at a time. Every problem is an
:class:`~dcos_backup.errors.IntegrityError` that names the file and the byte offset.
"""

from __future__ import annotations

import builtins  # the reader's int() and bool() methods shadow the types in its class body
import gzip
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from dcos_backup.errors import IntegrityError

SNAP_MAGIC = 0x5A4B534E  # "ZKSN"
LOG_MAGIC = 0x5A4B4C47  # "ZKLG"
FILE_HEADER = struct.Struct(">iiq")
LOG_RECORD_HEAD = struct.Struct(">qi")
END_OF_RECORD = 0x42  # "B"
# Far above jute.maxbuffer (1 MiB by default); a longer length can only be corruption.
MAX_RECORD = 64 * 1024 * 1024
_CHUNK = 1 << 20

_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_STAT = struct.Struct(">qqqqiiiqq")  # StatPersisted, in jute field order
_DIGEST_FIELDS = struct.Struct(">qqqqqiiiq")  # DigestCalculator's field order
_TXN_HEADER = struct.Struct(">qiqqi")
_INT_INT = struct.Struct(">ii")
_BOOL_INT = struct.Struct(">Bi")

_FILE_NAME = re.compile(r"^(snapshot|log)\.([0-9a-fA-F]+)(\.gz|\.snappy)?$")


class OpCode:
    """The transaction types that appear in logs (ZooDefs.OpCode)."""

    create = 1
    delete = 2
    setData = 5
    setACL = 7
    check = 13
    multi = 14
    create2 = 15
    reconfig = 16
    createContainer = 19
    deleteContainer = 20
    createTTL = 21
    createSession = -10
    closeSession = -11
    error = -1


class Stat(NamedTuple):
    """ZooKeeper's StatPersisted."""

    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeral_owner: int
    pzxid: int

    def pack(self) -> bytes:
        return _STAT.pack(*self)

    @classmethod
    def unpack(cls, raw: bytes) -> Stat:
        return cls._make(_STAT.unpack(raw))


ACL = tuple[int, str, str]  # (perms, scheme, id)


class Node(NamedTuple):
    path: str  # "" is the root, as in snapshots
    data: bytes | None
    acl: int  # key into the snapshot's ACL map (-1: open)
    stat: Stat


class Create(NamedTuple):
    path: str
    data: bytes | None
    acl: list[ACL]
    ephemeral: bool
    parent_cversion: int
    ttl: int | None = None


class Delete(NamedTuple):
    path: str


class SetData(NamedTuple):
    path: str
    data: bytes | None
    version: int


class SetACL(NamedTuple):
    path: str
    acl: list[ACL]
    version: int


class Check(NamedTuple):
    path: str
    version: int


class CreateSession(NamedTuple):
    timeout: int


class CloseSession(NamedTuple):
    paths: list[str] | None


class Error(NamedTuple):
    err: int


class Multi(NamedTuple):
    ops: list[tuple[int, object]]  # (type, record)


class Txn(NamedTuple):
    client_id: int
    cxid: int
    zxid: int
    time: int
    type: int
    record: object
    digest: tuple[int, int] | None  # (digest version, tree digest after this txn)


class LogRecord(NamedTuple):
    offset: int  # where the record starts in the file
    end: int  # first byte after it
    txn: Txn


def zxid_of_name(name: str) -> int | None:
    """The zxid in a ``snapshot.<hex>`` / ``log.<hex>`` file name, or None for other files."""
    match = _FILE_NAME.match(name)
    return int(match.group(2), 16) if match else None


def kind_of_name(name: str) -> str | None:
    match = _FILE_NAME.match(name)
    return match.group(1) if match else None


def zxid_hex(zxid: int) -> str:
    return f"0x{zxid:x}"


def epoch_of(zxid: int) -> int:
    return zxid >> 32


def follows(previous: int, zxid: int) -> bool:
    """Whether ``zxid`` is the transaction right after ``previous`` (the next counter, or a new epoch's first)."""
    return zxid == previous + 1 or (epoch_of(zxid) > epoch_of(previous) and zxid & 0xFFFFFFFF == 1)


class _Jute:
    """Reads jute fields, from bytes in memory (one log record: ``_Jute(raw)``) or from a file through a
    buffer refilled a chunk at a time (``_Jute(source=f, name=...)``) that keeps the Adler-32 of every byte
    consumed (the snapshot seals).

    ``raw[pos:]`` is what is left to read in memory; the hot paths (a snapshot's nodes, a record's creates)
    read it in place. Reading past the end raises EOFError for bytes in memory (the caller knows which record
    it was) and IntegrityError naming the file and the offset for a file.
    """

    __slots__ = ("_adler", "_base", "_hashed", "_source", "name", "pos", "raw")

    def __init__(self, raw: bytes = b"", source: BinaryIO | None = None, name: str = "") -> None:
        self.raw = raw
        self.pos = 0
        self._source = source
        self._base = 0  # file offset of raw[0]
        if source is not None:  # a file's state only: a log replay makes a reader per record, kept cheap
            self.name = name
            self._hashed = 0  # bytes of raw already folded into _adler
            self._adler = 1

    @property
    def offset(self) -> int:
        return self._base + self.pos

    def remaining(self) -> int:
        """Bytes left in memory (all of a record; what the buffer holds of a file)."""
        return len(self.raw) - self.pos

    def _take(self, n: int) -> int:
        """Consume ``n`` bytes; where they start in ``raw``."""
        start = self.pos
        if n < 0 or start + n > len(self.raw):  # one test on the hot path
            start = self._refill(n)
        self.pos = start + n
        return start

    def _refill(self, n: int) -> int:
        if n < 0:
            raise self._error(f"negative length {n} at offset {self.offset}")
        if self._source is None:
            raise EOFError
        self._adler = zlib.adler32(memoryview(self.raw)[self._hashed : self.pos], self._adler)
        rest = self.raw[self.pos :]
        self._base += self.pos
        self.raw = rest + self._source.read(max(n - len(rest), _CHUNK))
        self.pos = self._hashed = 0
        if len(self.raw) < n:
            raise IntegrityError(f"{self.name}: truncated at offset {self._base + len(self.raw)}")
        return 0

    def _error(self, message: str) -> Exception:
        return EOFError() if self._source is None else IntegrityError(f"{self.name}: {message}")

    def seek(self, offset: int) -> None:
        """Continue reading at ``offset`` of the file (log records only: the running checksum restarts)."""
        assert self._source is not None
        self._source.seek(offset)
        self.raw, self.pos, self._hashed, self._adler, self._base = b"", 0, 0, 1, offset

    def buffered(self) -> bytes:
        """What is left in the buffer (after a failed read: every byte up to the end of the file)."""
        return self.raw[self.pos :]

    def checksum(self) -> int:
        return zlib.adler32(memoryview(self.raw)[self._hashed : self.pos], self._adler)

    def take(self, n: int) -> bytes:
        start = self._take(n)
        return self.raw[start : start + n]

    # _take before self.raw is read: a refill replaces the buffer.
    def int(self) -> int:
        start = self._take(4)
        value: builtins.int = _INT.unpack_from(self.raw, start)[0]
        return value

    def long(self) -> builtins.int:
        start = self._take(8)
        value: builtins.int = _LONG.unpack_from(self.raw, start)[0]
        return value

    def bool(self) -> bool:
        start = self._take(1)
        return self.raw[start] != 0

    def buffer(self, limit: builtins.int = MAX_RECORD) -> bytes | None:
        n = self.int()
        if n < 0:
            return None
        if n > limit:
            raise self._error(f"implausible length {n} at offset {self.offset - 4}")
        start = self._take(n)
        return self.raw[start : start + n]

    def string(self) -> str:
        """A string; a null one reads as ``""``."""
        raw = self.buffer()
        try:
            return "" if raw is None else raw.decode("utf-8")
        except UnicodeDecodeError as e:
            if self._source is None:
                raise  # the record's caller names the record
            raise IntegrityError(f"{self.name}: bad string at offset {self.offset}") from e

    def acls(self) -> list[ACL]:
        count = self.int()
        return [(self.int(), self.string(), self.string()) for _ in range(max(count, 0))]

    def at_end(self) -> builtins.bool:
        if self.pos < len(self.raw):
            return False
        more = self._source.read(_CHUNK) if self._source is not None else b""
        self._adler = zlib.adler32(memoryview(self.raw)[self._hashed : self.pos], self._adler)
        self._base += self.pos
        self.raw, self.pos, self._hashed = more, 0, 0
        return not more


def _read_create(c: _Jute, kind: int) -> Create:
    if kind == OpCode.create or kind == OpCode.create2:
        return _read_plain_create(c)
    path, data, acl = c.string(), c.buffer(), c.acls()
    if kind == OpCode.createTTL:
        parent_cversion = c.int()
        return Create(path, data, acl, False, parent_cversion, ttl=c.long())
    if kind == OpCode.createContainer:
        return Create(path, data, acl, False, c.int())
    return Create(path, data, acl, c.bool(), c.int())


def _read_plain_create(c: _Jute) -> Create:
    """The common create record, without a call per field: a replay reads hundreds of thousands of
    these (measured: the generic path was a third of a replay's time). ``pos`` is the next field."""
    raw, pos = c.raw, c.pos
    try:
        n = _INT.unpack_from(raw, pos)[0]
        path = raw[pos + 4 : pos + 4 + n].decode("utf-8") if n > 0 else ""
        pos += 4 + max(n, 0)
        n = _INT.unpack_from(raw, pos)[0]
        data = raw[pos + 4 : pos + 4 + n] if n >= 0 else None
        pos += 4 + max(n, 0)
        count = _INT.unpack_from(raw, pos)[0]
        pos += 4
        acl = []
        for _ in range(count):
            perms, n = _INT_INT.unpack_from(raw, pos)
            scheme = raw[pos + 8 : pos + 8 + n].decode("utf-8") if n > 0 else ""
            pos += 8 + max(n, 0)
            n = _INT.unpack_from(raw, pos)[0]
            ident = raw[pos + 4 : pos + 4 + n].decode("utf-8") if n > 0 else ""
            pos += 4 + max(n, 0)
            acl.append((perms, scheme, ident))
        ephemeral, parent_cversion = _BOOL_INT.unpack_from(raw, pos)
    except struct.error as exc:
        raise EOFError from exc
    c.pos = pos + _BOOL_INT.size  # positions only grow: within the record here, every slice was whole
    return Create(path, data, acl, ephemeral != 0, parent_cversion)


def _read_record(c: _Jute, kind: int) -> object:
    if kind in (OpCode.create, OpCode.create2, OpCode.createTTL, OpCode.createContainer):
        return _read_create(c, kind)
    if kind in (OpCode.delete, OpCode.deleteContainer):
        return Delete(c.string())
    if kind in (OpCode.setData, OpCode.reconfig):
        return SetData(c.string(), c.buffer(), c.int())
    if kind == OpCode.setACL:
        return SetACL(c.string(), c.acls(), c.int())
    if kind == OpCode.check:
        return Check(c.string(), c.int())
    if kind == OpCode.createSession:
        return CreateSession(c.int())
    if kind == OpCode.error:
        return Error(c.int())
    if kind == OpCode.multi:
        ops = []
        for _ in range(max(c.int(), 0)):
            sub_kind, length = _INT_INT.unpack_from(c.raw, c._take(8))  # in memory: no refill
            start = c._take(max(length, 0))
            sub = _Jute(c.raw)  # read in place (no copy per operation); it must end where its length says
            sub.pos = start
            ops.append((sub_kind, _read_record(sub, sub_kind) if length >= 0 else _read_record(_Jute(b""), sub_kind)))
            if length >= 0 and sub.pos > start + length:
                raise ValueError(f"operation {len(ops)} of a multi overruns its length")
        return Multi(ops)
    raise ValueError(f"unknown transaction type {kind}")


def parse_txn(raw: bytes) -> Txn:
    """One transaction (header, record, optional digest) from a log record's bytes, as FileTxnLog reads it."""
    c = _Jute(raw)
    client_id, cxid, zxid, time, kind = _TXN_HEADER.unpack_from(raw, c._take(_TXN_HEADER.size))
    record: object
    if kind == OpCode.closeSession:
        # 3.6+ lists the ephemeral nodes to delete; older servers wrote no record at all.
        mark = c.pos
        try:
            count = c.int()
            record = CloseSession([c.string() for _ in range(max(count, 0))])
        except EOFError:
            c.pos = mark
            record = CloseSession(None)
    else:
        record = _read_record(c, kind)
    digest = None
    if c.remaining() >= 12:
        digest = (c.int(), c.long())
    return Txn(client_id, cxid, zxid, time, kind, record, digest)


def _check_header(stream: _Jute, magic: int) -> int:
    raw = stream.take(FILE_HEADER.size)
    got, version, dbid = FILE_HEADER.unpack(raw)
    dbid_: int = dbid
    if got != magic:
        raise IntegrityError(f"{stream.name}: not a ZooKeeper {'snapshot' if magic == SNAP_MAGIC else 'log'} file")
    if version != 2:
        raise IntegrityError(f"{stream.name}: unsupported format version {version}")
    return dbid_


def open_data_file(path: Path) -> BinaryIO:
    """Open a snapshot or log; ``.gz`` snapshots (snapshot.compression.method=gz) are decompressed."""
    if path.name.endswith(".snappy"):
        raise IntegrityError(f"{path.name}: snappy-compressed snapshots are not supported")
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb", buffering=0)


@dataclass
class SnapshotDigest:
    zxid: int
    version: int
    digest: int


class SnapshotReader:
    """Streams one snapshot: ``sessions`` and ``acls`` are read at once, ``nodes()`` yields the tree,
    ``finish()`` checks the seal(s) and returns the tree digest recorded by 3.6+ servers."""

    def __init__(self, source: BinaryIO, name: str) -> None:
        self.name = name
        self._s = _Jute(source=source, name=name)
        self.dbid = _check_header(self._s, SNAP_MAGIC)
        self.sessions = self._read_sessions()
        self.acls = self._read_acls()
        self._nodes_done = False

    def _read_sessions(self) -> dict[int, int]:
        s = self._s
        sessions = {}
        for _ in range(self._count("sessions")):
            session = s.long()
            sessions[session] = s.int()
        return sessions

    def _count(self, what: str) -> int:
        count = self._s.int()
        if count < 0 or count > 100_000_000:
            raise IntegrityError(f"{self.name}: implausible {what} count {count} at offset {self._s.offset - 4}")
        return count

    def _read_acls(self) -> dict[int, list[ACL]]:
        s = self._s
        acls: dict[int, list[ACL]] = {}
        for _ in range(self._count("ACL map")):
            key = s.long()
            acls[key] = s.acls()
        return acls

    def nodes(self) -> Iterator[Node]:
        s = self._s
        stat_size = _STAT.size
        while True:
            path = s.string()
            if path == "/":
                self._nodes_done = True
                return
            data = s.buffer()
            acl = s.long()
            stat = Stat._make(_STAT.unpack(s.take(stat_size)))
            if path and not path.startswith("/"):
                raise IntegrityError(f"{self.name}: bad node path {path!r} at offset {s.offset}")
            yield Node(path, data, acl, stat)

    def _seal(self) -> None:
        expected = self._s.checksum()
        stored = self._s.long()
        end = self._s.string()
        if stored != expected or end != "/":
            raise IntegrityError(f"{self.name}: checksum mismatch (the snapshot is corrupt)")

    def finish(self) -> SnapshotDigest | None:
        if not self._nodes_done:
            for _ in self.nodes():
                pass
        self._seal()
        if self._s.at_end():
            return None  # written by a server without digests
        zxid, version = self._s.long(), self._s.int()
        digest = int(self._s.string() or "0", 16) if version < 2 else self._s.long()
        self._seal()
        if not self._s.at_end():
            raise IntegrityError(f"{self.name}: unexpected bytes after the end of the snapshot")
        return SnapshotDigest(zxid, version, digest) if zxid > 0 else None


class SnapshotWriter:
    """Writes a snapshot in ZooKeeper's own format (FileSnap.serialize, 3.6+), the mirror of
    :class:`SnapshotReader`: header, sessions, the ACL map, nodes (each after its parent, in pre-order as
    the reader requires), the seal, then the (zxid, digest version, tree digest) record and its seal.
    The only snapshot writer of the project (compaction, :mod:`.continuous.compact`, uses it)."""

    def __init__(self, out: BinaryIO, dbid: int, sessions: dict[int, int], acls: dict[int, list[ACL]]) -> None:
        self._out = out
        self._adler = 1
        self._write(FILE_HEADER.pack(SNAP_MAGIC, 2, dbid))
        self._write(_INT.pack(len(sessions)) + b"".join(_LONG.pack(s) + _INT.pack(t) for s, t in sessions.items()))
        parts = [_INT.pack(len(acls))]
        for key, entries in acls.items():
            parts.append(_LONG.pack(key) + _INT.pack(len(entries)))
            parts += [_INT.pack(perms) + _jute_string(scheme) + _jute_string(ident) for perms, scheme, ident in entries]
        self._write(b"".join(parts))

    def _write(self, raw: bytes) -> None:
        self._adler = zlib.adler32(raw, self._adler)
        self._out.write(raw)

    def node(self, path: str, data: bytes | None, acl: int, stat: Stat) -> None:
        """One node ("" is the root); its parent must have been written before it."""
        self._write(_jute_string(path) + _jute_buffer(data) + _LONG.pack(acl) + _STAT.pack(*stat))

    def _seal(self) -> None:
        self._write(_LONG.pack(self._adler) + _jute_string("/"))

    def finish(self, zxid: int, digest: int) -> None:
        """End the tree and record that its digest at ``zxid`` is ``digest`` (as a 3.6+ server does)."""
        self._write(_jute_string("/"))
        self._seal()
        self._write(_LONG.pack(zxid) + _INT.pack(DIGEST_VERSION) + _LONG.pack(_signed(digest)))
        self._seal()


def _jute_buffer(raw: bytes | None) -> bytes:
    return _INT.pack(-1) if raw is None else _INT.pack(len(raw)) + raw


def _jute_string(text: str) -> bytes:
    return _jute_buffer(text.encode())


def _signed(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def is_sealed_snapshot(path: Path) -> bool:
    """ZooKeeper's own cheap test of a complete snapshot: it ends with the string ``/``."""
    if path.name.endswith((".gz", ".snappy")):
        return path.stat().st_size > 0
    with open(path, "rb") as f:
        f.seek(0, 2)
        if f.tell() < FILE_HEADER.size + 5:
            return False
        f.seek(-5, 2)
        return f.read(5) == b"\x00\x00\x00\x01/"


_SEAL_TAIL = b"\x00\x00\x00\x01/"  # the string "/" that ends each sealed part of a snapshot
_DIGEST_TAIL = struct.Struct(">5sqiq8s5s")  # seal end, zxid, digest version, digest, checksum, seal end


def snapshot_digest_zxid(path: Path) -> int | None:
    """The zxid of the tree digest a 3.6+ snapshot ends with: the last transaction applied while it was
    written, so the first point from which snapshot + logs are consistent. None if it has no such record.

    Read from the file's last bytes only; the seals themselves are checked when the snapshot is loaded.
    """
    if path.name.endswith((".gz", ".snappy")):
        return None
    with open(path, "rb") as f:
        f.seek(0, 2)
        if f.tell() < FILE_HEADER.size + _DIGEST_TAIL.size:
            return None
        f.seek(-_DIGEST_TAIL.size, 2)
        first_end, zxid, version, _, _, last_end = _DIGEST_TAIL.unpack(f.read(_DIGEST_TAIL.size))
    if first_end != _SEAL_TAIL or last_end != _SEAL_TAIL or version != DIGEST_VERSION:
        return None
    last_zxid: int = zxid
    return last_zxid


@dataclass
class LogEnd:
    """How a log file ended: after ``valid_end`` bytes, for ``reason`` (padding, eof or truncated)."""

    valid_end: int
    reason: str
    last_zxid: int | None


class LogReader:
    """Streams one transaction log, checking each record's Adler-32.

    ``strict`` (verification) also refuses a partial last record and non-zero bytes in the padding;
    without it (copying a log that is being written) reading stops at the last complete record, as
    ZooKeeper itself does. Either way ``end`` says where the good records stop.
    """

    def __init__(self, source: BinaryIO, name: str, strict: bool = True, start: int = 0) -> None:
        self.name = name
        self.strict = strict
        self._s = _Jute(source=source, name=name)
        self.end: LogEnd | None = None
        try:
            self.dbid = _check_header(self._s, LOG_MAGIC)
        except IntegrityError:
            if strict:
                raise
            self.dbid = 0
            self.end = LogEnd(0, "truncated", None)
            return
        if start > FILE_HEADER.size:
            self._s.seek(start)  # resume after a record read earlier (the archiver tailing a log)

    def records(self) -> Iterator[LogRecord]:
        if self.end is not None:
            return
        s = self._s
        last_zxid = None
        while True:
            start = s.offset
            head = self._try_take(LOG_RECORD_HEAD.size)
            if head is None:
                leftover = s.buffered()
                reason = "eof" if not leftover else "padding" if not leftover.strip(b"\x00") else "truncated"
                self.end = LogEnd(start, reason, last_zxid)
                self._fail_if_strict_truncated(start)
                return
            crc, length = LOG_RECORD_HEAD.unpack(head)
            if length == 0:
                self.end = LogEnd(start, "padding", last_zxid)
                if self.strict:
                    self._check_padding(start, crc)
                return
            if length < 0 or length > MAX_RECORD:
                self._corrupt(f"implausible record length {length} at offset {start}", start, last_zxid)
                return
            body = self._try_take(length + 1)
            if body is None:
                self.end = LogEnd(start, "truncated", last_zxid)
                self._fail_if_strict_truncated(start)
                return
            if body[-1] != END_OF_RECORD:
                self._corrupt(f"record at offset {start} has no end marker", start, last_zxid)
                return
            raw = body[:-1]
            if zlib.adler32(raw) != crc:  # Java stores the unsigned 32-bit value in a long
                self._corrupt(f"checksum mismatch in the record at offset {start}", start, last_zxid)
                return
            try:
                txn = parse_txn(raw)
            except (EOFError, ValueError, UnicodeDecodeError, struct.error) as e:
                raise IntegrityError(f"{self.name}: unreadable transaction at offset {start}: {e}") from e
            last_zxid = txn.zxid
            yield LogRecord(start, s.offset, txn)

    def _try_take(self, n: int) -> bytes | None:
        try:
            return self._s.take(n)
        except IntegrityError:
            return None

    def _corrupt(self, message: str, start: int, last_zxid: int | None) -> None:
        # A torn write at the tail of a live log can look like anything; only verification insists.
        self.end = LogEnd(start, "truncated", last_zxid)
        if self.strict:
            raise IntegrityError(f"{self.name}: {message}")

    def _fail_if_strict_truncated(self, start: int) -> None:
        if self.strict and self.end is not None and self.end.reason == "truncated":
            raise IntegrityError(f"{self.name}: truncated: the file ends inside the record at offset {start}")

    def _check_padding(self, start: int, crc: int) -> None:
        if crc != 0:
            raise IntegrityError(f"{self.name}: corrupt end-of-log marker at offset {start}")
        s = self._s
        while not s.at_end():
            chunk = s.take(s.remaining())
            if chunk.strip(b"\x00"):
                raise IntegrityError(f"{self.name}: non-zero bytes after the end of the log (offset > {start})")


_ZXID_TIME = struct.Struct(">12xqq")  # a transaction header's zxid and time (after the client id and cxid)


def scan_log(data: bytes, name: str) -> Iterator[tuple[int, int, int, int]]:
    """``(offset, end, zxid, time)`` of each record of a whole log held in memory, checking its framing and
    Adler-32 without parsing the transaction (what copying records needs; a replay parses them anyway).

    Strict: the data ends right after a record, or with an end marker and zeros; IntegrityError otherwise.
    """
    if len(data) < FILE_HEADER.size or FILE_HEADER.unpack_from(data)[0] != LOG_MAGIC:
        raise IntegrityError(f"{name}: not a ZooKeeper log file")
    pos, size = FILE_HEADER.size, len(data)
    while pos < size:
        if pos + LOG_RECORD_HEAD.size > size:
            raise IntegrityError(f"{name}: truncated: the file ends inside the record at offset {pos}")
        crc, length = LOG_RECORD_HEAD.unpack_from(data, pos)
        if length == 0 and crc == 0 and not data[pos:].strip(b"\x00"):
            return
        body_end = pos + LOG_RECORD_HEAD.size + length
        if length < _ZXID_TIME.size or length > MAX_RECORD or body_end >= size:
            raise IntegrityError(f"{name}: truncated or implausible record at offset {pos}")
        body = memoryview(data)[pos + LOG_RECORD_HEAD.size : body_end]
        if data[body_end] != END_OF_RECORD or zlib.adler32(body) != crc:
            raise IntegrityError(f"{name}: checksum mismatch in the record at offset {pos}")
        zxid, time = _ZXID_TIME.unpack_from(body)
        yield pos, body_end + 1, zxid, time
        pos = body_end + 1


def read_log(path: Path, strict: bool = True) -> tuple[list[LogRecord], LogEnd]:
    """All records of a (small) log file; for tests and tools. Stream with :class:`LogReader` otherwise."""
    with open_data_file(path) as f:
        reader = LogReader(f, path.name, strict)
        records = list(reader.records())
    assert reader.end is not None
    return records, reader.end


def digest_head(path: str, data: bytes | None) -> int:
    """The CRC-32 of a node's path and data: where its digest starts (see :func:`node_digest`)."""
    crc = zlib.crc32(path.encode())
    return zlib.crc32(data, crc) if data else crc


def digest_from_head(path: str, head: int, stat: Stat) -> int:
    """Finish a node digest from its :func:`digest_head` and its stat."""
    if path.startswith("/zookeeper/"):
        return 0
    return zlib.crc32(
        _DIGEST_FIELDS.pack(
            stat.czxid, stat.mzxid, stat.pzxid, stat.ctime, stat.mtime,
            stat.version, stat.cversion, stat.aversion, stat.ephemeral_owner,
        ),
        head,
    )  # fmt: skip


def node_digest(path: str, data: bytes | None, stat: Stat) -> int:
    """ZooKeeper's per-node digest (DigestCalculator, version 2): CRC-32 of path, data and stat fields.

    Nodes under ``/zookeeper/`` count 0, as in ZooKeeper. Split in two so that a stat-only change (a
    parent's cversion) needs no data: the tree can be checked without keeping node data.
    """
    return digest_from_head(path, digest_head(path, data), stat)


DIGEST_VERSION = 2
