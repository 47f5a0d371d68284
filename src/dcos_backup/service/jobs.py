"""The backup service's core: backups and restores as background jobs, one at a time per cluster.

Routes (``service/app.py``) and tests call :class:`BackupService`; it owns the ZooKeeper client, the
cluster-wide lock and the job threads, and keeps every state change in the catalog first, so that a
restarted service picks up exactly where the catalog says it was.

Restore, in order: verify each archive's sha256 (ZooKeeper untouched on mismatch) -> journal the
restore in the catalog -> take a safety backup of the live tree -> apply the archive as a diff ->
re-read and compare -> on any failure, apply the safety backup again and report STATUS_ERROR.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from kazoo.client import KazooClient
from kazoo.recipe.lock import Lock

from dcos_backup.catalog.archive import ArchiveWriter, read_archive, verify_archive
from dcos_backup.catalog.models import (
    BackupRecord,
    ComponentBackup,
    RestoreRecord,
    Status,
    ZxidWindow,
    new_backup_id,
    now,
    validate_label,
)
from dcos_backup.catalog.storage import Storage
from dcos_backup.components import DEFAULT_COMPONENTS, ZkSubtree
from dcos_backup.errors import Conflict, DcosBackupError, IntegrityError
from dcos_backup.zk import ReadStats, apply_tree, compare_tree, connect, iter_tree

log = logging.getLogger(__name__)

LOCK_PATH = "/dcos-backup/lock"
SAFETY_PREFIX = "safety-"
_ZXID_RE = re.compile(r"^Zxid: (0x[0-9a-fA-F]+)", re.MULTILINE)


@dataclass
class Job:
    id: str
    kind: str  # "backup" | "restore"
    lock: Lock
    progress: dict[str, object] = field(default_factory=dict)
    thread: threading.Thread | None = None


def current_zxid(client: KazooClient) -> int:
    """The last zxid the connected server has applied (from its ``srvr`` reply); 0 if unknown."""
    try:
        match = _ZXID_RE.search(client.command(b"srvr"))
    except Exception:
        return 0
    return int(match.group(1), 16) if match else 0


def describe(exc: BaseException) -> str:
    if isinstance(exc, DcosBackupError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class BackupService:
    def __init__(
        self,
        storage: Storage,
        zk_hosts: str,
        components: Sequence[ZkSubtree] = DEFAULT_COMPONENTS,
        client: KazooClient | None = None,
    ) -> None:
        self.storage = storage
        self.zk_hosts = zk_hosts
        self.components = tuple(components)
        self.client = client or connect(zk_hosts)
        self._job: Job | None = None
        self._mutex = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def recover(self) -> list[str]:
        """Deal with jobs a previous process left running; returns their ids.

        An interrupted backup becomes STATUS_ERROR and its partial files go. An interrupted restore
        that had not changed ZooKeeper yet (no safety backup recorded) becomes STATUS_ERROR; one that
        may have changed it is rolled back to its safety backup in the background (under the cluster
        lock), so the tree ends exactly as it was before the restore, and the reason says so.
        """
        interrupted = []
        for record in self.storage.list_records():
            changed = False
            if record.status == Status.BACKING_UP:
                record.status = Status.ERROR
                record.reason = "interrupted: the backup service stopped during the backup"
                record.finished_at = now()
                for comp in record.components.values():
                    comp.status = Status.ERROR
                self.storage.remove_partials(record.id)
                changed = True
            latest = record.restores.latest()
            if latest is not None and latest.status == Status.RESTORING:
                if latest.safety_backup_id is None:
                    self._end_restore(record, "interrupted before any change; ZooKeeper was not touched")
                else:
                    threading.Thread(target=self._recover_restore, args=(record,), daemon=True).start()
                changed = True
            if changed:
                self.storage.write(record)
                interrupted.append(record.id)
                log.warning("found interrupted job %s", record.id)
        return interrupted

    def _end_restore(self, record: BackupRecord, reason: str) -> None:
        latest = record.restores.latest()
        assert latest is not None
        latest.status = Status.ERROR
        latest.reason = reason
        latest.finished_at = now()
        latest.component_status = {name: Status.ERROR for name in latest.component_status}
        record.restores.sync_latest()

    def _recover_restore(self, record: BackupRecord) -> None:
        """Roll an interrupted restore back, once the dead process's lock has expired."""
        try:
            job = self._start_job(record.id, "recovery", wait=120.0)
        except Exception as exc:
            safety = record.restores.latest().safety_backup_id
            self._end_restore(record, f"interrupted; cannot roll back ({describe(exc)}): restore {safety} by hand")
            self._write_final(record)
            return
        job.thread = threading.current_thread()
        self._run_recovery(job, record)

    def _run_recovery(self, job: Job, record: BackupRecord) -> None:
        latest = record.restores.latest()
        assert latest is not None and latest.safety_backup_id is not None
        try:
            safety = self.storage.read(latest.safety_backup_id)
            outcome = self._roll_back(safety, job)
        except Exception as exc:
            outcome = f"ROLLBACK FAILED ({describe(exc)}): restore {latest.safety_backup_id} by hand"
        self._end_restore(record, f"interrupted: the service stopped during the restore; {outcome}")
        self._finish_job(job, record)

    def close(self) -> None:
        job = self._job
        if job is not None and job.thread is not None:
            job.thread.join(timeout=5)
        self.client.stop()
        self.client.close()

    # ------------------------------------------------------------------ queries
    def list(self, label: str | None = None) -> list[BackupRecord]:
        records = self.storage.list_records()
        if label is not None:
            records = [r for r in records if r.label == label]
        return records

    def get(self, backup_id: str) -> BackupRecord:
        return self.storage.read(backup_id)

    def progress(self, backup_id: str) -> dict[str, object] | None:
        job = self._job
        if job is not None and job.id == backup_id:
            return dict(job.progress)
        return None

    @property
    def running(self) -> Job | None:
        return self._job

    # ------------------------------------------------------------------ commands
    def create(self, label: str) -> BackupRecord:
        validate_label(label)
        record = BackupRecord(id=new_backup_id(label), label=label, status=Status.BACKING_UP, created_at=now())
        job = self._start_job(record.id, "backup")
        try:
            self.storage.write(record)
        except Exception:
            self._finish_job(job)
            raise
        self._spawn(job, self._run_backup, record)
        return record

    def delete(self, backup_id: str) -> BackupRecord:
        record = self.storage.read(backup_id)
        job = self._job
        if job is not None and backup_id in (job.id, job.progress.get("safety_backup_id")):
            raise Conflict(
                f"backup {backup_id} is in use by a running {job.kind}; wait for it to finish", running=job.id
            )
        if record.status == Status.BACKING_UP:
            raise Conflict(f"backup {backup_id} is still being created")
        self.storage.delete(backup_id)
        return record

    def restore(self, backup_id: str) -> BackupRecord:
        record = self.storage.read(backup_id)
        if record.status != Status.READY:
            raise Conflict(f"backup {backup_id} is {record.status.value}; only STATUS_READY backups can be restored")
        job = self._start_job(backup_id, "restore")
        try:
            restore = RestoreRecord(
                id=str(uuid.uuid4()),
                status=Status.RESTORING,
                component_status={name: Status.RESTORING for name in record.components},
                started_at=now(),
            )
            record.restores.start(restore)
            self.storage.write(record)  # the journal: written before anything in ZooKeeper changes
        except Exception:
            self._finish_job(job)
            raise
        self._spawn(job, self._run_restore, record)
        return record

    # ------------------------------------------------------------------ jobs
    def _start_job(self, job_id: str, kind: str, wait: float | None = None) -> Job:
        """Take the cluster-wide lock for a job (waiting up to ``wait`` seconds, else not at all)."""
        with self._mutex:
            if self._job is not None:
                raise Conflict(f"a {self._job.kind} is already running: {self._job.id}", running=self._job.id)
            lock = Lock(self.client, LOCK_PATH, identifier=job_id)
            if not lock.acquire(blocking=wait is not None, timeout=wait):
                holders = lock.contenders()
                running = holders[0] if holders else "unknown"
                raise Conflict(
                    f"another backup or restore is running in this cluster: {running}{self._stale_hint(running)}",
                    running=running,
                )
            self._job = Job(job_id, kind, lock)
            return self._job

    def _stale_hint(self, holder: str) -> str:
        """A lock held for a job that is already over was left by a service that died: say so."""
        try:
            record = self.storage.read(holder)
        except DcosBackupError:
            return ""
        latest = record.restores.latest()
        if record.status != Status.BACKING_UP and (latest is None or latest.status != Status.RESTORING):
            return " (left by a service that stopped; it expires with that service's ZooKeeper session, retry shortly)"
        return ""

    def _spawn(self, job: Job, target, record: BackupRecord) -> None:
        job.thread = threading.Thread(target=target, args=(job, record), name=f"{job.kind}-{job.id}", daemon=True)
        job.thread.start()

    def _finish_job(self, job: Job, record: BackupRecord | None = None) -> None:
        """Write the job's final record and free the lock as one step, so that nobody sees a finished
        job whose lock is still held (a request right after the end would get a spurious 409)."""
        with self._mutex:
            if record is not None:
                self._write_final(record)
            try:
                job.lock.release()
            except Exception:  # the lock node dies with the session anyway
                log.warning("could not release the ZooKeeper lock of %s", job.id)
            self._job = None

    def _run_backup(self, job: Job, record: BackupRecord) -> None:
        try:
            self._backup_components(record, job)
            record.status = Status.READY
            log.info("backup %s ready (%d bytes)", record.id, record.size)
        except Exception as exc:
            log.exception("backup %s failed", record.id)
            record.status = Status.ERROR
            record.reason = describe(exc)
            self.storage.remove_partials(record.id)
        finally:
            record.finished_at = now()
            self._finish_job(job, record)

    def _backup_components(self, record: BackupRecord, job: Job) -> None:
        """Stream every component into its archive; marks components READY; raises on any failure."""
        for comp in self.components:
            entry = ComponentBackup(name=comp.name, status=Status.BACKING_UP, root=comp.root)
            record.components[comp.name] = entry
            job.progress.update(phase=f"backing up {comp.name}", component=comp.name, nodes=0)
            stats = ReadStats()
            first = current_zxid(self.client)
            with self.storage.archive_writer(record.id, comp.archive_name) as raw:
                writer = ArchiveWriter(raw, comp.name, comp.root)
                for node in iter_tree(self.zk_hosts, comp.root, stats=stats):
                    writer.add(node)
                    if writer.nodes % 256 == 0:
                        job.progress["nodes"] = writer.nodes
                summary = writer.close()
            job.progress["nodes"] = summary.nodes
            last = current_zxid(self.client)
            entry.status = Status.READY
            entry.archive = comp.archive_name
            entry.nodes = summary.nodes
            entry.data_bytes = summary.data_bytes
            entry.bytes = summary.bytes
            entry.sha256 = summary.sha256
            entry.skipped_ephemeral = stats.skipped_ephemeral
            entry.zxid_window = ZxidWindow(first=first, last=max(last, first))

    def _verify_archives(self, record: BackupRecord) -> None:
        for comp in record.components.values():
            with self.storage.archive_reader(record.id, comp.archive or "") as raw:
                try:
                    verify_archive(raw, comp.sha256)
                except IntegrityError as exc:
                    raise IntegrityError(f"{comp.name}: {exc}; ZooKeeper was not changed") from exc

    def _apply_backup(self, record: BackupRecord, job: Job, verb: str) -> dict[str, dict[str, int]]:
        stats = {}
        for comp in record.components.values():
            job.progress.update(phase=f"{verb} {comp.name}", component=comp.name)
            with self.storage.archive_reader(record.id, comp.archive or "") as raw:
                applied = apply_tree(self.zk_hosts, comp.root, read_archive(raw))
            with self.storage.archive_reader(record.id, comp.archive or "") as raw:
                difference = compare_tree(self.zk_hosts, comp.root, read_archive(raw))
            if difference is not None:
                raise IntegrityError(f"{comp.name} differs from the backup after {verb}: {difference}")
            stats[comp.name] = {
                "created": applied.created,
                "updated": applied.updated,
                "deleted": applied.deleted,
                "unchanged": applied.unchanged,
            }
        return stats

    def _run_restore(self, job: Job, record: BackupRecord) -> None:
        restore = record.restores.latest()
        assert restore is not None
        safety: BackupRecord | None = None
        try:
            job.progress.update(phase="verifying archives")
            self._verify_archives(record)
            safety = self._take_safety_backup(record, job)
            restore.safety_backup_id = safety.id
            record.restores.sync_latest()
            self.storage.write(record)
            restore.stats = self._apply_backup(record, job, "restoring")
            restore.status = Status.READY
            restore.component_status = {name: Status.READY for name in restore.component_status}
            log.info("restore of %s done: %s", record.id, restore.stats)
        except Exception as exc:
            log.exception("restore of %s failed", record.id)
            restore.status = Status.ERROR
            restore.component_status = {name: Status.ERROR for name in restore.component_status}
            restore.reason = describe(exc)
            if safety is not None:
                restore.reason += "; " + self._roll_back(safety, job)
        finally:
            restore.finished_at = now()
            record.restores.sync_latest()
            self._finish_job(job, record)

    def _take_safety_backup(self, record: BackupRecord, job: Job) -> BackupRecord:
        label = SAFETY_PREFIX + now().strftime("%Y%m%dT%H%M%S")
        safety = BackupRecord(
            id=new_backup_id(label),
            label=label,
            status=Status.BACKING_UP,
            created_at=now(),
            safety=True,
            safety_for=record.id,
        )
        job.progress["safety_backup_id"] = safety.id
        self.storage.write(safety)
        try:
            self._backup_components(safety, job)
        except Exception as exc:
            safety.status = Status.ERROR
            safety.reason = describe(exc)
            self.storage.remove_partials(safety.id)
            self._write_final(safety)
            raise DcosBackupError(f"safety backup failed, nothing was changed: {describe(exc)}") from exc
        safety.status = Status.READY
        safety.finished_at = now()
        self.storage.write(safety)
        return safety

    def _roll_back(self, safety: BackupRecord, job: Job) -> str:
        try:
            self._apply_backup(safety, job, "rolling back")
        except Exception as exc:
            log.exception("rollback to %s failed", safety.id)
            return f"ROLLBACK FAILED ({describe(exc)}): restore {safety.id} by hand"
        return f"rolled back to the safety backup {safety.id}"

    def _write_final(self, record: BackupRecord) -> None:
        try:
            self.storage.write(record)
        except Exception:
            log.exception("could not write the final state of %s", record.id)
