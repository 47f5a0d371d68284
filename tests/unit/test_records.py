"""The records' state machine (legal and illegal transitions) and their JSON: DC/OS's documents
(BackupMetadata, RestoreMetadata) with DC/OS's keys first; files of the earlier format
(tests/unit/fixtures/*-backup.json, written by the service before the v1 API) load, upgraded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcos_backup.api.models import BackupDocument
from dcos_backup.catalog.archive import ArchiveSummary
from dcos_backup.catalog.models import FORMAT_VERSION, INTERRUPTED_BACKUP, BackupRecord, Status, ZxidWindow
from dcos_backup.errors import Conflict

FIXTURES = Path(__file__).parent / "fixtures"
SUMMARY = ArchiveSummary(nodes=3, data_bytes=10, bytes=120, sha256="ab" * 32)


def started(*components: str) -> BackupRecord:
    return BackupRecord.start("pre-upgrade", {name: f"/{name}" for name in components}, "2.2.0")


def backing_up(*components: str) -> BackupRecord:
    record = started(*components)
    for name in components:
        record.start_component(name)
    return record


def finish_component(record: BackupRecord, name: str) -> None:
    record.component_status[name].finish(f"{name}.dcosbkp", SUMMARY, 1, ZxidWindow(first=5, last=7))


def ready(*components: str) -> BackupRecord:
    record = backing_up(*components)
    for name in components:
        finish_component(record, name)
    record.finish()
    return record


# ---------------------------------------------------------------------------------------------- backups
def test_a_new_backups_components_are_unknown_until_they_start():
    record = started("marathon", "metronome")
    assert record.status == Status.BACKING_UP and record.dcos_version == "2.2.0"
    assert {n: c.status for n, c in record.component_status.items()} == {
        "marathon": Status.UNKNOWN,
        "metronome": Status.UNKNOWN,
    }
    record.start_component("marathon")
    assert record.component_status["marathon"].status == Status.BACKING_UP
    assert record.component_status["metronome"].status == Status.UNKNOWN
    with pytest.raises(Conflict):
        record.start_component("marathon")  # started once
    with pytest.raises(Conflict, match="no component secrets"):
        record.start_component("secrets")


def test_a_backup_goes_backing_up_to_ready():
    record = backing_up("marathon")
    assert record.status == Status.BACKING_UP and record.finished_at is None and not record.safety
    finish_component(record, "marathon")
    record.finish()
    comp = record.component_status["marathon"]
    assert record.status == Status.READY and record.finished_at >= record.timestamp
    assert (comp.status, comp.archive, comp.nodes, comp.bytes, comp.sha256) == (
        Status.READY,
        "marathon.dcosbkp",
        3,
        120,
        "ab" * 32,
    )
    assert comp.zxid_window == ZxidWindow(first=5, last=7) and comp.skipped_ephemeral == 1
    assert record.size == 120 and not record.in_progress


def test_a_failed_backup_fails_the_component_that_was_running():
    record = started("marathon", "metronome", "secrets")
    record.start_component("marathon")
    finish_component(record, "marathon")
    record.start_component("metronome")
    record.fail("no space left on the backup storage")
    assert record.status == Status.ERROR and record.reason == "no space left on the backup storage"
    assert record.finished_at is not None
    assert record.component_status["marathon"].status == Status.READY
    assert record.component_status["metronome"].status == Status.ERROR
    assert record.component_status["metronome"].reason == "no space left on the backup storage"
    assert record.component_status["secrets"].status == Status.UNKNOWN  # never started


def test_an_interrupted_backup_is_an_error_that_says_so():
    record = backing_up("marathon")
    record.interrupt()
    assert record.status == Status.ERROR and record.reason == INTERRUPTED_BACKUP
    assert record.component_status["marathon"].status == Status.ERROR


def test_a_safety_backup_names_the_backup_it_protects():
    protected = ready("marathon")
    safety = BackupRecord.start("safety-20260101T000000", {"marathon": "/marathon"}, "2.2.0", safety_for=protected.id)
    assert safety.safety and safety.safety_for == protected.id and safety.status == Status.BACKING_UP


@pytest.mark.parametrize(
    "move",
    [
        lambda r: r.finish(),
        lambda r: r.fail("late"),
        lambda r: r.interrupt(),
        lambda r: r.start_component("marathon"),
        lambda r: r.component_status["marathon"].finish("x", SUMMARY, 0, ZxidWindow(first=0, last=0)),
        lambda r: r.component_status["marathon"].fail("late"),
    ],
)
def test_a_finished_backup_cannot_move_again(move):
    for record in (ready("marathon"), failed_backup()):
        before = record.model_dump_json()
        with pytest.raises(Conflict):
            move(record)
        assert record.model_dump_json() == before, "a refused transition changed the record"


def failed_backup() -> BackupRecord:
    record = backing_up("marathon")
    record.fail("boom")
    return record


def test_a_backup_with_an_unfinished_component_cannot_be_ready():
    record = backing_up("marathon")
    with pytest.raises(Conflict, match="marathon"):
        record.finish()
    assert record.status == Status.BACKING_UP


# ---------------------------------------------------------------------------------------------- restores
def test_a_restore_goes_unknown_restoring_ready_with_counts_per_component():
    record = ready("marathon")
    restore = record.start_restore()
    assert record.latest_restore is restore and record.in_progress
    assert restore.status == Status.RESTORING and len(restore.id) == 36  # a bare uuid4: never a backup id
    assert restore.component_status["marathon"].status == Status.UNKNOWN
    restore.begin()
    assert restore.component_status["marathon"].status == Status.RESTORING
    restore.protect("safety-20260101T000000-" + "0" * 8 + "-0000-4000-8000-" + "0" * 12)
    stats = {"created": 1, "updated": 2, "deleted": 3, "unchanged": 4}
    restore.finish({"marathon": stats})
    doc = json.loads(record.model_dump_json())["restores"][-1]
    assert doc["status"] == "STATUS_READY"
    assert doc["component_status"] == {"marathon": {"status": "STATUS_READY", "stats": stats}}
    assert doc["finished_at"] is not None and doc["timestamp"] <= doc["finished_at"] and not record.in_progress


def test_a_failed_restore_fails_every_component():
    record = ready("marathon", "metronome")
    restore = record.start_restore()
    restore.fail("marathon: archive fails its checksum; ZooKeeper was not changed")
    assert restore.status == Status.ERROR and restore.finished_at is not None
    assert {n: c.status for n, c in restore.component_status.items()} == {
        "marathon": Status.ERROR,
        "metronome": Status.ERROR,
    }


def test_restores_are_a_list_oldest_first():
    record = ready("marathon")
    record.start_restore().fail("first")
    second = record.start_restore()
    assert [r.status for r in record.restores] == [Status.ERROR, Status.RESTORING]
    assert record.latest_restore is second


@pytest.mark.parametrize(
    "move",
    [
        lambda r: r.finish({}),
        lambda r: r.fail("late"),
        lambda r: r.protect("safety-x"),
        lambda r: r.begin(),
    ],
)
def test_a_finished_restore_cannot_move_again(move):
    restore = ready("marathon").start_restore()
    restore.begin()
    restore.finish({})
    before = restore.model_dump_json()
    with pytest.raises(Conflict):
        move(restore)
    assert restore.model_dump_json() == before


def test_a_restore_has_one_safety_backup():
    restore = ready("marathon").start_restore()
    restore.protect("safety-a")
    with pytest.raises(Conflict, match="safety-a"):
        restore.protect("safety-b")
    assert restore.safety_backup_id == "safety-a"


def test_only_a_ready_backup_is_restored_and_one_restore_at_a_time():
    with pytest.raises(Conflict, match="STATUS_BACKING_UP; only STATUS_READY backups can be restored"):
        backing_up("marathon").start_restore()
    with pytest.raises(Conflict, match="STATUS_ERROR"):
        failed_backup().start_restore()
    record = ready("marathon")
    record.start_restore()
    with pytest.raises(Conflict, match="still running"):
        record.start_restore()
    assert len(record.restores) == 1


# ---------------------------------------------------------------------------------------------- JSON
DCOS_BACKUP_KEYS = ["dcos_version", "id", "timestamp", "status", "component_status", "restores"]
DCOS_RESTORE_KEYS = ["id", "status", "component_status", "timestamp"]


def test_documents_put_dcos_keys_first():
    record = ready("marathon")
    record.start_restore()
    doc = json.loads(BackupDocument.of(record).model_dump_json())
    assert list(doc)[:6] == DCOS_BACKUP_KEYS
    assert list(doc)[6:] == [
        "label",
        "reason",
        "finished_at",
        "safety",
        "safety_for",
        "schedule",
        "drills",
        "format_version",
        "size",
    ]
    assert next(iter(doc["component_status"]["marathon"])) == "status"
    assert list(doc["restores"][0])[:4] == DCOS_RESTORE_KEYS
    assert doc["timestamp"].endswith("Z")  # RFC 3339, UTC


@pytest.mark.parametrize("name", ["restored", "plain", "safety", "interrupted", "two-components"])
def test_backup_json_of_the_earlier_format_loads_upgraded(name):
    earlier = json.loads((FIXTURES / f"{name}-backup.json").read_text())
    assert earlier["format_version"] == 1
    record = BackupRecord.model_validate(earlier)
    assert record.format_version == FORMAT_VERSION and record.dcos_version == "unknown"
    assert (record.id, record.label, record.status.value, record.reason) == (
        earlier["id"],
        earlier["label"],
        earlier["status"],
        earlier["reason"],
    )
    assert record.timestamp.isoformat().replace("+00:00", "Z") == earlier["created_at"]
    assert (record.safety, record.safety_for) == (earlier["safety"], earlier["safety_for"])
    for name_, old in earlier["components"].items():
        new = json.loads(record.component_status[name_].model_dump_json())
        assert new == {**{k: v for k, v in old.items() if k != "name"}, "encryption": None}  # archives were clear
    history = earlier["restores"]["history"]
    assert [r.id for r in record.restores] == [r["id"] for r in history]
    for new, old in zip(record.restores, history, strict=True):
        assert new.status.value == old["status"] and new.reason == old["reason"]
        assert new.safety_backup_id == old["safety_backup_id"]
        assert {n: c.status.value for n, c in new.component_status.items()} == old["component_status"]
        assert {n: c.stats for n, c in new.component_status.items() if c.stats} == old["stats"]
    # Written again, it is the current format, and reads back the same.
    again = BackupRecord.model_validate_json(record.model_dump_json())
    assert again == record and json.loads(record.model_dump_json())["format_version"] == FORMAT_VERSION


def test_an_upgraded_record_moves_on_like_a_new_one():
    record = BackupRecord.model_validate_json((FIXTURES / "two-components-backup.json").read_bytes())
    restore = record.start_restore()
    restore.begin()
    restore.finish({"marathon": {"created": 0, "updated": 0, "deleted": 0, "unchanged": 40}})
    assert [r.status for r in record.restores] == [Status.READY, Status.ERROR, Status.READY]


def test_progress_is_shown_last_and_only_while_a_job_runs():
    record = ready("marathon")
    assert "progress" not in json.loads(BackupDocument.of(record, {}).model_dump_json())
    doc = json.loads(BackupDocument.of(record, {"phase": "restoring marathon"}).model_dump_json())
    assert list(doc)[-2:] == ["size", "progress"] and doc["progress"] == {"phase": "restoring marathon"}
