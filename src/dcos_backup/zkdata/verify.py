"""Checking and reading what a ZooKeeper backup would restore (``dcos-zk verify`` and ``dcos-zk dump``).

An archive is extracted (after :mod:`.tarsafe` accepted it) into a private temporary directory, then
:mod:`.replay` rebuilds its tree there in SQLite: every checksum, the transaction sequence and
ZooKeeper's own tree digests are checked on the way. Nothing is held in memory but one record.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dcos_backup.errors import NotFound
from dcos_backup.master.layout import MasterLayout
from dcos_backup.zkdata import tarsafe
from dcos_backup.zkdata.replay import ReplayResult, TreeStore, replay

log = logging.getLogger(__name__)


@dataclass
class VerifyResult(ReplayResult):
    archive: str = ""
    seconds: float = 0.0


@contextlib.contextmanager
def _workspace(tmp_dir: Path | None) -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix=".dcos-zk-verify-", dir=tmp_dir))
    try:
        work.chmod(0o700)  # the extracted data may hold secrets (digest ACLs, credentials in znodes)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def rebuilt_data_dir(
    layout: MasterLayout, tmp_dir: Path | None = None, keep_data: bool = True
) -> Iterator[tuple[TreeStore, ReplayResult]]:
    """The tree of ``layout``'s ``zookeeper/`` directory, rebuilt and checked; the store lives until exit."""
    with _workspace(tmp_dir) as work:
        store = TreeStore(work / "tree.sqlite", keep_data)
        try:
            yield store, replay(layout, store)
        finally:
            store.close()


@contextlib.contextmanager
def rebuilt_archive(
    archive: Path, tmp_dir: Path | None = None, keep_data: bool = True
) -> Iterator[tuple[TreeStore, ReplayResult]]:
    """The tree a ``dcos-zk`` archive would restore, rebuilt and checked; the store lives until exit."""
    archive = Path(archive)
    if not archive.is_file():
        raise NotFound(f"{archive} does not exist or is not a file")
    with _workspace(tmp_dir) as work:
        log.info("checking and extracting %s", archive)
        tarsafe.validate(archive, into=work)
        # The archive holds the zookeeper/ part of a master's layout; extracted, work is laid out as one.
        with rebuilt_data_dir(MasterLayout(work), work, keep_data) as rebuilt:
            yield rebuilt


def verify_archive(archive: Path, tmp_dir: Path | None = None) -> VerifyResult:
    """Check everything in an archive; IntegrityError with the reason on the first problem."""
    started = time.monotonic()
    with rebuilt_archive(archive, tmp_dir, keep_data=False) as (_, result):
        fields = result.to_dict()
    return VerifyResult(**fields, archive=str(archive), seconds=time.monotonic() - started)
