"""Recovery's decision on an interrupted restore (jobs/fencing.py ``decide``): from the journal, not from
"the service stopped" (issue 25 item 1)."""

from __future__ import annotations

from dcos_backup.catalog.ids import new_backup_id
from dcos_backup.catalog.models import BackupRecord, Status, now
from dcos_backup.jobs.fencing import JournalEntry, decide


def restoring(safety: str | None = None) -> BackupRecord:
    record = BackupRecord(
        dcos_version="2.2.0", id=new_backup_id("bkp"), label="bkp", status=Status.READY, timestamp=now()
    )
    restore = record.start_restore(["marathon"], [], None)
    restore.begin()
    if safety is not None:
        restore.protect(safety)
    return record


def journalled(record: BackupRecord, phase: str, finish: str | None = None) -> JournalEntry:
    copy = record.model_copy(deep=True)
    latest = copy.latest_restore
    assert latest is not None
    if finish == "ready":
        latest.finish({"marathon": {"created": 1}})
    elif finish == "error":
        latest.fail("verification failed; rolled back to the safety backup s")
    return JournalEntry(phase, "master-1", copy)


def test_applied_and_verified_is_completed_not_rolled_back():
    record = restoring("safety-1")
    decision = decide(record, journalled(record, "applied", "ready"))
    assert decision.action == "adopt"  # the journal holds the READY record written at "applied"
    assert decision.record is not None and decision.record.latest_restore.status == Status.READY


def test_applied_phase_with_a_restoring_record_is_completed():
    record = restoring("safety-1")
    decision = decide(record, journalled(record, "applied"))
    assert decision.action == "complete" and "completed, not rolled back" in decision.why


def test_cut_mid_apply_is_rolled_back_and_says_where():
    record = restoring("safety-1")
    decision = decide(record, journalled(record, "applying"))
    assert decision.action == "roll back"
    assert "mid-apply on master-1" in decision.why and "stopped" not in decision.why


def test_nothing_changed_yet_fails_without_a_rollback():
    record = restoring()
    decision = decide(record, journalled(record, "begun"))
    assert decision.action == "fail" and "not touched" in decision.why


def test_a_final_record_in_the_journal_is_adopted():
    record = restoring("safety-1")
    decision = decide(record, journalled(record, "done", "error"))
    assert decision.action == "adopt" and decision.record.latest_restore.status == Status.ERROR


def test_a_journal_of_another_restore_is_ignored():
    record = restoring("safety-1")
    other = restoring("safety-2")
    decision = decide(record, journalled(other, "applied", "ready"))
    assert decision.action == "roll back"


def test_without_a_journal_the_record_decides():
    assert decide(restoring("safety-1"), None).action == "roll back"
    assert decide(restoring(), None).action == "fail"
