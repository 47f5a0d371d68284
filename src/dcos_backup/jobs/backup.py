"""A backup's steps: each component's live subtree streamed into its archive, with the zxid window it was
read in. A restore's safety backup is taken through the same stream (:meth:`BackupJob.archived`), merged
with the archive being restored as it goes (:mod:`.restore`)."""

from __future__ import annotations

import logging
from collections.abc import Generator

from dcos_backup.catalog.archive import ArchiveWriter
from dcos_backup.catalog.models import BackupRecord, ZxidWindow
from dcos_backup.catalog.storage import Storage
from dcos_backup.components import archive_name
from dcos_backup.jobs.engine import Engine
from dcos_backup.jobs.runner import Job, JobRunner
from dcos_backup.logical import ReadStats, ZNode

log = logging.getLogger(__name__)

PROGRESS_EVERY = 256  # nodes between two updates of a backup's progress (and checks for a cancel)


class BackupJob:
    """The steps of a backup job, and the stream a safety backup is written by."""

    def __init__(self, storage: Storage, engine: Engine, runner: JobRunner) -> None:
        self.storage = storage
        self.engine = engine
        self.runner = runner

    def run(self, record: BackupRecord, job: Job) -> None:
        for name, comp in record.component_status.items():
            self.back_up_component(record, name, comp.root, job)
        record.finish()
        log.info("backup %s ready (%d bytes)", record.id, record.size)

    def failed(self, record: BackupRecord, _: Job | None, reason: str) -> None:
        record.fail(reason)
        self.storage.remove_partials(record.id)

    def back_up_component(self, record: BackupRecord, name: str, root: str, job: Job) -> None:
        """Stream one component into its archive."""
        phase = f"safety backup of {name}" if record.safety else f"backing up {name}"
        for _ in self.archived(record, name, root, job, counted=True, phase=phase):
            pass

    def archived(
        self, record: BackupRecord, name: str, root: str, job: Job, counted: bool, phase: str | None = None
    ) -> Generator[ZNode, None, None]:
        """The live subtree at ``root``, yielded as it is written into the component's archive; the component
        is finished with the stream. ``counted``: report the nodes in the job's progress (and check for a
        cancel) here, in ``phase``; else the caller does."""
        entry = record.start_component(name)
        # The component shows STATUS_BACKING_UP while it is read; journalled first, like every record a job writes.
        self.runner.write(job, record, "reading")
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
            summary = writer.close()
            job.check_cancelled()  # immediately before the archive is committed: a fenced job leaves none
        if counted:
            job.progress["nodes"] = summary.nodes
        window = ZxidWindow(first=first, last=max(self.engine.current_zxid(), first))
        entry.finish(archive, summary, stats.skipped_ephemeral, window)
