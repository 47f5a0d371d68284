"""The quick-start demo (``dcos-local demo``): start a real 3-master cluster, seed it, back up (logical and
--online physical), damage, restore, verify, stop.

A thin script over the public commands: each step runs the commands an operator would type (shown after
``$``) and prints what they print, so the demo doubles as a tour. Everything goes through the front door:
``dcos backup`` reaches the Admin Router over HTTPS with the DC/OS CLI's variables (``eval "$(dcos-local env
1)"``), and the seed's ``curl https://<master>/exhibitor/exhibitor/v1/cluster/status`` checks the ensemble.
Only the damage (an accident, not a command) and the final byte-for-byte comparison talk to ZooKeeper.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

import click

from dcos_backup.errors import DcosBackupError
from dcos_backup.local.spec import ClusterSpec
from dcos_backup.logical import connect
from dcos_backup.master.layout import LOCAL_CLUSTER_FILE
from dcos_backup.testing.trees import snapshot

P = ParamSpec("P")
R = TypeVar("R")

DEMO_SUBNET = "127.21.0"
BIN = Path(sys.executable).parent  # the console scripts are installed beside this Python
# Settings that would point the commands at something else than the demo's own cluster.
FOREIGN_SETTINGS = ("DCOS_URL", "DCOS_ACS_TOKEN", "DCOS_SSL_VERIFY", "DCOS_EXHIBITOR_DIR")


def step(title: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            click.secho(f"==> {title}", bold=True)
            started = time.monotonic()
            result = fn(*args, **kwargs)
            click.echo(f"    done in {time.monotonic() - started:.1f}s")
            return result

        return wrapped

    return decorate


class Shell:
    """Runs console scripts against the demo's cluster (``DCOS_LOCAL_DIR``), echoing them like a terminal."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.env = {k: v for k, v in os.environ.items() if k not in FOREIGN_SETTINGS}
        self.env["DCOS_LOCAL_DIR"] = str(directory)

    def run(self, *command: str, env: dict[str, str] | None = None, echo: bool = True) -> str:
        """Run one command and return its stdout; with ``echo`` (or when it fails) show it and its output.
        Our console scripts run from beside this Python; others (curl) from the PATH."""
        if echo:
            click.echo(f"    $ {shlex.join(command)}")
        program = BIN / command[0]
        result = subprocess.run(
            [str(program) if program.exists() else command[0], *command[1:]],
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
        )
        if echo or result.returncode != 0:
            for line in (result.stdout + result.stderr).splitlines():
                if line.strip():
                    click.echo(f"      {line}")
        if result.returncode != 0:
            raise DcosBackupError(f"'{shlex.join(command)}' failed with exit code {result.returncode}")
        return result.stdout

    def show(self, backup_id: str) -> dict:
        return json.loads(self.run("dcos", "backup", "show", backup_id, echo=False))

    def export(self, master: int) -> dict[str, str]:
        """``eval "$(dcos-local env N)"``: master N's variables, for every later command."""
        click.echo(f'    $ eval "$(dcos-local env {master})"')
        exports = self.run("dcos-local", "env", str(master), echo=False)
        variables = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in exports.splitlines())
        self.env.update(variables)
        return variables


@step("dcos-local up: a local cluster (ZooKeeper ensemble, backup service, an HTTPS Admin Router per master)")
def start(shell: Shell, masters: int, subnet: str) -> ClusterSpec:
    click.echo(f"    $ export DCOS_LOCAL_DIR={shlex.quote(str(shell.directory))}")
    shell.run("dcos-local", "up", "--masters", str(masters), "--subnet", subnet, "--heap", "512m")
    variables = shell.export(1)
    click.echo(f"      DCOS_URL={variables['DCOS_URL']} DCOS_SSL_VERIFY={variables['DCOS_SSL_VERIFY']}")
    return ClusterSpec.load(shell.directory)


@step("dcos-local seed: Marathon state under /marathon")
def seed(shell: Shell, apps: int) -> None:
    shell.run("dcos-local", "seed", "--apps", str(apps))


@step("cluster status through the Admin Router (the seed's check), then on every master")
def show_status(shell: Shell, cluster: ClusterSpec) -> None:
    url = f"{cluster.master(1).admin_router_url}/exhibitor/exhibitor/v1/cluster/status"
    shell.run("curl", "-sS", "--fail", "--cacert", shell.env["DCOS_SSL_VERIFY"], url)
    shell.run("dcos-local", "status")


def tree_of(cluster: ClusterSpec) -> list[tuple]:
    client = connect(cluster.zk_hosts)
    try:
        return snapshot(client, "/marathon")
    finally:
        client.stop()
        client.close()


@step("dcos backup create --label=pre-upgrade --wait")
def create_backup(shell: Shell) -> str:
    backup_id = shell.run("dcos", "backup", "create", "--label=pre-upgrade", "--wait").strip()
    shell.run("dcos", "backup", "list")
    click.echo(f"    $ dcos backup show {backup_id}")
    doc = shell.show(backup_id)
    comp = doc["component_status"]["marathon"]
    summary = f"{comp['nodes']} znodes, sha256 {comp['sha256'][:16]}..."
    click.echo(f"      status {doc['status']}, component_status.marathon {comp['status']}: {summary}")
    return backup_id


@step("dcos-zk backup --online on master 2 (ZooKeeper keeps serving), then dcos-zk verify")
def physical_backup_online(shell: Shell, cluster: ClusterSpec) -> None:
    master = cluster.master(2 if len(cluster.masters) > 1 else 1)
    archive = cluster.dir / "backups" / f"zk-master-{master.id}-{time.strftime('%Y%m%dT%H%M%S')}.tar.gz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    shell.export(master.id)
    shell.run("dcos-zk", "backup", str(archive), "--online")
    shell.run("dcos-zk", "verify", str(archive))
    statuses = json.loads(shell.run("dcos-local", "status", "--json", echo=False))
    click.echo(f"    members serving after it: {sum(s['code'] == 3 for s in statuses)}/{len(statuses)}")


@step("damage /marathon: delete 10 apps, change 10, add 5")
def damage(cluster: ClusterSpec) -> None:
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


@step("dcos backup restore <id>, then dcos backup show <id> until the restore ends")
def restore_backup(shell: Shell, backup_id: str) -> None:
    restore_id = shell.run("dcos", "backup", "restore", backup_id).strip()
    click.echo(f"    $ dcos backup show {backup_id}   (until restore {restore_id} ends)")
    seen: list[str] = []
    while True:
        restore = next(r for r in shell.show(backup_id)["restores"] if r["id"] == restore_id)
        state = restore["component_status"]["marathon"]["status"]
        if not seen or seen[-1] != state:
            seen.append(state)
            click.echo(f"      restores[-1].component_status.marathon.status = {state}")
        if restore["status"] != "STATUS_RESTORING":
            break
    if restore["status"] != "STATUS_READY":
        raise DcosBackupError(f"restore failed: {restore.get('reason')}")
    took = datetime.fromisoformat(restore["finished_at"]) - datetime.fromisoformat(restore["timestamp"])
    click.echo(f"    restored in {took.total_seconds():.1f}s after a safety backup ({restore['safety_backup_id']})")
    click.echo(f"    changes applied: {restore['component_status']['marathon']['stats']}")


@step("verify: /marathon equals the backed-up tree, byte for byte (data and ACLs)")
def verify(cluster: ClusterSpec, expected: list[tuple]) -> None:
    actual = tree_of(cluster)
    if actual != expected:
        raise DcosBackupError("the restored tree differs from the backup")
    click.echo(f"    {len(actual)} znodes identical")


def run_demo(
    masters: int = 3, apps: int = 200, keep: bool = False, directory: Path | None = None, subnet: str = DEMO_SUBNET
) -> None:
    shell = Shell((directory or Path(tempfile.mkdtemp(prefix="dcos-local-demo-"))).absolute())
    try:
        cluster = start(shell, masters, subnet)
        seed(shell, apps)
        show_status(shell, cluster)
        expected = tree_of(cluster)
        backup_id = create_backup(shell)
        physical_backup_online(shell, cluster)
        damage(cluster)
        restore_backup(shell, backup_id)
        verify(cluster, expected)
        show_status(shell, cluster)
    finally:
        if keep:
            click.echo(f"cluster left running; use it with: export DCOS_LOCAL_DIR={shell.directory}")
        elif (shell.directory / LOCAL_CLUSTER_FILE).exists():
            click.secho("==> stop the cluster (dcos-local down --purge)", bold=True)
            shell.run("dcos-local", "down", "--purge")
    click.secho("demo finished: every step passed", fg="green", bold=True)
