"""``dcos-local``: start, inspect and stop a real N-master cluster on this machine."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import NoReturn

import click

from dcos_backup import __version__
from dcos_backup.cli._common import run
from dcos_backup.cli._progress import progress_on_terminal
from dcos_backup.cli._tables import print_status_table
from dcos_backup.errors import ClusterError
from dcos_backup.exhibitor.config import parse_zk_extra
from dcos_backup.exhibitor.status import SERVING, is_healthy
from dcos_backup.iam.tokens import parse_ttl
from dcos_backup.iam.users import ACTIONS, FULL
from dcos_backup.local import cluster as local_cluster
from dcos_backup.local import security
from dcos_backup.local.spec import DEFAULT_SUBNET, ClusterSpec
from dcos_backup.storage.s3 import is_s3_url

dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Cluster directory (default: $DCOS_LOCAL_DIR, else ~/.local/state/dcos-local).",
)


@click.group(help="A real multi-master DC/OS-style cluster (ZooKeeper ensemble) on loopback addresses.")
@click.version_option(__version__, "--version", message="%(prog)s %(version)s")
def cli() -> None:
    pass


@cli.command()
@click.option("--masters", default=3, show_default=True, help="Number of masters (1-9).")
@dir_option
@click.option(
    "--subnet",
    default=DEFAULT_SUBNET,
    show_default=True,
    help="Master N listens on <subnet>.N (ZooKeeper 2181/2888/3888, Exhibitor 8181, Admin Router 443).",
)
@click.option(
    "--zk-config",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra zoo.cfg line for every member, e.g. snapCount=2 (repeatable).",
)
@click.option("--heap", default="1g", show_default=True, help="Java heap of each ZooKeeper.")
@click.option("--timeout", default=90.0, show_default=True, help="Seconds to wait for a serving ensemble.")
@click.option("--zk-archive", metavar="REPO", default=None, help="Archive every master's ZooKeeper into REPO.")
@click.option(
    "--encryption-key-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Encrypt every backup archive with the AES-256 key in FILE (created 0600 with a new key if missing).",
)
@click.option(
    "--storage",
    type=click.Choice(["local", "s3"]),
    default="local",
    show_default=True,
    help="Where the backup service keeps backups: the master's disk, or a bucket of an S3 server (moto) it starts.",
)
@click.option(
    "--zk-auth",
    metavar="USER:PASSWORD",
    help="Digest identity the backup service presents to ZooKeeper (kept 0600 in the cluster's secrets).",
)
@click.option(
    "--hook",
    "hooks",
    multiple=True,
    metavar="NAME:WHEN=[METHOD ]URL",
    help="Application hook of the backup service around restores (repeatable), e.g. "
    "'marathon:after=DELETE http://127.0.0.1:8080/v2/leader'.",
)
@click.option(
    "--monitoring",
    is_flag=True,
    help="Also run Prometheus (Debian's) on <subnet>.1:9090, scraping every master's service and Exhibitor.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the cluster (directory, masters, URLs) as JSON.")
def up(
    masters: int,
    directory: Path | None,
    subnet: str,
    zk_config: tuple[str, ...],
    heap: str,
    timeout: float,
    zk_archive: str | None,
    encryption_key_file: Path | None,
    storage: str,
    zk_auth: str | None,
    hooks: tuple[str, ...],
    monitoring: bool,
    as_json: bool,
) -> None:
    """Start the masters, the backup service and every master's Admin Router (HTTPS on port 443: run as root)."""
    extra = list(parse_zk_extra(zk_config))
    cluster = local_cluster.up(
        directory,
        masters,
        subnet,
        extra,
        heap,
        timeout,
        zk_archive=zk_archive,
        zk_auth=zk_auth,
        hooks=hooks,
        encryption_key_file=encryption_key_file,
        storage=storage,
        monitoring=monitoring,
    )
    if as_json:
        doc = cluster.to_dict()  # cluster.json's fields: dir, zk_hosts, masters (with their URLs), ...
        if cluster.service:
            doc["ca_cert"] = str(cluster.files.ca_cert)
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"cluster up in {cluster.dir}: {len(cluster.masters)} masters, ZooKeeper {cluster.zk_hosts}")
    if cluster.service:
        urls = ", ".join(m.admin_router_url for m in cluster.masters)
        click.echo(f"Admin Router: {urls} (CA: {cluster.files.ca_cert}); user bootstrapuser")
        if "s3_endpoint_url" in cluster.service:
            click.echo(f"backups in {cluster.service['storage']} at {cluster.service['s3_endpoint_url']}")
        if "encryption_key_file" in cluster.service:
            click.echo(
                f"archives encrypted with the key in {cluster.service['encryption_key_file']} "
                f"(id {cluster.service['encryption_key_id']}): keep a copy off the cluster, backups are lost without it"
            )
    if cluster.s3_endpoint() is not None:
        click.echo("warning: the S3 server keeps objects in memory only: dcos-local down loses them", err=True)
    if cluster.zk_archive:
        click.echo(f"continuous archiving on: every master's ZooKeeper into {cluster.zk_archive} (dcos-zk restore)")
    if cluster.prometheus:
        click.echo(f"Prometheus: {cluster.prometheus['url']} (user {cluster.prometheus['user']}: metrics only)")


@cli.command()
@dir_option
@click.option("--purge", is_flag=True, help="Also delete the cluster directory (all data).")
def down(directory: Path | None, purge: bool) -> None:
    """Stop every process the cluster started."""
    cluster = ClusterSpec.load(directory)
    survivors = local_cluster.down(cluster, purge)
    if not purge and cluster.s3_endpoint() is not None:
        # moto keeps its objects in memory: say so before anyone counts on them after the next up.
        click.echo(
            f"warning: the S3 server at {cluster.s3_endpoint()} kept its objects in memory: the backups "
            + ("and the ZooKeeper archive " if is_s3_url(cluster.zk_archive or "") else "")
            + "in it are gone (ZooKeeper's data stays; download backups before down to keep them)",
            err=True,
        )
    if survivors:
        raise ClusterError(f"processes still running after stop: {survivors}")
    click.echo(f"cluster in {cluster.dir} stopped" + (" and purged" if purge else ""))


@cli.command()
@dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the Exhibitor cluster status list.")
def status(directory: Path | None, as_json: bool) -> None:
    """Show each master's ZooKeeper state, as GET /exhibitor/v1/cluster/status does.

    Exit code 0 when every master serves and one leads, 3 when not (the table still shows each master,
    every one "down" when all ZooKeepers are stopped), 1 with an error when nothing of the cluster runs.
    """
    cluster = ClusterSpec.load(directory)
    if not local_cluster.anything_running(cluster):
        raise ClusterError(f"the cluster in {cluster.dir} is not running (start it with: dcos-local up)")
    statuses = local_cluster.status(cluster)
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in statuses], indent=2))
    else:
        supervisors = ["running" if local_cluster.is_running(m) else "stopped" for m in cluster.masters]
        print_status_table(f"dcos-local cluster in {cluster.dir}", statuses, supervisors)
    if not is_healthy(statuses):
        serving = sum(s.code == SERVING for s in statuses)
        click.echo(f"{serving} of {len(statuses)} masters serving", err=True)
        click.get_current_context().exit(3)


@cli.command("stop-zk")
@click.argument("n", type=int)
@dir_option
def stop_zk(n: int, directory: Path | None) -> None:
    """Stop master N's Exhibitor and ZooKeeper (like: systemctl stop dcos-exhibitor)."""
    local_cluster.stop_master(ClusterSpec.load(directory), n)
    click.echo(f"master {n}: ZooKeeper stopped")


@cli.command("start-zk")
@click.argument("n", type=int)
@dir_option
@click.option("--wait", is_flag=True, help="Then wait for the member to serve (saying so while there is no quorum).")
@click.option(
    "--timeout", default=60.0, show_default=True, help="With --wait: seconds to serve once a quorum can form."
)
@click.option("--no-wait", is_flag=True, hidden=True)  # the default now; accepted so that old scripts keep working
@click.option(
    "--force", is_flag=True, help="Start even if the restore marks say this master's data is not the others'."
)
def start_zk(n: int, directory: Path | None, wait: bool, timeout: float, no_wait: bool, force: bool) -> None:
    """Start master N's Exhibitor and ZooKeeper (like: systemctl start dcos-exhibitor).

    Returns as soon as the supervisor is up, as systemctl start does: ZooKeeper then joins the ensemble
    once enough masters run for a quorum (follow with dcos-local status). With --wait it waits for the
    member to serve instead; while too few masters run for a quorum it says so and keeps waiting.
    """
    cluster = ClusterSpec.load(directory)
    notify = lambda m: click.echo(m, err=True)  # noqa: E731
    local_cluster.start_master(cluster, n, wait and not no_wait, timeout, notify, force)
    if wait and not no_wait:
        click.echo(f"master {n}: ZooKeeper serving")
    else:
        click.echo(f"master {n}: supervisor started, ZooKeeper starting (dcos-local status shows when it serves)")


@cli.command()
@click.argument("n", type=int)
@dir_option
def env(n: int, directory: Path | None) -> None:
    """Print shell exports for master N: its tools (dcos-zk) and the DC/OS CLI's DCOS_URL, DCOS_ACS_TOKEN
    (a fresh bootstrapuser token) and DCOS_SSL_VERIFY: eval "$(dcos-local env 2)"."""
    cluster = ClusterSpec.load(directory)
    master = cluster.master(n)
    exports = {
        "DCOS_LOCAL_DIR": str(cluster.dir),
        "DCOS_MASTER_ID": str(master.id),
        "DCOS_EXHIBITOR_DIR": str(master.layout.exhibitor_dir),
        "DCOS_ZK_ADDRESS": master.member.client_address,
        "DCOS_ZK_HOSTS": cluster.zk_hosts,
        "DCOS_EXHIBITOR_URL": master.member.exhibitor_url,
    }
    if cluster.zk_archive:
        exports["DCOS_ZK_REPO"] = cluster.zk_archive
        exports["DCOS_ZK_REPO_KEY_FILE"] = str(cluster.files.repo_key)
        if is_s3_url(cluster.zk_archive):  # so that dcos-zk reads the repository in the cluster's S3
            exports.update(cluster.s3_env() or {})
    if cluster.service:
        cli = cluster.dcos_cli(n)
        exports["DCOS_URL"] = cli["DCOS_URL"]
        exports["DCOS_ACS_TOKEN"] = security.issue_bootstrap_token(cluster.files)
        exports["DCOS_SSL_VERIFY"] = cli["DCOS_SSL_VERIFY"]
    if cluster.prometheus:
        exports["PROMETHEUS_URL"] = cluster.prometheus["url"]
    for key, value in exports.items():
        click.echo(f"export {key}={shlex.quote(value)}")


@cli.group()
def iam() -> None:
    """Users, permissions and tokens of the cluster (DC/OS's IAM): bootstrapuser is a superuser."""


@iam.command("add-user")
@click.argument("uid")
@click.option("--grant", "grants", multiple=True, metavar="PERMISSION", help="Resource id granted 'full' (repeatable).")
@dir_option
def add_user(uid: str, grants: tuple[str, ...], directory: Path | None) -> None:
    """Add the user UID (idempotent), e.g. --grant dcos:adminrouter:ops:system-backup."""
    cluster = ClusterSpec.load(directory)
    user = security.add_user(cluster.files, cluster.zk_hosts, uid, [(g, FULL) for g in grants]).user(uid)
    click.echo(f"user {uid}: " + (", ".join(f"{g.rid} {g.action}" for g in user.grants) or "no permissions"))


@iam.command("grant")
@click.argument("uid")
@click.argument("permission")
@click.argument("action", default=FULL, type=click.Choice(ACTIONS))
@dir_option
def grant(uid: str, permission: str, action: str, directory: Path | None) -> None:
    """Give the user UID the PERMISSION (a resource id) with ACTION (default: full)."""
    cluster = ClusterSpec.load(directory)
    security.grant(cluster.files, cluster.zk_hosts, uid, permission, action)
    click.echo(f"user {uid}: granted {permission} {action}")


@iam.command("login")
@click.argument("uid")
@click.option("--ttl", default="5d", show_default=True, help="Lifetime of the token: 90s, 30m, 1h, 5d.")
@dir_option
def login(uid: str, ttl: str, directory: Path | None) -> None:
    """Print a token of the user UID (for DCOS_ACS_TOKEN or 'Authorization: token=...'), nothing else."""
    lifetime = parse_ttl(ttl)
    cluster = ClusterSpec.load(directory)
    click.echo(security.login(cluster.files, cluster.zk_hosts, uid, lifetime))


@cli.command()
@dir_option
@click.option("--apps", default=50, show_default=True, help="Number of Marathon apps (about 5.5 znodes each).")
@click.option("--seed", "seed_value", default=0, show_default=True, help="Random seed: same seed, same bytes.")
@click.option("--replace", is_flag=True, help="Delete an existing /marathon first (else a second seed is refused).")
def seed(directory: Path | None, apps: int, seed_value: int, replace: bool) -> None:
    """Write realistic, deterministic Marathon state under /marathon (plus live ephemeral nodes).

    Each app is one app node, 1-3 version nodes and 1-4 instance nodes (5.5 on average), plus about 20
    nodes for the groups and Marathon's own state; progress is shown on a terminal.
    """
    cluster = ClusterSpec.load(directory)
    with progress_on_terminal("znodes") as update:
        stats = local_cluster.seed(
            cluster, apps, seed_value, replace, progress=lambda nodes, size: update("seeding", nodes, size)
        )
    click.echo(f"seeded /marathon: {stats.nodes} znodes, {stats.bytes} bytes of data ({apps} apps, seed {seed_value})")


@cli.command()
@click.option("--masters", default=3, show_default=True)
@click.option("--apps", default=200, show_default=True, help="Marathon apps to seed.")
@click.option("--keep", is_flag=True, help="Leave the demo cluster running at the end.")
@click.option("--subnet", default="127.21.0", show_default=True, help="Loopback subnet of the demo cluster.")
@dir_option
def demo(masters: int, apps: int, keep: bool, subnet: str, directory: Path | None) -> None:
    """Start a cluster, seed it, back up, damage, restore, verify (in a temporary directory, or --dir)."""
    from dcos_backup.local.demo import run_demo

    run_demo(masters, apps, keep, directory, subnet)


def main() -> NoReturn:
    run(cli)


if __name__ == "__main__":
    main()
