"""Putting the tree back: the rollback of a restore to its safety backup, and start-up recovery of the jobs
a previous process left running (its job lock released, an interrupted backup failed, an interrupted
restore failed or rolled back)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from dcos_backup.catalog.models import BackupRecord, RestoreRecord, Status
from dcos_backup.catalog.storage import Storage
from dcos_backup.components import DEFAULT_COMPONENTS, ZkSubtree
from dcos_backup.errors import DcosBackupError
from dcos_backup.jobs.archives import apply_and_verify, check_archives
from dcos_backup.jobs.engine import Engine
from dcos_backup.jobs.fencing import Decision, JournalEntry, decide
from dcos_backup.jobs.plan import Target, plan_restore, safety_roots
from dcos_backup.jobs.runner import Job, JobRunner, attempt

log = logging.getLogger(__name__)

RECOVERY_LOCK_WAIT = 120.0  # the stopped process's lock lives until its ZooKeeper session expires
FENCED_JOB_WAIT = 30.0  # a fenced job of this process stops at its next write: seconds at most


def roll_back(
    storage: Storage, engine: Engine, safety_id: str, job: Job, roots: Mapping[str, str] | None = None
) -> str:
    """Apply the safety backup again (its archives checked first, like any restore's) at ``roots`` (its
    components' roots as the restore's plan made them; None: as its record says, for the safety backup
    this process has just taken); says how that went (a failed rollback is reported, not raised)."""

    def apply_safety() -> None:
        safety = storage.read(safety_id)
        if roots is not None and {n: c.root for n, c in safety.component_status.items()} != dict(roots):
            raise DcosBackupError(f"the safety backup {safety_id} does not hold what the restore touched")
        with contextlib.ExitStack() as stack:
            archives = check_archives(storage, safety, list(safety.component_status), job, stack)
            for name, comp in safety.component_status.items():
                target = Target(name, comp.root if roots is None else roots[name])
                apply_and_verify(engine, target, archives[name], job, f"rolling back {name}", "rolling back", False)

    reason = attempt(apply_safety, f"rollback to {safety_id}")
    if reason is not None:
        return f"ROLLBACK FAILED ({reason}): restore {safety_id} by hand"
    return f"rolled back to the safety backup {safety_id}"


def rollback_roots(
    storage: Storage, record: BackupRecord, restore: RestoreRecord, registry: Sequence[ZkSubtree]
) -> dict[str, str]:
    """The roots an interrupted ``restore`` of ``record`` is rolled back at, once it is sure this cluster
    started it: its safety backup is one this cluster took for exactly that restore (signed, not
    uploaded, ``safety_for`` the record and ``safety_restore`` the restore), and the roots are those the
    restore's own plan (the registry's roots, its paths and mapping) touched. Raises DcosBackupError
    saying why not: then nothing is rolled back and ZooKeeper is left alone."""
    safety_id = restore.safety_backup_id
    if safety_id is None:
        raise DcosBackupError("it names no safety backup")
    safety = storage.read(safety_id)
    if not (safety.made_here and safety.safety and safety.status == Status.READY):
        raise DcosBackupError(f"{safety_id} is not a safety backup this cluster took")
    if safety.safety_for != record.id or safety.safety_restore != restore.id:
        raise DcosBackupError(f"the safety backup {safety_id} was not taken for restore {restore.id} of {record.id}")
    targets = plan_restore(record, restore.paths or (), restore.map, registry=registry)
    return safety_roots(targets)


def recovery_decision(
    storage: Storage, record: BackupRecord, journal: JournalEntry | None, registry: Sequence[ZkSubtree]
) -> Decision:
    """The one decision on the interrupted restore of ``record``: :func:`.fencing.decide` from its journal,
    and a rollback only where :func:`rollback_roots` allows it (with its roots); else it fails, ZooKeeper
    left as the restore left it."""
    decision = decide(record, journal)
    if decision.action != "roll back":
        return decision
    base = decision.record or record
    restore = base.latest_restore
    assert restore is not None  # decide rolls back only a restore
    try:
        roots = rollback_roots(storage, base, restore, registry)
    except DcosBackupError as exc:
        log.error("restore %s of %s not rolled back: %s", restore.id, record.id, exc)
        why = f"{decision.why}; not rolled back ({exc}): ZooKeeper was left as the restore left it"
        return Decision("fail", why, base)
    return replace(decision, record=base, roots=roots)


class Recovery:
    """What a service does with the jobs its previous process (the same ``runner.owner``) left running."""

    def __init__(
        self, storage: Storage, engine: Engine, runner: JobRunner, registry: Sequence[ZkSubtree] = DEFAULT_COMPONENTS
    ) -> None:
        self.storage = storage
        self.engine = engine
        self.runner = runner
        self.registry = tuple(registry)
        self._swept = False

    def recover(self) -> list[str]:
        """Deal with jobs a previous process (or a leader that lost its leadership) left running; returns
        their ids.

        First the job lock that process held (same instance) is released: its ZooKeeper session
        outlives the process by the session timeout, and would refuse every job until then; a job of this
        very process that was fenced is given time to stop. An interrupted backup becomes STATUS_ERROR and
        its partial files go. An interrupted restore is decided from its journal (:func:`.fencing.decide`):
        completed if its apply and verify had completed, rolled back (in the background, under the cluster
        lock) if it was cut mid-apply, failed if it had not changed anything; the reason says which and why.
        A rollback goes only to the safety backup this cluster took for that restore (:func:`rollback_roots`),
        else the restore ends STATUS_ERROR "not rolled back" with ZooKeeper untouched. The first call of a
        process also sweeps the partial files a killed process left in the catalog and moves the records of the
        catalog's first layout (:meth:`.Storage.move_legacy_records`).
        """
        self._let_fenced_job_stop()
        for job_id in self.engine.release_stale_locks(self.runner.owner):
            log.warning("released the job lock of %s, left by this service's previous process", job_id)
        if not self._swept:  # once per process: later calls (leading again) may run beside an upload
            self._swept = True
            removed = self.storage.remove_stale_partials()
            if removed:
                log.warning("removed %d partial files left by a previous process in %s", removed, self.storage.url)
            moved = self.storage.move_legacy_records()
            if moved:
                log.warning(
                    "moved %d catalog records of the first layout to <id>.json in %s", len(moved), self.storage.url
                )
        interrupted = []
        for record in self.storage.list_records():
            if self.runner.runs_on(record.id):
                continue  # this process's own job, still under its fence: it is not over
            if self._recovered(record):
                interrupted.append(record.id)
                log.warning("found interrupted job %s", record.id)
        return interrupted

    def _let_fenced_job_stop(self) -> None:
        """A job this process ran under a leadership it has since lost stops at its next write or check;
        wait for it, so that it is recovered like any other (from its journal)."""
        job = self.runner.current
        if job is not None and job.fence is not None and job.fence.revoked.is_set():
            self.runner.join(FENCED_JOB_WAIT)

    def _recovered(self, record: BackupRecord) -> bool:
        """End the job interrupted on ``record``, if any (a rollback starts in the background)."""
        restore = record.latest_restore
        if record.status == Status.BACKING_UP:
            record.interrupt()
            self.runner.write_as_leader(record)  # fenced first: a service that no longer leads removes nothing
            self.storage.remove_partials(record.id)
        elif restore is not None and restore.status == Status.RESTORING:
            decision = recovery_decision(self.storage, record, self.engine.journal_of(record.id), self.registry)
            self._recover_restore(record, restore, decision)
        else:
            return False
        return True

    def _recover_restore(self, record: BackupRecord, restore: RestoreRecord, decision: Decision) -> None:
        log.warning("recovering the restore %s of %s: %s (%s)", restore.id, record.id, decision.action, decision.why)
        if decision.action in ("complete", "adopt") and decision.record is not None:
            final = decision.record
            latest = final.latest_restore
            if decision.action == "complete" and latest is not None:
                latest.reason = decision.why
            self.runner.write_as_leader(final)
            return
        base = decision.record or record
        interrupted = base.latest_restore
        assert interrupted is not None
        if decision.action == "roll back" and decision.roots is not None and interrupted.safety_backup_id:
            self._roll_back_in_background(base, interrupted, interrupted.safety_backup_id, decision.why, decision.roots)
        else:
            interrupted.fail(decision.why)
            self.runner.write_as_leader(base)

    def _roll_back_in_background(
        self, record: BackupRecord, restore: RestoreRecord, safety_id: str, why: str, roots: Mapping[str, str]
    ) -> None:
        """Roll an interrupted restore back, once the stopped process's lock has expired; the rollback
        job writes the record when it ends."""

        def roll_back_now(job: Job) -> None:
            reason = roll_back(self.storage, self.engine, safety_id, job, roots)
            restore.fail(f"{why}; {reason}")

        def cannot_roll_back(_: Job, reason: str) -> None:
            restore.fail(f"{why}; cannot roll back ({reason}): restore {safety_id} by hand")

        self.runner.launch_when_free("recovery", record, roll_back_now, cannot_roll_back, wait=RECOVERY_LOCK_WAIT)
