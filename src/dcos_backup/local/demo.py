"""The quick-start demo: start a real 3-master cluster, seed it, back up (logical and --online physical), damage,
restore, verify.

Each step prints the command an operator would type for it, so the demo doubles as a tour. The backup
and restore go through the backup service's HTTP API, exactly as ``dcos backup`` does.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click

from dcos_backup.errors import DcosBackupError
from dcos_backup.local import cluster as local_cluster
from dcos_backup.local import extras
from dcos_backup.local.cluster import Cluster
from dcos_backup.local.seed import seed_marathon
from dcos_backup.service.client import BackupClient, backup_finished, resolve_endpoint, restore_finished
from dcos_backup.zk import connect, iter_tree
from dcos_backup.zkdata import physical

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


@step("dcos-local up: start a local cluster (a real ZooKeeper ensemble on loopback)")
def start(directory: Path, masters: int, subnet: str) -> Cluster:
    cluster = local_cluster.up(directory, masters=masters, subnet=subnet, heap="512m")
    click.echo(f"    ZooKeeper: {cluster.zk_hosts}")
    return cluster


@step("dcos-local seed: Marathon state under /marathon")
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


def tree_of(cluster: Cluster) -> list[tuple]:
    return [(n.path, n.data, n.acl) for n in iter_tree(cluster.zk_hosts, "/marathon")]


def service_client(cluster: Cluster) -> BackupClient:
    service = cluster.service or {}
    return BackupClient(resolve_endpoint(service.get("url"), None, Path(service.get("token_file", "-"))))


@step("dcos backup create --label=pre-upgrade --wait")
def create_backup(cluster: Cluster) -> str:
    client = service_client(cluster)
    doc = client.wait(client.create("pre-upgrade")["id"], backup_finished)
    if doc["status"] != "STATUS_READY":
        raise DcosBackupError(f"backup failed: {doc.get('reason')}")
    comp = doc["components"]["marathon"]
    click.echo(f"    {doc['id']}: {doc['status']}, {comp['nodes']} znodes, sha256 {comp['sha256'][:16]}...")
    return doc["id"]


@step("dcos-zk backup --online on master 2 (ZooKeeper keeps serving), then dcos-zk verify")
def physical_backup_online(cluster: Cluster) -> None:
    master = cluster.master(2 if len(cluster.masters) > 1 else 1)
    archive = cluster.dir / "backups" / f"zk-master-{master.id}-{time.strftime('%Y%m%dT%H%M%S')}.tar.gz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    result = physical.backup(master.exhibitor_dir, archive, online=True)
    checked = result.verified
    assert checked is not None
    click.echo(f"    {archive.name}: {result.bytes / 1e6:.1f} MB, sha256 {result.sha256[:16]}...")
    click.echo(
        f"    verified: {checked.snapshot} + {len(checked.logs)} logs replayed to zxid {checked.last_zxid}, "
        f"{checked.nodes} znodes, {checked.digests_checked} ZooKeeper tree digests matched"
    )
    statuses = cluster.status()
    click.echo(f"    members serving throughout: {sum(s.code == 3 for s in statuses)}/{len(statuses)}")


@step("damage /marathon: delete 10 apps, change 10, add 5")
def damage(cluster: Cluster) -> None:
    client = connect(cluster.zk_hosts)
    try:
        apps = sorted(client.get_children("/marathon/state/app"))
        for app in apps[:10]:
            client.delete(f"/marathon/state/app/{app}", recursive=True)
        for app in apps[10:20]:
            client.set(f"/marathon/state/app/{app}", b'{"id": "/broken"}')
        for i in range(5):
            client.create(f"/marathon/state/app/rogue-{i}", b"{}")
    finally:
        client.stop()
        client.close()


@step("dcos backup restore <id> --wait  (show: STATUS_RESTORING -> STATUS_READY)")
def restore_backup(cluster: Cluster, backup_id: str) -> None:
    client = service_client(cluster)
    client.restore(backup_id)
    seen: list[str] = []

    def note(doc: dict) -> None:
        state = doc["restores"]["component_status"].get("marathon")
        if not seen or seen[-1] != state:
            seen.append(state)
            click.echo(f"    restores.component_status.marathon = {state}")

    doc = client.wait(backup_id, restore_finished, note, interval=0.1)
    if doc["restores"]["status"] != "STATUS_READY":
        raise DcosBackupError(f"restore failed: {doc['restores'].get('reason')}")
    click.echo(f"    changes applied: {doc['restores']['history'][-1]['stats']['marathon']}")


@step("verify: /marathon equals the backed-up tree, byte for byte (data and ACLs)")
def verify(cluster: Cluster, expected: list[tuple]) -> None:
    actual = tree_of(cluster)
    if actual != expected:
        raise DcosBackupError("the restored tree differs from the backup")
    click.echo(f"    {len(actual)} znodes identical")


def run_demo(
    masters: int = 3, apps: int = 200, keep: bool = False, directory: Path | None = None, subnet: str = DEMO_SUBNET
) -> None:
    directory = directory or Path(tempfile.mkdtemp(prefix="dcos-local-demo-"))
    cluster = start(directory, masters, subnet)
    try:
        seed(cluster, apps)
        show_status(cluster)
        expected = tree_of(cluster)
        backup_id = create_backup(cluster)
        physical_backup_online(cluster)
        damage(cluster)
        restore_backup(cluster, backup_id)
        verify(cluster, expected)
        show_status(cluster)
    finally:
        if keep:
            click.echo(f"cluster left running; use it with: export DCOS_LOCAL_DIR={cluster.dir}")
        else:
            click.secho("==> stop the cluster (dcos-local down --purge)", bold=True)
            local_cluster.down(cluster, purge=True)
    click.secho("demo finished: every step passed", fg="green", bold=True)
