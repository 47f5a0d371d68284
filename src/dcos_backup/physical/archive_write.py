"""Physical backup of one master's ZooKeeper data directory (``dcos-zk backup``): a seed-compatible archive.

Archives are what DC/OS's own ``dcos-zk`` writes: a gzip tar of ``<exhibitor-dir>/zookeeper`` as
``./zookeeper/...`` without ``myid`` and ``zookeeper.out``; either tool restores the other's archives
(:mod:`.archive_restore`).

Safety: an offline backup refuses to run while this master's ZooKeeper runs (:mod:`.running`) and
first finishes an interrupted restore (:mod:`.journal`); an archive is written under a hidden temp name
and renamed only when complete and checked (plus ``<archive>.sha256``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dcos_backup.errors import IntegrityError, NotFound, UsageError
from dcos_backup.fsutil import HashingWriter, TeeReader, storage_error, write_private_file
from dcos_backup.master.layout import CONSOLE_LOG, MYID, ZK_DIR_NAME, MasterLayout
from dcos_backup.master.lock import data_dir_lock
from dcos_backup.physical import online as online_copy
from dcos_backup.physical import tarsafe
from dcos_backup.physical.journal import recover
from dcos_backup.physical.pgzip import ParallelGzipWriter
from dcos_backup.physical.running import ensure_not_running
from dcos_backup.physical.verify import StreamVerifier, VerifyResult

log = logging.getLogger(__name__)

EXCLUDED_NAMES = {MYID, CONSOLE_LOG}  # this master's identity and console: not data, as in DC/OS's script
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
        with ParallelGzipWriter(hashing, level, workers) as gz, tarfile.open(fileobj=gz, mode="w|") as tar:  # type: ignore[call-overload]
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
