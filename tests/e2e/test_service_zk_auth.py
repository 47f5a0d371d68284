"""The backup service presents configured ZooKeeper credentials (``dcos-local up --zk-auth user:password``;
issue 14 item 6): nodes only that identity may read back up and restore with their ACLs exactly (digest and
world mixed), and a node it may not read fails the backup, naming the node, instead of a READY backup
that silently lacks it. Through ``dcos backup`` and the Admin Router of a real cluster."""

from __future__ import annotations

import json
import stat

import pytest
from kazoo.security import OPEN_ACL_UNSAFE, make_acl, make_digest_acl
from tests.helpers import ok, run_tool

from dcos_backup.logical import ZkSpec, connect, digest_auth, iter_tree

pytestmark = pytest.mark.e2e

OPS = "ops:s3cret"
OPS_ALL = make_digest_acl("ops", "s3cret", all=True)
BOB_ALL = make_digest_acl("bob", "builder", all=True)
WORLD_READ = make_acl("world", "anyone", read=True)
OPEN = list(OPEN_ACL_UNSAFE)


def dcos(cluster, *args: str):
    return run_tool("dcos", "backup", *args, cluster_dir=cluster.dir, timeout=180)


def tree(cluster) -> list[tuple]:
    spec = ZkSpec.parse(cluster.zk_hosts, auth=[digest_auth(OPS)])
    return [(n.path, n.data, n.acl) for n in iter_tree(spec, "/marathon")]


def test_the_service_backs_up_and_restores_acld_nodes_with_its_credentials(make_cluster):
    cluster = make_cluster(masters=1, zk_auth=OPS)
    secret = cluster.files.zk_auth
    assert secret.read_text() == OPS and stat.S_IMODE(secret.stat().st_mode) == 0o600
    ops = connect(cluster.zk_hosts, auth_data=[digest_auth(OPS)])
    try:
        ops.create("/marathon", b"root", acl=OPEN)
        ops.create("/marathon/ops-only", b"secret", acl=[OPS_ALL])
        ops.create("/marathon/ops-only/child", b"c", acl=[OPS_ALL, WORLD_READ])
        ops.create("/marathon/mixed", b"m", acl=[OPS_ALL, WORLD_READ, make_acl("ip", "127.0.0.0/8", read=True)])
        ops.create("/marathon/open", b"o", acl=OPEN)
        before = tree(cluster)

        backup_id = ok(dcos(cluster, "create", "--label", "with-auth", "--wait")).stdout.strip()
        shown = json.loads(ok(dcos(cluster, "show", backup_id)).stdout)
        assert shown["status"] == "STATUS_READY" and shown["component_status"]["marathon"]["nodes"] == len(before)

        ops.delete("/marathon/ops-only", recursive=True)
        ops.set_acls("/marathon/mixed", OPEN)
        ops.set("/marathon/mixed", b"changed")
        assert tree(cluster) != before
        restored = dcos(cluster, "restore", backup_id, "--wait")
        assert restored.returncode == 0 and "STATUS_READY" in restored.stderr, restored.stderr
        assert tree(cluster) == before  # data and ACLs, exactly

        # A node the service's identity may not read: the backup fails and says which.
        ops.create("/marathon/open/bob-only", b"b", acl=[BOB_ALL])
        failed = dcos(cluster, "create", "--label", "unreadable", "--wait")
        assert failed.returncode == 1 and "/marathon/open/bob-only" in failed.stderr, failed.stderr
        doc = json.loads(ok(dcos(cluster, "list", "unreadable", "--json")).stdout)[0]
        assert doc["status"] == "STATUS_ERROR" and "/marathon/open/bob-only" in doc["reason"]
    finally:
        ops.stop()
        ops.close()


def test_malformed_zk_auth_is_a_usage_error(tmp_path):
    result = run_tool("dcos-local", "up", "--dir", str(tmp_path / "c"), "--zk-auth", "no-colon")
    assert result.returncode == 2 and "user:password" in result.stderr and len(result.stderr.splitlines()) == 1
