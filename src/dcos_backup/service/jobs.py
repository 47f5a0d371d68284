"""The backup service's core: backups and restores as background jobs, one at a time per cluster.

Routes (``service/app.py``) and tests call :class:`BackupService`, built from its storage and its engine
(``BackupService(LocalStorage(dir), ZkEngine(hosts))``). The job runner (``service/runner.py``) owns the
lock, the threads and the final writes; the methods here are the jobs' steps. Every state change goes
to the catalog first, so that a restarted service picks up exactly where the catalog says it was.

Restore, in order: check the request against the backup (``service/plan.py``: which components and
subtrees; a ``--path`` the backup does not hold is refused here) -> check each archive's sha256 into a
private copy that every later step reads (ZooKeeper untouched on mismatch; what is applied is what was
checked) -> journal the restore in the catalog -> one read of exactly the subtrees the restore may touch,
written to the safety backup and merged with the archive into the planned changes (kept on disk) -> send
the planned changes -> re-read and compare (another client's write meanwhile: merge and apply again, then
compare) -> on any failure, apply the safety backup again and report STATUS_ERROR. A dry run computes the
diff under the job lock, in the request, and writes nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path

from dcos_backup import __version__
from dcos_backup.catalog.archive import ArchiveWriter, read_archive
from dcos_backup.catalog.models import BackupRecord, RestoreRecord, Status, ZxidWindow, now
from dcos_backup.catalog.storage import CheckedArchive, Storage
from dcos_backup.components import DEFAULT_COMPONENTS, ZkSubtree, archive_name, choose
from dcos_backup.components.hooks import Hook, run_hooks
from dcos_backup.errors import ChangedMeanwhile, Conflict, DcosBackupError, IntegrityError, NotFound, UsageError
from dcos_backup.service.engine import Engine
from dcos_backup.service.plan import Plan, Target, components_of, plan_restore, safety_roots
from dcos_backup.service.runner import Job, JobRunner, attempt
from dcos_backup.zk import OpLog, ReadStats, ZNode, missing_subtrees

log = logging.getLogger(__name__)

SAFETY_PREFIX = "safety-"
RECOVERY_LOCK_WAIT = 120.0  # the stopped process's lock lives until its ZooKeeper session expires
PROGRESS_EVERY = 256  # nodes between two updates of a backup's progress (and checks for a cancel)
PROGRESS_TICK = 64  # nodes between two updates of an apply's or a verification's progress
DCOS_VERSION_FILE = Path("/opt/mesosphere/etc/dcos-version.json")
KEEP_SAFETY_BACKUPS = 3  # safety backups kept per cluster; older ones go after a successful restore
DRY_RUN_CHANGES = 10_000  # changes a dry run lists (every count is complete): bounds its answer's size
COUNTS = ("created", "updated", "deleted", "unchanged", "counters", "counter_children")


def followed(nodes: Iterable[ZNode], job: Job, cancellable: bool) -> Iterator[ZNode]:
    """``nodes``, counted in the job's progress as they go and, if ``cancellable``, stopping with Cancelled
    once the job is cancelled (an Event's check per node costs little)."""
    progress = job.progress
    count = 0
    for count, node in enumerate(nodes, 1):
        if cancellable:
            job.check_cancelled()
        if count % PROGRESS_TICK == 0:
            progress["nodes"] = count
        yield node
    progress["nodes"] = count


def cluster_version(version_file: Path = DCOS_VERSION_FILE) -> str:
    """What backups record as ``dcos_version``: DC/OS's version on a DC/OS master, else this package's."""
    try:
        return str(json.loads(version_file.read_text())["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return __version__


class BackupService:
    def __init__(
        self,
        storage: Storage,
        engine: Engine,
        components: Sequence[ZkSubtree] = DEFAULT_COMPONENTS,
        dcos_version: str | None = None,
        instance: str | None = None,
        hooks: Sequence[Hook] = (),
        keep_safety: int = KEEP_SAFETY_BACKUPS,
    ) -> None:
        """``engine`` is the service's only way to ZooKeeper; its owner closes it after :meth:`close`.
        ``instance`` names this service in the job lock: the same name after a restart on the same master
        lets :meth:`recover` release the lock its previous process held (default: unique to this object).
        ``hooks``: application hooks around a restore (:mod:`dcos_backup.components.hooks`); ``keep_safety``:
        how many safety backups a successful restore leaves (the newest, its own among them)."""
        if keep_safety < 1:
            raise UsageError("at least one safety backup must be kept (the one of the latest restore)")
        self.keep_safety = keep_safety
        self.storage = storage
        self.engine = engine
        self.components = tuple(components)
        unknown = sorted({h.component for h in hooks} - {c.name for c in self.components})
        if unknown:
            raise UsageError(f"hooks for unknown components: {', '.join(unknown)}")
        self.hooks = tuple(hooks)
        self.dcos_version = dcos_version or cluster_version()
        self.instance = instance or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self._jobs = JobRunner(engine, storage, self.instance)

    # ------------------------------------------------------------------ lifecycle
    def recover(self) -> list[str]:
        """Deal with jobs a previous process left running; returns their ids.

        First the job lock that process held (same ``instance``) is released: its ZooKeeper session
        outlives the process by the session timeout, and would refuse every job until then.
        An interrupted backup becomes STATUS_ERROR and its partial files go. An interrupted restore
        that had not changed ZooKeeper yet (no safety backup recorded) becomes STATUS_ERROR; one that
        may have changed it is rolled back to its safety backup in the background (under the cluster
        lock), so the tree ends exactly as it was before the restore, and the reason says so.
        """
        for job_id in self.engine.release_stale_locks(self.instance):
            log.warning("released the job lock of %s, left by this service's previous process", job_id)
        interrupted = []
        for record in self.storage.list_records():
            restore = record.latest_restore
            if self.job_runs_on(record.id):
                continue  # this process's own job (leading again after a lost session): it is not over
            if record.status == Status.BACKING_UP:
                record.interrupt()
                self.storage.remove_partials(record.id)
                self.storage.write(record)
            elif restore is not None and restore.status == Status.RESTORING and restore.safety_backup_id is None:
                restore.fail("interrupted before any change; ZooKeeper was not touched")
                self.storage.write(record)
            elif restore is not None and restore.status == Status.RESTORING:
                self._roll_back_in_background(record, restore, restore.safety_backup_id)
            else:
                continue
            interrupted.append(record.id)
            log.warning("found interrupted job %s", record.id)
        return interrupted

    def _roll_back_in_background(self, record: BackupRecord, restore: RestoreRecord, safety_id: str) -> None:
        """Roll an interrupted restore back, once the stopped process's lock has expired; the rollback
        job writes the record when it ends."""

        def roll_back(job: Job) -> None:
            restore.fail(f"interrupted: the service stopped during the restore; {self._roll_back(safety_id, job)}")

        def cannot_roll_back(_: Job, reason: str) -> None:
            restore.fail(f"interrupted; cannot roll back ({reason}): restore {safety_id} by hand")

        self._jobs.launch_when_free("recovery", record, roll_back, cannot_roll_back, wait=RECOVERY_LOCK_WAIT)

    def close(self) -> None:
        """Give a running job a few seconds to end (the engine is its owner's to close)."""
        self._jobs.join(timeout=5)

    # ------------------------------------------------------------------ queries
    def list(self, prefix: str = "") -> list[BackupRecord]:
        """The backups whose id starts with ``prefix`` (a label, an id), oldest first."""
        return self.storage.list_records(prefix)

    def get(self, backup_id: str) -> BackupRecord:
        return self.storage.read(backup_id)

    def progress(self, backup_id: str) -> dict[str, object] | None:
        job = self._jobs.current
        if job is not None and job.id == backup_id:
            return dict(job.progress)
        return None

    @property
    def running(self) -> Job | None:
        return self._jobs.current

    def job_runs_on(self, prefix: str) -> bool:
        """A job runs on a backup whose id starts with ``prefix``."""
        job = self._jobs.current
        return job is not None and job.id.startswith(prefix)

    def on_job_end(self, listener: Callable[[], None]) -> None:
        """Have ``listener()`` called (in the job's thread) whenever a job has ended."""
        self._jobs.on_end(listener)

    # ------------------------------------------------------------------ commands
    def create(self, label: str, components: Sequence[str] = (), schedule: str | None = None) -> BackupRecord:
        """Start a backup of ``components`` (names; default all), taken by ``schedule`` if given; returns it
        as it starts (every component STATUS_UNKNOWN), whatever the job does next."""
        roots = {comp.name: comp.root for comp in choose(self.components, components)}
        record = BackupRecord.start(label, roots, self.dcos_version, schedule=schedule)
        started = record.model_copy(deep=True)
        self._jobs.launch("backup", record, partial(self._back_up, record), partial(self._backup_failed, record))
        return started

    def cancel(self, backup_id: str) -> BackupRecord:
        """Ask the job running on a backup to stop: a backup ends STATUS_ERROR "cancelled", a restore is
        rolled back to its safety backup (a rollback itself cannot be cancelled). Returns the record."""
        record = self.storage.read(backup_id)
        job = self._jobs.current
        if job is None or job.id != backup_id or job.kind not in ("backup", "restore"):
            raise Conflict(f"no backup or restore runs on {backup_id}")
        job.cancelled.set()
        log.info("cancelling the %s of %s", job.kind, backup_id)
        return record

    def delete(self, backup_id: str) -> BackupRecord:
        """Delete a backup (a damaged entry too); Conflict while a job uses it or an unfinished restore
        depends on it as its safety backup."""

        def delete_unless_in_use(job: Job | None) -> BackupRecord:
            if job is not None and backup_id in (job.id, job.progress.get("safety_backup_id")):
                raise Conflict(
                    f"backup {backup_id} is in use by a running {job.kind}; wait for it to finish", running=job.id
                )
            record = self.storage.entry(backup_id)
            if record.status == Status.BACKING_UP:
                raise Conflict(f"backup {backup_id} is still being created")
            self._check_not_protecting(record)
            self.storage.delete(backup_id)
            return record

        self.storage.entry(backup_id)  # 404 first
        return self._jobs.between_jobs(delete_unless_in_use)

    def _check_not_protecting(self, record: BackupRecord) -> None:
        """A safety backup whose restore has not ended (interrupted, its rollback pending) is what that
        rollback applies: deleting it would leave the tree half-restored (Conflict)."""
        if record.safety_for is None:
            return
        try:
            protected = self.storage.read(record.safety_for)
        except DcosBackupError:
            return  # gone or damaged: no restore of it can be rolled back with this one
        latest = protected.latest_restore
        if latest is not None and latest.status == Status.RESTORING and latest.safety_backup_id == record.id:
            raise Conflict(
                f"backup {record.id} is the safety backup of the unfinished restore {latest.id} of "
                f"{protected.id}: its rollback needs it; delete it once that restore has ended",
                running=protected.id,
            )

    def restore(self, backup_id: str, paths: Sequence[str] = (), mapping: str | None = None) -> RestoreRecord:
        """Start a restore of a backup (of its subtrees ``paths``, moved by ``mapping`` "SRC=DST", if given);
        returns the restore as it starts (components STATUS_UNKNOWN)."""
        record = self.storage.read(backup_id)
        targets = plan_restore(record, paths, mapping, registry=self.components)
        # journalled by launch, before anything in ZooKeeper changes
        restore = record.start_restore(components_of(targets), sorted(set(paths)), mapping)
        self._check_held(record, targets)
        started = restore.model_copy(deep=True)
        steps = partial(self._restore, record, restore, targets)
        self._jobs.launch("restore", record, steps, partial(self._restore_failed, restore))
        return started

    def dry_run(self, backup_id: str, paths: Sequence[str] = (), mapping: str | None = None) -> dict[str, object]:
        """What :meth:`restore` with the same arguments would change, computed now (under the job lock, so
        no job changes the tree meanwhile) and changing nothing: no journal, no safety backup, no record."""
        record = self.storage.read(backup_id)
        targets = plan_restore(record, paths, mapping, registry=self.components)
        record.check_restorable()
        self._check_held(record, targets)
        return self._jobs.run_now("dry run", backup_id, partial(self._diff, record, targets))

    def _check_held(self, record: BackupRecord, targets: Sequence[Target]) -> None:
        """Refuse a restore of subtrees the backup does not hold, before anything runs (one archive read each)."""
        for target in targets:
            if target.paths is None and target.mapping is None:
                continue
            with self.storage.archive_reader(record.id, record.component_status[target.component].archive or "") as raw:
                missing = missing_subtrees(read_archive(raw), target.src_paths)
            if missing:
                raise NotFound(f"backup {record.id} does not hold {', '.join(missing)}; nothing was changed")

    # ------------------------------------------------------------------ backup steps
    def _back_up(self, record: BackupRecord, job: Job) -> None:
        for name, comp in record.component_status.items():
            self._back_up_component(record, name, comp.root, job)
        record.finish()
        log.info("backup %s ready (%d bytes)", record.id, record.size)

    def _backup_failed(self, record: BackupRecord, _: Job | None, reason: str) -> None:
        record.fail(reason)
        self.storage.remove_partials(record.id)

    def _back_up_component(self, record: BackupRecord, name: str, root: str, job: Job) -> None:
        """Stream one component into its archive."""
        phase = f"safety backup of {name}" if record.safety else f"backing up {name}"
        for _ in self._archived(record, name, root, job, counted=True, phase=phase):
            pass

    def _archived(
        self, record: BackupRecord, name: str, root: str, job: Job, counted: bool, phase: str | None = None
    ) -> Generator[ZNode, None, None]:
        """The live subtree at ``root``, yielded as it is written into the component's archive; the component
        is finished with the stream. ``counted``: report the nodes in the job's progress (and check for a
        cancel) here, in ``phase``; else the caller does."""
        entry = record.start_component(name)
        self.storage.write(record)  # the component shows STATUS_BACKING_UP while it is read
        if phase is not None:  # only now: the progress never names a phase the component's status does not show
            job.progress.update(phase=phase, component=name, nodes=0)
            job.progress.pop("total", None)
        stats = ReadStats()
        first = self.engine.current_zxid()
        archive = archive_name(name)
        with self.storage.archive_writer(record.id, archive) as raw:
            writer = ArchiveWriter(raw, name, root)
            for node in self.engine.read(root, stats):
                writer.add(node)
                if counted and writer.nodes % PROGRESS_EVERY == 0:
                    job.progress["nodes"] = writer.nodes
                    job.check_cancelled()
                yield node
            job.check_cancelled()
            summary = writer.close()
        if counted:
            job.progress["nodes"] = summary.nodes
        window = ZxidWindow(first=first, last=max(self.engine.current_zxid(), first))
        entry.finish(archive, summary, stats.skipped_ephemeral, window)

    # ------------------------------------------------------------------ restore steps
    def _restore(self, record: BackupRecord, restore: RestoreRecord, targets: Sequence[Target], job: Job) -> None:
        restore.begin()
        self.storage.write(record)  # every component shows STATUS_RESTORING from here on
        with contextlib.ExitStack() as stack:
            archives = self._check_archives(record, components_of(targets), job, stack)
            hooked = [t.component for t in targets if t.mapping is None]  # the applications read these roots
            self._call_hooks("before", hooked, job)
            job.check_cancelled()
            safety_id, plans = self._safety_backup_and_difference(record, targets, archives, job)
            for plan in plans:
                stack.callback(plan.ops.close)
            restore.protect(safety_id)
            self.storage.write(record)  # the journal: a restart from here on rolls back to the safety backup
            job.check_cancelled()
            stats = self._apply_plans(plans, archives, job)
        self._call_hooks("after", hooked, job)
        restore.finish(stats)
        restore.pruned_safety_backups = self._prune_safety_backups() or None
        log.info("restore %s of %s done", restore.id, record.id)

    def _check_archives(
        self, record: BackupRecord, names: Sequence[str], job: Job, stack: contextlib.ExitStack
    ) -> dict[str, CheckedArchive]:
        """Each component's archive, checked (sha256, structure, every node under the component's root, which
        plan_restore took from the registry) into a private copy that every later step reads: what is applied
        is what was checked, whatever happens to the stored object meanwhile. The copies go when ``stack`` ends."""
        job.progress.update(phase="checking archives")
        archives = {}
        for name in names:
            comp = record.component_status[name]
            try:
                checked = self.storage.checked_archive(record.id, comp.archive or "", comp.sha256, comp.root)
                archives[name] = stack.enter_context(checked)
            except IntegrityError as exc:
                raise IntegrityError(f"{name}: {exc}; ZooKeeper was not changed") from exc
        return archives

    def _safety_backup_and_difference(
        self, record: BackupRecord, targets: Sequence[Target], archives: dict[str, CheckedArchive], job: Job
    ) -> tuple[str, list[Plan]]:
        """One read of the live subtrees the restore may touch: written to a safety backup and, in the same
        pass, merged with the archive into the operations that make them equal to it (kept on disk, nothing
        sent). Returns the safety backup's id (complete and on disk) and the plans; raises (nothing changed
        yet) if that fails."""
        label = SAFETY_PREFIX + now().strftime("%Y%m%dT%H%M%S")
        safety = BackupRecord.start(label, safety_roots(targets), self.dcos_version, safety_for=record.id)
        job.progress["safety_backup_id"] = safety.id
        self.storage.write(safety)
        plans: list[Plan] = []

        def plan_all() -> None:
            for target in targets:
                plans.append(self._plan(safety, target, archives[target.component], job))
            safety.finish()

        reason = attempt(plan_all, f"safety backup {safety.id}")
        if reason is None:
            self.storage.write(safety)  # must be on disk before ZooKeeper changes: it is what a rollback reads
            return safety.id, plans
        for plan in plans:
            plan.ops.close()
        self._backup_failed(safety, job, reason)
        self._jobs.write_final(safety)
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
            streams.append(self._archived(safety, names.pop(path), path, job, counted=False))
            return streams[-1]

        ops = OpLog()
        try:
            with archive.reader() as raw:
                nodes = followed(target.nodes(read_archive(raw)), job, True)
                stats = self.engine.plan(target.root, nodes, ops, target.paths, read)
            for path, comp in names.items():  # nested in another touched subtree: the merge read it with that one
                self._back_up_component(safety, comp, path, job)
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
            difference = self._refused(plan, job) or self._verify(plan.target, archives[name], job)
            if difference is not None:
                counts = self._catch_up(plan.target, archives[name], job, difference)
            stats[name] = {k: stats.get(name, {}).get(k, 0) + counts[k] for k in COUNTS}
        return stats

    def _refused(self, plan: Plan, job: Job) -> str | None:
        """Send the plan's operations; what ZooKeeper refused because another client changed that node
        after the plan read it (the caller catches up), or None."""
        try:
            self.engine.apply_ops(followed(plan.ops, job, True))
        except ChangedMeanwhile as exc:
            return str(exc)
        return None

    def _verify(self, target: Target, archive: CheckedArchive, job: Job) -> str | None:
        """The first difference between the target's live subtrees and the archive, or None."""
        job.progress.update(phase=f"verifying {target.component}", nodes=0)
        job.progress.pop("total", None)
        with archive.reader() as raw:
            nodes = followed(target.nodes(read_archive(raw)), job, False)
            return self.engine.compare(target.root, nodes, target.paths)

    def _catch_up(self, target: Target, archive: CheckedArchive, job: Job, why: str) -> dict[str, int]:
        """Another client changed the subtrees after the plan read them: merge the archive with the tree as
        it is now and apply, in one pass, then verify (what every restore did before plans existed)."""
        log.warning("%s changed while the restore ran (%s): applying the backup again", target.root, why)
        return self._apply_and_verify(target, archive, job, f"applying {target.component} again", "restoring", True)

    def _apply_and_verify(
        self, target: Target, archive: CheckedArchive, job: Job, phase: str, verb: str, cancellable: bool
    ) -> dict[str, int]:
        """Make the target's subtrees equal to the archive in one merge-and-write pass, then verify them."""
        name = target.component
        job.progress.update(phase=phase, component=name, nodes=0)
        job.progress.pop("total", None)
        with archive.reader() as raw:
            nodes = followed(target.nodes(read_archive(raw)), job, cancellable)
            applied = self.engine.apply(target.root, nodes, target.paths)
        difference = self._verify(target, archive, job)
        if difference is not None:
            raise IntegrityError(f"{name} differs from the backup after {verb}: {difference}")
        return applied.to_dict()

    def _call_hooks(self, when: str, components: Sequence[str], job: Job) -> None:
        job.progress.update(phase=f"calling the {when}-restore hooks")
        run_hooks(self.hooks, when, components)

    def _prune_safety_backups(self) -> list[str]:
        """Delete all but the newest ``keep_safety`` safety backups (after a successful restore, so the
        newest is the one just taken); the ids deleted. A failure to delete is logged, never fatal."""
        ready = [r for r in self.storage.list_records(SAFETY_PREFIX) if r.safety and not r.in_progress]
        pruned = []
        for old in ready[: max(0, len(ready) - self.keep_safety)]:
            if attempt(partial(self.storage.delete, old.id), f"pruning the safety backup {old.id}") is None:
                pruned.append(old.id)
        return pruned

    def _restore_failed(self, restore: RestoreRecord, job: Job, reason: str) -> None:
        if restore.safety_backup_id is not None:
            reason += "; " + self._roll_back(restore.safety_backup_id, job)
        restore.fail(reason)

    def _diff(self, record: BackupRecord, targets: Sequence[Target], job: Job) -> dict[str, object]:
        """The dry run's document: counts in all and per component, the first changes in pre-order."""
        per: dict[str, dict[str, int]] = {}
        changes: list[dict[str, str]] = []
        left_out = 0
        with contextlib.ExitStack() as stack:
            archives = self._check_archives(record, components_of(targets), job, stack)
            for target in targets:
                name = target.component
                job.progress.update(phase=f"computing the difference of {name}", component=name)
                with archives[name].reader() as raw:
                    diff = self.engine.diff(
                        target.root, target.nodes(read_archive(raw)), target.paths, DRY_RUN_CHANGES - len(changes)
                    )
                counts = diff.stats.to_dict()
                per[name] = {k: per.get(name, {}).get(k, 0) + counts[k] for k in COUNTS}
                changes += [c.to_dict() for c in diff.changes]
                left_out += diff.left_out
        totals = {k: sum(c[k] for c in per.values()) for k in COUNTS}
        return {**totals, "component_status": per, "changes": changes, "left_out": left_out}

    def _roll_back(self, safety_id: str, job: Job) -> str:
        """Apply the safety backup again (its archives checked first, like any restore's); says how that
        went (a failed rollback is reported, not raised)."""

        def apply_safety() -> None:
            safety = self.storage.read(safety_id)
            with contextlib.ExitStack() as stack:
                archives = self._check_archives(safety, list(safety.component_status), job, stack)
                for name, comp in safety.component_status.items():
                    target = Target(name, comp.root)
                    self._apply_and_verify(target, archives[name], job, f"rolling back {name}", "rolling back", False)

        reason = attempt(apply_safety, f"rollback to {safety_id}")
        if reason is not None:
            return f"ROLLBACK FAILED ({reason}): restore {safety_id} by hand"
        return f"rolled back to the safety backup {safety_id}"
