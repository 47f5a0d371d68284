"""Running the backup service: one :class:`ServiceConfig` in, the core (:mod:`dcos_backup.jobs`) and this
face wired together and served on the unix socket until SIGTERM (``dcos-backup-service`` only parses its
arguments into the config: :mod:`dcos_backup.cli.service`).

What is wired, in order: the catalog's storage (with the record key, made on first use, and the catalog
adopted under it then), the engine and the users' ZooKeeper sessions, the service, its scheduler, the
leadership that starts them (recovery first) on the leading instance, the API with its forwarding, and
the web console (:mod:`dcos_backup.console`) beside it.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from dcos_backup.api.app import build_app
from dcos_backup.api.auth import Authorizer
from dcos_backup.api.forward import Forwarder, origin
from dcos_backup.api.server import serve
from dcos_backup.catalog.storage import Storage, open_storage
from dcos_backup.components import DEFAULT_COMPONENTS, ZkSubtree
from dcos_backup.components.hooks import Hook
from dcos_backup.console.pages import install_console
from dcos_backup.iam import znodes
from dcos_backup.iam.store import Credentials, UserStore
from dcos_backup.iam.tokens import load_public_key
from dcos_backup.jobs.engine import ZkEngine
from dcos_backup.jobs.leadership import Leader, Leadership
from dcos_backup.jobs.point import RepositoryOpener
from dcos_backup.jobs.safety import KEEP_SAFETY_BACKUPS
from dcos_backup.jobs.scheduler import Scheduler
from dcos_backup.jobs.schedules import ScheduleStore
from dcos_backup.jobs.service import BackupService
from dcos_backup.physical.continuous.repository import Repository
from dcos_backup.storage.crypto import create_key_file, load_key
from dcos_backup.storage.locations import open_store

log = logging.getLogger(__name__)

RECORD_KEY_FILE = "record key file"  # what errors call --record-key-file (it signs; it encrypts nothing)


@dataclass(frozen=True)
class ServiceConfig:
    """Everything one service instance is started with (``dcos-backup-service --help`` says what each is)."""

    zk_hosts: str
    storage: str  # a directory or s3://bucket/prefix
    socket_path: Path
    iam_public_key: Path
    zk_credentials: Path  # the identity that reads the users and grants (and writes the schedules)
    zk_auth: Path | None = None  # the identity the jobs present to ZooKeeper
    bootstrap_user: str | None = None  # the superuser created again when the users' store is absent
    s3_endpoint_url: str | None = None
    keep_safety_backups: int = KEEP_SAFETY_BACKUPS
    encryption_key_file: Path | None = None
    record_key_file: Path | None = None
    components: tuple[ZkSubtree, ...] = DEFAULT_COMPONENTS
    hooks: tuple[Hook, ...] = ()
    instance: str | None = None  # default: HOSTNAME:SOCKET
    advertise: str | None = None
    ca_file: Path | None = None
    masters: tuple[str, ...] = ()  # the cluster's masters' Admin Routers: the only places requests are forwarded to
    zk_archive: str | None = None  # the continuous archive's repository: the web console's timeline reads it
    zk_archive_key_file: Path | None = None  # the repository's key (its MACs): without it the timeline is off

    @property
    def instance_name(self) -> str:
        return self.instance or f"{socket.gethostname()}:{self.socket_path}"


def open_catalog(config: ServiceConfig) -> Storage:
    """The catalog's storage, with its keys; a record key made now signs the records already there."""
    key = load_key(config.encryption_key_file) if config.encryption_key_file is not None else None
    created = config.record_key_file is not None and create_key_file(config.record_key_file)
    record_key = load_key(config.record_key_file, RECORD_KEY_FILE) if config.record_key_file is not None else None
    storage = open_storage(config.storage, config.s3_endpoint_url, key, record_key)
    if created:  # trust on first use: what the catalog holds when the key is made is taken as it is
        for backup_id in storage.adopt_catalog():
            log.warning("signed the catalog record %s, written before the record key existed", backup_id)
    return storage


def archive_opener(config: ServiceConfig) -> RepositoryOpener | None:
    """How the service opens the cluster's continuous archive for a restore from a point (None: not
    configured); opened per request, so a repository made after the service started is found."""
    url, key_file = config.zk_archive, config.zk_archive_key_file
    if url is None or key_file is None:
        return None

    def opened() -> Repository:
        repo = Repository(open_store(url, endpoint_url=config.s3_endpoint_url), load_key(key_file))
        repo.check_identity()  # the cluster's own repository (its key), not another's
        return repo

    return opened


def check_forwarding(config: ServiceConfig) -> None:
    """Say at start what keeps a follower from forwarding job requests (it then answers them 503)."""
    if not config.masters:
        log.warning("no --master given: while another instance leads, this one cannot forward job requests")
    elif config.ca_file is None:
        log.warning("no --ca-file: job requests are forwarded only to masters checked with the cluster's CA")
    if config.advertise and config.masters and origin(config.advertise) not in {origin(m) for m in config.masters}:
        log.warning(
            "--advertise %s is not one of the --master URLs: the other instances will not forward to it",
            config.advertise,
        )


def run_service(config: ServiceConfig) -> None:
    """Serve the backup service until SIGTERM, then stop leading and let a running job end."""
    public_key = load_public_key(config.iam_public_key)
    storage = open_catalog(config)
    auth = Credentials.read(config.zk_auth).auth_data if config.zk_auth is not None else []
    credentials = Credentials.read(config.zk_credentials)
    check_forwarding(config)
    with (
        # The lock's and the leader's session presents the service's identity too: their znodes are its own.
        ZkEngine(config.zk_hosts, auth=auth, owner=credentials) as engine,
        UserStore(config.zk_hosts, credentials, bootstrap=config.bootstrap_user) as users,
    ):
        for path in znodes.secure_tree(users.client, credentials):
            log.warning("removed %s from the service's znodes: the service did not create it", path)
        instance = config.instance_name
        service = BackupService(
            storage,
            engine,
            config.components,
            instance=instance,
            hooks=config.hooks,
            keep_safety=config.keep_safety_backups,
            zk_archive=archive_opener(config),
        )
        # On the users' session, under the same identity: a schedule says what runs and what retention
        # deletes, so only the service may change one (anyone on ZooKeeper could otherwise prune backups).
        scheduler = Scheduler(service, ScheduleStore(users.client, znodes.owner_acl(credentials, znodes.SCHEDULES)))

        def lead() -> None:  # recovery first: an interrupted job is dealt with before new ones start
            service.recover()
            scheduler.start()

        leadership = Leadership(engine.client, Leader(instance, config.advertise), lead, scheduler.stop)
        service.fenced_by(lambda: leadership.fence)
        authorizer = Authorizer(public_key, users.keep_bootstrap())
        forwarder = Forwarder(leadership, authorizer, config.masters, config.ca_file)
        app = build_app(service, authorizer, scheduler, forwarder, is_leader=lambda: leadership.is_leader)
        install_console(
            app, authorizer, config.zk_archive, config.zk_archive_key_file, config.s3_endpoint_url
        )  # outermost: the cookie
        leadership.start()
        try:
            serve(app, config.socket_path)
        finally:
            leadership.stop()
            scheduler.stop()
            service.close()
