"""Shared fixtures: a real 3-member ZooKeeper ensemble started with dcos-local, and per-test chroots.

Each cluster gets a random loopback subnet (127.X.Y.1-3) so parallel runs never share ports.
``cluster`` is shared by the session (tests must not stop its members); ``make_cluster`` gives a
private cluster a test may stop, damage or restore; ``zk`` is a client chrooted to a fresh path.
Modules that want a cluster of their own for all their tests build it with ``seeded_cluster``;
that and the other helpers that are not fixtures are in ``tests/helpers.py``.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest
from kazoo.client import KazooClient
from tests.helpers import free_port, start_cluster, wait_for

from dcos_backup.local import cluster as local_cluster
from dcos_backup.local import s3
from dcos_backup.local.spec import ClusterSpec
from dcos_backup.logical import connect


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSpec]:
    c = start_cluster(tmp_path_factory.mktemp("shared-cluster"))
    yield c
    local_cluster.down(c)


@pytest.fixture(scope="session")
def zk_hosts(cluster: ClusterSpec) -> str:
    return cluster.zk_hosts


@pytest.fixture
def zk(cluster: ClusterSpec) -> Iterator[KazooClient]:
    """A client chrooted to a fresh ``/test-<uuid>`` on the shared cluster; removed afterwards."""
    chroot = f"/test-{uuid.uuid4().hex[:12]}"
    admin = connect(cluster.zk_hosts)
    admin.create(chroot)
    client = connect(cluster.zk_hosts + chroot)
    try:
        yield client
    finally:
        client.stop()
        client.close()
        admin.delete(chroot, recursive=True)
        admin.stop()
        admin.close()


@pytest.fixture
def make_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ClusterSpec]]:
    """Factory of private clusters (``make_cluster(masters=3, zk_config=[...])``), torn down after the test.
    Their directories are short (``<basetemp>/cluster<N>``, not under the test's long-named tmp_path): the
    service's unix socket lives there, and a socket path has at most 107 bytes."""
    started: list[ClusterSpec] = []

    def factory(masters: int = 3, **kwargs: object) -> ClusterSpec:
        c = start_cluster(tmp_path_factory.mktemp("cluster"), masters, **kwargs)
        started.append(c)
        return c

    yield factory
    for c in started:
        local_cluster.down(c)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-protocol server (moto in server mode) on a free loopback port; boto3 in this process gets
    moto's credentials through the standard AWS variables."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(s3.moto_command("127.0.0.1", port), stdout=out, stderr=subprocess.STDOUT)
    saved = {k: os.environ.get(k) for k in s3.CREDENTIALS}
    os.environ.update(s3.CREDENTIALS)
    endpoint = s3.endpoint_url("127.0.0.1", port)
    try:
        wait_for(lambda: proc.poll() is None and s3.create_bucket(endpoint, "probe"), what=f"moto_server ({log})")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A new empty bucket on the moto server; its name."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    assert s3.create_bucket(s3_endpoint, name)
    return name
