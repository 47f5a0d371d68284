"""``dcos backup drill`` end to end: the CLI, the Admin Router, the real service process and its scratch
ZooKeeper on a dcos-local cluster; a sound backup passes, a damaged one fails with exit 1 and its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.helpers import ok, run_tool, seeded_cluster

from dcos_backup.logical import connect
from dcos_backup.testing.trees import snapshot

pytestmark = pytest.mark.e2e


def dcos(cluster, *args: str):
    return run_tool("dcos", "backup", *args, cluster_dir=cluster.dir, timeout=180)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    with seeded_cluster(tmp_path_factory.mktemp("drill-cli"), apps=15, seed=4) as c:
        zk = connect(c.zk_hosts)
        yield c, zk
        zk.stop()


def test_drill_latest_passes_and_a_damaged_archive_fails_loudly(seeded):
    cluster, zk = seeded
    backup_id = ok(dcos(cluster, "create", "--label=drilled", "--wait")).stdout.strip()
    before = snapshot(zk)
    result = ok(dcos(cluster, "drill", "--latest", "--wait", "--json"))
    drill = json.loads(result.stdout)
    assert drill["status"] == "STATUS_READY" and drill["backup_id"] == backup_id and drill["nodes"] > 15
    assert f"{backup_id}: drill {drill['id']} STATUS_READY" in result.stderr
    shown = json.loads(ok(dcos(cluster, "show", backup_id)).stdout)
    assert [d["id"] for d in shown["drills"]] == [drill["id"]]

    archive = Path(cluster.service["storage_dir"]) / backup_id / shown["component_status"]["marathon"]["archive"]
    archive.write_bytes(archive.read_bytes()[:-7])  # cut short
    failed = dcos(cluster, "drill", backup_id, "--wait")
    assert failed.returncode == 1, failed
    assert failed.stderr.strip().splitlines()[-1].startswith(f"error: drill of {backup_id} failed: marathon: ")
    assert "Traceback" not in failed.stderr
    assert snapshot(zk) == before

    usage = dcos(cluster, "drill")
    assert usage.returncode == 2 and "give a BACKUP_ID or --latest" in usage.stderr
