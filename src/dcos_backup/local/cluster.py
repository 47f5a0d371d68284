"""A real N-master cluster on this machine, as its :class:`~dcos_backup.local.spec.ClusterSpec` describes it.

Each master gets its own loopback address ``<subnet>.N`` (all of 127/8 is local on Linux) and the
same ports DC/OS masters use, so the cluster looks like a real one: ZooKeeper on 2181/2888/3888, the
Exhibitor status API on 8181 and the Admin Router on 443 (HTTPS, certificates of the cluster's own CA).
Master N's exhibitor dir is ``<dir>/master-N``, laid out as :class:`~dcos_backup.master.layout.MasterLayout`
says; the rest of ``<dir>`` as :class:`~dcos_backup.local.files.ClusterFiles` says. :func:`up` and
:func:`down` start and stop it all, with the processes of :mod:`.services` beside the masters and the
trust and users of :mod:`.security`; :func:`start_master` and :func:`stop_master` one master's supervisor;
:func:`seed` fills it with Marathon-like state. Every function here takes the spec whole and changes no spec:
one that learns something new (:func:`up`) returns a new spec, saved to ``cluster.json``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import psutil

from dcos_backup.adminrouter.nginx import HTTPS_PORT, check_can_listen, nginx_binary
from dcos_backup.components.hooks import parse_hook
from dcos_backup.errors import ClusterError, Conflict, NotFound, UsageError
from dcos_backup.exhibitor.daemon import check_dependencies, check_port_free
from dcos_backup.exhibitor.status import MemberStatus, cluster_status, is_healthy
from dcos_backup.fsutil import write_private_file
from dcos_backup.local import s3, security, services
from dcos_backup.local.monitoring import PROMETHEUS_PORT
from dcos_backup.local.spec import DEFAULT_SUBNET, ClusterSpec, Master, default_dir
from dcos_backup.logical import connect, digest_auth
from dcos_backup.master.processes import (
    last_complaint,
    last_lines,
    live_process,
    port_open,
    python_module_command,
    read_pid,
    spawn_detached,
    terminate,
    terminate_all,
    wait_until_gone,
)
from dcos_backup.storage.crypto import create_key_file
from dcos_backup.testing.seed import ROOT as SEED_ROOT
from dcos_backup.testing.seed import SeedStats, seed_marathon


def master_process(master: Master) -> psutil.Process | None:
    return live_process(master.layout.exhibitor_pid_file, str(master.layout.node_config))


def is_running(master: Master) -> bool:
    return master_process(master) is not None


def running_masters(cluster: ClusterSpec) -> list[Master]:
    return [m for m in cluster.masters if is_running(m)]


def anything_running(cluster: ClusterSpec) -> bool:
    """Whether any process of the cluster runs (a master's supervisor, the service, an Admin Router)."""
    return bool(running_masters(cluster)) or services.any_running(cluster.dir)


def start_master(
    cluster: ClusterSpec,
    n: int,
    wait: bool = False,
    timeout: float = 60.0,
    notify: Callable[[str], None] | None = None,
    force: bool = False,
) -> None:
    """``systemctl start dcos-exhibitor`` on master ``n``: returns once its supervisor is up.

    With ``wait``, then waits for the member to serve (see :func:`wait_serving`). A supervisor that
    refuses to start (a restore mark says its data would undo the others' restore) fails this with its
    reason; ``force`` starts it anyway.
    """
    master = cluster.master(n)
    if spawn_master(cluster, master, force):
        wait_supervisor(master, timeout)
    if wait:
        wait_serving(cluster, timeout, members=[master], notify=notify)


def spawn_master(cluster: ClusterSpec, master: Master, force: bool = False) -> bool:
    """Start master's supervisor unless it runs; returns whether it was started (not waiting for it)."""
    if is_running(master):
        return False
    cfg = cluster.node_config(master)
    check_dependencies(cfg)
    check_ports_free(master)
    cfg.write()
    layout = master.layout
    spawn_detached(
        python_module_command(
            "dcos_backup.cli.exhibitor", "run", "--config", str(layout.node_config), *(["--force"] * force)
        ),
        layout.exhibitor_log,
        layout.exhibitor_pid_file,
        cluster.s3_env(),
    )
    return True


def wait_supervisor(master: Master, timeout: float = 60.0) -> None:
    """Until master's supervisor answers on its Exhibitor port; ClusterError if it dies first."""
    member = master.member
    deadline = time.monotonic() + timeout
    while not port_open(member.host, member.exhibitor_port):
        if not is_running(master):
            why = last_lines(master.layout.exhibitor_log, 1).removeprefix("error: ") or "no log"
            raise ClusterError(f"master {master.id} not started: {why}")
        if time.monotonic() > deadline:
            raise ClusterError(f"master {master.id}'s supervisor did not answer within {timeout:g}s")
        time.sleep(0.1)


def missing_for_quorum(cluster: ClusterSpec) -> int:
    """How many more supervisors must run before the ensemble can have a quorum (0: enough run)."""
    return max(0, len(cluster.masters) // 2 + 1 - len(running_masters(cluster)))


def stop_master(cluster: ClusterSpec, n: int, timeout: float = 30.0) -> None:
    """``systemctl stop dcos-exhibitor`` on master ``n``: its supervisor and its ZooKeeper end."""
    master = cluster.master(n)
    proc = master_process(master)
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


def check_ports_free(master: Master) -> None:
    m = master.member
    for port, what in (
        (m.client_port, "ZooKeeper client"),
        (m.quorum_port, "ZooKeeper quorum"),
        (m.election_port, "ZooKeeper election"),
        (m.exhibitor_port, "Exhibitor"),
    ):
        check_port_free(m.host, port, f"master {m.id}: {what}")


def status(cluster: ClusterSpec, timeout: float = 1.0) -> list[MemberStatus]:
    return cluster_status(cluster.members, timeout)


def wait_serving(
    cluster: ClusterSpec,
    timeout: float = 90.0,
    members: list[Master] | None = None,
    notify: Callable[[str], None] | None = None,
) -> list[MemberStatus]:
    """Wait until every member (or ``members``) serves and one leads; fail early if a supervisor died.

    While too few supervisors run for a quorum nothing can serve, and that is no failure: the wait
    goes on (the deadline runs from when a quorum could form), saying so through ``notify`` if given.
    """
    deadline = time.monotonic() + timeout
    watched = members or cluster.masters
    said = ""
    while True:
        statuses = status(cluster)
        if members is None and is_healthy(statuses):
            return statuses
        if members is not None:
            wanted = {m.member.host for m in watched}
            if all(s.code == 3 for s in statuses if s.hostname in wanted) and any(s.isLeader for s in statuses):
                return statuses
        for m in watched:
            if not is_running(m):
                why = last_lines(m.layout.exhibitor_log) or "no log"
                raise ClusterError(f"master {m.id} stopped while starting: {why} (log: {m.layout.exhibitor_log})")
        missing = missing_for_quorum(cluster)
        if missing:
            deadline = time.monotonic() + timeout
            quorum = len(cluster.masters) // 2 + 1
            message = f"waiting for {missing} more master{'s' * (missing > 1)} to form a quorum of {quorum}"
            if notify is not None and message != said:
                notify(message)
            said = message
        if time.monotonic() > deadline:
            _not_serving(cluster, timeout, statuses, watched)
        time.sleep(0.25)


def _not_serving(
    cluster: ClusterSpec, timeout: float, statuses: list[MemberStatus], watched: Sequence[Master]
) -> NoReturn:
    states = ", ".join(f"{s.hostname} {s.description}" for s in statuses)
    failing = [m for m, s in zip(cluster.masters, statuses, strict=True) if s.code != 3 and m in watched]
    last_words = ""
    if failing:
        last_words = f"master {failing[0].id} says: {last_complaint(failing[0].layout.console_log)}"
    raise ClusterError(f"cluster not serving after {timeout:g}s ({states}) {last_words}; logs in {cluster.dir}")


def all_pids(cluster: ClusterSpec) -> list[int]:
    pid_files = [
        p
        for m in cluster.masters
        for p in (m.layout.exhibitor_pid_file, m.layout.zookeeper_pid_file, m.layout.archiver_pid_file)
    ]
    pid_files += services.pid_files(cluster.dir)
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
    monitoring: bool = False,
) -> ClusterSpec:
    """Start a cluster in ``directory``, wait until it serves with a leader, then start the backup service
    (presenting the digest identity ``zk_auth``, ``user:password``, to ZooKeeper if given; calling the
    application ``hooks``, ``NAME:WHEN=[METHOD ]URL``, around restores) and, with ``monitoring``, a
    Prometheus scraping every master (:func:`.services.start_prometheus`); returns its spec as saved."""
    if zk_auth is not None:
        digest_auth(zk_auth)  # a malformed one is a UsageError before anything starts
    for hook in hooks:
        parse_hook(hook)
    directory = Path(directory) if directory is not None else default_dir()
    try:
        existing = ClusterSpec.load(directory)
    except NotFound:
        existing = None
    except ClusterError:
        existing = None  # a corrupt cluster.json with nothing running is replaced
    if existing is not None and running_masters(existing):
        raise Conflict(f"a local cluster already runs in {directory} (stop it with: dcos-local down)")
    archive = str(Path(zk_archive).absolute()) if zk_archive and "://" not in zk_archive else zk_archive
    cluster = ClusterSpec.define(directory, masters, subnet, zk_config, heap, archive, encryption_key_file, storage)
    front_door = with_service and services.service_available()
    for master in cluster.masters:
        check_dependencies(cluster.node_config(master))
        check_ports_free(master)
        if front_door:
            check_can_listen(master.member.host, HTTPS_PORT)
    if front_door:
        nginx_binary()
    if monitoring:
        if not front_door:
            raise UsageError("--monitoring needs the backup service and the Admin Routers (it scrapes them)")
        check_port_free(cluster.masters[0].member.host, PROMETHEUS_PORT, "Prometheus")
    if front_door and storage == "s3":
        s3.moto_server_binary()
        check_port_free(cluster.masters[0].member.host, s3.S3_PORT, "the S3 server")
    cluster.save()
    if archive:  # before the masters: every archiver authenticates the repository with it
        create_key_file(cluster.files.repo_key)
    if zk_auth is not None:
        write_private_file(cluster.files.zk_auth, zk_auth.encode())
    else:
        cluster.files.zk_auth.unlink(missing_ok=True)
    try:
        if front_door and storage == "s3":  # before the masters: their archivers may write to it
            services.start_s3(cluster.dir, cluster.masters[0].member.host)
        for master in cluster.masters:
            spawn_master(cluster, master)  # all at once: they elect among all of them, as on DC/OS
        if front_door:
            security.create_trust(cluster.files, cluster.members)
        wait_serving(cluster, timeout)
        if front_door:
            cluster = start_front_door(cluster, hooks)
        if monitoring:
            cluster = cluster.with_prometheus(services.start_prometheus(cluster))
            cluster.save()
    except Exception:
        down(cluster)
        raise
    return cluster


def start_front_door(cluster: ClusterSpec, hooks: Sequence[str] = ()) -> ClusterSpec:
    """The users (bootstrapuser), the backup service on its socket, and every master's Admin Router; returns
    the spec with the services, saved."""
    security.create_bootstrap_user(cluster.files, cluster.zk_hosts)
    # As DC/OS, a backup service on every master, behind that master's Admin Router; master 1's starts
    # first, so it leads (runs the jobs and schedules) until it dies; the others forward job requests to it.
    first, *others = cluster.masters
    started = [services.start_service(cluster, first, hooks)]
    started += [services.start_service(cluster, m, hooks, wait=False) for m in others]
    for info in started[1:]:
        services.wait_service(info)
    cluster = cluster.with_services(started)
    cluster.save()
    for master in cluster.masters:
        services.start_admin_router(cluster.dir, master.member, wait=False)
    for master in cluster.masters:
        services.wait_admin_router(cluster.dir, master.member)
    return cluster


def down(cluster: ClusterSpec, purge: bool = False) -> list[int]:
    """Stop everything the cluster started; returns pids that survived (should be none)."""
    pids = all_pids(cluster)
    services.stop_all(cluster.dir)
    # Every master's supervisor at once (each takes its ZooKeeper down), then whatever one left behind.
    terminate_all([proc for master in cluster.masters if (proc := master_process(master)) is not None])
    for master in cluster.masters:
        stop_master(cluster, master.id)
    survivors = wait_until_gone(pids, timeout=10)
    if purge and not survivors:
        shutil.rmtree(cluster.dir, ignore_errors=True)
    return survivors


def seed(
    cluster: ClusterSpec,
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
