"""The quick-start demo: a real 3-master cluster, seeded, shown, and taken down again.

Each step prints what it does, so the demo doubles as a tour of the commands.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click

from dcos_backup.local import cluster as local_cluster
from dcos_backup.local import extras
from dcos_backup.local.cluster import Cluster
from dcos_backup.local.seed import seed_marathon
from dcos_backup.zk import connect

DEMO_SUBNET = "127.21.0"


def step(title: str) -> Callable[[Callable[..., object]], Callable[..., object]]:
    def decorate(fn: Callable[..., object]) -> Callable[..., object]:
        def wrapped(*args: object, **kwargs: object) -> object:
            click.secho(f"==> {title}", bold=True)
            started = time.monotonic()
            result = fn(*args, **kwargs)
            click.echo(f"    done in {time.monotonic() - started:.1f}s")
            return result

        return wrapped

    return decorate


@step("start a 3-master local cluster (real ZooKeeper ensemble on 127.21.0.1-3)")
def start(directory: Path, masters: int) -> Cluster:
    cluster = local_cluster.up(directory, masters=masters, subnet=DEMO_SUBNET, heap="512m")
    click.echo(f"    ZooKeeper: {cluster.zk_hosts}")
    return cluster


@step("seed Marathon state under /marathon")
def seed(cluster: Cluster, apps: int) -> None:
    client = connect(cluster.zk_hosts)
    try:
        stats = seed_marathon(client, apps=apps)
    finally:
        client.stop()
        client.close()
    extras.start_holder(cluster)
    click.echo(f"    {stats.nodes} znodes, {stats.bytes / 1e6:.1f} MB of data")


@step("cluster status (GET /exhibitor/v1/cluster/status on every master)")
def show_status(cluster: Cluster) -> None:
    for s in cluster.status():
        click.echo(f"    {s.hostname:<12} code {s.code} {s.description:<8} {'leader' if s.isLeader else ''}")


def run_demo(masters: int = 3, apps: int = 200, keep: bool = False, directory: Path | None = None) -> None:
    directory = directory or Path(tempfile.mkdtemp(prefix="dcos-local-demo-"))
    cluster = start(directory, masters)
    try:
        seed(cluster, apps)
        show_status(cluster)
    finally:
        if keep:
            click.echo(f"cluster left running; use it with: export DCOS_LOCAL_DIR={cluster.dir}")
        else:
            click.secho("==> stop the cluster (dcos-local down --purge)", bold=True)
            local_cluster.down(cluster, purge=True)
    click.secho("demo finished: every step passed", fg="green", bold=True)
