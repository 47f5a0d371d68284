"""dcos-local and dcos-exhibitor against a real 3-member ZooKeeper ensemble."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import httpx
import jwt
import psutil
import pytest
from tests.helpers import BIN, run_tool, wait_for

from dcos_backup.cli.client import BackupClient, Endpoint
from dcos_backup.local import cluster as local_cluster
from dcos_backup.local import security
from dcos_backup.local.spec import ClusterSpec
from dcos_backup.logical import connect, iter_tree
from dcos_backup.master.processes import read_pid
from dcos_backup.testing.seed import ROOT

pytestmark = pytest.mark.e2e


def dcos_local(cluster_dir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_tool("dcos-local", *args, cluster_dir=cluster_dir, env=env, timeout=120)


def exhibitor_status(cluster: ClusterSpec, n: int) -> list[dict]:
    return httpx.get(f"{cluster.master(n).member.exhibitor_url}/exhibitor/v1/cluster/status", timeout=5).json()


def test_status_endpoint_lists_every_member_serving_with_one_leader(cluster):
    for n in (1, 2, 3):
        status = exhibitor_status(cluster, n)
        assert [s["hostname"] for s in status] == [m.member.host for m in cluster.masters]
        assert all(s["code"] == 3 and s["description"] == "serving" for s in status)
        assert sum(s["isLeader"] for s in status) == 1
        assert all(set(s) == {"code", "description", "hostname", "isLeader"} for s in status)


def test_cli_status_json_matches_endpoint(cluster):
    result = dcos_local(cluster.dir, "status", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == exhibitor_status(cluster, 1)
    table = dcos_local(cluster.dir, "status")
    assert table.returncode == 0 and "serving" in table.stdout


def test_env_points_at_the_master(cluster):
    result = dcos_local(cluster.dir, "env", "2")
    assert result.returncode == 0
    exports = dict(line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines())
    assert exports["DCOS_EXHIBITOR_DIR"] == str(cluster.master(2).layout.exhibitor_dir)
    assert exports["DCOS_ZK_ADDRESS"] == f"{cluster.master(2).member.host}:2181"
    # The DC/OS CLI's own variables: master 2's Admin Router, the CA, a fresh bootstrapuser token.
    assert exports["DCOS_URL"] == f"https://{cluster.master(2).member.host}"
    assert exports["DCOS_SSL_VERIFY"] == str(cluster.files.ca_cert)
    claims = jwt.decode(exports["DCOS_ACS_TOKEN"], options={"verify_signature": False})
    assert claims["uid"] == "bootstrapuser" and claims["exp"] > time.time() + 3600
    described = json.loads((cluster.dir / "cluster.json").read_text())["dcos_cli"]
    assert described["DCOS_ACS_TOKEN_FILE"] == str(cluster.files.token_file)  # its file, not the token
    assert stat.S_IMODE(cluster.files.token_file.stat().st_mode) == 0o600
    assert "DCOS_ACS_TOKEN" not in described


def test_data_layout_is_dcos_like(cluster):
    # Spelled out here (not through MasterLayout): this is the layout DC/OS masters have.
    ex = cluster.master(3).layout.exhibitor_dir
    assert (ex / "zookeeper" / "snapshot" / "myid").read_text().strip() == "3"
    assert (ex / "zookeeper" / "transactions" / "version-2").is_dir()
    assert (ex / "conf" / "zoo.cfg").is_file()
    zoo_cfg = dict(line.split("=", 1) for line in (ex / "conf" / "zoo.cfg").read_text().splitlines())
    assert zoo_cfg["dataDir"] == str(ex / "zookeeper" / "snapshot")
    assert zoo_cfg["dataLogDir"] == str(ex / "zookeeper" / "transactions")
    assert (ex / "run" / "zookeeper.pid").is_file() and (ex / "run" / "exhibitor.pid").is_file()


def test_stop_start_and_kill_recovery(make_cluster):
    c = make_cluster(3)
    # systemctl stop dcos-exhibitor on master 2: the others see it down and keep a leader
    assert dcos_local(c.dir, "stop-zk", "2").returncode == 0
    for n in (1, 3):
        status = exhibitor_status(c, n)
        assert status[1]["code"] == 1 and status[1]["description"] == "down"
        assert [s["code"] for s in (status[0], status[2])] == [3, 3]
        assert sum(s["isLeader"] for s in status) == 1
    assert read_pid(c.master(2).layout.exhibitor_pid_file) is None
    assert dcos_local(c.dir, "start-zk", "2", "--wait").returncode == 0
    assert all(s["code"] == 3 for s in exhibitor_status(c, 2))

    # SIGKILL ZooKeeper: the supervisor brings it back and logs why
    zk_pid_file = c.master(1).layout.zookeeper_pid_file
    old_pid = read_pid(zk_pid_file)
    os.kill(old_pid, signal.SIGKILL)
    wait_for(lambda: (p := read_pid(zk_pid_file)) and p != old_pid, what="a new ZooKeeper pid")
    wait_for(lambda: all(s["code"] == 3 for s in exhibitor_status(c, 2)), what="all serving again")
    assert "killed by SIGKILL; restarting" in c.master(1).layout.exhibitor_log.read_text()

    # down leaves no process behind
    pids = local_cluster.all_pids(c)
    # 3 supervisors, 3 ZooKeepers, 3 backup services and 3 Admin Routers, each of these with its supervisor
    assert len(pids) == 18
    token, ca = security.login(c.files, c.zk_hosts, "bootstrapuser"), c.files.ca_cert.read_bytes()
    result = dcos_local(c.dir, "down")
    assert result.returncode == 0, result.stderr
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]

    # up again in the same directory: the same CA and users, so a token from before still works
    again = dcos_local(c.dir, "up", "--masters", "3", "--subnet", c.subnet, "--heap", "512m")
    assert again.returncode == 0, again.stderr
    assert c.files.ca_cert.read_bytes() == ca
    with BackupClient(Endpoint(c.master(2).admin_router_url, token, str(c.files.ca_cert))) as client:
        assert client.list() == []


def test_seed_is_realistic_and_deterministic(make_cluster):
    c = make_cluster(1)
    result = dcos_local(c.dir, "seed", "--apps", "30", "--seed", "7")
    assert result.returncode == 0, result.stderr
    client = connect(c.zk_hosts)
    try:
        nodes = list(iter_tree(c.zk_hosts, ROOT))
        wait_for(lambda: client.exists("/marathon/leader/member_0000000000"), what="ephemeral leader node")
        assert client.exists("/marathon/leader/member_0000000000").ephemeralOwner != 0
    finally:
        client.stop()
    paths = {n.path for n in nodes}
    assert "/marathon/state/framework-id" in paths
    assert "/marathon/leader/member_0000000000" not in paths  # ephemeral: skipped by readers
    assert len({tuple(n.acl) for n in nodes}) >= 3
    assert any(n.data and not n.data.startswith(b"{") for n in nodes)
    apps = [n for n in nodes if n.path.count("/") == 4 and "/state/app/" in n.path]
    assert len(apps) == 30
    assert json.loads(apps[0].data)["id"].startswith("/")
    again = dcos_local(c.dir, "seed")
    assert again.returncode == 1 and "already exists" in again.stderr and "--replace" in again.stderr
    assert "internal error" not in again.stderr and len(again.stderr.splitlines()) == 1
    replaced = dcos_local(c.dir, "seed", "--replace", "--apps", "10", "--seed", "8")
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stderr == ""  # progress only on a terminal
    nodes = list(iter_tree(c.zk_hosts, ROOT))
    assert len([n for n in nodes if n.path.count("/") == 4 and "/state/app/" in n.path]) == 10
    assert f"{len(nodes)} znodes" in replaced.stdout
    client = connect(c.zk_hosts)
    try:  # a new holder keeps the new tree's ephemeral nodes
        wait_for(lambda: client.exists("/marathon/leader/member_0000000000"), what="ephemeral leader node again")
    finally:
        client.stop()


def test_cli_errors_are_one_line(make_cluster, tmp_path):
    c = make_cluster(1)
    cases = [
        (dcos_local(c.dir, "stop-zk", "7"), "there is no master 7"),
        (dcos_local(c.dir, "up", "--masters", "1"), "already runs"),
        (dcos_local(tmp_path / "nothing", "status"), "no local cluster"),
        (dcos_local(tmp_path / "other", "up", "--masters", "1", "--subnet", c.subnet), "already in use"),
        (dcos_local(tmp_path / "x", "up", "--subnet", "10.0.0"), "loopback"),
        (dcos_local(tmp_path / "x", "up", "--masters", "0"), "between 1 and"),
    ]
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "cluster.json").write_text("{oops")
    cases.append((dcos_local(tmp_path / "corrupt", "status"), "corrupt"))
    no_java = {"PATH": str(BIN)}
    cases.append((dcos_local(tmp_path / "y", "up", "--subnet", "127.3.3", env=no_java), "apt-get install"))
    dcos_local(c.dir, "down")
    cases.append((dcos_local(c.dir, "status"), "not running"))
    for result, message in cases:
        assert result.returncode != 0, result
        assert message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_up_json_and_status_with_every_zookeeper_stopped(tmp_path):
    """`up --json` describes the cluster; `status` with every ZooKeeper stopped (the service still up) shows
    the table with every master down and exits 3, instead of saying the cluster is not running."""
    from tests.helpers import free_subnet, requires_zookeeper

    requires_zookeeper()
    directory = tmp_path / "c"
    up = dcos_local(directory, "up", "--masters", "2", "--subnet", free_subnet(), "--heap", "256m", "--json")
    try:
        assert up.returncode == 0, up.stderr
        doc = json.loads(up.stdout)
        assert doc["dir"] == str(directory) and [m["id"] for m in doc["masters"]] == [1, 2]
        assert doc["zk_hosts"] == ",".join(f"{m['host']}:{m['client_port']}" for m in doc["masters"])
        for n in ("1", "2"):
            assert dcos_local(directory, "stop-zk", n).returncode == 0
        status = dcos_local(directory, "status")
        assert status.returncode == 3, status.stderr
        assert status.stdout.count("down") == 2 and status.stdout.count("stopped") == 2
        assert "0 of 2 masters serving" in status.stderr
        as_json = dcos_local(directory, "status", "--json")
        assert as_json.returncode == 3 and [s["description"] for s in json.loads(as_json.stdout)] == ["down"] * 2
    finally:
        dcos_local(directory, "down")
