"""Leader election among service instances (jobs/leadership.py) on the real shared ensemble, each test
in its own chroot: one leads, a stopped leader hands over at once, and an instance restarted while its
dead process's session still holds the leader's znode takes that leadership back in one step."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient
from tests.helpers import wait_for

from dcos_backup.jobs.leadership import LEADER_PATH, Leader, Leadership
from dcos_backup.logical import connect

pytestmark = pytest.mark.e2e


@pytest.fixture
def clients(cluster) -> Iterator[list[KazooClient]]:
    """Three sessions on a fresh chroot (as three masters' services would have)."""
    chroot = f"/lead-{uuid.uuid4().hex[:10]}"
    admin = connect(cluster.zk_hosts)
    admin.create(chroot)
    sessions = [connect(cluster.zk_hosts + chroot) for _ in range(3)]
    yield sessions
    for client in sessions:
        client.stop()
        client.close()
    admin.delete(chroot, recursive=True)
    admin.stop()
    admin.close()


class Recorder:
    """An instance's leadership with what it was told: ``events`` is a list of "lead"/"follow"."""

    def __init__(self, client: KazooClient, name: str) -> None:
        self.events: list[str] = []
        self.leadership = Leadership(
            client,
            Leader(name, f"https://{name}"),
            lambda: self.events.append("lead"),
            lambda: self.events.append("follow"),
        )


def test_one_leads_and_a_stopped_leader_hands_over_at_once(clients):
    a, b = Recorder(clients[0], "master-1"), Recorder(clients[1], "master-2")
    a.leadership.start()
    b.leadership.start()
    assert a.leadership.is_leader and a.events == ["lead"]
    assert not b.leadership.is_leader and b.events == []
    assert b.leadership.leader() == Leader("master-1", "https://master-1")
    a.leadership.stop()
    assert a.events == ["lead", "follow"]
    # Its znode went with the stop (not with its session's expiry): the follower leads at once.
    wait_for(lambda: b.leadership.is_leader, timeout=10, what="the follower to lead")
    assert b.events == ["lead"]
    assert b.leadership.leader() == Leader("master-2", "https://master-2")
    b.leadership.stop()


def test_a_restarted_leader_takes_its_own_leadership_back_from_its_dead_session(clients):
    dead, survivor, restarted = clients
    # master-1's previous process: dead, but its session (and so its znode) lives until the timeout.
    dead.create(LEADER_PATH, Leader("master-1", "https://master-1").encode(), ephemeral=True, makepath=True)
    follower = Recorder(survivor, "master-2")
    follower.leadership.start()
    assert not follower.leadership.is_leader
    again = Recorder(restarted, "master-1")
    again.leadership.start()
    assert again.leadership.is_leader and again.events == ["lead"]
    _, stat = restarted.get(LEADER_PATH)
    assert stat.ephemeralOwner == restarted.client_id[0]  # the znode is now the new session's
    dead.stop()  # the dead session ends: nothing changes, the znode is not its any more
    dead.close()
    assert restarted.exists(LEADER_PATH) is not None
    assert not follower.leadership.is_leader and follower.events == []
    again.leadership.stop()
    wait_for(lambda: follower.leadership.is_leader, timeout=10, what="the follower to lead")
    follower.leadership.stop()
