"""Retention: which of a schedule's backups go after each of its runs, and deleting them with the reason logged.

The rules (``docs/operations.md``), for the backups a schedule took (``record.schedule``; never a manual or
a safety backup, never an uploaded one, never one a job is working on):

- READY backups: kept if any rule keeps them (as borg's and restic's ``--keep-*`` combine): the
  ``keep_last`` newest, and every one younger than ``keep_within``. The newest READY backup is always kept.
- ERROR backups older than the newest READY one are deleted (a newer READY backup supersedes them);
  newer ones stay, to show what is going wrong.
- A schedule without ``keep_last`` and ``keep_within`` deletes nothing.
- Never the newest READY backup of a component (across the whole catalog: the last copy of that
  component's state), never one a job is working on or an unfinished restore depends on (the delete
  refuses those; they are kept for the next run). Each decision is logged with the rule that made it.

:func:`doomed` decides (pure, tested without a cluster); :func:`prune` deletes through the service.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from dcos_backup.catalog.models import BackupRecord, Status
from dcos_backup.durations import format_duration
from dcos_backup.errors import DcosBackupError
from dcos_backup.jobs.schedules import Schedule
from dcos_backup.jobs.service import BackupService

log = logging.getLogger(__name__)


def newest_of_components(records: Iterable[BackupRecord]) -> dict[str, str]:
    """For each backup that is the newest READY (non-safety) backup holding some component: its id -> that
    component. Retention never deletes these: each is the last copy of its component's state."""
    newest: dict[str, BackupRecord] = {}
    for record in records:
        if record.status != Status.READY or record.safety or record.in_progress:
            continue
        for component in record.component_status:
            if component not in newest or record.timestamp > newest[component].timestamp:
                newest[component] = record
    return {record.id: component for component, record in sorted(newest.items())}


def doomed(schedule: Schedule, records: Iterable[BackupRecord], now: datetime) -> list[tuple[BackupRecord, str]]:
    """The backups of ``schedule`` its retention deletes at ``now``, each with the reason (``records``: the
    whole catalog, or at least the schedule's backups)."""
    if not schedule.has_retention:
        return []
    records = list(records)
    last_copies = newest_of_components(records)
    mine = [r for r in records if r.schedule == schedule.name and r.made_here and not r.safety and not r.in_progress]
    ready = sorted((r for r in mine if r.status == Status.READY), key=lambda r: r.timestamp, reverse=True)
    if not ready:
        return []  # nothing supersedes anything yet
    newest = ready[0]
    window = schedule.retention_window
    verdicts = []
    for position, record in enumerate(ready[1:], start=2):
        by_count = schedule.keep_last is not None and position <= schedule.keep_last
        by_age = window is not None and record.timestamp >= now - window
        if not (by_count or by_age):
            verdicts.append((record, _why(schedule, position)))
    verdicts += [
        (r, f"STATUS_ERROR and older than the newest READY backup {newest.id}")
        for r in mine
        if r.status == Status.ERROR and r.timestamp < newest.timestamp
    ]
    kept = [v for v in verdicts if v[0].id in last_copies]
    for record, reason in kept:
        log.info(
            "retention of schedule %s: kept %s although %s: it is the newest READY backup of the component %s",
            schedule.name,
            record.id,
            reason,
            last_copies[record.id],
        )
    return sorted((v for v in verdicts if v[0].id not in last_copies), key=lambda verdict: verdict[0].timestamp)


def _why(schedule: Schedule, position: int) -> str:
    rules = []
    if schedule.keep_last is not None:
        rules.append(f"READY backup number {position} from the newest, beyond --keep-last {schedule.keep_last}")
    if schedule.retention_window is not None:
        rules.append(f"older than --keep-within {format_duration(schedule.retention_window)}")
    return " and ".join(rules)


def apply_retention(service: BackupService, schedule: Schedule, now: datetime) -> list[str]:
    """Delete what :func:`doomed` says, logging each with its reason; returns the ids deleted. A backup that
    cannot be deleted now (a restore started on it meanwhile) is logged and left for the next run."""
    deleted = []
    for record, reason in doomed(schedule, service.list(), now):
        try:
            service.delete(record.id)
        except DcosBackupError as exc:
            log.warning("retention of schedule %s: kept %s for now (in use: %s)", schedule.name, record.id, exc)
            continue
        log.info("retention of schedule %s: deleted %s (%s)", schedule.name, record.id, reason)
        deleted.append(record.id)
    return deleted
