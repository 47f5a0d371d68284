"""Schedules (cron, due times) and retention's verdicts, without a cluster: both are pure functions of their input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dcos_backup.catalog.models import BackupRecord, Status
from dcos_backup.durations import format_duration, parse_duration
from dcos_backup.errors import UsageError
from dcos_backup.jobs.retention import doomed
from dcos_backup.jobs.schedules import MAX_DUE_TIMES, Schedule, validate_cron

T0 = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)


def schedule(cron: str = "* * * * *", keep_last: int | None = None, keep_within: str | None = None) -> Schedule:
    return Schedule.new("nightly", cron, keep_last, keep_within, created_at=T0)


@pytest.mark.parametrize("cron", ["* * * * *", "0 3 * * 1-5", "*/15 * * * *", "@hourly", "@daily", "* * * * * */5"])
def test_good_cron_expressions(cron):
    assert validate_cron(cron) == cron


@pytest.mark.parametrize(
    ("cron", "why"),
    [
        ("", "want 5 fields"),
        ("* * *", "want 5 fields"),
        ("* * * * * * *", "want 5 fields"),
        ("61 * * * *", "out of range"),
        ("a b c d e", "not acceptable"),
        ("0 0 31 2 *", "failed to find next date"),  # February 31st never comes
        ("@fortnightly", "invalid cron expression"),
    ],
)
def test_bad_cron_expressions_say_why(cron, why):
    with pytest.raises(UsageError, match="invalid cron expression") as caught:
        validate_cron(cron)
    assert why in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "x"}, "invalid schedule name"),
        ({"name": "-bad-start"}, "invalid schedule name"),
        ({"keep_within": "7 days"}, "invalid --keep-within"),
        ({"keep_within": "0d"}, "invalid --keep-within"),
        ({"keep_last": 0}, "invalid --keep-last"),
    ],
)
def test_bad_schedules_are_usage_errors(kwargs, message):
    args = {"name": "nightly", "cron": "@daily", "keep_last": None, "keep_within": None} | kwargs
    with pytest.raises(UsageError, match=message):
        Schedule.new(**args, created_at=T0)


def test_due_times_follow_the_cursor():
    s = schedule()
    assert s.next_time() == datetime(2026, 3, 1, 12, 1, tzinfo=UTC)
    assert s.due_times(T0 + timedelta(seconds=29)) == []
    assert s.due_times(T0 + timedelta(minutes=3)) == [datetime(2026, 3, 1, 12, m, tzinfo=UTC) for m in (1, 2, 3)]
    s.last_due = datetime(2026, 3, 1, 12, 2, tzinfo=UTC)
    assert s.due_times(T0 + timedelta(minutes=3)) == [datetime(2026, 3, 1, 12, 3, tzinfo=UTC)]


def test_far_behind_counts_at_most_max_due_times_and_ends_at_the_latest():
    s = schedule("* * * * * *")  # every second
    now = T0 + timedelta(days=1, microseconds=500)
    due = s.due_times(now)
    assert len(due) == MAX_DUE_TIMES + 1
    assert due[-1] == now.replace(microsecond=0)


@given(st.integers(min_value=1, max_value=10**6))
def test_durations_round_trip(seconds):
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta


# ------------------------------------------------------------------------------------------ retention
def backup(label: str, minutes: int, status: Status = Status.READY, **kwargs) -> BackupRecord:
    record = BackupRecord.start(label, {"marathon": "/marathon"}, "2.2.0", **kwargs)
    record.timestamp = T0 + timedelta(minutes=minutes)
    record.status = status
    return record


def ids(verdicts) -> list[str]:
    return [record.id for record, _ in verdicts]


def test_keep_last_deletes_the_oldest_ready_beyond_it_and_names_the_rule():
    runs = [backup("nightly", m, schedule="nightly") for m in range(5)]
    verdicts = doomed(schedule(keep_last=2), runs, T0 + timedelta(minutes=5))
    assert ids(verdicts) == [r.id for r in runs[:3]]  # oldest first
    assert "beyond --keep-last 2" in verdicts[0][1]


def test_retention_never_touches_manual_safety_other_schedules_or_running_jobs():
    mine = [backup("nightly", m, schedule="nightly") for m in range(3)]
    manual = backup("nightly", -10)  # the same label, but taken by hand
    safety = backup("safety-x", -9, safety_for=mine[0].id)
    safety.schedule = "nightly"  # even if it said so
    other = backup("nightly2", -8, schedule="nightly2")
    running = backup("nightly", -7, Status.BACKING_UP, schedule="nightly")
    verdicts = doomed(schedule(keep_last=1), [*mine, manual, safety, other, running], T0 + timedelta(minutes=5))
    assert ids(verdicts) == [mine[0].id, mine[1].id]


def test_the_newest_ready_backup_is_kept_whatever_the_window():
    runs = [backup("nightly", m, schedule="nightly") for m in range(3)]
    verdicts = doomed(schedule(keep_within="1m"), runs, T0 + timedelta(days=30))
    assert ids(verdicts) == [runs[0].id, runs[1].id]
    assert "older than --keep-within 1m" in verdicts[0][1]


def test_keep_last_and_keep_within_each_keep_what_they_keep():
    runs = [backup("nightly", m * 60, schedule="nightly") for m in range(6)]  # hourly
    now = T0 + timedelta(hours=5, minutes=30)
    # last 2 keep hours 5 and 4; within 3h keeps hours 3, 4, 5
    assert ids(doomed(schedule(keep_last=2, keep_within="3h"), runs, now)) == [r.id for r in runs[:3]]


def test_errors_older_than_the_newest_ready_go_newer_ones_stay():
    old_error = backup("nightly", 0, Status.ERROR, schedule="nightly")
    ready = backup("nightly", 1, schedule="nightly")
    new_error = backup("nightly", 2, Status.ERROR, schedule="nightly")
    verdicts = doomed(schedule(keep_last=5), [old_error, ready, new_error], T0 + timedelta(minutes=3))
    assert ids(verdicts) == [old_error.id]
    assert "older than the newest READY" in verdicts[0][1]


def test_without_a_policy_or_a_ready_backup_nothing_goes():
    runs = [backup("nightly", m, schedule="nightly") for m in range(5)]
    assert doomed(schedule(), runs, T0 + timedelta(days=1)) == []
    errors = [backup("nightly", m, Status.ERROR, schedule="nightly") for m in range(5)]
    assert doomed(schedule(keep_last=1), errors, T0 + timedelta(days=1)) == []


cron_like = st.lists(
    st.one_of(
        st.sampled_from(["*", "*/5", "1-5", "L", "#", "?", "0", "60", "-1", "@daily", "@x", "MON", "1,2"]),
        st.text(max_size=6),
    ),
    max_size=7,
).map(" ".join)


@given(st.one_of(st.text(max_size=40), cron_like))
def test_any_text_is_a_cron_expression_or_a_usage_error(text):
    try:
        validate_cron(text)
    except UsageError as exc:
        assert str(exc).startswith("invalid cron expression")


def test_retention_never_deletes_the_newest_backup_of_a_component(caplog):
    """Issue 25 item 4: an old scheduled backup that is the only READY copy of a component stays."""
    runs = [backup("nightly", m, schedule="nightly") for m in range(3)]
    only_metronome = BackupRecord.start("nightly", {"metronome": "/metronome"}, "2.2.0", schedule="nightly")
    only_metronome.timestamp, only_metronome.status = T0 - timedelta(minutes=1), Status.READY
    with caplog.at_level("INFO"):
        verdicts = doomed(schedule(keep_last=1), [only_metronome, *runs], T0 + timedelta(minutes=5))
    assert ids(verdicts) == [runs[0].id, runs[1].id]
    assert (
        f"kept {only_metronome.id}" in caplog.text and "newest READY backup of the component metronome" in caplog.text
    )
