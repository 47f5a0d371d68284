"""Shared fixtures: a real 3-member ZooKeeper ensemble started with dcos-local, and per-test chroots.

Each cluster gets a random loopback subnet (127.X.Y.1-3) so parallel runs never share ports.
``cluster`` is shared by the session (tests must not stop its members); ``make_cluster`` gives a
private cluster a test may stop, damage or restore; ``zk`` is a client chrooted to a fresh path.
Modules that want a cluster of their own for all their tests build it with :func:`seeded_cluster`.
Helpers that are not fixtures (waiting, running the console scripts) are in ``tests/helpers.py``.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from tests.helpers import wait_for

from dcos_backup.local import cluster as local_cluster
from dcos_backup.local import s3
from dcos_backup.local.spec import ClusterSpec
from dcos_backup.testing.seed import seed_marathon
from dcos_backup.zk import connect

_used_subnets: set[str] = set()


def free_subnet() -> str:
    """A loopback /24 that nothing of ours uses yet (127.150-249.x)."""
    rng = random.Random()
    while True:
        subnet = f"127.{rng.randint(150, 249)}.{rng.randint(0, 255)}"
        if subnet not in _used_subnets:
            _used_subnets.add(subnet)
            return subnet


def requires_zookeeper() -> None:
    if shutil.which("java") is None or not Path("/usr/share/java/zookeeper.jar").exists():
        pytest.fail("Java and the Debian zookeeper package are needed: apt-get install -y zookeeper")


def start_cluster(directory: Path, masters: int = 3, **kwargs: object) -> ClusterSpec:
    requires_zookeeper()
    kwargs.setdefault("heap", "512m")
    return local_cluster.up(directory, masters=masters, subnet=free_subnet(), **kwargs)


@contextlib.contextmanager
def seeded_cluster(directory: Path, apps: int, seed: int, **kwargs: object) -> Iterator[ClusterSpec]:
    """A private 3-master cluster with ``apps`` Marathon apps of ``seed`` under /marathon, stopped on exit."""
    c = start_cluster(directory, **kwargs)
    try:
        client = connect(c.zk_hosts, timeout=60)  # big multis during log rolls can stall a while
        try:
            seed_marathon(client, apps=apps, seed=seed)
        finally:
            client.stop()
            client.close()
        yield c
    finally:
        local_cluster.down(c)


@contextlib.contextmanager
def marathon_chroot(cluster: ClusterSpec, apps: int, seed: int) -> Iterator[tuple[str, KazooClient]]:
    """A fresh chroot on ``cluster`` with ``apps`` Marathon apps under its /marathon: (its connect string, a
    client of it); removed afterwards."""
    path = f"/chroot-{uuid.uuid4().hex[:10]}"
    admin = connect(cluster.zk_hosts)
    admin.create(path)
    zk = connect(cluster.zk_hosts + path)
    try:
        seed_marathon(zk, apps=apps, seed=seed)
        yield cluster.zk_hosts + path, zk
    finally:
        zk.stop()
        admin.delete(path, recursive=True)
        admin.stop()


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
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., ClusterSpec]]:
    """Factory of private clusters (``make_cluster(masters=3, zk_config=[...])``), torn down after the test."""
    started: list[ClusterSpec] = []

    def factory(masters: int = 3, **kwargs: object) -> ClusterSpec:
        c = start_cluster(tmp_path / f"cluster-{len(started) + 1}", masters, **kwargs)
        started.append(c)
        return c

    yield factory
    for c in started:
        local_cluster.down(c)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


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
