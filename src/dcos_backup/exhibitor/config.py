"""A master's node configuration (``conf/node.json``) and the ``zoo.cfg`` rendered from it.

Where each file lives is :class:`~dcos_backup.master.layout.MasterLayout`'s business (``NodeConfig.layout``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dcos_backup.errors import ClusterError, UsageError
from dcos_backup.master.layout import MasterLayout
from dcos_backup.master.member import Member
from dcos_backup.master.zookeeper import ZK_CLASSPATH

# Settings every member gets. 4lw words are how the status API sees each member; the AdminServer
# would want port 8080 on every member (and its Jetty is not on Debian's classpath anyway);
# maxClientCnxns=0 because every local client comes from 127.0.0.1 and 60 is easy to hit in tests.
BASE_ZOO_CFG = {
    "tickTime": "2000",
    "initLimit": "10",
    "syncLimit": "5",
    "4lw.commands.whitelist": "*",
    "admin.enableServer": "false",
    "maxClientCnxns": "0",
    "standaloneEnabled": "false",
    "reconfigEnabled": "false",
}


@dataclass(frozen=True)
class NodeConfig:
    """Everything ``dcos-exhibitor`` needs to run one master's ZooKeeper."""

    id: int
    members: tuple[Member, ...]
    exhibitor_dir: Path
    zk_extra: tuple[tuple[str, str], ...] = ()
    java: str = "java"
    zk_classpath: str = ZK_CLASSPATH
    heap: str = "1g"
    jvm_flags: tuple[str, ...] = field(default=("-XX:+UseSerialGC",))
    archive_repo: str | None = None  # a repository: the supervisor then runs dcos-zk archive beside ZooKeeper
    archive_stream: str | None = None  # its stream name (default master-<id>)
    archive_key_file: str | None = None  # the cluster's repository key (physical/continuous/repository.py)

    def __post_init__(self) -> None:
        ids = [m.id for m in self.members]
        if len(set(ids)) != len(ids):
            raise UsageError(f"duplicate member ids in {ids}")
        if self.id not in ids:
            raise UsageError(f"own id {self.id} is not among the members {ids}")

    @property
    def me(self) -> Member:
        return next(m for m in self.members if m.id == self.id)

    @property
    def layout(self) -> MasterLayout:
        return MasterLayout(self.exhibitor_dir)

    @property
    def stream(self) -> str:
        """The stream this master archives into."""
        return self.archive_stream or f"master-{self.id}"

    def to_json(self) -> str:
        doc = asdict(self)
        doc["exhibitor_dir"] = str(self.exhibitor_dir)
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> NodeConfig:
        try:
            return cls(
                id=int(doc["id"]),
                members=tuple(Member(**m) for m in doc["members"]),
                exhibitor_dir=Path(doc["exhibitor_dir"]),
                zk_extra=tuple((str(k), str(v)) for k, v in doc.get("zk_extra", ())),
                java=doc.get("java", "java"),
                zk_classpath=doc.get("zk_classpath", ZK_CLASSPATH),
                heap=doc.get("heap", "1g"),
                jvm_flags=tuple(doc.get("jvm_flags", ("-XX:+UseSerialGC",))),
                archive_repo=doc.get("archive_repo"),
                archive_stream=doc.get("archive_stream"),
                archive_key_file=doc.get("archive_key_file"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ClusterError(f"invalid node config: {exc}") from exc

    @classmethod
    def load(cls, path: Path) -> NodeConfig:
        try:
            doc = json.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise ClusterError(f"node config {path} does not exist") from exc
        except (OSError, ValueError) as exc:
            raise ClusterError(f"cannot read node config {path}: {exc}") from exc
        if not isinstance(doc, dict):
            raise ClusterError(f"invalid node config {path}: not a JSON object")
        return cls.from_dict(doc)

    def write(self) -> None:
        self.layout.conf_dir.mkdir(parents=True, exist_ok=True)
        self.layout.node_config.write_text(self.to_json())


def parse_zk_extra(items: list[str] | tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """``["snapCount=2", ...]`` -> ``(("snapCount", "2"), ...)``; refuses lines that are not key=value."""
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or "\n" in item:
            raise UsageError(f"--zk-config wants KEY=VALUE, got {item!r}")
        pairs.append((key, value))
    return tuple(pairs)


def render_zoo_cfg(cfg: NodeConfig) -> str:
    """The ``zoo.cfg`` for ``cfg``: base settings, paths, own ports, the server list, then extras."""
    settings = dict(BASE_ZOO_CFG)
    settings.update(
        {
            "dataDir": str(cfg.layout.data_dir),
            "dataLogDir": str(cfg.layout.log_dir),
            "clientPort": str(cfg.me.client_port),
            "clientPortAddress": cfg.me.host,
        }
    )
    for m in cfg.members:
        settings[f"server.{m.id}"] = f"{m.host}:{m.quorum_port}:{m.election_port}"
    settings.update(dict(cfg.zk_extra))
    return "".join(f"{k}={v}\n" for k, v in settings.items())
