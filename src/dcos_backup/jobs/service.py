"""The backup service's core facade: what the routes (:mod:`dcos_backup.api.app`) and tests call.

:class:`BackupService` is built from its storage and its engine
(``BackupService(LocalStorage(dir), ZkEngine(hosts))``) and answers queries (list, get, progress) and
commands (create, cancel, delete, restore, dry run). The job runner (:mod:`.runner`) owns the lock, the
threads and the final writes; the jobs' steps are :mod:`.backup`, :mod:`.restore` and :mod:`.recovery`.
Every state change goes to the catalog first, so that a restarted service picks up exactly where the
catalog says it was.
"""

from __future__ import annotations

import json
import logging
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path

from dcos_backup import __version__
from dcos_backup.catalog.models import BackupRecord, DrillRecord, RestoreRecord, Status
from dcos_backup.catalog.storage import Storage
from dcos_backup.components import DEFAULT_COMPONENTS, ZkSubtree, choose
from dcos_backup.components.hooks import Hook
from dcos_backup.errors import Conflict, UsageError
from dcos_backup.jobs.backup import BackupJob
from dcos_backup.jobs.drill import DrillJob
from dcos_backup.jobs.dry_run import difference
from dcos_backup.jobs.engine import Engine
from dcos_backup.jobs.fencing import Fence
from dcos_backup.jobs.metrics import JobMetrics
from dcos_backup.jobs.plan import PRIVILEGED, components_of, plan_restore, with_iam
from dcos_backup.jobs.point import Point, PointBackups, RepositoryOpener, components_for, source_subtrees
from dcos_backup.jobs.recovery import Recovery
from dcos_backup.jobs.restore import RestoreJob, check_held
from dcos_backup.jobs.runner import Job, JobRunner
from dcos_backup.jobs.safety import KEEP_SAFETY_BACKUPS, check_not_protecting

log = logging.getLogger(__name__)

DCOS_VERSION_FILE = Path("/opt/mesosphere/etc/dcos-version.json")


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
        scratch_dir: Path | None = None,
        zk_archive: RepositoryOpener | None = None,
    ) -> None:
        """``engine`` is the service's only way to ZooKeeper; its owner closes it after :meth:`close`.
        ``instance`` names this service in the job lock: the same name after a restart on the same master
        lets :meth:`recover` release the lock its previous process held (default: unique to this object).
        ``hooks``: application hooks around a restore (:mod:`dcos_backup.components.hooks`); ``keep_safety``:
        how many safety backups a successful restore leaves (the newest, its own among them); ``scratch_dir``:
        where a drill's scratch ZooKeeper keeps its data (default: the system's temporary directory);
        ``zk_archive``: opens the cluster's continuous archive (restores from a point, :mod:`.point`)."""
        if keep_safety < 1:
            raise UsageError("at least one safety backup must be kept (the one of the latest restore)")
        self.storage = storage
        self.engine = engine
        self.components = with_iam(components)
        unknown = sorted({h.component for h in hooks} - {c.name for c in self.components})
        if unknown:
            raise UsageError(f"hooks for unknown components: {', '.join(unknown)}")
        self.dcos_version = dcos_version or cluster_version()
        self.instance = instance or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.job_metrics = JobMetrics()  # counted by the runner, served by the API (jobs/metrics.py)
        self._runner = JobRunner(engine, storage, self.instance, self.job_metrics)
        self._backups = BackupJob(storage, engine, self._runner)
        self._restores = RestoreJob(self._runner, self._backups, self.dcos_version, hooks, keep_safety)
        self._recovery = Recovery(storage, engine, self._runner, self.components)
        self._drills = DrillJob(storage, scratch_dir)
        self._points = PointBackups(zk_archive, self.components, self.dcos_version, scratch_dir)

    # ------------------------------------------------------------------ lifecycle
    def recover(self) -> list[str]:
        """Deal with jobs a previous process left running; returns their ids (:meth:`.Recovery.recover`)."""
        return self._recovery.recover()

    def fenced_by(self, leadership_fence: Callable[[], Fence | None]) -> None:
        """Make every write of a job conditional on the leadership ``leadership_fence()`` returns
        (:mod:`.fencing`; the service's :class:`~.leadership.Leadership` ``.fence``)."""
        self._runner.fence_with(leadership_fence)

    def close(self) -> None:
        """Give a running job a few seconds to end (the engine is its owner's to close)."""
        self._runner.join(timeout=5)

    # ------------------------------------------------------------------ queries
    def list(self, prefix: str = "") -> list[BackupRecord]:
        """The backups whose id starts with ``prefix`` (a label, an id), oldest first."""
        return self.storage.list_records(prefix)

    def backups(self, prefix: str = "") -> Iterator[BackupRecord]:
        """The backups whose id starts with ``prefix``, in id order, as the catalog reads them (a full id:
        its one record, nothing listed; :meth:`.Storage.iter_records`)."""
        return self.storage.iter_records(prefix)

    def get(self, backup_id: str) -> BackupRecord:
        return self.storage.read(backup_id)

    def progress(self, backup_id: str) -> dict[str, object] | None:
        job = self._runner.current
        if job is not None and job.id == backup_id:
            return dict(job.progress)
        return None

    @property
    def running(self) -> Job | None:
        return self._runner.current

    def job_runs_on(self, prefix: str) -> bool:
        """A job runs on a backup whose id starts with ``prefix``."""
        return self._runner.runs_on(prefix)

    def on_job_end(self, listener: Callable[[], None]) -> None:
        """Have ``listener()`` called (in the job's thread) whenever a job has ended."""
        self._runner.on_end(listener)

    # ------------------------------------------------------------------ commands
    def create(self, label: str, components: Sequence[str] = (), schedule: str | None = None) -> BackupRecord:
        """Start a backup of ``components`` (names; default all), taken by ``schedule`` if given; returns it
        as it starts (every component STATUS_UNKNOWN), whatever the job does next."""
        roots = {comp.name: comp.root for comp in choose(self.components, components)}
        record = BackupRecord.start(label, roots, self.dcos_version, schedule=schedule)
        started = record.model_copy(deep=True)
        steps, fail = partial(self._backups.run, record), partial(self._backups.failed, record)
        self._runner.launch("backup", record, steps, fail)
        return started

    def cancel(self, backup_id: str) -> BackupRecord:
        """Ask the job running on a backup to stop: a backup ends STATUS_ERROR "cancelled", a restore is
        rolled back to its safety backup (a rollback itself cannot be cancelled). Returns the record."""
        record = self.storage.read(backup_id)
        job = self._runner.current
        if job is None or job.id != backup_id or job.kind not in ("backup", "restore", "drill"):
            raise Conflict(f"no backup, restore or drill runs on {backup_id}")
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
            check_not_protecting(self.storage, record)
            self._runner.check_leads()
            self.storage.delete(backup_id)
            return record

        self.storage.entry(backup_id)  # 404 first
        return self._runner.between_jobs(delete_unless_in_use)

    def restore(self, backup_id: str, paths: Sequence[str] = (), mapping: str | None = None) -> RestoreRecord:
        """Start a restore of a backup (of its subtrees ``paths``, moved by ``mapping`` "SRC=DST", if given);
        returns the restore as it starts (components STATUS_UNKNOWN)."""
        record = self.storage.read(backup_id)
        targets = plan_restore(record, paths, mapping, registry=self.components)
        # journalled by launch, before anything in ZooKeeper changes
        restore = record.start_restore(components_of(targets), sorted(set(paths)), mapping)
        check_held(self.storage, record, targets)
        started = restore.model_copy(deep=True)
        steps = partial(self._restores.run, record, restore, targets)
        self._runner.launch("restore", record, steps, partial(self._restores.failed, restore))
        return started

    def privileged(self, backup_id: str, paths: Sequence[str] = (), mapping: str | None = None) -> tuple[str, ...]:
        """The components needing ``dcos:superuser`` (:data:`~.plan.PRIVILEGED`: ``iam``) that a restore or dry
        run of ``backup_id`` with these arguments would touch (the API refuses it to anyone else)."""
        record = self.storage.read(backup_id)
        targets = plan_restore(record, paths, mapping, registry=self.components)
        return tuple(name for name in components_of(targets) if name in PRIVILEGED)

    def privileged_point(self, paths: Sequence[str] = (), mapping: str | None = None) -> tuple[str, ...]:
        """The same as :meth:`privileged` for a restore from a point of the continuous archive."""
        owners = components_for(source_subtrees(paths, mapping), self.components)
        return tuple(name for name in owners if name in PRIVILEGED)

    def restore_point(
        self, point: Point, paths: Sequence[str] = (), mapping: str | None = None
    ) -> tuple[BackupRecord, RestoreRecord]:
        """Start a restore of subtrees (``paths``, or the mapping's SRC) as they were at ``point`` of the
        continuous archive (:mod:`.point`): their point backup is built and written first, then restored
        like any backup. Returns the point backup and its restore as it starts."""
        record = self._points.build(self.storage, point, paths, mapping)
        return record, self.restore(record.id, paths, mapping)

    def dry_run_point(self, point: Point, paths: Sequence[str] = (), mapping: str | None = None) -> dict[str, object]:
        """What :meth:`restore_point` would change, changing nothing (its point backup is built into a
        private catalog, deleted after); the document has the resolved point as ``point``."""
        with self._points.scratch_catalog(self.storage) as scratch:
            record = self._points.build(scratch, point, paths, mapping)
            targets = plan_restore(record, paths, mapping, registry=self.components)
            work = partial(difference, scratch, self.engine, record, targets)
            diff = self._runner.run_now("dry run", record.id, work)
        assert record.point is not None
        return {**diff, "point": record.point.model_dump()}

    def drill(self, backup_id: str) -> DrillRecord:
        """Start a restore drill of a READY backup (:mod:`.drill`: its archives restored into a scratch
        ZooKeeper and compared; the live tree untouched); returns the drill as it starts. Its outcome is
        appended to the record's ``drills`` when the job ends."""
        record = self.storage.read(backup_id)
        record.check_drillable()
        drill = DrillRecord.start()
        started = drill.model_copy(deep=True)
        steps, fail = partial(self._drills.run, record, drill), partial(self._drills.failed, record, drill)
        self._runner.launch("drill", record, steps, fail)
        return started

    def dry_run(self, backup_id: str, paths: Sequence[str] = (), mapping: str | None = None) -> dict[str, object]:
        """What :meth:`restore` with the same arguments would change, computed now (under the job lock, so
        no job changes the tree meanwhile) and changing nothing: no journal, no safety backup, no record."""
        record = self.storage.read(backup_id)
        targets = plan_restore(record, paths, mapping, registry=self.components)
        record.check_restorable()
        check_held(self.storage, record, targets)
        work = partial(difference, self.storage, self.engine, record, targets)
        return self._runner.run_now("dry run", backup_id, work)
