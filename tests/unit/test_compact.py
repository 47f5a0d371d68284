"""Compaction without a server (issue 29 item 3): snapshots built in the repository from a snapshot and the
segments after it, on logs whose transactions carry the tree digests ZooKeeper would have written.

End to end (ZooKeeper starting on a compacted snapshot): tests/e2e/test_zk_archive.py.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from tests import zkfiles
from tests.unit.test_physical_continuous import E1, T0, DataDir, generations, repository

from dcos_backup.errors import IntegrityError, UsageError
from dcos_backup.master.layout import MasterLayout
from dcos_backup.physical import formats
from dcos_backup.physical.continuous import compact, pitr, prune
from dcos_backup.physical.continuous.archiver import Archiver
from dcos_backup.physical.replay import TreeStore, replay

BASE = {"/a": b"x"}


class DigestedLog:
    """Creates and sets whose records carry ZooKeeper's tree digest after them (as 3.6+ servers log)."""

    def __init__(self, data: DataDir, work: Path) -> None:
        self.data = data
        self.store = TreeStore(work / "digests.db")
        self.store.load_snapshot(formats.SnapshotReader(io.BytesIO(zkfiles.snapshot_file(BASE, E1)), "base"))

    def write(self, zxids: range, wrong: int | None = None) -> None:
        txns = self.data.logs.setdefault(E1 + 1, [])
        for z in zxids:
            path, when = f"/n{z % 5}", T0 + (z & 0xFFFF) * 1000
            exists = self.store.node(path) is not None
            raw = self._record(z, path, when, exists)
            txn = formats.parse_txn(raw)
            self.store.apply(txn)
            digest = self.store.digest + (1 if z == wrong else 0)
            txns.append(raw + _digest(digest))
        (self.data.layout.logs_dir / f"log.{E1 + 1:x}").write_bytes(zkfiles.log_file(txns))

    @staticmethod
    def _record(z: int, path: str, when: int, exists: bool) -> bytes:
        if not exists:
            return zkfiles.create_txn(z, path, b"v%d" % z, time=when)
        header = formats._TXN_HEADER.pack(0x1234, 1, z, when, formats.OpCode.setData)
        return header + zkfiles.jute_buffer(path.encode()) + zkfiles.jute_buffer(b"s%d" % z) + (z & 0xFF).to_bytes(4)


def _digest(value: int) -> bytes:
    signed = value - (1 << 64) if value >= 1 << 63 else value
    return formats._INT.pack(formats.DIGEST_VERSION) + formats._LONG.pack(signed)


@pytest.fixture
def archived(tmp_path: Path) -> tuple[Path, DataDir, DigestedLog, Archiver]:
    data = DataDir(tmp_path / "master")
    data.snapshot(E1, BASE)
    log = DigestedLog(data, tmp_path)
    arch = Archiver(data.layout, repository(tmp_path / "repo"), "master-1")
    for start in range(1, 31, 6):  # five segments
        log.write(range(E1 + start, E1 + start + 6))
        arch.step()
    return tmp_path / "repo", data, log, arch


def tree_at(repo: Path, zxid: int, work: Path) -> tuple[int, list, str]:
    """(transactions replayed, every node, digest) of the point as a restore assembles it."""
    staged = MasterLayout(work)
    chosen = pitr.plan(repository(repo), pitr.Target(zxid=zxid))
    written, result = pitr.assemble(repository(repo), chosen, staged, work)
    store = TreeStore(work / "check.db")
    replay(staged, store)
    nodes = [(n.path, n.data, n.acl, n.stat) for n in store.iter_nodes()]
    store.close()
    shutil.rmtree(work)
    return written, nodes, result.digest


def test_compaction_bounds_every_replay_and_every_point_restores_the_same_tree(archived, tmp_path):
    repo, *_ = archived
    plain = tmp_path / "plain"
    shutil.copytree(repo, plain)
    done = compact.compact_repository(repository(repo), every=4)
    assert done.transactions == 30 and done.generations == 1
    (gen,) = generations(repo)
    expected = [(E1, False)] + [(E1 + z, True) for z in (4, 8, 12, 16, 20, 24, 28)]
    assert [(s.zxid, s.compacted) for s in gen.snapshots] == expected
    assert all(s.consistent == s.zxid for s in gen.snapshots)
    for z in (E1 + 1, E1 + 3, E1 + 4, E1 + 7, E1 + 13, E1 + 28, E1 + 30):  # before, at, between snapshots
        written, nodes, digest = tree_at(repo, z, tmp_path / f"c{z:x}")
        assert written < 4
        assert (nodes, digest) == tree_at(plain, z, tmp_path / f"p{z:x}")[1:], hex(z)
    # Again: nothing new to compact until 4 more transactions are archived.
    assert compact.compact_repository(repository(repo), every=4).snapshots == []


def test_a_digest_that_disagrees_stores_no_snapshot_at_or_after_it(tmp_path):
    data = DataDir(tmp_path / "master")
    data.snapshot(E1, BASE)
    DigestedLog(data, tmp_path).write(range(E1 + 1, E1 + 13), wrong=E1 + 7)
    Archiver(data.layout, repository(tmp_path / "repo"), "master-1").step()
    with pytest.raises(IntegrityError, match="tree digest mismatch at zxid 0x100000007"):
        compact.compact_repository(repository(tmp_path / "repo"), every=3)
    assert [s.zxid for s in generations(tmp_path / "repo")[0].snapshots if s.compacted] == [E1 + 3, E1 + 6]


def test_prune_with_compacted_snapshots_keeps_every_point_after_the_cutoff(archived, tmp_path):
    repo, *_ = archived
    compact.compact_repository(repository(repo), every=5)
    cutoff_ms = T0 + 14_000  # points from E1+14 on must stay
    result = prune.prune_repository(repository(repo), keep_days=1, now_ms=cutoff_ms + prune.DAY_MS)
    (kept,) = generations(repo)
    assert result.objects > 0 and kept.problems() == []
    assert kept.snapshots[0].compacted and kept.snapshots[0].zxid <= E1 + 13
    for z in range(E1 + 13, E1 + 31):
        assert kept.plan(z) is not None, hex(z)
    assert tree_at(repo, E1 + 14, tmp_path / "after")[0] < 5


def test_every_must_be_positive(archived):
    with pytest.raises(UsageError, match="at least 1"):
        compact.compact_repository(repository(archived[0]), every=0)


def test_a_zxid_restores_from_the_stream_with_the_shortest_replay(archived):
    repo, data, _, _ = archived
    Archiver(data.layout, repository(repo), "master-2").step()  # another master's stream of the same history
    compact.compact_repository(repository(repo), every=4, stream="master-2")
    chosen = pitr.plan(repository(repo), pitr.Target(zxid=E1 + 30), prefer="master-1")
    assert chosen.generation.stream == "master-2" and chosen.snapshot.compacted and chosen.snapshot.zxid == E1 + 28
    # Where both are as short, this master's own stream.
    assert pitr.plan(repository(repo), pitr.Target(zxid=E1 + 2), prefer="master-1").generation.stream == "master-1"
