"""Catalog lookups cost the catalog, never the bucket (issue 29 item 1): a show reads its one record and lists
nothing; a list walks only the store's top level (a folder is one entry, however many objects it holds),
where each record ``<id>.json`` comes with its version, and reads only the records it has not read at that
version before; records of the first layout (``<id>/backup.json``) still list and are moved; planted keys
and folders never break or bloat it; the list's JSON is what the API answered before, byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from dcos_backup.api.app import document_json, list_body
from dcos_backup.api.models import BackupDocument, BackupList
from dcos_backup.catalog import storage as catalog_storage
from dcos_backup.catalog.ids import new_backup_id
from dcos_backup.catalog.models import BackupRecord, Status, now
from dcos_backup.catalog.storage import Storage, read_ahead
from dcos_backup.storage.base import TopEntry
from dcos_backup.storage.local import LocalStore

ARCHIVE = "zk-archive"  # a continuous archive repository sharing the store, under a folder of its own


class CountingStore(LocalStore):
    """A local store that records every call a lookup makes of it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: list[tuple[str, str]] = []

    def get(self, key: str):
        self.calls.append(("get", key))
        return super().get(key)

    def list(self, prefix: str = ""):
        self.calls.append(("list", prefix))
        return super().list(prefix)

    def top_level(self, prefix: str = ""):
        self.calls.append(("top_level", prefix))
        return super().top_level(prefix)

    def gets(self) -> list[str]:
        return [key for op, key in self.calls if op == "get"]


def record(label: str, age_s: int = 0) -> BackupRecord:
    return BackupRecord(
        dcos_version="2.2.0",
        id=new_backup_id(label),
        label=label,
        status=Status.READY,
        timestamp=now() - timedelta(seconds=age_s),
    )


def catalog(tmp_path: Path, store_type: type[CountingStore] | None = None) -> tuple[Storage, CountingStore]:
    store = (store_type or VersionedStore)(tmp_path / "bucket")
    return Storage(store), store


def plant_archive(store: LocalStore, objects: int) -> None:
    for i in range(objects):
        store.put(f"{ARCHIVE}/master-1/seg-{i:05d}", b"segment")


def folders(store: LocalStore, prefix: str = "") -> list[str]:
    return [entry.name for entry in store.top_level(prefix) if entry.folder]


def test_folders_are_the_top_level_directories_by_prefix(tmp_path):
    store = LocalStore(tmp_path / "s")
    for key in ("abc-1/x", "abc-2/deep/er/y", "abd/z", "loose-file", "zz/w"):
        store.put(key, b"1")
    (tmp_path / "s" / ".hidden").mkdir()
    os.symlink(tmp_path, tmp_path / "s" / "abc-link")  # a symlink is no folder of the store's
    assert folders(store) == ["abc-1", "abc-2", "abd", "zz"]
    assert folders(store, "abc") == ["abc-1", "abc-2"]
    assert folders(store, "nothing") == []
    gone = LocalStore(tmp_path / "gone")
    (tmp_path / "gone").rmdir()
    assert folders(gone) == []  # as list(): a store whose directory went holds nothing


def test_the_top_level_is_folders_and_versioned_objects_in_s3s_key_order(tmp_path):
    store = LocalStore(tmp_path / "s")
    for key in ("x/a", "x.json", "x-1.json", "y/deep/z"):
        store.put(key, b"1")
    os.symlink(tmp_path / "s" / "x.json", tmp_path / "s" / "x-link.json")  # no object of the store's
    entries = list(store.top_level())
    assert [(e.name, e.folder) for e in entries] == [("x-1.json", False), ("x.json", False), ("x", True), ("y", True)]
    assert [e.order for e in entries] == sorted(e.order for e in entries)  # "x.json" < "x/", as S3 lists them
    # a directory vouches for no version (timestamps are too coarse): a record there is always read
    assert all(e.version is None for e in entries) and store.get_versioned("x.json") == (b"1", None)
    assert TopEntry("a", folder=True).order == "a/"


class VersionedStore(CountingStore):
    """A local store that versions its objects as S3 does (by content), to test the record cache here."""

    def top_level(self, prefix: str = ""):
        for entry in super().top_level(prefix):
            yield entry if entry.folder else TopEntry(entry.name, False, self._version(entry.name))

    def get_versioned(self, key: str):
        raw, _ = super().get_versioned(key)
        return raw, hashlib.md5(raw).hexdigest()

    def _version(self, key: str) -> str:
        return hashlib.md5((self.root / key).read_bytes()).hexdigest()


def test_a_show_reads_its_one_record_and_lists_nothing(tmp_path):
    storage, store = catalog(tmp_path)
    backups = [record(f"b{i:02d}") for i in range(5)]
    for r in backups:
        storage.write(r)
    plant_archive(store, 200)
    store.calls.clear()
    assert list(storage.iter_records(backups[2].id)) == [backups[2]]
    assert store.calls == [("get", f"{backups[2].id}.json")]
    store.calls.clear()
    absent = new_backup_id("gone")
    assert list(storage.iter_records(absent)) == [] == storage.list_records(absent)
    assert store.calls == [("get", f"{absent}.json"), ("get", f"{absent}/backup.json")] * 2  # either layout


def test_a_list_reads_each_record_once_and_never_walks_the_archive(tmp_path):
    storage, store = catalog(tmp_path)
    backups = [record(f"b{i:02d}", age_s=i) for i in range(30)]  # b29 is the oldest
    for r in backups:
        storage.write(r)
    plant_archive(store, 300)
    store.calls.clear()
    listed = storage.list_records()
    assert [r.id for r in listed] == [r.id for r in reversed(backups)]  # oldest first
    assert [c for c in store.calls if c[0] != "get"] == [("top_level", "")]
    assert sorted(store.gets()) == sorted(f"{r.id}.json" for r in backups)
    store.calls.clear()
    assert [r.id for r in storage.list_records("b1")] == [r.id for r in reversed(backups[10:20])]
    assert store.calls == [("top_level", "b1")]  # read before at the versions listed: no GET


def test_a_list_reads_again_exactly_the_records_that_changed(tmp_path):
    """Unchanged records come from the cache; a record rewritten by the service, or replaced by someone
    with write access to the store, is read again (a cached copy is never served for newer bytes)."""
    storage, store = catalog(tmp_path)
    backups = [record(f"c{i:02d}", age_s=i) for i in range(10)]
    for r in backups:
        storage.write(r)
    storage.list_records()
    backups[3].label = "relabelled"
    storage.write(backups[3])
    forged = backups[5].model_copy(update={"status": Status.ERROR})
    store.put(f"{forged.id}.json", forged.model_dump_json().encode())  # outside the service
    store.calls.clear()
    listed = {r.id: r for r in storage.list_records()}
    assert sorted(store.gets()) == sorted([f"{backups[3].id}.json", f"{forged.id}.json"])
    assert listed[backups[3].id].label == "relabelled" and listed[forged.id].status == Status.ERROR
    storage.delete(backups[0].id)
    assert backups[0].id not in {r.id for r in storage.list_records()}


def test_the_record_cache_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(catalog_storage, "RECORD_CACHE", 4)
    storage, store = catalog(tmp_path)
    for i in range(10):
        storage.write(record(f"d{i:02d}"))
    assert len(storage.list_records()) == 10
    assert len(storage._cache) == 4
    store.calls.clear()
    assert len(storage.list_records()) == 10 and len(store.gets()) == 10  # least recently read went first


def test_records_of_the_first_layout_list_show_and_are_moved(tmp_path):
    """A catalog written before records moved to ``<id>.json`` keeps every backup: listed, shown, rewritten
    in the new place (the old copy removed), moved byte for byte by the leader, deleted whole."""
    storage, store = catalog(tmp_path)
    old = [record(f"old{i}", age_s=10 + i) for i in range(3)]
    for r in old:
        store.put(f"{r.id}/backup.json", r.model_dump_json().encode())
        store.put(f"{r.id}/marathon.dcosbkp", b"archive")
    new = record("new")
    storage.write(new)
    assert [r.id for r in storage.list_records()] == [r.id for r in reversed(old)] + [new.id]
    assert storage.read(old[0].id) == old[0]
    old[0].label = "rewritten"
    storage.write(old[0])
    assert sorted(os.listdir(tmp_path / "bucket" / old[0].id)) == ["marathon.dcosbkp"]  # no stale copy left
    assert storage.read(old[0].id).label == "rewritten"
    moved_bytes = store.get_bytes(f"{old[1].id}/backup.json")
    assert storage.move_legacy_records() == [old[1].id, old[2].id]
    assert store.get_bytes(f"{old[1].id}.json") == moved_bytes  # byte for byte: a signature still verifies
    assert not (tmp_path / "bucket" / old[1].id / "backup.json").exists()
    assert storage.move_legacy_records() == []
    store.put(f"{old[2].id}/backup.json", b"an older copy left beside the record")
    storage.delete(old[2].id)
    assert not (tmp_path / "bucket" / old[2].id).exists() and not (tmp_path / "bucket" / f"{old[2].id}.json").exists()
    assert [r.id for r in storage.list_records()] == [old[1].id, old[0].id, new.id]


def test_a_prefix_no_id_can_start_with_lists_nothing(tmp_path):
    storage, store = catalog(tmp_path)
    storage.write(record("real"))
    store.calls.clear()
    for prefix in ("../", "a/b", "x" * 63, "zk archive", "\u00e9"):
        assert storage.list_records(prefix) == []
    assert store.calls == []


def test_planted_keys_and_folders_never_show_or_break_the_list(tmp_path):
    """An attacker with write access plants: a key with no folder, a backup.json under a folder that is no
    id, a folder named like an id with no record, a record under the archive's folder, an id folder whose
    backup.json is itself a folder, a record named like no id, a folder where a record should be. Only the
    real backups are listed, each read once."""
    storage, store = catalog(tmp_path)
    real = record("real")
    storage.write(real)
    plant_archive(store, 20)
    store.put("backup.json", real.model_dump_json().encode())
    store.put("not-an-id/backup.json", real.model_dump_json().encode())
    store.put(f"{ARCHIVE}/backup.json", real.model_dump_json().encode())
    store.put(f"{new_backup_id('empty')}/archive.dcosbkp", b"no record beside it")
    store.put(f"{new_backup_id('nested')}/backup.json/inner", b"a folder where the record should be")
    store.put("not-an-id.json", real.model_dump_json().encode())
    store.put(f"{new_backup_id('dir')}.json/inner", b"a folder where the record should be")
    store.calls.clear()
    assert storage.list_records() == [real]
    gets = store.gets()
    # the record, and each id-named folder with no record tried in both layouts; nothing else
    assert len(gets) == 5 and f"{real.id}.json" in gets


def test_read_ahead_keeps_order_and_bounds_what_waits():
    seen: list[int] = []

    def read(i: int) -> int:
        seen.append(i)
        return i * i

    results = read_ahead(read, iter(range(1000)), 4)
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    assert len(seen) <= 3 + 4 * 4 + 4  # taken, waiting, in flight: not the 1,000
    assert list(results) == [i * i for i in range(3, 1000)]


def test_the_list_body_is_the_models_json_byte_for_byte():
    """The streamed body equals what FastAPI rendered for BackupList before, for none, one and many."""
    app = FastAPI()
    records = [record(f"r{i:02d}", age_s=i) for i in range(5)]
    records[1].damaged = "its signature does not verify (caf\u00e9)"  # non-ASCII, an optional field set
    progress = {records[2].id: {"phase": "archiving", "done": 0.5}}

    @app.get("/list", response_model=BackupList)
    def as_models(n: int) -> BackupList:
        docs = [BackupDocument.of(r, progress.get(r.id)) for r in records[:n]]
        return BackupList(backup_info=docs or None)

    client = TestClient(app)
    for n in (0, 1, 5):
        expected = client.get("/list", params={"n": n}).content
        docs = [document_json(r, progress.get(r.id)) for r in records[:n]]
        streamed = b"".join(list_body(docs)) if docs else b"{}"
        assert streamed == expected, n
        assert json.loads(streamed) == json.loads(expected)


def test_a_long_list_body_comes_in_chunks():
    docs = [json.dumps({"n": i, "pad": "x" * 1000}).encode() for i in range(300)]
    chunks = list(list_body(docs))
    assert len(chunks) > 3 and max(len(c) for c in chunks) < 2 * (1 << 16)
    assert json.loads(b"".join(chunks)) == {"backup_info": [json.loads(d) for d in docs]}
