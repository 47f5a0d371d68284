"""Physical backup and restore of one master's ZooKeeper data directory (``dcos-zk``).

Archives are what DC/OS's own ``dcos-zk`` writes: a gzip tar of ``<exhibitor-dir>/zookeeper`` as
``./zookeeper/...`` without ``myid`` and ``zookeeper.out``; either tool restores the other's archives.

Safety:

- both refuse to run while this master's ZooKeeper runs (:mod:`.running`);
- backup writes a hidden temp file and renames it only when complete (plus ``<archive>.sha256``);
- restore validates the whole archive before touching anything, assembles the new data directory
  beside the old one, puts this master's ``myid`` back, then swaps with two renames recorded in a
  journal. :func:`recover` (run by every ``dcos-zk`` command and by ``dcos-exhibitor`` before it starts
  ZooKeeper) finishes or rolls back a swap that a crash interrupted, so the data directory is always
  either the old one or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dcos_backup.errors import IntegrityError, NotFound, UsageError
from dcos_backup.fsutil import HashingWriter, TeeReader, ensure_free_space, fsync_dir, storage_error, write_private_file
from dcos_backup.master import restore_mark
from dcos_backup.master.layout import CONSOLE_LOG, MYID, ZK_DIR_NAME, MasterLayout
from dcos_backup.master.lock import data_dir_lock
from dcos_backup.storage.locations import open_store
from dcos_backup.storage.s3 import is_s3_url
from dcos_backup.zkdata import online as online_copy
from dcos_backup.zkdata import tarsafe
from dcos_backup.zkdata.pgzip import ParallelGzipWriter
from dcos_backup.zkdata.replay import ReplayResult
from dcos_backup.zkdata.running import ensure_not_running
from dcos_backup.zkdata.verify import StreamVerifier, VerifyResult, rebuilt_data_dir

log = logging.getLogger(__name__)

EXCLUDED_NAMES = {MYID, CONSOLE_LOG}  # this master's identity and console: not data, as in DC/OS's script
_ZXID_FILE = re.compile(r"^(snapshot|log)\.([0-9a-fA-F]+)$")
COPY_CHUNK = 1 << 20  # tarfile copies 16 KiB at a time by default: 64x the Python calls for nothing


@dataclass
class BackupResult:
    archive: str
    sha256: str
    bytes: int
    files: int
    data_bytes: int
    seconds: float
    online: bool = False
    verified: VerifyResult | None = None


@dataclass
class RestoreResult:
    archive: str
    files: int
    data_bytes: int
    myid: str | None
    seconds: float
    verified: ReplayResult | None = None


@dataclass
class ArchiveInfo:
    archive: str
    bytes: int
    files: int
    data_bytes: int
    snapshots: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    newest_snapshot: str | None = None
    newest_log: str | None = None
    # The zxid in the newest file's name (a log's name holds its FIRST zxid): not the last zxid of the
    # data, which only a replay finds (``dcos-zk verify``); named for what it is so nobody takes it for that.
    newest_file_zxid: str | None = None
    members: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- backup
def iter_data_files(zk_dir: Path) -> Iterator[Path]:
    """Directories and files to archive, each directory before its content, minus ``myid``/``zookeeper.out``."""
    for root, dirs, files in os.walk(zk_dir):
        dirs.sort()
        yield Path(root)
        for name in [*dirs, *files]:
            if (Path(root) / name).is_symlink():
                raise IntegrityError(f"{Path(root) / name} is a symlink; refusing to archive it")
        for name in sorted(files):
            path = Path(root) / name
            if name in EXCLUDED_NAMES:
                continue
            if not path.is_file():
                raise IntegrityError(f"{path} is not a regular file; refusing to archive it")
            yield path


def _arcname(zk_dir: Path, path: Path) -> str:
    rel = path.relative_to(zk_dir)
    return f"./{ZK_DIR_NAME}" if rel == Path(".") else f"./{ZK_DIR_NAME}/{rel.as_posix()}"


def check_new_archive(archive: Path) -> None:
    """An archive is written to a new path in an existing directory."""
    if archive.exists():
        raise UsageError(f"{archive} already exists; choose a new path")
    if not archive.parent.is_dir():
        raise UsageError(f"the directory of {archive} does not exist")


def refuse_inside(data_dir: Path, path: Path, what: str) -> None:
    """A backup never writes into the data it archives (it would archive its own partial file)."""
    if path.resolve().is_relative_to(data_dir.resolve()):
        raise UsageError(f"{what} ({path}) is inside the ZooKeeper data directory {data_dir}; choose a path outside it")


def backup(
    exhibitor_dir: Path,
    archive: Path,
    tmp_dir: Path | None = None,
    level: int = 6,
    workers: int | None = None,
    online: bool = False,
    verify: bool = True,
    wait_lock: bool = False,
    progress: tarsafe.Progress | None = None,
) -> BackupResult:
    """Write a seed-compatible archive of this master's ZooKeeper data to ``archive``.

    Offline (the default, as DC/OS's script) ZooKeeper must be stopped; ``online`` copies a serving
    member's data at a consistent point instead (:mod:`.online`). With ``verify`` the written archive is
    checked completely (:mod:`.verify`) before it gets its final name. Either way under the shared
    data-dir lock: backups and the archiver run together, a restore never runs beside them.
    """
    started = time.monotonic()
    layout, archive = MasterLayout(Path(exhibitor_dir)), Path(archive).absolute()
    check_new_archive(archive)
    if not layout.zk_dir.is_dir():
        raise NotFound(f"no ZooKeeper data in {layout.zk_dir} (is --exhibitor-dir right?)")
    tmp_parent = Path(tmp_dir) if tmp_dir is not None else archive.parent
    if not tmp_parent.is_dir():
        raise UsageError(f"temporary directory {tmp_parent} does not exist")
    refuse_inside(layout.zk_dir, archive.parent, "the archive")
    refuse_inside(layout.zk_dir, tmp_parent, "the temporary directory")
    if not online:
        ensure_not_running(layout)
        recover(layout.exhibitor_dir, wait=wait_lock)
    what = f"dcos-zk backup{' --online' if online else ''}"
    with data_dir_lock(layout.lock_file, exclusive=False, what=what, wait=wait_lock):
        if online:
            result = _online_backup(layout, archive, tmp_parent, level, workers, verify, progress)
        else:
            result = write_archive(layout.zk_dir, archive, tmp_parent, level, workers, verify, progress)
    result.seconds = time.monotonic() - started
    return result


def _split_object_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix/name`` as the store's location and the object's name in it."""
    location, _, name = url.rstrip("/").rpartition("/")
    if not is_s3_url(location) or len(location) <= len("s3://"):
        raise UsageError(f"{url} is not an s3://bucket/key URL")
    return location, name


@contextlib.contextmanager
def fetched(archive: str | Path, tmp_dir: Path | None = None) -> Iterator[Path]:
    """``archive`` as a local file: a path as it is; an ``s3://bucket/key`` downloaded, with its ``.sha256``
    when there is one (which the archive's reader then checks), into a private temporary directory (in
    ``tmp_dir``) that is removed afterwards."""
    if not is_s3_url(archive):
        yield Path(archive)
        return
    location, name = _split_object_url(str(archive))
    store = open_store(location)
    with tempfile.TemporaryDirectory(dir=tmp_dir, prefix=".dcos-zk-download-") as work:
        local = Path(work) / name
        try:
            with store.get(name) as source, open(local, "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
        except OSError as exc:
            raise storage_error(exc, f"downloading {archive}", Path(work)) from exc
        with contextlib.suppress(NotFound):  # an archive without one is checked by its structure alone
            (Path(work) / (name + ".sha256")).write_bytes(store.get_bytes(name + ".sha256"))
        yield local


def backup_to_store(url: str, write: Callable[[Path], BackupResult], tmp_dir: Path | None = None) -> BackupResult:
    """A backup to object storage (``s3://bucket/key``): ``write`` makes the archive in a private temporary
    directory (in ``tmp_dir``), then it and its ``.sha256`` are uploaded; the object appears only whole."""
    location, name = _split_object_url(url)
    store = open_store(location)
    if any(info.key == name for info in store.list(name)):
        raise UsageError(f"{url} already exists; choose a new key")
    with tempfile.TemporaryDirectory(dir=tmp_dir, prefix=".dcos-zk-upload-") as work:
        local = Path(work) / name
        result = write(local)
        with open(local, "rb") as f:
            uploaded = store.put(name, f)
        if uploaded.sha256 != result.sha256:
            store.delete(name)
            raise IntegrityError(f"{local} changed while it was uploaded to {url}")
        store.put(name + ".sha256", (Path(work) / (name + ".sha256")).read_bytes())
    result.archive = url
    return result


def _online_backup(
    layout: MasterLayout,
    archive: Path,
    tmp_parent: Path,
    level: int,
    workers: int | None,
    verify: bool,
    progress: tarsafe.Progress | None = None,
) -> BackupResult:
    stage = MasterLayout(tmp_parent / f".dcos-zk-online-{uuid.uuid4().hex[:8]}")
    try:
        log.info("copying the live data of %s at a consistent point into %s", layout.zk_dir, stage.exhibitor_dir)
        try:
            copied = online_copy.copy_online(layout, stage)
        except OSError as exc:
            raise storage_error(exc, "copying the live data", tmp_parent) from exc
        log.info("copied %s and %d logs up to zxid 0x%x", copied.snapshot, len(copied.logs), copied.last_zxid)
        result = write_archive(stage.zk_dir, archive, tmp_parent, level, workers, verify, progress)
    finally:
        shutil.rmtree(stage.exhibitor_dir, ignore_errors=True)
    result.online = True
    return result


def write_archive(
    zk_dir: Path,
    archive: Path,
    tmp_parent: Path | None = None,
    level: int = 6,
    workers: int | None = None,
    verify: bool = False,
    progress: tarsafe.Progress | None = None,
) -> BackupResult:
    """Archive ``zk_dir`` (a ``zookeeper/`` directory) as ``archive`` plus ``archive.sha256``.

    Written under a hidden partial name in ``tmp_parent`` (default: beside the archive), fsynced,
    with ``verify`` checked completely, and only then renamed: nothing that looks like a backup is
    ever incomplete or unchecked.
    """
    started = time.monotonic()
    tmp_parent = tmp_parent or archive.parent
    partial = tmp_parent / f".{archive.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        log.info("archiving %s into %s (via %s)%s", zk_dir, archive, partial, ", checking it as it goes" * verify)
        verifier, wanted = (
            StreamVerifier.for_data_dir(MasterLayout(zk_dir.parent), tmp_parent) if verify else (None, [])
        )
        try:
            digest, size, files, data_bytes = _write_archive(
                zk_dir, partial, level, workers, verifier, wanted, progress
            )
            if verifier is not None and progress is not None:
                progress("finishing the check", files, data_bytes)
            verified = verifier.finish(str(archive)) if verifier is not None else None
        finally:
            if verifier is not None:
                verifier.abort()
        if verified is not None:
            log.info("verified: last zxid %s, %d nodes, digest %s", verified.last_zxid, verified.nodes, verified.digest)
        if tmp_parent == archive.parent:
            os.replace(partial, archive)
        else:  # another filesystem, perhaps: move copies, then the rename inside shutil is atomic or not
            shutil.move(partial, archive)
        write_private_file(archive.parent / (archive.name + ".sha256"), f"{digest}  {archive.name}\n".encode())
    except OSError as exc:
        raise storage_error(exc, f"writing {archive}", tmp_parent) from exc
    finally:
        partial.unlink(missing_ok=True)
    log.info("archive complete: %d files, %d bytes, sha256 %s", files, size, digest)
    return BackupResult(str(archive), digest, size, files, data_bytes, time.monotonic() - started, False, verified)


def _write_archive(
    zk_dir: Path,
    partial: Path,
    level: int,
    workers: int | None,
    verifier: StreamVerifier | None = None,
    wanted: list[Path] | None = None,
    progress: tarsafe.Progress | None = None,
) -> tuple[str, int, int, int]:
    """Tar + parallel gzip ``zk_dir`` into ``partial``, fsynced; returns (sha256, size, files, data bytes).

    With a ``verifier`` the files it replays are archived first, in its order, and each byte read for
    the archive goes to it too: what is checked is exactly what is archived.
    """
    files = data_bytes = 0
    paths = list(iter_data_files(zk_dir))
    wanted = wanted or []
    if verifier is not None:  # the verifier's files first, in its order
        paths = [p for p in paths if p.is_dir()] + wanted + [p for p in paths if not p.is_dir() and p not in wanted]
    # 0600 like the catalog: the archive holds every znode's data (digest ACLs, credentials).
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as raw:
        hashing = HashingWriter(raw)
        with ParallelGzipWriter(hashing, level, workers) as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
            tar.copybufsize = COPY_CHUNK
            for path in paths:
                info = tar.gettarinfo(path, arcname=_arcname(zk_dir, path))
                if not path.is_file():
                    tar.addfile(info)
                    continue
                with open(path, "rb") as f:
                    if verifier is not None and path in wanted:
                        verifier.begin(path.name)
                        tar.addfile(info, TeeReader(f, verifier.feed))
                        verifier.end()
                    else:
                        tar.addfile(info, f)
                files += 1
                data_bytes += info.size
                log.info("added %s (%d bytes)", info.name, info.size)
                if progress is not None:
                    progress("archiving" + " and checking" * (verifier is not None), files, data_bytes)
        raw.flush()
        os.fsync(raw.fileno())
    return hashing.sha256.hexdigest(), hashing.size, files, data_bytes


# --------------------------------------------------------------------------------------------- restore
def _journal_tmp(layout: MasterLayout) -> Path:
    return layout.restore_journal.with_suffix(".tmp")


def _write_journal(exhibitor_dir: Path, staged: Path, old: Path) -> None:
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


def restore(
    exhibitor_dir: Path,
    archive: Path,
    tmp_dir: Path | None = None,
    keep_old: bool = False,
    wait_lock: bool = False,
    verify: bool = True,
    progress: tarsafe.Progress | None = None,
) -> RestoreResult:
    """Replace this master's ZooKeeper data with the archive's; all or nothing.

    The archive passes the same checks as ``dcos-zk verify`` before anything live changes: its
    structure and sha256 file while it is extracted into the staging directory, then (unless not
    ``verify``) a replay of the staged data with ZooKeeper's tree digests, in ``tmp_dir`` or the staging.
    """
    started = time.monotonic()
    archive = Path(archive).absolute()
    if not archive.exists():
        raise NotFound(f"{archive} does not exist")
    if not archive.is_file():
        raise UsageError(f"{archive} is not a regular file")
    layout = MasterLayout(Path(exhibitor_dir))
    if layout.exhibitor_dir.is_dir():  # (a missing one is reported by replace_data_dir)
        ensure_free_space(layout.exhibitor_dir, archive.stat().st_size, f"restoring {archive.name}")
    members: list[tarsafe.Member] = []
    checked: list[ReplayResult] = []

    def fill(staged: MasterLayout) -> ReplayResult | None:
        log.info("checking %s and extracting it into %s", archive, staged.exhibitor_dir)
        members.extend(tarsafe.validate(archive, staged.exhibitor_dir, progress))  # checked and extracted in one pass
        log.info("archive is sound: %d files, %d bytes", *_counts(members))
        if not verify:
            log.warning("--no-verify: the data is NOT replayed; ZooKeeper may refuse it or load it wrongly")
            return None
        if progress is not None:
            progress("replaying the data", *_counts(members))
        with rebuilt_data_dir(staged, tmp_dir or staged.exhibitor_dir, keep_data=False) as (_, result):
            checked.append(result)
        log.info("verified: last zxid %s, %d nodes, digest %s", result.last_zxid, result.nodes, result.digest)
        return result

    myid = replace_data_dir(layout.exhibitor_dir, fill, keep_old, wait_lock, "dcos-zk restore", archive.name)
    files, data_bytes = _counts(members)
    return RestoreResult(
        str(archive), files, data_bytes, myid, time.monotonic() - started, checked[0] if checked else None
    )


def _counts(members: list[tarsafe.Member]) -> tuple[int, int]:
    return sum(1 for m in members if not m.is_dir), sum(m.size for m in members)


def replace_data_dir(
    exhibitor_dir: Path,
    fill: Callable[[MasterLayout], ReplayResult | None],
    keep_old: bool = False,
    wait_lock: bool = False,
    what: str = "dcos-zk restore",
    source: str = "",
) -> str | None:
    """Replace this master's ``zookeeper/`` with what ``fill`` puts into a staging layout; all or nothing.

    Under the exclusive data-dir lock and with ZooKeeper stopped: ``fill`` writes the new ``zookeeper/``
    (and checks it: it raises to refuse, before anything live changed, and returns the replay that checked
    it, or None); then this master's ``myid`` goes in, ownership and fsync follow, and the journalled swap
    puts it in place, with the restore mark of the replayed data (:mod:`dcos_backup.master.restore_mark`).
    Returns the ``myid`` kept.
    """
    layout = MasterLayout(Path(exhibitor_dir))
    if not layout.exhibitor_dir.is_dir():
        raise NotFound(f"exhibitor directory {layout.exhibitor_dir} does not exist (is --exhibitor-dir right?)")
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
    """Put the staged data in place with two renames, recorded in the journal first (see :func:`recover`)."""
    _write_journal(layout.exhibitor_dir, staged.exhibitor_dir, old)
    if layout.zk_dir.exists():
        os.rename(layout.zk_dir, old)
        log.info("moved the previous data aside to %s", old)
    os.rename(staged.zk_dir, layout.zk_dir)
    fsync_dir(layout.exhibitor_dir)
    log.info("new data in place at %s", layout.zk_dir)


def _clean_up_swap(layout: MasterLayout, staged: MasterLayout, old: Path, keep_old: bool) -> None:
    """After the swap: the journal goes last, so that a crash before leaves :func:`recover` its clean-up.

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


# ------------------------------------------------------------------------------------------------ info
def info(archive: Path) -> ArchiveInfo:
    """What an archive holds, read as a stream (nothing is extracted; every check of the tar reader applies)."""
    archive = Path(archive)
    if not archive.is_file():
        raise NotFound(f"{archive} does not exist or is not a file")
    result = ArchiveInfo(str(archive), archive.stat().st_size, 0, 0)
    newest: dict[str, tuple[int, str]] = {}
    for member in tarsafe.iter_members(archive):
        result.members.append({"name": member.name, "size": member.size, "dir": member.is_dir})
        if member.is_dir:
            continue
        result.files += 1
        result.data_bytes += member.size
        match = _ZXID_FILE.match(Path(member.name).name)
        if match:
            kind, zxid = match.group(1), int(match.group(2), 16)
            (result.snapshots if kind == "snapshot" else result.logs).append(member.name)
            if zxid >= newest.get(kind, (-1, ""))[0]:
                newest[kind] = (zxid, member.name)
    result.newest_snapshot = newest.get("snapshot", (0, None))[1]
    result.newest_log = newest.get("log", (0, None))[1]
    if newest:
        result.newest_file_zxid = hex(max(z for z, _ in newest.values()))
    return result
