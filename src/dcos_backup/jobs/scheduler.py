"""The scheduler: runs the schedules (:mod:`.schedules`) on the instance that leads, one backup per due time.

One thread, started when the instance becomes leader and stopped when it stops leading. Each round it reads
the schedules from ZooKeeper, and for each one that is due (and not paused):

1. starts a backup labelled with the schedule's name (``record.schedule`` names it). If another job runs,
   it waits for that job to end and then starts one backup, whatever number of due times passed meanwhile:
   a run is never dropped silently, and never run twice;
2. records in the schedule the latest due time this backup stands for (``last_due``), so that a leader
   taking over knows what was done. Due times that passed while no instance led are *missed*: they are run
   once, at once, and logged;
3. waits for the backup's end and applies the schedule's retention (:mod:`.retention`).

It sleeps until the next due time, at most ``recheck`` seconds (it re-reads the schedules then), and wakes
at once when the API changes a schedule (:meth:`Scheduler.wake`). Time comes from a :class:`Clock`, so
tests can run a per-minute schedule without waiting minutes.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Protocol

from dcos_backup.catalog.models import BackupRecord, Status
from dcos_backup.errors import Conflict, DcosBackupError, NotFound
from dcos_backup.jobs.retention import apply_retention
from dcos_backup.jobs.runner import attempt
from dcos_backup.jobs.schedules import Schedule, ScheduleStore
from dcos_backup.jobs.service import BackupService

log = logging.getLogger(__name__)

RECHECK = 60.0  # seconds between two readings of the schedules when nothing falls due sooner
RETRY = 5.0  # seconds before trying again after ZooKeeper or the storage failed
JOB_POLL = 1.0  # seconds between two looks at a running job (a dead process's lock ends without an event)


class Clock(Protocol):
    """Where the scheduler's time comes from."""

    def now(self) -> datetime:
        """The time now (aware, UTC)."""
        ...

    def wait(self, wake: threading.Event, seconds: float) -> bool:
        """Wait until ``wake`` is set or ``seconds`` have passed on this clock; True if ``wake`` was set."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, wake: threading.Event, seconds: float) -> bool:
        return wake.wait(max(0.0, seconds))


class Scheduler:
    """Runs the schedules of ``store`` as backups of ``service`` while started (see the module's docstring)."""

    def __init__(
        self,
        service: BackupService,
        store: ScheduleStore,
        clock: Clock | None = None,
        recheck: float = RECHECK,
        retry: float = RETRY,
    ) -> None:
        self.service = service
        self.store = store
        self.clock = clock or SystemClock()
        self.recheck = recheck
        self.retry = retry
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._job_ended = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = self.clock.now()
        self._handled: dict[str, datetime] = {}  # due times dealt with, if ZooKeeper failed to record them
        service.on_job_end(self._job_ended.set)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._started_at = self.clock.now()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()
        log.info("scheduler started")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop scheduling (a backup it started goes on; its retention is left to the next run)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def wake(self) -> None:
        """Read the schedules again now (one was created, changed or deleted)."""
        self._wake.set()

    # ---------------------------------------------------------------- rounds
    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            pause: list[float] = []
            attempt(lambda: pause.append(self._round()), "a round of the scheduler")  # noqa: B023 - called at once
            if not self._stop.is_set():
                self.clock.wait(self._wake, pause[0] if pause else self.retry)  # a bug was logged: go on
        log.info("scheduler stopped")

    def _round(self) -> float:
        """Run every schedule that is due; returns the seconds until the next due time (at most ``recheck``)."""
        try:
            schedules = [self._with_handled(s) for s in self.store.list() if not s.paused]
        except DcosBackupError as exc:
            log.warning("scheduler: cannot read the schedules (%s); trying again in %gs", exc, self.retry)
            return self.retry
        now = self.clock.now()
        due = sorted((s for s in schedules if s.due_times(now)), key=lambda s: s.next_time())
        for schedule in due:
            if self._stop.is_set():
                return 0.0
            try:
                self._run(schedule)
            except DcosBackupError as exc:
                log.error("schedule %s: could not run (%s); trying again in %gs", schedule.name, exc, self.retry)
                return self.retry
        if due:
            return 0.0  # read them again: what ran has a new cursor, and time went by
        upcoming = [(s.next_time() - now).total_seconds() for s in schedules]
        return max(0.0, min([self.recheck, *upcoming]))

    def _with_handled(self, schedule: Schedule) -> Schedule:
        handled = self._handled.get(schedule.name)
        if handled is not None and handled > schedule.cursor:
            return schedule.model_copy(update={"last_due": handled})
        return schedule

    # ---------------------------------------------------------------- one run
    def _run(self, schedule: Schedule) -> None:
        record = self._start_backup(schedule)
        if record is None:
            return  # stopped while waiting for another job
        started = self.clock.now()
        due = schedule.due_times(started)
        self._log_start(schedule, record, due)
        self._record_run(schedule.name, due[-1] if due else started, record.id, started)
        final = self._await_end(record.id)
        if final is None:
            return
        if final.status != Status.READY:
            log.warning("schedule %s: backup %s ended %s: %s", schedule.name, final.id, final.status, final.reason)
        elif schedule.drill:
            self._drill(schedule, final.id)
        apply_retention(self.service, schedule, self.clock.now())

    def _start_backup(self, schedule: Schedule) -> BackupRecord | None:
        """Start the schedule's backup, once whatever job runs has ended; None if stopped meanwhile, or if
        the schedule was paused or deleted (looked at again before each try: the wait may be long)."""
        waiting_for = None
        while not self._stop.is_set():
            self._job_ended.clear()
            if not self._still_active(schedule.name):
                log.info("schedule %s was paused or deleted before its run started", schedule.name)
                return None
            try:
                return self.service.create(schedule.name, schedule=schedule.name)
            except Conflict as exc:
                running = exc.details.get("running", "another job")
                if running != waiting_for:
                    log.info("schedule %s is due; it waits for %s to end", schedule.name, running)
                    waiting_for = running
            self._job_ended.wait(JOB_POLL)
        return None

    def _drill(self, schedule: Schedule, backup_id: str) -> None:
        """Drill the backup the schedule just took (once the lock is free), and wait for the outcome."""
        drill = None
        while drill is None and not self._stop.is_set():
            self._job_ended.clear()
            try:
                drill = self.service.drill(backup_id)
            except Conflict:
                self._job_ended.wait(JOB_POLL)
            except DcosBackupError as exc:  # deleted meanwhile, or the catalog away
                log.warning("schedule %s: could not drill %s (%s)", schedule.name, backup_id, exc)
                return
        while drill is not None and not self._stop.is_set():
            self._job_ended.clear()
            running = self.service.job_runs_on(backup_id)  # first: a job's record is written before it ends
            ended = next((d for d in self.service.get(backup_id).drills if d.id == drill.id), None)
            if ended is not None:
                if ended.status != Status.READY:
                    log.error("schedule %s: drill of %s FAILED: %s", schedule.name, backup_id, ended.reason)
                return
            if not running:
                return  # the drill's job ended without a result (logged by its job)
            self._job_ended.wait(JOB_POLL)

    def _still_active(self, name: str) -> bool:
        try:
            return not self.store.get(name).paused
        except NotFound:
            return False

    def _log_start(self, schedule: Schedule, record: BackupRecord, due: list[datetime]) -> None:
        missed = [when for when in due if when < self._started_at]
        if missed:
            log.warning(
                "schedule %s: %d run(s) due from %s to %s were missed (no backup service was leading); "
                "running once now: %s",
                schedule.name,
                len(missed),
                missed[0].isoformat(),
                missed[-1].isoformat(),
                record.id,
            )
        elif len(due) > 1:
            log.info(
                "schedule %s: %d due times passed while it waited; running once: %s", schedule.name, len(due), record.id
            )
        else:
            log.info("schedule %s: started %s (due %s)", schedule.name, record.id, due[-1].isoformat() if due else "-")

    def _record_run(self, name: str, due: datetime, backup_id: str, started: datetime) -> None:
        def ran(schedule: Schedule) -> None:
            schedule.last_due = max(due, schedule.cursor)
            schedule.last_run_at = started
            schedule.last_backup_id = backup_id

        self._handled[name] = due
        try:
            self.store.update(name, ran)
        except DcosBackupError as exc:  # deleted meanwhile, or ZooKeeper away: this process remembers it
            log.warning("schedule %s: could not record the run of %s (%s)", name, backup_id, exc)

    def _await_end(self, backup_id: str) -> BackupRecord | None:
        """The backup once its job has ended; None if the scheduler was stopped first."""
        while not self._stop.is_set():
            self._job_ended.clear()
            record = self.service.get(backup_id)
            if not record.in_progress:
                return record
            self._job_ended.wait(JOB_POLL)
        return None
