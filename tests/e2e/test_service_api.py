"""The backup service's HTTP API, in-process (FastAPI TestClient) against the real shared ensemble.

Each test gets its own ZooKeeper chroot and catalog directory, so tests cannot see each other's lock.
The service is given a FaultyEngine (the real engine, faults off unless a test switches one on).
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from tests.e2e.faulty_engine import FaultyEngine
from tests.helpers import damage, wait_for

from dcos_backup.catalog.archive import read_archive
from dcos_backup.catalog.models import BackupRecord, Status, new_backup_id, now
from dcos_backup.catalog.storage import LocalStorage
from dcos_backup.service.app import PREFIX, build_app
from dcos_backup.service.engine import ZkEngine
from dcos_backup.service.jobs import BackupService
from dcos_backup.testing.seed import seed_marathon
from dcos_backup.testing.trees import snapshot
from dcos_backup.zk import connect

pytestmark = pytest.mark.e2e
TOKEN = "s3cret-token"


@pytest.fixture
def env(cluster, tmp_path):
    chroot = f"/svc-{uuid.uuid4().hex[:10]}"
    admin = connect(cluster.zk_hosts)
    admin.create(chroot)
    zk = connect(cluster.zk_hosts + chroot)
    seed_marathon(zk, apps=20, seed=5)
    engine = ZkEngine(cluster.zk_hosts + chroot)
    service = BackupService(LocalStorage(tmp_path / "backups"), FaultyEngine(engine))
    http = TestClient(build_app(service, TOKEN), headers={"Authorization": f"Bearer {TOKEN}"})
    yield http, service, zk
    service.close()
    engine.close()
    zk.stop()
    admin.delete(chroot, recursive=True)
    admin.stop()


@pytest.fixture
def slow_reader(env):
    """Hold the engine's reads at a gate so a job is still running when the next request arrives."""
    _, service, _ = env
    gate = threading.Event()
    service.engine.gate = gate
    yield gate
    gate.set()


def create_ready(http, label="pre-upgrade") -> dict:
    doc = http.post(f"{PREFIX}/backups", json={"label": label}).json()
    return wait_for(
        lambda: (d := http.get(f"{PREFIX}/backups/{doc['id']}").json())["status"] != "STATUS_BACKING_UP" and d,
        what="backup to finish",
    )


def test_backup_lifecycle_and_restore_byte_for_byte(env):
    http, _, zk = env
    before = snapshot(zk)
    response = http.post(f"{PREFIX}/backups", json={"label": "pre-upgrade"})
    assert response.status_code == 202
    assert response.json()["status"] == "STATUS_BACKING_UP"
    assert response.json()["id"].startswith("pre-upgrade-")
    doc = wait_for(
        lambda: (d := http.get(f"{PREFIX}/backups/{response.json()['id']}").json())["status"] == "STATUS_READY" and d
    )
    comp = doc["components"]["marathon"]
    assert comp["nodes"] == len(before) and comp["status"] == "STATUS_READY" and len(comp["sha256"]) == 64
    assert comp["skipped_ephemeral"] == 0 and comp["zxid_window"]["last"] >= comp["zxid_window"]["first"] > 0

    damage(zk)
    assert snapshot(zk) != before
    restore = http.post(f"{PREFIX}/backups/{doc['id']}/restore")
    assert restore.status_code == 202
    assert restore.json()["restores"]["component_status"]["marathon"] == "STATUS_RESTORING"
    final = wait_for(
        lambda: (
            (d := http.get(f"{PREFIX}/backups/{doc['id']}").json())["restores"]["status"] != "STATUS_RESTORING" and d
        )
    )
    assert final["restores"]["component_status"]["marathon"] == "STATUS_READY", final["restores"]
    assert snapshot(zk) == before
    stats = final["restores"]["history"][-1]["stats"]["marathon"]
    assert stats["created"] > 0 and stats["updated"] > 0 and stats["deleted"] == 2
    safety = http.get(f"{PREFIX}/backups/{final['restores']['safety_backup_id']}").json()
    assert safety["safety"] and safety["label"].startswith("safety-") and safety["status"] == "STATUS_READY"

    listed = http.get(f"{PREFIX}/backups", params={"label": "pre-upgrade"}).json()
    assert [d["id"] for d in listed] == [doc["id"]]
    assert http.delete(f"{PREFIX}/backups/{doc['id']}").status_code == 200
    assert doc["id"] not in [d["id"] for d in http.get(f"{PREFIX}/backups").json()]


@pytest.mark.parametrize("label", ["ab", "a" * 26, "..abc", "a/b", "a b", "prè", "", None, 5])
def test_bad_labels_are_400_and_create_nothing(env, label):
    http, _, _ = env
    response = http.post(f"{PREFIX}/backups", json={"label": label})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request" and "label" in response.json()["message"]
    assert http.get(f"{PREFIX}/backups").json() == []


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer"}]
)
def test_token_is_required_everywhere(env, headers):
    http, _, _ = env
    raw = TestClient(http.app)
    some_id = new_backup_id("abc")
    for method, path in [
        ("post", "/backups"),
        ("get", "/backups"),
        ("get", f"/backups/{some_id}"),
        ("delete", f"/backups/{some_id}"),
        ("post", f"/backups/{some_id}/restore"),
    ]:
        response = getattr(raw, method)(
            PREFIX + path, headers=headers, **({"json": {"label": "abc"}} if method == "post" else {})
        )
        assert response.status_code == 401, (method, path)
        assert response.json()["code"] == "unauthorized"
    assert raw.get(f"{PREFIX}/health").status_code == 200  # liveness needs no token


def test_unknown_and_malformed_ids_are_404(env):
    http, _, _ = env
    for backup_id in [new_backup_id("nope"), "..%2F..%2Fetc", "whatever"]:
        assert http.get(f"{PREFIX}/backups/{backup_id}").status_code == 404
        assert http.delete(f"{PREFIX}/backups/{backup_id}").status_code == 404
        response = http.post(f"{PREFIX}/backups/{backup_id}/restore")
        assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_concurrent_creates_one_runs_the_rest_get_409(env, slow_reader):
    http, _, _ = env
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda i: http.post(f"{PREFIX}/backups", json={"label": f"burst-{i}"}), range(8)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] + [409] * 7
    running = next(r.json()["id"] for r in responses if r.status_code == 202)
    assert all(running in r.json()["message"] for r in responses if r.status_code == 409)
    slow_reader.set()
    wait_for(lambda: http.get(f"{PREFIX}/backups/{running}").json()["status"] == "STATUS_READY")
    assert len(http.get(f"{PREFIX}/backups").json()) == 1


def test_delete_while_creating_or_restoring_is_409(env, slow_reader):
    http, _, _ = env
    slow_reader.set()
    ready = create_ready(http, "first")
    slow_reader.clear()
    creating = http.post(f"{PREFIX}/backups", json={"label": "second"}).json()
    response = http.delete(f"{PREFIX}/backups/{creating['id']}")
    assert response.status_code == 409
    assert http.post(f"{PREFIX}/backups/{ready['id']}/restore").status_code == 409  # one job at a time
    slow_reader.set()
    wait_for(lambda: http.get(f"{PREFIX}/backups/{creating['id']}").json()["status"] == "STATUS_READY")

    slow_reader.clear()
    assert http.post(f"{PREFIX}/backups/{ready['id']}/restore").status_code == 202
    assert http.delete(f"{PREFIX}/backups/{ready['id']}").status_code == 409
    slow_reader.set()
    wait_for(lambda: http.get(f"{PREFIX}/backups/{ready['id']}").json()["restores"]["status"] == "STATUS_READY")
    assert http.delete(f"{PREFIX}/backups/{ready['id']}").status_code == 200


def test_flipped_byte_restore_refused_and_zookeeper_untouched(env):
    http, service, zk = env
    doc = create_ready(http)
    archive = service.storage.archive_path(doc["id"], "marathon.dcosbkp")
    blob = bytearray(archive.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    archive.write_bytes(bytes(blob))
    damage(zk)
    damaged = snapshot(zk)
    http.post(f"{PREFIX}/backups/{doc['id']}/restore")
    final = wait_for(
        lambda: (
            (d := http.get(f"{PREFIX}/backups/{doc['id']}").json())["restores"]["status"] != "STATUS_RESTORING" and d
        )
    )
    assert final["restores"]["status"] == "STATUS_ERROR"
    assert final["restores"]["component_status"]["marathon"] == "STATUS_ERROR"
    assert "checksum" in final["restores"]["reason"] and "not changed" in final["restores"]["reason"]
    assert final["restores"]["safety_backup_id"] is None
    assert snapshot(zk) == damaged


def test_restore_of_a_failed_backup_is_refused(env):
    http, service, _ = env
    failed = BackupRecord(
        id=new_backup_id("broken"), label="broken", status=Status.ERROR, reason="boom", created_at=now()
    )
    service.storage.write(failed)
    response = http.post(f"{PREFIX}/backups/{failed.id}/restore")
    assert response.status_code == 409 and "STATUS_ERROR" in response.json()["message"]


def test_failed_restore_rolls_back_to_the_safety_backup(env):
    http, service, zk = env
    doc = create_ready(http)
    damage(zk)
    damaged = snapshot(zk)
    service.engine.compare_lies = 1  # the verification after the restore "finds" a difference
    http.post(f"{PREFIX}/backups/{doc['id']}/restore")
    final = wait_for(
        lambda: (
            (d := http.get(f"{PREFIX}/backups/{doc['id']}").json())["restores"]["status"] != "STATUS_RESTORING" and d
        )
    )
    assert final["restores"]["status"] == "STATUS_ERROR"
    assert "injected difference" in final["restores"]["reason"]
    assert "rolled back to the safety backup" in final["restores"]["reason"]
    assert snapshot(zk) == damaged


def test_restart_marks_interrupted_jobs_and_removes_partials(env):
    http, service, _ = env
    done = create_ready(http, "kept")
    running = BackupRecord(id=new_backup_id("cut"), label="cut", status=Status.BACKING_UP, created_at=now())
    service.storage.write(running)
    # what a SIGKILLed service leaves behind: a running record and a partial archive
    partial = service.storage.archive_path(running.id, "marathon.dcosbkp.partial")
    partial.write_bytes(b"half an archive")
    assert service.recover() == [running.id]
    assert not partial.exists()
    record = service.get(running.id)
    assert record.status == Status.ERROR and "interrupted" in record.reason
    assert service.get(done["id"]).status == Status.READY


def test_a_read_failing_mid_backup_is_an_error_and_frees_the_lock_at_once(env):
    http, service, _ = env
    service.engine.read_fails_after = 10
    failed = create_ready(http, "cut-short")
    assert failed["status"] == "STATUS_ERROR" and failed["reason"] == "injected: connection lost after 10 nodes"
    component = failed["components"]["marathon"]
    assert component["status"] == "STATUS_ERROR" and component["reason"] == failed["reason"]
    assert sorted(p.name for p in service.storage.archive_path(failed["id"], "x").parent.iterdir()) == ["backup.json"]
    service.engine.read_fails_after = None
    assert create_ready(http, "next")["status"] == "STATUS_READY"  # no 409: the lock went with the final write


def interrupted_restore(service: BackupService, backup_id: str, safety_id: str | None) -> None:
    """What a service killed mid-restore leaves in the catalog: a restore still STATUS_RESTORING."""
    record = service.get(backup_id)
    restore = record.start_restore()
    if safety_id is not None:
        restore.protect(safety_id)
    service.storage.write(record)


def test_restart_rolls_an_interrupted_restore_back_to_its_safety_backup(env):
    http, service, zk = env
    wanted = create_ready(http, "wanted")
    damage(zk)
    damaged = snapshot(zk)
    safety = create_ready(http, "safety-20260101T000000")
    interrupted_restore(service, wanted["id"], safety["id"])
    with service.storage.archive_reader(wanted["id"], "marathon.dcosbkp") as raw:  # the restore got that far
        service.engine.apply("/marathon", read_archive(raw))
    assert snapshot(zk) != damaged

    assert service.recover() == [wanted["id"]]
    final = wait_for(
        lambda: (
            (d := http.get(f"{PREFIX}/backups/{wanted['id']}").json())["restores"]["status"] != "STATUS_RESTORING" and d
        )
    )
    restores = final["restores"]
    assert restores["status"] == "STATUS_ERROR" and restores["component_status"] == {"marathon": "STATUS_ERROR"}
    assert restores["reason"] == (
        f"interrupted: the service stopped during the restore; rolled back to the safety backup {safety['id']}"
    )
    assert snapshot(zk) == damaged
    assert http.post(f"{PREFIX}/backups/{wanted['id']}/restore").status_code == 202  # the lock is free again


def test_restart_ends_a_restore_interrupted_before_any_change(env):
    http, service, zk = env
    wanted = create_ready(http, "wanted")
    damage(zk)
    damaged = snapshot(zk)
    interrupted_restore(service, wanted["id"], None)
    assert service.recover() == [wanted["id"]]
    restores = service.get(wanted["id"]).restores  # no job needed: ended at once
    assert restores.status == Status.ERROR and restores.component_status == {"marathon": Status.ERROR}
    assert restores.reason == "interrupted before any change; ZooKeeper was not touched"
    assert service.running is None and snapshot(zk) == damaged


def test_openapi_and_error_shapes(env):
    http, _, _ = env
    schema = TestClient(http.app).get(f"{PREFIX}/openapi.json").json()
    assert f"{PREFIX}/backups/{{backup_id}}/restore" in schema["paths"]
    document = {"$ref": "#/components/schemas/BackupDocument"}
    show = schema["paths"][f"{PREFIX}/backups/{{backup_id}}"]["get"]["responses"]
    assert show["200"]["content"]["application/json"]["schema"] == document
    assert show["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    listed = schema["paths"][f"{PREFIX}/backups"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["schema"]["items"] == document
    models = schema["components"]["schemas"]
    assert {"restores", "size", "progress", "components"} <= set(models["BackupDocument"]["properties"])
    assert {"component_status", "history", "safety_backup_id"} <= set(models["Restores"]["properties"])
    big = http.post(
        f"{PREFIX}/backups", content=b"{" + b" " * 70000 + b"}", headers={"content-type": "application/json"}
    )
    assert big.status_code == 413 and big.json()["code"] == "too_large"
    assert http.get("/nope").json()["code"] == "not_found"
    assert http.put(f"{PREFIX}/backups").json()["code"] == "method_not_allowed"
