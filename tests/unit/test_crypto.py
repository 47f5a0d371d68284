"""Encryption at rest: chunked AES-256-GCM round-trips any length; a flipped byte, reordered, dropped or
appended chunks, a wrong key and a missing key each fail with one clear error; key files are 0600."""

import base64
import io
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.helpers import OPEN

from dcos_backup.catalog.archive import ArchiveWriter, read_archive, verify_archive
from dcos_backup.catalog.ids import new_backup_id
from dcos_backup.catalog.models import BackupRecord, Status, now
from dcos_backup.catalog.storage import LocalStorage
from dcos_backup.errors import EncryptionKeyError, IntegrityError, UsageError
from dcos_backup.fsutil import HashingReader, HashingWriter
from dcos_backup.logical import ZNode
from dcos_backup.storage.crypto import (
    HEADER_SIZE,
    TAG,
    EncryptingWriter,
    EncryptionKey,
    create_key_file,
    load_key,
    parse_key,
    plain_reader,
)

KEY = EncryptionKey(bytes(range(32)))
OTHER = EncryptionKey(bytes(range(1, 33)))
CHUNK = 64  # small chunks, so that a few hundred bytes make many of them


def encrypt(plain: bytes, key: EncryptionKey = KEY, pieces: int = 7) -> bytes:
    buf = io.BytesIO()
    writer = EncryptingWriter(HashingWriter(buf), key, chunk=CHUNK)
    for i in range(0, len(plain), pieces):
        writer.write(plain[i : i + pieces])
    stored = writer.finish()
    assert stored.size == len(buf.getvalue()) and stored.key_id == key.id
    return buf.getvalue()


def decrypt(blob: bytes, key: EncryptionKey | None = KEY, size: int = 5) -> bytes:
    reader = plain_reader(HashingReader(io.BytesIO(blob)), key, "test")
    parts = []
    while data := reader.read(size):
        parts.append(data)
    return b"".join(parts)


@settings(max_examples=50)
@given(st.binary(max_size=600), st.integers(1, 200))
def test_any_length_round_trips(plain, read_size):
    assert decrypt(encrypt(plain), size=read_size) == plain


def test_exact_chunk_multiples_round_trip_and_ciphertext_hides_the_plain_bytes():
    for n in (0, CHUNK, 3 * CHUNK):
        plain = b"secret-znode-data" * (n // 17) + b"x" * (n % 17)
        blob = encrypt(plain)
        assert decrypt(blob) == plain
        assert (b"secret-znode" not in blob) or not plain


def chunks(blob: bytes) -> tuple[bytes, list[bytes]]:
    body = blob[HEADER_SIZE:]
    size = CHUNK + TAG
    return blob[:HEADER_SIZE], [body[i : i + size] for i in range(0, len(body), size)]


PLAIN = bytes(range(256)) * 2  # 512 bytes: 8 full chunks and an empty last one
BLOB = encrypt(PLAIN)


def flipped(at: int) -> bytes:
    damaged = bytearray(BLOB)
    damaged[at] ^= 0x01
    return bytes(damaged)


@pytest.mark.parametrize("at", [9, 12, 20, 30, HEADER_SIZE, HEADER_SIZE + 100, len(BLOB) - 1])
def test_a_flipped_byte_anywhere_fails(at):
    with pytest.raises(IntegrityError):
        decrypt(flipped(at))


def test_reordered_dropped_cut_and_extended_chunks_fail():
    header, parts = chunks(BLOB)
    swapped = [parts[1], parts[0], *parts[2:]]
    cases = {
        "swapped": header + b"".join(swapped),
        "dropped": header + b"".join(parts[:3] + parts[4:]),
        "cut at a chunk": header + b"".join(parts[:-1]),
        "cut inside a chunk": BLOB[:-5],
        "extended": BLOB + parts[0],
        "header only": header,
        "other stream's chunk": header + b"".join(parts[:-1]) + chunks(encrypt(PLAIN))[1][-1],
    }
    for what, blob in cases.items():
        with pytest.raises(IntegrityError):
            decrypt(blob)
            pytest.fail(f"{what} was accepted")


def test_wrong_key_and_missing_key_are_one_clear_error():
    with pytest.raises(EncryptionKeyError, match=f"encrypted with the key {KEY.id}, not with this key"):
        decrypt(BLOB, OTHER)
    with pytest.raises(EncryptionKeyError, match="no encryption key is configured"):
        decrypt(BLOB, None)


def test_clear_streams_read_through_with_or_without_a_key():
    assert decrypt(b"DCOSBKP\nplain", KEY) == b"DCOSBKP\nplain"
    assert decrypt(b"abc", None) == b"abc"


def test_key_forms_and_key_ids():
    secret = os.urandom(32)
    for content in (secret, secret.hex().encode() + b"\n", base64.b64encode(secret) + b"\n"):
        assert parse_key(content, "k").secret == secret
    assert parse_key(secret, "k").id == EncryptionKey(secret).id != OTHER.id
    assert secret.hex() not in repr(EncryptionKey(secret))
    for bad in (b"", b"short", b"z" * 64, os.urandom(31)):
        with pytest.raises(UsageError, match="is not an encryption key"):
            parse_key(bad, "k")


def test_key_file_is_created_0600_once_and_must_stay_private(tmp_path):
    path = tmp_path / "keys" / "backup.key"
    assert create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_bytes()) == 32
    first = load_key(path)
    assert not create_key_file(path) and load_key(path) == first  # an existing key is never replaced
    path.chmod(0o644)
    with pytest.raises(UsageError, match="readable by other users"):
        load_key(path)
    with pytest.raises(UsageError, match="does not exist"):
        load_key(tmp_path / "missing.key")


def test_encrypting_storage_round_trips_archives_and_verifies_the_ciphertext(tmp_path):
    storage = LocalStorage(tmp_path, KEY)
    record = BackupRecord(
        dcos_version="2.2.0", id=new_backup_id("enc"), label="enc", status=Status.READY, timestamp=now()
    )
    storage.write(record)
    nodes = [ZNode("/r", b"root", OPEN)] + [
        ZNode(f"/r/n{i}", b"secret-znode-data %d" % i * 40, OPEN) for i in range(500)
    ]
    with storage.archive_writer(record.id, "r.dcosbkp") as sink:
        writer = ArchiveWriter(sink, "r", "/r")
        for node in nodes:
            writer.add(node)
        summary = writer.close()
    at_rest = (tmp_path / record.id / "r.dcosbkp").read_bytes()
    assert summary.key_id == KEY.id and summary.bytes == len(at_rest)
    assert b"secret-znode-data" not in at_rest
    with storage.archive_reader(record.id, "r.dcosbkp") as source:
        assert verify_archive(source, summary.sha256).nodes == len(nodes)
    with storage.archive_reader(record.id, "r.dcosbkp") as source:
        assert [(n.path, n.data) for n in read_archive(source)] == [(n.path, n.data) for n in nodes]
    with pytest.raises(EncryptionKeyError), LocalStorage(tmp_path, OTHER).archive_reader(record.id, "r.dcosbkp"):
        pass
    damaged = bytearray(at_rest)
    damaged[len(damaged) // 2] ^= 0x40
    (tmp_path / record.id / "r.dcosbkp").write_bytes(bytes(damaged))
    with pytest.raises(IntegrityError, match="checksum"), storage.archive_reader(record.id, "r.dcosbkp") as source:
        verify_archive(source, summary.sha256)
