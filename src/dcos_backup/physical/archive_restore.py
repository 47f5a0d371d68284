"""Physical restore of one master's ZooKeeper data directory from an archive (``dcos-zk restore``).

The whole archive is validated (structure, sha256 file, and unless told not to a replay of the data)
while it is staged, before anything live changes; the staged data then goes in by :mod:`.swap`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from dcos_backup.errors import NotFound, UsageError
from dcos_backup.fsutil import ensure_free_space
from dcos_backup.master.layout import MasterLayout
from dcos_backup.physical import tarsafe
from dcos_backup.physical.replay import ReplayResult
from dcos_backup.physical.swap import replace_data_dir
from dcos_backup.physical.verify import rebuilt_data_dir

log = logging.getLogger(__name__)


@dataclass
class RestoreResult:
    archive: str
    files: int
    data_bytes: int
    myid: str | None
    seconds: float
    verified: ReplayResult | None = None


def restore(
    exhibitor_dir: Path,
    archive: Path,
    tmp_dir: Path | None = None,
    keep_old: bool = False,
    wait_lock: bool = False,
    verify: bool = True,
    progress: tarsafe.Progress | None = None,
    drop_sessions: bool = False,
) -> RestoreResult:
    """Replace this master's ZooKeeper data with the archive's; all or nothing.

    The archive passes the same checks as ``dcos-zk verify`` before anything live changes: its
    structure and sha256 file while it is extracted into the staging directory, then (unless not
    ``verify``) a replay of the staged data with ZooKeeper's tree digests, in ``tmp_dir`` or the staging.
    ``drop_sessions``: the archive's sessions and their ephemerals are not restored (:mod:`.sessions`).
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

    myid = replace_data_dir(
        layout.exhibitor_dir, fill, keep_old, wait_lock, "dcos-zk restore", archive.name, drop_sessions
    )
    files, data_bytes = _counts(members)
    return RestoreResult(
        str(archive), files, data_bytes, myid, time.monotonic() - started, checked[0] if checked else None
    )


def _counts(members: list[tarsafe.Member]) -> tuple[int, int]:
    return sum(1 for m in members if not m.is_dir), sum(m.size for m in members)
