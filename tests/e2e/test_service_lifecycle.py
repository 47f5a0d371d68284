"""The backup service's start-up and its job lock, on a real 3-master cluster under dcos-local's supervisor
(issue 17): a restarted service takes work at once, and ZooKeeper down at create is a 503 at once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tests.helpers import dcos_env, run_tool, seeded_cluster, wait_for

from dcos_backup.cli.client import backup_finished
from dcos_backup.errors import ServiceUnavailable
from dcos_backup.local import cluster as local_cluster
from dcos_backup.testing import fault_scenarios

pytestmark = pytest.mark.e2e

CLIENT_TIMEOUT = 30.0  # the CLI's request timeout: what a create hanging on a ZooKeeper that is down ran into


@pytest.fixture(scope="module")
def lifecycle_cluster(tmp_path_factory):
    # ~16,000 znodes: a backup streams its archive long enough to be caught at it
    with seeded_cluster(tmp_path_factory.mktemp("lifecycle"), apps=3000, seed=11) as cluster:
        yield cluster


def test_a_restarted_service_releases_its_own_job_lock_and_takes_a_create_at_once(lifecycle_cluster):
    cluster = lifecycle_cluster
    client = fault_scenarios.wait_service(cluster)
    backup_id = fault_scenarios.act_mid_job(
        cluster,
        lambda: client.create("doomed")["id"],
        lambda job: fault_scenarios.archive_growing(cluster, job, 1),
        fault_scenarios.kill_service(cluster),
    )
    client = fault_scenarios.wait_service(cluster)
    # At once: the dead process's ZooKeeper session (and with it its lock node) outlives it by the session
    # timeout; before the fix this create was a 409 "a backup is running ... retry shortly".
    started = client.create("right-after")
    done = client.wait(started["id"], backup_finished, interval=0.2, timeout=120)
    assert done["status"] == "STATUS_READY", done
    killed = client.show(backup_id)
    assert killed["status"] == "STATUS_ERROR" and "interrupted" in killed["reason"], killed
    log = Path(cluster.service["log_file"]).read_text()
    assert f"released the job lock of {backup_id}" in log


def test_zookeeper_down_at_create_is_503_at_once_and_starts_nothing(lifecycle_cluster):
    cluster = lifecycle_cluster
    fault_scenarios.wait_service(cluster)
    leader_env, follower_env = dcos_env(cluster), dcos_env(cluster, master=2)  # logging in needs ZooKeeper
    for n in (1, 2, 3):
        local_cluster.stop_master(cluster, n)
    try:
        began = time.monotonic()
        result = run_tool("dcos", "backup", "create", "--label", "zk-down", "--wait", env=leader_env)
        took = time.monotonic() - began
        # the same through master 2, whose service follows (it would forward a create to the leader)
        follower = run_tool("dcos", "backup", "create", "--label", "zk-down", env=follower_env)
    finally:
        for n in (1, 2, 3):
            local_cluster.start_master(cluster, n)
        local_cluster.wait_serving(cluster, 120)
    assert result.returncode == 3, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "ZooKeeper unavailable" in lines[0], result.stderr
    assert "cannot reach" not in lines[0]
    assert result.stdout == ""  # no backup id: nothing was started
    assert took < CLIENT_TIMEOUT, f"the create took {took:.0f}s: it waited for ZooKeeper instead of refusing"
    assert follower.returncode == 3 and follower.stdout == "", follower.stdout + follower.stderr
    assert follower.stderr.startswith("error: ZooKeeper unavailable") and len(follower.stderr.splitlines()) == 1
    client = fault_scenarios.wait_service(cluster)
    # Once the service's session is back, a create is accepted (no job left from the refused one) ...
    started = wait_for(lambda: _create_unless_zookeeper_away(client, "zk-back"), what="the service's session")
    assert client.wait(started["id"], backup_finished, interval=0.2, timeout=120)["status"] == "STATUS_READY"
    # ... and the refused one never became a backup.
    assert client.list("zk-down") == []


def _create_unless_zookeeper_away(client, label: str) -> dict | None:
    try:
        return client.create(label)
    except ServiceUnavailable as exc:
        assert "ZooKeeper unavailable" in str(exc)
        return None
