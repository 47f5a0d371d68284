"""``dcos-local up --monitoring``: a real Prometheus (Debian's) scraping every master's backup service and
Exhibitor through the Admin Router (and Exhibitor directly), with the alert rules loaded; and the
archive's metrics following what the archiver does."""

from __future__ import annotations

import os
import signal
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.helpers import free_subnet, front_door, ok, requires_zookeeper, run_tool, wait_for

from dcos_backup.api.paths import LIST, METRICS, METRICS_PERMISSION
from dcos_backup.iam.users import READ
from dcos_backup.local import cluster as local_cluster
from dcos_backup.local import security
from dcos_backup.local.spec import ClusterSpec
from dcos_backup.logical import connect
from dcos_backup.testing.archiving import archiver_pid

pytestmark = pytest.mark.e2e

SERVICE_FAMILIES = (
    "dcos_backup_last_success_timestamp_seconds",
    "dcos_backup_last_attempt_timestamp_seconds",
    "dcos_backup_jobs_total",
    "dcos_backup_job_duration_seconds_bucket",
    "dcos_backup_job_running",
    "dcos_backup_size_bytes",
    "dcos_backup_catalog_backups",
    "dcos_backup_schedule_next_run_timestamp_seconds",
    "dcos_backup_schedule_last_success_timestamp_seconds",
    "dcos_backup_leader",
    "dcos_backup_storage_up",
)
ARCHIVE_FAMILIES = (
    "dcos_zk_archive_lag_seconds",
    "dcos_zk_archive_last_zxid",
    "dcos_zk_restorable_window_seconds",
    "dcos_zk_restorable_since_timestamp_seconds",
    "dcos_zk_archive_gaps",
    "dcos_zk_archive_errors_total",
)


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSpec]:
    requires_zookeeper()
    directory = tmp_path_factory.mktemp("monitored")
    repo, subnet = str(directory / "repo"), free_subnet()
    up = run_tool(
        "dcos-local",
        *("up", "--dir", str(directory / "cluster"), "--subnet", subnet, "--heap", "512m"),
        *("--zk-archive", repo, "--monitoring"),
    )
    assert up.returncode == 0, up.stderr
    cluster = ClusterSpec.load(directory / "cluster")
    # It says what runs: the archiving and where, and Prometheus.
    assert f"continuous archiving on: every master's ZooKeeper into {repo}" in up.stdout
    assert f"Prometheus: http://{subnet}.1:9090 (user prometheus: metrics only)" in up.stdout
    try:
        yield cluster
    finally:
        assert local_cluster.down(cluster) == []  # Prometheus and its supervisor among what down stops
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{cluster.prometheus['url']}/-/ready", timeout=5)  # type: ignore[index]


def query(cluster: ClusterSpec, expr: str) -> list[dict]:
    assert cluster.prometheus is not None
    answer = httpx.get(f"{cluster.prometheus['url']}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def targets(cluster: ClusterSpec) -> list[dict]:
    assert cluster.prometheus is not None
    return httpx.get(f"{cluster.prometheus['url']}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]


def test_prometheus_scrapes_every_master_with_a_metrics_only_token(monitored: ClusterSpec):
    cluster = monitored
    assert cluster.prometheus is not None
    assert ClusterSpec.load(cluster.dir).prometheus == cluster.prometheus  # cluster.json names it
    assert cluster.prometheus["url"] == f"http://{cluster.subnet}.1:9090"
    token_file = Path(cluster.prometheus["token_file"])
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    exports = ok(run_tool("dcos-local", "env", "2", cluster_dir=cluster.dir)).stdout.splitlines()
    assert f"export PROMETHEUS_URL={cluster.prometheus['url']}" in exports

    # A schedule that has run once, so that its metrics exist (and the catalog's): every 5 s (cron's sixth
    # field is seconds), not every minute, which cost this test 30 s on average; deleted once its metrics are seen.
    with front_door(cluster) as api:
        api.create_schedule("frequent", "* * * * * */5")
        wait_for(
            lambda: any(b["status"] == "STATUS_READY" for b in api.list("frequent-")),
            timeout=150,
            what="the schedule's first backup",
        )
    try:
        prometheus_sees_every_master(cluster, token_file)
    finally:
        with front_door(cluster) as api:  # the archive lag test wants a quiet cluster
            api.schedule_action("frequent", "delete")
            wait_for(lambda: all(b["status"] != "STATUS_BACKING_UP" for b in api.list("frequent-")), what="quiet")


def prometheus_sees_every_master(cluster: ClusterSpec, token_file: Path) -> None:
    assert cluster.prometheus is not None

    def every_target_up() -> list[dict]:
        found = targets(cluster)
        return len(found) == 3 * len(cluster.masters) and all(t["health"] == "up" for t in found) and found

    up = wait_for(every_target_up, timeout=120, what="every target up")
    jobs = {(t["labels"]["job"], t["scrapeUrl"]) for t in up}
    for m in cluster.masters:
        assert ("dcos-backup", f"https://{m.member.host}:443{METRICS}") in jobs
        assert ("exhibitor", f"http://{m.member.host}:8181/exhibitor/v1/metrics") in jobs
    for family in SERVICE_FAMILIES:
        wait_for(lambda f=family: query(cluster, f), timeout=120, what=f"{family} in Prometheus")
    for family in ARCHIVE_FAMILIES:
        found = wait_for(
            lambda f=family: len({r["metric"]["master"] for r in query(cluster, f)}) == len(cluster.masters),
            timeout=120,
            what=f"{family} of every master",
        )
        assert found
    leaders = query(cluster, "sum(max by (instance) (dcos_backup_leader))")
    assert float(leaders[0]["value"][1]) == 1  # one leader among the masters' services

    rules = httpx.get(f"{cluster.prometheus['url']}/api/v1/rules", timeout=10).json()["data"]["groups"]
    names = {rule["name"] for group in rules for rule in group["rules"]}
    assert {"DcosZkArchiveLagging", "DcosBackupNoLeader", "DcosBackupStorageDown"} <= names
    assert all(rule["health"] != "err" for group in rules for rule in group["rules"])

    # The monitoring user reads the metrics and nothing else.
    token = token_file.read_text().strip()
    url = cluster.master(2).admin_router_url
    with httpx.Client(
        verify=ssl.create_default_context(cafile=str(cluster.files.ca_cert)),
        headers={"Authorization": f"token={token}"},
    ) as client:
        assert client.get(url + METRICS).status_code == 200
        assert client.get(url + LIST).status_code == 403
    with security.users(cluster.files, cluster.zk_hosts) as store:
        user = store.user(security.MONITORING_USER)
        assert user is not None and [(g.rid, g.action) for g in user.grants] == [(METRICS_PERMISSION, READ)]


def archive_sample(cluster: ClusterSpec, n: int, name: str) -> float:
    text = httpx.get(f"{cluster.master(n).member.exhibitor_url}/exhibitor/v1/metrics", timeout=10).text
    line = next(line for line in text.splitlines() if line.startswith(name + "{"))
    return float(line.rsplit(" ", 1)[1])


def test_archive_lag_is_the_age_of_what_is_not_archived(monitored: ClusterSpec):
    cluster = monitored
    client = connect(cluster.zk_hosts)
    try:
        client.ensure_path("/lag")
        zxid = client.set("/lag", b"caught up").last_modified_transaction_id
        wait_for(lambda: archive_sample(cluster, 3, "dcos_zk_archive_last_zxid") >= zxid, what="the write archived")
        assert archive_sample(cluster, 3, "dcos_zk_archive_lag_seconds") == 0  # quiet: no lag, however long
        pid = archiver_pid(cluster.master(3))
        os.kill(pid, signal.SIGSTOP)
        try:
            client.set("/lag", b"not archived yet")
            first = wait_for(
                lambda: (lag := archive_sample(cluster, 3, "dcos_zk_archive_lag_seconds")) > 0 and lag,
                what="a lag while the archiver is stopped",
            )
            wait_for(lambda: archive_sample(cluster, 3, "dcos_zk_archive_lag_seconds") > first, what="the lag to grow")
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_for(lambda: archive_sample(cluster, 3, "dcos_zk_archive_lag_seconds") == 0, what="caught up again")
        assert archive_sample(cluster, 3, "dcos_zk_archive_gaps") == 0
        assert archive_sample(cluster, 3, "dcos_zk_archive_errors_total") == 0
    finally:
        client.stop()
        client.close()
