"""A local cluster's trust and identities: what ``dcos-local up`` creates and ``dcos-local iam`` manages.

- the cluster CA and a certificate per master for its Admin Router (``adminrouter/tls.py``);
- the IAM's RS256 key pair, which signs the tokens ``dcos-local iam login`` prints;
- the ZooKeeper credentials only the backup service and this tool use for the users znode (``iam/store.py``);
- the users: ``bootstrapuser`` (``dcos:superuser``) from the start, more with ``iam add-user``/``iam grant``.

Keys, credentials and tokens are files of mode 0600 in the cluster directory (:class:`ClusterFiles`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

import jwt

from dcos_backup.adminrouter import tls
from dcos_backup.api.paths import METRICS_PERMISSION
from dcos_backup.errors import NotFound
from dcos_backup.fsutil import write_private_file
from dcos_backup.iam.store import Credentials, UserStore
from dcos_backup.iam.tokens import DEFAULT_TTL, generate_key_pair, issue_token, load_private_key
from dcos_backup.iam.users import FULL, READ, SUPERUSER, Directory
from dcos_backup.local.files import ClusterFiles
from dcos_backup.master.member import Member

BOOTSTRAP_USER = "bootstrapuser"  # DC/OS's first superuser
MONITORING_USER = "prometheus"  # dcos-local up --monitoring: may read the metrics, nothing else
MONITORING_TTL = timedelta(days=365)  # the token Prometheus presents; a new one at every dcos-local up
TOKEN_MARGIN = 300  # seconds: a saved token closer than this to its expiry is replaced


def create_trust(files: ClusterFiles, members: Iterable[Member]) -> None:
    """The CA, every master's certificate, the IAM key pair and the service's ZooKeeper credentials: those
    that do not exist yet. A cluster started again in its directory keeps its CA (clients keep trusting it),
    its tokens and its users (their znode answers only to the credentials it was created with)."""
    if not files.ca_cert.exists():
        tls.create_ca(files.ca_cert, files.ca_key, f"dcos-local cluster CA ({files.dir.name})")
    for member in members:
        if not files.master_cert(member.id).exists():
            cert, key = files.master_cert(member.id), files.master_key(member.id)
            tls.issue_server_certificate(files.ca_cert, files.ca_key, member.host, cert, key)
    if not files.iam_private_key.exists():
        generate_key_pair(files.iam_private_key, files.iam_public_key)
    if not files.zk_credentials.exists():
        Credentials.generate(files.zk_credentials)


def users(files: ClusterFiles, zk_hosts: str) -> UserStore:
    """The cluster's users (close the store when done: it holds a ZooKeeper session)."""
    return UserStore(zk_hosts, Credentials.read(files.zk_credentials))


def create_bootstrap_user(files: ClusterFiles, zk_hosts: str) -> str:
    """``bootstrapuser`` as a superuser, and a token of it saved for the CLI; returns the token."""
    with users(files, zk_hosts) as store:
        store.update(lambda d: d.add_user(BOOTSTRAP_USER).grant(SUPERUSER, FULL))
    return save_bootstrap_token(files)


def create_monitoring_user(files: ClusterFiles, zk_hosts: str, token_file: Path) -> None:
    """The monitoring user, with the metrics permission (read) only, and its token in ``token_file`` (0600)."""
    add_user(files, zk_hosts, MONITORING_USER, [(METRICS_PERMISSION, READ)])
    token = issue_token(load_private_key(files.iam_private_key), MONITORING_USER, MONITORING_TTL)
    write_private_file(token_file, (token + "\n").encode())


def add_user(files: ClusterFiles, zk_hosts: str, uid: str, grants: Iterable[tuple[str, str]]) -> Directory:
    """Add ``uid`` (idempotent) with ``grants`` (resource id, action)."""
    wanted = list(grants)

    def change(directory: Directory) -> None:
        user = directory.add_user(uid)
        for rid, action in wanted:
            user.grant(rid, action)

    with users(files, zk_hosts) as store:
        return store.update(change)


def grant(files: ClusterFiles, zk_hosts: str, uid: str, rid: str, action: str = FULL) -> Directory:
    """Give the existing user ``uid`` the permission ``rid`` with ``action``."""
    with users(files, zk_hosts) as store:
        return store.update(lambda d: d.user(uid).grant(rid, action))


def login(files: ClusterFiles, zk_hosts: str, uid: str, ttl: timedelta = DEFAULT_TTL) -> str:
    """A token for the existing user ``uid`` (as DC/OS's login, without a password: this tool holds the key)."""
    with users(files, zk_hosts) as store:
        if store.user(uid) is None:
            raise NotFound(f"no user {uid!r} (add one with: dcos-local iam add-user {uid})")
    return issue_token(load_private_key(files.iam_private_key), uid, ttl)


def issue_bootstrap_token(files: ClusterFiles) -> str:
    """A fresh token of bootstrapuser (``dcos-local env`` exports one as DCOS_ACS_TOKEN)."""
    return issue_token(load_private_key(files.iam_private_key), BOOTSTRAP_USER, DEFAULT_TTL)


def save_bootstrap_token(files: ClusterFiles) -> str:
    """A fresh token of bootstrapuser, also written to the token file (0600); returns it."""
    token = issue_bootstrap_token(files)
    write_private_file(files.token_file, (token + "\n").encode())
    return token


def bootstrap_token(files: ClusterFiles) -> str:
    """The saved bootstrapuser token, replaced by a fresh one when it is about to expire."""
    token = _read_token(files.token_file)
    if token is not None and not _expiring(token):
        return token
    return save_bootstrap_token(files)


def _read_token(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def _expiring(token: str) -> bool:
    """Whether ``token`` expires within TOKEN_MARGIN (its signature is the service's to check)."""
    try:
        expires = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.InvalidTokenError:
        return True
    return not isinstance(expires, int | float) or expires - time.time() < TOKEN_MARGIN
