"""Fault scenarios with real processes and real signals, shared by tests/e2e/test_faults.py (a few trials)
and bench/reliability_report.py (many trials). Each returns a short outcome string and raises
AssertionError when data is not intact."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

from tests.e2e.service_helpers import snapshot, wait_for

from dcos_backup.catalog.archive import read_archive, verify_archive
from dcos_backup.errors import Conflict
from dcos_backup.local.cluster import Cluster
from dcos_backup.local.processes import read_pid
from dcos_backup.service.auth import read_token_file
from dcos_backup.service.client import BackupClient, Endpoint, backup_finished, restore_finished
from dcos_backup.service.engine import ZkEngine
from dcos_backup.zk import connect


def service_client(cluster: Cluster) -> BackupClient:
    token = read_token_file(Path(cluster.service["token_file"]))
    return BackupClient(Endpoint(cluster.service["url"], token))


def wait_service(cluster: Cluster, timeout: float = 60) -> BackupClient:
    client = service_client(cluster)

    def answers() -> bool:
        try:
            client.list()
            return True
        except Exception:
            return False

    wait_for(answers, timeout=timeout, interval=0.2, what="backup service")
    return client


def ready_backup(client: BackupClient, label: str) -> dict:
    """A backup that succeeded, retried while a dead session's lock is still held."""
    deadline = time.monotonic() + 90
    while True:
        try:
            doc = client.wait(client.create(label)["id"], backup_finished, interval=0.1)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
            continue
        if doc["status"] == "STATUS_READY":
            return doc
        if time.monotonic() > deadline:
            raise AssertionError(f"no backup succeeded: {doc.get('reason')}")


def restore_again(client: BackupClient, backup_id: str) -> dict:
    """Restore, retrying while a dead service's lock has not expired yet (409)."""
    deadline = time.monotonic() + 90
    while True:
        try:
            client.restore(backup_id)
            break
        except Conflict:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    return client.wait(backup_id, restore_finished, interval=0.2, timeout=120)


def archive_equals_tree(cluster: Cluster, doc: dict, root: str = "/marathon") -> None:
    path = Path(cluster.service["storage_dir"]) / doc["id"] / doc["components"]["marathon"]["archive"]
    with open(path, "rb") as raw:
        verify_archive(raw, doc["components"]["marathon"]["sha256"])
    with ZkEngine(cluster.zk_hosts) as engine, open(path, "rb") as raw:
        difference = engine.compare(root, read_archive(raw))
    assert difference is None, f"archive of a STATUS_READY backup differs from the tree: {difference}"


def kill_service(cluster: Cluster) -> int:
    pid_file = Path(cluster.service["child_pid_file"])
    pid = read_pid(pid_file)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: read_pid(pid_file) not in (None, pid), timeout=30, what="service restart")
    return pid


def damage_all_apps(cluster: Cluster) -> None:
    zk = connect(cluster.zk_hosts)
    try:
        zk.delete("/marathon/state/app", recursive=True)
        zk.create("/marathon/state/app/rogue", b"{}", makepath=True)
    finally:
        zk.stop()


def tree_now(cluster: Cluster) -> list:
    zk = connect(cluster.zk_hosts)
    try:
        return snapshot(zk)
    finally:
        zk.stop()


def service_killed_mid_backup(cluster: Cluster, rng: random.Random) -> str:
    client = wait_service(cluster)
    earlier = ready_backup(client, "earlier")
    doc = client.create("doomed")
    time.sleep(rng.uniform(0.0, 0.3))
    kill_service(cluster)
    client = wait_service(cluster)
    final = client.show(doc["id"])
    storage = Path(cluster.service["storage_dir"])
    assert not list((storage / doc["id"]).glob("*.partial")), "partial files left behind"
    if final["status"] == "STATUS_READY":
        archive_equals_tree(cluster, final)
        outcome = "finished before the kill"
    else:
        assert final["status"] == "STATUS_ERROR" and "interrupted" in final["reason"], final
        outcome = "interrupted, cleaned up"
    archive_equals_tree(cluster, client.show(earlier["id"]))  # earlier backups intact
    ready_backup(client, "after-kill")
    return outcome


def service_killed_mid_restore(cluster: Cluster, rng: random.Random) -> str:
    client = wait_service(cluster)
    backup = ready_backup(client, "before")
    wanted = tree_now(cluster)
    damage_all_apps(cluster)
    damaged = tree_now(cluster)
    client.restore(backup["id"])
    time.sleep(rng.uniform(0.0, 1.5))
    kill_service(cluster)
    client = wait_service(cluster)
    final = client.wait(backup["id"], restore_finished, interval=0.2, timeout=120)
    after = tree_now(cluster)
    restores = final["restores"]
    if restores["status"] == "STATUS_READY":
        assert after == wanted, "restore reported READY but the tree differs"
        outcome = "finished before the kill"
    else:
        assert after in (wanted, damaged), "tree is a mix of backup and pre-restore state"
        assert "interrupted" in restores["reason"], restores
        outcome = "rolled back" if "rolled back" in restores["reason"] else "untouched"
    assert restore_again(client, backup["id"])["restores"]["status"] == "STATUS_READY"
    assert tree_now(cluster) == wanted, "a re-run restore did not bring the backup back"
    return outcome


def leader_killed_mid_job(cluster: Cluster, rng: random.Random, kind: str) -> str:
    client = wait_service(cluster)
    backup = ready_backup(client, "base")
    wanted = tree_now(cluster)
    if kind == "restore":
        damage_all_apps(cluster)
        client.restore(backup["id"])
    else:
        backup = client.create("during-kill")
    time.sleep(rng.uniform(0.0, 0.5))
    leader = next(m for m, s in zip(cluster.masters, cluster.status(), strict=True) if s.isLeader)
    os.kill(read_pid(leader.zk_pid_file), signal.SIGKILL)  # its supervisor brings it back
    if kind == "restore":
        final = client.wait(backup["id"], restore_finished, interval=0.2, timeout=120)
        status = final["restores"]["status"]
    else:
        final = client.wait(backup["id"], backup_finished, interval=0.2, timeout=120)
        status = final["status"]
    cluster.wait_serving(90)
    if status == "STATUS_READY":
        if kind == "restore":
            assert tree_now(cluster) == wanted, "restore READY with wrong data"
        else:
            archive_equals_tree(cluster, final)
        return "completed"
    reason = final["restores"]["reason"] if kind == "restore" else final["reason"]
    assert reason, "STATUS_ERROR without a reason"
    if kind == "restore":  # leave the cluster as the next trial expects it
        wait_service(cluster)
        ready = ready_backup(client, "settle")
        restore_again(client, backup["id"])
        assert tree_now(cluster) == wanted
        client.delete(ready["id"])
    return "error with reason"
