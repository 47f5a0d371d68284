"""The backup service's HTTP API (DC/OS's v1), in-process (FastAPI TestClient) against the real shared ensemble.

Each test gets its own ZooKeeper chroot (its lock, its users) and catalog directory. The service is given a
FaultyEngine (the real engine, faults off unless a test switches one on); tokens are real RS256 JWTs.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from tests.helpers import backup_doc, create_ready, damage, restore_ended, wait_for

from dcos_backup.api.models import CANCEL, CREATE, DELETE, LIST, PREFIX, RESTORE
from dcos_backup.catalog.archive import read_archive
from dcos_backup.catalog.ids import new_backup_id
from dcos_backup.catalog.models import BackupRecord, Status, now
from dcos_backup.jobs.service import BackupService
from dcos_backup.storage.base import PARTIAL
from dcos_backup.testing.trees import snapshot

pytestmark = pytest.mark.e2e


@pytest.fixture
def slow_reader(env):
    """Hold the engine's reads at a gate so a job is still running when the next request arrives."""
    _, service, _, _ = env
    gate = threading.Event()
    service.engine.gate = gate
    yield gate
    gate.set()


def test_backup_lifecycle_and_restore_byte_for_byte(env):
    http, _, zk, _ = env
    before = snapshot(zk)
    assert http.get(LIST).text == "{}"
    response = http.post(CREATE, json={"label": "pre-upgrade"})
    assert response.status_code == 200
    created = response.json()["backup_info"]
    assert created["status"] == "STATUS_BACKING_UP" and created["id"].startswith("pre-upgrade-")
    assert {name: c["status"] for name, c in created["component_status"].items()} == {
        "marathon": "STATUS_UNKNOWN",
        "metronome": "STATUS_UNKNOWN",  # the default registry's second component
    }
    assert created["dcos_version"] == "2.2.0" and created["restores"] == []
    doc = wait_for(lambda: (d := backup_doc(http, created["id"]))["status"] == "STATUS_READY" and d)
    comp = doc["component_status"]["marathon"]
    assert comp["nodes"] == len(before) and comp["status"] == "STATUS_READY" and len(comp["sha256"]) == 64
    assert comp["skipped_ephemeral"] == 0 and comp["zxid_window"]["last"] >= comp["zxid_window"]["first"] > 0
    absent = doc["component_status"]["metronome"]  # no /metronome: backed up as empty, not an error
    assert absent["status"] == "STATUS_READY" and absent["nodes"] == 0 and absent["root"] == "/metronome"

    damage(zk)
    assert snapshot(zk) != before
    restore = http.post(RESTORE, json={"id": doc["id"]})
    assert restore.status_code == 200
    started = restore.json()["backup_info"]
    assert started["status"] == "STATUS_RESTORING" and started["backup_id"] == doc["id"]
    assert started["component_status"] == {
        "marathon": {"status": "STATUS_UNKNOWN", "stats": None},
        "metronome": {"status": "STATUS_UNKNOWN", "stats": None},
    }
    assert started["id"] != doc["id"] and len(started["id"]) == 36  # the restore's own id
    final = restore_ended(http, doc["id"], started["id"])
    latest = final["restores"][-1]
    assert latest["id"] == started["id"] and latest["status"] == "STATUS_READY", latest
    assert latest["component_status"]["marathon"]["status"] == "STATUS_READY"
    assert snapshot(zk) == before
    stats = latest["component_status"]["marathon"]["stats"]
    assert stats["created"] > 0 and stats["updated"] > 0 and stats["deleted"] == 2
    safety = backup_doc(http, latest["safety_backup_id"])
    assert safety["safety"] and safety["label"].startswith("safety-") and safety["status"] == "STATUS_READY"

    assert [d["id"] for d in http.get(LIST, params={"prefix": "pre-upgrade"}).json()["backup_info"]] == [doc["id"]]
    assert http.request("DELETE", DELETE, json={"id": latest["id"]}).status_code == 400  # a restore's id
    deleted = http.request("DELETE", DELETE, json={"id": doc["id"]})
    assert deleted.status_code == 200 and deleted.json()["backup_info"]["id"] == doc["id"]
    assert doc["id"] not in [d["id"] for d in http.get(LIST).json()["backup_info"]]


@pytest.mark.parametrize("label", ["ab", "a" * 26, "..abc", ".ab", "a-b", "a/b", "a b", "prè", "", None, 5, ["abc"]])
def test_bad_labels_are_400_and_create_nothing(env, label):
    http, _, _, _ = env
    response = http.post(CREATE, json={"label": label})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_request" and len(body["errors"]) == 1 and "label" in body["errors"][0]
    assert http.get(LIST).text == "{}"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", CREATE, {"label": "abc"}),
        ("GET", LIST, None),
        ("POST", RESTORE, {"id": new_backup_id("abc")}),
        ("DELETE", DELETE, {"id": new_backup_id("abc")}),
    ],
)
def test_every_route_needs_a_token_of_a_permitted_user(env, method, path, body):
    http, _, _, api = env
    raw = TestClient(http.app)
    for headers in ({}, {"Authorization": "token=wrong"}, {"Authorization": "Basic YTpi"}, {"Authorization": "token="}):
        response = raw.request(method, path, headers=headers, json=body)
        assert response.status_code == 401, (method, path, headers)
        assert response.json()["code"] == "unauthorized" and response.headers["www-authenticate"] == "acsjwt"
    forbidden = raw.request(method, path, headers=api.headers("nobody"), json=body)
    assert forbidden.status_code == 403
    assert forbidden.json()["errors"] == [
        "user 'nobody' lacks the permission dcos:adminrouter:ops:system-backup (action full)"
    ]
    assert raw.get(f"{PREFIX}/health").status_code == 200  # liveness needs no token
    assert http.get(LIST).text == "{}"  # nothing was created by the refused requests


def test_a_grant_counts_at_once(env):
    http, _, _, api = env
    raw = TestClient(http.app)
    assert raw.get(LIST, headers=api.headers("late")).status_code == 401  # unknown user
    api.users.update(lambda d: d.add_user("late"))
    assert raw.get(LIST, headers=api.headers("late")).status_code == 403
    api.users.update(lambda d: d.user("late").grant("dcos:adminrouter:ops:system-backup"))
    assert raw.get(LIST, headers=api.headers("late")).status_code == 200


def test_ids_that_are_no_backups_are_400_and_unknown_backups_404(env):
    http, _, _, _ = env
    for bad in ("..%2F..%2Fetc", "whatever", str(uuid.uuid4()), "", 7, None):
        for method, path in (("POST", RESTORE), ("DELETE", DELETE)):
            response = http.request(method, path, json={"id": bad})
            assert response.status_code == 400 and response.json()["code"] == "invalid_request", (bad, path)
    unknown = new_backup_id("nope")
    for method, path in (("POST", RESTORE), ("DELETE", DELETE)):
        response = http.request(method, path, json={"id": unknown})
        assert response.status_code == 404 and response.json()["errors"] == [f"no backup with id {unknown!r}"]
    assert http.post(RESTORE).status_code == 400  # no body at all


def test_concurrent_creates_one_runs_the_rest_get_409(env, slow_reader):
    http, _, _, _ = env
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda i: http.post(CREATE, json={"label": f"burst-{i}"}), range(8)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 7
    running = next(r.json()["backup_info"]["id"] for r in responses if r.status_code == 200)
    assert all(running in r.json()["errors"][0] for r in responses if r.status_code == 409)
    assert all(r.json()["details"] == {"running": running} for r in responses if r.status_code == 409)
    slow_reader.set()
    wait_for(lambda: backup_doc(http, running)["status"] == "STATUS_READY")
    assert len(http.get(LIST).json()["backup_info"]) == 1


def test_progress_and_component_status_while_a_backup_runs(env, slow_reader):
    http, _, _, _ = env
    backup_id = http.post(CREATE, json={"label": "watched"}).json()["backup_info"]["id"]
    running = wait_for(lambda: (d := backup_doc(http, backup_id)).get("progress") and d, what="progress")
    assert running["status"] == "STATUS_BACKING_UP"
    assert running["component_status"]["marathon"]["status"] == "STATUS_BACKING_UP"  # it has started
    assert running["progress"]["phase"] == "backing up marathon"
    slow_reader.set()
    done = wait_for(lambda: (d := backup_doc(http, backup_id))["status"] == "STATUS_READY" and d)
    assert "progress" not in done


def test_a_list_can_wait_for_the_end_of_a_job(env, slow_reader):
    """``GET /list?prefix=<id>&wait=S``: held while the job on that backup runs, answered when it ends."""
    http, _, _, _ = env
    backup_id = http.post(CREATE, json={"label": "awaited"}).json()["backup_info"]["id"]
    started = time.monotonic()
    held = http.get(LIST, params={"prefix": backup_id, "wait": 0.5}).json()["backup_info"][0]
    assert held["status"] == "STATUS_BACKING_UP" and time.monotonic() - started >= 0.5  # the job is held
    started = time.monotonic()
    assert http.get(LIST, params={"prefix": "other", "wait": 20}).text == "{}"  # no job there: no wait
    assert time.monotonic() - started < 20
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(lambda: http.get(LIST, params={"prefix": backup_id, "wait": 30}).json())
        slow_reader.set()
        assert waiting.result()["backup_info"][0]["status"] == "STATUS_READY"
    for bad in ("-1", "31", "soon"):
        assert http.get(LIST, params={"wait": bad}).status_code == 400


def test_delete_while_creating_or_restoring_is_409(env, slow_reader):
    http, _, _, _ = env
    slow_reader.set()
    ready = create_ready(http, "first")
    slow_reader.clear()
    creating = http.post(CREATE, json={"label": "second"}).json()["backup_info"]
    assert http.request("DELETE", DELETE, json={"id": creating["id"]}).status_code == 409
    assert http.post(RESTORE, json={"id": ready["id"]}).status_code == 409  # one job at a time
    slow_reader.set()
    wait_for(lambda: backup_doc(http, creating["id"])["status"] == "STATUS_READY")

    slow_reader.clear()
    assert http.post(RESTORE, json={"id": ready["id"]}).status_code == 200
    assert http.request("DELETE", DELETE, json={"id": ready["id"]}).status_code == 409
    slow_reader.set()
    assert restore_ended(http, ready["id"])["restores"][-1]["status"] == "STATUS_READY"
    assert http.request("DELETE", DELETE, json={"id": ready["id"]}).status_code == 200


def test_flipped_byte_restore_refused_and_zookeeper_untouched(env):
    http, service, zk, _ = env
    doc = create_ready(http)
    archive = service.storage.archive_path(doc["id"], "marathon.dcosbkp")
    blob = bytearray(archive.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    archive.write_bytes(bytes(blob))
    damage(zk)
    damaged = snapshot(zk)
    http.post(RESTORE, json={"id": doc["id"]})
    restore = restore_ended(http, doc["id"])["restores"][-1]
    assert restore["status"] == "STATUS_ERROR"
    assert restore["component_status"]["marathon"]["status"] == "STATUS_ERROR"
    assert "checksum" in restore["reason"] and "not changed" in restore["reason"]
    assert restore["safety_backup_id"] is None
    assert snapshot(zk) == damaged


def test_restore_of_a_failed_backup_is_refused(env):
    http, service, _, _ = env
    failed = BackupRecord(
        dcos_version="2.2.0",
        id=new_backup_id("broken"),
        label="broken",
        status=Status.ERROR,
        reason="boom",
        timestamp=now(),
    )
    service.storage.write(failed)
    response = http.post(RESTORE, json={"id": failed.id})
    assert response.status_code == 409 and "STATUS_ERROR" in response.json()["errors"][0]


def test_failed_restore_rolls_back_to_the_safety_backup(env):
    http, service, zk, _ = env
    doc = create_ready(http)
    damage(zk)
    damaged = snapshot(zk)
    service.engine.compare_lies = 2  # both verifications (after the planned changes, after applying again) "find" one
    http.post(RESTORE, json={"id": doc["id"]})
    restore = restore_ended(http, doc["id"])["restores"][-1]
    assert restore["status"] == "STATUS_ERROR"
    assert "injected difference" in restore["reason"]
    assert "rolled back to the safety backup" in restore["reason"]
    assert snapshot(zk) == damaged


def test_restart_marks_interrupted_jobs_and_removes_partials(env):
    http, service, _, _ = env
    done = create_ready(http, "kept")
    running = BackupRecord.start("cut", {"marathon": "/marathon"}, "2.2.0")
    running.start_component("marathon")
    service.storage.write(running)
    # what a SIGKILLed service leaves behind: a running record and a partial archive
    partial = service.storage.archive_path(running.id, f"{PARTIAL}0001.marathon.dcosbkp")
    partial.parent.mkdir(mode=0o700)  # the archive's writer makes the backup's folder (the record is beside it)
    partial.write_bytes(b"half an archive")
    assert service.recover() == [running.id]
    assert not partial.exists()
    record = service.get(running.id)
    assert record.status == Status.ERROR and "interrupted" in record.reason
    assert record.component_status["marathon"].status == Status.ERROR
    assert service.get(done["id"]).status == Status.READY


def test_the_leader_moves_records_of_the_first_layout_when_it_takes_over(env):
    """A catalog written before records moved beside their folders (``<id>/backup.json``) lists as it is,
    and the recovery a leader runs first moves each record to ``<id>.json``, byte for byte."""
    http, service, _, _ = env
    done = create_ready(http, "old-layout")
    objects = service.storage.objects
    raw = objects.get_bytes(service.storage.record_object(done["id"]))
    objects.put(f"{done['id']}/backup.json", raw)
    objects.delete(service.storage.record_object(done["id"]))
    assert [d["id"] for d in http.get(LIST).json()["backup_info"]] == [done["id"]]
    service.recover()
    assert objects.get_bytes(service.storage.record_object(done["id"])) == raw
    assert not service.storage.archive_path(done["id"], "backup.json").exists()
    assert backup_doc(http, done["id"])["status"] == "STATUS_READY"


def test_a_read_failing_mid_backup_is_an_error_and_frees_the_lock_at_once(env):
    http, service, _, _ = env
    service.engine.read_fails_after = 10
    failed = create_ready(http, "cut-short")
    assert failed["status"] == "STATUS_ERROR" and failed["reason"] == "injected: connection lost after 10 nodes"
    component = failed["component_status"]["marathon"]
    assert component["status"] == "STATUS_ERROR" and component["reason"] == failed["reason"]
    assert list(service.storage.archive_path(failed["id"], "x").parent.iterdir()) == []  # the record is beside it
    service.engine.read_fails_after = None
    assert create_ready(http, "next")["status"] == "STATUS_READY"  # no 409: the lock went with the final write


def interrupted_restore(service: BackupService, backup_id: str, safety_id: str | None) -> None:
    """What a service killed mid-restore leaves in the catalog: a restore still STATUS_RESTORING."""
    record = service.get(backup_id)
    restore = record.start_restore()
    restore.begin()
    if safety_id is not None:
        restore.protect(safety_id)
        mark_as_safety_of(service.storage, safety_id, backup_id, restore.id)
    service.storage.write(record)


def mark_as_safety_of(storage, safety_id: str, backup_id: str, restore_id: str) -> None:
    """Make ``safety_id`` the safety backup the restore ``restore_id`` took (recovery rolls back to no other)."""
    safety = storage.read(safety_id)
    safety.safety, safety.safety_for, safety.safety_restore = True, backup_id, restore_id
    storage.write(safety)


def test_restart_rolls_an_interrupted_restore_back_to_its_safety_backup(env):
    http, service, zk, _ = env
    wanted = create_ready(http, "wanted")
    damage(zk)
    damaged = snapshot(zk)
    safety = create_ready(http, "safety-20260101T000000")
    interrupted_restore(service, wanted["id"], safety["id"])
    with service.storage.archive_reader(wanted["id"], "marathon.dcosbkp") as raw:  # the restore got that far
        service.engine.apply("/marathon", read_archive(raw))
    assert snapshot(zk) != damaged

    assert service.recover() == [wanted["id"]]
    restore = restore_ended(http, wanted["id"])["restores"][-1]
    assert restore["status"] == "STATUS_ERROR"
    assert restore["component_status"] == {
        "marathon": {"status": "STATUS_ERROR", "stats": None},
        "metronome": {"status": "STATUS_ERROR", "stats": None},
    }
    assert restore["reason"] == (
        f"interrupted: the service stopped during the restore; rolled back to the safety backup {safety['id']}"
    )
    assert snapshot(zk) == damaged
    assert http.post(RESTORE, json={"id": wanted["id"]}).status_code == 200  # the lock is free again


def test_restart_ends_a_restore_interrupted_before_any_change(env):
    http, service, zk, _ = env
    wanted = create_ready(http, "wanted")
    damage(zk)
    damaged = snapshot(zk)
    interrupted_restore(service, wanted["id"], None)
    assert service.recover() == [wanted["id"]]
    restore = service.get(wanted["id"]).latest_restore  # no job needed: ended at once
    assert restore.status == Status.ERROR and restore.component_status["marathon"].status == Status.ERROR
    assert restore.reason == "interrupted before any change; ZooKeeper was not touched"
    assert service.running is None and snapshot(zk) == damaged


def test_openapi_and_error_shapes(env):
    http, _, _, _ = env
    schema = TestClient(http.app).get(f"{PREFIX}/openapi.json").json()
    assert {CREATE, LIST, RESTORE, DELETE} <= set(schema["paths"])
    assert not any("/backups" in path for path in schema["paths"])  # the old routes are gone
    listed = schema["paths"][LIST]["get"]["responses"]
    assert listed["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/BackupList"}
    for path, method in ((CREATE, "post"), (LIST, "get"), (RESTORE, "post"), (DELETE, "delete")):
        responses = schema["paths"][path][method]["responses"]
        for status in ("400", "401", "403"):
            assert responses[status]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"
            }, (path, status)
    models = schema["components"]["schemas"]
    assert list(models["BackupDocument"]["properties"])[:6] == [
        "dcos_version",
        "id",
        "timestamp",
        "status",
        "component_status",
        "restores",
    ]
    assert {"label", "size", "progress", "reason"} <= set(models["BackupDocument"]["properties"])
    assert models["CreateBackup"]["properties"]["label"]["pattern"] == "^[A-Za-z0-9_][A-Za-z0-9_][A-Za-z0-9_.-]*$"
    big = http.post(CREATE, content=b"{" + b" " * 70000 + b"}", headers={"content-type": "application/json"})
    assert big.status_code == 413 and big.json()["code"] == "too_large"
    assert http.get("/nope").json()["code"] == "not_found"
    assert http.put(CREATE).json() == {"errors": ["Method Not Allowed"], "code": "method_not_allowed"}


def test_cancel_a_backup_and_a_restore(env, slow_reader):
    http, service, zk, _ = env
    slow_reader.set()
    ready = create_ready(http)
    slow_reader.clear()  # the next backup stops reading after a few nodes
    running = http.post(CREATE, json={"label": "doomed"}).json()["backup_info"]
    wait_for(lambda: service.running is not None and service.running.id == running["id"])
    cancelled = http.post(CANCEL, json={"id": running["id"]})
    assert cancelled.status_code == 200 and cancelled.json()["backup_info"]["id"] == running["id"]
    slow_reader.set()
    doc = wait_for(lambda: (d := backup_doc(http, running["id"]))["status"] != "STATUS_BACKING_UP" and d)
    assert doc["status"] == "STATUS_ERROR" and doc["reason"] == "cancelled"
    assert not list(service.storage.archive_path(running["id"], "marathon.dcosbkp").parent.glob("*.partial"))

    damage(zk)
    damaged = snapshot(zk)
    service.engine.apply_gate = gate = threading.Event()  # the restore stops after a few nodes of its apply
    http.post(RESTORE, json={"id": ready["id"]})
    wait_for(lambda: service.progress(ready["id"]) and service.progress(ready["id"])["phase"] == "applying marathon")
    assert "STATUS_RESTORING" in [r["status"] for r in backup_doc(http, ready["id"])["restores"]]
    assert http.post(CANCEL, json={"id": ready["id"]}).status_code == 200
    gate.set()
    restore = restore_ended(http, ready["id"])["restores"][-1]
    assert restore["status"] == "STATUS_ERROR"
    assert restore["reason"].startswith("cancelled; rolled back to the safety backup "), restore["reason"]
    assert snapshot(zk) == damaged

    nothing = http.post(CANCEL, json={"id": ready["id"]})  # no job runs on it any more
    assert nothing.status_code == 409 and nothing.json()["errors"] == [
        f"no backup, restore or drill runs on {ready['id']}"
    ]
    assert http.post(CANCEL, json={"id": new_backup_id("nope")}).status_code == 404


def safety_ids(http) -> list[str]:
    return [d["id"] for d in http.get(LIST, params={"prefix": "safety-"}).json()["backup_info"]]


@pytest.mark.parametrize("env", [{"keep_safety": 2}], indirect=True)
def test_only_the_newest_safety_backups_are_kept(env):
    http, service, zk, _ = env
    doc = create_ready(http)
    safeties = []
    for round_no in range(3):
        if round_no == 0:
            damage(zk)
        else:
            zk.set("/marathon/state/framework-id", b"round %d" % round_no)
        http.post(RESTORE, json={"id": doc["id"]})
        restore_ended(http, doc["id"])
        # Pruning runs after the READY record is written, before the job ends: look once it has ended.
        wait_for(lambda: service.running is None, what="the restore's job to end")
        restore = restore_ended(http, doc["id"])["restores"][-1]
        assert restore["status"] == "STATUS_READY", restore
        safeties.append(restore["safety_backup_id"])
        # Pruning runs after the READY record is written (best effort, JobRunner.after_job): wait for its state.
        wait_for(lambda: safety_ids(http) == safeties[-2:], what="the older safety backups pruned")  # oldest first
        if round_no == 2:
            restore = wait_for(
                lambda: (r := backup_doc(http, doc["id"])["restores"][-1]).get("pruned_safety_backups") and r,
                what="the pruned safety backups named in the restore",
            )
        assert restore["pruned_safety_backups"] == (safeties[:1] if round_no == 2 else None)

    service.engine.compare_lies = 2  # a failed restore prunes nothing
    http.post(RESTORE, json={"id": doc["id"]})
    failed = restore_ended(http, doc["id"])["restores"][-1]
    assert failed["status"] == "STATUS_ERROR" and failed["pruned_safety_backups"] is None
    assert len(http.get(LIST, params={"prefix": "safety-"}).json()["backup_info"]) == 3


def test_a_restore_reports_its_phases_and_counts(env):
    http, service, zk, _ = env
    doc = create_ready(http)
    total = doc["component_status"]["marathon"]["nodes"]
    assert total > 100
    damage(zk)
    service.engine.gate_after = 70
    service.engine.gate = gate = threading.Event()  # the live read stops after 70 nodes

    def phase(name: str) -> Callable[[], dict | None]:
        def reached() -> dict | None:
            progress = backup_doc(http, doc["id"]).get("progress")
            return progress if progress and progress["phase"] == name and progress["nodes"] else None

        return reached

    http.post(RESTORE, json={"id": doc["id"]})
    progress = wait_for(phase("safety backup and difference of marathon"))
    # the archive's nodes merged so far, counted every 64: the live read's gate holds them under 128
    assert progress["nodes"] == 64 and progress["total"] == total
    assert progress["safety_backup_id"].startswith("safety-")
    gate.set()
    assert restore_ended(http, doc["id"])["restores"][-1]["status"] == "STATUS_READY"
