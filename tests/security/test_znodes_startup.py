"""What the service does at start with the znodes it finds under ``/dcos-backup`` (issue 24, item 1):
containers an older version made open are repaired (logged once), nodes it did not make are removed (named
in the log), and a root another identity owns is refused. On a fresh chroot of the shared ensemble."""

from __future__ import annotations

import logging
import secrets
import uuid

import pytest
from kazoo.exceptions import NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE, make_digest_acl

from dcos_backup.iam import znodes
from dcos_backup.iam.store import Credentials
from dcos_backup.logical import connect

pytestmark = pytest.mark.e2e


@pytest.fixture
def chroot(cluster):
    path = f"/znodes-{uuid.uuid4().hex[:10]}"
    admin = connect(cluster.zk_hosts)
    admin.create(path)
    yield cluster.zk_hosts + path
    admin.delete(path, recursive=True)  # the test's service session removes its own nodes first
    admin.stop()
    admin.close()


def session(hosts: str, credentials: Credentials | None = None):
    return connect(hosts, auth_data=credentials.auth_data) if credentials else connect(hosts)


def test_an_older_open_tree_is_repaired_once_and_planted_nodes_removed(chroot, caplog):
    credentials = Credentials("dcos-backup", secrets.token_urlsafe(16))
    old, service = session(chroot), session(chroot, credentials)
    try:
        # What an older version left (open root and lock parent) and what an attacker planted meanwhile.
        old.create(znodes.LOCK, makepath=True)
        old.create(f"{znodes.LOCK}/planted__lock__0000000001", b"fake on elsewhere")
        old.create(znodes.SCHEDULES, acl=OPEN_ACL_UNSAFE)
        old.create(f"{znodes.SCHEDULES}/evil", b"{}", acl=OPEN_ACL_UNSAFE)
        old.create(znodes.IAM, b'{"users": {}}', acl=OPEN_ACL_UNSAFE)
        service.create(f"{znodes.SCHEDULES}/mine", b"{}", acl=znodes.owner_acl(credentials, znodes.SCHEDULES))
        with caplog.at_level(logging.WARNING, logger=znodes.__name__):
            removed = znodes.secure_tree(service, credentials)
        assert sorted(removed) == sorted(
            [f"{znodes.LOCK}/planted__lock__0000000001", f"{znodes.SCHEDULES}/evil", znodes.IAM]
        )
        for path in znodes.CONTAINERS:
            assert znodes.is_owned(service.get_acls(path)[0], credentials), path
        assert service.exists(f"{znodes.SCHEDULES}/mine") is not None  # its own: kept
        repaired = [r for r in caplog.records if "repaired" in r.getMessage()]
        assert len(repaired) == 3 and any(r.levelno == logging.ERROR for r in caplog.records)
        # The anonymous client can no longer plant anything, and a second start repairs nothing.
        with pytest.raises(NoAuthError):
            old.create(f"{znodes.LOCK}/again", b"")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=znodes.__name__):
            assert znodes.secure_tree(service, credentials) == []
        assert caplog.records == []
        service.delete(znodes.ROOT, recursive=True)
    finally:
        for client in (old, service):
            client.stop()
            client.close()


def test_a_fresh_tree_is_created_with_the_service_acl(chroot):
    credentials = Credentials("dcos-backup", secrets.token_urlsafe(16))
    service = session(chroot, credentials)
    try:
        assert znodes.secure_tree(service, credentials) == []
        for path in znodes.CONTAINERS:
            assert service.get_acls(path)[0] == znodes.owner_acl(credentials, path)
        znodes.create_owned(service, znodes.IAM, b"{}", credentials)
        assert service.get_acls(znodes.IAM)[0] == znodes.owner_acl(credentials, znodes.IAM)
        service.delete(znodes.ROOT, recursive=True)
    finally:
        service.stop()
        service.close()


def test_a_root_owned_by_another_identity_is_refused(chroot):
    credentials = Credentials("dcos-backup", secrets.token_urlsafe(16))
    squatter, service = session(chroot), session(chroot, credentials)
    try:
        squatter.add_auth("digest", "squatter:pw")
        squatter.create(znodes.ROOT, acl=[make_digest_acl("squatter", "pw", all=True)])
        with pytest.raises(znodes.UntrustedTree, match="another ZooKeeper identity"):
            znodes.secure_tree(service, credentials)
        squatter.delete(znodes.ROOT)
    finally:
        for client in (squatter, service):
            client.stop()
            client.close()
