"""LocalStorage: atomic records, partial archives never look finished, ids cannot escape the root."""

import os

import pytest

from dcos_backup.catalog.ids import new_backup_id
from dcos_backup.catalog.models import BackupRecord, Status, now
from dcos_backup.catalog.storage import DamagedEntry, LocalStorage
from dcos_backup.errors import NotFound, StorageError
from dcos_backup.storage.base import PARTIAL
from dcos_backup.storage.crypto import EncryptionKey


def record(label="pre-upgrade", status=Status.READY) -> BackupRecord:
    return BackupRecord(dcos_version="2.2.0", id=new_backup_id(label), label=label, status=status, timestamp=now())


def test_write_read_list_delete(tmp_path):
    storage = LocalStorage(tmp_path)
    a, b = record("first"), record("second")
    storage.write(a)
    storage.write(b)
    assert storage.read(a.id) == a
    assert [r.id for r in storage.list_records()] == [a.id, b.id]
    assert [r.id for r in storage.list_records("sec")] == [b.id]
    assert [r.id for r in storage.list_records(a.id)] == [a.id]
    assert storage.list_records("nothing") == []
    storage.delete(a.id)
    assert [r.id for r in storage.list_records()] == [b.id]
    with pytest.raises(NotFound):
        storage.read(a.id)
    with pytest.raises(NotFound):
        storage.delete(a.id)


def test_record_write_is_atomic(tmp_path):
    storage = LocalStorage(tmp_path)
    r = record()
    storage.write(r)
    r.status = Status.ERROR
    storage.write(r)
    assert storage.read(r.id).status == Status.ERROR
    assert sorted(os.listdir(tmp_path)) == [f"{r.id}.json"]  # no temp file left


def test_failed_archive_write_leaves_no_file(tmp_path):
    storage = LocalStorage(tmp_path)
    r = record()
    storage.write(r)
    with pytest.raises(RuntimeError), storage.archive_writer(r.id, "marathon.dcosbkp") as f:
        f.write(b"half an archive")
        raise RuntimeError("reader died")
    assert sorted(os.listdir(tmp_path / r.id)) == []


def test_complete_archive_appears_only_at_the_end(tmp_path):
    storage = LocalStorage(tmp_path)
    r = record()
    storage.write(r)
    with storage.archive_writer(r.id, "marathon.dcosbkp") as f:
        f.write(b"data")
        assert not (tmp_path / r.id / "marathon.dcosbkp").exists()
        assert [p.name.startswith(PARTIAL) for p in (tmp_path / r.id).glob("*.marathon.dcosbkp")] == [True]
    assert (tmp_path / r.id / "marathon.dcosbkp").read_bytes() == b"data"


@pytest.mark.parametrize("bad", ["../../etc", "..", "/etc/passwd", "a/../../b"])
def test_ids_cannot_escape_the_root(tmp_path, bad):
    storage = LocalStorage(tmp_path / "root")
    with pytest.raises(NotFound):
        storage.read(bad)
    with pytest.raises(NotFound):
        storage.delete(bad)


def test_unwritable_storage_is_a_storage_error(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StorageError):
        LocalStorage(tmp_path / "file" / "sub")


def test_records_are_signed_and_a_new_key_adopts_the_catalog_once(tmp_path):
    """Records written before the record key existed are damaged under it until the key's creation
    adopts them; a record changed afterwards (its signature no longer verifies) is damaged again."""
    key = EncryptionKey(bytes(range(32)))
    record = BackupRecord.start("before-key", {"marathon": "/marathon"}, "2.2.0")
    LocalStorage(tmp_path).write(record)
    signed = LocalStorage(tmp_path, record_key=key)
    with pytest.raises(DamagedEntry, match="not signed"):
        signed.read(record.id)
    assert signed.adopt_catalog() == [record.id]
    assert signed.read(record.id).signature is not None and signed.adopt_catalog() == []
    path = tmp_path / f"{record.id}.json"
    path.write_text(path.read_text().replace('"/marathon"', '"/"'))
    with pytest.raises(DamagedEntry, match="does not verify"):
        signed.read(record.id)
    assert signed.list_records()[0].damaged.startswith("its signature does not verify")


def test_one_unreadable_entry_never_fails_the_list(tmp_path, monkeypatch):
    """Issue 25 item 2: an entry that cannot be read now is listed as such; the others are listed as usual."""
    storage = LocalStorage(tmp_path)
    good, bad = record("good"), record("bad")
    storage.write(good)
    storage.write(bad)
    get_bytes = storage.objects.get_bytes

    def failing_for_bad(key: str) -> bytes:  # the storage error S3 gives for one object (a 500, a timeout)
        if key.startswith(bad.id):
            raise StorageError(f"cannot read {key}: injected")
        return get_bytes(key)

    monkeypatch.setattr(storage.objects, "get_bytes", failing_for_bad)
    with pytest.raises(StorageError):
        storage.read(bad.id)
    listed = {r.id: r for r in storage.list_records()}
    assert listed[good.id] == good
    assert listed[bad.id].status == Status.ERROR and "unreadable now" in (listed[bad.id].damaged or "")
