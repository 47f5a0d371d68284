"""What tests share besides fixtures (those are in the conftest.py files): starting private clusters,
damaging /marathon, a small tmpfs, bad tokens, and the CLI's view of a backup. What benchmarks use too
(waiting for a state, running the console scripts, the ways in to the backup API) lives in
:mod:`dcos_backup.testing` and is re-exported here, so that a test imports its helpers from one place."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import random
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kazoo.client import KazooClient
from kazoo.security import ACL, Id

from dcos_backup.iam.tokens import issue_token
from dcos_backup.local import cluster as local_cluster
from dcos_backup.local.spec import ClusterSpec
from dcos_backup.logical import connect
from dcos_backup.testing.api import (  # noqa: F401 (re-exported)
    SIGNING_KEY,
    InProcessApi,
    backup_doc,
    create_ready,
    dcos_env,
    front_door,
    in_process_api,
    restore_ended,
    service_api,
)
from dcos_backup.testing.chroot import marathon_chroot  # noqa: F401 (re-exported)
from dcos_backup.testing.seed import seed_marathon
from dcos_backup.testing.tools import AMBIENT_SETTINGS, BIN, ok, run_tool, tool, wait_for  # noqa: F401 (re-exported)

OPEN = (ACL(31, Id("world", "anyone")),)  # ZooKeeper's OPEN_ACL_UNSAFE, as archives record it


# ------------------------------------------------------------------------------------------ clusters
_used_subnets: set[str] = set()


def free_subnet() -> str:
    """A loopback /24 that nothing of ours uses yet: 127.X.Y with X in 150-249, X split between the run's
    pytest-xdist workers (gw0 takes X = 150, 152, ... of two), so that two workers never pick the same one."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    mine = [x for x in range(150, 250) if x % workers == worker]
    rng = random.Random()
    while True:
        subnet = f"127.{rng.choice(mine)}.{rng.randint(0, 255)}"
        if subnet not in _used_subnets:
            _used_subnets.add(subnet)
            return subnet


def requires_zookeeper() -> None:
    if shutil.which("java") is None or not Path("/usr/share/java/zookeeper.jar").exists():
        pytest.fail("Java and the Debian zookeeper package are needed: apt-get install -y zookeeper")


def start_cluster(directory: Path, masters: int = 3, **kwargs: object) -> ClusterSpec:
    requires_zookeeper()
    kwargs.setdefault("heap", "512m")
    return local_cluster.up(directory, masters=masters, subnet=free_subnet(), **kwargs)


@contextlib.contextmanager
def seeded_cluster(directory: Path, apps: int, seed: int, **kwargs: object) -> Iterator[ClusterSpec]:
    """A private 3-master cluster with ``apps`` Marathon apps of ``seed`` under /marathon, stopped on exit."""
    c = start_cluster(directory, **kwargs)
    try:
        client = connect(c.zk_hosts, timeout=60)  # big multis during log rolls can stall a while
        try:
            seed_marathon(client, apps=apps, seed=seed)
        finally:
            client.stop()
            client.close()
        yield c
    finally:
        local_cluster.down(c)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


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


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path`` (created), to fill up; unmounted afterwards. Skips the test
    where mounting is not allowed."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


# ------------------------------------------------------------------------------------------ the CLI
def show(cluster, backup_id: str) -> dict:
    return json.loads(ok(run_tool("dcos", "backup", "show", backup_id, cluster_dir=cluster.dir)).stdout)


def restore_through_cli(cluster, backup_id: str) -> dict:
    """``dcos backup restore ID``, then the restore once it ended (as the seed's procedure follows it)."""
    restore_id = ok(run_tool("dcos", "backup", "restore", backup_id, cluster_dir=cluster.dir)).stdout.strip()
    return wait_for(
        lambda: (
            (r := show(cluster, backup_id)["restores"][-1])["id"] == restore_id
            and r["status"] != "STATUS_RESTORING"
            and r
        ),
        what="restore to end",
    )


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
