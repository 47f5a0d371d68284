"""Continuous archiving without a server: the store, the index, the archiver's continuity rules, point-in-time
restore and retention, on data directories built from ZooKeeper's file formats (tests/zkfiles.py).

End to end with real ensembles, kills and purges: tests/e2e/test_zk_archive*.py.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from tests import zkfiles

from dcos_backup.errors import IntegrityError, StorageError, UsageError
from dcos_backup.master import restore_mark
from dcos_backup.master.layout import MasterLayout
from dcos_backup.physical import archive_restore
from dcos_backup.physical.continuous import pitr, prune, txlog
from dcos_backup.physical.continuous.archiver import Archiver
from dcos_backup.physical.continuous.index import (
    RepoIndex,
    format_time,
    parse_time,
    parse_zxid,
    segment_key,
    segment_name,
    snapshot_key,
    snapshot_name,
)
from dcos_backup.physical.continuous.repository import RepoKey, Repository
from dcos_backup.physical.formats import Multi, OpCode, Txn
from dcos_backup.storage.base import PARTIAL
from dcos_backup.storage.local import LocalStore
from dcos_backup.storage.locations import open_store

E1 = 0x100000000  # epoch 1
KEY = RepoKey(bytes(range(32)))  # this cluster's repository key
T0 = 1_700_000_000_000


class DataDir:
    """A stopped master's data directory whose logs the test writes record by record."""

    def __init__(self, root: Path, myid: str = "1") -> None:
        self.layout = MasterLayout(root)
        self.layout.snapshots_dir.mkdir(parents=True)
        self.layout.logs_dir.mkdir(parents=True)
        self.layout.myid_file.write_text(myid + "\n")
        self.logs: dict[int, list[bytes]] = {}

    def snapshot(self, zxid: int, nodes: dict[str, bytes]) -> None:
        (self.layout.snapshots_dir / f"snapshot.{zxid:x}").write_bytes(zkfiles.snapshot_file(nodes, zxid))

    def write(self, log_start: int, zxids: range, padding: int = 0) -> None:
        """Append creates ``/n<zxid>`` (time T0 + counter seconds) to ``log.<log_start>``."""
        txns = self.logs.setdefault(log_start, [])
        txns += [zkfiles.create_txn(z, f"/n{z:x}", b"v", time=T0 + (z & 0xFFFF) * 1000) for z in zxids]
        (self.layout.logs_dir / f"log.{log_start:x}").write_bytes(zkfiles.log_file(txns, padding))


@pytest.fixture
def data(tmp_path: Path) -> DataDir:
    d = DataDir(tmp_path / "master")
    d.snapshot(E1, {"/a": b"x"})
    d.write(E1 + 1, range(E1 + 1, E1 + 11))
    return d


def repository(path: Path, key: RepoKey = KEY) -> Repository:
    """The repository at ``path`` as this cluster opens it (its repository.json made on first use)."""
    repo = Repository(LocalStore(path), key)
    repo.check_identity(create=True)
    return repo


def archiver(data: DataDir, repo: Path) -> Archiver:
    return Archiver(data.layout, repository(repo), "master-1")


def generations(repo: Path) -> list:
    return RepoIndex(repository(repo), "master-1").generations


# ------------------------------------------------------------------------------------------ store
def test_store_objects_appear_whole_or_not_at_all(tmp_path):
    store = LocalStore(tmp_path / "repo")
    put = store.put("a/b/c.log", io.BytesIO(b"hello"))
    assert put.size == 5 and put.sha256.startswith("2cf24dba")
    assert [o.key for o in store.list("a/")] == ["a/b/c.log"] and store.get_bytes("a/b/c.log") == b"hello"

    class Failing(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(StorageError, match="no space left") as caught:
        store.put("a/b/d.log", Failing())
    assert caught.value.details["reason"] == "full"
    (tmp_path / "repo" / "a" / "b" / f"{PARTIAL}x.e.log").write_bytes(b"torn")  # as a killed writer leaves it
    assert [o.key for o in store.list()] == ["a/b/c.log"]
    assert store.remove_partials("a") == 1
    store.delete("a/b/c.log")
    assert list(store.list()) == [] and not (tmp_path / "repo" / "a").exists()
    for bad in ("../x", "a/../../x", ".hidden", "/abs"):
        with pytest.raises(UsageError):
            store.put(bad, b"")
    with pytest.raises(UsageError, match="not supported"):
        open_store("ftp://host/x")


# ------------------------------------------------------------------------------------------ index
def test_times_and_zxids_parse_as_documented():
    assert parse_zxid("0x100000005") == parse_zxid(str(0x100000005))
    assert parse_time("2023-11-14T22:13:20Z") == T0 * 1000
    assert parse_time("2023-11-15T00:13:20.5+02:00") == T0 * 1000 + 500_000
    assert format_time(T0 + 5) == "2023-11-14T22:13:20.005Z"
    for bad in ("2023-11-14T22:13:20", "yesterday"):
        with pytest.raises(UsageError):
            parse_time(bad)
    with pytest.raises(UsageError):
        parse_zxid("0xzz")


def test_the_index_finds_ranges_gaps_and_missing_snapshots(tmp_path):
    repo = repository(tmp_path)
    store = repo.store
    prefix = "streams/m/g1"
    repo.put_doc(f"{prefix}/generation.json", {"base_zxid": 10})
    store.put(snapshot_key(snapshot_name(prefix, 10, 12), "0" * 64), b"s")
    for first, last in ((11, 20), (21, 30), (41, 50)):  # 31..40 missing
        store.put(segment_key(segment_name(prefix, first, last, T0 + first, T0 + last), "1" * 64), b"l")
    gen = RepoIndex(repo).generations[0]
    assert [(r.first, r.last) for r in gen.ranges()] == [(12, 30)]
    assert gen.gaps() == [(30, 41)] and "missing between zxid 0x1e and 0x29" in gen.problems()[0]
    snap, segments = gen.plan(25)
    assert snap.zxid == 10 and [s.first for s in segments] == [11, 21]
    assert gen.plan(11) is None  # inside the snapshot's fuzzy range: not consistent yet
    assert gen.plan(45) is None
    store.delete(snap.key)
    assert "no snapshot" in RepoIndex(repo).generations[0].problems()[0]


def test_a_snapshot_never_skips_a_gap_into_a_later_epoch(tmp_path):
    # A new epoch's first zxid "follows" any older zxid; a snapshot before a gap must not reach across it.
    repo = repository(tmp_path)
    store = repo.store
    prefix = "streams/m/g1"
    e2 = 2 * E1
    repo.put_doc(f"{prefix}/generation.json", {"base_zxid": 0})
    store.put(snapshot_key(snapshot_name(prefix, 0, 0), "0" * 64), b"s")
    for first, last in ((E1 + 1, E1 + 20), (E1 + 31, E1 + 40), (e2 + 1, e2 + 10)):  # E1+21..30 missing
        name = segment_name(prefix, first, last, T0 + (first & 0xFF), T0 + (last & 0xFF))
        store.put(segment_key(name, "1" * 64), b"l")
    gen = RepoIndex(repo).generations[0]
    assert [(r.first, r.last) for r in gen.ranges()] == [(0, E1 + 20)]
    assert [s.first for s in gen.plan(E1 + 15)[1]] == [E1 + 1]
    assert gen.plan(E1 + 35) is None and gen.plan(e2 + 5) is None


# ------------------------------------------------------------------------------------------ archiver
def test_archiver_follows_roll_overs_and_resumes_after_a_restart(data, tmp_path):
    repo = tmp_path / "repo"
    first = archiver(data, repo)
    first.step()
    (gen,) = generations(repo)
    assert gen.base == E1 and [(s.first, s.last) for s in gen.segments] == [(E1 + 1, E1 + 10)]
    data.write(E1 + 1, range(E1 + 11, E1 + 15))
    first.step()
    data.write(E1 + 15, range(E1 + 15, E1 + 20))  # roll-over
    for _ in range(3):
        first.step()
    data.write(E1 + 15, range(E1 + 20, E1 + 22))
    # A new archiver (the old one killed): it finds where the archive stands and goes on.
    second = archiver(data, repo)
    second.step()
    (gen,) = generations(repo)
    assert [(s.first, s.last) for s in gen.segments] == [
        (E1 + 1, E1 + 10),
        (E1 + 11, E1 + 14),
        (E1 + 15, E1 + 19),
        (E1 + 20, E1 + 21),
    ]
    assert gen.problems() == [] and gen.ranges()[0].last == E1 + 21


def test_a_purged_log_ends_the_generation_and_starts_a_new_base(data, tmp_path):
    repo = tmp_path / "repo"
    arch = archiver(data, repo)
    arch.step()
    data.write(E1 + 11, range(E1 + 11, E1 + 20))
    data.write(E1 + 20, range(E1 + 20, E1 + 30))
    data.snapshot(E1 + 25, {"/a": b"y"})
    for name in ("log.100000001", "log.10000000b", f"snapshot.{E1:x}"):  # purged before they were read
        (data.layout.exhibitor_dir / "zookeeper").joinpath(
            "transactions/version-2" if name.startswith("log") else "snapshot/version-2", name
        ).unlink()
    arch.step()  # notices
    arch.step()  # new base
    old, new = generations(repo)
    assert old.end is not None and "purged" in old.end["reason"] and old.ranges()[-1].last == E1 + 10
    assert new.base == E1 + 25 and "purged" in new.info["reason"]
    arch.step()
    assert generations(repo)[-1].last_zxid == E1 + 29
    assert "new base" in data.layout.activity_log.read_text()


def test_a_log_cut_back_by_zookeeper_caps_the_generation(data, tmp_path):
    repo = tmp_path / "repo"
    arch = archiver(data, repo)
    arch.step()
    # A leader change: ZooKeeper drops E1+9..E1+10 (never committed) and goes on in epoch 2.
    data.logs[E1 + 1] = data.logs[E1 + 1][:8]
    data.write(E1 + 1, range(0))
    e2 = 0x200000000
    data.write(e2 + 1, range(e2 + 1, e2 + 4))
    arch.step()
    old = generations(repo)[0]
    assert old.valid_until == E1 + 8 and old.ranges()[-1].last == E1 + 8 and "cut" in old.end["reason"]
    assert old.plan(E1 + 10) is None


# ------------------------------------------------------------------------------------------ restore
def test_point_in_time_restore_rebuilds_exactly_the_target(data, tmp_path):
    repo = tmp_path / "repo"
    arch = archiver(data, repo)
    arch.step()
    data.write(E1 + 1, range(E1 + 11, E1 + 20))
    arch.step()
    target = DataDir(tmp_path / "restored", myid="3")
    result = pitr.restore(target.layout.exhibitor_dir, repository(repo), pitr.Target(zxid=E1 + 13))
    assert result.zxid == hex(E1 + 13) and result.transactions == 13 and result.myid == "3"
    log_file = target.layout.logs_dir / f"log.{E1 + 1:x}"
    assert [p.name for p in target.layout.logs_dir.iterdir()] == [log_file.name]
    assert (target.layout.snapshots_dir / "currentEpoch").read_text() == "1"
    # The restore mark names the content: the same point exported and restored from an archive has the same.
    mark = restore_mark.read(target.layout.restore_mark)
    assert mark is not None and mark.last_zxid == hex(E1 + 13) and not mark.served
    pitr.export(repository(repo), pitr.Target(zxid=E1 + 13), tmp_path / "point.tar.gz")
    other = DataDir(tmp_path / "from-archive", myid="2")
    archive_restore.restore(other.layout.exhibitor_dir, tmp_path / "point.tar.gz")
    assert restore_mark.read(other.layout.restore_mark).identity == mark.identity
    # By time: the last transaction at or before it (E1+5 was written at T0 + 5 s).
    at = pitr.plan(repository(repo), pitr.Target(time_us=(T0 + 5_500) * 1000))
    assert at.zxid == E1 + 5 and at.note is None
    # After the archive's end: the last point, and how far short of the time it is.
    late = pitr.plan(repository(repo), pitr.Target(time_us=(T0 + 60_000) * 1000))
    assert late.zxid == E1 + 19 and "after the archive's end" in late.note and "41.0s short" in late.note
    # Just before a transaction: the state dcos-zk log shows before it.
    assert pitr.plan(repository(repo), pitr.Target(before=E1 + 13)).zxid == E1 + 12
    with pytest.raises(UsageError, match=r"is not restorable .* restorable: 0x100000000\.\.0x100000013"):
        pitr.plan(repository(repo), pitr.Target(zxid=E1 + 99))
    with pytest.raises(UsageError):
        pitr.Target(zxid=1, latest=True)


def test_a_corrupt_segment_is_named_and_refused(data, tmp_path):
    repo = tmp_path / "repo"
    archiver(data, repo).step()
    (segment,) = generations(repo)[0].segments
    path = repo / segment.key
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    target = DataDir(tmp_path / "restored")
    with pytest.raises(IntegrityError, match=f"{segment.key}: its MAC does not verify"):
        pitr.restore(target.layout.exhibitor_dir, repository(repo), pitr.Target(latest=True))
    assert not any(target.layout.logs_dir.iterdir())  # nothing changed


# ------------------------------------------------------------------------------------------ retention, log
def test_prune_keeps_every_point_after_the_cutoff(data, tmp_path):
    repo = tmp_path / "repo"
    arch = archiver(data, repo)
    arch.step()
    for start in (E1 + 11, E1 + 21, E1 + 31):
        data.write(start, range(start, start + 10))
        data.snapshot(start + 9, {"/a": bytes([start & 0xFF])})
        arch.step()
        arch.step()
        arch._store_new_snapshot()
    gen = generations(repo)[0]
    assert len(gen.snapshots) == 4
    cutoff_ms = T0 + 25_000  # points from E1+25 on must stay
    result = prune.prune_repository(repository(repo), keep_days=1, now_ms=cutoff_ms + prune.DAY_MS)
    kept = generations(repo)[0]
    assert result.objects > 0 and kept.problems() == []
    assert kept.plan(E1 + 24) is not None and kept.plan(E1 + 39) is not None  # the state at the cutoff too
    assert kept.plan(E1 + 5) is None


def test_log_lines_for_a_multi_share_its_zxid():
    from dcos_backup.physical.formats import Delete, SetData

    multi = Txn(
        0x55,
        1,
        E1 + 7,
        T0,
        OpCode.multi,
        Multi([(OpCode.delete, Delete("/x")), (OpCode.setData, SetData("/", b"", 1))]),
        None,
    )
    lines = list(txlog.entries(multi))
    assert [(d["zxid"], d["type"], d["path"], d["multi"]) for d in lines] == [
        (E1 + 7, "delete", "/x", True),
        (E1 + 7, "setData", "/", True),
    ]
    assert lines[0]["time"] == format_time(T0) and lines[0]["session"] == 0x55


# ------------------------------------------------------------------------------------------ histories, epochs
def test_a_zxid_two_histories_hold_is_refused_naming_both(data, tmp_path):
    """Issue 26 item 1: a history that reused an epoch (archived before restores raised it) holds the same
    zxids with other transactions: a zxid target is refused naming both, --generation picks one, and
    dcos-zk log shows each history's line."""
    import shutil

    repo = tmp_path / "repo"
    archiver(data, repo).step()
    shutil.move(data.layout.zk_dir, tmp_path / "old-zookeeper")  # a restore: a new data directory
    other = DataDir(data.layout.exhibitor_dir)
    other.snapshot(E1, {"/a": b"x"})
    txns = [zkfiles.create_txn(z, f"/other{z:x}", b"w", time=T0 + 60_000 + (z & 0xFFFF)) for z in range(E1 + 1, E1 + 8)]
    (other.layout.logs_dir / f"log.{E1 + 1:x}").write_bytes(zkfiles.log_file(txns))
    archiver(other, repo).step()
    first, second = generations(repo)
    with pytest.raises(UsageError, match=rf"zxid 0x100000005 names two histories: {first.name} .* and {second.name}"):
        pitr.plan(repository(repo), pitr.Target(zxid=E1 + 5))
    assert pitr.plan(repository(repo), pitr.Target(zxid=E1 + 5, generation=second.id)).generation.name == second.name
    assert pitr.plan(repository(repo), pitr.Target(zxid=E1 + 9)).generation.name == first.name  # only one has it
    lines = [(d["zxid"], d["path"], d["generation"]) for d in txlog.transactions(RepoIndex(repository(repo)))]
    assert (E1 + 5, f"/n{E1 + 5:x}", first.name) in lines and (E1 + 5, f"/other{E1 + 5:x}", second.name) in lines
    assert len(lines) == 10 + 7
    only = list(txlog.transactions(RepoIndex(repository(repo)), generation=second.name))
    assert {d["generation"] for d in only} == {second.name} and len(only) == 7


def test_an_archived_epoch_is_never_reused(data, tmp_path):
    """The supervisor's check before ZooKeeper starts raises an empty or older data directory's epoch to
    the repository's and says so; the archiver refuses a new history below it."""
    from dcos_backup.physical.continuous.start_check import before_zookeeper_starts
    from dcos_backup.physical.epochs import local_epoch

    repo = tmp_path / "repo"
    e2 = 2 * E1
    data.write(e2 + 1, range(e2 + 1, e2 + 5))  # the archived history reached epoch 2
    first = archiver(data, repo)
    for _ in range(3):
        first.step()
    assert RepoIndex(repository(repo)).max_epoch() == 2
    key = tmp_path / "repo.key"
    key.write_bytes(KEY.secret)
    key.chmod(0o600)
    empty = DataDir(tmp_path / "empty", myid="2")
    refused = Archiver(empty.layout, repository(repo), "master-2")
    empty.snapshot(0, {})
    refused.step()
    assert refused.state.state == "waiting" and "below epoch 2" in refused.state.message
    said = before_zookeeper_starts(empty.layout, str(repo), key)
    assert local_epoch(empty.layout) == 2 and any("raised this data directory's epoch from 0 to 2" in s for s in said)
    assert "raised" in empty.layout.activity_log.read_text()
    (empty.layout.snapshots_dir / "snapshot.0").unlink()
    said = before_zookeeper_starts(empty.layout, str(repo), key)
    assert any("EMPTY data directory" in s for s in said)
    refused.step()
    assert refused.state.state != "waiting" or "below epoch" not in refused.state.message


def test_the_log_of_a_repository_lists_each_archived_transaction_once(data, tmp_path):
    """``dcos-zk log``: every transaction the segments hold, in zxid order, filtered by path prefix."""
    repo = tmp_path / "repo"
    archiver(data, repo).step()
    data.write(E1 + 1, range(E1 + 11, E1 + 14))
    archiver(data, repo).step()
    index = RepoIndex(repository(repo), "master-1")
    docs = list(txlog.transactions(index))
    assert [(d["zxid"], d["type"], d["path"]) for d in docs] == [
        (z, "create", f"/n{z:x}") for z in range(E1 + 1, E1 + 14)
    ]
    assert [d["zxid"] for d in txlog.transactions(index, prefix=f"/n{E1 + 12:x}")] == [E1 + 12]


def _entries_by_scan(gen, zxid):
    """The index's replay entries found by scanning every segment (its bisecting version must agree)."""
    from dcos_backup.physical.formats import follows

    before = None
    for run in gen.runs():
        for i, seg in enumerate(run):
            previous = run[i - 1].last if i else before
            if seg.first <= zxid < seg.last or (follows(zxid, seg.first) and (previous is None or previous <= zxid)):
                yield run, i
                break
        before = run[-1].last


@pytest.mark.parametrize("seed", range(40))
def test_replay_entries_by_bisection_agree_with_a_scan(seed):
    """Random generations with holes and new epochs: ``_entries`` (bisecting) yields what a full scan does."""
    import random

    from dcos_backup.physical.continuous.index import Generation, SegmentRef

    rng = random.Random(seed)
    gen = Generation("master-1", "g")
    zxid = (1 << 32) + rng.randint(0, 5)
    for _ in range(rng.randint(1, 30)):
        roll = rng.random()
        if roll < 0.15:
            zxid += rng.randint(2, 20)  # a hole
        elif roll < 0.3:
            zxid = ((zxid >> 32) + 1 << 32) + 1  # a new epoch starts at counter 1
        last = zxid + rng.randint(0, 6)
        gen.segments.append(SegmentRef(f"k{zxid}", zxid, last, 0, 0, "0" * 64, 1))
        zxid = last + 1
    probes = {s.first + d for s in gen.segments for d in (-2, -1, 0, 1)} | {
        s.last + d for s in gen.segments for d in (-1, 0, 1)
    }
    for probe in sorted(probes):
        fast = [(run[0].first, i) for run, i in gen._entries(probe)]
        slow = [(run[0].first, i) for run, i in _entries_by_scan(gen, probe)]
        assert fast == slow, hex(probe)
