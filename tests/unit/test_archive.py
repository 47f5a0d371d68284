"""The component archive: round trips byte for byte; any damage is detected."""

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kazoo.security import ACL, Id
from tests.helpers import OPEN

from dcos_backup.catalog.archive import MAGIC, ArchiveWriter, file_sha256, read_archive, verify_archive
from dcos_backup.errors import IntegrityError
from dcos_backup.logical import ZNode

acls = st.lists(
    st.builds(ACL, st.integers(0, 31), st.builds(Id, st.sampled_from(["world", "ip", "digest"]), st.text(max_size=20))),
    min_size=1,
    max_size=3,
).map(tuple)
names = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1, max_size=12)


@st.composite
def trees(draw):
    children = {
        "/r/" + "/".join(parts) for parts in draw(st.lists(st.lists(names, min_size=1, max_size=3), max_size=20))
    }
    paths = ["/r", *sorted(children)]
    return [ZNode(p, draw(st.binary(max_size=300)), draw(acls)) for p in paths]


def write(nodes, level=3) -> bytes:
    buf = io.BytesIO()
    with ArchiveWriter(buf, "marathon", "/r", level=level) as writer:
        for node in nodes:
            writer.add(node)
    assert writer.summary.nodes == len(nodes)
    assert writer.summary.sha256 == file_sha256(io.BytesIO(buf.getvalue()))
    return buf.getvalue()


def read(blob: bytes):
    return list(read_archive(io.BytesIO(blob)))


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(trees())
def test_any_tree_round_trips(nodes):
    assert [(n.path, n.data, n.acl) for n in read(write(nodes))] == [(n.path, n.data, n.acl) for n in nodes]


def test_large_and_empty_payloads_round_trip():
    nodes = [ZNode("/r", b"", OPEN), ZNode("/r/big", bytes(range(256)) * 4000, OPEN), ZNode("/r/e", b"", OPEN)]
    assert [n.data for n in read(write(nodes))] == [n.data for n in nodes]


BLOB = write(
    [ZNode("/r", b"root", OPEN)] + [ZNode(f"/r/n{i:03d}", f"payload {i}".encode() * 5, OPEN) for i in range(50)]
)


SHA = file_sha256(io.BytesIO(BLOB))


def test_verify_accepts_the_intact_archive():
    summary = verify_archive(io.BytesIO(BLOB), SHA)
    assert (summary.nodes, summary.sha256, summary.bytes) == (51, SHA, len(BLOB))


@settings(max_examples=300)
@given(st.integers(0, len(BLOB) - 1), st.integers(1, 255))
def test_any_byte_flip_is_detected(position, xor):
    damaged = bytearray(BLOB)
    damaged[position] ^= xor
    with pytest.raises(IntegrityError, match="checksum"):
        verify_archive(io.BytesIO(bytes(damaged)), SHA)


@settings(max_examples=100)
@given(st.integers(0, len(BLOB) - 1))
def test_any_truncation_is_detected(length):
    # Even without the catalog's checksum, the structure alone shows a truncation.
    with pytest.raises(IntegrityError):
        read(BLOB[:length])
    with pytest.raises(IntegrityError):
        verify_archive(io.BytesIO(BLOB[:length]), None)


def test_trailing_garbage_is_detected():
    with pytest.raises(IntegrityError):
        read(BLOB + b"x")


def test_not_an_archive():
    with pytest.raises(IntegrityError, match="bad magic"):
        read(b"hello world")
    assert BLOB.startswith(MAGIC)
