"""The restore journal of one master's data directory, and :func:`recover`, which reads it.

A restore swaps the data directory with two renames recorded in the journal first (:mod:`.swap`).
:func:`recover` (run by every ``dcos-zk`` command and by ``dcos-exhibitor`` before it starts ZooKeeper)
finishes or rolls back a swap that a crash interrupted, so the data directory is always either the old
one or the new one, never a mix; it also removes what a restore killed before its swap left behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from dcos_backup.fsutil import fsync_dir
from dcos_backup.master.layout import MasterLayout
from dcos_backup.master.lock import data_dir_lock

log = logging.getLogger(__name__)


def _journal_tmp(layout: MasterLayout) -> Path:
    return layout.restore_journal.with_suffix(".tmp")


def write_journal(exhibitor_dir: Path, staged: Path, old: Path) -> None:
    layout = MasterLayout(Path(exhibitor_dir))
    path, tmp = layout.restore_journal, _journal_tmp(layout)
    with open(tmp, "w") as f:
        json.dump({"staged": str(staged), "old": str(old)}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _leftovers(layout: MasterLayout) -> bool:
    """Whether an interrupted restore left anything for :func:`recover` to finish or clean."""
    return (
        layout.restore_journal.exists()
        or _journal_tmp(layout).exists()
        or any(layout.exhibitor_dir.glob(".restore-*"))
        or any(_mark_temporaries(layout))
    )


def _mark_temporaries(layout: MasterLayout) -> Iterator[Path]:
    """A restore mark being written when the restore was killed (write_private_file's temporary name)."""
    return layout.exhibitor_dir.glob(f".{layout.restore_mark.name}.*.tmp")


def recover(exhibitor_dir: Path, wait: bool = False) -> str | None:
    """Finish or roll back a restore that stopped mid-swap; returns what it did, or None.

    The swap is: (1) rename zookeeper -> old, (2) rename staged -> zookeeper, (3) drop journal, old,
    staging. If (2) happened the new data is complete and stays; otherwise the old data goes back.
    Anything to do is done under the exclusive data-dir lock: a restore still running holds it, so its
    staging is never taken for a leftover (Conflict naming it, or wait for it with ``wait``).
    """
    layout = MasterLayout(Path(exhibitor_dir))
    if not layout.exhibitor_dir.is_dir() or not _leftovers(layout):
        return None
    with data_dir_lock(layout.lock_file, exclusive=True, what="dcos-zk recover", wait=wait):
        return recover_locked(layout)


def recover_locked(layout: MasterLayout) -> str | None:
    """:func:`recover` for a caller that holds the exclusive data-dir lock."""
    exhibitor_dir, journal, zk_dir = layout.exhibitor_dir, layout.restore_journal, layout.zk_dir
    for leftover in _mark_temporaries(layout):
        leftover.unlink(missing_ok=True)
    if not journal.exists():
        # A restore killed before its swap: its staging, and a journal it had not finished writing.
        for leftover in exhibitor_dir.glob(".restore-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        _journal_tmp(layout).unlink(missing_ok=True)
        return None
    try:
        doc = json.loads(journal.read_text())
        staged, old = Path(doc["staged"]), Path(doc["old"])
    except (OSError, ValueError, KeyError, TypeError):
        journal.unlink()  # written atomically: an unreadable one was never complete, so no swap began
        return None
    staged_zk = MasterLayout(staged).zk_dir
    if zk_dir.exists() and not staged_zk.exists():
        outcome = "completed an interrupted restore (new data kept)"
    elif not zk_dir.exists() and old.exists():
        os.rename(old, zk_dir)
        outcome = "rolled back an interrupted restore (old data put back)"
    else:
        outcome = "cleaned up a restore interrupted before its swap (old data untouched)"
    fsync_dir(exhibitor_dir)
    journal.unlink()
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staged, ignore_errors=True)
    log.warning("%s in %s", outcome, exhibitor_dir)
    return outcome
