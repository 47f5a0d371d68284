"""The archives a restore, a dry run and a rollback read: checked first, then applied and verified.

Every later step reads the private copy :func:`check_archives` made, so what is applied is what was
checked, whatever happens to the stored object meanwhile. :func:`apply_and_verify` is the one-pass
merge-and-write (a restore's catch-up, a rollback), :func:`verify` the comparison after any apply.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from dcos_backup.catalog.archive import read_archive
from dcos_backup.catalog.models import BackupRecord
from dcos_backup.catalog.storage import CheckedArchive, Storage
from dcos_backup.errors import IntegrityError
from dcos_backup.jobs.engine import Engine
from dcos_backup.jobs.plan import Target
from dcos_backup.jobs.runner import Job

T = TypeVar("T")  # a znode or an operation

PROGRESS_TICK = 64  # nodes between two updates of an apply's or a verification's progress
COUNTS = ("created", "updated", "deleted", "unchanged", "counters", "counter_children")


def followed(nodes: Iterable[T], job: Job, cancellable: bool) -> Iterator[T]:
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


def check_archives(
    storage: Storage, record: BackupRecord, names: Sequence[str], job: Job, stack: contextlib.ExitStack
) -> dict[str, CheckedArchive]:
    """Each component's archive, checked (sha256, structure, every node under the component's root, which
    plan_restore took from the registry) into a private copy that every later step reads: what is applied
    is what was checked, whatever happens to the stored object meanwhile. The copies go when ``stack`` ends."""
    job.progress.update(phase="checking archives")
    archives = {}
    for name in names:
        comp = record.component_status[name]
        try:
            checked = storage.checked_archive(record.id, comp.archive or "", comp.sha256, comp.root)
            archives[name] = stack.enter_context(checked)
        except IntegrityError as exc:
            raise IntegrityError(f"{name}: {exc}; ZooKeeper was not changed") from exc
    return archives


def verify(engine: Engine, target: Target, archive: CheckedArchive, job: Job) -> str | None:
    """The first difference between the target's live subtrees and the archive, or None."""
    job.progress.update(phase=f"verifying {target.component}", nodes=0)
    job.progress.pop("total", None)
    with archive.reader() as raw:
        nodes = followed(target.nodes(read_archive(raw)), job, False)
        return engine.compare(target.root, nodes, target.paths)


def apply_and_verify(
    engine: Engine, target: Target, archive: CheckedArchive, job: Job, phase: str, verb: str, cancellable: bool
) -> dict[str, int]:
    """Make the target's subtrees equal to the archive in one merge-and-write pass, then verify them."""
    name = target.component
    job.progress.update(phase=phase, component=name, nodes=0)
    job.progress.pop("total", None)
    with archive.reader() as raw:
        nodes = followed(target.nodes(read_archive(raw)), job, cancellable)
        applied = engine.apply(target.root, nodes, target.paths, job.fence)
    difference = verify(engine, target, archive, job)
    if difference is not None:
        raise IntegrityError(f"{name} differs from the backup after {verb}: {difference}")
    return applied.to_dict()
