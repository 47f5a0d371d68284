"""The fencing trials' independent checker (testing/fault_scenarios.py) catches a final status that flips."""

from __future__ import annotations

import itertools

from tests.helpers import wait_for

from dcos_backup.testing.fault_scenarios import StatusPoller, final_status_flips


def test_a_consistent_history_has_no_flips():
    history = [
        ("restore r1", "STATUS_RESTORING"),
        ("restore r1", "STATUS_RESTORING"),
        ("restore r1", "STATUS_ERROR"),
        ("restore r1", "STATUS_ERROR"),
        ("restore r2", "STATUS_RESTORING"),  # a later restore of the same backup is another job
        ("restore r2", "STATUS_READY"),
    ]
    assert final_status_flips(history) == []


def test_a_final_status_that_changes_is_a_flip():
    # The zombie's READY overwritten by the new leader's rollback, or the other way round.
    assert final_status_flips(
        [("restore r1", "STATUS_RESTORING"), ("restore r1", "STATUS_READY"), ("restore r1", "STATUS_ERROR")]
    ) == ["restore r1: STATUS_READY -> STATUS_ERROR"]
    # Back to running after a final status counts as well (a job "revived").
    assert final_status_flips([("restore r1", "STATUS_ERROR"), ("restore r1", "STATUS_RESTORING")]) == [
        "restore r1: STATUS_ERROR -> STATUS_RESTORING"
    ]
    assert final_status_flips([("backup b", "STATUS_READY"), ("backup b", "STATUS_ERROR")]) == [
        "backup b: STATUS_READY -> STATUS_ERROR"
    ]


def test_the_poller_records_what_the_api_reports_and_the_flip_is_caught():
    """Fed a document sequence in which a restore goes READY then ERROR (and an unanswered request, as
    while the service restarts), the poller records each job's statuses and the check finds the flip."""
    restoring = {"id": "b", "status": "STATUS_READY", "restores": [{"id": "r1", "status": "STATUS_RESTORING"}]}
    ready = {"id": "b", "status": "STATUS_READY", "restores": [{"id": "r1", "status": "STATUS_READY"}]}
    flipped = {"id": "b", "status": "STATUS_READY", "restores": [{"id": "r1", "status": "STATUS_ERROR"}]}
    answers = iter([restoring, None, ready, flipped])

    def fetch() -> dict:
        doc = next(answers, flipped)
        if doc is None:
            raise ConnectionError("the service is restarting")
        return doc

    with StatusPoller(fetch, interval=0.001) as poller:
        wait_for(lambda: poller.answers >= 4)
    restore_statuses = [s for job, s in poller.history if job == "restore r1"]
    assert [k for k, _ in itertools.groupby(restore_statuses)] == ["STATUS_RESTORING", "STATUS_READY", "STATUS_ERROR"]
    assert poller.final("restore r1") == "STATUS_READY"
    assert final_status_flips(poller.history) == ["restore r1: STATUS_READY -> STATUS_ERROR"] * (
        restore_statuses.count("STATUS_ERROR")
    )
