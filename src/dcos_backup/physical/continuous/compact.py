"""``dcos-zk archive compact``: new snapshots in the repository, so that no point needs a long replay.

A point-in-time restore loads the newest snapshot at or before its target and replays every archived
transaction from there (:meth:`.index.Generation.plan`). ZooKeeper snapshots every ``snapCount``
transactions, or never while little is written; an hour of steady writes after its last snapshot means a
restore replays that hour. Compaction bounds the replay: per generation, from its newest snapshot and the
segments after it, it replays (with every check a restore makes: continuity, ZooKeeper's tree digests)
and every ``every`` transactions writes the tree as a ZooKeeper snapshot (:class:`.formats.SnapshotWriter`)
at a transaction that carries ZooKeeper's own digest. The snapshot is stored only if

- the replayed tree's digest equals the digest ZooKeeper logged with that transaction, and
- the written file, read back through the snapshot reader, gives that digest again (node by node) and
  records it;

then it goes in as ``snap/<Z>-<Z>-compacted_<MAC>.snap.gz``: the same generation, the same MAC over name
and content as an archived snapshot (so nobody without the repository key can plant one), and ZooKeeper
starts from it as from its own. So every restorable point is at most ``every`` transactions (plus the
transactions up to the next digest-carrying one) after a snapshot. Points before a compacted snapshot
keep their older snapshot and segments; pruning (:mod:`.prune`) treats compacted snapshots as any other.

Compaction is idempotent and safe to interrupt: it resumes from the newest snapshot, a killed run leaves at
most a local temporary file, and a stored snapshot is complete or absent (one ``put``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from dcos_backup.errors import IntegrityError, UsageError
from dcos_backup.physical import formats
from dcos_backup.physical.continuous import segments
from dcos_backup.physical.continuous.index import Generation, RepoIndex, SegmentRef, SnapshotRef
from dcos_backup.physical.continuous.repository import Repository
from dcos_backup.physical.formats import Txn, epoch_of, zxid_hex
from dcos_backup.physical.replay import Replay, TreeStore, data_file

log = logging.getLogger(__name__)

DEFAULT_EVERY = 50_000  # transactions; about a replay second (docs/performance.md), ZooKeeper's snapCount / 2
_MASK = (1 << 64) - 1


@dataclass
class CompactResult:
    snapshots: list[str] = field(default_factory=list)  # keys of the snapshots stored
    generations: int = 0  # generations that needed compacting
    transactions: int = 0  # replayed
    seconds: float = 0.0


def transactions_between(zxid: int, last: int, run: list[SegmentRef]) -> int:
    """How many archived transactions of ``run`` follow ``zxid`` up to ``last``, from the segments' zxids
    alone (zxids count up by one within an epoch; a new epoch starts at counter 1)."""
    count = 0
    for seg in run:
        first = max(seg.first, zxid + 1)
        end = min(seg.last, last)
        if end < first:
            continue
        count += end - first + 1 if epoch_of(first) == epoch_of(end) else end & 0xFFFFFFFF
    return count


def compact_repository(
    repo: Repository, every: int = DEFAULT_EVERY, stream: str | None = None, tmp_dir: Path | None = None
) -> CompactResult:
    """Compact every generation (of ``stream``) whose newest snapshot is ``every`` or more transactions behind."""
    if every < 1:
        raise UsageError("--every must be at least 1 transaction")
    started = time.monotonic()
    result = CompactResult()
    for gen in RepoIndex(repo, stream).generations:
        _compact_generation(repo, gen, every, tmp_dir, result)
    result.seconds = time.monotonic() - started
    return result


def _compact_generation(
    repo: Repository, gen: Generation, every: int, tmp_dir: Path | None, out: CompactResult
) -> None:
    last = gen.last_zxid
    found = gen.plan(last) if last is not None else None
    if found is None:
        return  # nothing restorable to start from (gen.problems() says why; status and verify show it)
    snap, run = found
    if transactions_between(snap.zxid, last or 0, run) < every:
        return
    out.generations += 1
    log.info("compacting %s from snapshot %s (%d segments)", gen.name, zxid_hex(snap.zxid), len(run))
    with tempfile.TemporaryDirectory(prefix=".dcos-zk-compact-", dir=tmp_dir) as work_dir:
        work = Path(work_dir)
        _replay_and_store(repo, gen, snap, run, every, work, out)


def _replay_and_store(
    repo: Repository,
    gen: Generation,
    snap: SnapshotRef,
    run: list[SegmentRef],
    every: int,
    work: Path,
    out: CompactResult,
) -> None:
    base = work / f"snapshot.{snap.zxid:x}"
    segments.fetch_snapshot(repo, snap, base)
    store = TreeStore(work / "tree.db", keep_data=True)
    try:
        replay = Replay(store, data_file(snap.zxid, base))
        base.unlink()
        since = 0
        for seg in run:
            for record in segments.read_segment(repo, seg, parse=True):
                txn = record.txn
                assert txn is not None
                if txn.zxid > (gen.last_zxid or 0) or not replay.apply(txn, seg.key):
                    continue
                out.transactions += 1
                since += 1
                if since >= every and _carries_digest(txn) and replay.settled:
                    out.snapshots.append(_store_snapshot(repo, gen, replay, txn, work).key)
                    since = 0
        replay.finish()
    finally:
        store.close()


def _carries_digest(txn: Txn) -> bool:
    return txn.digest is not None and txn.digest[0] == formats.DIGEST_VERSION


def _store_snapshot(repo: Repository, gen: Generation, replay: Replay, txn: Txn, work: Path) -> SnapshotRef:
    """Write the replayed tree at ``txn`` as a snapshot, check it twice against the digest ZooKeeper
    logged with ``txn``, store it; IntegrityError (nothing stored) on any mismatch."""
    assert txn.digest is not None
    logged = txn.digest[1] & _MASK
    store = replay.store
    if store.digest != logged:  # the replay checks every digest already; this is the one the snapshot claims
        raise IntegrityError(
            f"{gen.name}: the replayed tree at {zxid_hex(txn.zxid)} has digest {store.digest:x}, ZooKeeper "
            f"logged {logged:x}; no snapshot stored"
        )
    path = work / f"snapshot.{txn.zxid:x}"
    with open(path, "xb") as f:
        nodes = store.write_snapshot(f, txn.zxid, replay.dbid)
    try:
        _check_written(path, txn.zxid, logged, nodes, work)
        ref = segments.put_snapshot(repo, gen.prefix, path, txn.zxid, compacted=True)
    finally:
        path.unlink(missing_ok=True)
    log.info("stored compacted snapshot %s (%d nodes, digest %016x)", ref.key, nodes, logged)
    return ref


def _check_written(path: Path, zxid: int, logged: int, nodes: int, work: Path) -> None:
    """Read the written snapshot back as a restore will: its nodes' digest and its record must be ``logged``."""
    check = TreeStore(work / "check.db", keep_data=False)
    try:
        with formats.open_data_file(path) as f:
            reader = formats.SnapshotReader(f, path.name)
            check.load_snapshot(reader)
            recorded = reader.finish()
        check.check_acls()  # the writer writes every ACL it uses into the map: nothing may be left unresolved
        if recorded is None or recorded.zxid != zxid or recorded.digest & _MASK != logged:
            raise IntegrityError(f"{path.name}: the written snapshot does not record digest {logged:x} at {zxid:x}")
        if check.digest != logged or check.count != nodes:
            raise IntegrityError(
                f"{path.name}: the written snapshot reads back as {check.count} nodes with digest {check.digest:x}, "
                f"not {nodes} with {logged:x}; not stored"
            )
    finally:
        check.close()
        (work / "check.db").unlink(missing_ok=True)
