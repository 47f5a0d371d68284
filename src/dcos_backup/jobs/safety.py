"""Safety backups: what a restore takes of the subtrees it is about to change, so that a failure can put
them back. Their label, how many are kept (the newest; older ones are pruned after a successful restore),
and the one that may not be deleted: the safety backup of a restore that has not ended."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from dcos_backup.catalog.models import BackupRecord, Status, now
from dcos_backup.catalog.storage import Storage
from dcos_backup.errors import Conflict, DcosBackupError
from dcos_backup.jobs.runner import attempt

SAFETY_PREFIX = "safety-"
KEEP_SAFETY_BACKUPS = 3  # safety backups kept per cluster; older ones go after a successful restore


def safety_label() -> str:
    """The label of a safety backup taken now."""
    return SAFETY_PREFIX + now().strftime("%Y%m%dT%H%M%S")


def prune_safety_backups(storage: Storage, keep: int, check_fence: Callable[[], None] = lambda: None) -> list[str]:
    """Delete all but the newest ``keep`` safety backups this cluster took (after a successful restore, so
    the newest is the one just taken); the ids deleted. A failure to delete is logged, never fatal. An
    uploaded backup is never one of them, whatever its label or timestamp says. ``check_fence()`` runs
    before each delete (Fenced: this service no longer leads, and deletes nothing more)."""
    ready = [r for r in storage.list_records(SAFETY_PREFIX) if r.safety and r.made_here and not r.in_progress]
    pruned = []
    for old in ready[: max(0, len(ready) - keep)]:
        check_fence()
        if attempt(partial(storage.delete, old.id), f"pruning the safety backup {old.id}") is None:
            pruned.append(old.id)
    return pruned


def check_not_protecting(storage: Storage, record: BackupRecord) -> None:
    """A safety backup whose restore has not ended (interrupted, its rollback pending) is what that
    rollback applies: deleting it would leave the tree half-restored (Conflict)."""
    if record.safety_for is None:
        return
    try:
        protected = storage.read(record.safety_for)
    except DcosBackupError:
        return  # gone or damaged: no restore of it can be rolled back with this one
    latest = protected.latest_restore
    if latest is not None and latest.status == Status.RESTORING and latest.safety_backup_id == record.id:
        raise Conflict(
            f"backup {record.id} is the safety backup of the unfinished restore {latest.id} of "
            f"{protected.id}: its rollback needs it; delete it once that restore has ended",
            running=protected.id,
        )
