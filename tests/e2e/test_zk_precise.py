"""Precise restores with the engine (issue 14): a difference without writing, part of a tree, another root,
sequential counters; on the shared ensemble, each test in a chroot."""

from __future__ import annotations

import pytest
from kazoo.security import OPEN_ACL_UNSAFE, make_acl

from dcos_backup.catalog.archive import ArchiveWriter, read_archive
from dcos_backup.errors import NotFound
from dcos_backup.logical import (
    ApplyStats,
    Change,
    PathMap,
    ZNode,
    apply_tree,
    compare_tree,
    diff_tree,
    iter_diff,
    iter_tree,
    missing_subtrees,
    path_key,
)

pytestmark = pytest.mark.e2e

OPEN = tuple(OPEN_ACL_UNSAFE)
READ_ONLY = (make_acl("world", "anyone", read=True),)


@pytest.fixture
def hosts(zk_hosts, zk) -> str:
    return zk_hosts + zk.chroot


def build(*paths: str, root: str = "/t") -> list[ZNode]:
    return sorted((ZNode(p, f"data of {p}".encode(), OPEN) for p in {root, *paths}), key=lambda n: path_key(n.path))


BASE = build(
    "/t/a", "/t/a/1", "/t/a/2", "/t/b", "/t/b/x", "/t/b/x/deep", "/t/c", "/t/c/keep", "/t/d", "/t/d/1", "/t/d/2"
)


def values(hosts, root="/t"):
    return [(n.path, n.data, n.acl) for n in iter_tree(hosts, root)]


def full_state(hosts, root="/t"):
    """Everything a write would change, stats included (versions, zxids, child counters)."""
    return [(n.path, n.data, n.acl, n.stat) for n in iter_tree(hosts, root)]


def damage(zk) -> None:
    zk.set("/t/a/1", b"changed")
    zk.set_acls("/t/c", [*READ_ONLY, make_acl("ip", "127.0.0.0/8", all=True)])
    zk.delete("/t/b", recursive=True)
    zk.create("/t/e/new/leaf", b"intruder", makepath=True)
    zk.create("/t/c/extra", b"")


def test_a_diff_lists_what_apply_would_change_in_pre_order_and_writes_nothing(zk, hosts):
    apply_tree(hosts, "/t", BASE)
    damage(zk)
    before = full_state(hosts)
    diff = diff_tree(hosts, "/t", BASE)
    assert full_state(hosts) == before  # not a version, zxid or counter moved
    assert diff.changes == [
        Change("update", "/t/a/1"),
        Change("create", "/t/b"),
        Change("create", "/t/b/x"),
        Change("create", "/t/b/x/deep"),
        Change("update", "/t/c"),
        Change("delete", "/t/c/extra"),
        Change("delete", "/t/e"),
        Change("delete", "/t/e/new"),
        Change("delete", "/t/e/new/leaf"),
    ]
    counts = {"created": 3, "updated": 2, "deleted": 4, "unchanged": len(BASE) - 5, "counters": 0}
    assert {k: diff.to_dict()[k] for k in counts} == counts and diff.left_out == 0
    assert diff.to_dict()["changes"][0] == {"op": "update", "path": "/t/a/1"}
    capped = diff_tree(hosts, "/t", BASE, limit=4)
    assert capped.changes == diff.changes[:4] and capped.left_out == 5 and capped.stats == diff.stats
    applied = apply_tree(hosts, "/t", BASE)
    assert applied.to_dict() == diff.stats.to_dict()  # the same merge
    assert diff_tree(hosts, "/t", BASE).changes == []


def test_iter_diff_streams_the_changes_and_fills_the_counts_at_the_end(hosts):
    wanted = build(*(f"/t/n{i:05d}" for i in range(5000)))
    stats = ApplyStats()
    changes = iter_diff(hosts, "/t", wanted, stats=stats)
    assert next(changes) == Change("create", "/t") and stats.created >= 1
    assert sum(1 for _ in changes) == 5000 and stats.created == 5001
    assert values(hosts) == []


def test_paths_restore_those_subtrees_and_nothing_else(zk, hosts):
    apply_tree(hosts, "/t", BASE)
    damage(zk)
    zk.set("/t/d/2", b"also changed")
    untouched = {p: v for p, *v in values(hosts) if not p.startswith(("/t/a", "/t/b"))}
    stats = apply_tree(hosts, "/t", BASE, paths=["/t/b", "/t/a", "/t/b/x"])
    assert (stats.created, stats.updated, stats.deleted) == (3, 1, 0)
    assert compare_tree(hosts, "/t", BASE, paths=["/t/a", "/t/b"]) is None
    assert {p: v for p, *v in values(hosts) if not p.startswith(("/t/a", "/t/b"))} == untouched
    assert compare_tree(hosts, "/t", BASE, paths=["/t/d"]) == "data differs at /t/d/2"
    diff = diff_tree(hosts, "/t", BASE, paths=["/t/c", "/t/d/2"])
    assert diff.changes == [Change("update", "/t/c"), Change("delete", "/t/c/extra"), Change("update", "/t/d/2")]


def test_a_path_whose_parents_are_gone_brings_them_back_from_the_stream(zk, hosts):
    apply_tree(hosts, "/t", BASE)
    zk.delete("/t/b", recursive=True)
    zk.set("/t", b"root changed")
    apply_tree(hosts, "/t", BASE, paths=["/t/b/x/deep"])
    got = dict((p, d) for p, d, _ in values(hosts))
    assert [p for p in got if p.startswith("/t/b")] == ["/t/b", "/t/b/x", "/t/b/x/deep"]
    assert got["/t/b/x"] == b"data of /t/b/x" and got["/t"] == b"root changed"  # existing parents untouched


def test_a_path_the_stream_does_not_hold_is_refused_before_anything_is_written(zk, hosts):
    apply_tree(hosts, "/t", BASE)
    damage(zk)
    before = full_state(hosts)
    assert missing_subtrees(BASE, ["/t/a", "/t/nope", "/t/b/x"]) == ["/t/nope"]
    for run in (apply_tree, diff_tree):
        with pytest.raises(NotFound, match="does not hold /t/nope"):
            run(hosts, "/t", BASE, paths=["/t/nope", "/t/zzz"])
    assert full_state(hosts) == before


def test_a_mapped_restore_lands_at_dst_and_leaves_src_alone(zk, hosts):
    apply_tree(hosts, "/t", BASE)
    damage(zk)
    damaged = full_state(hosts)
    mapping = PathMap.parse("/t/b=/copies/yesterday/b")
    stats = apply_tree(hosts, mapping.dst, mapping.map_nodes(BASE))
    assert stats.created == 2 + 3  # the missing parents /copies, /copies/yesterday and the copy itself
    assert values(hosts, "/copies") == [
        ("/copies", b"", OPEN),
        ("/copies/yesterday", b"", OPEN),
        ("/copies/yesterday/b", b"data of /t/b", OPEN),
        ("/copies/yesterday/b/x", b"data of /t/b/x", OPEN),
        ("/copies/yesterday/b/x/deep", b"data of /t/b/x/deep", OPEN),
    ]
    assert full_state(hosts) == damaged  # SRC's tree (where /t/b is gone) is as it was
    again = apply_tree(hosts, mapping.dst, mapping.map_nodes(BASE))
    assert again.to_dict() == ApplyStats(unchanged=3).to_dict()


def test_an_empty_stream_deletes_the_root_as_before(zk, hosts):
    apply_tree(hosts, "/t", BASE)
    assert apply_tree(hosts, "/t", []).deleted == len(BASE)
    assert values(hosts) == [] and diff_tree(hosts, "/t", []).changes == []


def test_a_restored_parent_names_new_sequential_children_after_the_restored_ones(zk, hosts, tmp_path):
    """Back up a parent whose counter is high, recreate it, restore: a new sequential child never takes a
    restored child's name and sorts after them all."""
    zk.create("/q")
    for i in range(300):
        created = zk.create("/q/item-", b"%d" % i, sequence=True)
        if i % 25:
            zk.delete(created)
    kept = sorted(zk.get_children("/q"))
    assert kept[-1] == "item-0000000275" and zk.exists("/q").cversion == 2 * 300 - len(kept)
    archive = tmp_path / "q.dcosbkp"
    with open(archive, "wb") as raw:
        writer = ArchiveWriter(raw, "q", "/q")
        for node in iter_tree(hosts, "/q"):
            writer.add(node)
        writer.close()
    zk.delete("/q", recursive=True)
    zk.create("/q")
    zk.create("/q/item-", b"after the disaster", sequence=True)  # item-0000000000: one of the restored names
    with open(archive, "rb") as raw:
        stats = apply_tree(hosts, "/q", read_archive(raw))
    assert (stats.counters, stats.counter_children) == (1, 300 - len(kept))
    zk.sync("/q")  # this session's member may not have applied the restore's writes yet (they came from another)
    assert sorted(zk.get_children("/q")) == kept
    new = zk.create("/q/item-", b"new", sequence=True).rsplit("/", 1)[1]
    assert new not in kept and new > kept[-1]
    assert new == "item-0000000300"
