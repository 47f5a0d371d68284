"""A fuzzy snapshot's node may name an ACL id its ACL map lacks (ZooKeeper writes the map before the nodes;
an ACL made meanwhile gets the next id): the replay keeps the node, the transaction after the snapshot that
made the ACL sets it, and a tree in which one is still unresolved is refused, never written or restored."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from tests.zkfiles import snapshot_file

from dcos_backup.errors import IntegrityError
from dcos_backup.physical import formats
from dcos_backup.physical.formats import OpCode, Txn
from dcos_backup.physical.replay import Replay, TreeStore, data_file

SNAP = 0x100000005
NEW_ACL = [(1, "digest", "app:hash"), (31, "world", "anyone")]


def fuzzy_snapshot() -> bytes:
    """``/b`` names ACL 279, which the snapshot's map (only id 1) does not hold."""
    return snapshot_file({"/a": b"1", "/b": b"2"}, SNAP, acl_ids={"/b": 279})


def fuzzy(tmp_path: Path) -> TreeStore:
    store = TreeStore(tmp_path / "tree.db")
    store.load_snapshot(formats.SnapshotReader(io.BytesIO(fuzzy_snapshot()), f"snapshot.{SNAP:x}"))
    return store


def txn(zxid: int, kind: int, record: object) -> Txn:
    return Txn(0x51, 1, zxid, 1_700_000_000_000, kind, record, None)


def test_a_set_acl_after_the_snapshot_resolves_the_node(tmp_path):
    store = fuzzy(tmp_path)
    assert store.unresolved_acls == {"/b": 279}
    store.apply(txn(SNAP + 1, OpCode.setACL, formats.SetACL("/b", NEW_ACL, 1)))
    store.check_acls()
    assert store.node("/b").acl == [tuple(e) for e in NEW_ACL]
    assert store.node("/a").acl == [(31, "world", "anyone")]


def test_the_create_replayed_over_the_fuzzy_node_resolves_it(tmp_path):
    store = fuzzy(tmp_path)
    store.apply(txn(SNAP + 1, OpCode.create, formats.Create("/b", b"2", NEW_ACL, False, -1)))  # NODEEXISTS
    store.check_acls()
    assert store.node("/b").acl == [tuple(e) for e in NEW_ACL] and store.node("/b").data == b"2"


def test_a_node_deleted_after_the_snapshot_needs_no_acl(tmp_path):
    store = fuzzy(tmp_path)
    store.apply(txn(SNAP + 1, OpCode.delete, formats.Delete("/b")))
    store.check_acls()


def test_an_acl_nothing_defines_is_refused_by_the_replay_and_never_written(tmp_path):
    path = tmp_path / f"snapshot.{SNAP:x}"
    path.write_bytes(fuzzy_snapshot())
    store = TreeStore(tmp_path / "tree.db")
    run = Replay(store, data_file(SNAP, path))
    run.apply(txn(SNAP + 1, OpCode.setData, formats.SetData("/a", b"x", 1)), "log.1")
    assert not run.settled
    with pytest.raises(IntegrityError, match=r"node /b refers to ACL 279, which neither"):
        run.finish()
    with pytest.raises(IntegrityError, match="ACL 279"):
        store.write_snapshot(io.BytesIO(), SNAP + 1)
