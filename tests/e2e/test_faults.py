"""Faults with real processes and signals on a 3-master cluster: nothing lost, nothing wrong marked good."""

from __future__ import annotations

import itertools
import os
import random
import socket
import time
import uuid

import pytest
from tests.helpers import in_process_api, seeded_cluster, small_tmpfs, wait_for

from dcos_backup.api.models import CREATE, LIST
from dcos_backup.catalog.storage import LocalStorage
from dcos_backup.jobs.engine import ZkEngine
from dcos_backup.jobs.service import BackupService
from dcos_backup.logical import connect
from dcos_backup.testing import fault_scenarios
from dcos_backup.testing.seed import seed_marathon

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fault_cluster(tmp_path_factory):
    # ~16,000 znodes: a job has stretches long enough to be caught in
    with seeded_cluster(tmp_path_factory.mktemp("faults"), apps=3000, seed=9) as cluster:
        yield cluster


def test_service_killed_mid_backup(fault_cluster):  # one trial; bench/reliability_report.py runs many
    outcome = fault_scenarios.service_killed_mid_backup(fault_cluster, random.Random(0))
    assert outcome.branch == "interrupted, cleaned up"


@pytest.mark.parametrize("branch", sorted(fault_scenarios.RESTORE_BRANCHES))
def test_service_killed_mid_restore(fault_cluster, branch):
    outcome = fault_scenarios.service_killed_mid_restore(fault_cluster, random.Random(100), branch)
    assert outcome.branch == fault_scenarios.RESTORE_BRANCHES[branch][2]


@pytest.mark.parametrize(
    ("kind", "branch"),
    [
        pytest.param("backup", "while applying", id="backup"),  # the branch only matters for a restore
        # bench/reliability_report.py's scenarios, one trial each ("before any change" is a branch of the
        # service killed mid-restore, above; a leader change there rides over it as anywhere)
        pytest.param("restore", "while applying", id="restore-while-applying"),
    ],
)
def test_leader_killed_mid_job(fault_cluster, kind, branch):
    """A leader change is routine: the job rides over it (the engine reconnects and goes on) and ends READY."""
    outcome = fault_scenarios.leader_killed_mid_job(fault_cluster, random.Random(7), kind, branch)
    assert outcome.branch == "completed"


@pytest.mark.parametrize("kind", ["backup", "restore"])
@pytest.mark.parametrize("fault", ["leader frozen", "service's member killed"])
def test_zookeeper_fault_mid_job(fault_cluster, fault, kind):
    """The leader frozen for 10 s, or the member the service's sessions are on killed, mid-backup or while a
    restore applies the archive: the job rides over it and ends READY with the right data."""
    outcome = fault_scenarios.zookeeper_fault_mid_job(fault_cluster, random.Random(11), kind, fault)
    assert outcome.branch == "completed"


@pytest.mark.parametrize("fault", sorted(fault_scenarios.FENCING_FAULTS))
def test_leadership_lost_mid_restore(fault_cluster, fault):  # issue 25: one trial; the report runs many
    outcome = fault_scenarios.leadership_lost_mid_restore(fault_cluster, random.Random(25), fault)
    assert outcome.branch in ("completed", "rolled back")


def test_archiver_killed_mid_copy(archived):
    cluster, _ = archived
    outcome = fault_scenarios.archiver_killed_mid_copy(cluster, random.Random(5))
    assert outcome.branch == "resumed in the same generation, caught up"


def test_s3_failing_mid_upload(fault_cluster, s3_endpoint):
    with fault_scenarios.faulty_s3_rig(fault_cluster, s3_endpoint) as rig:
        outcome = fault_scenarios.s3_failing_mid_upload(rig, random.Random(0))
        assert outcome.branch == "error, nothing left in the bucket"


def test_storage_full_is_an_error_with_nothing_partial(cluster, tmp_path):
    with small_tmpfs(tmp_path / "small", "256k") as storage_dir:
        full_storage_is_an_error(cluster, storage_dir)


def full_storage_is_an_error(cluster, storage_dir):
    chroot = f"/full-{uuid.uuid4().hex[:8]}"
    admin = connect(cluster.zk_hosts)
    admin.create(chroot)
    engine = service = None
    try:
        zk = connect(cluster.zk_hosts + chroot)
        seed_marathon(zk, apps=400, seed=1)  # an archive of about 600 KB: more than the disk
        zk.stop()
        engine = ZkEngine(cluster.zk_hosts + chroot)
        service = BackupService(LocalStorage(storage_dir), engine)
        with in_process_api(service, cluster.zk_hosts + chroot) as api:
            doc = api.http.post(CREATE, json={"label": "too-big"}).json()["backup_info"]
            final = wait_for(
                lambda: (d := api.http.get(LIST).json()["backup_info"][0])["status"] != "STATUS_BACKING_UP" and d
            )
            assert final["status"] == "STATUS_ERROR" and "no space" in final["reason"]
            assert sorted(os.listdir(storage_dir / doc["id"])) == []  # no archive left; the record beside
            assert [d["id"] for d in api.http.get(LIST).json()["backup_info"]] == [doc["id"]]
    finally:
        if service is not None:
            service.close()
        if engine is not None:
            engine.close()
        admin.delete(chroot, recursive=True)
        admin.stop()


def test_fifty_creates_at_once_one_runs(fault_cluster):
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    client = fault_scenarios.wait_service(fault_cluster)
    fault_scenarios.ready_backup(fault_cluster, client, "warm-up")  # the lock is free again
    url = client.endpoint.url + CREATE  # through the Admin Router
    headers = {"Authorization": f"token={client.endpoint.token}"}
    ca = client.endpoint.ssl_context()
    with ThreadPoolExecutor(50) as pool:
        responses = list(
            pool.map(
                lambda i: httpx.post(url, json={"label": f"burst-{i:02d}"}, headers=headers, timeout=30, verify=ca),
                range(50),
            )
        )
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 409} and codes.count(409) >= 40, codes
    # Whatever got in ran alone: no two accepted backups overlap in time, and each one is correct.
    accepted = [
        client.wait(r.json()["backup_info"]["id"], fault_scenarios.backup_finished, interval=0.1)
        for r in responses
        if r.status_code == 200
    ]
    spans = sorted((d["timestamp"], d["finished_at"]) for d in accepted)
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans)), spans
    for doc in accepted:
        assert doc["status"] == "STATUS_READY"
        fault_scenarios.archive_equals_tree(fault_cluster, doc)
    conflict = next(r for r in responses if r.status_code == 409).json()
    assert conflict["code"] == "conflict" and "running" in conflict["errors"][0]


def test_list_and_show_under_load_during_a_backup(fault_cluster):
    from concurrent.futures import ThreadPoolExecutor

    client = fault_scenarios.wait_service(fault_cluster)
    doc = fault_scenarios.ready_backup(fault_cluster, client, "load-base")
    running = client.create("under-load")
    latencies: list[float] = []
    errors: list[str] = []
    seen: set[str] = set()  # the running backup's states in the listings the clients got

    def hammer(i: int) -> None:
        c = fault_scenarios.service_client(fault_cluster)
        for n in range(15):
            started = time.perf_counter()
            try:
                if n % 2 == 0:
                    seen.update(d["status"] for d in c.list() if d["id"] == running["id"])
                else:
                    c.show(doc["id"])
            except Exception as exc:
                errors.append(repr(exc))
            latencies.append(time.perf_counter() - started)

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(hammer, range(20)))
    final = client.wait(running["id"], fault_scenarios.backup_finished, interval=0.1)
    assert not errors and final["status"] == "STATUS_READY"
    # Served while the backup ran, not after it: reads do not wait for a job.
    assert "STATUS_BACKING_UP" in seen, seen
    latencies.sort()
    print(
        f"\n20 clients x 15 requests during a backup: p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.0f} ms"
    )


def test_slow_loris_is_cut_off_and_service_stays_up(fault_cluster):
    """On the service's own socket (the Admin Router has its own header timeout)."""
    half = socket.socket(socket.AF_UNIX)
    half.settimeout(30)
    half.connect(fault_cluster.service["socket"])
    half.sendall(b"GET /system/v1/backup/v1/health HTTP/1.1\r\nHost: x\r\n")  # never finished
    client = fault_scenarios.wait_service(fault_cluster)
    assert client.list() is not None  # others are still served
    started = time.monotonic()
    try:
        while half.recv(1024):
            pass
    except OSError:
        pass
    assert time.monotonic() - started < 30, "a half-sent request held its connection open"
    half.close()
