"""The restore-mark rules (issue 17 item 2): which master may start ZooKeeper on its data, and which must be
restored first. The e2e of the same on a real cluster is in tests/e2e/test_dcos_zk.py."""

from __future__ import annotations

import pytest

from dcos_backup.master import restore_mark
from dcos_backup.master.restore_mark import Peer, RestoreMark, conflict

M = RestoreMark("0x200000010", "abc", 100, "zk.tar.gz", 0.0)
SAME_REPACKED = RestoreMark("0x200000010", "abc", 100, "other-name.tar.gz", 5.0)  # same data, other archive
OTHER = RestoreMark("0x300000002", "def", 120, "zk.tar.gz", 0.0)
SERVED = RestoreMark("0x200000010", "abc", 100, "zk.tar.gz", 0.0, served=True)
DOWN, NOT_SERVING, SERVING = 1, 2, 3


def test_the_forgotten_master_running_first_is_named():
    reason = conflict(1, M, [Peer(2, DOWN, M), Peer(3, NOT_SERVING, None)])
    assert reason is not None and "stop master 3 and restore it" in reason and "--force" in reason


def test_a_forgotten_master_started_after_the_restored_ones_is_refused():
    reason = conflict(3, None, [Peer(1, NOT_SERVING, M), Peer(2, DOWN, None)])
    assert reason is not None and "restore master 3 from the same backup first" in reason
    assert conflict(3, OTHER, [Peer(1, NOT_SERVING, M)]) is not None


@pytest.mark.parametrize(
    "me,mine,peers",
    [
        (1, M, [Peer(2, DOWN, None), Peer(3, DOWN, None)]),  # the first restored master: nothing else runs
        (2, M, [Peer(1, NOT_SERVING, M), Peer(3, DOWN, M)]),  # the same restore
        (3, M, [Peer(1, SERVING, SERVED), Peer(2, SERVING, SERVED)]),  # joins the restore that took
        (2, SAME_REPACKED, [Peer(1, NOT_SERVING, M)]),  # same data from a re-packed archive
        (2, None, [Peer(1, SERVING, SERVED), Peer(3, SERVING, None)]),  # a rebuilt member after the restore took
        (2, None, [Peer(1, SERVING, None), Peer(3, SERVING, None)]),  # no restore anywhere
    ],
)
def test_masters_of_the_same_restore_or_after_it_start(me, mine, peers):
    assert conflict(me, mine, peers) is None


def test_mark_round_trip_and_served(tmp_path):
    path = tmp_path / "zookeeper.restore-mark"
    assert restore_mark.read(path) is None
    written = restore_mark.write(path, "0x10", "ff", 3, "a.tgz")
    assert path.stat().st_mode & 0o777 == 0o600
    assert restore_mark.read(path) == written and not written.served
    restore_mark.mark_served(path)
    assert restore_mark.read(path).served and restore_mark.read(path).identity == written.identity
    path.write_text("{not json")
    assert restore_mark.read(path) is None
