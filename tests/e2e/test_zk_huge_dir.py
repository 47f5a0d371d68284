"""A directory whose child list is larger than ZooKeeper's default packet limit (jute.maxbuffer, 1 MiB)
backs up into an archive and restores byte for byte (issue 14 item 7: zkcopy failed with "Packet len out of
range" on 93k children; that limit is the Java client's, on what it reads, and ZooKeeper's server does not
apply it to its replies)."""

from __future__ import annotations

import pytest
from kazoo.security import OPEN_ACL_UNSAFE

from dcos_backup.catalog.archive import ArchiveWriter, read_archive
from dcos_backup.logical import ReadStats, ZNode, apply_tree, compare_tree, iter_tree
from dcos_backup.logical.protocol import GET_CHILDREN, MultiRead
from dcos_backup.logical.wire import OFFSET, Connection

pytestmark = pytest.mark.e2e

OPEN = tuple(OPEN_ACL_UNSAFE)
CHILDREN = 60_000
JUTE_MAXBUFFER = 0xFFFFF  # ZooKeeper's default


@pytest.fixture
def hosts(zk_hosts, zk) -> str:
    return zk_hosts + zk.chroot


def huge_directory() -> list[ZNode]:
    children = (ZNode(f"/huge/{i:040d}", b"%d" % i, OPEN) for i in range(CHILDREN))  # 40-byte names
    return [ZNode("/huge", b"the directory", OPEN), *children]


def test_a_directory_beyond_the_packet_limit_backs_up_and_restores(hosts, tmp_path):
    wanted = huge_directory()
    assert apply_tree(hosts, "/huge", wanted).created == len(wanted)
    with Connection(hosts) as conn:  # the child list is one reply, well past jute.maxbuffer
        conn.queue(MultiRead([(GET_CHILDREN, conn.full_path("/huge"))]))
        reply = next(conn.replies())
    assert len(reply.body) > 2 * JUTE_MAXBUFFER and len(MultiRead.deserialize(reply.body, OFFSET)[0]) == CHILDREN

    archive = tmp_path / "huge.dcosbkp"
    stats = ReadStats()
    with open(archive, "wb") as raw:
        writer = ArchiveWriter(raw, "huge", "/huge")
        for node in iter_tree(hosts, "/huge", stats=stats):
            writer.add(node)
        writer.close()
    assert stats.nodes == len(wanted)

    apply_tree(hosts, "/huge", [])
    with open(archive, "rb") as raw:
        restored = apply_tree(hosts, "/huge", read_archive(raw))
    assert restored.created == len(wanted) and restored.counters == 0
    with open(archive, "rb") as raw:
        assert compare_tree(hosts, "/huge", read_archive(raw)) is None
    assert [(n.path, n.data) for n in iter_tree(hosts, "/huge")] == [(n.path, n.data) for n in wanted]
    assert apply_tree(hosts, "/huge", []).deleted == len(wanted)
