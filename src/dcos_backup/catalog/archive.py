"""The component archive format: one streamed, compressed, checksummed file per component.

Layout (see docs/format.md)::

    b"DCOSBKP\\n"                     8-byte magic
    zstd frame (with content checksum) of a msgpack stream:
        {"format": 1, "component": str, "root": str}            header
        [path, data, [[perms, scheme, id], ...], stat]           one array per znode, pre-order
        {"end": true, "nodes": int, "data_bytes": int}           trailer

The sha256 of the whole file *as stored* is kept in the record and checked before a restore reads a
byte: the writer and the reader take :class:`~dcos_backup.fsutil.Sink` and :class:`~dcos_backup.fsutil.Source`
streams, so when the storage encrypts (:mod:`dcos_backup.storage.crypto`) the sha256 is the ciphertext's.
Reading and writing are streaming: memory stays bounded whatever the tree size.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

import msgpack
import zstandard
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL, Id

from dcos_backup.errors import IntegrityError
from dcos_backup.fsutil import HashingReader, HashingWriter, Readable, Sink, Source
from dcos_backup.logical import ZNode
from dcos_backup.logical.records import is_under

MAGIC = b"DCOSBKP\n"
FORMAT = 1
# numChildren came later: with cversion it gives the parent's count of child creates, which names its next
# sequential child (a restore raises it). Archives without it are read with numChildren -1 (unknown).
STAT_FIELDS = ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion", "pzxid", "numChildren")
_OLD_STAT_LEN = 8
# kazoo's ZnodeStat is a namedtuple: its STAT_FIELDS by position in one C call, not eight getattr calls.
_stat_fields = operator.itemgetter(*(ZnodeStat._fields.index(f) for f in STAT_FIELDS))
_READ_CHUNK = 1 << 16
_WRITE_CHUNK = 1 << 20
COMPRESS_THREADS = 2


@dataclass
class ArchiveSummary:
    nodes: int
    data_bytes: int
    bytes: int
    sha256: str
    key_id: str | None = None  # the encryption key's id, when the stored bytes are encrypted


class ArchiveWriter:
    """Write znodes to an archive; use as a context manager, then read :attr:`summary`.

    ``raw`` is a plain file, or a :class:`Sink` of the storage (which may encrypt): the summary's size and
    sha256 are those of the bytes the sink stored."""

    def __init__(self, raw: BinaryIO | Sink, component: str, root: str, level: int = 3) -> None:
        self._out: Sink = raw if isinstance(raw, Sink) else HashingWriter(raw)
        self._out.write(MAGIC)
        # threads: libzstd compresses on its own worker threads while this one keeps reading ZooKeeper
        # (measured: the backup of 100k znodes spent a third of its time compressing inline).
        params = zstandard.ZstdCompressor(level=level, write_checksum=True, threads=COMPRESS_THREADS)
        self._zstd = params.stream_writer(cast(BinaryIO, self._out), closefd=False)  # it only writes
        self._packer = msgpack.Packer(use_bin_type=True, autoreset=False)
        self._acls: dict[tuple[ACL, ...], list[list[object]]] = {}  # a tree has few distinct ACLs
        self.nodes = 0
        self.data_bytes = 0
        self.summary: ArchiveSummary | None = None
        self._packer.pack({"format": FORMAT, "component": component, "root": root})

    def add(self, node: ZNode) -> None:
        # On the backup's critical path, once per znode: these shortcuts took it from 1.5 to 1.1 us (measured).
        stat = _stat_fields(node.stat) if node.stat is not None else None
        acl = self._acls.get(node.acl)
        if acl is None:
            acl = self._acls[node.acl] = [[a.perms, a.id.scheme, a.id.id] for a in node.acl]
        self._packer.pack([node.path, node.data, acl, stat])
        self.nodes += 1
        self.data_bytes += len(node.data)
        if self._packer.getbuffer().nbytes >= _WRITE_CHUNK:
            self._drain()

    def _drain(self) -> None:
        # One compressor call per megabyte, not per node.
        self._zstd.write(self._packer.getbuffer())
        self._packer.reset()

    def close(self) -> ArchiveSummary:
        trailer = {"end": True, "nodes": self.nodes, "data_bytes": self.data_bytes}
        self._packer.pack(trailer)
        self._drain()
        self._zstd.close()
        stored = self._out.finish()
        self.summary = ArchiveSummary(self.nodes, self.data_bytes, stored.size, stored.sha256, stored.key_id)
        return self.summary

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()


def file_sha256(raw: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := raw.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def verify_archive(raw: BinaryIO | Source, expected_sha256: str | None, root: str | None = None) -> ArchiveSummary:
    """Check an archive in one pass: its sha256 against the catalog's, its whole structure and, given
    ``root``, that every node lies under it (the first one that does not is named).

    The sha256 catches every flipped byte, including the few that zstd's own checksum cannot see
    (bits of a frame header that do not change the decoded content). ``raw`` is a plain file or a
    storage's :class:`Source` (which may decrypt); the sha256 is of the bytes at rest either way.
    """
    reader = raw if isinstance(raw, Source) else HashingReader(raw)
    nodes = data_bytes = 0
    structure_error: IntegrityError | None = None
    try:
        for node in read_archive(reader):
            if root is not None and not _inside(node.path, root):
                raise IntegrityError(f"archive holds {node.path!r:.200}, outside its component's root {root}")
            nodes += 1
            data_bytes += len(node.data)
    except IntegrityError as exc:
        structure_error = exc
    stored = reader.drain()
    if expected_sha256 is not None and stored.sha256 != expected_sha256:
        raise IntegrityError(f"archive fails its checksum (expected sha256 {expected_sha256}, found {stored.sha256})")
    if structure_error is not None:
        raise structure_error
    return ArchiveSummary(nodes, data_bytes, stored.size, stored.sha256, stored.key_id)


def _inside(path: str, root: str) -> bool:
    """``path`` is a plain absolute path (no empty, ``.`` or ``..`` part) in the subtree at ``root``."""
    plain = path == "/" or all(part not in ("", ".", "..") for part in path.split("/")[1:])
    return plain and is_under(path, root)


def read_archive(raw: Readable) -> Iterator[ZNode]:
    """Yield the znodes of an archive in order; IntegrityError on any damage or truncation.

    Nodes stream out as they are decoded, so damage near the end shows only after earlier nodes were
    yielded: a caller that must not act on a damaged archive checks the sha256 first (the service does).
    """
    if raw.read(len(MAGIC)) != MAGIC:
        raise IntegrityError("not a dcos-backup archive (bad magic)")
    # decompressobj, not stream_reader: it tells whether the frame (and its checksum) really ended.
    zstd = zstandard.ZstdDecompressor().decompressobj()
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=64 << 20)
    header: dict[str, object] | None = None
    nodes = data_bytes = 0
    ended = False
    try:
        while chunk := raw.read(_READ_CHUNK):
            if zstd.eof:
                raise IntegrityError("data after the end of the archive")
            unpacker.feed(zstd.decompress(chunk))
            for item in unpacker:
                if ended:
                    raise IntegrityError("data after the archive trailer")
                if header is None:
                    if not isinstance(item, dict) or item.get("format") != FORMAT:
                        raise IntegrityError(f"unsupported archive header {item!r:.80}")
                    header = item
                elif isinstance(item, dict):
                    if not item.get("end") or item.get("nodes") != nodes or item.get("data_bytes") != data_bytes:
                        raise IntegrityError("archive trailer does not match its content")
                    ended = True
                else:
                    yield _node_from(item)
                    nodes += 1
                    data_bytes += len(item[1])
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"archive is corrupt ({exc})") from exc
    except (ValueError, TypeError, IndexError, msgpack.UnpackException) as exc:
        raise IntegrityError(f"archive is corrupt ({type(exc).__name__}: {exc})") from exc
    if not ended or not zstd.eof or zstd.unused_data:
        raise IntegrityError("archive is truncated or has trailing data")


def _node_from(item: list[Any]) -> ZNode:
    path, data, acl, stat = item
    if not isinstance(path, str) or not path.startswith("/") or not isinstance(data, bytes):
        raise IntegrityError(f"bad znode record {path!r:.80}")
    return ZNode(path, data, tuple(ACL(int(p), Id(str(s), str(i))) for p, s, i in acl), _stat_from(stat, len(data)))


def _stat_from(fields: list[Any] | None, data_length: int) -> ZnodeStat | None:
    """The recorded stat as kazoo's: ephemeralOwner 0 (archives hold persistent nodes), numChildren -1
    when the archive did not record it. (Field types are the sha256's to vouch for: checking each one
    cost a tenth of a restore's CPU.)"""
    if fields is None:
        return None
    if len(fields) == len(STAT_FIELDS):
        czxid, mzxid, ctime, mtime, version, cversion, aversion, pzxid, children = fields
    elif len(fields) == _OLD_STAT_LEN:
        (czxid, mzxid, ctime, mtime, version, cversion, aversion, pzxid), children = fields, -1
    else:
        raise IntegrityError(f"bad stat record {fields!r:.80}")
    return ZnodeStat(czxid, mzxid, ctime, mtime, version, cversion, aversion, 0, data_length, children, pzxid)
