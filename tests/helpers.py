"""What tests (and bench/reliability_report.py, through tests/e2e/fault_scenarios.py) share besides fixtures:
waiting for a state, running the console scripts, the seed's "damage /marathon", and the ways in to the
backup API: through a cluster's Admin Router (:func:`front_door`) or in-process (:func:`in_process_api`)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from kazoo.client import KazooClient

from dcos_backup.api.app import build_app
from dcos_backup.api.auth import Authorizer
from dcos_backup.catalog.storage import Storage
from dcos_backup.cli.client import BackupClient, Endpoint
from dcos_backup.iam.store import IAM_PATH, Credentials, UserStore
from dcos_backup.iam.tokens import issue_token
from dcos_backup.iam.users import SUPERUSER
from dcos_backup.jobs.engine import ZkEngine
from dcos_backup.jobs.scheduler import Scheduler
from dcos_backup.jobs.service import BackupService
from dcos_backup.local import security
from dcos_backup.local.spec import ClusterSpec

T = TypeVar("T")

BIN = Path(sys.executable).parent  # the console scripts of the package under test
# Settings from the caller's shell that would point a tool at something else than the cluster under test.
AMBIENT_SETTINGS = ("DCOS_LOCAL_DIR", "DCOS_URL", "DCOS_ACS_TOKEN", "DCOS_SSL_VERIFY", "DCOS_EXHIBITOR_DIR")


def wait_for(predicate: Callable[[], T], timeout: float = 60.0, interval: float = 0.1, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something true, and return that; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def tool(name: str) -> str:
    """The path of one of the package's console scripts (dcos, dcos-zk, dcos-local, ...)."""
    return str(BIN / name)


def run_tool(
    name: str, *args: str, cluster_dir: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300.0
) -> subprocess.CompletedProcess:
    """Run a console script as a user would, against ``cluster_dir`` (``DCOS_LOCAL_DIR``) if given."""
    full_env = {k: v for k, v in os.environ.items() if k not in AMBIENT_SETTINGS}
    if cluster_dir is not None:
        full_env["DCOS_LOCAL_DIR"] = str(cluster_dir)
    full_env.update(env or {})
    return subprocess.run([tool(name), *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def damage(client: KazooClient) -> None:
    """Delete some apps, change others, add new ones (the seed's "damage /marathon")."""
    apps = sorted(client.get_children("/marathon/state/app"))
    for app in apps[:3]:
        client.delete(f"/marathon/state/app/{app}", recursive=True)
    for app in apps[3:6]:
        client.set(f"/marathon/state/app/{app}", b'{"id": "changed"}')
    client.set_acls("/marathon/state/framework-id", [*client.get_acls("/marathon/state/framework-id")[0]][:1])
    client.create("/marathon/state/app/intruder", b"new app", makepath=True)
    client.create("/marathon/state/app/intruder/v1", b"\x00\x01")


# ------------------------------------------------------------------------------------------ the backup API
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
def in_process_api(service: BackupService, zk_hosts: str, scheduler: Scheduler | None = None) -> Iterator[InProcessApi]:
    """``service``'s API in-process (with ``scheduler``'s routes, if given); its users (bootstrapuser:
    superuser, nobody: no permission) live in ZooKeeper at ``zk_hosts`` (give it a chroot), under
    credentials made for this app."""
    users = UserStore(zk_hosts, Credentials("dcos-backup", secrets.token_urlsafe(16)))
    try:
        users.update(lambda d: (d.add_user(security.BOOTSTRAP_USER).grant(SUPERUSER), d.add_user("nobody")))
        app = build_app(service, Authorizer(SIGNING_KEY.public_key(), users.watch()), scheduler)
        api = InProcessApi(TestClient(app), users)
        api.http.headers["Authorization"] = f"token={api.token(security.BOOTSTRAP_USER)}"
        yield api
    finally:
        # Only these credentials may read the users znode, so only they can clear it for the chroot's removal.
        users.client.delete(IAM_PATH)
        users.close()


# ------------------------------------------------------------------------------------------ bad tokens
FORGERIES = (
    "alg none",
    "HS256 with the public key as secret",
    "another key",
    "expired",
    "no expiry",
    "no uid",
    "uid not a string",
    "malformed",
    "garbage",
    "huge header",
    "tampered claims",
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict, claims: dict) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())


def forged_tokens(private: rsa.RSAPrivateKey, public: rsa.RSAPublicKey, uid: str = "bootstrapuser") -> dict[str, str]:
    """Tokens for ``uid`` that a verifier must refuse, by kind (FORGERIES), made against the IAM key pair
    ``private``/``public`` (tokens it signed itself are expired, incomplete or tampered with)."""
    claims = {"uid": uid, "exp": 4102444800}
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    hs256 = _unsigned({"alg": "HS256", "typ": "JWT"}, claims)
    hs256_signature = _b64(hmac.new(pem, hs256.encode(), hashlib.sha256).digest())
    header, _, signature = issue_token(private, "nobody").split(".")  # a valid token of another user
    return {
        "alg none": _unsigned({"alg": "none", "typ": "JWT"}, claims) + ".",
        "HS256 with the public key as secret": hs256 + "." + hs256_signature,
        "another key": jwt.encode(claims, rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        "expired": jwt.encode({"uid": uid, "exp": 1}, private, algorithm="RS256"),
        "no expiry": jwt.encode({"uid": uid}, private, algorithm="RS256"),
        "no uid": jwt.encode({"exp": 4102444800}, private, algorithm="RS256"),
        "uid not a string": jwt.encode({"uid": 7, "exp": 4102444800}, private, algorithm="RS256"),
        "malformed": "not.a.token",
        "garbage": "x" * 100,
        "huge header": _unsigned({"alg": "RS256", "typ": "JWT", "x": "a" * 9000}, claims) + ".c2ln",
        "tampered claims": header + "." + _b64(json.dumps(claims).encode()) + "." + signature,
    }


@contextlib.contextmanager
def service_api(storage: Storage, zk_hosts: str) -> Iterator[InProcessApi]:
    """A backup service over ``storage`` with its own engine on ``zk_hosts``, its API in-process
    (:func:`in_process_api`); the service and the engine are closed afterwards."""
    engine = ZkEngine(zk_hosts)
    service = BackupService(storage, engine, dcos_version="2.2.0")
    try:
        with in_process_api(service, zk_hosts) as api:
            yield api
    finally:
        service.close()
        engine.close()
