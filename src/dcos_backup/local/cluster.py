"""A real N-master cluster on this machine, described by ``<dir>/cluster.json``.

Each master gets its own loopback address ``<subnet>.N`` (all of 127/8 is local on Linux) and the
same ports DC/OS masters use, so the cluster looks like a real one: ZooKeeper on 2181/2888/3888 and
the Exhibitor status API on 8181. Master N's exhibitor dir is ``<dir>/master-N``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dcos_backup.errors import ClusterError, Conflict, NotFound, UsageError
from dcos_backup.exhibitor.config import Member, NodeConfig
from dcos_backup.exhibitor.server import check_dependencies, check_port_free
from dcos_backup.exhibitor.status import MemberStatus, cluster_status, is_healthy
from dcos_backup.local import extras
from dcos_backup.local.processes import (
    last_complaint,
    last_lines,
    live_process,
    python_module_command,
    read_pid,
    spawn_detached,
    terminate,
    wait_until_gone,
)

DEFAULT_SUBNET = "127.20.0"
CLUSTER_FILE = "cluster.json"
MAX_MASTERS = 9
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
    """One master of the local cluster."""

    id: int
    host: str
    exhibitor_dir: Path
    client_port: int = 2181
    quorum_port: int = 2888
    election_port: int = 3888
    exhibitor_port: int = 8181

    @property
    def member(self) -> Member:
        return Member(self.id, self.host, self.client_port, self.quorum_port, self.election_port, self.exhibitor_port)

    @property
    def exhibitor_url(self) -> str:
        return self.member.exhibitor_url

    @property
    def zk_address(self) -> str:
        return self.member.client_address

    @property
    def config_file(self) -> Path:
        return self.exhibitor_dir / "conf" / "node.json"

    @property
    def pid_file(self) -> Path:
        return self.exhibitor_dir / "run" / "exhibitor.pid"

    @property
    def zk_pid_file(self) -> Path:
        return self.exhibitor_dir / "run" / "zookeeper.pid"

    @property
    def log_file(self) -> Path:
        return self.exhibitor_dir / "exhibitor.log"


@dataclass
class Cluster:
    """A local cluster as recorded in ``cluster.json``."""

    dir: Path
    subnet: str
    masters: list[Master]
    zk_config: list[tuple[str, str]] = field(default_factory=list)
    heap: str = "1g"
    service: dict[str, str] | None = None

    # ----------------------------------------------------------------- description
    @property
    def zk_hosts(self) -> str:
        return ",".join(m.zk_address for m in self.masters)

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
            exhibitor_dir=master.exhibitor_dir,
            zk_extra=tuple(self.zk_config),
            heap=self.heap,
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "dir": str(self.dir),
            "subnet": self.subnet,
            "zk_hosts": self.zk_hosts,
            "zk_config": [list(kv) for kv in self.zk_config],
            "heap": self.heap,
            "masters": [
                {
                    **asdict(m),
                    "exhibitor_dir": str(m.exhibitor_dir),
                    "exhibitor_url": m.exhibitor_url,
                    "log_file": str(m.log_file),
                    "pid_file": str(m.pid_file),
                }
                for m in self.masters
            ],
            "service": self.service,
        }

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / (CLUSTER_FILE + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, self.dir / CLUSTER_FILE)

    @classmethod
    def load(cls, directory: Path | None = None) -> Cluster:
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
            masters = [
                Master(
                    id=int(m["id"]),
                    host=str(m["host"]),
                    exhibitor_dir=Path(m["exhibitor_dir"]),
                    client_port=int(m["client_port"]),
                    quorum_port=int(m["quorum_port"]),
                    election_port=int(m["election_port"]),
                    exhibitor_port=int(m["exhibitor_port"]),
                )
                for m in doc["masters"]
            ]
            return cls(
                dir=directory,
                subnet=str(doc["subnet"]),
                masters=masters,
                zk_config=[(str(k), str(v)) for k, v in doc.get("zk_config", [])],
                heap=str(doc.get("heap", "1g")),
                service=doc.get("service"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ClusterError(f"{path} is corrupt (bad field {exc}); run: dcos-local down --purge") from exc

    @classmethod
    def define(
        cls,
        directory: Path,
        masters: int = 3,
        subnet: str = DEFAULT_SUBNET,
        zk_config: list[tuple[str, str]] | None = None,
        heap: str = "1g",
    ) -> Cluster:
        if not 1 <= masters <= MAX_MASTERS:
            raise UsageError(f"--masters must be between 1 and {MAX_MASTERS}, got {masters}")
        subnet = validate_subnet(subnet)
        directory = Path(directory).absolute()
        return cls(
            dir=directory,
            subnet=subnet,
            masters=[Master(i, f"{subnet}.{i}", directory / f"master-{i}") for i in range(1, masters + 1)],
            zk_config=list(zk_config or []),
            heap=heap,
        )

    # ----------------------------------------------------------------- processes
    def master_process(self, master: Master):
        return live_process(master.pid_file, str(master.config_file))

    def is_running(self, master: Master) -> bool:
        return self.master_process(master) is not None

    def running_masters(self) -> list[Master]:
        return [m for m in self.masters if self.is_running(m)]

    def start_master(self, n: int, wait: bool = False, timeout: float = 60.0) -> None:
        """``systemctl start dcos-exhibitor`` on master ``n``."""
        master = self.master(n)
        if self.is_running(master):
            return
        cfg = self.node_config(master)
        check_dependencies(cfg)
        self._check_ports_free(master)
        cfg.write()
        spawn_detached(
            python_module_command("dcos_backup.cli.exhibitor", "run", "--config", str(master.config_file)),
            master.log_file,
            master.pid_file,
        )
        if wait:
            self.wait_serving(timeout, members=[master])

    def stop_master(self, n: int, timeout: float = 30.0) -> None:
        """``systemctl stop dcos-exhibitor`` on master ``n``: its supervisor and its ZooKeeper end."""
        master = self.master(n)
        proc = self.master_process(master)
        if proc is not None:
            terminate(proc, timeout)
        # A supervisor killed with SIGKILL leaves its ZooKeeper behind; never leave it running.
        zk = live_process(master.zk_pid_file, str(master.exhibitor_dir))
        if zk is not None:
            terminate(zk, timeout)
        for pid_file in (master.pid_file, master.zk_pid_file):
            pid_file.unlink(missing_ok=True)

    def _check_ports_free(self, master: Master) -> None:
        for port, what in (
            (master.client_port, "ZooKeeper client"),
            (master.quorum_port, "ZooKeeper quorum"),
            (master.election_port, "ZooKeeper election"),
            (master.exhibitor_port, "Exhibitor"),
        ):
            check_port_free(master.host, port, f"master {master.id}: {what}")

    def status(self, timeout: float = 1.0) -> list[MemberStatus]:
        return cluster_status(self.members, timeout)

    def wait_serving(self, timeout: float = 90.0, members: list[Master] | None = None) -> list[MemberStatus]:
        """Wait until every member serves and one leads; fail early if a supervisor died."""
        deadline = time.monotonic() + timeout
        watched = members or self.masters
        while True:
            statuses = self.status()
            if members is None and is_healthy(statuses):
                return statuses
            if members is not None:
                wanted = {m.host for m in watched}
                if all(s.code == 3 for s in statuses if s.hostname in wanted) and any(s.isLeader for s in statuses):
                    return statuses
            for m in watched:
                if not self.is_running(m):
                    why = last_lines(m.log_file) or "no log"
                    raise ClusterError(f"master {m.id} stopped while starting: {why} (log: {m.log_file})")
            if time.monotonic() > deadline:
                states = ", ".join(f"{s.hostname} {s.description}" for s in statuses)
                failing = [m for m, s in zip(self.masters, statuses, strict=True) if s.code != 3 and m in watched]
                last_words = ""
                if failing:
                    console = failing[0].exhibitor_dir / "zookeeper" / "zookeeper.out"
                    last_words = f"master {failing[0].id} says: {last_complaint(console)}"
                raise ClusterError(
                    f"cluster not serving after {timeout:g}s ({states}) {last_words}; logs in {self.dir}"
                )
            time.sleep(0.25)

    def all_pids(self) -> list[int]:
        pid_files = [p for m in self.masters for p in (m.pid_file, m.zk_pid_file)]
        pid_files += [self.dir / "run" / name for name in ("service.pid", "service-child.pid", "holder.pid")]
        return [pid for pid in (read_pid(p) for p in pid_files) if pid is not None]


def up(
    directory: Path | None = None,
    masters: int = 3,
    subnet: str = DEFAULT_SUBNET,
    zk_config: list[tuple[str, str]] | None = None,
    heap: str = "1g",
    timeout: float = 90.0,
    with_service: bool = True,
) -> Cluster:
    """Start a cluster in ``directory``, wait until it serves with a leader, then start the backup service."""
    directory = Path(directory) if directory is not None else default_dir()
    try:
        existing = Cluster.load(directory)
    except NotFound:
        existing = None
    except ClusterError:
        existing = None  # a corrupt cluster.json with nothing running is replaced
    if existing is not None and existing.running_masters():
        raise Conflict(f"a local cluster already runs in {directory} (stop it with: dcos-local down)")
    cluster = Cluster.define(directory, masters, subnet, zk_config, heap)
    for master in cluster.masters:
        check_dependencies(cluster.node_config(master))
        cluster._check_ports_free(master)
    cluster.save()
    try:
        for master in cluster.masters:
            cluster.start_master(master.id)
        cluster.wait_serving(timeout)
        if with_service and extras.service_available():
            cluster.service = extras.start_service(cluster)
            cluster.save()
    except Exception:
        down(cluster)
        raise
    return cluster


def down(cluster: Cluster, purge: bool = False) -> list[int]:
    """Stop everything the cluster started; returns pids that survived (should be none)."""
    pids = cluster.all_pids()
    extras.stop_all(cluster)
    for master in cluster.masters:
        cluster.stop_master(master.id)
    survivors = wait_until_gone(pids, timeout=10)
    if purge and not survivors:
        shutil.rmtree(cluster.dir, ignore_errors=True)
    return survivors
