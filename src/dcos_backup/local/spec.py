"""What a dcos-local cluster is: the immutable record ``<dir>/cluster.json`` holds, read and written here only.

A :class:`ClusterSpec` says where each master is and what runs beside it; it starts nothing (that is
:mod:`.cluster`). It never changes in place: what changes (the backup services once they run) makes a
new spec, which the launcher saves.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from dcos_backup.errors import ClusterError, NotFound, UsageError
from dcos_backup.exhibitor.config import NodeConfig
from dcos_backup.local import s3
from dcos_backup.local.files import ClusterFiles
from dcos_backup.master.layout import LOCAL_CLUSTER_FILE as CLUSTER_FILE
from dcos_backup.master.layout import MasterLayout
from dcos_backup.master.member import Member

DEFAULT_SUBNET = "127.20.0"
MAX_MASTERS = 9
STORAGE_KINDS = ("local", "s3")
_SUBNET_RE = re.compile(r"^127\.(\d{1,3})\.(\d{1,3})$")


def default_dir() -> Path:
    """``$DCOS_LOCAL_DIR``, else ``$XDG_STATE_HOME/dcos-local``, else ``~/.local/state/dcos-local``."""
    if os.environ.get("DCOS_LOCAL_DIR"):
        return Path(os.environ["DCOS_LOCAL_DIR"])
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "dcos-local"


def validate_subnet(subnet: str) -> str:
    match = _SUBNET_RE.match(subnet)
    if not match or not all(0 <= int(g) <= 255 for g in match.groups()):
        raise UsageError(f"--subnet wants the first three octets of a loopback address, like 127.20.0; got {subnet!r}")
    return subnet


@dataclass(frozen=True)
class Master:
    """One master of the local cluster: how the ensemble sees it and where its files are."""

    member: Member
    layout: MasterLayout

    @property
    def id(self) -> int:
        return self.member.id

    @property
    def admin_router_url(self) -> str:
        return f"https://{self.member.host}"

    def to_dict(self) -> dict[str, object]:
        """Its ``cluster.json`` entry (the fields and their order are the file's format)."""
        m = self.member
        return {
            "id": m.id,
            "host": m.host,
            "exhibitor_dir": str(self.layout.exhibitor_dir),
            "client_port": m.client_port,
            "quorum_port": m.quorum_port,
            "election_port": m.election_port,
            "exhibitor_port": m.exhibitor_port,
            "exhibitor_url": m.exhibitor_url,
            "admin_router_url": self.admin_router_url,
            "log_file": str(self.layout.exhibitor_log),
            "pid_file": str(self.layout.exhibitor_pid_file),
        }

    @classmethod
    def from_dict(cls, doc: dict) -> Master:
        member = Member(
            id=int(doc["id"]),
            host=str(doc["host"]),
            client_port=int(doc["client_port"]),
            quorum_port=int(doc["quorum_port"]),
            election_port=int(doc["election_port"]),
            exhibitor_port=int(doc["exhibitor_port"]),
        )
        return cls(member, MasterLayout(Path(doc["exhibitor_dir"])))


@dataclass(frozen=True)
class ClusterSpec:
    """A local cluster as recorded in ``cluster.json``."""

    dir: Path
    subnet: str
    masters: tuple[Master, ...]
    zk_config: tuple[tuple[str, str], ...] = ()
    heap: str = "1g"
    service: dict[str, str] | None = None  # master 1's backup service (the leader when the cluster starts)
    services: tuple[dict[str, str], ...] = ()  # every master's, in master order
    zk_archive: str | None = None  # every master's supervisor archives into this repository
    encryption_key_file: str | None = None  # the service encrypts every archive with this key
    storage: str = "local"  # where the service keeps backups: "local" (the master's disk) or "s3" (moto)
    prometheus: dict[str, str] | None = None  # dcos-local up --monitoring: its URL, config and token file

    @classmethod
    def define(
        cls,
        directory: Path,
        masters: int = 3,
        subnet: str = DEFAULT_SUBNET,
        zk_config: list[tuple[str, str]] | None = None,
        heap: str = "1g",
        zk_archive: str | None = None,
        encryption_key_file: Path | None = None,
        storage: str = "local",
    ) -> ClusterSpec:
        """A new cluster of ``masters`` masters at ``<subnet>.1..N`` in ``directory``; nothing runs yet."""
        if not 1 <= masters <= MAX_MASTERS:
            raise UsageError(f"--masters must be between 1 and {MAX_MASTERS}, got {masters}")
        subnet = validate_subnet(subnet)
        if storage not in STORAGE_KINDS:
            raise UsageError(f"--storage is one of {', '.join(STORAGE_KINDS)}, not {storage!r}")
        directory = Path(directory).absolute()
        return cls(
            dir=directory,
            subnet=subnet,
            masters=tuple(
                Master(Member(i, f"{subnet}.{i}"), MasterLayout(directory / f"master-{i}"))
                for i in range(1, masters + 1)
            ),
            zk_config=tuple(zk_config or ()),
            heap=heap,
            zk_archive=zk_archive,
            encryption_key_file=str(Path(encryption_key_file).absolute()) if encryption_key_file else None,
            storage=storage,
        )

    def with_prometheus(self, prometheus: dict[str, str]) -> ClusterSpec:
        """This cluster with its Prometheus (:func:`.services.start_prometheus`)."""
        return replace(self, prometheus=prometheus)

    def with_services(self, services: list[dict[str, str]]) -> ClusterSpec:
        """This cluster with its masters' backup services (:func:`.services.start_service`), master 1's first."""
        return replace(self, service=services[0], services=tuple(services))

    # ----------------------------------------------------------------- what it describes
    @property
    def files(self) -> ClusterFiles:
        return ClusterFiles(self.dir)

    @property
    def zk_hosts(self) -> str:
        return ",".join(m.member.client_address for m in self.masters)

    @property
    def members(self) -> tuple[Member, ...]:
        return tuple(m.member for m in self.masters)

    def master(self, n: int) -> Master:
        for m in self.masters:
            if m.id == n:
                return m
        raise UsageError(f"there is no master {n}: this cluster has masters 1..{len(self.masters)}")

    def node_config(self, master: Master) -> NodeConfig:
        return NodeConfig(
            id=master.id,
            members=self.members,
            exhibitor_dir=master.layout.exhibitor_dir,
            zk_extra=self.zk_config,
            heap=self.heap,
            archive_repo=self.zk_archive,
            archive_key_file=str(self.files.repo_key) if self.zk_archive else None,
        )

    def dcos_cli(self, n: int = 1) -> dict[str, str]:
        """What the DC/OS CLI needs to reach this cluster through master ``n``, by its variables' names
        (the token by the file that holds one: cluster.json holds no secret)."""
        return {
            "DCOS_URL": self.master(n).admin_router_url,
            "DCOS_SSL_VERIFY": str(self.files.ca_cert),
            "DCOS_ACS_TOKEN_FILE": str(self.files.token_file),
        }

    def s3_endpoint(self) -> str | None:
        """The URL of the cluster's S3 server (``--storage s3``), which runs beside master 1."""
        return s3.endpoint_url(self.masters[0].member.host) if self.storage == "s3" else None

    def s3_env(self) -> dict[str, str] | None:
        """What a process needs to reach the cluster's S3 server with the standard AWS variables: the
        supervisors' archivers (``--zk-archive s3://...``) and the operator's tools (``dcos-local env``)."""
        endpoint = self.s3_endpoint()
        return {**s3.CREDENTIALS, "AWS_ENDPOINT_URL": endpoint} if endpoint else None

    # ----------------------------------------------------------------- cluster.json
    def to_dict(self) -> dict[str, object]:
        return {
            "dir": str(self.dir),
            "subnet": self.subnet,
            "zk_hosts": self.zk_hosts,
            "zk_config": [list(kv) for kv in self.zk_config],
            "heap": self.heap,
            "masters": [m.to_dict() for m in self.masters],
            "service": self.service,
            "zk_archive": self.zk_archive,
            "services": list(self.services),
            "encryption_key_file": self.encryption_key_file,
            "storage": self.storage,
            "dcos_cli": self.dcos_cli() if self.service else None,
            "prometheus": self.prometheus,
        }

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / (CLUSTER_FILE + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, self.dir / CLUSTER_FILE)

    @classmethod
    def load(cls, directory: Path | None = None) -> ClusterSpec:
        """Read ``cluster.json`` from ``directory`` (default: :func:`default_dir`)."""
        directory = Path(directory) if directory is not None else default_dir()
        path = directory / CLUSTER_FILE
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise NotFound(f"no local cluster in {directory} (start one with: dcos-local up)") from exc
        except (OSError, ValueError) as exc:
            raise ClusterError(f"{path} is corrupt ({exc}); remove it or run: dcos-local down --purge") from exc
        try:
            return cls(
                dir=directory,
                subnet=str(doc["subnet"]),
                masters=tuple(Master.from_dict(m) for m in doc["masters"]),
                zk_config=tuple((str(k), str(v)) for k, v in doc.get("zk_config", [])),
                heap=str(doc.get("heap", "1g")),
                service=doc.get("service"),
                zk_archive=doc.get("zk_archive"),
                services=tuple(doc.get("services") or ()),
                encryption_key_file=doc.get("encryption_key_file"),
                storage=str(doc.get("storage", "local")),
                prometheus=doc.get("prometheus"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ClusterError(f"{path} is corrupt (bad field {exc}); run: dcos-local down --purge") from exc
