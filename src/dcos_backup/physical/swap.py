"""Replacing one master's ZooKeeper data directory, all or nothing (restores of every kind use it).

Under the exclusive data-dir lock and with ZooKeeper stopped (:mod:`.running`), the new data is
assembled beside the old one, this master's ``myid`` is put back, then the two are swapped with two
renames recorded in the journal (:mod:`.journal`), and the restore mark of the replayed data written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from dcos_backup.errors import IntegrityError, NotFound
from dcos_backup.fsutil import fsync_dir, storage_error
from dcos_backup.master import restore_mark
from dcos_backup.master.layout import ZK_DIR_NAME, MasterLayout
from dcos_backup.master.lock import data_dir_lock
from dcos_backup.physical import sessions
from dcos_backup.physical.epochs import data_epoch, raise_epoch
from dcos_backup.physical.journal import recover_locked, write_journal
from dcos_backup.physical.replay import ReplayResult, newest_sealed_snapshot
from dcos_backup.physical.running import ensure_not_running
from dcos_backup.physical.verify import rebuilt_data_dir

log = logging.getLogger(__name__)


def read_myid(layout: MasterLayout) -> str | None:
    with contextlib.suppress(OSError):
        return layout.myid_file.read_text().strip() or None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return str(json.loads(layout.node_config.read_text())["id"])
    return None


def _copy_ownership(reference: Path, tree: Path) -> None:
    """Give the restored files the owner of the data they replace (ZooKeeper may not run as root)."""
    if os.geteuid() != 0 or not reference.exists():
        return
    st = reference.stat()
    for root, dirs, files in os.walk(tree):
        for name in [*dirs, *files]:
            os.lchown(Path(root) / name, st.st_uid, st.st_gid)
    os.lchown(tree, st.st_uid, st.st_gid)


def _fsync_tree(tree: Path) -> None:
    for root, _, files in os.walk(tree):
        for name in files:
            fd = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


def replace_data_dir(
    exhibitor_dir: Path,
    fill: Callable[[MasterLayout], ReplayResult | None],
    keep_old: bool = False,
    wait_lock: bool = False,
    what: str = "dcos-zk restore",
    source: str = "",
    drop_sessions: bool = False,
) -> str | None:
    """Replace this master's ``zookeeper/`` with what ``fill`` puts into a staging layout; all or nothing.

    Under the exclusive data-dir lock and with ZooKeeper stopped: ``fill`` writes the new ``zookeeper/``
    (and checks it: it raises to refuse, before anything live changed, and returns the replay that checked
    it, or None); then this master's ``myid`` goes in, ownership and fsync follow, and the journalled swap
    puts it in place, with the restore mark of the replayed data (:mod:`dcos_backup.master.restore_mark`).
    ``drop_sessions``: the new data is rewritten without its sessions and their ephemerals first (:mod:`.sessions`).
    Returns the ``myid`` kept.
    """
    layout = MasterLayout(Path(exhibitor_dir))
    if not layout.exhibitor_dir.is_dir():
        raise NotFound(f"exhibitor directory {layout.exhibitor_dir} does not exist (is --exhibitor-dir right?)")
    # First without the lock: a running ZooKeeper is the real reason a restore cannot go on (on an archiving
    # master the archiver's share of the lock would otherwise be named instead, and --wait-lock wait for it).
    ensure_not_running(layout)
    with data_dir_lock(layout.lock_file, exclusive=True, what=what, wait=wait_lock):
        ensure_not_running(layout)
        recover_locked(layout)
        myid = read_myid(layout)
        # The new data is assembled inside the exhibitor dir (same filesystem) so the swap is a rename;
        # -t is accepted for compatibility with DC/OS's script, whose temporary copy we do not need.
        staged = MasterLayout(layout.exhibitor_dir / f".restore-{uuid.uuid4().hex[:8]}")
        old = layout.exhibitor_dir / f"{ZK_DIR_NAME}.old-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:4]}"
        try:
            staged.exhibitor_dir.mkdir(mode=0o700)  # the data may hold secrets (digest ACLs, credentials)
            replayed = fill(staged)
            if drop_sessions:
                replayed = _without_sessions(staged)
            _raise_above_replaced(staged, layout)
            _finish_staging(staged, layout, myid)
            layout.restore_mark.unlink(missing_ok=True)  # never a mark of other data beside the new data
            _swap(layout, staged, old)
        except BaseException as exc:
            log.info("restore failed (%s); putting the previous data back", exc)  # the error itself says why
            if layout.restore_journal.exists():
                if layout.zk_dir.exists() and old.exists():
                    shutil.rmtree(layout.zk_dir)  # the new data made it in and the failure came after: roll back
                recover_locked(layout)
            shutil.rmtree(staged.exhibitor_dir, ignore_errors=True)
            if isinstance(exc, OSError):
                raise storage_error(exc, "restore (previous data kept)", layout.exhibitor_dir) from exc
            raise
        _write_mark(layout, replayed, source)
        _clean_up_swap(layout, staged, old, keep_old)
    return myid


def _write_mark(layout: MasterLayout, replayed: ReplayResult | None, source: str) -> None:
    if replayed is None:
        log.warning("no restore mark written (the data was not replayed): the other masters cannot check this one")
        return
    mark = restore_mark.write(layout.restore_mark, replayed.last_zxid, replayed.digest, replayed.nodes, source)
    log.info("restore mark written: %s", mark.describe())


def _without_sessions(staged: MasterLayout) -> ReplayResult:
    """The staged data rewritten without sessions, then replayed again: the mark is of what ZooKeeper will load."""
    sessions.drop_sessions(staged, staged.exhibitor_dir)
    with rebuilt_data_dir(staged, staged.exhibitor_dir, keep_data=False) as (_, replayed):
        log.info("checked: last zxid %s, %d nodes, digest %s", replayed.last_zxid, replayed.nodes, replayed.digest)
    return replayed


def _raise_above_replaced(staged: MasterLayout, layout: MasterLayout) -> None:
    """The new data's epoch files at least the replaced data's highest epoch, so that the ensemble's next epoch,
    and with it every zxid it hands out from now on, is above every zxid a client saw before the restore.

    ZooKeeper refuses a client that has seen a zxid above its own ("has seen zxid ... our last zxid is ...") until
    its zxids pass that one: after a rewind, every client ahead of it (the service's, Exhibitor's, any kazoo or
    Java client) would be locked out until that many writes happened. A quorum that elects the restored
    ensemble's leader shares a member with every quorum that ever accepted an epoch, so the highest epoch among
    the restored members is above any epoch a client can have seen, and the first zxid of the new epoch is too.
    """
    if not layout.zk_dir.exists():
        return
    # ZooKeeper takes a missing epoch file from its last zxid: only a restored epoch below is raised
    replaced, restored = data_epoch(layout), data_epoch(staged)
    if restored < replaced and raise_epoch(staged, replaced):
        log.info(
            "raised the restored data's epoch from %d to %d (the replaced data's): its first zxids are above every "
            "zxid a client has seen",
            restored,
            replaced,
        )


def mark_found_data(layout: MasterLayout) -> restore_mark.RestoreMark | None:
    """The restore mark of the data found in this master's ``zookeeper/`` (no mark beside it: restored by another
    tool, DC/OS's ``dcos_zk_backup.py`` or tar by hand), computed as a restore computes it and written; None
    if the directory holds no data or its data does not replay (it cannot be anyone's restore, then)."""
    if newest_sealed_snapshot(layout) is None:
        return None
    try:
        with rebuilt_data_dir(layout, layout.exhibitor_dir, keep_data=False) as (_, replayed):
            pass
    except IntegrityError as exc:
        log.warning("the data in %s has no restore mark and does not replay: %s", layout.zk_dir, exc)
        return None
    mark = restore_mark.write(
        layout.restore_mark, replayed.last_zxid, replayed.digest, replayed.nodes, "found in place (no mark)"
    )
    log.info("the data in %s had no restore mark; computed from the data: %s", layout.zk_dir, mark.describe())
    return mark


def _finish_staging(staged: MasterLayout, layout: MasterLayout, myid: str | None) -> None:
    """This master's ``myid`` into the staged data, owned and fsynced like the live data."""
    for directory in (staged.data_dir, staged.log_dir):
        directory.mkdir(parents=True, exist_ok=True)
    if myid is not None:
        staged.myid_file.write_text(myid + "\n")
        log.info("restored this master's myid (%s)", myid)
    _copy_ownership(layout.zk_dir, staged.zk_dir)
    _fsync_tree(staged.zk_dir)


def _swap(layout: MasterLayout, staged: MasterLayout, old: Path) -> None:
    """Put the staged data in place with two renames, recorded in the journal first (see :func:`.journal.recover`)."""
    write_journal(layout.exhibitor_dir, staged.exhibitor_dir, old)
    if layout.zk_dir.exists():
        os.rename(layout.zk_dir, old)
        log.info("moved the previous data aside to %s", old)
    os.rename(staged.zk_dir, layout.zk_dir)
    fsync_dir(layout.exhibitor_dir)
    log.info("new data in place at %s", layout.zk_dir)


def _clean_up_swap(layout: MasterLayout, staged: MasterLayout, old: Path, keep_old: bool) -> None:
    """After the swap: the journal goes last, so that a crash before leaves :func:`.journal.recover` its clean-up.

    Policy: the replaced data is deleted once the new data is in place (it was moved aside only so that a
    crash can roll back); ``keep_old`` keeps it as ``zookeeper.old-<time>``. Either way it is logged.
    """
    if keep_old and old.exists():
        layout.restore_journal.unlink()
        log.info("kept the previous data in %s (remove it when no longer needed)", old)
    else:
        had_old = old.exists()
        shutil.rmtree(old, ignore_errors=True)
        layout.restore_journal.unlink()
        if had_old:
            log.info("deleted the previous data (%s); --keep-old keeps it", old.name)
    shutil.rmtree(staged.exhibitor_dir, ignore_errors=True)  # no journal: recover() removes a leftover too
