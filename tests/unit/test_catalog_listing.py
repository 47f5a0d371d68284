"""Catalog lookups cost the catalog, never the bucket (issue 29 item 1): a show reads its one record and lists
nothing; a list walks only the top-level folders (one entry each, however many objects a folder holds) and
reads the record of each folder named like a backup; planted keys and folders never break or bloat it; the
list's JSON is what the API answered before, byte for byte."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from dcos_backup.api.app import document_json, list_body
from dcos_backup.api.models import BackupDocument, BackupList
from dcos_backup.catalog.ids import new_backup_id
from dcos_backup.catalog.models import BackupRecord, Status, now
from dcos_backup.catalog.storage import Storage, read_ahead
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

    def folders(self, prefix: str = ""):
        self.calls.append(("folders", prefix))
        return super().folders(prefix)


def record(label: str, age_s: int = 0) -> BackupRecord:
    return BackupRecord(
        dcos_version="2.2.0",
        id=new_backup_id(label),
        label=label,
        status=Status.READY,
        timestamp=now() - timedelta(seconds=age_s),
    )


def catalog(tmp_path: Path) -> tuple[Storage, CountingStore]:
    store = CountingStore(tmp_path / "bucket")
    return Storage(store), store


def plant_archive(store: LocalStore, objects: int) -> None:
    for i in range(objects):
        store.put(f"{ARCHIVE}/master-1/seg-{i:05d}", b"segment")


def test_folders_are_the_top_level_directories_by_prefix(tmp_path):
    store = LocalStore(tmp_path / "s")
    for key in ("abc-1/x", "abc-2/deep/er/y", "abd/z", "loose-file", "zz/w"):
        store.put(key, b"1")
    (tmp_path / "s" / ".hidden").mkdir()
    os.symlink(tmp_path, tmp_path / "s" / "abc-link")  # a symlink is no folder of the store's
    assert list(store.folders()) == ["abc-1", "abc-2", "abd", "zz"]
    assert list(store.folders("abc")) == ["abc-1", "abc-2"]
    assert list(store.folders("nothing")) == []
    gone = LocalStore(tmp_path / "gone")
    (tmp_path / "gone").rmdir()
    assert list(gone.folders()) == []  # as list(): a store whose directory went holds nothing


def test_a_show_reads_its_one_record_and_lists_nothing(tmp_path):
    storage, store = catalog(tmp_path)
    backups = [record(f"b{i:02d}") for i in range(5)]
    for r in backups:
        storage.write(r)
    plant_archive(store, 200)
    store.calls.clear()
    assert list(storage.iter_records(backups[2].id)) == [backups[2]]
    assert store.calls == [("get", f"{backups[2].id}/backup.json")]
    store.calls.clear()
    absent = new_backup_id("gone")
    assert list(storage.iter_records(absent)) == [] == storage.list_records(absent)
    assert store.calls == [("get", f"{absent}/backup.json")] * 2


def test_a_list_reads_each_record_once_and_never_walks_the_archive(tmp_path):
    storage, store = catalog(tmp_path)
    backups = [record(f"b{i:02d}", age_s=i) for i in range(30)]  # b29 is the oldest
    for r in backups:
        storage.write(r)
    plant_archive(store, 300)
    store.calls.clear()
    listed = storage.list_records()
    assert [r.id for r in listed] == [r.id for r in reversed(backups)]  # oldest first
    assert [c for c in store.calls if c[0] != "get"] == [("folders", "")]
    assert sorted(key for op, key in store.calls if op == "get") == sorted(f"{r.id}/backup.json" for r in backups)
    store.calls.clear()
    assert [r.id for r in storage.list_records("b1")] == [r.id for r in reversed(backups[10:20])]
    assert [c for c in store.calls if c[0] != "get"] == [("folders", "b1")] and len(store.calls) == 11


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
    backup.json is itself a folder. Only the real backups are listed, each read once."""
    storage, store = catalog(tmp_path)
    real = record("real")
    storage.write(real)
    plant_archive(store, 20)
    store.put("backup.json", real.model_dump_json().encode())
    store.put("not-an-id/backup.json", real.model_dump_json().encode())
    store.put(f"{ARCHIVE}/backup.json", real.model_dump_json().encode())
    store.put(f"{new_backup_id('empty')}/archive.dcosbkp", b"no record beside it")
    store.put(f"{new_backup_id('nested')}/backup.json/inner", b"a folder where the record should be")
    store.calls.clear()
    assert storage.list_records() == [real]
    gets = [key for op, key in store.calls if op == "get"]
    assert len(gets) == 3 and f"{real.id}/backup.json" in gets  # the three id-named folders, nothing else


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
