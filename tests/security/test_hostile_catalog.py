"""Hostile and damaged catalog entries (issue 15 items 4-6), against the real service on a real ensemble.

Someone with write access to the backup storage (or a failing disk) changes ``backup.json`` files: a
damaged entry is quarantined (listed STATUS_ERROR with ``damaged``, 422 on use, deletable) and never takes
the list or the service down; a tampered root, archive, id or sha256 is refused with ZooKeeper untouched;
an archive holding a node outside its component's root is refused before any write; the safety backup of
an unfinished restore cannot be deleted until its rollback has run.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import uuid
from collections.abc import Iterator

import pytest
from tests.helpers import (
    backup_doc,
    create_ready,
    in_process_api,
    marathon_chroot,
    restore_ended,
    service_api,
    wait_for,
)

from dcos_backup.api.models import DELETE, DOWNLOAD, LIST, RESTORE
from dcos_backup.catalog.models import BackupRecord, Status
from dcos_backup.catalog.portable import import_backup
from dcos_backup.catalog.storage import LocalStorage, Storage, open_storage
from dcos_backup.components import ZkSubtree
from dcos_backup.jobs.engine import ZkEngine
from dcos_backup.jobs.service import BackupService
from dcos_backup.storage.crypto import EncryptionKey
from dcos_backup.testing.trees import snapshot

pytestmark = pytest.mark.e2e

RECORD_KEY = EncryptionKey(bytes(range(100, 132)))  # the cluster's record key, as dcos-local makes one


class Env:
    """A chroot with Marathon state, a catalog, and services over both, started as a real start-up does."""

    def __init__(self, hosts: str, zk, storage: Storage) -> None:
        self.hosts, self.zk, self.storage = hosts, zk, storage

    @contextlib.contextmanager
    def service(self) -> Iterator:
        """A new service process's worth of objects (engine, service, in-process API), recovered first."""
        engine = ZkEngine(self.hosts)
        service = BackupService(self.storage, engine, dcos_version="2.2.0", instance="master-1")
        try:
            service.recover()
            with in_process_api(service, self.hosts) as api:
                yield api.http, service
        finally:
            service.close()
            engine.close()


@pytest.fixture(params=["local", "s3"])
def env(request, cluster, tmp_path) -> Iterator[Env]:
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        storage = open_storage(f"s3://{request.getfixturevalue('s3_bucket')}/catalog", endpoint, record_key=RECORD_KEY)
    else:
        storage = LocalStorage(tmp_path / "backups", record_key=RECORD_KEY)
    with marathon_chroot(cluster, apps=8, seed=21) as (hosts, zk):
        yield Env(hosts, zk, storage)


def raw_record(storage: Storage, backup_id: str) -> dict:
    return json.loads(storage.objects.get_bytes(storage.record_object(backup_id)))


def put_raw(storage: Storage, backup_id: str, doc: dict | bytes) -> None:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    storage.objects.put(storage.record_object(backup_id), body)


def damaged_copies(storage: Storage, good: dict, other_id: str) -> dict[str, str]:
    """One damaged entry of each kind, each a copy of ``good`` under a new id: kind -> its id."""

    def naive(doc):
        doc["timestamp"] = "2026-01-01T00:00:00"

    def wrong_id(doc):
        doc["id"] = other_id

    def bad_field(doc):
        doc["status"] = "STATUS_MAYBE"

    def unknown_version(doc):
        doc["format_version"] = 99

    def archive_elsewhere(doc):
        doc["component_status"]["marathon"]["archive"] = f"../{other_id}/marathon.dcosbkp"

    edits = {
        "naive": naive,
        "wrong-id": wrong_id,
        "bad-field": bad_field,
        "unknown-version": unknown_version,
        "archive-elsewhere": archive_elsewhere,
    }
    ids = {}
    for kind, edit in edits.items():
        backup_id = f"{kind}-{uuid.uuid4()}"
        doc = json.loads(json.dumps(good))
        doc["id"] = backup_id
        edit(doc)
        put_raw(storage, backup_id, doc)
        ids[kind] = backup_id
    for kind, body in {"not-json": b"{not json", "not-utf8": b"\xff\xfe{}", "a-list": b"[]"}.items():
        backup_id = f"{kind}-{uuid.uuid4()}"
        put_raw(storage, backup_id, body)
        ids[kind] = backup_id
    return ids


def plant_odd_keys(storage: Storage, good: dict) -> list[str]:
    """Keys that are no catalog entry, each holding a copy of ``good``'s record (issue 29 item 1: the list
    walks top-level folders only): the names a list or a show by prefix must never answer."""
    body = json.dumps(good).encode()
    odd_id = f"odd-{uuid.uuid4()}"
    dir_id = f"dir-{uuid.uuid4()}"
    for key in (
        "backup.json",  # no folder at all
        "not-an-id/backup.json",  # a folder whose name is no backup id
        "not-an-id.json",  # a top-level record whose name is no backup id
        "zk-archive/backup.json",  # a folder named like an archive repository sharing the store
        "zk-archive/master-1/segment-0000001",
        f"zk-archive/{good['id']}/backup.json",  # a backup's copy one level down, in either layout
        f"zk-archive/{good['id']}.json",
        f"{odd_id}/marathon.dcosbkp",  # named like a backup, with no record
        f"{dir_id}.json/inner",  # a folder where a record should be
    ):
        storage.objects.put(key, body)
    return ["backup.json", "not-an-id", "zk-archive", odd_id, dir_id]


def test_damaged_entries_are_quarantined_and_the_service_survives(env):
    with env.service() as (http, _):
        good = create_ready(http, "good")
        assert good["status"] == "STATUS_READY"
    damaged = damaged_copies(env.storage, raw_record(env.storage, good["id"]), good["id"])
    odd = plant_odd_keys(env.storage, raw_record(env.storage, good["id"]))
    before = snapshot(env.zk)
    for _ in range(2):  # and again after a restart: the service starts, the list answers
        with env.service() as (http, _):
            reply = http.get(LIST)
            assert reply.status_code == 200, reply.text
            docs = {d["id"]: d for d in reply.json()["backup_info"]}
            assert set(docs) == {good["id"], *damaged.values()}  # nothing planted is listed
            for name in odd:
                assert http.get(LIST, params={"prefix": name}).json() == {}, name
            assert docs[good["id"]]["status"] == "STATUS_READY" and "damaged" not in docs[good["id"]]
            for kind, backup_id in damaged.items():
                doc = docs[backup_id]
                assert doc["status"] == "STATUS_ERROR" and doc["damaged"], (kind, doc)
                assert doc["reason"].startswith("damaged catalog entry"), (kind, doc)
                for method, path, kwargs in (
                    ("POST", RESTORE, {"json": {"id": backup_id}}),
                    ("POST", RESTORE, {"json": {"id": backup_id, "dry_run": True}}),
                    ("GET", DOWNLOAD, {"params": {"id": backup_id}}),
                ):
                    answer = http.request(method, path, **kwargs)
                    assert answer.status_code == 422, (kind, path, answer.text)
                    assert answer.json()["code"] == "damaged_entry"
    assert snapshot(env.zk) == before
    with env.service() as (http, _):
        for backup_id in damaged.values():
            assert http.request("DELETE", DELETE, json={"id": backup_id}).status_code == 200
        ids = [d["id"] for d in http.get(LIST).json()["backup_info"]]
        assert ids == [good["id"]]


def test_a_record_changed_in_the_storage_after_a_list_is_never_served_from_what_was_read(env):
    """A list keeps the bytes of the records it read, by version (issue 29 item 1): a record rewritten in
    the storage afterwards is read again at its new version, its signature checked (quarantined, 422 on
    restore), never answered from the bytes read before."""
    with env.service() as (http, _):
        good = create_ready(http, "good")
        assert [d["id"] for d in http.get(LIST).json()["backup_info"]] == [good["id"]]
        doc = raw_record(env.storage, good["id"])
        doc["component_status"]["marathon"]["root"] = "/"
        put_raw(env.storage, good["id"], doc)
        (listed,) = http.get(LIST).json()["backup_info"]
        assert listed["status"] == "STATUS_ERROR" and "signature does not verify" in listed["damaged"], listed
        answer = http.post(RESTORE, json={"id": good["id"]})
        assert answer.status_code == 422 and answer.json()["code"] == "damaged_entry", answer.text


def copy_backup(env: Env, backup_id: str, edit, signed: bool) -> str:
    """A copy of the backup ``backup_id`` (record and archives) under a new id, its record changed by
    ``edit``; written raw (as someone with write access to the storage would) or, with ``signed``, through
    the storage (as a service holding the cluster's key would: then only the checks after the HMAC stand)."""
    new_id = f"tampered-{uuid.uuid4()}"
    doc = raw_record(env.storage, backup_id)
    for comp in doc["component_status"].values():
        with env.storage.objects.get(f"{backup_id}/{comp['archive']}") as source:
            env.storage.objects.put(f"{new_id}/{comp['archive']}", source)
    doc["id"] = new_id
    doc["restores"] = []
    edit(doc)
    if signed:
        env.storage.write(BackupRecord.model_validate(doc))
    else:
        put_raw(env.storage, new_id, doc)
    return new_id


def root_slash(doc):
    doc["component_status"]["marathon"]["root"] = "/"


def zero_sha256(doc):
    doc["component_status"]["marathon"]["sha256"] = "0" * 64


def other_archive(doc):
    doc["component_status"]["marathon"]["archive"] = "metronome.dcosbkp"


def extra_component(doc):
    doc["component_status"]["zookeeper"] = {**doc["component_status"]["marathon"], "root": "/zookeeper"}


@pytest.mark.parametrize("edit", [root_slash, zero_sha256, other_archive, extra_component], ids=lambda e: e.__name__)
def test_tampered_records_are_refused_with_the_tree_untouched(env, edit):
    with env.service() as (http, _):
        good = create_ready(http, "good")
        env.zk.create("/outside/keep", b"not marathon's", makepath=True)
        env.zk.set("/marathon", b"changed since the backup")
        before = {root: snapshot(env.zk, root) for root in ("/marathon", "/outside")}
        # Written raw: its HMAC does not verify, so it is a damaged entry.
        raw_id = copy_backup(env, good["id"], edit, signed=False)
        reply = http.post(RESTORE, json={"id": raw_id})
        assert reply.status_code == 422 and reply.json()["code"] == "damaged_entry", reply.text
        # Signed (a key that leaked, or a record of another registry): the checks behind the HMAC refuse it.
        signed_id = copy_backup(env, good["id"], edit, signed=True)
        reply = http.post(RESTORE, json={"id": signed_id})
        if reply.status_code == 200:
            restore = restore_ended(http, signed_id)["restores"][-1]
            assert restore["status"] == "STATUS_ERROR" and "ZooKeeper was not changed" in restore["reason"], restore
            assert restore.get("safety_backup_id") is None, "ZooKeeper was about to change"
        else:
            assert reply.status_code == 422, reply.text
            assert "nothing was changed" in reply.json()["errors"][0]
        assert {r: snapshot(env.zk, r) for r in before} == before


def test_node_outside_the_root_is_refused_before_any_write(env):
    """An archive whose nodes leave the component's root (taken by a service whose registry said "/") under
    a record that agrees with this registry (signed: only the archive lies) is refused before any write."""
    engine = ZkEngine(env.hosts)
    wide = BackupService(env.storage, engine, [ZkSubtree("marathon", "/")], dcos_version="2.2.0")
    try:
        evil = wide.create("wide")
        wait_for(lambda: env.storage.read(evil.id).status != Status.BACKING_UP, what="the wide backup")
    finally:
        wide.close()
        engine.close()
    record = env.storage.read(evil.id)
    assert record.status == Status.READY, record.reason
    record.component_status["marathon"].root = "/marathon"
    env.storage.write(record)
    env.zk.create("/zzz-evil", b"")  # in the archive, outside /marathon; gone before the restore
    env.zk.delete("/zzz-evil")
    before = snapshot(env.zk, "/")
    with env.service() as (http, _):
        reply = http.post(RESTORE, json={"id": evil.id})
        assert reply.status_code == 200, reply.text
        restore = restore_ended(http, evil.id)["restores"][-1]
        assert restore["status"] == "STATUS_ERROR", restore
        assert "outside its component's root /marathon" in restore["reason"], restore
        assert restore.get("safety_backup_id") is None
    assert snapshot(env.zk, "/") == before


def test_safety_backup_of_an_unfinished_restore_cannot_be_deleted(env):
    with env.service() as (http, _):
        backup = create_ready(http, "base")
        env.zk.set("/marathon", b"changed")
        assert http.post(RESTORE, json={"id": backup["id"]}).status_code == 200
        assert restore_ended(http, backup["id"])["restores"][-1]["status"] == "STATUS_READY"
        safety_id = backup_doc(http, backup["id"])["restores"][-1]["safety_backup_id"]
    # The journal of a restore whose service was killed after its safety backup: it is still RESTORING.
    record = env.storage.read(backup["id"])
    restore = record.start_restore()
    restore.begin()
    restore.protect(safety_id)
    env.storage.write(record)
    safety = env.storage.read(safety_id)
    safety.safety_restore = restore.id  # the safety backup this restore took (recovery rolls back to no other)
    env.storage.write(safety)
    engine = ZkEngine(env.hosts)
    service = BackupService(env.storage, engine, dcos_version="2.2.0", instance="master-1")
    try:
        with in_process_api(service, env.hosts) as api:
            reply = api.http.request("DELETE", DELETE, json={"id": safety_id})
            assert reply.status_code == 409, reply.text
            assert restore.id in reply.json()["errors"][0]
            service.recover()  # the rollback it needs runs; then the safety backup may go
            ended = restore_ended(api.http, backup["id"])["restores"][-1]
            assert ended["status"] == "STATUS_ERROR" and "rolled back" in ended["reason"], ended
            assert api.http.request("DELETE", DELETE, json={"id": safety_id}).status_code == 200
    finally:
        service.close()
        engine.close()


def test_the_service_starts_over_a_damaged_catalog(env):
    """recover() (the start-up) walks every entry: a damaged one is left as it is, never rewritten."""
    backup_id = f"broken-{uuid.uuid4()}"
    put_raw(env.storage, backup_id, b'{"id": 1}')
    with env.service() as (http, _):
        assert http.get(LIST).status_code == 200
    assert env.storage.objects.get_bytes(env.storage.record_object(backup_id)) == b'{"id": 1}'


def test_a_portable_backup_is_signed_by_the_cluster_that_receives_it(env, tmp_path):
    """Download from this cluster, upload to another with its own record key: the other verifies the
    archives whole, signs the record with its key, and restores it; a record tampered with in the file
    is refused there by the checks behind the HMAC (here: a root the registry does not have)."""
    with env.service() as (http, _):
        backup = create_ready(http, "portable")
        portable = http.get(DOWNLOAD, params={"id": backup["id"]}).content
    other = LocalStorage(tmp_path / "other-cluster", record_key=EncryptionKey(bytes(range(200, 232))))
    imported = import_backup(other, io.BytesIO(portable))
    assert other.read(imported.id).signature != env.storage.read(backup["id"]).signature
    env.zk.set("/marathon", b"changed since the backup")
    with service_api(other, env.hosts) as api:
        assert api.http.post(RESTORE, json={"id": backup["id"]}).status_code == 200
        assert restore_ended(api.http, backup["id"])["restores"][-1]["status"] == "STATUS_READY"
    assert env.zk.get("/marathon")[0] != b"changed since the backup"
    other.delete(backup["id"])
    forged = retarred(portable, "backup.json", lambda doc: doc.replace(b'"/marathon"', b'"/"', 1))
    imported = import_backup(other, io.BytesIO(forged))  # the archives are whole: it is taken, and signed
    with service_api(other, env.hosts) as api:
        reply = api.http.post(RESTORE, json={"id": imported.id})
        assert reply.status_code == 422 and "registry says /marathon" in reply.text, reply.text


def retarred(portable: bytes, name: str, edit) -> bytes:
    """The portable file with its member ``name`` changed by ``edit`` (a well-formed tar again)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(portable)) as source, tarfile.open(fileobj=out, mode="w") as target:
        for member in source:
            data = source.extractfile(member).read()
            if member.name == name:
                data = edit(data)
                member.size = len(data)
            target.addfile(member, io.BytesIO(data))
    return out.getvalue()
