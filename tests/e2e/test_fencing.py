"""Fencing (issue 25) on the real shared ensemble, each test in its own chroot: a batch written under a
leadership that no longer holds changes nothing, and a restore whose leader loses its leadership
mid-apply ends exactly once, consistent with the tree (one trial of the reliability report's scenario;
bench/reliability_report.py runs many)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from tests.helpers import damage, wait_for

from dcos_backup.catalog.models import Status
from dcos_backup.catalog.storage import LocalStorage
from dcos_backup.errors import Fenced
from dcos_backup.jobs.engine import ZkEngine
from dcos_backup.jobs.fencing import EPOCH_PATH, LEADER_PATH
from dcos_backup.jobs.leadership import Leader, Leadership
from dcos_backup.jobs.service import BackupService
from dcos_backup.logical import ZkSpec, ZNode, apply_tree, connect
from dcos_backup.testing.faulty_engine import FaultyEngine
from dcos_backup.testing.seed import seed_marathon
from dcos_backup.testing.trees import snapshot

pytestmark = pytest.mark.e2e


@pytest.fixture
def chroot(cluster) -> Iterator[tuple[str, KazooClient]]:
    path = f"/fence-{uuid.uuid4().hex[:10]}"
    admin = connect(cluster.zk_hosts)
    admin.create(path)
    zk = connect(cluster.zk_hosts + path)
    yield cluster.zk_hosts + path, zk
    zk.stop()
    zk.close()
    admin.delete(path, recursive=True)
    admin.stop()
    admin.close()


@dataclass
class Instance:
    """One master's service: its engine (faults off), its service and its leadership."""

    engine: ZkEngine
    faulty: FaultyEngine
    service: BackupService
    leadership: Leadership

    def close(self) -> None:
        self.leadership.stop()
        self.service.close()
        self.engine.close()


def instance(hosts: str, storage: Path, name: str) -> Instance:
    engine = ZkEngine(hosts)
    faulty = FaultyEngine(engine)
    service = BackupService(LocalStorage(storage), faulty, dcos_version="2.2.0", instance=name)
    leadership = Leadership(engine.client, Leader(name, None), service.recover, lambda: None)
    service.fenced_by(lambda: leadership.fence)
    return Instance(engine, faulty, service, leadership)


def test_a_batch_under_a_fence_that_no_longer_holds_changes_nothing(chroot):
    hosts, zk = chroot
    leadership = Leadership(zk, Leader("master-1", None), lambda: None, lambda: None)
    leadership.start()
    try:
        fence = wait_for(lambda: leadership.fence, what="leadership")
        nodes = [ZNode("/x", b"", zk.get_acls("/")[0]), ZNode("/x/y", b"1", zk.get_acls("/")[0])]
        zk.set(EPOCH_PATH, b"another leader")  # what a leader elected meanwhile does
        with pytest.raises(Fenced):
            apply_tree(ZkSpec.parse(hosts), "/x", nodes, fence=fence)
        assert zk.exists("/x") is None
        assert fence.revoked.is_set()
    finally:
        leadership.stop()


def test_a_leader_whose_znode_is_deleted_steps_down_and_its_old_fence_is_refused(chroot, caplog):
    hosts, zk = chroot
    leadership = Leadership(zk, Leader("master-1", None), lambda: None, lambda: None)
    leadership.start()
    try:
        old = wait_for(lambda: leadership.fence, what="leadership")
        zk.delete(LEADER_PATH)
        new = wait_for(lambda: (f := leadership.fence) is not None and f is not old and f, what="leading again")
        assert old.revoked.is_set() and new.epoch > old.epoch
        assert "this service no longer leads: its leadership znode went away" in caplog.text
        nodes = [ZNode("/x", b"", zk.get_acls("/")[0])]
        with pytest.raises(Fenced):
            apply_tree(ZkSpec.parse(hosts), "/x", nodes, fence=old)
        apply_tree(ZkSpec.parse(hosts), "/x", nodes, fence=new)
        assert zk.exists("/x") is not None
    finally:
        leadership.stop()


def test_leadership_znode_deleted_mid_apply_ends_the_restore_once_and_as_the_tree_says(chroot, tmp_path):
    """The split brain of issue 25: the leader's znode goes while its restore applies. Whoever leads next
    decides from the journal (cut mid-apply: rolled back); the old leader's job is fenced and writes
    nothing; the final status matches the tree and never changes."""
    hosts, zk = chroot
    seed_marathon(zk, apps=20, seed=5)
    a = instance(hosts, tmp_path / "backups", "master-1")
    b = instance(hosts, tmp_path / "backups", "master-2")
    try:
        a.leadership.start()
        b.leadership.start()
        assert a.leadership.is_leader and not b.leadership.is_leader
        backup = a.service.create("fence")
        wait_for(lambda: a.service.get(backup.id).status == Status.READY, what="the backup")
        damage(zk)
        before = snapshot(zk)
        a.faulty.gate_after = 0
        a.faulty.apply_gate = gate = threading.Event()  # the restore waits before its first planned change
        a.service.restore(backup.id)
        wait_for(lambda: (a.service.progress(backup.id) or {}).get("phase") == "applying marathon", what="apply")
        job = a.service.running
        assert job is not None and job.fence is not None
        zk.delete(LEADER_PATH)
        wait_for(lambda: job.fence.revoked.is_set(), what="the old leader to step down")
        gate.set()
        wait_for(lambda: job.thread is not None and not job.thread.is_alive(), what="the fenced job to stop")

        def final():
            restore = a.service.get(backup.id).latest_restore
            return restore if restore is not None and restore.status != Status.RESTORING else None

        ended = wait_for(final, timeout=120, what="the restore's final state")
        assert ended.status == Status.ERROR, ended
        assert "mid-apply" in (ended.reason or "") and "rolled back" in (ended.reason or ""), ended.reason
        assert "service stopped" not in (ended.reason or "")
        assert snapshot(zk) == before
        leader = wait_for(lambda: next((i for i in (a, b) if i.leadership.is_leader), None), what="a leader")
        leader.service.close()  # the recovery job (the rollback) has ended: nothing can change the record now
        assert a.service.get(backup.id).latest_restore == ended
    finally:
        a.close()
        b.close()


def test_a_record_is_not_written_once_the_fence_failed_after_its_journal_write(chroot, tmp_path):
    """The zombie window of issue 25: the leader loses its leadership between a job's journal write and
    its record's storage write (it has seen it: the fence is revoked). The record stays as it was: a
    backup whose final journal write went through is not shown READY by the zombie."""
    hosts, zk = chroot
    seed_marathon(zk, apps=20, seed=6)
    a = instance(hosts, tmp_path / "backups", "master-1")
    try:
        a.leadership.start()
        assert a.leadership.is_leader

        def lose_leadership_at_the_end(record, phase):
            if phase == "done" and record.status == Status.READY:
                fence = a.leadership.fence
                assert fence is not None
                fence.revoked.set()  # what the leadership loop does once it sees the znode gone

        a.faulty.after_journal = lose_leadership_at_the_end
        created = a.service.create("zombie-window")
        wait_for(lambda: a.service.running is None, what="the job to stop")  # claimed before create returned
        stored = LocalStorage(tmp_path / "backups").read(created.id)
        assert stored.status == Status.BACKING_UP, stored.status  # the zombie wrote no final record
        assert a.engine.journal_of(created.id).record.status == Status.READY  # the journal holds the outcome
    finally:
        a.close()
