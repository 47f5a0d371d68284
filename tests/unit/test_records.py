"""The records' state machine (legal and illegal transitions) and their JSON: files written before the
state machine existed (tests/unit/fixtures/*-backup.json, written by the service as it was) load and
are written again byte for byte; the API document keeps its keys and their order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcos_backup.catalog.archive import ArchiveSummary
from dcos_backup.catalog.models import INTERRUPTED_BACKUP, BackupRecord, Status, ZxidWindow
from dcos_backup.errors import Conflict
from dcos_backup.service.app import BackupDocument

FIXTURES = Path(__file__).parent / "fixtures"
SUMMARY = ArchiveSummary(nodes=3, data_bytes=10, bytes=120, sha256="ab" * 32)


def backing_up(*components: str) -> BackupRecord:
    record = BackupRecord.start("pre-upgrade")
    for name in components:
        record.start_component(name, f"/{name}")
    return record


def finish_component(record: BackupRecord, name: str) -> None:
    record.components[name].finish(f"{name}.dcosbkp", SUMMARY, 1, ZxidWindow(first=5, last=7))


def ready(*components: str) -> BackupRecord:
    record = backing_up(*components)
    for name in components:
        finish_component(record, name)
    record.finish()
    return record


# ---------------------------------------------------------------------------------------------- backups
def test_a_backup_goes_backing_up_to_ready():
    record = backing_up("marathon")
    assert record.status == Status.BACKING_UP and record.finished_at is None and not record.safety
    finish_component(record, "marathon")
    record.finish()
    comp = record.components["marathon"]
    assert record.status == Status.READY and record.finished_at >= record.created_at
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
    record = backing_up("marathon", "metronome")
    finish_component(record, "marathon")
    record.fail("no space left on the backup storage")
    assert record.status == Status.ERROR and record.reason == "no space left on the backup storage"
    assert record.finished_at is not None
    assert record.components["marathon"].status == Status.READY
    assert record.components["metronome"].status == Status.ERROR
    assert record.components["metronome"].reason == "no space left on the backup storage"


def test_an_interrupted_backup_is_an_error_that_says_so():
    record = backing_up("marathon")
    record.interrupt()
    assert record.status == Status.ERROR and record.reason == INTERRUPTED_BACKUP
    assert record.components["marathon"].status == Status.ERROR


def test_a_safety_backup_names_the_backup_it_protects():
    protected = ready("marathon")
    safety = BackupRecord.start("safety-20260101T000000", safety_for=protected.id)
    assert safety.safety and safety.safety_for == protected.id and safety.status == Status.BACKING_UP


@pytest.mark.parametrize(
    "move",
    [
        lambda r: r.finish(),
        lambda r: r.fail("late"),
        lambda r: r.interrupt(),
        lambda r: r.start_component("other", "/other"),
        lambda r: r.components["marathon"].finish("x", SUMMARY, 0, ZxidWindow(first=0, last=0)),
        lambda r: r.components["marathon"].fail("late"),
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
def test_a_restore_goes_restoring_to_ready_and_the_top_level_follows_it():
    record = ready("marathon")
    restore = record.start_restore()
    assert record.restores.status == Status.RESTORING
    assert record.restores.component_status == {"marathon": Status.RESTORING}
    assert record.restores.id == restore.id and record.in_progress
    restore.protect("safety-20260101T000000-" + "0" * 8 + "-0000-4000-8000-" + "0" * 12)
    assert record.restores.safety_backup_id == restore.safety_backup_id
    stats = {"marathon": {"created": 1, "updated": 2, "deleted": 3, "unchanged": 4}}
    restore.finish(stats)
    doc = json.loads(record.model_dump_json())["restores"]
    assert doc["status"] == "STATUS_READY" and doc["component_status"] == {"marathon": "STATUS_READY"}
    assert doc["finished_at"] is not None and doc["history"][-1]["stats"] == stats
    assert doc["id"] == doc["history"][-1]["id"] and not record.in_progress


def test_a_failed_restore_fails_every_component():
    record = ready("marathon", "metronome")
    restore = record.start_restore()
    restore.fail("marathon: archive fails its checksum; ZooKeeper was not changed")
    assert record.restores.status == Status.ERROR
    assert record.restores.component_status == {"marathon": Status.ERROR, "metronome": Status.ERROR}
    assert record.restores.reason == restore.reason and restore.finished_at is not None


def test_the_top_level_shows_the_latest_of_several_restores():
    record = ready("marathon")
    record.start_restore().fail("first")
    second = record.start_restore()
    assert [r.status for r in record.restores.history] == [Status.ERROR, Status.RESTORING]
    assert record.restores.id == second.id and record.restores.reason is None


@pytest.mark.parametrize(
    "move",
    [
        lambda r: r.finish({}),
        lambda r: r.fail("late"),
        lambda r: r.protect("safety-x"),
    ],
)
def test_a_finished_restore_cannot_move_again(move):
    restore = ready("marathon").start_restore()
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
    assert len(record.restores.history) == 1


# ---------------------------------------------------------------------------------------------- JSON
@pytest.mark.parametrize("name", ["restored", "plain", "safety", "interrupted"])
def test_backup_json_of_the_earlier_code_loads_and_is_written_again_byte_for_byte(name):
    written = (FIXTURES / f"{name}-backup.json").read_bytes()
    record = BackupRecord.model_validate_json(written)
    assert record.model_dump_json(indent=2).encode() == written


def test_the_restores_top_level_is_derived_not_read():
    """A file whose top-level copy disagrees with its history shows the history's latest restore."""
    doc = json.loads((FIXTURES / "restored-backup.json").read_text())
    doc["restores"]["status"] = "STATUS_RESTORING"
    doc["restores"]["component_status"] = {"marathon": "STATUS_RESTORING"}
    record = BackupRecord.model_validate(doc)
    assert record.restores.status == Status.ERROR == record.restores.history[-1].status
    assert record.restores.component_status == {"marathon": Status.ERROR}


@pytest.mark.parametrize("name", ["restored", "plain"])
def test_the_api_document_is_the_one_the_earlier_code_showed(name):
    """What ``dcos backup show`` printed: the same keys in the same order, the same values."""
    shown = json.loads((FIXTURES / f"{name}-show.json").read_text())
    record = BackupRecord.model_validate_json((FIXTURES / f"{name}-backup.json").read_bytes())
    doc = json.loads(BackupDocument.of(record).model_dump_json())
    assert doc == shown
    assert list(doc) == list(shown) and list(doc["restores"]) == list(shown["restores"])
    assert list(doc["components"]["marathon"]) == list(shown["components"]["marathon"])


def test_progress_is_shown_last_and_only_while_a_job_runs():
    record = ready("marathon")
    assert "progress" not in json.loads(BackupDocument.of(record, {}).model_dump_json())
    doc = json.loads(BackupDocument.of(record, {"phase": "restoring marathon"}).model_dump_json())
    assert list(doc)[-2:] == ["size", "progress"] and doc["progress"] == {"phase": "restoring marathon"}
