"""ZooKeeper file readers against built and mutated byte streams: every defect is an IntegrityError.

Real server-written files are covered end to end in tests/e2e/test_zk_online.py; here the records are
built by hand (jute layout) so that each field and each kind of damage can be aimed at precisely.
"""

from __future__ import annotations

import contextlib
import io
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.zkfiles import create_txn, log_file, snapshot_file

from dcos_backup.errors import IntegrityError
from dcos_backup.physical import formats


def read(raw: bytes, strict: bool = True) -> tuple[list[formats.LogRecord], formats.LogEnd]:
    reader = formats.LogReader(io.BytesIO(raw), "log.1", strict)
    records = list(reader.records())
    assert reader.end is not None
    return records, reader.end


TXNS = [create_txn(i, f"/n{i}", b"x" * i, digest=i * 7) for i in range(1, 6)]


def test_a_well_formed_log_reads_back():
    records, end = read(log_file(TXNS))
    assert [r.txn.zxid for r in records] == [1, 2, 3, 4, 5]
    assert records[2].txn.record == formats.Create("/n3", b"xxx", [(31, "world", "anyone")], False, -1)
    assert records[2].txn.digest == (2, 21)
    assert end.reason == "padding" and end.last_zxid == 5


def test_a_log_truncated_at_a_record_boundary_reads_as_ended():
    raw = log_file(TXNS, padding=0)
    assert read(raw)[1].reason == "eof"


@pytest.mark.parametrize("cut", [1, 5, 11, 20])
def test_a_torn_last_record_fails_verification_but_not_a_live_copy(cut: int):
    raw = log_file(TXNS, padding=0)[:-cut]
    with pytest.raises(IntegrityError, match="truncated"):
        read(raw)
    records, end = read(raw, strict=False)
    assert [r.txn.zxid for r in records] == [1, 2, 3, 4] and end.reason == "truncated"
    assert end.valid_end == records[-1].end


def test_garbage_in_the_padding_is_caught():
    raw = bytearray(log_file(TXNS, padding=4096))
    raw[-100] = 7
    with pytest.raises(IntegrityError, match="after the end of the log"):
        read(bytes(raw))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_flipped_byte_in_the_records_is_caught(data: st.DataObject):
    raw = log_file(TXNS, padding=0)
    offset = data.draw(st.integers(16, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    damaged = bytearray(raw)
    damaged[offset] ^= 1 << bit
    with pytest.raises(IntegrityError):
        read(bytes(damaged))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_after_a_header_never_crash_the_reader(tail: bytes):
    raw = struct.pack(">iiq", formats.LOG_MAGIC, 2, 0) + tail
    for strict in (True, False):
        with contextlib.suppress(IntegrityError):
            read(raw, strict)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_as_a_snapshot_are_refused_cleanly(tail: bytes):
    raw = struct.pack(">iiq", formats.SNAP_MAGIC, 2, -1) + tail
    with pytest.raises(IntegrityError):
        reader = formats.SnapshotReader(io.BytesIO(raw), "snapshot.1")
        reader.finish()


def test_node_digest_matches_zookeepers_definition():
    stat = formats.Stat(1, 2, 3, 4, 5, 6, 7, 0, 9)
    fields = struct.pack(">qqqqqiiiq", 1, 2, 9, 3, 4, 5, 6, 7, 0)  # czxid mzxid pzxid ctime mtime ...
    assert formats.node_digest("/a", b"data", stat) == zlib.crc32(b"/a" + b"data" + fields)
    assert formats.node_digest("/zookeeper/quota", b"", stat) == 0


def test_a_built_snapshot_reads_back_and_its_seal_is_checked():
    raw = snapshot_file({"/a": b"1", "/b": b"22"}, zxid=5)
    reader = formats.SnapshotReader(io.BytesIO(raw), "snapshot.5")
    assert [(n.path, n.data) for n in reader.nodes()] == [
        ("", b""),
        ("/zookeeper", b""),
        ("/zookeeper/quota", b""),
        ("/a", b"1"),
        ("/b", b"22"),
    ]
    assert reader.finish() is None and reader.acls == {1: [(31, "world", "anyone")]}
    damaged = bytearray(raw)
    damaged[len(raw) // 2] ^= 1
    with pytest.raises(IntegrityError):
        formats.SnapshotReader(io.BytesIO(bytes(damaged)), "snapshot.5").finish()
