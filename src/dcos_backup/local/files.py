"""The files of a dcos-local cluster directory besides the masters' own (``master-N/``), each spelled once.

::

    DIR/cluster.json                         the cluster's description (local/spec.py)
    DIR/pki/ca.crt                           the cluster CA's certificate: trust it to reach any master
    DIR/pki/ca.key, master-N.key             private keys (0600)
    DIR/pki/master-N.crt                     master N's Admin Router certificate (for its IP)
    DIR/iam/private.pem                      the IAM's signing key (0600); public.pem verifies tokens
    DIR/secrets/zk-credentials               the service's ZooKeeper identity for the users znode (0600)
    DIR/secrets/bootstrapuser.token          a token of the superuser bootstrapuser (0600)
    DIR/secrets/record.key                   the cluster's key that signs catalog records (0600; every master's)
    DIR/secrets/repo.key                     the cluster's key for its point-in-time repository (0600; --zk-archive)
    DIR/adminrouter/master-N/                master N's nginx: nginx.conf, error.log, access.log, tmp/
    DIR/run/dcos-backup-master-N.sock        master N's backup service's socket (its Admin Router proxies to it)
    DIR/run/*.pid                            pid files of the processes beside the masters
    DIR/backups/                             the backup catalog and archives
    DIR/service-N.log, holder.log, ...       their output (service-N: master N's backup service)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# A unix socket's path must fit sun_path (108 bytes with its terminating NUL).
MAX_SOCKET_PATH = 107


@dataclass(frozen=True)
class ClusterFiles:
    dir: Path

    # ---------------------------------------------------------------- trust and secrets
    @property
    def pki_dir(self) -> Path:
        return self.dir / "pki"

    @property
    def ca_cert(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.pki_dir / "ca.key"

    def master_cert(self, n: int) -> Path:
        return self.pki_dir / f"master-{n}.crt"

    def master_key(self, n: int) -> Path:
        return self.pki_dir / f"master-{n}.key"

    @property
    def iam_private_key(self) -> Path:
        return self.dir / "iam" / "private.pem"

    @property
    def iam_public_key(self) -> Path:
        return self.dir / "iam" / "public.pem"

    @property
    def secrets_dir(self) -> Path:
        return self.dir / "secrets"

    @property
    def zk_credentials(self) -> Path:
        return self.secrets_dir / "zk-credentials"

    @property
    def zk_auth(self) -> Path:
        """The digest identity (user:password) the backup service presents to ZooKeeper (``up --zk-auth``)."""
        return self.secrets_dir / "zk-auth"

    @property
    def record_key(self) -> Path:
        """The key every master's backup service signs and checks catalog records with (catalog/signing.py)."""
        return self.secrets_dir / "record.key"

    @property
    def repo_key(self) -> Path:
        """The key that authenticates the point-in-time repository (physical/continuous/repository.py)."""
        return self.secrets_dir / "repo.key"

    @property
    def token_file(self) -> Path:
        return self.secrets_dir / "bootstrapuser.token"

    # ---------------------------------------------------------------- processes
    @property
    def run_dir(self) -> Path:
        return self.dir / "run"

    def backup_socket(self, n: int) -> Path:
        """Master ``n``'s backup service's socket (DC/OS: /run/dcos/dcos-backup-master.sock on each master)."""
        return self.run_dir / f"dcos-backup-master-{n}.sock"

    def admin_router_dir(self, n: int) -> Path:
        return self.dir / "adminrouter" / f"master-{n}"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.dir / f"{name}.log"

    @property
    def storage_dir(self) -> Path:
        return self.dir / "backups"
