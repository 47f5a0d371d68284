"""A restore's steps, in order: check the request against the backup (:mod:`.plan`: which components and
subtrees; a ``--path`` the backup does not hold is refused by :func:`check_held`) -> check each archive's
sha256 into a private copy that every later step reads (ZooKeeper untouched on mismatch; what is applied is
what was checked) -> journal the restore in the catalog -> one read of exactly the subtrees the restore may
touch, written to the safety backup and merged with the archive into the planned changes (kept on disk) ->
send the planned changes -> re-read and compare (another client's write meanwhile: merge and apply again,
then compare) -> on any failure, apply the safety backup again (:mod:`.recovery`) and report STATUS_ERROR.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Generator, Iterator, Sequence
from functools import partial

from dcos_backup.catalog.archive import read_archive
from dcos_backup.catalog.models import BackupRecord, RestoreRecord, Status
from dcos_backup.catalog.storage import CheckedArchive, Storage
from dcos_backup.components.hooks import Hook, run_hooks
from dcos_backup.errors import ChangedMeanwhile, DcosBackupError, NotFound
from dcos_backup.jobs.archives import COUNTS, apply_and_verify, check_archives, followed, verify
from dcos_backup.jobs.backup import BackupJob
from dcos_backup.jobs.plan import Plan, Target, components_of, safety_roots
from dcos_backup.jobs.recovery import roll_back
from dcos_backup.jobs.runner import Job, JobRunner, attempt
from dcos_backup.jobs.safety import prune_safety_backups, safety_label
from dcos_backup.logical import OpLog, ZNode, missing_subtrees

log = logging.getLogger(__name__)


def check_held(storage: Storage, record: BackupRecord, targets: Sequence[Target]) -> None:
    """Refuse a restore of subtrees the backup does not hold, before anything runs (one archive read each)."""
    for target in targets:
        if target.paths is None and target.mapping is None:
            continue
        with storage.archive_reader(record.id, record.component_status[target.component].archive or "") as raw:
            missing = missing_subtrees(read_archive(raw), target.src_paths)
        if missing:
            raise NotFound(f"backup {record.id} does not hold {', '.join(missing)}; nothing was changed")


class RestoreJob:
    """The steps of a restore job, and what its failure does (a rollback once ZooKeeper may have changed).
    ``hooks``: application hooks around a restore; ``keep_safety``: the safety backups a successful restore
    leaves (the newest, its own among them)."""

    def __init__(
        self,
        runner: JobRunner,
        backups: BackupJob,
        dcos_version: str,
        hooks: Sequence[Hook],
        keep_safety: int,
    ) -> None:
        self.runner = runner
        self.backups = backups
        self.storage = backups.storage
        self.engine = backups.engine
        self.dcos_version = dcos_version
        self.hooks = tuple(hooks)
        self.keep_safety = keep_safety

    def run(self, record: BackupRecord, restore: RestoreRecord, targets: Sequence[Target], job: Job) -> None:
        restore.begin()
        self.runner.write(job, record, "begun")  # every component shows STATUS_RESTORING from here on
        with contextlib.ExitStack() as stack:
            archives = check_archives(self.storage, record, components_of(targets), job, stack)
            hooked = [t.component for t in targets if t.mapping is None]  # the applications read these roots
            self._call_hooks("before", hooked, job)
            job.check_cancelled()
            safety_id, plans = self._safety_backup_and_difference(record, targets, archives, job)
            for plan in plans:
                stack.callback(plan.ops.close)
            restore.protect(safety_id)
            self.runner.write(job, record, "applying")  # the journal: cut from here on, a restore is rolled back
            job.check_cancelled()
            stats = self._apply_plans(plans, archives, job)
        self._journal_applied(record, stats, job)
        self._call_hooks("after", hooked, job)
        restore.finish(stats)
        # After finish() nothing may change the tree: pruning runs once the record is written, best effort.
        self.runner.after_job(partial(self._prune_safety_backups, record, restore, job))
        log.info("restore %s of %s done", restore.id, record.id)

    def _journal_applied(self, record: BackupRecord, stats: dict[str, dict[str, int]], job: Job) -> None:
        """Apply and verify completed: journalled (fenced) as the READY record, so a leader that takes over
        from here on completes the restore instead of rolling it back (:func:`.fencing.decide`)."""
        applied = record.model_copy(deep=True)
        latest = applied.latest_restore
        assert latest is not None  # the restore being run
        latest.finish(stats)
        if job.fence is not None:
            self.engine.journal(applied, "applied", job.fence)

    def _prune_safety_backups(self, record: BackupRecord, restore: RestoreRecord, job: Job) -> None:
        """Delete the safety backups beyond the newest ``keep_safety`` once the restore's READY record is
        written, and name them in it (best effort: a failure is logged; the next restore prunes them)."""
        if restore.status != Status.READY:
            return
        pruned = prune_safety_backups(self.storage, self.keep_safety, job.check_fence)
        if pruned:
            restore.pruned_safety_backups = pruned
            self.runner.write(job, record, "done")

    def failed(self, restore: RestoreRecord, job: Job, reason: str) -> None:
        if restore.safety_backup_id is not None:
            reason += "; " + roll_back(self.storage, self.engine, restore.safety_backup_id, job)
        restore.fail(reason)

    def _safety_backup_and_difference(
        self, record: BackupRecord, targets: Sequence[Target], archives: dict[str, CheckedArchive], job: Job
    ) -> tuple[str, list[Plan]]:
        """One read of the live subtrees the restore may touch: written to a safety backup and, in the same
        pass, merged with the archive into the operations that make them equal to it (kept on disk, nothing
        sent). Returns the safety backup's id (complete and on disk) and the plans; raises (nothing changed
        yet) if that fails."""
        restore = record.latest_restore  # the one this job runs (journalled by launch)
        assert restore is not None
        safety = BackupRecord.start(
            safety_label(), safety_roots(targets), self.dcos_version, safety_for=record.id, safety_restore=restore.id
        )
        job.progress["safety_backup_id"] = safety.id
        self.runner.write(job, safety, "started")
        plans: list[Plan] = []

        def plan_all() -> None:
            for target in targets:
                plans.append(self._plan(safety, target, archives[target.component], job))
            safety.finish()

        reason = attempt(plan_all, f"safety backup {safety.id}")
        if reason is None:
            # on disk before ZooKeeper changes: it is what a rollback reads
            self.runner.write(job, safety, "done")
            return safety.id, plans
        for plan in plans:
            plan.ops.close()
        self.backups.failed(safety, job, reason)
        self.runner.write_final(safety, job)
        raise DcosBackupError(f"safety backup failed, nothing was changed: {reason}")

    def _plan(self, safety: BackupRecord, target: Target, archive: CheckedArchive, job: Job) -> Plan:
        """The target's difference, computed while its live subtrees go into the safety backup."""
        name = target.component
        job.progress.update(phase=f"safety backup and difference of {name}", component=name, nodes=0)
        job.progress.pop("total", None)
        if target.paths is None and target.mapping is None:
            job.progress["total"] = archive.summary.nodes
        names = {path: comp for comp, path in safety_roots([target]).items()}
        streams: list[Generator[ZNode, None, None]] = []

        def read(path: str) -> Iterator[ZNode]:
            streams.append(self.backups.archived(safety, names.pop(path), path, job, counted=False))
            return streams[-1]

        ops = OpLog()
        try:
            with archive.reader() as raw:
                nodes = followed(target.nodes(read_archive(raw)), job, True)
                stats = self.engine.plan(target.root, nodes, ops, target.paths, read)
            for path, comp in names.items():  # nested in another touched subtree: the merge read it with that one
                self.backups.back_up_component(safety, comp, path, job)
        except BaseException:
            ops.close()
            raise
        finally:
            for stream in streams:
                stream.close()  # an unfinished one drops its partial archive now, not when it is collected
        return Plan(target, ops, stats)

    def _apply_plans(
        self, plans: Sequence[Plan], archives: dict[str, CheckedArchive], job: Job
    ) -> dict[str, dict[str, int]]:
        """Send each plan's operations, then verify its subtrees; the counts per component."""
        stats: dict[str, dict[str, int]] = {}
        for plan in plans:
            name = plan.target.component
            job.progress.update(phase=f"applying {name}", component=name, nodes=0, total=plan.ops.count)
            counts = plan.stats.to_dict()
            difference = self._refused(plan, job) or verify(self.engine, plan.target, archives[name], job)
            if difference is not None:
                counts = self._catch_up(plan.target, archives[name], job, difference)
            stats[name] = {k: stats.get(name, {}).get(k, 0) + counts[k] for k in COUNTS}
        return stats

    def _refused(self, plan: Plan, job: Job) -> str | None:
        """Send the plan's operations; what ZooKeeper refused because another client changed that node
        after the plan read it (the caller catches up), or None."""
        try:
            self.engine.apply_ops(followed(plan.ops, job, True), job.fence, plan.target.root)
        except ChangedMeanwhile as exc:
            return str(exc)
        return None

    def _catch_up(self, target: Target, archive: CheckedArchive, job: Job, why: str) -> dict[str, int]:
        """Another client changed the subtrees after the plan read them: merge the archive with the tree as
        it is now and apply, in one pass, then verify (what every restore did before plans existed)."""
        log.warning("%s changed while the restore ran (%s): applying the backup again", target.root, why)
        phase = f"applying {target.component} again"
        return apply_and_verify(self.engine, target, archive, job, phase, "restoring", True)

    def _call_hooks(self, when: str, components: Sequence[str], job: Job) -> None:
        job.progress.update(phase=f"calling the {when}-restore hooks")
        run_hooks(self.hooks, when, components)
