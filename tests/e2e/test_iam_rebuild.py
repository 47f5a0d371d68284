"""Users and grants across a rebuilt ZooKeeper (issue 26 item 5), on one private single-master cluster with its
real service and Admin Router: an ``iam`` backup round-trips users, grants and the store's ACL; a removed
user's token and a revoked grant are refused at the next request (the service's cache never outlives a
changed store); and once the users' store is gone (deleted with the service's own credentials, as a rebuild
from logical backups leaves it) the service creates the bootstrap superuser again, says so in its log, and a
fresh login works while every other user's token is refused."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from tests.helpers import front_door, start_cluster, wait_for

from dcos_backup.api.auth import BACKUP_PERMISSION
from dcos_backup.api.paths import METRICS_PERMISSION
from dcos_backup.cli.client import BackupClient, Endpoint, backup_finished, latest_restore, restore_finished
from dcos_backup.errors import Forbidden, NotFound, Unauthorized
from dcos_backup.iam import znodes
from dcos_backup.iam.store import Credentials
from dcos_backup.iam.tokens import issue_token, load_private_key
from dcos_backup.iam.users import FULL, READ, SUPERUSER, Directory
from dcos_backup.local import cluster as local_cluster
from dcos_backup.local import security
from dcos_backup.local.spec import ClusterSpec
from dcos_backup.logical import connect

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSpec]:
    c = start_cluster(tmp_path_factory.mktemp("iam"), masters=1)
    yield c
    local_cluster.down(c)


@pytest.fixture(scope="module")
def service_zk(cluster1: ClusterSpec) -> Iterator[tuple[KazooClient, Credentials]]:
    """A session with the service's own identity: what may read, change and delete the users' store."""
    credentials = Credentials.read(cluster1.files.zk_credentials)
    client = connect(cluster1.zk_hosts, auth_data=credentials.auth_data)
    yield client, credentials
    client.stop()
    client.close()


def as_user(cluster: ClusterSpec, uid: str) -> BackupClient:
    """A client with a token of ``uid`` signed by the cluster's IAM key, whether or not ``uid`` exists."""
    token = issue_token(load_private_key(cluster.files.iam_private_key), uid)
    return BackupClient(Endpoint(cluster.master(1).admin_router_url, token, str(cluster.files.ca_cert)))


def users_now(client: KazooClient) -> Directory:
    client.sync(znodes.IAM)
    return Directory.model_validate_json(client.get(znodes.IAM)[0])


def change_users(cluster: ClusterSpec, change: Callable[[Directory], object]) -> None:
    with security.users(cluster.files, cluster.zk_hosts) as store:
        store.update(change)


def test_an_iam_backup_round_trips_users_grants_and_the_acl(cluster1, service_zk):
    zk, credentials = service_zk
    security.add_user(cluster1.files, cluster1.zk_hosts, "alice", [(BACKUP_PERMISSION, FULL)])
    security.add_user(cluster1.files, cluster1.zk_hosts, "carol", [(METRICS_PERMISSION, READ)])
    before, acl_before = users_now(zk), zk.get_acls(znodes.IAM)[0]
    assert acl_before == znodes.owner_acl(credentials, znodes.IAM)  # the service's alone: no world read

    admin = front_door(cluster1)
    backup = admin.wait(admin.create("users", ["iam"])["id"], backup_finished, interval=0.1, timeout=120)
    assert backup["status"] == "STATUS_READY" and sorted(backup["component_status"]) == ["iam"], backup

    def tamper(directory: Directory) -> None:
        directory.user("alice").grant(SUPERUSER)
        del directory.users["carol"]
        directory.add_user("mallory").grant(SUPERUSER)

    change_users(cluster1, tamper)
    admin.restore(backup["id"], [znodes.IAM])
    done = admin.wait(backup["id"], restore_finished, interval=0.1, timeout=120)
    assert latest_restore(done)["status"] == "STATUS_READY", latest_restore(done)
    assert users_now(zk) == before
    assert zk.get_acls(znodes.IAM)[0] == acl_before
    with pytest.raises(Unauthorized, match="unknown user 'mallory'"):
        as_user(cluster1, "mallory").list()


def test_a_removed_user_or_a_revoked_grant_is_refused_at_the_next_request(cluster1):
    security.add_user(cluster1.files, cluster1.zk_hosts, "dave", [(BACKUP_PERMISSION, FULL)])
    security.add_user(cluster1.files, cluster1.zk_hosts, "erin", [(BACKUP_PERMISSION, FULL)])
    dave, erin = as_user(cluster1, "dave"), as_user(cluster1, "erin")
    assert dave.list() is not None and erin.list() is not None  # both known to the service's cache now

    change_users(cluster1, lambda d: d.users.pop("dave"))
    with pytest.raises(Unauthorized, match="unknown user 'dave'"):
        dave.list()
    change_users(cluster1, lambda d: d.user("erin").grants.clear())
    with pytest.raises(Forbidden, match=f"user 'erin' lacks the permission {BACKUP_PERMISSION}"):
        erin.list()


def test_a_lost_users_store_brings_back_the_bootstrap_superuser_alone(cluster1, service_zk):
    zk, credentials = service_zk
    alice = as_user(cluster1, "alice")
    assert alice.list() is not None
    log = Path(cluster1.service["log_file"])
    logged_before = log.read_text().count("created it again with the bootstrap superuser")

    zk.delete(znodes.IAM)  # what a ZooKeeper rebuilt from logical backups (or emptied) leaves

    def recreated() -> Directory | None:
        try:
            return users_now(zk)
        except Exception:
            return None

    users = wait_for(recreated, timeout=30, what="the service to create the users' store again")
    assert list(users.users) == [security.BOOTSTRAP_USER]
    assert users.users[security.BOOTSTRAP_USER].allows(SUPERUSER)
    assert zk.get_acls(znodes.IAM)[0] == znodes.owner_acl(credentials, znodes.IAM)
    assert log.read_text().count("created it again with the bootstrap superuser bootstrapuser") == logged_before + 1
    assert front_door(cluster1).list() is not None  # a fresh login of bootstrapuser works
    with pytest.raises(Unauthorized, match="unknown user 'alice'"):
        alice.list()
    with pytest.raises(NotFound):
        security.login(cluster1.files, cluster1.zk_hosts, "alice")
