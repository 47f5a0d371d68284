"""The backup service's core: backups and restores as background jobs, one at a time per cluster.

Routes (``service/app.py``) and tests call :class:`BackupService`, built from its storage and its engine
(``BackupService(LocalStorage(dir), ZkEngine(hosts))``). The job runner (``service/runner.py``) owns the
lock, the threads and the final writes; the methods here are the jobs' steps. Every state change goes
to the catalog first, so that a restarted service picks up exactly where the catalog says it was.

Restore, in order: check the request against the backup (``service/plan.py``: which components and
subtrees; a ``--path`` the backup does not hold is refused here) -> verify each archive's sha256
(ZooKeeper untouched on mismatch) -> journal the restore in the catalog -> take a safety backup of
exactly the subtrees the restore may touch -> apply the archive as a diff -> re-read and compare -> on
any failure, apply the safety backup again and report STATUS_ERROR. A dry run computes the diff under
the job lock, in the request, and writes nothing.
"""

from __future__ import annotations

import json
import logging
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path

from dcos_backup import __version__
from dcos_backup.catalog.archive import ArchiveWriter, read_archive, verify_archive
from dcos_backup.catalog.models import BackupRecord, RestoreRecord, Status, ZxidWindow, now
from dcos_backup.catalog.storage import Storage
from dcos_backup.components import DEFAULT_COMPONENTS, ZkSubtree, archive_name, choose
from dcos_backup.components.hooks import Hook, run_hooks
from dcos_backup.errors import Conflict, DcosBackupError, IntegrityError, NotFound, UsageError
from dcos_backup.service.engine import Engine
from dcos_backup.service.plan import Target, components_of, plan_restore, safety_roots
from dcos_backup.service.runner import Job, JobRunner, attempt
from dcos_backup.zk import ReadStats, ZNode, missing_subtrees

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
        entry = record.start_component(name)
        self.storage.write(record)  # the component shows STATUS_BACKING_UP while it is read
        phase = f"safety backup of {name}" if record.safety else f"backing up {name}"
        job.progress.update(phase=phase, component=name, nodes=0)
        job.progress.pop("total", None)
        stats = ReadStats()
        first = self.engine.current_zxid()
        archive = archive_name(name)
        with self.storage.archive_writer(record.id, archive) as raw:
            writer = ArchiveWriter(raw, name, root)
            for node in self.engine.read(root, stats):
                writer.add(node)
                if writer.nodes % PROGRESS_EVERY == 0:
                    job.progress["nodes"] = writer.nodes
                    job.check_cancelled()
            job.check_cancelled()
            summary = writer.close()
        job.progress["nodes"] = summary.nodes
        window = ZxidWindow(first=first, last=max(self.engine.current_zxid(), first))
        entry.finish(archive, summary, stats.skipped_ephemeral, window)

    def _take_safety_backup(self, record: BackupRecord, roots: dict[str, str], job: Job) -> str:
        """Back up the live subtrees ``roots`` (name -> path) before a restore changes them; raises (nothing
        changed yet) if that fails."""
        label = SAFETY_PREFIX + now().strftime("%Y%m%dT%H%M%S")
        safety = BackupRecord.start(label, roots, self.dcos_version, safety_for=record.id)
        job.progress["safety_backup_id"] = safety.id
        self.storage.write(safety)
        reason = attempt(partial(self._back_up, safety, job), f"safety backup {safety.id}")
        if reason is None:
            self.storage.write(safety)  # must be on disk before ZooKeeper changes: it is what a rollback reads
            return safety.id
        self._backup_failed(safety, job, reason)
        self._jobs.write_final(safety)
        raise DcosBackupError(f"safety backup failed, nothing was changed: {reason}")

    # ------------------------------------------------------------------ restore steps
    def _restore(self, record: BackupRecord, restore: RestoreRecord, targets: Sequence[Target], job: Job) -> None:
        restore.begin()
        self.storage.write(record)  # every component shows STATUS_RESTORING from here on
        job.progress.update(phase="checking archives")
        self._verify_archives(record, components_of(targets))
        hooked = [t.component for t in targets if t.mapping is None]  # the applications read these roots
        self._call_hooks("before", hooked, job)
        job.check_cancelled()
        restore.protect(self._take_safety_backup(record, safety_roots(targets), job))
        self.storage.write(record)  # the journal: a restart from here on rolls back to the safety backup
        job.check_cancelled()
        stats = self._apply_targets(record, targets, job, "restoring")
        self._call_hooks("after", hooked, job)
        restore.finish(stats)
        restore.pruned_safety_backups = self._prune_safety_backups() or None
        log.info("restore %s of %s done", restore.id, record.id)

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

    def _verify_archives(self, record: BackupRecord, names: Sequence[str]) -> None:
        """Each archive's sha256 and structure, and every node in it under its component's root (which
        plan_restore took from the registry): all checked before ZooKeeper is touched."""
        for name in names:
            comp = record.component_status[name]
            with self.storage.archive_reader(record.id, comp.archive or "") as raw:
                try:
                    verify_archive(raw, comp.sha256, root=comp.root)
                except IntegrityError as exc:
                    raise IntegrityError(f"{name}: {exc}; ZooKeeper was not changed") from exc

    def _archive(self, record: BackupRecord, target: Target):
        """The archive of the target's component, opened for reading (a context manager)."""
        return self.storage.archive_reader(record.id, record.component_status[target.component].archive or "")

    def _apply_targets(
        self, record: BackupRecord, targets: Sequence[Target], job: Job, verb: str
    ) -> dict[str, dict[str, int]]:
        """Make each target's subtrees equal to its part of the archive, then check them; the counts per component."""
        stats: dict[str, dict[str, int]] = {}
        restoring = verb == "restoring"  # else rolling back, which is never cancelled
        for target in targets:
            name = target.component
            whole = target.paths is None and target.mapping is None
            total = {"total": record.component_status[name].nodes} if whole else {}
            job.progress.update(phase=f"applying {name}" if restoring else f"{verb} {name}", component=name, nodes=0)
            job.progress.pop("total", None)
            job.progress.update(total)
            with self._archive(record, target) as raw:
                nodes = followed(target.nodes(read_archive(raw)), job, restoring)
                applied = self.engine.apply(target.root, nodes, target.paths)
            job.progress.update(phase=f"verifying {name}", nodes=0)
            with self._archive(record, target) as raw:
                nodes = followed(target.nodes(read_archive(raw)), job, False)
                difference = self.engine.compare(target.root, nodes, target.paths)
            if difference is not None:
                raise IntegrityError(f"{name} differs from the backup after {verb}: {difference}")
            counts = applied.to_dict()
            stats[name] = {k: stats.get(name, {}).get(k, 0) + counts[k] for k in COUNTS}
        return stats

    def _diff(self, record: BackupRecord, targets: Sequence[Target], job: Job) -> dict[str, object]:
        """The dry run's document: counts in all and per component, the first changes in pre-order."""
        per: dict[str, dict[str, int]] = {}
        changes: list[dict[str, str]] = []
        left_out = 0
        self._verify_archives(record, components_of(targets))
        for target in targets:
            job.progress.update(phase=f"computing the difference of {target.component}", component=target.component)
            with self._archive(record, target) as raw:
                diff = self.engine.diff(
                    target.root, target.nodes(read_archive(raw)), target.paths, DRY_RUN_CHANGES - len(changes)
                )
            counts = diff.stats.to_dict()
            per[target.component] = {k: per.get(target.component, {}).get(k, 0) + counts[k] for k in COUNTS}
            changes += [c.to_dict() for c in diff.changes]
            left_out += diff.left_out
        totals = {k: sum(c[k] for c in per.values()) for k in COUNTS}
        return {**totals, "component_status": per, "changes": changes, "left_out": left_out}

    def _roll_back(self, safety_id: str, job: Job) -> str:
        """Apply the safety backup again; says how that went (a failed rollback is reported, not raised)."""

        def apply_safety() -> None:
            safety = self.storage.read(safety_id)
            whole = [Target(name, comp.root) for name, comp in safety.component_status.items()]
            self._apply_targets(safety, whole, job, "rolling back")

        reason = attempt(apply_safety, f"rollback to {safety_id}")
        if reason is not None:
            return f"ROLLBACK FAILED ({reason}): restore {safety_id} by hand"
        return f"rolled back to the safety backup {safety_id}"
