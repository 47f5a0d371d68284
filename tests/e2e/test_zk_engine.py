"""The pipelined tree engine (dcos_backup.logical) against the real shared ensemble, each test in a chroot."""

from __future__ import annotations

import random
import threading

import pytest
from kazoo.exceptions import NoNodeError
from kazoo.security import OPEN_ACL_UNSAFE, make_acl

from dcos_backup.errors import ZooKeeperUnavailable
from dcos_backup.logical import ReadStats, ZkSpec, ZNode, apply_tree, compare_tree, connect, iter_tree, path_key
from dcos_backup.logical.protocol import GET_CHILDREN, GET_DATA, ErrorResult, MultiRead
from dcos_backup.logical.reader import TreeReader
from dcos_backup.logical.wire import OFFSET, Connection

pytestmark = pytest.mark.e2e

OPEN = tuple(OPEN_ACL_UNSAFE)
LOOPBACK_ONLY = (make_acl("ip", "127.0.0.0/8", all=True), make_acl("world", "anyone", read=True))
NO_DELETE = (make_acl("world", "anyone", read=True, write=True, create=True, admin=True),)


@pytest.fixture
def hosts(zk_hosts, zk) -> str:
    """The connect string of the test's chroot: the engine is given where to connect, not a client."""
    return zk_hosts + zk.chroot


def tree(hosts, root="/t"):
    return [(n.path, n.data, n.acl) for n in iter_tree(hosts, root)]


def sample_nodes() -> list[ZNode]:
    nodes = [
        ZNode("/t", b"root", OPEN),
        ZNode("/t/binary", bytes(range(256)) * 3, OPEN),
        ZNode("/t/empty", b"", OPEN),
        ZNode("/t/large", b"L" * 900_000, OPEN),
        ZNode("/t/locked", b"secret", LOOPBACK_ONLY),
        ZNode("/t/locked/child", b"c", OPEN),
        ZNode("/t/no-delete", b"", NO_DELETE),
        ZNode("/t/ünïcødé-名前", "värde".encode(), OPEN),
    ]
    deep = "/t/deep"
    for i in range(12):
        nodes.append(ZNode(deep, f"level {i}".encode(), OPEN))
        deep += f"/d{i}"
    for i in range(300):
        nodes.append(ZNode(f"/t/wide/n{i:04d}", f"{i}".encode() * (i % 7), OPEN))
    nodes.append(ZNode("/t/wide", b"", OPEN))
    return sorted(nodes, key=lambda n: path_key(n.path))


def test_apply_then_read_round_trips_byte_for_byte(hosts):
    wanted = sample_nodes()
    stats = apply_tree(hosts, "/t", wanted)
    assert stats.created == len(wanted)
    read = ReadStats()
    assert tree(hosts) == [(n.path, n.data, n.acl) for n in wanted]
    list(iter_tree(hosts, "/t", stats=read))
    assert read.nodes == len(wanted) and read.bytes == sum(len(n.data) for n in wanted)
    assert read.max_zxid >= read.min_zxid > 0
    assert compare_tree(hosts, "/t", wanted) is None
    # applying again changes nothing
    again = apply_tree(hosts, "/t", wanted)
    assert (again.created, again.updated, again.deleted, again.unchanged) == (0, 0, 0, len(wanted))


def test_apply_creates_updates_deletes_and_leaves_ephemerals(zk, hosts):
    base = sample_nodes()
    apply_tree(hosts, "/t", base)
    zk.create("/t/wide/ephemeral", b"mine", ephemeral=True)
    zk.create("/t/extra/sub/leaf", b"x", makepath=True)
    zk.set("/t/binary", b"changed")
    zk.set_acls("/t/empty", list(LOOPBACK_ONLY))
    zk.delete("/t/deep/d0", recursive=True)
    stats = apply_tree(hosts, "/t", base)
    assert stats.deleted == 3 and stats.updated == 2 and stats.created == 11
    assert compare_tree(hosts, "/t", base) is None
    assert zk.get("/t/wide/ephemeral")[0] == b"mine"


def test_compare_finds_each_kind_of_difference(zk, hosts):
    base = sample_nodes()
    apply_tree(hosts, "/t", base)
    zk.set("/t/binary", b"x")
    assert compare_tree(hosts, "/t", base) == "data differs at /t/binary"
    apply_tree(hosts, "/t", base)
    zk.set_acls("/t/empty", list(LOOPBACK_ONLY))
    assert compare_tree(hosts, "/t", base) == "ACL differs at /t/empty"
    apply_tree(hosts, "/t", base)
    zk.create("/t/zzz")
    assert compare_tree(hosts, "/t", base) == "unexpected /t/zzz"
    zk.delete("/t/zzz")
    zk.delete("/t/wide/n0299")
    assert compare_tree(hosts, "/t", base) == "missing /t/wide/n0299"


def test_random_trees_round_trip(hosts):
    rng = random.Random(1234)
    for round_ in range(4):
        paths = {"/t"}
        for _ in range(rng.randint(1, 150)):
            parent = rng.choice(sorted(paths))
            paths.add(f"{parent}/{rng.choice('abcxyz')}{rng.randint(0, 9)}")
        wanted = sorted(
            (ZNode(p, rng.randbytes(rng.randint(0, 64)), rng.choice([OPEN, LOOPBACK_ONLY])) for p in paths),
            key=lambda n: path_key(n.path),
        )
        apply_tree(hosts, "/t", wanted)
        assert compare_tree(hosts, "/t", wanted) is None, f"round {round_}"


def test_missing_root_reads_as_empty_and_deleted_nodes_are_tolerated(zk, hosts):
    assert tree(hosts, "/nothing-here") == []
    apply_tree(hosts, "/t", [ZNode("/t", b"", OPEN)] + [ZNode(f"/t/n{i:05d}", b"x", OPEN) for i in range(2000)])
    stop = threading.Event()

    def delete_some():
        for i in range(0, 2000, 3):
            if stop.is_set():
                return
            zk.delete(f"/t/n{i:05d}")

    deleter = threading.Thread(target=delete_some)
    deleter.start()
    paths = [p for p, _, _ in tree(hosts)]
    stop.set()
    deleter.join()
    assert paths == sorted(paths, key=path_key) and len(set(paths)) == len(paths)
    assert {f"/t/n{i:05d}" for i in range(1, 2000, 3)} <= set(paths)


def test_lost_connection_mid_read_raises_and_yields_no_complete_stream(hosts):
    apply_tree(hosts, "/t", [ZNode("/t", b"", OPEN)] + [ZNode(f"/t/n{i:05d}", b"x" * 100, OPEN) for i in range(3000)])
    conn = Connection(hosts)
    reader = iter(TreeReader(conn, "/t"))
    got = [next(reader) for _ in range(10)]
    assert got
    conn._sock.shutdown(2)  # the network goes away under the reader
    with pytest.raises(ZooKeeperUnavailable, match="lost the ZooKeeper connection"):
        for _ in reader:
            pass


def test_multi_read_answers_each_op_with_a_typed_result(zk, hosts):
    zk.create("/m/a", b"\x00data", makepath=True)
    zk.create("/m/b", b"")
    zk.create("/m/b/c", b"")
    with Connection(hosts) as conn:
        ops = [
            (GET_DATA, "/m/a"),
            (GET_CHILDREN, "/m"),
            (GET_DATA, "/m/gone"),
            (GET_CHILDREN, "/m/a"),
            (GET_DATA, "/m/b"),
        ]
        conn.queue(MultiRead([(kind, conn.full_path(path)) for kind, path in ops]))
        reply = next(conn.replies())
    assert reply.err == 0
    a, m, gone, a_children, b = MultiRead.deserialize(reply.body, OFFSET)
    assert a == (b"\x00data", zk.exists("/m/a"))  # DataResult: (data, stat), as kazoo's GetData
    assert type(m) is list and sorted(m) == ["a", "b"]  # ChildrenResult: names, as kazoo's GetChildren
    assert type(gone) is ErrorResult and isinstance(gone.exception(), NoNodeError)
    assert a_children == []
    data, stat = b
    assert data == b"" and stat.numChildren == 1


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(ZooKeeperUnavailable, match="cannot connect"):
        Connection(ZkSpec.parse("127.0.0.1:1", session_timeout=1))
    with pytest.raises(ZooKeeperUnavailable):
        connect("127.0.0.1:1", timeout=1)
