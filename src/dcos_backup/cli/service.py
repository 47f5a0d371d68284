"""``dcos-backup-service``: run the backup service (HTTP API + job runner) on a master."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NoReturn

import click

from dcos_backup.catalog.storage import LocalStorage
from dcos_backup.cli._common import run
from dcos_backup.components import DEFAULT_COMPONENTS, parse_component
from dcos_backup.service.app import build_app
from dcos_backup.service.auth import read_token_file
from dcos_backup.service.engine import ZkEngine
from dcos_backup.service.jobs import BackupService
from dcos_backup.service.server import serve


@click.command(help="Run the backup service: HTTP API under /system/v1/backup/v1 and the job runner.")
@click.option("--zk", "zk_hosts", required=True, envvar="DCOS_ZK_HOSTS", help="ZooKeeper connect string.")
@click.option(
    "--storage",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Directory of the backup catalog and archives (the master's local disk).",
)
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="File holding the bearer token (keep it 0600).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", default=8100, show_default=True)
@click.option(
    "--component",
    "components",
    multiple=True,
    metavar="NAME=/zk/path",
    help="Components to back up (repeatable); default: marathon=/marathon.",
)
def cli(zk_hosts: str, storage: Path, token_file: Path, host: str, port: int, components: tuple[str, ...]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    token = read_token_file(token_file)
    comps = tuple(parse_component(c) for c in components) or DEFAULT_COMPONENTS
    storage_backend = LocalStorage(storage)
    with ZkEngine(zk_hosts) as engine:
        service = BackupService(storage_backend, engine, comps)
        service.recover()
        try:
            serve(build_app(service, token), host, port)
        finally:
            service.close()


def main() -> NoReturn:
    run(cli)


if __name__ == "__main__":
    main()
