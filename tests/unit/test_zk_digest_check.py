"""How a replay weighs the tree digests ZooKeeper recorded: a snapshot's digest that disagrees is decided
by the next transaction's digest (ZooKeeper can record a stale one after a crash and resync)."""

from dataclasses import dataclass

import pytest

from dcos_backup.errors import IntegrityError
from dcos_backup.physical.formats import DIGEST_VERSION, SnapshotDigest
from dcos_backup.physical.replay import _DigestCheck


@dataclass
class Tree:
    digest: int


def check_after_snapshot(tree: Tree, recorded: int) -> _DigestCheck:
    check = _DigestCheck(tree, SnapshotDigest(zxid=0x105, version=DIGEST_VERSION, digest=recorded))  # type: ignore[arg-type]
    check.after(0x100)  # the snapshot's own zxid: inside its fuzzy range
    check.after(0x105)  # the zxid its digest was recorded at
    return check


def test_a_snapshot_digest_that_matches_is_counted():
    check = check_after_snapshot(Tree(digest=7), recorded=7)
    check.finish()
    assert check.checked == 1


def test_a_stale_snapshot_digest_is_cleared_by_the_next_transaction():
    tree = Tree(digest=7)
    check = check_after_snapshot(tree, recorded=8)
    tree.digest = 9
    check.after(0x106, (DIGEST_VERSION, 9))
    check.finish()
    assert check.doubt is None and check.checked == 1


def test_a_wrong_tree_is_refused_at_the_next_transaction():
    tree = Tree(digest=7)
    check = check_after_snapshot(tree, recorded=8)
    with pytest.raises(IntegrityError, match="zxid 0x106"):
        check.after(0x106, (DIGEST_VERSION, 10))


def test_a_snapshot_digest_no_transaction_confirms_is_refused():
    check = check_after_snapshot(Tree(digest=7), recorded=8)
    with pytest.raises(IntegrityError, match="the snapshot's zxid 0x105"):
        check.finish()
