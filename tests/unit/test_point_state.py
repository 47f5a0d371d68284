"""The pure parts of a restore from a point (issue 26 item 3): the replayed tree read as logical znodes in
canonical pre-order, persistent nodes only; the request's point and subtrees."""

from __future__ import annotations

import json

import pytest
from kazoo.security import ACL, Id

from dcos_backup.components import DEFAULT_COMPONENTS
from dcos_backup.errors import UsageError
from dcos_backup.jobs.point import NO_ARCHIVE, Point, PointBackups, ancestors, components_for, source_subtrees
from dcos_backup.logical.records import path_key
from dcos_backup.physical.continuous.state import PointInfo, PointState
from dcos_backup.physical.formats import Stat
from dcos_backup.physical.replay import TreeStore

OPEN = json.dumps([[31, "world", "anyone"]])
MINE = json.dumps([[1, "digest", "me:x"], [31, "ip", "127.0.0.1"]])
SESSION = 0x1234


@pytest.fixture
def state(tmp_path):
    rows = {
        "": (b"", OPEN, 0),
        "/a": (b"A", OPEN, 0),
        "/a/b": (b"\x00\xff", MINE, 0),
        "/a/b-c": (None, OPEN, 0),  # ZooKeeper's null data
        "/a/b/d": (b"d", OPEN, 0),
        "/a/b.e": (b"e", OPEN, 0),
        "/a/lock": (b"", OPEN, SESSION),  # ephemeral: left out
        "/a/box": (b"", OPEN, -(1 << 63)),  # container: left out with its subtree
        "/a/box/x": (b"x", OPEN, 0),
        "/a0": (b"", OPEN, 0),  # beside /a, not in it
    }
    store = TreeStore(tmp_path / "tree.db")
    store.db.executemany(
        "INSERT INTO nodes VALUES (?, ?, ?, ?, ?, 0, 0)",
        [
            (path, data, acl, Stat(3, 4, 5, 6, 1, 2, 1, owner, 7).pack(), owner)
            for path, (data, acl, owner) in rows.items()
        ],
    )
    info = PointInfo("0x104", None, "master-1/g1", "snapshot.100", 4, len(rows), "0", 1)
    yield PointState(store, info)
    store.close()


def test_a_subtree_streams_in_canonical_pre_order_persistent_nodes_only(state):
    nodes = list(state.nodes("/a"))
    paths = [n.path for n in nodes]
    assert paths == ["/a", "/a/b", "/a/b/d", "/a/b-c", "/a/b.e"]  # "/" sorts before "-" and "." here
    assert paths == sorted(paths, key=path_key)
    assert state.skipped_ephemeral == 2
    by_path = {n.path: n for n in nodes}
    assert by_path["/a/b"].data == b"\x00\xff"
    assert by_path["/a/b"].acl == (ACL(1, Id("digest", "me:x")), ACL(31, Id("ip", "127.0.0.1")))
    assert by_path["/a/b-c"].data == b""
    stat = by_path["/a/b/d"].stat
    assert stat is not None
    assert (stat.czxid, stat.mzxid, stat.version, stat.cversion, stat.aversion, stat.pzxid) == (3, 4, 1, 2, 1, 7)
    assert (stat.ephemeralOwner, stat.dataLength, stat.numChildren) == (0, 1, -1)
    assert [n.path for n in state.nodes("/")][:3] == ["/", "/a", "/a/b"]
    assert [n.path for n in state.nodes("/a/b")] == ["/a/b", "/a/b/d"]
    assert state.exists("/a0") and not state.exists("/nope")
    assert state.node("/a/b") == by_path["/a/b"] and state.node("/a/lock") is None and state.node("/x") is None
    assert ancestors("/marathon/state/app/a", "/marathon") == ["/marathon", "/marathon/state", "/marathon/state/app"]
    assert ancestors("/marathon", "/marathon") == []


def test_the_request_names_one_point_and_some_subtrees():
    assert Point(zxid="0x10").target().zxid == 16
    assert Point(time="2026-01-31T15:42:00Z").target().time_us == 1769874120 * 10**6
    for bad in (Point(), Point(time="2026-01-31T15:42:00Z", zxid="0x10")):
        with pytest.raises(UsageError, match="exactly one"):
            bad.target()
    with pytest.raises(UsageError, match="not an RFC 3339 time"):
        Point(time="yesterday").target()
    assert source_subtrees(["/marathon/b", "/marathon", "/marathon/a"], None) == ["/marathon"]
    assert source_subtrees([], "/marathon/x=/copy") == ["/marathon/x"]
    with pytest.raises(UsageError, match="needs --path"):
        source_subtrees([], None)
    assert components_for(["/marathon/x"], DEFAULT_COMPONENTS) == {"marathon": ("/marathon", ["/marathon/x"])}
    with pytest.raises(UsageError, match="not under any component's root"):
        components_for(["/chronos"], DEFAULT_COMPONENTS)


def test_without_a_repository_a_point_is_refused_before_anything(tmp_path):
    points = PointBackups(None, DEFAULT_COMPONENTS, "2.2.0", tmp_path)
    with pytest.raises(UsageError) as refused:
        points.build(None, Point(zxid="0x10"), ["/marathon"], None)  # type: ignore[arg-type]
    assert str(refused.value) == NO_ARCHIVE
