"""ACLs and credentials (issue 14 item 6): the engine's sessions present digest credentials, digest and world
ACLs mixed are restored exactly, and a znode the credentials may not read fails the read naming it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient
from kazoo.security import OPEN_ACL_UNSAFE, make_acl, make_digest_acl

from dcos_backup.errors import AccessDenied, UsageError
from dcos_backup.logical import ZkSpec, ZNode, apply_tree, compare_tree, connect, diff_tree, digest_auth, iter_tree

pytestmark = pytest.mark.e2e

ALICE = "alice:wonderland"
OPEN = list(OPEN_ACL_UNSAFE)
ALICE_ALL = make_digest_acl("alice", "wonderland", all=True)
BOB_ALL = make_digest_acl("bob", "builder", all=True)
WORLD_READ = make_acl("world", "anyone", read=True)


@pytest.fixture
def alice(zk_hosts, zk) -> Iterator[KazooClient]:
    """A client of the test's chroot that presents alice's credentials; it removes what only alice may."""
    client = connect(zk_hosts + zk.chroot, auth_data=[("digest", ALICE)])
    yield client
    for top in ("/acl", "/bob"):
        if client.exists(top):
            client.set_acls(top, OPEN)
            for child in client.get_children(top):
                client.set_acls(f"{top}/{child}", OPEN)
            client.delete(top, recursive=True)
    client.stop()
    client.close()


def mixed_tree(client: KazooClient) -> None:
    client.create("/acl", b"top", acl=OPEN)
    client.create("/acl/alice-only", b"secret", acl=[ALICE_ALL])
    client.create("/acl/alice-only/child", b"c", acl=[ALICE_ALL, WORLD_READ])
    client.create("/acl/mixed", b"m", acl=[ALICE_ALL, WORLD_READ, make_acl("ip", "127.0.0.0/8", read=True)])
    client.create("/acl/open", b"o", acl=OPEN)


def test_digest_and_world_acls_round_trip_exactly_with_credentials(zk_hosts, zk, alice):
    mixed_tree(alice)
    spec = ZkSpec.parse(zk_hosts + zk.chroot, auth=[digest_auth(ALICE)])
    backup = list(iter_tree(spec, "/acl"))
    assert [(n.path, n.acl) for n in backup][1:3] == [
        ("/acl/alice-only", (ALICE_ALL,)),
        ("/acl/alice-only/child", (ALICE_ALL, WORLD_READ)),
    ]
    alice.set_acls("/acl/alice-only", OPEN)
    alice.delete("/acl/alice-only", recursive=True)
    alice.set_acls("/acl/mixed", OPEN)
    alice.set("/acl/mixed", b"changed")
    stats = apply_tree(spec, "/acl", backup)
    assert (stats.created, stats.updated) == (2, 1)
    assert compare_tree(spec, "/acl", backup) is None
    assert [(n.path, n.data, n.acl) for n in iter_tree(spec, "/acl")] == [(n.path, n.data, n.acl) for n in backup]
    assert alice.get_acls("/acl/alice-only")[0] == [ALICE_ALL]


def test_a_node_the_credentials_may_not_read_fails_the_read_naming_it(zk_hosts, zk, alice):
    mixed_tree(alice)
    without = zk_hosts + zk.chroot
    with pytest.raises(AccessDenied, match=r"not allowed to read /acl/alice-only \((getData|getACL): NoAuth\)"):
        list(iter_tree(without, "/acl"))
    as_bob = ZkSpec.parse(without, auth=[digest_auth("bob:builder")])
    with pytest.raises(AccessDenied, match="/acl/alice-only"):
        diff_tree(as_bob, "/acl", [])
    # alice may read everything, bob's node included once it is hers to read: the read completes
    alice.create("/bob", b"", acl=[BOB_ALL, make_acl("digest", ALICE_ALL.id.id, read=True, admin=True)])
    assert [n.path for n in iter_tree(ZkSpec.parse(without, auth=[digest_auth(ALICE)]), "/bob")] == ["/bob"]


def test_writing_where_the_credentials_may_not_is_a_clear_error(zk_hosts, zk, alice):
    alice.create("/acl", b"", acl=[ALICE_ALL, WORLD_READ])
    wanted = [ZNode("/acl", b"", (ALICE_ALL, WORLD_READ)), ZNode("/acl/new", b"x", tuple(OPEN))]
    with pytest.raises(AccessDenied, match=r"not allowed to create .*/acl/new \(NoAuth\)"):
        apply_tree(zk_hosts + zk.chroot, "/acl", wanted)
    assert apply_tree(ZkSpec.parse(zk_hosts + zk.chroot, auth=[digest_auth(ALICE)]), "/acl", wanted).created == 1


@pytest.mark.parametrize("credentials", ["alice", ":secret", ""])
def test_malformed_credentials_are_a_usage_error(credentials):
    with pytest.raises(UsageError, match="expected user:password"):
        digest_auth(credentials)


def test_credentials_stay_out_of_reprs_and_messages():
    spec = ZkSpec.parse("127.0.0.1:1", auth=[digest_auth("alice:very-secret")])
    assert "very-secret" not in repr(spec) and "very-secret" not in str(spec)
