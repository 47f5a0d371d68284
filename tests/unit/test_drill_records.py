"""Restore drills' pure parts: the drill record's states, its signing, and the comparison of a scratch server's
tree with a replay (the ZooKeeper parts are in tests/e2e/test_drills.py and test_zk_drill.py)."""

from __future__ import annotations

import json

import pytest
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL, OPEN_ACL_UNSAFE, Id

from dcos_backup.catalog.models import BackupRecord, DrillRecord, Status
from dcos_backup.catalog.storage import LocalStorage
from dcos_backup.errors import Conflict
from dcos_backup.logical import ZNode
from dcos_backup.physical.continuous.drill import first_difference
from dcos_backup.physical.formats import Stat
from dcos_backup.physical.replay import TreeStore
from dcos_backup.storage.crypto import EncryptionKey


def test_a_drill_passes_or_fails_once_with_its_duration():
    drill = DrillRecord.start()
    assert drill.status == Status.RESTORING and drill.duration is None and len(drill.id) == 36
    drill.finish(42)
    assert drill.status == Status.READY and drill.nodes == 42 and drill.duration is not None and drill.duration >= 0
    with pytest.raises(Conflict):
        drill.fail("late")
    failed = DrillRecord.start()
    failed.fail("marathon: sha256 mismatch")
    assert failed.status == Status.ERROR and failed.reason == "marathon: sha256 mismatch"


def test_only_a_ready_backup_is_drilled():
    record = BackupRecord.start("unready", {"marathon": "/marathon"}, "2.2.0")
    with pytest.raises(Conflict, match="only STATUS_READY backups can be drilled"):
        record.check_drillable()


def test_drills_are_signed_and_records_from_before_drills_still_verify(tmp_path):
    """``drills`` defaults to empty, which the signature leaves out: a record signed before drills existed
    verifies; a drill appended outside the service breaks the signature."""
    key = EncryptionKey(bytes(range(32)))
    storage = LocalStorage(tmp_path, record_key=key)
    record = BackupRecord.start("signed", {"marathon": "/marathon"}, "2.2.0")
    storage.write(record)
    path = tmp_path / f"{record.id}.json"
    doc = json.loads(path.read_text())
    del doc["drills"]  # as an older version wrote it
    path.write_text(json.dumps(doc))
    assert storage.read(record.id).drills == []
    drill = DrillRecord.start()
    drill.finish(1)
    record.drills.append(drill)
    storage.write(record)
    assert storage.read(record.id).drills[0].status == Status.READY
    doc = json.loads(path.read_text())
    doc["drills"][0]["status"] = "STATUS_ERROR"
    path.write_text(json.dumps(doc))
    assert storage.entry(record.id).damaged is not None


def zstat(cversion: int, mzxid: int = 5) -> ZnodeStat:
    return ZnodeStat(1, mzxid, 0, 0, 0, cversion, 0, 0, 0, 0, 7)


@pytest.fixture
def replayed(tmp_path):
    store = TreeStore(tmp_path / "tree.db")
    store.db.executemany(
        "INSERT INTO nodes VALUES (?, ?, ?, ?, 0, 0, 0)",
        [
            ("", b"", json.dumps([[31, "world", "anyone"]]), Stat(0, 0, 0, 0, 0, 3, 0, 0, 0).pack()),
            ("/a", b"x", json.dumps([[31, "world", "anyone"]]), Stat(1, 5, 0, 0, 0, 4, 0, 0, 7).pack()),
        ],
    )
    yield store
    store.close()


def test_the_scratch_tree_must_equal_the_replay_node_for_node(replayed):
    root = ZNode("/", b"", tuple(OPEN_ACL_UNSAFE), zstat(2, mzxid=0)._replace(czxid=0, pzxid=0))
    same = ZNode("/a", b"x", tuple(OPEN_ACL_UNSAFE), zstat(9))
    assert first_difference(iter([root, same]), replayed) == (2, None)  # a higher counter, a lower root's: fine
    cases = {
        "data differs at /a": ZNode("/a", b"y", tuple(OPEN_ACL_UNSAFE), zstat(4)),
        "ACL differs at /a": ZNode("/a", b"x", (ACL(1, Id("world", "anyone")),), zstat(4)),
        "stat differs at /a": ZNode("/a", b"x", tuple(OPEN_ACL_UNSAFE), zstat(4, mzxid=6)),
        "child counter 3 is below the replayed 4 at /a": ZNode("/a", b"x", tuple(OPEN_ACL_UNSAFE), zstat(3)),
        "unexpected /b": ZNode("/b", b"", tuple(OPEN_ACL_UNSAFE), zstat(0)),
    }
    for reason, node in cases.items():
        count, difference = first_difference(iter([root, node]), replayed)
        assert count == 2 and difference is not None and difference.startswith(reason), (reason, difference)
