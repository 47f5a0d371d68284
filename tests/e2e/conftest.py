"""Fixtures of the end-to-end tests that several modules share (the session's cluster and the private
cluster factory are in tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers import seeded_cluster

from dcos_backup.catalog.storage import LocalStorage
from dcos_backup.jobs.engine import ZkEngine
from dcos_backup.jobs.service import BackupService
from dcos_backup.local.spec import ClusterSpec
from dcos_backup.logical import connect
from dcos_backup.testing.api import in_process_api
from dcos_backup.testing.archiving import SNAP_COUNT
from dcos_backup.testing.faulty_engine import FaultyEngine
from dcos_backup.testing.seed import seed_marathon


@pytest.fixture
def env(cluster, tmp_path, request):
    """A backup service in-process on a fresh chroot of the shared cluster (20 apps), over a FaultyEngine
    (faults off): (its HTTP client, the service, a client of the chroot, the InProcessApi). A test's
    ``indirect`` parameter: extra BackupService arguments."""
    chroot = f"/svc-{uuid.uuid4().hex[:10]}"
    admin = connect(cluster.zk_hosts)
    admin.create(chroot)
    zk = connect(cluster.zk_hosts + chroot)
    seed_marathon(zk, apps=20, seed=5)
    engine = ZkEngine(cluster.zk_hosts + chroot)
    options = getattr(request, "param", {})
    service = BackupService(LocalStorage(tmp_path / "backups"), FaultyEngine(engine), dcos_version="2.2.0", **options)
    with in_process_api(service, cluster.zk_hosts + chroot) as api:
        yield api.http, service, zk, api
    service.close()
    engine.close()
    zk.stop()
    admin.delete(chroot, recursive=True)
    admin.stop()


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClusterSpec, Path]]:
    """A private cluster archiving continuously (1,500 apps; ZooKeeper rolling its log every SNAP_COUNT
    writes): (the cluster, its repository)."""
    directory = tmp_path_factory.mktemp("archive-faults")
    repo = directory / "repo"
    # 1,500 apps: snapshots of several MB, so that storing one takes long enough to be caught in.
    with (
        seeded_cluster(
            directory / "cluster", apps=1500, seed=3, zk_config=[("snapCount", str(SNAP_COUNT))], zk_archive=str(repo)
        ) as c,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv("DCOS_ZK_REPO_KEY_FILE", str(c.files.repo_key))  # as dcos-local env exports it
        yield c, repo
