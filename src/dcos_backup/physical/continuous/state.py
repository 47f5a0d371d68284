"""The state of some subtrees at a point of the continuous archive, as logical znodes (``POST /restore``
with a ``point``: the backup service restores them online, :mod:`dcos_backup.jobs.point`).

:func:`state_at` plans like :func:`.pitr.plan` (the newest snapshot consistent at or before the point, so
a compacted snapshot is used as soon as it exists, and the unbroken run of segments after it), fetches the
snapshot (its MAC checked) and the records up to the point (each segment checked against its key) into a
private directory, and replays them with ZooKeeper's tree digests (:mod:`..replay`) into a tree kept in
SQLite on disk: memory stays flat whatever the tree's size. Only a replay that reached exactly the point,
every recorded digest matching, is read; the subtrees asked for then stream out of it in the logical
engine's canonical pre-order (children sorted), persistent nodes only (ephemeral and container nodes
and their subtrees are left out, as a logical backup leaves them out). The directory goes with the context.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL, Id

from dcos_backup.errors import IntegrityError
from dcos_backup.logical import ZNode
from dcos_backup.master.layout import MasterLayout
from dcos_backup.physical import replay
from dcos_backup.physical.continuous import pitr, segments
from dcos_backup.physical.continuous.index import format_time
from dcos_backup.physical.continuous.repository import Repository
from dcos_backup.physical.formats import Stat, zxid_hex

log = logging.getLogger(__name__)

# ZooKeeper refuses control characters in paths, so with "/" as \x01 SQLite's byte order of paths is
# the pre-order with sorted children (tuples of path parts in Python: logical.records.path_key).
_SUBTREE_QUERY = (
    "SELECT path, data, acl, stat FROM nodes WHERE path = ? OR (path > ? AND path < ?) "
    "ORDER BY replace(path, '/', char(1))"
)


@dataclass
class PointInfo:
    """What a point resolved to: the transaction restored and where it came from."""

    zxid: str
    time: str | None  # the restored transaction's time (RFC 3339), when the plan knows it
    generation: str
    snapshot: str
    transactions: int  # replayed after the snapshot
    nodes: int  # in the whole tree at the point
    digest: str  # ZooKeeper's tree digest at the point, as replayed
    digests_checked: int
    note: str | None = None
    fetch_seconds: float = 0.0  # snapshot and segments fetched and checked against their keys
    replay_seconds: float = 0.0  # replayed with the digest checks


class PointState:
    """The tree at a point, replayed and checked; read with :meth:`nodes` inside :func:`state_at`."""

    def __init__(self, store: replay.TreeStore, info: PointInfo) -> None:
        self._store = store
        self.info = info
        self.skipped_ephemeral = 0

    def exists(self, path: str) -> bool:
        return self._store.node(path) is not None

    def node(self, path: str) -> ZNode | None:
        """The persistent node at ``path`` at the point, or None."""
        found = self._store.node(path)
        if found is None or found.stat.ephemeral_owner != 0:
            return None
        body = found.data or b""
        acl = tuple(ACL(int(perms), Id(str(scheme), str(ident))) for perms, scheme, ident in found.acl)
        return ZNode(path, body, acl, _znode_stat(found.stat, len(body)))

    def nodes(self, path: str) -> Iterator[ZNode]:
        """``path`` and its subtree at the point, in canonical pre-order, persistent nodes only."""
        self._store.flush()
        base = "" if path == "/" else path.rstrip("/")
        skipped: str | None = None  # the ephemeral or container node whose subtree is being left out
        acls: dict[str, tuple[ACL, ...]] = {}
        rows = self._store.db.execute(_SUBTREE_QUERY, (base, base + "/", base + "0"))
        for node_path, data, acl_text, raw_stat in rows:
            full = node_path or "/"
            if skipped is not None and (full == skipped or full.startswith(skipped + "/")):
                continue
            stat = Stat.unpack(raw_stat)
            if stat.ephemeral_owner != 0:
                skipped = full
                self.skipped_ephemeral += 1
                continue
            acl = acls.get(acl_text)
            if acl is None:
                acl = acls[acl_text] = _acl(acl_text)
            body = data or b""
            yield ZNode(full, body, acl, _znode_stat(stat, len(body)))


def _acl(text: str) -> tuple[ACL, ...]:
    return tuple(ACL(int(perms), Id(str(scheme), str(ident))) for perms, scheme, ident in json.loads(text))


def _znode_stat(stat: Stat, data_length: int) -> ZnodeStat:
    """kazoo's stat of a persistent node; numChildren -1 (unknown), as an archive without it is read."""
    return ZnodeStat(
        stat.czxid,
        stat.mzxid,
        stat.ctime,
        stat.mtime,
        stat.version,
        stat.cversion,
        stat.aversion,
        0,
        data_length,
        -1,
        stat.pzxid,
    )


@contextlib.contextmanager
def state_at(repo: Repository, target: pitr.Target, tmp_dir: Path | None = None) -> Iterator[PointState]:
    """The tree at ``target``, rebuilt from ``repo`` and checked (UsageError naming the restorable window
    for a point the repository cannot reach; IntegrityError for damaged objects or a digest mismatch)."""
    started = time.monotonic()
    chosen = pitr.plan(repo, target)
    log.info("rebuilding %s", chosen.describe())
    work = Path(tempfile.mkdtemp(prefix=".dcos-backup-point-", dir=tmp_dir))
    try:
        os.chmod(work, 0o700)
        layout = MasterLayout(work)
        layout.snapshots_dir.mkdir(parents=True)
        layout.logs_dir.mkdir(parents=True)
        snap = chosen.snapshot
        segments.fetch_snapshot(repo, snap, layout.snapshots_dir / f"snapshot.{snap.zxid:x}")
        pitr.write_log(repo, chosen, layout)
        fetched = time.monotonic()
        store = replay.TreeStore(work / "tree.db")
        try:
            replayed = replay.replay(layout, store)
            if int(replayed.last_zxid, 16) != chosen.zxid:
                raise IntegrityError(f"the archive replays to {replayed.last_zxid}, not to {zxid_hex(chosen.zxid)}")
            info = PointInfo(
                zxid=zxid_hex(chosen.zxid),
                time=format_time(chosen.time_ms) if chosen.time_ms is not None else None,
                generation=chosen.generation.name,
                snapshot=replayed.snapshot,
                transactions=replayed.transactions,
                nodes=replayed.nodes,
                digest=replayed.digest,
                digests_checked=replayed.digests_checked,
                note=chosen.note,
                fetch_seconds=fetched - started,
                replay_seconds=time.monotonic() - fetched,
            )
            log.info(
                "rebuilt %s: %d nodes, %d transactions, %d digests checked (fetched in %.1fs, replayed in %.1fs)",
                info.zxid,
                info.nodes,
                info.transactions,
                info.digests_checked,
                info.fetch_seconds,
                info.replay_seconds,
            )
            yield PointState(store, info)
        finally:
            store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
