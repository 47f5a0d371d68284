"""The seed's "ZooKeeper backup and restore" procedure, step by step, on a real 3-master cluster."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from tests.helpers import ok, run_tool, tool, wait_for

from dcos_backup.local import cluster as local_cluster
from dcos_backup.logical import connect
from dcos_backup.master import restore_mark
from dcos_backup.master.layout import MasterLayout
from dcos_backup.testing.seed import seed_marathon
from dcos_backup.testing.trees import snapshot

pytestmark = pytest.mark.e2e


def test_seed_zookeeper_backup_and_restore_procedure(make_cluster, tmp_path):
    cluster = make_cluster(3, with_service=False)  # the procedure is ZooKeeper's alone

    def run(tool: str, *args: str):
        return run_tool(tool, *args, cluster_dir=cluster.dir, timeout=180)

    client = connect(cluster.zk_hosts)
    seed_marathon(client, apps=40, seed=3)
    master2 = cluster.master(2)
    # Make sure master 2 has applied everything acknowledged so far before it is stopped.
    only2 = connect(master2.member.client_address)
    only2.sync("/marathon")
    expected = snapshot(only2)
    only2.stop()

    # Backing up: stop ZooKeeper on one master only, back it up, start it again.
    ok(run("dcos-local", "stop-zk", "2"))
    archive = tmp_path / "zk-backup.tar.gz"
    result = ok(run("dcos-zk", "backup", str(archive), "-v", "--exhibitor-dir", str(master2.layout.exhibitor_dir)))
    assert "archive complete" in result.stderr and "sha256" in result.stdout
    ok(run("dcos-local", "start-zk", "2"))
    assert all(s.code == 3 for s in local_cluster.wait_serving(cluster, 60))

    # Life goes on, then disaster: writes after the backup, and /marathon is destroyed.
    client.create("/marathon/after-backup", b"must disappear")
    client.delete("/marathon", recursive=True)
    assert not client.exists("/marathon")
    client.stop()

    # Restoring: copy the archive to every master, stop all, restore on each, start all.
    copies = {}
    for m in cluster.masters:
        copies[m.id] = m.layout.exhibitor_dir.parent / f"master-{m.id}-zk-backup.tar.gz"
        shutil.copy(archive, copies[m.id])
    refused = run("dcos-zk", "restore", str(copies[1]), "--exhibitor-dir", str(cluster.master(1).layout.exhibitor_dir))
    assert refused.returncode != 0 and "stop it first: dcos-local stop-zk 1" in refused.stderr
    for m in cluster.masters:
        ok(run("dcos-local", "stop-zk", str(m.id)))
    for m in cluster.masters:
        result = ok(run("dcos-zk", "restore", str(copies[m.id]), "-v", "--exhibitor-dir", str(m.layout.exhibitor_dir)))
        assert f"myid {m.id}" in result.stdout
        assert m.layout.myid_file.read_text().strip() == str(m.id)
    # Started by hand one master at a time, as the seed says: plain start-zk returns once the supervisor
    # is up (systemctl start), never a timeout while the others are still down; --wait says what it waits for.
    ok(run("dcos-local", "start-zk", "1"))
    waiting_log = tmp_path / "start-zk-1-wait.err"
    with open(waiting_log, "w") as err:
        waiter = subprocess.Popen(
            [tool("dcos-local"), "start-zk", "1", "--wait", "--dir", str(cluster.dir)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        wait_for(
            lambda: "waiting for 1 more master to form a quorum of 2" in waiting_log.read_text(),
            what="start-zk --wait to say why it waits",
        )
        ok(run("dcos-local", "start-zk", "2"))
        out, _ = waiter.communicate(timeout=180)
    finally:
        waiter.kill()
    assert waiter.returncode == 0 and "master 1: ZooKeeper serving" in out, waiting_log.read_text()
    ok(run("dcos-local", "start-zk", "3"))

    # Monitor the Exhibitor status until all serve, with one leader.
    def all_serving() -> list[dict] | None:
        url = f"{cluster.master(1).member.exhibitor_url}/exhibitor/v1/cluster/status"
        status = httpx.get(url, timeout=5).json()
        return status if [s["description"] for s in status] == ["serving"] * 3 else None

    status = wait_for(all_serving, timeout=120, interval=0.5, what="3 serving members")
    assert sum(s["isLeader"] for s in status) == 1

    client = connect(cluster.zk_hosts)
    try:
        assert snapshot(client) == expected
        assert not client.exists("/marathon/after-backup")
    finally:
        client.stop()


def test_a_forgotten_master_cannot_silently_undo_a_restore(make_cluster, tmp_path):
    """Issue 17 item 2: masters 1 and 2 restored, master 3 forgotten (newer data) and started first. Before,
    every command returned 0 and the ensemble came back with master 3's data. Now the restored masters
    refuse to start, naming master 3; restoring it too brings the backup back."""
    cluster = make_cluster(3, with_service=False)  # the procedure is ZooKeeper's alone

    def run(tool: str, *args: str):
        return run_tool(tool, *args, cluster_dir=cluster.dir, timeout=180)

    client = connect(cluster.zk_hosts)
    client.create("/kept", b"in the backup")
    client.sync("/kept")
    client.stop()
    ex = {m.id: str(m.layout.exhibitor_dir) for m in cluster.masters}
    archive = tmp_path / "zk.tar.gz"
    ok(run("dcos-local", "stop-zk", "1"))
    ok(run("dcos-zk", "backup", str(archive), "--exhibitor-dir", ex[1]))
    ok(run("dcos-local", "start-zk", "1", "--wait"))
    client = connect(cluster.zk_hosts)
    client.create("/newer", b"after the backup")
    client.stop()

    for n in (1, 2, 3):
        ok(run("dcos-local", "stop-zk", str(n)))
    for n in (1, 2):  # master 3 forgotten
        ok(run("dcos-zk", "restore", str(archive), "--exhibitor-dir", ex[n]))
    ok(run("dcos-local", "start-zk", "3"))
    for n in (1, 2):
        refused = run("dcos-local", "start-zk", str(n))
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "stop master 3 and restore it from the same backup" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert not local_cluster.is_running(cluster.master(n))

    # --force does what happened silently before: master 3's data wins, and check-live says so.
    for n in (1, 2):
        ok(run("dcos-local", "start-zk", str(n), "--force"))
        assert "started with --force despite" in cluster.master(n).layout.activity_log.read_text()
    local_cluster.wait_serving(cluster, 120)
    check = run("dcos-zk", "check-live", str(archive), "--zk", cluster.zk_hosts)
    assert check.returncode == 1 and "the restore did NOT take" in check.stdout and "/newer" in check.stdout

    for n in (1, 2, 3):
        ok(run("dcos-local", "stop-zk", str(n)))
    for n in (1, 2):
        ok(run("dcos-zk", "restore", str(archive), "--exhibitor-dir", ex[n]))
    restore_by_hand(cluster.master(3).layout, archive)  # issue 26 item 6: no mark, yet the same restore
    # Master 1 alone cannot serve: its mark is still a restore not yet served when master 3 starts beside it.
    for n in (1, 3, 2):
        ok(run("dcos-local", "start-zk", str(n)))
    local_cluster.wait_serving(cluster, 120)
    took = json.loads(ok(run("dcos-zk", "check-live", "--json", str(archive), "--zk", cluster.zk_hosts)).stdout)
    assert took["took"] and took["foreign_count"] == 0 and took["unchanged"] >= took["archive_nodes"] - 1
    assert "found in place" in restore_mark.read(cluster.master(3).layout.restore_mark).source
    status = httpx.get(f"{cluster.master(2).member.exhibitor_url}/exhibitor/v1/cluster/status", timeout=5).json()
    assert status[1]["restoreMark"]["source"] == "zk.tar.gz"  # master 2's own entry carries its mark
    assert set(status[0]) == {"code", "description", "hostname", "isLeader"}
    # once serving, the restore has taken: every mark says so, and a member rebuilt later may join
    wait_for(lambda: all(restore_mark.read(m.layout.restore_mark).served for m in cluster.masters), what="served")
    client = connect(cluster.zk_hosts)
    try:
        assert client.get("/kept")[0] == b"in the backup" and not client.exists("/newer")
    finally:
        client.stop()


def restore_by_hand(layout: MasterLayout, archive: Path) -> None:
    """What DC/OS's procedure does without our tool: the data directory replaced by the archive's with tar,
    this master's myid put back; no restore mark."""
    myid = layout.myid_file.read_bytes()
    shutil.rmtree(layout.zk_dir)
    subprocess.run(["tar", "xzf", str(archive), "-C", str(layout.exhibitor_dir)], check=True)
    layout.myid_file.write_bytes(myid)
