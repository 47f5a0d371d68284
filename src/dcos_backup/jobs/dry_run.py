"""A restore's dry run: what it would change, computed under the job lock and changing nothing (no journal,
no safety backup, no record). Every count is complete; the changes listed are the first ones in pre-order."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from dcos_backup.catalog.archive import read_archive
from dcos_backup.catalog.models import BackupRecord
from dcos_backup.catalog.storage import Storage
from dcos_backup.jobs.archives import COUNTS, check_archives
from dcos_backup.jobs.engine import Engine
from dcos_backup.jobs.plan import Target, components_of
from dcos_backup.jobs.runner import Job

DRY_RUN_CHANGES = 10_000  # changes a dry run lists (every count is complete): bounds its answer's size


def difference(
    storage: Storage, engine: Engine, record: BackupRecord, targets: Sequence[Target], job: Job
) -> dict[str, object]:
    """The dry run's document: counts in all and per component, the first changes in pre-order."""
    per: dict[str, dict[str, int]] = {}
    changes: list[dict[str, str]] = []
    left_out = 0
    with contextlib.ExitStack() as stack:
        archives = check_archives(storage, record, components_of(targets), job, stack)
        for target in targets:
            name = target.component
            job.progress.update(phase=f"computing the difference of {name}", component=name)
            with archives[name].reader() as raw:
                diff = engine.diff(
                    target.root, target.nodes(read_archive(raw)), target.paths, DRY_RUN_CHANGES - len(changes)
                )
            counts = diff.stats.to_dict()
            per[name] = {k: per.get(name, {}).get(k, 0) + counts[k] for k in COUNTS}
            changes += [c.to_dict() for c in diff.changes]
            left_out += diff.left_out
    totals = {k: sum(c[k] for c in per.values()) for k in COUNTS}
    return {**totals, "component_status": per, "changes": changes, "left_out": left_out}
