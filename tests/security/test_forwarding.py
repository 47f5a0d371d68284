"""A follower sends a caller's token only to a master of its own configuration (issue 24, item 2).

The leader's znode says which instance leads and where; a follower used to forward a job request, with the
caller's ``Authorization``, to whatever URL it named. Here a follower runs in-process on a chroot whose
leader znode names a listener of the test's (as an attacker who could write it would): nothing may reach it.
"""

from __future__ import annotations

import uuid

import pytest
from tests.helpers import service_api
from tests.security.test_zk_takeover import Listener

from dcos_backup.adminrouter import tls
from dcos_backup.api.forward import Forwarder, master_url, origin
from dcos_backup.api.paths import CREATE
from dcos_backup.catalog.storage import LocalStorage
from dcos_backup.errors import UsageError
from dcos_backup.jobs.leadership import LEADER_PATH, Leader, Leadership
from dcos_backup.logical import connect

MASTERS = ("https://127.0.0.1", "https://127.0.0.2:8443")


@pytest.mark.parametrize("url", ["http://10.0.0.1", "https://10.0.0.1/x", "https://u:p@10.0.0.1", "10.0.0.1", ""])
def test_a_master_is_an_https_origin(url):
    with pytest.raises(UsageError):
        master_url(url)


def test_origins_compare_as_the_same_master():
    assert origin("https://127.0.0.1") == origin("https://127.0.0.1:443/") == origin("HTTPS://127.0.0.1")
    assert origin("http://127.0.0.1") != origin("https://127.0.0.1")


class Following:
    """What a Forwarder needs of the leadership, for :meth:`Forwarder.target` alone."""

    is_leader = False


@pytest.mark.parametrize(
    ("url", "ca", "expected"),
    [
        ("https://127.0.0.1", True, "https://127.0.0.1"),
        ("https://127.0.0.1:443/", True, "https://127.0.0.1"),
        ("https://127.0.0.2:8443", True, "https://127.0.0.2:8443"),
        ("https://127.0.0.2", True, None),  # another port: not the configured master
        ("http://127.0.0.1", True, None),  # plain HTTP to a master
        ("https://127.0.0.9", True, None),  # not a master
        ("https://127.0.0.1", False, None),  # no cluster CA to check it with
    ],
)
def test_the_target_is_a_configured_master_checked_with_the_cluster_ca(tmp_path, url, ca, expected):
    ca_file = None
    if ca:
        ca_file = tmp_path / "ca.crt"
        tls.create_ca(ca_file, tmp_path / "ca.key", "test CA")
    forwarder = Forwarder(Following(), None, MASTERS, ca_file)
    assert forwarder.target("master-x", url) == expected


@pytest.mark.e2e
def test_a_follower_never_sends_the_token_to_a_url_from_zookeeper(cluster, tmp_path):
    chroot = f"/fwd-{uuid.uuid4().hex[:10]}"
    admin = connect(cluster.zk_hosts)
    admin.create(chroot)
    rogue_session = connect(cluster.zk_hosts + chroot)
    follower_session = connect(cluster.zk_hosts + chroot)
    listener = Listener()
    try:
        rogue = Leader("master-1", f"http://127.0.0.1:{listener.port}")
        rogue_session.create(LEADER_PATH, rogue.encode(), ephemeral=True, makepath=True)
        leadership = Leadership(follower_session, Leader("master-2", None), lambda: None, lambda: None)
        leadership.start()
        assert not leadership.is_leader
        masters = [m.admin_router_url for m in cluster.masters]
        with service_api(
            LocalStorage(tmp_path / "backups"),
            cluster.zk_hosts + chroot,
            forwarder=lambda authorizer: Forwarder(leadership, authorizer, masters, cluster.files.ca_cert),
        ) as api:
            response = api.http.post(CREATE, json={"label": "leak-probe"})
            assert response.status_code == 503, response.text
            assert "not at one of this cluster's masters" in response.json()["errors"][0]
            nobody = api.http.post(CREATE, json={"label": "leak-probe"}, headers={"Authorization": "token=x.y.z"})
            assert nobody.status_code == 401
        leadership.stop()
        assert listener.received == []
    finally:
        listener.close()
        for session in (rogue_session, follower_session):
            session.stop()
            session.close()
        admin.delete(chroot, recursive=True)
        admin.stop()
        admin.close()
