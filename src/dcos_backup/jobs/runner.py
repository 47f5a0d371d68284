"""Running the service's jobs: one at a time per cluster, each in its own thread, each ending in one write.

:class:`JobRunner` owns everything a job has besides its steps: the cluster-wide lock, the thread, the
boundary that turns any failure into the record's ``STATUS_ERROR`` and reason, and the final write of
the record, which happens in the same step as the release of the lock (nobody sees a finished job whose
lock is still held). A job is given as two callables:

- ``steps(job)`` does the work and moves the record forward (``record.finish()`` ...);
- ``fail(job, reason)`` records the failure (``record.fail(reason)`` ...) when ``steps`` raised anything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from dcos_backup.catalog.models import BackupRecord
from dcos_backup.catalog.storage import Storage
from dcos_backup.errors import Conflict, DcosBackupError, Fenced
from dcos_backup.jobs.engine import Engine, JobLock, lock_holder, lock_identifier
from dcos_backup.jobs.fencing import Fence
from dcos_backup.jobs.metrics import JobMetrics

log = logging.getLogger(__name__)

STALE_LOCK_HINT = " (left by a service that stopped; it expires with that service's ZooKeeper session, retry shortly)"


class Cancelled(DcosBackupError):
    """The job was cancelled (``POST /cancel``): what its record's reason says."""


@dataclass
class Job:
    id: str
    kind: str  # "backup" | "restore" | "recovery" | "dry run"
    lock: JobLock
    started: float = field(default_factory=time.monotonic)
    progress: dict[str, object] = field(default_factory=dict)
    thread: threading.Thread | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    fence: Fence | None = None  # the leadership every write of the job is conditional on (None: unfenced)

    def check_cancelled(self) -> None:
        """Raise Cancelled if someone asked to cancel the job, Fenced if this service no longer leads; the
        steps call it where stopping is safe."""
        self.check_fence()
        if self.cancelled.is_set():
            raise Cancelled("cancelled")

    def check_fence(self) -> None:
        """Raise Fenced if this service has seen that it no longer leads: immediately before every write to
        storage, so that nothing is written once the job's fence has failed."""
        if self.fence is not None:
            self.fence.check()


T = TypeVar("T")
Steps = Callable[[Job], None]
Fail = Callable[[Job, str], None]


def describe(exc: BaseException) -> str:
    """An exception as the one-line reason a record shows."""
    if isinstance(exc, DcosBackupError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def attempt(step: Callable[[], object], what: str) -> str | None:
    """Run ``step``: None if it succeeded, else why it failed (logged with its traceback).

    The one place where an exception of any type is caught: the boundary of a job, and of the parts of a
    job that must end in a recorded state whatever happens (a safety backup, a rollback).
    """
    try:
        step()
    except Exception as exc:
        log.exception("%s failed", what)
        return describe(exc)
    return None


class JobRunner:
    """Runs one job at a time per cluster (the engine's lock, held in the name of the service instance
    ``owner``) and at most one in this process."""

    def __init__(self, engine: Engine, storage: Storage, owner: str, metrics: JobMetrics | None = None) -> None:
        self._engine = engine
        self._storage = storage
        self.owner = owner
        self.metrics = metrics or JobMetrics()
        self._job: Job | None = None
        self._mutex = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._after: list[Callable[[], None]] = []
        self._fence: Callable[[], Fence | None] | None = None

    def fence_with(self, leadership_fence: Callable[[], Fence | None]) -> None:
        """Make every job's writes conditional on the leadership ``leadership_fence()`` returns (None: this
        service does not lead, and starts no job). Without it (a service without leadership), jobs are unfenced."""
        self._fence = leadership_fence

    @property
    def current(self) -> Job | None:
        return self._job

    def runs_on(self, prefix: str) -> bool:
        """A job runs on a backup whose id starts with ``prefix``."""
        job = self._job
        return job is not None and job.id.startswith(prefix)

    def on_end(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (in the job's thread, quickly) each time a job's final record is written."""
        self._listeners.append(listener)

    def launch(self, kind: str, record: BackupRecord, steps: Steps, fail: Fail) -> Job:
        """Start a job on ``record`` now, or raise Conflict (409) naming the job that runs.

        The record is written before the thread starts: the journal a restarted service recovers from.
        """
        job = self._claim(self._job_of(kind, record))
        try:
            self.write(job, record, "started")
        except BaseException:
            self._finish(job, None)  # the job never started: free the lock again
            raise
        self._spawn(job, record, steps, fail, wait=None)
        return job

    def run_now(self, kind: str, identifier: str, work: Callable[[Job], T]) -> T:
        """Run ``work(job)`` in the calling thread under the cluster-wide lock (Conflict if a job holds it),
        and free the lock when it returns; for a read-only job that writes no record (a dry run)."""
        job = self._claim(Job(identifier, kind, self._engine.lock(identifier)))
        try:
            return work(job)
        finally:
            self._finish(job, None)

    def between_jobs(self, action: Callable[[Job | None], T]) -> T:
        """``action(running job or None)`` while no job starts or ends: a job that has just ended is seen
        as ended, with its final record written (a delete right after a restore is not refused)."""
        with self._mutex:
            return action(self._job)

    def launch_when_free(self, kind: str, record: BackupRecord, steps: Steps, fail: Fail, wait: float) -> None:
        """Start a job on ``record`` in the background as soon as the lock is free (at most ``wait`` s);
        for start-up recovery, where the lock may still be held by the stopped process's session.
        If the lock cannot be had, ``fail`` gets the reason and the record is written."""
        self._spawn(self._job_of(kind, record), record, steps, fail, wait)

    def _job_of(self, kind: str, record: BackupRecord) -> Job:
        job = Job(record.id, kind, self._engine.lock(lock_identifier(record.id, self.owner)))
        if self._fence is not None:
            job.fence = self._fence()
            if job.fence is None:
                raise Fenced("this service does not lead: it starts no job (send the request to the leader)")
        return job

    def write(self, job: Job, record: BackupRecord, phase: str) -> None:
        """Write ``record`` for ``job``: into its journal in ZooKeeper first, conditional on the job's
        fence (Fenced: nothing is written), then to the catalog, which follows the journal."""
        if job.fence is not None:
            self._engine.journal(record, phase, job.fence)
        job.check_fence()  # lost since the journal write (seen meanwhile): the record must not follow
        self._storage.write(record)

    def check_leads(self) -> None:
        """Raise Fenced if this service has leadership and has seen that it no longer leads: before a
        storage write outside a job (a delete)."""
        if self._fence is not None and self._fence() is None:
            raise Fenced("this service no longer leads: it changes nothing (send the request to the leader)")

    def write_as_leader(self, record: BackupRecord) -> None:
        """Write a record outside a job (start-up recovery), journalled under this service's leadership
        first if it has one (Fenced if it no longer leads)."""
        if self._fence is None:
            self._storage.write(record)
            return
        fence = self._fence()
        if fence is None:
            raise Fenced(f"this service does not lead: it leaves {record.id} to the leader")
        self._engine.journal(record, "done" if not record.in_progress else "recovered", fence)
        fence.check()  # lost since the journal write (seen meanwhile): the record must not follow
        self._storage.write(record)

    def after_job(self, step: Callable[[], None]) -> None:
        """Run ``step`` once the running job's final record is written (best effort: logged on failure,
        never changing the job's outcome); for work after a job such as pruning old safety backups."""
        self._after.append(step)

    def _spawn(self, job: Job, record: BackupRecord, steps: Steps, fail: Fail, wait: float | None) -> None:
        job.thread = threading.Thread(
            target=self._run, args=(job, record, steps, fail, wait), name=f"{job.kind}-{job.id}", daemon=True
        )
        job.thread.start()

    def _run(self, job: Job, record: BackupRecord, steps: Steps, fail: Fail, wait: float | None) -> None:
        def claimed_steps() -> None:
            if wait is not None:
                self._claim(job, wait)
            steps(job)

        outcome = "error"
        final: BackupRecord | None = record
        try:
            reason = attempt(claimed_steps, f"{job.kind} of {job.id}")
            if reason is None:
                outcome = "ok"
            elif self._fenced(job):
                final = None  # the new leader decides from the journal; a zombie writes nothing
            else:
                outcome = "cancelled" if job.cancelled.is_set() else "error"
                fail(job, reason)
        finally:
            # Counted before the final write: whoever sees the job ended sees it counted.
            self.metrics.job_ended(job.kind, outcome, time.monotonic() - job.started)
            self._finish(job, final)

    def _fenced(self, job: Job) -> bool:
        """The job failed because this service no longer leads: say so once, loudly."""
        if job.fence is None or not job.fence.revoked.is_set():
            return False
        log.warning(
            "the %s of %s stopped: this service no longer leads (fenced); it changes nothing more and leaves "
            "the outcome to the leader, which decides from the job's journal",
            job.kind,
            job.id,
        )
        return True

    def _run_after(self, job: Job) -> None:
        """The steps queued by :meth:`after_job`; any failure is logged and changes nothing of the job."""
        steps, self._after = self._after, []
        for step in steps:
            attempt(step, f"a step after the {job.kind} of {job.id}")

    def _claim(self, job: Job, wait: float | None = None) -> Job:
        """Take the cluster-wide lock for ``job`` (waiting up to ``wait`` seconds, else not at all)."""
        with self._mutex:
            if self._job is not None:
                raise Conflict(f"a {self._job.kind} is already running: {self._job.id}", running=self._job.id)
            if not job.lock.acquire(blocking=wait is not None, timeout=wait):
                holders = job.lock.contenders()
                running, where = lock_holder(holders[0]) if holders else ("unknown", None)
                on = f" (service {where})" if where else ""
                raise Conflict(
                    f"another backup or restore is running in this cluster: {running}{on}{self._stale_hint(running)}",
                    running=running,
                )
            self._job = job
            return job

    def _stale_hint(self, holder: str) -> str:
        """A lock held for a job that is already over was left by a service that died: say so."""
        try:
            record = self._storage.read(holder)
        except DcosBackupError:
            return ""
        return "" if record.in_progress else STALE_LOCK_HINT

    def _finish(self, job: Job, record: BackupRecord | None) -> None:
        """Write the job's final record and free the lock as one step, so that nobody sees a finished
        job whose lock is still held (a request right after the end would get a spurious 409)."""
        with self._mutex:
            try:
                if record is not None:
                    written = self.write_final(record, job)
                    # Before the lock's release (a ZooKeeper write): whoever waits sees the end at once, and
                    # a job started in reaction waits for this mutex, so it never finds the lock still held.
                    for listener in self._listeners:
                        attempt(listener, "a listener of the end of a job")
                    if written:
                        self._run_after(job)  # under the mutex: no job starts on the record meanwhile
                        if job.fence is not None:
                            attempt(lambda: self._engine.forget(job.id), "dropping the journal entry")
            finally:
                self._after = []
                if self._job is job:
                    self._release(job)

    def _release(self, job: Job) -> None:
        try:
            job.lock.release()
        except Exception:  # best-effort cleanup: the lock node dies with our ZooKeeper session anyway
            log.warning("could not release the ZooKeeper lock of %s", job.id)
        self._job = None

    def write_final(self, record: BackupRecord, job: Job | None = None) -> bool:
        """Write a record that reached its final state (journalled first under ``job``'s fence); a storage
        failure is logged, not raised, since nothing else can be done about it (the next leader finds the
        job's journal and makes the record follow it). Fenced: nothing is written."""
        try:
            if job is not None:
                self.write(job, record, "done")
            else:
                self._storage.write(record)
        except Fenced:
            log.warning("the final state of %s was not written: this service no longer leads (fenced)", record.id)
            return False
        except DcosBackupError:
            log.exception("could not write the final state of %s", record.id)
            return False
        return True

    def join(self, timeout: float) -> None:
        job = self._job
        if job is not None and job.thread is not None:
            job.thread.join(timeout=timeout)
