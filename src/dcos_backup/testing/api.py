"""The ways in to the backup API that tests and benchmarks use: through a cluster's Admin Router
(:func:`front_door`) or in-process (:func:`in_process_api`, :func:`service_api`, with a real IAM: users in
ZooKeeper, real signed tokens), and the few calls on it they share (a backup that has ended, a restore that
has ended)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.responses import Response
from fastapi.testclient import TestClient

from dcos_backup.api.app import build_app
from dcos_backup.api.auth import Authorizer
from dcos_backup.api.models import CREATE, LIST
from dcos_backup.catalog.storage import Storage
from dcos_backup.cli.client import BackupClient, Endpoint
from dcos_backup.iam.store import IAM_PATH, Credentials, UserStore
from dcos_backup.iam.tokens import issue_token
from dcos_backup.iam.users import SUPERUSER, Directory
from dcos_backup.iam.znodes import ROOT
from dcos_backup.jobs.engine import ZkEngine
from dcos_backup.jobs.scheduler import Scheduler
from dcos_backup.jobs.service import BackupService
from dcos_backup.local import security
from dcos_backup.local.spec import ClusterSpec
from dcos_backup.testing.tools import wait_for


def front_door(cluster: ClusterSpec, uid: str = security.BOOTSTRAP_USER, master: int = 1) -> BackupClient:
    """A client of ``cluster``'s backup API through master ``master``'s Admin Router, as user ``uid``."""
    token = security.login(cluster.files, cluster.zk_hosts, uid)
    return BackupClient(Endpoint(cluster.master(master).admin_router_url, token, str(cluster.files.ca_cert)))


def dcos_env(cluster: ClusterSpec, token: str | None = None, master: int = 1) -> dict[str, str]:
    """The DC/OS CLI's variables for ``cluster`` (what ``dcos-local env`` exports), with ``token`` if given."""
    cli = cluster.dcos_cli(master)
    return {
        "DCOS_URL": cli["DCOS_URL"],
        "DCOS_SSL_VERIFY": cli["DCOS_SSL_VERIFY"],
        "DCOS_ACS_TOKEN": token or security.login(cluster.files, cluster.zk_hosts, security.BOOTSTRAP_USER),
    }


SIGNING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # this test run's IAM key


@dataclass
class InProcessApi:
    """The service's app in-process (FastAPI TestClient), with a real IAM: users in ZooKeeper, real tokens.

    ``http`` sends bootstrapuser's token (a superuser); ``token(uid)`` makes one for another user."""

    http: TestClient
    users: UserStore

    def token(self, uid: str) -> str:
        return issue_token(SIGNING_KEY, uid)

    def headers(self, uid: str) -> dict[str, str]:
        return {"Authorization": f"token={self.token(uid)}"}


@contextlib.contextmanager
def in_process_api(
    service: BackupService,
    zk_hosts: str,
    scheduler: Scheduler | None = None,
    forwarder: Callable[[Authorizer], Callable[..., Awaitable[Response]]] | None = None,
) -> Iterator[InProcessApi]:
    """``service``'s API in-process (with ``scheduler``'s routes, if given; with the middleware
    ``forwarder(authorizer)``, as a follower's); its users (bootstrapuser: superuser, nobody: no permission)
    live in ZooKeeper at ``zk_hosts`` (give it a chroot), under credentials made for this app."""
    users = UserStore(zk_hosts, Credentials("dcos-backup", secrets.token_urlsafe(16)))
    # An open root, as before issue 24: the in-process service's engine has no service identity (the
    # trust of the service's znodes is tested on real services: tests/security/test_zk_takeover.py).
    users.client.ensure_path(ROOT)
    try:

        def add_users(directory: Directory) -> None:
            directory.add_user(security.BOOTSTRAP_USER).grant(SUPERUSER)
            directory.add_user("nobody")

        users.update(add_users)
        authorizer = Authorizer(SIGNING_KEY.public_key(), users)
        app = build_app(service, authorizer, scheduler, forwarder(authorizer) if forwarder else None)
        api = InProcessApi(TestClient(app), users)
        api.http.headers["Authorization"] = f"token={api.token(security.BOOTSTRAP_USER)}"
        yield api
    finally:
        # Only these credentials may read the users znode, so only they can clear it for the chroot's removal.
        users.client.delete(IAM_PATH)
        users.close()


@contextlib.contextmanager
def service_api(
    storage: Storage,
    zk_hosts: str,
    forwarder: Callable[[Authorizer], Callable[..., Awaitable[Response]]] | None = None,
) -> Iterator[InProcessApi]:
    """A backup service over ``storage`` with its own engine on ``zk_hosts``, its API in-process
    (:func:`in_process_api`, with ``forwarder``); the service and the engine are closed afterwards."""
    engine = ZkEngine(zk_hosts)
    service = BackupService(storage, engine, dcos_version="2.2.0")
    try:
        with in_process_api(service, zk_hosts, forwarder=forwarder) as api:
            yield api
    finally:
        service.close()
        engine.close()


def backup_doc(http, backup_id: str) -> dict:
    docs = http.get(LIST, params={"prefix": backup_id}).json()["backup_info"]
    return next(d for d in docs if d["id"] == backup_id)


def create_ready(http, label="pre-upgrade") -> dict:
    doc = http.post(CREATE, json={"label": label}).json()["backup_info"]
    return wait_for(
        lambda: (d := backup_doc(http, doc["id"]))["status"] != "STATUS_BACKING_UP" and d, what="backup to finish"
    )


def restore_ended(http, backup_id: str, restore_id: str | None = None) -> dict:
    """The backup's document once its restore ``restore_id`` (default: the latest) has ended."""

    def ended():
        doc = backup_doc(http, backup_id)
        restore = next((r for r in doc["restores"] if r["id"] == restore_id), None) if restore_id else None
        restore = restore or (doc["restores"][-1] if doc["restores"] else {})
        return restore.get("status") not in (None, "STATUS_RESTORING") and doc

    return wait_for(ended, what="restore to end")
