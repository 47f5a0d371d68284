"""``dcos-backup-service``: run the backup service (HTTP API + job runner) on a master."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NoReturn

import click

from dcos_backup.catalog.crypto import load_key
from dcos_backup.catalog.storage import open_storage
from dcos_backup.cli._common import run
from dcos_backup.components import DEFAULT_COMPONENTS, parse_component
from dcos_backup.iam.store import Credentials, UserStore
from dcos_backup.iam.tokens import load_public_key
from dcos_backup.service.app import build_app
from dcos_backup.service.auth import Authorizer
from dcos_backup.service.engine import ZkEngine
from dcos_backup.service.jobs import BackupService
from dcos_backup.service.server import serve

file_option = click.Path(path_type=Path, dir_okay=False)


@click.command(help="Run the backup service: DC/OS's Backup and Restore API on a unix socket, and the job runner.")
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
    "--encryption-key-file",
    type=file_option,
    default=None,
    help="File (0600) with the AES-256 key: every new archive is encrypted with it. Keep a copy off the cluster.",
)
@click.option(
    "--component",
    "components",
    multiple=True,
    metavar="NAME=/zk/path",
    help="Components to back up (repeatable); default: marathon=/marathon.",
)
def cli(
    zk_hosts: str,
    storage: str,
    s3_endpoint_url: str | None,
    socket_path: Path,
    iam_public_key: Path,
    zk_credentials: Path,
    encryption_key_file: Path | None,
    components: tuple[str, ...],
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    comps = tuple(parse_component(c) for c in components) or DEFAULT_COMPONENTS
    public_key = load_public_key(iam_public_key)
    key = load_key(encryption_key_file) if encryption_key_file is not None else None
    storage_backend = open_storage(storage, s3_endpoint_url, key)
    with ZkEngine(zk_hosts) as engine, UserStore(zk_hosts, Credentials.read(zk_credentials)) as users:
        service = BackupService(storage_backend, engine, comps)
        service.recover()
        try:
            serve(build_app(service, Authorizer(public_key, users.watch())), socket_path)
        finally:
            service.close()


def main() -> NoReturn:
    run(cli)


if __name__ == "__main__":
    main()
