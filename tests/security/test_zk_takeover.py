"""An anonymous ZooKeeper client cannot change who may do what, block or steer jobs (issue 24, item 1).

On DC/OS every agent reaches the masters' ZooKeeper, so every workload is an anonymous ZooKeeper client.
Each test here is that client (a kazoo session without credentials) against a private local cluster whose
backup services run on every master: it tries what the hostile pass did (replace the users znode, plant a
lock holder, rewrite the leadership, swap the schedules' parent) and the cluster must behave as before.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE
from tests.helpers import front_door, start_cluster

from dcos_backup.errors import Conflict, Forbidden
from dcos_backup.iam.store import IAM_PATH, Credentials
from dcos_backup.iam.users import FULL, SUPERUSER, Directory
from dcos_backup.jobs.engine import LOCK_PATH
from dcos_backup.jobs.leadership import LEADER_PATH
from dcos_backup.jobs.schedules import SCHEDULES_PATH
from dcos_backup.local import cluster as local_cluster
from dcos_backup.local import security
from dcos_backup.logical import connect

pytestmark = pytest.mark.e2e

ROOT = "/dcos-backup"
INTRUDER = "intruder"  # a user with no permission at all


@pytest.fixture(scope="module")
def victim(tmp_path_factory: pytest.TempPathFactory):
    """A private cluster with a backup service on each master, and a user without any permission."""
    c = start_cluster(tmp_path_factory.mktemp("takeover"))
    try:
        security.add_user(c.files, c.zk_hosts, INTRUDER, [])
        yield c
    finally:
        local_cluster.down(c)


@pytest.fixture
def attacker(victim) -> Iterator[KazooClient]:
    """An anonymous ZooKeeper session, as any workload on the cluster can open."""
    client = connect(victim.zk_hosts)
    yield client
    client.stop()
    client.close()


def attempt(step) -> bool:
    """Run one step of an attack; True if ZooKeeper let it through."""
    try:
        step()
    except NoAuthError:
        return False
    except KazooException:
        return False
    return True


def list_status(victim, uid: str, master: int) -> int:
    client = front_door(victim, uid, master)
    try:
        client.list()
    except Forbidden:
        return 403
    except Exception as exc:
        return getattr(exc, "http_status", 500)
    finally:
        with contextlib.suppress(Exception):
            client.close()
    return 200


def test_the_service_tree_grants_the_world_at_most_read(victim, attacker):
    service = connect(victim.zk_hosts, auth_data=Credentials.read(victim.files.zk_credentials).auth_data)
    try:
        for path in (ROOT, IAM_PATH, LOCK_PATH, SCHEDULES_PATH, LEADER_PATH):
            acls, _ = service.get_acls(path)
            world = [a for a in acls if a.id.scheme == "world"]
            assert all(a.perms == 1 for a in world), f"{path}: {acls}"  # READ only
            assert [a.id.scheme for a in acls if a.perms == 31] == ["digest"], f"{path}: {acls}"
    finally:
        service.stop()
        service.close()
    with pytest.raises(NoAuthError):
        attacker.get(IAM_PATH)  # the users are the service's secret


def test_an_anonymous_client_cannot_replace_the_users(victim, attacker):
    forged = Directory()
    forged.add_user(INTRUDER).grant(SUPERUSER, FULL)
    deleted = attempt(lambda: attacker.delete(IAM_PATH))
    created = attempt(lambda: attacker.create(IAM_PATH, forged.model_dump_json().encode(), acl=OPEN_ACL_UNSAFE))
    assert not deleted and not created
    for master in (1, 2, 3):
        assert list_status(victim, INTRUDER, master) == 403, f"master {master}"
        assert list_status(victim, security.BOOTSTRAP_USER, master) == 200, f"master {master}"


def test_an_anonymous_client_cannot_plant_a_lock_holder(victim, attacker):
    planted = attempt(lambda: attacker.create(f"{LOCK_PATH}/fake__lock__0000000000", b"fake-job on elsewhere"))
    planted_ephemeral = attempt(
        lambda: attacker.create(f"{LOCK_PATH}/x-lock-", b"fake-job on elsewhere", ephemeral=True, sequence=True)
    )
    assert not planted and not planted_ephemeral
    client = front_door(victim)
    try:
        started = client.create("after-plant")
    except Conflict as exc:  # what the hostile pass saw: every create 409 naming the fake holder
        pytest.fail(f"a planted lock holder blocks every job: {exc}")
    assert started["id"].startswith("after-plant-")


def test_an_anonymous_client_cannot_rewrite_or_take_the_leadership(victim, attacker):
    rogue = json.dumps({"instance": "rogue", "url": "http://127.0.0.1:9"}).encode()
    assert not attempt(lambda: attacker.set(LEADER_PATH, rogue))
    assert not attempt(lambda: attacker.delete(LEADER_PATH))
    assert not attempt(lambda: attacker.create(LEADER_PATH, rogue, ephemeral=True))
    data, _ = attacker.get(LEADER_PATH)
    assert json.loads(data)["instance"] == "master-1"


def test_an_anonymous_client_cannot_swap_the_schedules_parent(victim, attacker):
    # The parent exists (empty) from the service's start; the hostile pass deleted it and made it again, open.
    assert attacker.exists(SCHEDULES_PATH) is not None
    assert not attempt(lambda: attacker.delete(SCHEDULES_PATH))
    assert not attempt(lambda: attacker.create(f"{SCHEDULES_PATH}/evil", b"{}"))
    assert not attempt(lambda: attacker.set_acls(SCHEDULES_PATH, OPEN_ACL_UNSAFE))
    assert not attempt(lambda: attacker.set_acls(ROOT, OPEN_ACL_UNSAFE))
    assert not attempt(lambda: attacker.get_children(SCHEDULES_PATH))  # not even which schedules exist


class Listener:
    """A TCP server on loopback that keeps the first bytes of every connection: where a token would leak."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                conn.settimeout(5)
                with conn, contextlib.suppress(OSError):
                    self.received.append(conn.recv(65536))

    def close(self) -> None:
        self.sock.close()


def test_a_rewritten_leadership_does_not_send_tokens_elsewhere(victim, attacker):
    """Issue 24 item 2 as the hostile pass did it: the leader's znode names a URL of the attacker's."""
    listener = Listener()
    try:
        rogue = json.dumps({"instance": "master-1", "url": f"http://127.0.0.1:{listener.port}"}).encode()
        attempt(lambda: attacker.set(LEADER_PATH, rogue))
        client = front_door(victim, security.BOOTSTRAP_USER, master=2)  # master 2's service follows
        with contextlib.suppress(Exception):
            client.create("leak-probe")
        client.close()
        leaked = [r for r in listener.received if b"authorization" in r.lower()]
        assert leaked == [], f"a follower sent the caller's token to {listener.port}: {leaked[0][:200]!r}"
    finally:
        listener.close()
