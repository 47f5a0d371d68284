"""The archive's objects, byte for byte: log segments and snapshots, written and read back checked.

A segment is a ZooKeeper log file: the log header, then records exactly as the server wrote them
(Adler-32, length, transaction, ``B``), no padding. A snapshot is the server's file, gzip-compressed.
Reading either checks the MAC its key ends with (:mod:`.repository`: over the key and the sha256 of the
content, of a snapshot the uncompressed bytes) and, for a segment, every record and that its zxids and
times are those of its key; any mismatch is an
IntegrityError naming the object, so nothing damaged is ever restored from.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from zlib_ng import zlib_ng

from dcos_backup.errors import IntegrityError
from dcos_backup.fsutil import ChunkReader
from dcos_backup.physical import formats
from dcos_backup.physical.continuous.index import (
    RepoIndex,
    SegmentRef,
    SnapshotRef,
    key_name,
    segment_key,
    segment_name,
    snapshot_key,
    snapshot_name,
)
from dcos_backup.physical.continuous.repository import Repository
from dcos_backup.physical.formats import FILE_HEADER, LOG_MAGIC, Txn

_CHUNK = 1 << 20
SNAPSHOT_LEVEL = 1  # the archiver runs beside ZooKeeper: cheap compression (snapshots still shrink ~5x)


class Record(NamedTuple):
    """One transaction as it sits in a log: its raw bytes, zxid, time and (when parsed) the transaction."""

    raw: bytes
    zxid: int
    time: int
    end: int = 0  # the offset after it in the file it was read from
    txn: Txn | None = None


def log_header(dbid: int) -> bytes:
    return FILE_HEADER.pack(LOG_MAGIC, 2, dbid)


def read_log_records(source: BinaryIO, name: str, start: int = 0, strict: bool = False) -> tuple[list[Record], int]:
    """Complete, checksummed records of a log from byte ``start`` on, and the offset after the last one."""
    reader = formats.LogReader(source, name, strict=strict, start=start)
    found = list(reader.records())
    end = reader.end.valid_end if reader.end is not None else start
    if not found:
        return [], max(end, start)
    source.seek(found[0].offset)
    blob = source.read(found[-1].end - found[0].offset)
    base = found[0].offset
    return [Record(blob[r.offset - base : r.end - base], r.txn.zxid, r.txn.time, r.end, r.txn) for r in found], found[
        -1
    ].end


def put_segment(repo: Repository, prefix: str, dbid: int, records: list[Record]) -> SegmentRef:
    body = log_header(dbid) + b"".join(r.raw for r in records)
    first, last = records[0], records[-1]
    name = segment_name(prefix, first.zxid, last.zxid, first.time, last.time)
    mac = repo.object_mac(name, hashlib.sha256(body).hexdigest())
    key = segment_key(name, mac)
    repo.store.put(key, body)
    return SegmentRef(key, first.zxid, last.zxid, first.time, last.time, mac, len(body))


def read_segment(repo: Repository, ref: SegmentRef, parse: bool = True) -> list[Record]:
    """Every record of a segment, after checking it against its key."""
    return read_segment_bytes(repo, ref, repo.store.get_bytes(ref.key), parse)


def read_segment_bytes(repo: Repository, ref: SegmentRef, body: bytes, parse: bool = True) -> list[Record]:
    """The records of a segment's ``body``, checked against its key (MAC first, then zxids, times,
    checksums); with ``parse`` each transaction is parsed too (not needed to copy records)."""
    repo.check_object(ref.key, key_name(ref.key), ref.mac, hashlib.sha256(body).hexdigest())
    try:
        if parse:
            records, _ = read_log_records(io.BytesIO(body), ref.key, strict=True)
        else:
            records = [Record(body[a:b], zxid, time, b) for a, b, zxid, time in formats.scan_log(body, ref.key)]
    except IntegrityError as exc:
        raise IntegrityError(f"{exc}; not restoring from it") from exc
    if not records or (records[0].zxid, records[-1].zxid) != (ref.first, ref.last):
        raise IntegrityError(f"{ref.key}: its records do not span the zxids its name says")
    if (records[0].time, records[-1].time) != (ref.first_ms, ref.last_ms):
        raise IntegrityError(f"{ref.key}: its records do not carry the times its name says")
    return records


def _gzip_chunks(source: BinaryIO, digest: hashlib._Hash) -> Iterator[bytes]:
    compressor = zlib_ng.compressobj(SNAPSHOT_LEVEL, zlib_ng.DEFLATED, 31)  # wbits 31: a gzip stream
    while chunk := source.read(_CHUNK):
        digest.update(chunk)
        yield compressor.compress(chunk)
    yield compressor.flush()


def put_snapshot(repo: Repository, prefix: str, path: Path, zxid: int, compacted: bool = False) -> SnapshotRef:
    """Compress and store a sealed snapshot (``compacted``: one compaction wrote, named so under the MAC).
    The file is opened once: a purge meanwhile cannot cut it."""
    with open(path, "rb") as f:
        consistent = max(zxid, formats.snapshot_digest_zxid(path) or zxid)
        digest = hashlib.sha256()
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
        sha = digest.hexdigest()
        name = snapshot_name(prefix, zxid, consistent, compacted)
        mac = repo.object_mac(name, sha)
        key = snapshot_key(name, mac)
        f.seek(0)
        check = hashlib.sha256()
        result = repo.store.put(key, io.BufferedReader(ChunkReader(_gzip_chunks(f, check)), _CHUNK))
        if check.hexdigest() != sha:  # the file changed between the passes: not a sealed snapshot
            repo.store.delete(key)
            raise IntegrityError(f"{path.name} changed while it was archived")
    return SnapshotRef(key, zxid, consistent, mac, result.size, compacted)


def fetch_snapshot(
    repo: Repository, ref: SnapshotRef, target: Path, sink: Callable[[bytes], None] | None = None
) -> None:
    """Decompress a stored snapshot into ``target`` (and ``sink``), checking the MAC of what comes out;
    a snapshot that fails is deleted (and ``sink``'s reader must be told: :func:`pitr.assemble` is)."""
    digest = hashlib.sha256()
    try:
        with repo.store.get(ref.key) as raw, gzip.GzipFile(fileobj=raw) as gz, open(target, "xb") as out:
            while chunk := gz.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                if sink is not None:
                    sink(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        target.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, gzip.BadGzipFile) and exc.errno is not None:
            raise
        raise IntegrityError(f"{ref.key}: not a complete gzip stream ({exc}); not restoring from it") from exc
    try:
        repo.check_object(ref.key, key_name(ref.key), ref.mac, digest.hexdigest())
    except IntegrityError:
        target.unlink(missing_ok=True)
        raise


@dataclass
class RepositoryCheck:
    generations: int = 0
    segments: int = 0
    snapshots: int = 0
    bytes: int = 0


def verify_repository(index: RepoIndex, work: Path) -> RepositoryCheck:
    """Read back every object of ``index`` against its key, and check each generation's continuity;
    IntegrityError naming the first problem. ``work`` is a private directory for snapshot copies."""
    done = RepositoryCheck()
    for gen in index.generations:
        problems = gen.problems()
        if problems:
            raise IntegrityError(f"{gen.name}: {problems[0]}")
        for seg in gen.segments:
            read_segment(index.repo, seg)
            done.segments += 1
            done.bytes += seg.size
        for snap in gen.snapshots:
            copy = work / f"snapshot.{snap.zxid:x}"
            fetch_snapshot(index.repo, snap, copy)
            copy.unlink()
            done.snapshots += 1
            done.bytes += snap.size
        done.generations += 1
    return done
