"""A restore drill's steps: prove that a backup restores, without touching the live tree.

Check each archive's sha256 into a private copy (as a restore does: a damaged archive fails here) -> start
a scratch ZooKeeper (:class:`~dcos_backup.master.scratch.ScratchZooKeeper`: standalone, loopback, its own
temporary directory) -> restore every component into it with the restore's own writer -> compare the
scratch tree with the archive node for node (data, ACLs, child counters) -> record the outcome and its
duration in the backup's ``drills`` (the record is written by the job runner, signed by the catalog). The
scratch server is killed and removed whatever happens. The live ensemble is only used for the job lock.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from dcos_backup.catalog.archive import read_archive
from dcos_backup.catalog.models import BackupRecord, DrillRecord
from dcos_backup.catalog.storage import CheckedArchive, Storage
from dcos_backup.errors import IntegrityError
from dcos_backup.jobs.archives import check_archives, followed
from dcos_backup.jobs.runner import Job
from dcos_backup.logical import ZkSpec, apply_tree, compare_tree
from dcos_backup.master.scratch import ScratchZooKeeper

log = logging.getLogger(__name__)


class DrillJob:
    """The steps of a drill job and what its failure records; ``tmp_dir`` holds the scratch server."""

    def __init__(self, storage: Storage, tmp_dir: Path | None = None) -> None:
        self.storage = storage
        self.tmp_dir = tmp_dir

    def run(self, record: BackupRecord, drill: DrillRecord, job: Job) -> None:
        names = list(record.component_status)
        nodes = 0
        with contextlib.ExitStack() as stack:
            archives = check_archives(self.storage, record, names, job, stack)
            job.check_cancelled()
            job.progress.update(phase="starting a scratch ZooKeeper")
            scratch = stack.enter_context(ScratchZooKeeper(tmp_dir=self.tmp_dir))
            spec = ZkSpec.parse(scratch.hosts, auth=[scratch.auth])
            for name in names:
                nodes += self._drill_component(spec, name, record.component_status[name].root, archives[name], job)
        drill.finish(nodes)
        record.drills.append(drill)
        log.info("drill %s of %s passed: %d nodes in %.1fs", drill.id, record.id, nodes, drill.duration or 0)

    def failed(self, record: BackupRecord, drill: DrillRecord, job: Job, reason: str) -> None:
        drill.fail(reason)
        record.drills.append(drill)
        log.error("drill %s of %s FAILED: %s", drill.id, record.id, reason)

    def _drill_component(self, spec: ZkSpec, name: str, root: str, archive: CheckedArchive, job: Job) -> int:
        """Restore one component's archive into the scratch server, then compare; the nodes it holds."""
        job.progress.update(phase=f"restoring {name} into the scratch ZooKeeper", component=name, nodes=0)
        job.progress["total"] = archive.summary.nodes
        with archive.reader() as raw:
            apply_tree(spec, root, followed(read_archive(raw), job, True))
        job.progress.update(phase=f"comparing {name} with its archive", nodes=0)
        with archive.reader() as raw:
            difference = compare_tree(spec, root, followed(read_archive(raw), job, True), counters=True)
        if difference is not None:
            raise IntegrityError(f"{name}: the restored tree differs from the archive: {difference}")
        return archive.summary.nodes
