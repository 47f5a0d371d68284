"""The engine rides over ZooKeeper faults: a member killed or frozen in the middle of a read or an apply.

A private 3-member ensemble with ~16,000 znodes. Each fault is dealt at a chosen point of the job (after
the reader handed out N nodes, or when the writer's stream reaches node N), so the job is certainly
running when it hits; the result must be byte for byte the same as without the fault.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from tests.helpers import seeded_cluster

from dcos_backup.errors import ZooKeeperUnavailable
from dcos_backup.local import cluster as local_cluster
from dcos_backup.local.spec import ClusterSpec, Master
from dcos_backup.logical import ApplyStats, ReadStats, ZkSpec, ZNode, apply_tree, iter_tree
from dcos_backup.master.processes import read_pid

pytestmark = pytest.mark.e2e

FAULT_AT = 3000  # nodes into the job
FROZEN_FOR = 10.0  # seconds a SIGSTOPped leader stays frozen
# A short session timeout: a frozen member is given up after 2/3 of it (and ZooKeeper's minimum is 4 s).
SESSION_TIMEOUT = 6.0


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory) -> Iterator[ClusterSpec]:
    with seeded_cluster(tmp_path_factory.mktemp("zk-faults"), apps=3000, seed=5, with_service=False) as cluster:
        yield cluster


@pytest.fixture
def spec(ensemble) -> ZkSpec:
    local_cluster.wait_serving(ensemble, 120)  # the previous fault healed
    return ZkSpec.parse(ensemble.zk_hosts, session_timeout=SESSION_TIMEOUT)


def as_values(nodes) -> list[tuple]:
    return [(n.path, n.data, n.acl) for n in nodes]


def leader(cluster: ClusterSpec) -> Master:
    return next(m for m, s in zip(cluster.masters, local_cluster.status(cluster), strict=True) if s.isLeader)


def master_at(cluster: ClusterSpec, address: str) -> Master:
    return next(m for m in cluster.masters if m.member.client_address == address)


def zookeeper_pid(master: Master) -> int:
    return read_pid(master.layout.zookeeper_pid_file)


def kill(master: Master) -> None:
    os.kill(zookeeper_pid(master), signal.SIGKILL)  # its supervisor starts it again


def freeze(master: Master) -> threading.Timer:
    """SIGSTOP the member now, SIGCONT it FROZEN_FOR seconds later (the timer is the fault, not a wait)."""
    pid = zookeeper_pid(master)
    os.kill(pid, signal.SIGSTOP)
    thaw = threading.Timer(FROZEN_FOR, os.kill, (pid, signal.SIGCONT))
    thaw.start()
    return thaw


FAULTS: dict[str, Callable[[ClusterSpec, str], threading.Timer | None]] = {
    "leader killed": lambda cluster, _: kill(leader(cluster)),
    "connected member killed": lambda cluster, server: kill(master_at(cluster, server)),
    "leader frozen": lambda cluster, _: freeze(leader(cluster)),
}


def finish(thaw: threading.Timer | None) -> None:
    if thaw is not None:
        thaw.join()


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_read_rides_over(ensemble, spec, fault):
    expected = as_values(iter_tree(spec, "/marathon"))
    assert len(expected) > 2 * FAULT_AT
    stats = ReadStats()
    got, thaw = [], None
    for node in iter_tree(spec, "/marathon", stats=stats):
        got.append((node.path, node.data, node.acl))
        if len(got) == FAULT_AT:  # the reader has requests in flight and is waiting for us
            thaw = FAULTS[fault](ensemble, stats.server)
    finish(thaw)
    assert got == expected
    if "killed" in fault:
        assert stats.reconnects >= 1, "the fault was not noticed: the test proved nothing"


def copy_of(nodes: list[ZNode], root: str) -> list[ZNode]:
    return [ZNode(root + n.path[len("/marathon") :], n.data, n.acl, n.stat) for n in nodes]


def faulty_stream(nodes: list[ZNode], fault: Callable[[], threading.Timer | None]) -> Iterator[ZNode]:
    """The nodes, with ``fault()`` dealt when the writer asks for node FAULT_AT (batches are in flight)."""
    thaw = None
    for index, node in enumerate(nodes):
        if index == FAULT_AT:
            thaw = fault()
        yield node
    finish(thaw)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_an_apply_rides_over(ensemble, spec, fault):
    source = list(iter_tree(spec, "/marathon"))
    target = "/copy-" + fault.replace(" ", "-")
    wanted = copy_of(source, target)
    if fault == "connected member killed":
        # Without the leader among the addresses the writer is on a follower: when it dies, the leader may
        # still commit the batches it forwarded, so the batches in doubt are partly applied.
        spec = ZkSpec(
            tuple(a for a in spec.addresses if f"{a[0]}:{a[1]}" != leader(ensemble).member.client_address),
            spec.chroot,
            spec.session_timeout,
        )
    stats = ApplyStats()
    applied = apply_tree(
        spec, target, faulty_stream(wanted, lambda: FAULTS[fault](ensemble, stats.server)), stats=stats
    )
    assert applied.created == len(wanted)
    assert as_values(iter_tree(spec, target)) == as_values(wanted)
    if "killed" in fault:
        assert applied.reconnects >= 1, "the fault was not noticed: the test proved nothing"
    assert apply_tree(spec, target, []).deleted == len(wanted)


def test_an_update_rides_over_a_killed_leader(ensemble, spec):
    """The live read of the merge and the writes both cross the fault: a damaged copy is repaired."""
    wanted = copy_of(list(iter_tree(spec, "/marathon")), "/repair")
    apply_tree(spec, "/repair", wanted)
    leaves = {
        a.path
        for a, b in zip(wanted, [*wanted[1:], None], strict=True)
        if b is None or b.path[: len(a.path) + 1] != a.path + "/"
    }
    damaged = [ZNode(n.path, n.data + b"~", n.acl) for i, n in enumerate(wanted) if i % 3 or n.path not in leaves]
    apply_tree(spec, "/repair", damaged)
    stats = apply_tree(spec, "/repair", faulty_stream(wanted, lambda: kill(leader(ensemble))))
    assert (stats.created, stats.updated, stats.deleted) == (len(wanted) - len(damaged), len(damaged), 0)
    assert as_values(iter_tree(spec, "/repair")) == as_values(wanted)
    assert stats.reconnects >= 1
    apply_tree(spec, "/repair", [])


def test_no_member_listening_fails_at_once(tmp_path):
    """ZooKeeper down: one line at once, not a wait of max_outage."""
    spec = ZkSpec.parse("127.0.0.1:1,127.0.0.1:2", max_outage=120)
    for job in (lambda: list(iter_tree(spec, "/x")), lambda: apply_tree(spec, "/x", [])):
        started = time.monotonic()
        with pytest.raises(ZooKeeperUnavailable, match="cannot connect to ZooKeeper") as caught:
            job()
        assert time.monotonic() - started < 30 and "\n" not in str(caught.value)


def test_an_ensemble_without_quorum_is_given_up_after_max_outage(make_cluster):
    """Members that listen but serve nobody (no quorum): ridden out, then one line saying why."""
    cluster = make_cluster(masters=3, with_service=False)
    local_cluster.stop_master(cluster, 2)
    local_cluster.stop_master(cluster, 3)
    spec = ZkSpec.parse(cluster.zk_hosts, session_timeout=SESSION_TIMEOUT, max_outage=5)
    started = time.monotonic()
    with pytest.raises(ZooKeeperUnavailable, match=r"gave up reading /x after \d+s .*no session") as caught:
        list(iter_tree(spec, "/x"))
    assert 5 <= time.monotonic() - started < 60 and "\n" not in str(caught.value)
