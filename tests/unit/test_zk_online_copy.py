"""The online copy against a data directory caught mid-write: a snapshot still being written, a log
ending in a torn record, a log that rolls over between listing and copying."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from tests.zkfiles import create_txn, log_file, snapshot_file

from dcos_backup.errors import NotFound
from dcos_backup.master.layout import MasterLayout
from dcos_backup.physical import formats, online
from dcos_backup.physical.replay import TreeStore, replay


def live_dir(root: Path) -> MasterLayout:
    live = MasterLayout(root)
    snaps, logs = live.snapshots_dir, live.logs_dir
    snaps.mkdir(parents=True)
    logs.mkdir(parents=True)
    (snaps / "snapshot.1").write_bytes(snapshot_file({"/a": b"1"}, zxid=1))
    # A newer snapshot still being written: no seal yet.
    (snaps / "snapshot.6").write_bytes(snapshot_file({"/a": b"1", "/b": b"2"}, zxid=6)[:-40])
    (snaps / "currentEpoch").write_text("1")
    (snaps / "acceptedEpoch").write_text("1")
    txns = [create_txn(z, f"/n{z}", b"x" * z) for z in range(2, 11)]
    torn = log_file([create_txn(11, "/n11", b"torn")], padding=0)[16:-6]
    (logs / "log.2").write_bytes(log_file(txns, padding=0) + torn)
    return live


def rebuilt(data: MasterLayout) -> tuple[list[str], str]:
    with tempfile.TemporaryDirectory() as work:
        store = TreeStore(Path(work) / "t.sqlite")
        result = replay(data, store)
        paths = [n.path for n in store.iter_nodes("/")]
        store.close()
    return paths, result.last_zxid


def test_the_copy_skips_the_unsealed_snapshot_and_the_torn_record(tmp_path: Path):
    live, copy = live_dir(tmp_path / "live"), MasterLayout(tmp_path / "copy")
    copied = online.copy_online(live, copy)
    assert copied.snapshot == "snapshot.1" and copied.logs == ["log.2"] and copied.last_zxid == 10
    paths, last = rebuilt(copy)
    assert last == "0xa"
    assert "/n10" in paths and "/n11" not in paths and "/a" in paths
    records, end = formats.read_log(copy.logs_dir / "log.2")
    assert end.reason == "padding" and len(records) == 9
    assert (copy.snapshots_dir / "currentEpoch").read_text() == "1"


def test_a_log_that_rolled_over_is_copied_again_in_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    live, copy = live_dir(tmp_path / "live"), MasterLayout(tmp_path / "copy")
    logs = live.logs_dir
    real_copy = online.copy_log_prefix
    rolled = []

    def copy_then_roll(source: Path, target: Path) -> formats.LogEnd:
        end = real_copy(source, target)
        if not rolled:  # the server finishes log.2 (11, 12) and opens log.d while we copy
            rolled.append(True)
            (logs / "log.2").write_bytes(log_file([create_txn(z, f"/n{z}", b"y") for z in range(2, 13)], 0))
            (logs / "log.d").write_bytes(log_file([create_txn(13, "/n13", b"z")], 0))
        return end

    monkeypatch.setattr(online, "copy_log_prefix", copy_then_roll)
    copied = online.copy_online(live, copy)
    assert copied.logs == ["log.2", "log.d"] and copied.last_zxid == 13
    paths, last = rebuilt(copy)
    assert last == "0xd" and {"/n11", "/n12", "/n13"} <= set(paths)


def test_no_complete_snapshot_is_a_clear_error(tmp_path: Path):
    live = live_dir(tmp_path / "live")
    (live.snapshots_dir / "snapshot.1").unlink()
    with pytest.raises(NotFound, match="no complete snapshot"):
        online.copy_online(live, MasterLayout(tmp_path / "copy"))


def test_replay_starts_from_the_newest_sealed_snapshot_like_zookeeper(tmp_path: Path):
    live, copy = live_dir(tmp_path / "live"), MasterLayout(tmp_path / "copy")
    online.copy_online(live, copy)
    # A crash in the middle of writing a newer snapshot leaves it without its seal: ZooKeeper skips it.
    (copy.snapshots_dir / "snapshot.9").write_bytes(snapshot_file({"/z": b"9"}, zxid=9)[:-30])
    paths, last = rebuilt(copy)
    assert last == "0xa" and "/z" not in paths and "/n10" in paths
