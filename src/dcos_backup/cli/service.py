"""``dcos-backup-service``: run the backup service (HTTP API + job runner) on a master: parses its arguments
into a :class:`~dcos_backup.api.run.ServiceConfig` for :func:`~dcos_backup.api.run.run_service`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NoReturn

import click

from dcos_backup import __version__
from dcos_backup.api.forward import master_url
from dcos_backup.api.run import ServiceConfig, run_service
from dcos_backup.cli._common import run
from dcos_backup.components import DEFAULT_COMPONENTS, parse_component
from dcos_backup.components.hooks import parse_hook
from dcos_backup.jobs.safety import KEEP_SAFETY_BACKUPS

file_option = click.Path(path_type=Path, dir_okay=False)


@click.command(help="Run the backup service: DC/OS's Backup and Restore API on a unix socket, and the job runner.")
@click.version_option(__version__, "--version", message="%(prog)s %(version)s")
@click.option("--zk", "zk_hosts", required=True, envvar="DCOS_ZK_HOSTS", help="ZooKeeper connect string.")
@click.option(
    "--storage",
    required=True,
    help="Where the catalog and archives live: a directory (the master's disk) or s3://bucket/prefix.",
)
@click.option(
    "--s3-endpoint-url",
    envvar="AWS_ENDPOINT_URL",
    default=None,
    help="S3-compatible server for s3:// storage (default: AWS; credentials from the standard AWS variables).",
)
@click.option(
    "--socket",
    "socket_path",
    type=file_option,
    required=True,
    help="Unix socket to serve on (DC/OS: /run/dcos/dcos-backup-master.sock); the Admin Router proxies to it.",
)
@click.option("--iam-public-key", type=file_option, required=True, help="PEM public key that verifies tokens.")
@click.option(
    "--zk-credentials",
    type=file_option,
    required=True,
    help="File (0600) with the ZooKeeper identity user:password that may read the users and grants.",
)
@click.option(
    "--bootstrap-user",
    metavar="UID",
    help="The cluster's first superuser (DC/OS: bootstrapuser): created again, alone, when the users' store is "
    "absent (a ZooKeeper rebuilt); its other users come back with a restore of the iam component.",
)
@click.option(
    "--zk-auth",
    "zk_auth",
    type=file_option,
    help="File (0600) with the digest identity user:password the jobs present to ZooKeeper (default: none).",
)
@click.option(
    "--keep-safety-backups",
    type=click.IntRange(min=1),
    default=KEEP_SAFETY_BACKUPS,
    show_default=True,
    help="Safety backups kept; older ones are deleted after each successful restore.",
)
@click.option(
    "--encryption-key-file",
    type=file_option,
    default=None,
    help="File (0600) with the AES-256 key: every new archive is encrypted with it. Keep a copy off the cluster.",
)
@click.option(
    "--record-key-file",
    type=file_option,
    default=None,
    help="File (0600) with the cluster's key that signs catalog records (HMAC-SHA256), the same on every master; "
    "created with a new random key if missing (then the records already in the catalog are signed once).",
)
@click.option(
    "--component",
    "components",
    multiple=True,
    metavar="NAME=/zk/path",
    help="Components to back up (repeatable); default: marathon=/marathon and metronome=/metronome.",
)
@click.option(
    "--hook",
    "hooks",
    multiple=True,
    metavar="NAME:WHEN=[METHOD ]URL",
    help="Call an application before or after a restore of a component (repeatable), e.g. "
    "'marathon:after=DELETE http://127.0.0.1:8080/v2/leader'; default: none.",
)
@click.option(
    "--instance",
    envvar="DCOS_BACKUP_INSTANCE",
    help="This service's name in the job lock, the same across restarts on one master "
    "(default: HOSTNAME:SOCKET); a restart releases the lock its previous process held.",
)
@click.option(
    "--advertise",
    metavar="URL",
    help="Where the other masters' services forward job requests while this one leads: this master's "
    "Admin Router (https://<master-ip>). Without it, this service can lead but not be forwarded to.",
)
@click.option("--ca-file", type=file_option, help="CA certificate that verifies the other masters' Admin Routers.")
@click.option(
    "--master",
    "masters",
    multiple=True,
    metavar="URL",
    envvar="DCOS_BACKUP_MASTERS",
    help="A master's Admin Router, https://<master-ip> (repeatable; or DCOS_BACKUP_MASTERS, space-separated): "
    "the only places job requests are forwarded to, whatever the leader's znode says.",
)
@click.option(
    "--zk-archive",
    metavar="REPO",
    help="The continuous archive's repository (dcos-zk archive --repo): the web console shows what it can restore.",
)
@click.option(
    "--zk-archive-key-file",
    type=file_option,
    envvar="DCOS_ZK_REPO_KEY_FILE",
    help="The repository's key file (0600; dcos-local: DIR/secrets/repo.key): the timeline reads what it verifies.",
)
def cli(
    zk_hosts: str,
    storage: str,
    s3_endpoint_url: str | None,
    socket_path: Path,
    iam_public_key: Path,
    zk_credentials: Path,
    bootstrap_user: str | None,
    zk_auth: Path | None,
    keep_safety_backups: int,
    encryption_key_file: Path | None,
    record_key_file: Path | None,
    components: tuple[str, ...],
    instance: str | None,
    advertise: str | None,
    ca_file: Path | None,
    masters: tuple[str, ...],
    zk_archive: str | None,
    zk_archive_key_file: Path | None,
    hooks: tuple[str, ...],
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = ServiceConfig(
        zk_hosts=zk_hosts,
        storage=storage,
        s3_endpoint_url=s3_endpoint_url,
        socket_path=socket_path,
        iam_public_key=iam_public_key,
        zk_credentials=zk_credentials,
        zk_auth=zk_auth,
        bootstrap_user=bootstrap_user,
        keep_safety_backups=keep_safety_backups,
        encryption_key_file=encryption_key_file,
        record_key_file=record_key_file,
        components=tuple(parse_component(c) for c in components) or DEFAULT_COMPONENTS,
        hooks=tuple(parse_hook(h) for h in hooks),
        instance=instance,
        advertise=advertise,
        ca_file=ca_file,
        masters=tuple(master_url(m) for m in masters),
        zk_archive=zk_archive,
        zk_archive_key_file=zk_archive_key_file,
    )
    run_service(config)


def main() -> NoReturn:
    run(cli)


if __name__ == "__main__":
    main()
