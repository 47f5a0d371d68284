"""A real N-master cluster on this machine, described by ``<dir>/cluster.json``.

Each master gets its own loopback address ``<subnet>.N`` (all of 127/8 is local on Linux) and the
same ports DC/OS masters use, so the cluster looks like a real one: ZooKeeper on 2181/2888/3888, the
Exhibitor status API on 8181 and the Admin Router on 443 (HTTPS, certificates of the cluster's own CA).
Master N's exhibitor dir is ``<dir>/master-N``, laid out as :class:`~dcos_backup.master.layout.MasterLayout`
says; the rest of ``<dir>`` as :class:`~dcos_backup.local.files.ClusterFiles` says. :func:`up` and
:func:`down` start and stop it all, with the processes of :mod:`.services` beside the masters and the
trust and users of :mod:`.security`; :func:`seed` fills it with Marathon-like state.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import psutil

from dcos_backup.adminrouter.nginx import HTTPS_PORT, check_can_listen, nginx_binary
from dcos_backup.components.hooks import parse_hook
from dcos_backup.errors import ClusterError, Conflict, NotFound, UsageError
from dcos_backup.exhibitor.config import NodeConfig
from dcos_backup.exhibitor.server import check_dependencies, check_port_free
from dcos_backup.exhibitor.status import MemberStatus, cluster_status, is_healthy
from dcos_backup.fsutil import write_private_file
from dcos_backup.local import s3, security, services
from dcos_backup.local.files import ClusterFiles
from dcos_backup.master.layout import LOCAL_CLUSTER_FILE as CLUSTER_FILE
from dcos_backup.master.layout import MasterLayout
from dcos_backup.master.member import Member
from dcos_backup.master.processes import (
    last_complaint,
    last_lines,
    live_process,
    port_open,
    python_module_command,
    read_pid,
    spawn_detached,
    terminate,
    wait_until_gone,
)
from dcos_backup.testing.seed import ROOT as SEED_ROOT
from dcos_backup.testing.seed import SeedStats, seed_marathon
from dcos_backup.zk import connect, digest_auth

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


@dataclass
class Cluster:
    """A local cluster as recorded in ``cluster.json``."""

    dir: Path
    subnet: str
    masters: list[Master]
    zk_config: list[tuple[str, str]] = field(default_factory=list)
    heap: str = "1g"
    service: dict[str, str] | None = None  # master 1's backup service (the leader when the cluster starts)
    services: list[dict[str, str]] = field(default_factory=list)  # every master's, in master order
    zk_archive: str | None = None  # every master's supervisor archives into this repository
    encryption_key_file: str | None = None  # the service encrypts every archive with this key
    storage: str = "local"  # where the service keeps backups: "local" (the master's disk) or "s3" (moto)

    # ----------------------------------------------------------------- description
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
            zk_extra=tuple(self.zk_config),
            heap=self.heap,
            archive_repo=self.zk_archive,
        )

    def dcos_cli(self, n: int = 1) -> dict[str, str]:
        """What the DC/OS CLI needs to reach this cluster through master ``n``, by its variables' names
        (the token by the file that holds one: cluster.json holds no secret)."""
        return {
            "DCOS_URL": self.master(n).admin_router_url,
            "DCOS_SSL_VERIFY": str(self.files.ca_cert),
            "DCOS_ACS_TOKEN_FILE": str(self.files.token_file),
        }

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
            "services": self.services,
            "encryption_key_file": self.encryption_key_file,
            "storage": self.storage,
            "dcos_cli": self.dcos_cli() if self.service else None,
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
            return cls(
                dir=directory,
                subnet=str(doc["subnet"]),
                masters=[Master.from_dict(m) for m in doc["masters"]],
                zk_config=[(str(k), str(v)) for k, v in doc.get("zk_config", [])],
                heap=str(doc.get("heap", "1g")),
                service=doc.get("service"),
                zk_archive=doc.get("zk_archive"),
                services=list(doc.get("services") or []),
                encryption_key_file=doc.get("encryption_key_file"),
                storage=str(doc.get("storage", "local")),
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
        zk_archive: str | None = None,
    ) -> Cluster:
        if not 1 <= masters <= MAX_MASTERS:
            raise UsageError(f"--masters must be between 1 and {MAX_MASTERS}, got {masters}")
        subnet = validate_subnet(subnet)
        directory = Path(directory).absolute()
        return cls(
            dir=directory,
            subnet=subnet,
            masters=[
                Master(Member(i, f"{subnet}.{i}"), MasterLayout(directory / f"master-{i}"))
                for i in range(1, masters + 1)
            ],
            zk_config=list(zk_config or []),
            heap=heap,
            zk_archive=zk_archive,
        )

    # ----------------------------------------------------------------- processes
    def master_process(self, master: Master) -> psutil.Process | None:
        return live_process(master.layout.exhibitor_pid_file, str(master.layout.node_config))

    def is_running(self, master: Master) -> bool:
        return self.master_process(master) is not None

    def running_masters(self) -> list[Master]:
        return [m for m in self.masters if self.is_running(m)]

    def anything_running(self) -> bool:
        """Whether any process of the cluster runs (a master's supervisor, the service, an Admin Router)."""
        return bool(self.running_masters()) or services.any_running(self.dir)

    def start_master(
        self,
        n: int,
        wait: bool = False,
        timeout: float = 60.0,
        notify: Callable[[str], None] | None = None,
        force: bool = False,
    ) -> None:
        """``systemctl start dcos-exhibitor`` on master ``n``: returns once its supervisor is up.

        With ``wait``, then waits for the member to serve (see :meth:`wait_serving`). A supervisor that
        refuses to start (a restore mark says its data would undo the others' restore) fails this with its
        reason; ``force`` starts it anyway.
        """
        master = self.master(n)
        if self.spawn_master(master, force):
            self.wait_supervisor(master, timeout)
        if wait:
            self.wait_serving(timeout, members=[master], notify=notify)

    def spawn_master(self, master: Master, force: bool = False) -> bool:
        """Start master's supervisor unless it runs; returns whether it was started (not waiting for it)."""
        if self.is_running(master):
            return False
        cfg = self.node_config(master)
        check_dependencies(cfg)
        self._check_ports_free(master)
        cfg.write()
        layout = master.layout
        spawn_detached(
            python_module_command(
                "dcos_backup.cli.exhibitor", "run", "--config", str(layout.node_config), *(["--force"] * force)
            ),
            layout.exhibitor_log,
            layout.exhibitor_pid_file,
            self.s3_env(),
        )
        return True

    def s3_endpoint(self) -> str | None:
        """The URL of the cluster's S3 server (``--storage s3``), which runs beside master 1."""
        return s3.endpoint_url(self.masters[0].member.host) if self.storage == "s3" else None

    def s3_env(self) -> dict[str, str] | None:
        """What a process needs to reach the cluster's S3 server with the standard AWS variables: the
        supervisors' archivers (``--zk-archive s3://...``) and the operator's tools (``dcos-local env``)."""
        endpoint = self.s3_endpoint()
        return {**s3.CREDENTIALS, "AWS_ENDPOINT_URL": endpoint} if endpoint else None

    def wait_supervisor(self, master: Master, timeout: float = 60.0) -> None:
        """Until master's supervisor answers on its Exhibitor port; ClusterError if it dies first."""
        member = master.member
        deadline = time.monotonic() + timeout
        while not port_open(member.host, member.exhibitor_port):
            if not self.is_running(master):
                why = last_lines(master.layout.exhibitor_log, 1).removeprefix("error: ") or "no log"
                raise ClusterError(f"master {master.id} not started: {why}")
            if time.monotonic() > deadline:
                raise ClusterError(f"master {master.id}'s supervisor did not answer within {timeout:g}s")
            time.sleep(0.1)

    def missing_for_quorum(self) -> int:
        """How many more supervisors must run before the ensemble can have a quorum (0: enough run)."""
        return max(0, len(self.masters) // 2 + 1 - len(self.running_masters()))

    def stop_master(self, n: int, timeout: float = 30.0) -> None:
        """``systemctl stop dcos-exhibitor`` on master ``n``: its supervisor and its ZooKeeper end."""
        master = self.master(n)
        proc = self.master_process(master)
        if proc is not None:
            terminate(proc, timeout)
        # A supervisor killed with SIGKILL leaves its ZooKeeper behind; never leave it running.
        layout = master.layout
        for pid_file, marker in (
            (layout.zookeeper_pid_file, str(layout.exhibitor_dir)),
            (layout.archiver_pid_file, "archive"),
        ):
            leftover = live_process(pid_file, marker)
            if leftover is not None:
                terminate(leftover, timeout)
        for pid_file in (layout.exhibitor_pid_file, layout.zookeeper_pid_file, layout.archiver_pid_file):
            pid_file.unlink(missing_ok=True)

    def _check_ports_free(self, master: Master) -> None:
        m = master.member
        for port, what in (
            (m.client_port, "ZooKeeper client"),
            (m.quorum_port, "ZooKeeper quorum"),
            (m.election_port, "ZooKeeper election"),
            (m.exhibitor_port, "Exhibitor"),
        ):
            check_port_free(m.host, port, f"master {m.id}: {what}")

    def status(self, timeout: float = 1.0) -> list[MemberStatus]:
        return cluster_status(self.members, timeout)

    def wait_serving(
        self,
        timeout: float = 90.0,
        members: list[Master] | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> list[MemberStatus]:
        """Wait until every member (or ``members``) serves and one leads; fail early if a supervisor died.

        While too few supervisors run for a quorum nothing can serve, and that is no failure: the wait
        goes on (the deadline runs from when a quorum could form), saying so through ``notify`` if given.
        """
        deadline = time.monotonic() + timeout
        watched = members or self.masters
        said = ""
        while True:
            statuses = self.status()
            if members is None and is_healthy(statuses):
                return statuses
            if members is not None:
                wanted = {m.member.host for m in watched}
                if all(s.code == 3 for s in statuses if s.hostname in wanted) and any(s.isLeader for s in statuses):
                    return statuses
            for m in watched:
                if not self.is_running(m):
                    why = last_lines(m.layout.exhibitor_log) or "no log"
                    raise ClusterError(f"master {m.id} stopped while starting: {why} (log: {m.layout.exhibitor_log})")
            missing = self.missing_for_quorum()
            if missing:
                deadline = time.monotonic() + timeout
                quorum = len(self.masters) // 2 + 1
                message = f"waiting for {missing} more master{'s' * (missing > 1)} to form a quorum of {quorum}"
                if notify is not None and message != said:
                    notify(message)
                said = message
            if time.monotonic() > deadline:
                self._not_serving(timeout, statuses, watched)
            time.sleep(0.25)

    def _not_serving(self, timeout: float, statuses: list[MemberStatus], watched: list[Master]) -> NoReturn:
        states = ", ".join(f"{s.hostname} {s.description}" for s in statuses)
        failing = [m for m, s in zip(self.masters, statuses, strict=True) if s.code != 3 and m in watched]
        last_words = ""
        if failing:
            last_words = f"master {failing[0].id} says: {last_complaint(failing[0].layout.console_log)}"
        raise ClusterError(f"cluster not serving after {timeout:g}s ({states}) {last_words}; logs in {self.dir}")

    def all_pids(self) -> list[int]:
        pid_files = [
            p
            for m in self.masters
            for p in (m.layout.exhibitor_pid_file, m.layout.zookeeper_pid_file, m.layout.archiver_pid_file)
        ]
        pid_files += services.pid_files(self.dir)
        return [pid for pid in (read_pid(p) for p in pid_files) if pid is not None]


def up(
    directory: Path | None = None,
    masters: int = 3,
    subnet: str = DEFAULT_SUBNET,
    zk_config: list[tuple[str, str]] | None = None,
    heap: str = "1g",
    timeout: float = 90.0,
    with_service: bool = True,
    zk_archive: str | None = None,
    zk_auth: str | None = None,
    hooks: Sequence[str] = (),
    encryption_key_file: Path | None = None,
    storage: str = "local",
) -> Cluster:
    """Start a cluster in ``directory``, wait until it serves with a leader, then start the backup service
    (presenting the digest identity ``zk_auth``, ``user:password``, to ZooKeeper if given; calling the
    application ``hooks``, ``NAME:WHEN=[METHOD ]URL``, around restores)."""
    if zk_auth is not None:
        digest_auth(zk_auth)  # a malformed one is a UsageError before anything starts
    for hook in hooks:
        parse_hook(hook)
    directory = Path(directory) if directory is not None else default_dir()
    try:
        existing = Cluster.load(directory)
    except NotFound:
        existing = None
    except ClusterError:
        existing = None  # a corrupt cluster.json with nothing running is replaced
    if existing is not None and existing.running_masters():
        raise Conflict(f"a local cluster already runs in {directory} (stop it with: dcos-local down)")
    archive = str(Path(zk_archive).absolute()) if zk_archive and "://" not in zk_archive else zk_archive
    cluster = Cluster.define(directory, masters, subnet, zk_config, heap, archive)
    if encryption_key_file is not None:
        cluster.encryption_key_file = str(Path(encryption_key_file).absolute())
    if storage not in STORAGE_KINDS:
        raise UsageError(f"--storage is one of {', '.join(STORAGE_KINDS)}, not {storage!r}")
    cluster.storage = storage
    front_door = with_service and services.service_available()
    for master in cluster.masters:
        check_dependencies(cluster.node_config(master))
        cluster._check_ports_free(master)
        if front_door:
            check_can_listen(master.member.host, HTTPS_PORT)
    if front_door:
        nginx_binary()
    if front_door and storage == "s3":
        s3.moto_server_binary()
        check_port_free(cluster.masters[0].member.host, s3.S3_PORT, "the S3 server")
    cluster.save()
    if zk_auth is not None:
        write_private_file(cluster.files.zk_auth, zk_auth.encode())
    else:
        cluster.files.zk_auth.unlink(missing_ok=True)
    try:
        if front_door and storage == "s3":  # before the masters: their archivers may write to it
            services.start_s3(cluster.dir, cluster.masters[0].member.host)
        for master in cluster.masters:
            cluster.spawn_master(master)  # all at once: they elect among all of them, as on DC/OS
        if front_door:
            security.create_trust(cluster.files, cluster.members)
        cluster.wait_serving(timeout)
        if front_door:
            start_front_door(cluster, hooks)
    except Exception:
        down(cluster)
        raise
    return cluster


def start_front_door(cluster: Cluster, hooks: Sequence[str] = ()) -> None:
    """The users (bootstrapuser), the backup service on its socket, and every master's Admin Router."""
    security.create_bootstrap_user(cluster.files, cluster.zk_hosts)
    # As DC/OS, a backup service on every master, behind that master's Admin Router; master 1's starts
    # first, so it leads (runs the jobs and schedules) until it dies; the others forward job requests to it.
    key_file = Path(cluster.encryption_key_file) if cluster.encryption_key_file else None
    s3_endpoint = cluster.s3_endpoint()
    first, *others = cluster.masters

    def start(master: Master, wait: bool) -> dict[str, str]:
        url = master.admin_router_url
        return services.start_service(
            cluster.dir, cluster.zk_hosts, master.member, url, wait, hooks, key_file, s3_endpoint
        )

    started = [start(first, True)] + [start(m, False) for m in others]
    for info in started[1:]:
        services.wait_service(info)
    cluster.service, cluster.services = started[0], started
    cluster.save()
    for master in cluster.masters:
        services.start_admin_router(cluster.dir, master.member)


def down(cluster: Cluster, purge: bool = False) -> list[int]:
    """Stop everything the cluster started; returns pids that survived (should be none)."""
    pids = cluster.all_pids()
    services.stop_all(cluster.dir)
    for master in cluster.masters:
        cluster.stop_master(master.id)
    survivors = wait_until_gone(pids, timeout=10)
    if purge and not survivors:
        shutil.rmtree(cluster.dir, ignore_errors=True)
    return survivors


def seed(
    cluster: Cluster,
    apps: int = 50,
    seed_value: int = 0,
    replace: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SeedStats:
    """``dcos-local seed``: Marathon-like state under /marathon, and the process holding its ephemeral nodes.

    An existing /marathon is refused (Conflict) unless ``replace``, which deletes it first.
    """
    client = connect(cluster.zk_hosts, timeout=60)  # big multis during log rolls can stall a while
    try:
        if client.exists(SEED_ROOT):
            if not replace:
                raise Conflict(
                    f"{SEED_ROOT} already exists (seeded before?); pass --replace to delete it and seed again"
                )
            services.stop_holder(cluster.dir)
            client.delete(SEED_ROOT, recursive=True)
        stats = seed_marathon(client, apps=apps, seed=seed_value, progress=progress)
    finally:
        client.stop()
        client.close()
    services.start_holder(cluster.dir, cluster.zk_hosts)
    return stats
