"""Hostile uploads (issue 24 items 3 and 4), against the real service on a real ensemble, local and S3.

A user who may upload portable backups may not steer what the service does with the rest of the catalog:
an upload enters as a plain READY backup (its restore history, safety and schedule marks dropped), a
restart rolls back only a restore this cluster started to the safety backup it took for that restore (at
the registry's roots), and pruning counts only this cluster's safety backups. Uploads do not race or leave
debris: one per id at a time, partial files private and swept at start, a delete that checks every key
first, reserved names, the file's layout to the byte, and archives this cluster cannot decrypt refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from tests.helpers import create_ready, in_process_api, marathon_chroot, restore_ended, service_api, wait_for

from dcos_backup.api.models import DELETE, LIST, RESTORE
from dcos_backup.api.paths import DOWNLOAD, UPLOAD
from dcos_backup.catalog.archive import ArchiveWriter
from dcos_backup.catalog.models import BackupRecord, RestoreRecord
from dcos_backup.catalog.portable import MARKER, import_backup
from dcos_backup.catalog.storage import LocalStorage, Storage, open_storage
from dcos_backup.errors import Conflict, DcosBackupError, IntegrityError
from dcos_backup.jobs.engine import ZkEngine
from dcos_backup.jobs.service import BackupService
from dcos_backup.logical import ZNode
from dcos_backup.storage.crypto import EncryptionKey
from dcos_backup.testing.trees import snapshot

pytestmark = pytest.mark.e2e

RECORD_KEY = EncryptionKey(bytes(range(100, 132)))
OTHER_KEY = EncryptionKey(bytes(range(40, 72)))  # an encryption key this cluster does not have
FUTURE = datetime(2099, 1, 1, tzinfo=UTC)


class Env:
    def __init__(self, hosts: str, zk, storage: Storage) -> None:
        self.hosts, self.zk, self.storage = hosts, zk, storage

    @contextlib.contextmanager
    def service(self) -> Iterator:
        """A new service process's worth of objects, recovered first (as a start-up does)."""
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
    with marathon_chroot(cluster, apps=6, seed=24) as (hosts, zk):
        zk.create("/dcos/cluster-id", b"the cluster's id", makepath=True)
        zk.create("/dcos/config", b"the cluster's config")
        yield Env(hosts, zk, storage)


# ------------------------------------------------------------------------------ portable files by hand
def member(name: str, data: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o600
    return info.tobuf(format=tarfile.PAX_FORMAT) + data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)


def portable(doc: dict, archives: dict[str, bytes], marker_id: str | None = None, end: bytes = b"\0" * 1024) -> bytes:
    marker = {"format": "dcos-backup-portable", "version": 1, "id": marker_id or doc["id"]}
    body = member(MARKER, json.dumps(marker).encode()) + member("backup.json", json.dumps(doc).encode())
    return body + b"".join(member(name, data) for name, data in archives.items()) + end


def parts(blob: bytes) -> tuple[dict, dict[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar}
    files.pop(MARKER)
    return json.loads(files.pop("backup.json")), files


def archive_of(component: str, root: str, paths: list[str]) -> tuple[bytes, dict]:
    """An archive of the nodes ``paths`` (empty data) and its record entry."""
    out = io.BytesIO()
    with ArchiveWriter(out, component, root) as writer:
        for path in paths:
            writer.add(ZNode(path, b"", (), None))
    data = out.getvalue()
    entry = {"status": "STATUS_READY", "root": root, "archive": f"{component}.dcosbkp", "nodes": len(paths)}
    return data, {**entry, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def renamed(doc: dict, label: str) -> dict:
    return {**doc, "id": f"{label}-{uuid.uuid4()}", "label": label}


def ids(http) -> list[str]:
    reply = http.get(LIST)
    assert reply.status_code == 200, reply.text
    return [d["id"] for d in reply.json().get("backup_info") or []]


# ------------------------------------------------------------------------------ item 3: records trusted
def test_uploaded_journal_and_safety_marks_never_roll_anything_back(env):
    """A "safety backup" of /dcos holding only /dcos, and a backup whose last restore is STATUS_RESTORING
    naming it: after a restart, /dcos is as it was, and both entered as plain READY backups."""
    with env.service() as (http, _):
        good = create_ready(http, "good")
        doc, files = parts(http.get(DOWNLOAD, params={"id": good["id"]}).content)
    evil_archive, evil_comp = archive_of("marathon", "/dcos", ["/dcos"])
    victim = renamed(doc, "victim")
    safety = {
        **renamed(doc, "safety-20991231T000000"),
        "component_status": {"marathon": evil_comp},
        "safety": True,
        "safety_for": victim["id"],
        "safety_restore": str(uuid.uuid4()),
        "schedule": "nightly",
        "timestamp": FUTURE.isoformat(),
    }
    restore = RestoreRecord.start(["marathon"])
    restore.begin()
    restore.protect(safety["id"])
    victim["restores"] = [json.loads(restore.model_dump_json())]
    victim["schedule"] = "nightly"
    before = snapshot(env.zk, "/dcos")
    with env.service() as (http, _):
        for blob in (portable(safety, {"marathon.dcosbkp": evil_archive}), portable(victim, files)):
            reply = http.post(UPLOAD, content=blob)
            assert reply.status_code == 200, reply.text
    with env.service() as (http, service):  # the restart
        wait_for(lambda: service.running is None, what="no job")
        shown = {d["id"]: d for d in http.get(LIST).json()["backup_info"]}
    assert snapshot(env.zk, "/dcos") == before
    for backup_id in (victim["id"], safety["id"]):
        entered = shown[backup_id]
        assert entered["status"] == "STATUS_READY" and entered["restores"] == [], entered
        assert not entered["safety"] and entered["safety_for"] is None and entered["schedule"] is None, entered
        assert entered["uploaded"] is not None and "safety_restore" not in entered, entered


def test_recovery_rolls_back_only_to_the_safety_backup_taken_for_that_restore(env):
    """The journal (signed: this cluster's) of an interrupted restore names, as its safety backup, an
    uploaded backup rooted at /dcos: the restart does not roll back, says why, and /dcos is untouched."""
    evil_archive, evil_comp = archive_of("marathon", "/dcos", ["/dcos"])
    with env.service() as (http, _):
        good = create_ready(http, "good")
        doc, _ = parts(http.get(DOWNLOAD, params={"id": good["id"]}).content)
        fake = {**renamed(doc, "safety-20260101T000000"), "component_status": {"marathon": evil_comp}}
        assert http.post(UPLOAD, content=portable(fake, {"marathon.dcosbkp": evil_archive})).status_code == 200
    record = env.storage.read(good["id"])
    restore = record.start_restore()
    restore.begin()
    restore.protect(fake["id"])
    env.storage.write(record)
    before = snapshot(env.zk, "/dcos")
    with env.service() as (http, _):
        ended = restore_ended(http, good["id"])["restores"][-1]
    assert ended["status"] == "STATUS_ERROR" and "not rolled back" in ended["reason"], ended
    assert snapshot(env.zk, "/dcos") == before


def test_uploaded_safety_backups_do_not_make_a_restore_prune_its_own(env):
    with env.service() as (http, _):
        good = create_ready(http, "good")
        doc, files = parts(http.get(DOWNLOAD, params={"id": good["id"]}).content)
        forged = []
        for _ in range(3):
            fake = {**renamed(doc, "safety-20991231T000000"), "safety": True, "timestamp": FUTURE.isoformat()}
            fake["safety_for"] = good["id"]
            assert http.post(UPLOAD, content=portable(fake, files)).status_code == 200
            forged.append(fake["id"])
        env.zk.set("/marathon", b"changed since the backup")
        assert http.post(RESTORE, json={"id": good["id"]}).status_code == 200
        ended = restore_ended(http, good["id"])["restores"][-1]
        assert ended["status"] == "STATUS_READY", ended
        listed = ids(http)
    assert ended["safety_backup_id"] in listed, "the restore pruned its own safety backup"
    assert not set(ended.get("pruned_safety_backups") or ()) & set(forged)
    assert set(forged) <= set(listed)


# ------------------------------------------------------------------------------ item 4: races, debris
class Gated(io.RawIOBase):
    """``data`` as a stream that stops at ``gate`` until ``release`` is set (``reached`` tells it got there)."""

    def __init__(self, data: bytes, gate: int) -> None:
        self.data, self.gate, self.pos = data, gate, 0
        self.reached, self.release = threading.Event(), threading.Event()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.pos == self.gate:
            self.reached.set()
            assert self.release.wait(60), "never released"
        stop = len(self.data) if size < 0 else self.pos + size
        if self.pos < self.gate:
            stop = min(stop, self.gate)
        chunk = self.data[self.pos : stop]
        self.pos += len(chunk)
        return chunk


def upload_in_thread(storage: Storage, source) -> tuple[threading.Thread, list]:
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(import_backup(storage, source))
        except DcosBackupError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_two_uploads_of_one_id_at_once_cannot_lose_an_archive(env):
    """The first upload has stored its archive and waits; a second one of the same id, whose archive fails
    its checksum, must not delete the first one's: the backup ends READY with its archive whole."""
    with env.service() as (http, _):
        good = create_ready(http, "good")
        blob = http.get(DOWNLOAD, params={"id": good["id"]}).content
        doc, files = parts(blob)
        http.request("DELETE", DELETE, json={"id": good["id"]})
    name = doc["component_status"]["marathon"]["archive"]
    whole = portable(doc, files)
    first = Gated(whole, len(whole) - 1024)  # every member read; the tar's end not yet
    thread, outcome = upload_in_thread(env.storage, first)
    assert first.reached.wait(60)
    broken = bytearray(files[name])
    broken[-1] ^= 1
    with contextlib.suppress(Conflict, IntegrityError):  # refused, or failed its checksum: it must not harm
        import_backup(env.storage, io.BytesIO(portable(doc, {**files, name: bytes(broken)})))
    first.release.set()
    thread.join(60)
    assert isinstance(outcome[0], BackupRecord), outcome
    with env.storage.checked_archive(doc["id"], name, doc["component_status"]["marathon"]["sha256"]):
        pass  # present and whole


def test_a_killed_upload_leaves_no_readable_partial_and_the_next_start_sweeps_it(env):
    if not isinstance(env.storage, LocalStorage):
        pytest.skip("partial files are the local store's (S3 keeps unfinished multipart uploads unlisted)")
    with env.service() as (http, _):
        good = create_ready(http, "good")
        doc, files = parts(http.get(DOWNLOAD, params={"id": good["id"]}).content)
        http.request("DELETE", DELETE, json={"id": good["id"]})
    name, data = "marathon.dcosbkp", files["marathon.dcosbkp"]
    blob = portable(doc, {name: data, **files})  # marathon's archive first
    start = len(portable(doc, {}, end=b"")) + len(member(name, data)) - len(data) - (-len(data) % 512)
    stuck = Gated(blob, start + len(data) // 2)  # in the middle of marathon's archive
    thread, outcome = upload_in_thread(env.storage, stuck)
    assert stuck.reached.wait(60)
    folder = env.storage.root / good["id"]
    partials = wait_for(lambda: list(folder.glob(".partial-*")), what="the partial archive")
    assert all(p.stat().st_mode & 0o077 == 0 for p in partials), [oct(p.stat().st_mode) for p in partials]
    with env.service():  # the next start of the service (the upload's process "died")
        assert not any(p.exists() for p in partials)
    stuck.release.set()
    thread.join(60)
    assert isinstance(outcome[0], DcosBackupError), outcome
    assert not (env.storage.root / env.storage.record_object(good["id"])).exists()


def test_delete_checks_every_key_before_it_removes_anything(env):
    with env.service() as (http, _):
        good = create_ready(http, "good")
        odd = f"{good['id']}/odd key"
        if isinstance(env.storage, LocalStorage):
            (env.storage.root / odd).write_bytes(b"x")
        else:
            objects = env.storage.objects
            objects.client.put_object(Bucket=objects.bucket, Key=objects.prefix + odd, Body=b"x")
        count = len(list(env.storage.objects.list(f"{good['id']}/")))
        reply = http.request("DELETE", DELETE, json={"id": good["id"]})
        assert reply.status_code == 422 and "odd key" in reply.json()["errors"][0], reply.text
        assert good["id"] in ids(http)
        assert len(list(env.storage.objects.list(f"{good['id']}/"))) == count  # nothing removed
        if isinstance(env.storage, LocalStorage):
            (env.storage.root / odd).unlink()
        else:
            objects.client.delete_object(Bucket=objects.bucket, Key=objects.prefix + odd)
        assert http.request("DELETE", DELETE, json={"id": good["id"]}).status_code == 200
        assert list(env.storage.objects.list(f"{good['id']}/")) == []


def test_files_that_break_the_format_are_refused_and_leave_nothing(env):
    with env.service() as (http, _):
        good = create_ready(http, "good")
        doc, files = parts(http.get(DOWNLOAD, params={"id": good["id"]}).content)
        http.request("DELETE", DELETE, json={"id": good["id"]})
        named_record = {**doc, "component_status": {"marathon": {**doc["component_status"]["marathon"]}}}
        named_record["component_status"]["marathon"]["archive"] = "backup.json"
        cases = {
            "an archive named backup.json": portable(
                named_record,
                {"backup.json": files["marathon.dcosbkp"], "metronome.dcosbkp": files["metronome.dcosbkp"]},
            ),
            "a marker naming another id": portable(doc, files, marker_id=f"other-{uuid.uuid4()}"),
            "bytes after the tar's end": portable(doc, files, end=b"\0" * 1024 + b"hidden"),
            "no end of the tar": portable(doc, files, end=b""),
            "a tar record of garbage after the end": portable(doc, files, end=b"\0" * 1024 + b"\1" * 9216),
        }
        for what, blob in cases.items():
            reply = http.post(UPLOAD, content=blob)
            assert reply.status_code == 422, (what, reply.text)
            assert list(env.storage.objects.list(f"{doc['id']}/")) == [], what
        padding = -len(portable(doc, files)) % tarfile.RECORDSIZE
        padded = portable(doc, files, end=b"\0" * (1024 + padding))
        taken = http.post(UPLOAD, content=padded)
        assert taken.status_code == 200, taken.text  # as tar tools pad: taken


def test_an_archive_this_cluster_cannot_decrypt_is_refused_naming_its_key(env, tmp_path):
    keyed = LocalStorage(tmp_path / "keyed", OTHER_KEY)
    with service_api(keyed, env.hosts) as api:
        backup = create_ready(api.http, "encrypted")
        blob = api.http.get(DOWNLOAD, params={"id": backup["id"]}).content
    with env.service() as (http, _):
        reply = http.post(UPLOAD, content=blob)
        assert reply.status_code == 422 and reply.json()["code"] == "encryption_key", reply.text
        assert OTHER_KEY.id in reply.json()["errors"][0]
        assert backup["id"] not in ids(http)
    assert list(env.storage.objects.list(f"{backup['id']}/")) == []
