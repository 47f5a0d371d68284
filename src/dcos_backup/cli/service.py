"""``dcos-backup-service``: run the backup service (HTTP API + job runner) on a master."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import NoReturn

import click

from dcos_backup.catalog.storage import open_storage
from dcos_backup.cli._common import run
from dcos_backup.components import DEFAULT_COMPONENTS, parse_component
from dcos_backup.components.hooks import parse_hook
from dcos_backup.iam.store import Credentials, UserStore
from dcos_backup.iam.tokens import load_public_key
from dcos_backup.service.app import build_app
from dcos_backup.service.auth import Authorizer
from dcos_backup.service.engine import ZkEngine
from dcos_backup.service.forward import Forwarder
from dcos_backup.service.jobs import KEEP_SAFETY_BACKUPS, BackupService
from dcos_backup.service.leadership import Leader, Leadership
from dcos_backup.service.scheduler import Scheduler
from dcos_backup.service.schedules import ScheduleStore
from dcos_backup.service.server import serve
from dcos_backup.storage.crypto import create_key_file, load_key

file_option = click.Path(path_type=Path, dir_okay=False)
log = logging.getLogger(__name__)


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
def cli(
    zk_hosts: str,
    storage: str,
    s3_endpoint_url: str | None,
    socket_path: Path,
    iam_public_key: Path,
    zk_credentials: Path,
    zk_auth: Path | None,
    keep_safety_backups: int,
    encryption_key_file: Path | None,
    record_key_file: Path | None,
    components: tuple[str, ...],
    instance: str | None,
    advertise: str | None,
    ca_file: Path | None,
    hooks: tuple[str, ...],
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    comps = tuple(parse_component(c) for c in components) or DEFAULT_COMPONENTS
    public_key = load_public_key(iam_public_key)
    key = load_key(encryption_key_file) if encryption_key_file is not None else None
    created = record_key_file is not None and create_key_file(record_key_file)
    record_key = load_key(record_key_file) if record_key_file is not None else None
    storage_backend = open_storage(storage, s3_endpoint_url, key, record_key)
    if created:  # trust on first use: what the catalog holds when the key is made is taken as it is
        for backup_id in storage_backend.adopt_catalog():
            log.warning("signed the catalog record %s, written before the record key existed", backup_id)
    auth = Credentials.read(zk_auth).auth_data if zk_auth is not None else []
    with ZkEngine(zk_hosts, auth=auth) as engine, UserStore(zk_hosts, Credentials.read(zk_credentials)) as users:
        instance = instance or f"{socket.gethostname()}:{socket_path}"
        service = BackupService(
            storage_backend,
            engine,
            comps,
            instance=instance,
            hooks=[parse_hook(h) for h in hooks],
            keep_safety=keep_safety_backups,
        )
        # On the users' session, under the same identity: a schedule says what runs and what retention
        # deletes, so only the service may change one (anyone on ZooKeeper could otherwise prune backups).
        scheduler = Scheduler(service, ScheduleStore(users.client, users.credentials.acl))

        def lead() -> None:  # recovery first: an interrupted job is dealt with before new ones start
            service.recover()
            scheduler.start()

        leadership = Leadership(engine.client, Leader(instance, advertise), lead, scheduler.stop)
        app = build_app(service, Authorizer(public_key, users.watch()), scheduler)
        app.middleware("http")(Forwarder(leadership, ca_file))
        leadership.start()
        try:
            serve(app, socket_path)
        finally:
            leadership.stop()
            scheduler.stop()
            service.close()


def main() -> NoReturn:
    run(cli)


if __name__ == "__main__":
    main()
